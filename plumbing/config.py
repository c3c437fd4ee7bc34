"""Configuration from the environment (contract names), with embedded defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = f"sqlite:///{ROOT / 'var' / 'advocacy.db'}"
DEFAULT_PLAYBOOK = ROOT / "playbooks" / "default.yaml"
DEMO_PLAYBOOK = ROOT / "playbooks" / "demo.yaml"
TEMPLATES_DIR = ROOT / "templates"
# A secret that signs links in customers' mailboxes: long, and none of the strings published in this repository.
MIN_SECRET_LENGTH = 32
PLACEHOLDER_SECRETS = frozenset({"change-me", "changeme", "dev-only-unsubscribe-secret", "secret", "demo"})


@dataclass(frozen=True)
class Settings:
    temporal_address: str
    temporal_namespace: str
    task_queue: str
    database_url: str
    playbook_path: Path
    email_provider: str
    outbox_dir: Path
    referral_landing_url: str
    public_base_url: str
    postal_address: str
    company_name: str = "Example Inc."
    templates_dir: Path = TEMPLATES_DIR
    # The HTTP API: write keys for ingest, read keys for journey state (comma-separated in the environment).
    api_write_keys: tuple[str, ...] = ()
    api_read_keys: tuple[str, ...] = ()
    sendgrid_webhook_public_key: str = ""
    segment_mapping_path: Path | None = None
    # Signs the one-click unsubscribe links; empty: the dev-only default of mail/links.py (the demo).
    unsubscribe_secret: str = ""

    @staticmethod
    def from_env() -> Settings:
        env = os.environ
        return Settings(
            temporal_address=env.get("TEMPORAL_ADDRESS", "localhost:7233"),
            temporal_namespace=env.get("TEMPORAL_NAMESPACE", "default"),
            task_queue=env.get("TEMPORAL_TASK_QUEUE", "advocacy-journeys"),
            database_url=env.get("DATABASE_URL", DEFAULT_DATABASE_URL),
            playbook_path=Path(env.get("PLAYBOOK_PATH", str(DEFAULT_PLAYBOOK))),
            email_provider=env.get("EMAIL_PROVIDER", "local"),
            outbox_dir=Path(env.get("OUTBOX_DIR", str(ROOT / "var" / "outbox"))),
            referral_landing_url=env.get("REFERRAL_LANDING_URL", "https://example.com/welcome"),
            public_base_url=env.get("PUBLIC_BASE_URL", "http://localhost:8000").rstrip("/"),
            postal_address=env.get("COMPANY_POSTAL_ADDRESS", "Example Inc., 1 Market St, San Francisco, CA"),
            company_name=env.get("COMPANY_NAME", "Example Inc."),
            templates_dir=Path(env.get("TEMPLATES_DIR", str(TEMPLATES_DIR))),
            api_write_keys=_keys(env.get("API_WRITE_KEYS", "")),
            api_read_keys=_keys(env.get("API_READ_KEYS", "")),
            sendgrid_webhook_public_key=env.get("SENDGRID_WEBHOOK_PUBLIC_KEY", "").strip(),
            segment_mapping_path=Path(env["SEGMENT_MAPPING_PATH"]) if env.get("SEGMENT_MAPPING_PATH") else None,
            unsubscribe_secret=env.get("UNSUBSCRIBE_SECRET", ""),
        )


def weak_secret(name: str, value: str) -> str | None:
    """Why `value` cannot be the production secret `name`, or None when it can."""
    if not value.strip():
        return f"set {name} (at least {MIN_SECRET_LENGTH} random characters, e.g. `openssl rand -hex 32`)"
    if value.strip().lower() in PLACEHOLDER_SECRETS or len(set(value)) < 8:
        return f"{name} is a placeholder: set a random value (e.g. `openssl rand -hex 32`)"
    if len(value) < MIN_SECRET_LENGTH:
        return f"{name} is {len(value)} characters: at least {MIN_SECRET_LENGTH} are required"
    return None


def _keys(value: str) -> tuple[str, ...]:
    return tuple(k.strip() for k in value.split(",") if k.strip())
