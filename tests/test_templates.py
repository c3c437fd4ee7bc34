"""Templates marketers edit: check catches every rule with file and line, the sandbox holds, fields are escaped."""

from __future__ import annotations

import email
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.email import Company, EmailActivities, LocalProvider
from mail.lint import check, is_internal, sample_variables
from mail.render_pool import RenderLimits, RenderPool, RenderSettingsError
from mail.templates import GMAIL_CLIP_BYTES, TemplateFailure, TemplateRenderer
from plumbing.config import ROOT, TEMPLATES_DIR
from storage.models import Base, Message
from tests.conftest import running_worker
from tests.outbox import templates_sent
from worker import ACTIVITY_SLOTS
from workflows.model import SendEmailInput


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    """A private copy of the shipped templates to break on purpose."""
    return Path(shutil.copytree(TEMPLATES_DIR, tmp_path / "templates"))


def _reasons(directory: Path) -> list[str]:
    return [str(p) for p in check(TemplateRenderer(directory)) if p.severity == "error"]


def test_shipped_templates_pass_check_from_the_command_line() -> None:
    result = subprocess.run(
        [sys.executable, "starter.py", "templates", "check"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 errors" in result.stdout


def test_every_template_renders_all_parts_with_inlined_css() -> None:
    renderer = TemplateRenderer(TEMPLATES_DIR)
    names = renderer.catalog()
    assert {"ask_review", "ask_referral", "reminder", "thank_you", "reward_notice", "team_champion"} <= set(names)
    for name in names:
        out = renderer.render(name, "en", sample_variables(name))
        assert out.subject and out.text.strip() and "<html" in out.html.lower()
        assert "<style" not in out.html and 'style="' in out.html  # the layout's CSS was inlined
        assert "_layout.html.j2" in out.sources and len(out.sources_hash) == 64


def test_syntax_error_is_reported_with_file_and_line(templates: Path) -> None:
    path = templates / "thank_you.html.j2"
    path.write_text(path.read_text() + "\n{% if %}\n")
    (problem,) = _reasons(templates)
    lines = path.read_text().count("\n")
    assert problem.startswith(f"thank_you.html.j2:{lines}: error: syntax error")


def test_an_expression_nested_too_deeply_is_reported_not_a_crash(templates: Path) -> None:
    path = templates / "thank_you.txt.j2"
    path.write_text("{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}\n" + path.read_text())
    assert _reasons(templates) == ["thank_you.txt.j2: error: syntax error: nested too deeply"]
    with pytest.raises(TemplateFailure, match="nested too deeply"):
        TemplateRenderer(templates).render("thank_you", "en", sample_variables("thank_you"))


def test_undocumented_variable_is_reported_with_line(templates: Path) -> None:
    path = templates / "reminder.txt.j2"
    path.write_text("Hi {{ customer.first_name }},\n{{ internal_notes }}\n" + path.read_text())
    assert _reasons(templates) == [
        "reminder.txt.j2:2: error: undefined variable 'internal_notes' (not a documented variable)"
    ]


def test_undefined_attribute_is_reported_with_line(templates: Path) -> None:
    path = templates / "ask_referral.html.j2"
    lines = path.read_text().splitlines()
    lines.insert(5, "<p>{{ customer.nickname }}</p>")
    path.write_text("\n".join(lines) + "\n")
    (problem,) = _reasons(templates)
    assert problem.startswith("ask_referral.html.j2:6: error: undefined:") and "nickname" in problem


def test_missing_text_part(templates: Path) -> None:
    (templates / "reward_notice.txt.j2").unlink()
    assert _reasons(templates) == ["reward_notice.txt.j2: error: missing text part"]


def test_missing_unsubscribe_link(templates: Path) -> None:
    path = templates / "ask_case_study.txt.j2"
    path.write_text(path.read_text().replace('{% include "_footer.txt.j2" %}', "Bye"))
    assert _reasons(templates) == [
        "ask_case_study.txt.j2: error: no unsubscribe link (links.unsubscribe) in the text part"
    ]


def test_link_without_utm_parameters(templates: Path) -> None:
    path = templates / "thank_you.html.j2"
    path.write_text(
        path.read_text().replace(
            "<p>Thank you,", '<p><a href="https://example.com/pricing">Pricing</a></p>\n<p>Thank you,'
        )
    )
    (problem,) = _reasons(templates)
    assert problem.startswith("thank_you.html.j2:7: error: link https://example.com/pricing lacks utm_source")
    assert check(TemplateRenderer(templates), require_utm=False) == []


def test_sandbox_violation_is_reported(templates: Path) -> None:
    path = templates / "reminder.html.j2"
    path.write_text(path.read_text().replace("<p>Thank you,", "<p>{{ customer.__class__.__mro__ }}</p>\n<p>Thank you,"))
    (problem,) = _reasons(templates)
    assert problem.startswith("reminder.html.j2:8: error: sandbox violation")


ESCAPES = [
    "{{ customer.__class__.__mro__[1].__subclasses__() }}",
    "{{ links.__class__.__init__.__globals__ }}",
    "{{ self.__init__.__globals__['os'] }}",
    "{{ namespace.__init__.__globals__.os.environ }}",
    "{{ ''.__class__.__base__.__subclasses__() }}",
    "{{ customer.update.__self__ }}",
    "{{ config }}",
    "{{ lipsum(100000) }}",
    "{% for i in range(1000000000) %}{% endfor %}",
    "{% for i in range(5000) %}{% for j in range(5000) %}{% endfor %}{% endfor %}",
    "{{ 'x' * 1000000000 }}",
    "{{ 9 ** 9 ** 9 }}",
    "{{ '%999999999s' % 1 }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ 'a' | center(999999999) }}",
    "{{ 'a'.ljust(999999999) }}",
    "{% for i in range(9000) %}{{ 'x' * 900 }}{% endfor %}",
    "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
]


@pytest.mark.parametrize("body", ESCAPES)
def test_templates_cannot_escape_or_exhaust_the_renderer(templates: Path, body: str) -> None:
    (templates / "evil.subject.j2").write_text("hi")
    (templates / "evil.txt.j2").write_text("hi {{ links.unsubscribe }}")
    (templates / "evil.html.j2").write_text(body)
    with pytest.raises(TemplateFailure) as err:
        TemplateRenderer(templates).render("evil", "en", sample_variables("evil"))
    assert err.value.file == "evil.html.j2"
    assert "Traceback" not in str(err.value)


# Within the sandbox's per-call bounds, but each runs for ever or asks for gigabytes: only the render
# process's time and memory bounds stop them.
LOOP = "{% for a in 'x' * 999999 %}{% for b in 'x' * 999999 %}{% endfor %}{% endfor %}"
EXHAUSTERS = {
    "nested loops over long strings": LOOP,
    "a macro that calls itself twice": (
        "{% macro f(n) %}{% if n < 60 %}{{ f(n + 1) }}{{ f(n + 1) }}{% endif %}{% endmacro %}{{ f(0) }}"
    ),
    "repeated squaring": (
        "{% set ns = namespace(x=3) %}{% for i in range(64) %}{% set ns.x = ns.x * ns.x %}{% endfor %}{{ ns.x > 1 }}"
    ),
    "a width passed as a format argument": "{{ '{:>{}}'.format(1, 1000000000) }}",
    "a width passed to %*s": "{{ '%*s' % (10 ** 10, 'x') }}",
    "a huge join": "{{ ('x' * 999999) | join('y' * 999999) }}",
}


TOOK_1_S = "rendering took longer than 1 s (TEMPLATE_RENDER_SECONDS)"


@pytest.fixture
def bounded(monkeypatch: pytest.MonkeyPatch) -> float:
    """Small render bounds, as a test needs them (the time-skipping server does not skip a running activity)."""
    monkeypatch.setenv("TEMPLATE_RENDER_SECONDS", "1")
    monkeypatch.setenv("TEMPLATE_RENDER_MEMORY_MB", "128")
    return 1.0


@pytest.mark.parametrize("body", EXHAUSTERS.values(), ids=EXHAUSTERS.keys())
def test_a_template_past_the_time_or_memory_bound_fails_fast_naming_the_bound(
    templates: Path, bounded: float, body: str
) -> None:
    (templates / "evil.subject.j2").write_text("hi")
    (templates / "evil.txt.j2").write_text("hi {{ links.unsubscribe }}")
    (templates / "evil.html.j2").write_text(body)
    renderer = TemplateRenderer(templates)
    start = time.monotonic()
    with pytest.raises(TemplateFailure) as err:
        renderer.render("evil", "en", sample_variables("evil"))
    assert time.monotonic() - start < bounded + 10  # the bound, a grace period, and a fresh render process
    reason = str(err.value)
    assert "took longer than 1 s (TEMPLATE_RENDER_SECONDS)" in reason or (
        "exceeded the memory bound (128 MB, TEMPLATE_RENDER_MEMORY_MB)" in reason
    ), reason
    assert err.value.file in (None, "evil.html.j2")
    # The failure is remembered for these sources: the next send of them fails at once.
    start = time.monotonic()
    with pytest.raises(
        TemplateFailure, match=re.escape("; not rendered again for 10 min unless the template changes") + "$"
    ):
        renderer.render("evil", "en", sample_variables("evil"))
    assert time.monotonic() - start < 1
    # This process, and the renderer, carry on.
    assert renderer.render("thank_you", "en", sample_variables("thank_you")).subject


def test_a_remembered_failure_is_tried_again_after_its_time_or_an_edit(
    templates: Path, bounded: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(RenderPool, "remember_failures_seconds", 2.0)
    path = templates / "thank_you.txt.j2"
    path.write_text(LOOP + "\n" + path.read_text())
    renderer, variables = TemplateRenderer(templates), sample_variables("thank_you")
    for expected in (TOOK_1_S, TOOK_1_S + "; not rendered again for 2 s unless the template changes"):
        with pytest.raises(TemplateFailure, match=re.escape(expected) + "$"):
            renderer.render("thank_you", "en", variables)
    time.sleep(2)
    start = time.monotonic()
    with pytest.raises(TemplateFailure, match=re.escape(TOOK_1_S) + "$"):
        renderer.render("thank_you", "en", variables)  # tried again, in full
    assert time.monotonic() - start >= bounded
    path.write_text(path.read_text().replace(LOOP, "Fixed."))
    assert renderer.render("thank_you", "en", variables).text.startswith("Fixed.")


def test_a_template_past_the_time_bound_names_its_file_and_line(templates: Path, bounded: float) -> None:
    path = templates / "thank_you.txt.j2"
    path.write_text("Hi\n" + LOOP + "\n" + path.read_text())
    with pytest.raises(TemplateFailure) as err:
        TemplateRenderer(templates).render("thank_you", "en", sample_variables("thank_you"))
    assert str(err.value) == "thank_you.txt.j2:2: rendering took longer than 1 s (TEMPLATE_RENDER_SECONDS)"


def test_check_reports_a_template_past_its_deadline_and_returns(templates: Path) -> None:
    path = templates / "thank_you.txt.j2"
    path.write_text(LOOP + "\n" + path.read_text())
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "starter.py", "templates", "check"],
        cwd=ROOT,
        env={**os.environ, "TEMPLATES_DIR": str(templates), "TEMPLATE_RENDER_SECONDS": "1"},
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert time.monotonic() - start < 45, "check waited far past the per-template deadline"
    assert result.returncode == 1, result.stdout + result.stderr
    assert "thank_you.txt.j2:1: error: rendering took longer than 1 s (TEMPLATE_RENDER_SECONDS)" in result.stdout


def _render_processes() -> set[int]:
    """This test process's render processes, from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit() or b"mail.render_process" not in (entry / "cmdline").read_bytes():
                continue
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == os.getpid():
                found.add(int(entry.name))
        except OSError:
            continue
    return found


def test_render_processes_start_fresh_and_end_with_the_pool(templates: Path) -> None:
    limits = RenderLimits(seconds=4.5, memory_mb=96, processes=2)  # a pool of its own
    before = _render_processes()
    renderer = TemplateRenderer(templates, limits)
    renderer.render("thank_you", "en", sample_variables("thank_you"))
    started = _render_processes() - before
    assert len(started) == 1  # started on demand, then reused
    renderer.render("ask_review", "en", sample_variables("ask_review"))
    assert _render_processes() - before == started
    (pid,) = started
    assert (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")[:3] == [
        sys.executable.encode(),
        b"-m",
        b"mail.render_process",
    ]  # a new interpreter (exec), not a fork of this one with its threads
    RenderPool.shared(limits).close()
    assert not _render_processes() - before


@pytest.mark.parametrize(
    ("name", "value"),
    [("TEMPLATE_RENDER_SECONDS", "0"), ("TEMPLATE_RENDER_SECONDS", "25"), ("TEMPLATE_RENDER_MEMORY_MB", "lots"),
     ("TEMPLATE_RENDER_PROCESSES", "1")],
)  # fmt: skip
def test_a_bad_render_bound_is_refused_at_start_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(RenderSettingsError, match=f"^{name} must be .* not '{value}'$"):
        RenderLimits.from_env({name: value})
    result = subprocess.run(
        [sys.executable, "starter.py", "templates", "check"],
        cwd=ROOT, env={**os.environ, name: value}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and result.stdout.startswith(f"error: {name} must be"), result.stdout


def test_healthy_sends_go_out_while_a_broken_template_fills_every_activity_slot(
    templates: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """23 thank-you sends of a template that never finishes, on the worker's activity slots, then another
    customer's review invite: the invite goes out within a few render deadlines, and every broken send fails
    for good (TemplateError), none retried for ever."""
    deadline = 2.0
    monkeypatch.setenv("TEMPLATE_RENDER_SECONDS", str(deadline))
    path = templates / "thank_you.html.j2"
    path.write_text(path.read_text().replace("<p>Thank you,", LOOP + "\n<p>Thank you,"))
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    Base.metadata.create_all(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    activities = EmailActivities(TemplateRenderer(templates), LocalProvider(tmp_path / "out"), sessions, Company())

    def send(customer: str, template: str) -> float:
        email = SendEmailInput(
            idempotency_key=f"{customer}:{template}",
            customer_id=customer,
            template=template,
            to_email=f"{customer}@example.com",
            ask_id="a1",
            program="review",
            context={"customer": {"name": "Ada", "first_name": "Ada"}, "referral_code": "ADA7K2QX"},
        )
        ActivityEnvironment().run(activities.send_email, email)
        return time.monotonic()

    pool = ThreadPoolExecutor(max_workers=ACTIVITY_SLOTS)
    try:
        start = time.monotonic()
        broken = [pool.submit(send, f"c-broken-{i}", "thank_you") for i in range(ACTIVITY_SLOTS + 7)]
        healthy = pool.submit(send, "c-healthy", "ask_review")
        bound = 3 * deadline + 6
        assert healthy.result(timeout=bound) - start < bound
        for future in broken:
            with pytest.raises(ApplicationError) as err:
                future.result(timeout=max(0.1, start + bound - time.monotonic()))
            assert err.value.type == "TemplateError" and err.value.non_retryable
            assert "took longer than 2 s" in str(err.value)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    assert templates_sent(sessions, "c-healthy") == ["ask_review"]
    engine.dispose()


def test_legitimate_arithmetic_and_formatting_still_work(templates: Path) -> None:
    (templates / "fine.subject.j2").write_text("{{ '%.2f' | format(250000) }} {{ '{:,}'.format(1234567) }}")
    (templates / "fine.txt.j2").write_text(
        "{% for i in range(3) %}{{ i * 2 }}{% endfor %} {{ 2 ** 10 }} {{ '-' * 20 }}"
    )
    (templates / "fine.html.j2").write_text("<p>{{ 'ok' | center(10) }}</p>")
    out = TemplateRenderer(templates).render("fine", "en", sample_variables("fine"))
    assert out.subject == "250000.00 1,234,567"
    assert out.text == "024 1024 " + "-" * 20 + "\n"


HOSTILE = {
    "name": '<script>alert("n")</script> Ada',
    "first_name": "<script>alert(1)</script>",
    "company": '<img src=x onerror="alert(2)">',
    "email": "ada@analytical.example",
    "customer_id": "c-1",
}


@pytest.mark.parametrize("name", sorted(TemplateRenderer(TEMPLATES_DIR).catalog()))
def test_customer_fields_are_escaped_in_every_template(name: str) -> None:
    renderer = TemplateRenderer(TEMPLATES_DIR)
    for locale in renderer.catalog()[name]:
        out = renderer.render(name, locale, sample_variables(name, locale, {"customer": HOSTILE}))
        assert "<script" not in out.html.lower() and "<img" not in out.html.lower()
        if "alert" in out.html:
            assert "&lt;script&gt;" in out.html or "&lt;img" in out.html


def test_locale_fallback(templates: Path) -> None:
    renderer = TemplateRenderer(templates)
    assert renderer.render("ask_review", "de-AT", sample_variables("ask_review")).locale == "de"
    assert renderer.render("ask_review", "fr", sample_variables("ask_review")).locale == "en"
    # A translation may share the default subject: the part falls back on its own.
    (templates / "ask_review.de.subject.j2").unlink()
    out = renderer.render("ask_review", "de", sample_variables("ask_review"))
    assert out.locale == "de" and out.subject.startswith("Would you share") and out.text.startswith("Hallo")


def test_an_edit_applies_at_the_next_render_and_changes_the_hash(templates: Path) -> None:
    renderer = TemplateRenderer(templates)
    before = renderer.render("thank_you", "en", sample_variables("thank_you"))
    (templates / "_header.html.j2").write_text("<p class='brand'>New brand {{ company.name }}</p>\n")
    after = renderer.render("thank_you", "en", sample_variables("thank_you"))
    assert "New brand" in after.html and "New brand" not in before.html
    assert after.sources_hash != before.sources_hash


def test_size_warning_past_gmail_clipping(templates: Path) -> None:
    path = templates / "thank_you.html.j2"
    filler = "<p>" + "lorem ipsum " * 12000 + "</p>"
    path.write_text(path.read_text().replace("<p>Thank you,", filler + "\n<p>Thank you,"))
    out = TemplateRenderer(templates).render("thank_you", "en", sample_variables("thank_you"))
    assert len(out.html.encode()) > GMAIL_CLIP_BYTES
    assert any("Gmail clips" in w for w in out.warnings)
    warnings = [p for p in check(TemplateRenderer(templates)) if p.severity == "warning"]
    assert any(p.file == "thank_you.html.j2" and "Gmail" in p.reason for p in warnings)


def test_internal_templates_are_exempt_from_customer_rules() -> None:
    assert is_internal("team_champion") and not is_internal("ask_review")
    out = TemplateRenderer(TEMPLATES_DIR).render("team_champion", "en", sample_variables("team_champion"))
    assert "/u/" not in out.html and "/u/" not in out.text  # no customer's unsubscribe link in a team email


def test_the_outbox_records_template_locale_and_sources_hash(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    Base.metadata.create_all(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    activities = EmailActivities(TemplateRenderer(TEMPLATES_DIR), LocalProvider(tmp_path / "out"), sessions, Company())
    customer = f"c-{uuid.uuid4().hex[:6]}"
    variables = sample_variables("ask_review", "de")
    ActivityEnvironment().run(
        activities.send_email,
        SendEmailInput(
            idempotency_key=f"{customer}:a1:invite",
            customer_id=customer,
            template="ask_review",
            to_email="ada@analytical.example",
            locale="de-AT",
            ask_id="a1",
            program="review",
            context={"customer": variables["customer"], "referral_code": "ADA7K2QX"},
        ),
    )
    with sessions() as s:
        row = s.scalars(select(Message).where(Message.customer_id == customer)).one()
    expected = TemplateRenderer(TEMPLATES_DIR).render("ask_review", "de-AT", variables)
    assert (row.template, row.locale, row.template_hash) == ("ask_review", "de", expected.sources_hash)
    assert row.template_sources is not None and "_layout.html.j2" in row.template_sources.split(",")
    assert row.status == "sent" and row.attempts == 1
    (eml,) = (tmp_path / "out").glob("*.eml")
    message = email.message_from_bytes(eml.read_bytes())
    assert " ".join(message["List-Unsubscribe"].split()).startswith("<http://localhost:8000/u/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    engine.dispose()


def test_preview_writes_html_text_and_a_screenshot(tmp_path: Path) -> None:
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.skip("Chromium is not installed (CI installs it)")
    data = tmp_path / "data.json"
    data.write_text('{"customer": {"name": "Grace Hopper", "first_name": "Grace", "company": "Navy"}}')
    result = subprocess.run(
        [sys.executable, "starter.py", "templates", "preview", "ask_referral", "--data", str(data),
         "--out", str(tmp_path / "p"), "--png"],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Grace" in (tmp_path / "p" / "ask_referral.en.html").read_text()
    assert (tmp_path / "p" / "ask_referral.en.txt").read_text().startswith("Subject: Know a team")
    assert (tmp_path / "p" / "ask_referral.en.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_preview_of_an_unknown_template_fails_clearly() -> None:
    result = subprocess.run(
        [sys.executable, "starter.py", "templates", "preview", "ask_nothing"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1 and "no template named 'ask_nothing'" in result.stdout


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        ("<p>{{ customer.nickname }}</p>", "nickname"),
        (LOOP, "ask_review.html.j2:8: rendering took longer than 1 s (TEMPLATE_RENDER_SECONDS)"),
    ],
    ids=["undefined attribute", "time bound"],
)
async def test_a_broken_template_fails_its_step_visibly_and_the_journey_goes_on(
    env: WorkflowEnvironment,
    tmp_path: Path,
    sessions: sessionmaker[Session],
    templates: Path,
    monkeypatch: pytest.MonkeyPatch,
    bounded: float,
    edit: str,
    reason: str,
) -> None:
    monkeypatch.setenv("TEMPLATES_DIR", str(templates))
    page = templates / "ask_review.html.j2"
    page.write_text(page.read_text().replace("<p>Thank you,", f"{edit}\n<p>Thank you,"))
    async with running_worker(env, tmp_path, sessions) as h:
        c = h.cid("broken")
        await h.profile(c, segment="enterprise")
        await h.send(c, "nps_response", {"score": 10})
        await h.sleep(days=3)
        state = await h.state(c)
        assert "template 'ask_review'" in (state.last_error or "") and reason in (state.last_error or "")
        assert state.asks[0].status == "cancelled"
        await h.send(c, "review_submitted", {"site": "g2", "rating": 5})
        await h.sleep(hours=1)
        assert templates_sent(h.sessions, c) == ["thank_you", "reward_notice"]
