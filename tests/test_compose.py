"""docker-compose.yml, checked statically (no Docker engine here): the Compose Specification's JSON schema,
and consistency with the code: commands name files that exist, the environment matches what the code
reads, ports do not clash, the worker can scale."""

from __future__ import annotations

import importlib.resources
import json
import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

from plumbing.config import ROOT
from starter import COMMANDS

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
APP_SERVICES = [name for name, s in SERVICES.items() if s.get("image", "").startswith("advocacy-journeys")]
# Read by the code only under test (fault injection, test databases).
TEST_ONLY = {"ADVOCACY_FAULT", "ADVOCACY_FAULT_MARKER", "TEST_DATABASE_URL", "SKIP_DEVSERVER"}
_READS = re.compile(r"""(?:environ|env)(?:\.get\(\s*|\[\s*)["']([A-Z][A-Z0-9_]+)["']""")


def _code_reads() -> set[str]:
    names: set[str] = set()
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).parts
        if parts[0] in (".venv", "tests", "bench", "var"):
            continue
        names |= set(_READS.findall(path.read_text(encoding="utf-8")))
    return names - TEST_ONLY


def _environment(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment", {})
    return dict(env) if isinstance(env, dict) else dict(item.split("=", 1) for item in env)


def test_valid_against_the_compose_specification() -> None:
    # The Compose Specification's schema, as shipped in docker-compose 1.29.2 (installed by the Makefile).
    schema = json.loads((importlib.resources.files("compose") / "config" / "compose_spec.json").read_text())
    errors = [
        f"{'/'.join(map(str, e.instance_path))}: {e.message}"
        for e in jsonschema_rs.validator_for(schema).iter_errors(COMPOSE)
    ]
    assert errors == []


def test_the_stack_has_what_a_company_runs() -> None:
    assert {"temporal", "temporal-db", "temporal-ui", "temporal-setup", "app-db", "migrate", "worker", "api"} <= set(
        SERVICES
    )
    assert SERVICES["temporal"]["environment"]["DB"].startswith("postgres")
    for name in ("worker", "api"):
        waits = SERVICES[name]["depends_on"]
        assert waits["migrate"]["condition"] == "service_completed_successfully"
        assert waits["temporal-setup"]["condition"] == "service_completed_successfully"
        assert SERVICES[name]["restart"] == "unless-stopped" and "healthcheck" in SERVICES[name]
    setup = " ".join(SERVICES["temporal-setup"]["command"])
    assert all(attr in setup for attr in ("AdvocacyStage:Keyword", "AdvocateTier:Keyword", "AdvocateScore:Int",
                                          "LastNps:Int", "CustomerId:Keyword"))  # fmt: skip
    for name, service in SERVICES.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in SERVICES, f"{name} depends on unknown service {dependency}"


def test_commands_name_files_and_subcommands_that_exist() -> None:
    for name in APP_SERVICES:
        command = SERVICES[name]["command"]
        if command[0] == "python":
            assert (ROOT / command[1]).is_file(), f"{name}: {command[1]} does not exist"
            if command[1] == "starter.py":
                assert command[2] in COMMANDS, f"{name}: starter.py has no {command[2]!r} command"
        else:
            assert command[:3] == ["alembic", "upgrade", "head"] and (ROOT / "alembic.ini").is_file()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install -r requirements.txt" in dockerfile  # the same pins as the tests
    assert SERVICES["migrate"].get("build") == "."


def test_environment_matches_what_the_code_reads() -> None:
    reads = _code_reads()
    assert {"TEMPORAL_ADDRESS", "DATABASE_URL", "API_WRITE_KEYS", "PAYLOAD_ENCRYPTION_KEY"} <= reads
    provided: set[str] = set()
    for name in APP_SERVICES:
        env = set(_environment(SERVICES[name]))
        unknown = env - reads
        assert not unknown, f"{name} sets variables no code reads: {sorted(unknown)}"
        provided |= env
    missing = reads - provided
    assert not missing, f"the code reads variables docker-compose.yml never sets: {sorted(missing)}"
    contract = {"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_TASK_QUEUE", "DATABASE_URL", "PLAYBOOK_PATH",
                "EMAIL_PROVIDER", "SENDGRID_API_KEY", "SENDGRID_API_HOST"}  # fmt: skip
    assert contract <= set(_environment(SERVICES["worker"]))
    assert {"API_WRITE_KEYS", "API_READ_KEYS", "SENDGRID_WEBHOOK_PUBLIC_KEY", "REFERRAL_LANDING_URL"} <= set(
        _environment(SERVICES["api"])
    )


def _host_ports(service: dict[str, Any]) -> list[str]:
    return [str(p).rsplit(":", 1)[0] for p in service.get("ports", []) if ":" in str(p)]


def test_ports_do_not_clash_and_the_worker_scales() -> None:
    published = [port for s in SERVICES.values() for port in _host_ports(s)]
    assert len(published) == len(set(published)), published
    worker = SERVICES["worker"]
    # --scale worker=3 needs no fixed name and no published port.
    assert "container_name" not in worker and "ports" not in worker
    metrics = {name: _environment(SERVICES[name]).get("METRICS_PORT") for name in ("worker", "api")}
    assert len(set(metrics.values())) == 2


@pytest.mark.parametrize("path", [ROOT / "Dockerfile", ROOT / ".dockerignore"])
def test_image_files_exist(path: Path) -> None:
    assert path.is_file() and path.read_text().strip()


@pytest.mark.parametrize("name", ["UNSUBSCRIBE_SECRET", "API_WRITE_KEYS", "API_READ_KEYS"])
def test_secrets_have_no_default_and_are_required(name: str) -> None:
    # `${NAME:?message}`: compose refuses to start without it; a `:-default` would publish the secret.
    for service in ("worker", "api") if name == "UNSUBSCRIBE_SECRET" else ("api",):
        value = str(_environment(SERVICES[service]).get(name))
        assert re.fullmatch(rf"\$\{{{name}:\?[^}}]+\}}", value), f"{service}: {name}={value}"
