"""`starter.py templates check` and `preview`: sample data, and every rule a template must pass.

check renders every template in every locale against sample data and reports
file, line and reason for: syntax errors, names outside the documented
variables, undefined attributes, a missing text (or subject, or HTML) part, a
customer email without the unsubscribe link, links without our UTM parameters
(when the playbook requires them), links to our own site at a path the HTTP API
does not serve (a 404 in a customer's inbox) and sandbox violations. Size over Gmail's
clipping limit and an empty preheader are warnings.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jinja2

from activities.email import Company, template_variables
from mail.templates import DEFAULT_LOCALE, PART_LABELS, PARTS, TemplateFailure, TemplateRenderer, undeclared_names
from workflows.model import SendEmailInput

SAMPLE_BASE_URL = "https://advocacy.example.com"
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign")
_URL_IN_TEXT = re.compile(r"https?://[^\s<>\"')]+")
_PREHEADER = re.compile(r'<div style="display:none[^>]*>(.*?)</div>', re.S)


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    reason: str
    severity: str = "error"  # error | warning

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.severity}: {self.reason}"


def is_internal(name: str) -> bool:
    """Team notifications go to the company, not to a customer: no unsubscribe link, no UTM rule."""
    return name.startswith("team_")


# Team notifications about one ask: the program their sample ask is for.
_TEAM_ASK_PROGRAMS = {"team_story": "case_study", "team_accepted": "reference"}
_SAMPLE_STORY = {
    "challenge": "Month-end close took nine days and three spreadsheets nobody trusted.",
    "change": "One ledger for all four entities; approvals moved out of email.",
    "results": "Close in 4 days instead of 9; 120 hours a month back for the finance team.",
    "quote": "We stopped arguing about numbers and started using them.",
    "may_name": True,
    "interview_time": "Tuesday or Thursday mornings, CET",
    "submissions": 1,
}


def sample_variables(
    name: str, locale: str = DEFAULT_LOCALE, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Realistic variables for NAME, built the way a send builds them."""
    program = name.removeprefix("ask_") if name.startswith("ask_") else None if is_internal(name) else "review"
    program = _TEAM_ASK_PROGRAMS.get(name, program)
    context: dict[str, Any] = {
        "customer": {
            "customer_id": "c-sample",
            "name": "Ada Lovelace",
            "first_name": "Ada",
            "company": "Analytical Engines Ltd",
            "email": "ada@analytical.example",
        },
        "referral_code": "ADA7K2QX",
        "score": 87,
        "completed": {"review": 1, "referral": 2, "case_study": 1},
        "reward": {"amount": 50.0, "currency": "USD", "kind": "gift_card", "program": program or "referral"},
        "story": _SAMPLE_STORY if name == "team_story" else None,
    }
    for key, value in (overrides or {}).items():
        context[key] = value
    email = SendEmailInput(
        idempotency_key=f"c-sample:{name}",
        customer_id=str(context["customer"].get("customer_id", "c-sample")),
        template=name,
        to_email=str(context["customer"].get("email", "ada@analytical.example")),
        locale=locale,
        ask_id=None if program is None else "ask-sample",
        program=program,
        context=context,
    )
    return template_variables(email, Company(name="Example Inc.", public_base_url=SAMPLE_BASE_URL))


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs += [v for k, v in attrs if k == "href" and v]


def _html_links(html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    return parser.hrefs


def _line_of(renderer: TemplateRenderer, file: str, needle: str) -> int | None:
    try:
        for number, line in enumerate((renderer.directory / file).read_text(encoding="utf-8").splitlines(), 1):
            if needle in line:
                return number
    except OSError:
        return None
    return None


@functools.cache
def _api_routes() -> tuple[Any, ...]:
    from api.app import create_app  # the API's own routes, so the rule cannot drift from them
    from plumbing.config import Settings

    return tuple(create_app(Settings.from_env()).routes)


def served(path: str) -> bool:
    """Whether the HTTP API answers a GET on `path` (what following a link in an email does)."""
    from starlette.routing import Match

    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "query_string": b"", "headers": []}
    return any(route.matches(scope)[0] == Match.FULL for route in _api_routes())


def _unserved(url: str) -> str | None:
    """The path of a link to our own site that the API does not serve, or None."""
    parts = urlsplit(url)
    if f"{parts.scheme}://{parts.netloc}" != SAMPLE_BASE_URL:
        return None
    return None if served(parts.path) else parts.path or "/"


def check(renderer: TemplateRenderer, require_utm: bool = True) -> list[Problem]:
    problems: list[Problem] = []
    # 1. Every file parses and reads only documented variables.
    for path in sorted(renderer.directory.glob("*.j2")):
        try:
            for name, line in undeclared_names(renderer, path.name):
                problems.append(Problem(path.name, line, f"undefined variable {name!r} (not a documented variable)"))
        except jinja2.TemplateSyntaxError as err:
            problems.append(Problem(path.name, err.lineno, f"syntax error: {err.message}"))
        except RecursionError:
            problems.append(Problem(path.name, None, "syntax error: nested too deeply"))
    if any(p.reason.startswith("syntax error") for p in problems):
        return problems
    flagged = {p.file for p in problems}
    # 2. Every template, in every locale it has, renders completely and passes the rules.
    for name, locales in renderer.catalog().items():
        for locale, parts in locales.items():
            missing = [
                part
                for part in PARTS
                if part not in parts and (locale == DEFAULT_LOCALE or part not in locales.get(DEFAULT_LOCALE, []))
            ]
            for part in missing:
                problems.append(
                    Problem(renderer.file_name(name, part, locale), None, f"missing {PART_LABELS[part]} part")
                )
            if missing or "html" not in parts:
                continue
            # A file already reported above is not reported again for each template that uses it.
            problems += [p for p in _check_rendered(renderer, name, locale, require_utm) if p.file not in flagged]
    return problems


def _check_rendered(renderer: TemplateRenderer, name: str, locale: str, require_utm: bool) -> list[Problem]:
    html_file = renderer.file_name(name, "html", locale)
    text_file = renderer.file_name(name, "txt", locale)
    variables = sample_variables(name, locale)
    try:
        rendered = renderer.render(name, locale, variables)
    except TemplateFailure as err:
        return [Problem(err.file or html_file, err.line, err.reason)]
    problems = [Problem(html_file, None, w, "warning") for w in rendered.warnings]
    preheader = _PREHEADER.search(rendered.html)
    if preheader is None or not preheader.group(1).strip():
        problems.append(Problem(html_file, None, "empty preheader (the inbox preview line)", "warning"))
    if is_internal(name):
        return problems
    unsubscribe = variables["links"]["unsubscribe"]
    if unsubscribe not in _html_links(rendered.html):
        problems.append(Problem(html_file, None, "no unsubscribe link (links.unsubscribe) in the HTML part"))
    if unsubscribe not in rendered.text:
        problems.append(Problem(text_file, None, "no unsubscribe link (links.unsubscribe) in the text part"))
    for file, urls in ((html_file, _html_links(rendered.html)), (text_file, _URL_IN_TEXT.findall(rendered.text))):
        for url in urls:
            path = _unserved(url)
            if path is not None:
                line = _line_of(renderer, file, "/" + path.strip("/").split("/")[0])
                problems.append(Problem(file, line, f"link {url}: the API serves no page at {path} (a 404)"))
    if require_utm:
        for file, urls in ((html_file, _html_links(rendered.html)), (text_file, _URL_IN_TEXT.findall(rendered.text))):
            for url in urls:
                if url == unsubscribe or not url.startswith(("http://", "https://")):
                    continue
                query = parse_qs(urlsplit(url).query)
                missing = [k for k in UTM_KEYS if k not in query]
                if missing:
                    problems.append(
                        Problem(
                            file,
                            _line_of(renderer, file, url.split("?")[0]),
                            f"link {url} lacks {', '.join(missing)} (the playbook requires UTM parameters)",
                        )
                    )
    return problems
