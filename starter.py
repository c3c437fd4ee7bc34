"""Command line for backend systems and ops: send events, inspect, steer, replay, report, demo.

python starter.py setup                            # the namespace's search attributes (idempotent)
python starter.py send-event '{"event_id": ..., "customer_id": ..., ...}'
python starter.py send-event events.jsonl          # many, with a progress bar
python starter.py state CUSTOMER_ID
python starter.py list [--stage at_risk]
python starter.py pause|resume|opt-out|churn CUSTOMER_ID [--reason TEXT]
python starter.py submit-referral CUSTOMER_ID --email E [--name N] [--company C]
python starter.py history CUSTOMER_ID --out FILE
python starter.py replay FILE [FILE ...]
python starter.py report [--since 2026-07-01] [--until 2026-10-01] [--retention-days 90] [--stages]
python starter.py demo [--exit] [--customers N] [--json]
python starter.py api [--host H] [--port P]           # the HTTP API
python starter.py codec-server [--port 8888]          # the Web UI's decoder for encrypted payloads
python starter.py forget CUSTOMER_ID                  # right to erasure
python starter.py revoke-code CUSTOMER_ID [--restore] # a referral code stops (or resumes) attributing
python starter.py redeliver [--older-than S]          # events stored while Temporal was down, sent now
python starter.py templates list | preview NAME [--locale L] [--data FILE] [--customer ID] [--out DIR] [--png] | check
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from cli import templates as template_commands
from client.connect import connect as _connect
from plumbing.config import Settings, weak_secret
from plumbing.entrypoint import exit_now
from workflows.events import EventError, parse_event
from workflows.model import ChurnInput, OptOutInput, PauseInput, SubmitReferralInput, workflow_id_for

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
DEFAULT_UI_ORIGINS = ["http://localhost:8233", "http://localhost:8080"]  # the dev server's UI, compose's UI


def _fail(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def load_events(source: str) -> list[dict[str, Any]]:
    """Events from a JSON string, a .json/.jsonl file or '-' (stdin); all validated before any is sent."""
    if source == "-":
        text, name = sys.stdin.read(), "stdin"
    elif source.lstrip().startswith(("{", "[")):
        text, name = source, "argument"  # JSON itself (a long one is not a valid file name)
    elif Path(source).is_file():
        text, name = Path(source).read_text(encoding="utf-8"), source
    else:
        raise EventError("event", f"{source}: no such file, and not JSON")
    stripped = text.strip()
    raws: list[Any] = []
    if stripped.startswith("[") or (stripped.startswith("{") and "\n{" not in stripped):
        try:
            loaded = json.loads(stripped)
        except json.JSONDecodeError as err:
            raise EventError("event", f"{name}: not valid JSON ({err.msg} at line {err.lineno})") from None
        raws = loaded if isinstance(loaded, list) else [loaded]
    else:
        for number, line in enumerate(stripped.splitlines(), 1):
            if not line.strip():
                continue
            try:
                raws.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise EventError("event", f"{name} line {number}: not valid JSON ({err.msg})") from None
    for index, raw in enumerate(raws):
        try:
            parse_event(raw)
        except EventError as err:
            where = f"{name} line {index + 1}: " if len(raws) > 1 else ""
            raise EventError(err.field, f"{where}{err.message}") from None
    return raws


async def cmd_send_event(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from activities.playbook import read_playbook
    from client.ingest import CONFLICT, Ingest, store_events
    from storage.db import database
    from storage.event_log import conflicts
    from storage.referral_screen import screen_events

    try:
        raws = load_events(args.source)
    except EventError as err:
        return _fail(f"invalid event: {err}")
    events = [parse_event(r) for r in raws]
    with database(settings.database_url) as sessions:
        # Every accepted event is kept once in the database, pending until its signal succeeded.
        record = not args.no_record
        if record:
            # An event_id taken by a different event is refused, like a bad event: nothing stored or sent.
            with sessions() as session:
                clashes = conflicts(session, events)
            if clashes:
                named = ", ".join(repr(events[i].event_id) for i in clashes)
                return _fail(f"invalid event: event_id {named}: {CONFLICT}")
            # The referral rules of POST /v1/referrals hold here too.
            per_day = read_playbook(settings.playbook_path).referral_max_per_day
            refusals = screen_events(sessions, events, per_day)
            if refusals:
                named = "; ".join(f"{events[i].event_id!r}: {why}" for i, why in sorted(refusals.items()))
                return _fail(f"referral refused: {named}")
            store_events(sessions, events)
        try:
            client = await _connect(settings)
        except RuntimeError as err:
            kept = f"; the {len(raws)} events are stored: `starter.py redeliver` sends them later" if record else ""
            return _fail(f"cannot reach Temporal at {settings.temporal_address}: {err}{kept}", 1)
        # The API's own path: per customer in order, customers in parallel; what is not sent stays pending.
        with tqdm(total=len(events), unit="event", disable=len(events) < 2, file=sys.stderr) as bar:
            sent, refused = await Ingest(client, sessions, settings.task_queue).deliver(
                list(enumerate(events)), bar.update
            )
    print(json.dumps({"sent": sent, "refused": [e.message for e in refused]}))
    return 1 if refused else 0


async def cmd_setup(args: argparse.Namespace, settings: Settings) -> int:
    from client.namespace import NamespaceNotReady, setup_namespace

    client = await _connect(settings)
    try:
        added = await setup_namespace(client)
    except NamespaceNotReady as err:
        return _fail(str(err), 1)
    print(json.dumps({"namespace": client.namespace, "search_attributes_added": added}))
    return 0


async def cmd_redeliver(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import timedelta

    from client.ingest import Ingest
    from storage.db import database

    with database(settings.database_url) as sessions:
        ingest = Ingest(await _connect(settings), sessions, settings.task_queue)
        delivered, refused = await ingest.redeliver(timedelta(seconds=args.older_than), limit=args.limit)
    print(json.dumps({"delivered": delivered, "refused": refused}))
    return 0


async def cmd_state(args: argparse.Namespace, settings: Settings) -> int:
    from client.journeys import get_state

    client = await _connect(settings)
    try:
        state = await get_state(client, args.customer_id)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return _fail(f"no journey for customer {args.customer_id!r}", 1)
        raise
    print(json.dumps(asdict(state), indent=2))
    return 0


async def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from client.journeys import list_journeys

    client = await _connect(settings)
    for row in await list_journeys(client, args.stage):
        print(json.dumps(row))
    return 0


async def cmd_update(args: argparse.Namespace, settings: Settings) -> int:
    from client.journeys import handle
    from workflows.journey import AdvocacyJourney

    client = await _connect(settings)
    h = handle(client, args.customer_id)
    reason = getattr(args, "reason", None) or ""
    calls: dict[str, Any] = {
        "pause": lambda: (AdvocacyJourney.pause, PauseInput(reason=reason)),
        "resume": lambda: (AdvocacyJourney.resume, PauseInput(reason=reason)),
        "opt-out": lambda: (AdvocacyJourney.opt_out, OptOutInput(reason=reason)),
        "churn": lambda: (AdvocacyJourney.churn, ChurnInput(reason=reason)),
        "submit-referral": lambda: (
            AdvocacyJourney.submit_referral,
            SubmitReferralInput(referee_email=args.email, referee_name=args.name, referee_company=args.company),
        ),
    }
    call = calls[args.command]()
    if args.command == "opt-out":
        from storage.db import database
        from storage.suppressions import suppress

        # Recorded first: sends check the suppression list, whatever becomes of the journey.
        with database(settings.database_url) as sessions, sessions.begin() as session:
            suppress(session, reason="opted_out", source=f"ops: {reason or 'opt-out command'}",
                     customer_id=args.customer_id)  # fmt: skip
    try:
        result = await h.execute_update(call[0], call[1])
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        return _fail(f"refused: {getattr(cause, 'message', cause)}", 1)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return _fail(f"no running journey for customer {args.customer_id!r}", 1)
        raise
    print(json.dumps(asdict(result)))
    return 0


async def cmd_history(args: argparse.Namespace, settings: Settings) -> int:
    client = await _connect(settings)
    history = await client.get_workflow_handle(workflow_id_for(args.customer_id)).fetch_history()
    Path(args.out).write_text(history.to_json(), encoding="utf-8")
    print(f"wrote {len(history.events)} events to {args.out}")
    return 0


async def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from temporalio.client import WorkflowHistory
    from temporalio.worker import Replayer

    from plumbing.converter import data_converter
    from workflows.journey import AdvocacyJourney

    replayer = Replayer(workflows=[AdvocacyJourney], data_converter=data_converter())
    failures = 0
    for path in args.files:
        history = WorkflowHistory.from_json(Path(path).stem, Path(path).read_text(encoding="utf-8"))
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        if result.replay_failure:
            failures += 1
            print(f"FAIL {path}: {result.replay_failure}")
        else:
            print(f"ok   {path}")
    return 1 if failures else 0


async def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from storage.reports import ReportError, parse_bound, program_report

    try:
        since, until = parse_bound("--since", args.since), parse_bound("--until", args.until)
        report = program_report(settings.database_url, since, until, args.retention_days)
    except ReportError as err:
        return _fail(str(err))
    if args.stages:
        from client.journeys import journeys_per_stage

        report["journeys_per_stage"] = await journeys_per_stage(await _connect(settings))
    print(json.dumps(report, indent=2))
    return 0


async def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from cli.demo import run_demo

    return await run_demo(customers=args.customers, exit_after=args.exit, as_json=args.json)


async def cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from api.app import create_app

    if not settings.api_write_keys or not settings.api_read_keys:
        return _fail("set API_WRITE_KEYS and API_READ_KEYS (comma-separated keys) before serving the API")
    # Anyone who knows the secret can unsubscribe any customer for good: never the published default.
    problem = weak_secret("UNSUBSCRIBE_SECRET", settings.unsubscribe_secret)
    if problem:
        return _fail(problem)
    from plumbing.telemetry import configure_logging

    configure_logging()
    config = uvicorn.Config(create_app(settings), host=args.host, port=args.port, log_level="info", log_config=None)
    server = uvicorn.Server(config)
    await server.serve()
    return 0


async def cmd_codec_server(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from plumbing.codec import EncryptionKeyError, codec_from_env
    from plumbing.codec_server import create_codec_app

    try:
        codec = codec_from_env()
    except EncryptionKeyError as err:
        return _fail(str(err))
    if codec is None:
        return _fail("set PAYLOAD_ENCRYPTION_KEY: the codec server decodes with the keys you hold")
    token = os.environ.get("CODEC_AUTH_TOKEN", "")
    if token or args.host not in LOOPBACK:
        # Whoever reaches it reads every payload: off this machine, only with a strong token.
        problem = weak_secret("CODEC_AUTH_TOKEN", token)
        if problem:
            return _fail(f"{problem} (or bind the codec server to 127.0.0.1)")
    app = create_codec_app(codec, args.ui_origin or DEFAULT_UI_ORIGINS, token=token or None)
    await uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="info")).serve()
    return 0


async def cmd_forget(args: argparse.Namespace, settings: Settings) -> int:
    from client.journeys import end_journey, forget_referee
    from storage.db import database
    from storage.erasure import emails_of, erase_rows, placeholder_email

    client = await _connect(settings)
    workflow = await end_journey(client, args.customer_id)
    with database(settings.database_url) as sessions:
        emails = emails_of(sessions, args.customer_id)
        report = erase_rows(sessions, args.customer_id, settings.outbox_dir)
    report.workflow = workflow
    for advocate in report.referred_by:
        placeholder = placeholder_email(args.customer_id)
        report.journeys_scrubbed[advocate] = await forget_referee(client, advocate, emails, placeholder)
    print(json.dumps(report.as_dict(), indent=2))
    return 0


async def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    from client.ingest import Ingest
    from client.journeys import RestoreError, restore_journey
    from storage.db import database
    from storage.event_log import requeue_refused

    client = await _connect(settings)
    try:
        state = await restore_journey(client, args.customer_id, settings.task_queue)
    except RestoreError as err:
        return _fail(str(err), 1)
    with database(settings.database_url) as sessions:
        events = requeue_refused(sessions, args.customer_id)
        delivered, errors = await Ingest(client, sessions, settings.task_queue).deliver(list(enumerate(events)))
    print(json.dumps({"customer_id": args.customer_id, "stage": state.stage, "opted_out": state.opted_out,
                      "events_applied": state.events_applied, "refused_events_redelivered": delivered,
                      "still_refused": [e.message for e in errors]}))  # fmt: skip
    return 0


async def cmd_revoke_code(args: argparse.Namespace, settings: Settings) -> int:
    from storage.db import database
    from storage.referral_codes import ReferralCodeError, set_code_revoked

    try:
        with database(settings.database_url) as sessions:
            code, changed = set_code_revoked(sessions, args.customer_id, revoked=not args.restore)
    except ReferralCodeError as err:
        return _fail(str(err), 1)
    status = "active" if args.restore else "revoked"
    print(json.dumps({"customer_id": args.customer_id, "referral_code": code, "status": status, "changed": changed}))
    return 0


async def cmd_templates(args: argparse.Namespace, settings: Settings) -> int:
    return template_commands.run(args, settings)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="starter.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("setup", help="register the journeys' search attributes on the namespace (idempotent)")
    send = sub.add_parser("send-event", help="send one event (JSON) or many (a .jsonl file, or '-')")
    send.add_argument("source")
    send.add_argument("--no-record", action="store_true", help="do not keep the events in the database")
    sub.add_parser("state", help="the journey state as JSON").add_argument("customer_id")
    sub.add_parser("list", help="journeys, optionally by stage").add_argument("--stage")
    for name in ("pause", "resume", "opt-out", "churn"):
        cmd = sub.add_parser(name)
        cmd.add_argument("customer_id")
        cmd.add_argument("--reason")
    ref = sub.add_parser("submit-referral")
    ref.add_argument("customer_id")
    ref.add_argument("--email", required=True)
    ref.add_argument("--name")
    ref.add_argument("--company")
    hist = sub.add_parser("history", help="download a journey's history (for replay)")
    hist.add_argument("customer_id")
    hist.add_argument("--out", required=True)
    sub.add_parser("replay", help="replay histories against the current code").add_argument("files", nargs="+")
    redeliver = sub.add_parser("redeliver", help="send the stored events a Temporal outage left undelivered")
    redeliver.add_argument("--older-than", type=float, default=30.0, help="seconds; younger ones may be in flight")
    redeliver.add_argument("--limit", type=int, default=500)
    revoke = sub.add_parser("revoke-code", help="revoke (or --restore) a customer's referral code")
    revoke.add_argument("customer_id")
    revoke.add_argument("--restore", action="store_true", help="make a revoked code attribute again")
    report = sub.add_parser("report", help="program KPIs from the database")
    report.add_argument("--since", help="start of the window, ISO 8601 date or timestamp (UTC if no offset)")
    report.add_argument("--until", help="end of the window (exclusive); default now")
    report.add_argument("--retention-days", type=int, default=90, help="period length for advocate retention")
    report.add_argument("--stages", action="store_true", help="add journeys per stage now (from Temporal)")
    demo = sub.add_parser("demo", help="run the whole product locally on embedded defaults")
    demo.add_argument("--exit", action="store_true", help="end after the summary")
    demo.add_argument("--customers", type=int, default=60)
    demo.add_argument("--json", action="store_true", help="print the summary as JSON instead of the short text")
    api = sub.add_parser("api", help="serve the HTTP API (uvicorn)")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    codec = sub.add_parser("codec-server", help="the Web UI's codec endpoint for encrypted payloads")
    codec.add_argument("--host", default="127.0.0.1")
    codec.add_argument("--port", type=int, default=8888)
    codec.add_argument("--ui-origin", action="append", help=f"the Web UI's origin for CORS (repeat for more); "
                       f"default {' and '.join(DEFAULT_UI_ORIGINS)}")  # fmt: skip
    restore = sub.add_parser("restore", help="start a terminated journey again from its last state")
    restore.add_argument("customer_id")
    forget = sub.add_parser("forget", help="right to erasure: end the journey, delete or anonymise all PII")
    forget.add_argument("customer_id")
    template_commands.add_parser(sub)
    return p


COMMANDS = {
    "setup": cmd_setup,
    "send-event": cmd_send_event,
    "state": cmd_state,
    "list": cmd_list,
    "pause": cmd_update,
    "resume": cmd_update,
    "opt-out": cmd_update,
    "churn": cmd_update,
    "submit-referral": cmd_update,
    "history": cmd_history,
    "replay": cmd_replay,
    "report": cmd_report,
    "revoke-code": cmd_revoke_code,
    "redeliver": cmd_redeliver,
    "demo": cmd_demo,
    "templates": cmd_templates,
    "api": cmd_api,
    "codec-server": cmd_codec_server,
    "forget": cmd_forget,
    "restore": cmd_restore,
}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings.from_env()
    try:
        return asyncio.run(COMMANDS[args.command](args, settings))
    except KeyboardInterrupt:
        return 130
    except RPCError as err:
        return _fail(f"Temporal at {settings.temporal_address}: {err.message}", 1)
    except RuntimeError as err:
        if "connect" in str(err).lower():
            return _fail(f"cannot reach Temporal at {settings.temporal_address}: {err}", 1)
        raise


if __name__ == "__main__":
    exit_now(main())
