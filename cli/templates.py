"""`starter.py templates list | preview | check`: what marketers run on the templates they edit."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from activities.playbook import read_playbook
from mail.lint import check, sample_variables
from mail.render_pool import RenderSettingsError
from mail.templates import DEFAULT_LOCALE, TemplateFailure, TemplateRenderer
from plumbing.config import Settings
from workflows.playbook import PlaybookError

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def add_parser(sub: Any) -> None:
    templates = sub.add_parser("templates", help="list, preview and check the email templates")
    actions = templates.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="templates and the locales each has")
    preview = actions.add_parser("preview", help="render one template to files a person can open")
    preview.add_argument("name")
    preview.add_argument("--locale", default=DEFAULT_LOCALE)
    preview.add_argument("--data", help="JSON file overriding sample context (customer, reward, score, ...)")
    preview.add_argument("--customer", help="use this customer's real profile from the database")
    preview.add_argument("--out", default="var/preview", help="directory for the .html, .txt (and .png)")
    preview.add_argument("--png", action="store_true", help="also a screenshot, with Chromium")
    actions.add_parser(
        "check",
        help="render every template in every locale, each within TEMPLATE_RENDER_SECONDS; non-zero exit on any error",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        renderer = TemplateRenderer(settings.templates_dir)
    except RenderSettingsError as err:
        print(f"error: {err}")
        return 2
    if args.action == "list":
        for name, locales in renderer.catalog().items():
            print(f"{name:<22} {', '.join(sorted(locales))}")
        return 0
    if args.action == "check":
        return _check(renderer, settings)
    return _preview(renderer, settings, args)


def _check(renderer: TemplateRenderer, settings: Settings) -> int:
    try:
        require_utm = read_playbook(settings.playbook_path).require_utm
    except PlaybookError as err:
        print(f"error: {err}")
        return 2
    problems = check(renderer, require_utm)
    for problem in problems:
        print(problem)
    errors = sum(p.severity == "error" for p in problems)
    templates = sum(len(locales) for locales in renderer.catalog().values())
    print(f"{templates} template/locale pairs checked: {errors} errors, {len(problems) - errors} warnings")
    return 1 if errors else 0


def _preview(renderer: TemplateRenderer, settings: Settings, args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    if args.data:
        try:
            overrides = json.loads(Path(args.data).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            print(f"error: --data {args.data}: {err}")
            return 2
        if not isinstance(overrides, dict):
            print(f"error: --data {args.data}: expected a JSON object")
            return 2
    if args.customer:
        customer = _real_customer(settings, args.customer)
        if customer is None:
            print(f"error: no customer {args.customer!r} in {settings.database_url}")
            return 2
        overrides = {**customer, **overrides}
    try:
        rendered = renderer.render(args.name, args.locale, sample_variables(args.name, args.locale, overrides))
    except TemplateFailure as err:
        print(f"error: {err}")
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{args.name}.{rendered.locale}"
    html, text = stem.with_suffix(stem.suffix + ".html"), stem.with_suffix(stem.suffix + ".txt")
    html.write_text(rendered.html, encoding="utf-8")
    text.write_text(f"Subject: {rendered.subject}\n\n{rendered.text}", encoding="utf-8")
    print(f"subject: {rendered.subject}\nlocale:  {rendered.locale}\nsources: {rendered.sources_hash[:16]}")
    print(f"wrote {html}\nwrote {text}")
    for warning in rendered.warnings:
        print(f"warning: {warning}")
    if args.png:
        return _screenshot(html, stem.with_suffix(stem.suffix + ".png"))
    return 0


def _real_customer(settings: Settings, customer_id: str) -> dict[str, Any] | None:
    from storage.db import make_engine, make_sessionmaker
    from storage.models import Customer

    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            row = session.get(Customer, customer_id)
            if row is None:
                return None
            name = row.name or ""
            return {
                "customer": {
                    "customer_id": row.customer_id,
                    "name": name,
                    "first_name": name.split(" ")[0],
                    "company": row.company or "",
                    "email": row.email or "",
                },
                "referral_code": row.referral_code,
            }
    finally:
        engine.dispose()


def _screenshot(html: Path, png: Path) -> int:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        print("warning: no Chromium found: skipped the PNG (apt-get install chromium)")
        return 0
    cmd = [browser, *CHROMIUM_FLAGS, "--hide-scrollbars", "--window-size=700,1100", f"--screenshot={png.resolve()}"]
    result = subprocess.run([*cmd, html.resolve().as_uri()], capture_output=True, timeout=120, check=False)
    if result.returncode != 0 or not png.is_file():
        print(f"error: Chromium could not take the screenshot: {result.stderr.decode(errors='replace')[-300:]}")
        return 1
    print(f"wrote {png}")
    return 0
