"""Record workflow histories from real runs into tests/histories/ (replayed by test_replay.py).

    .venv/bin/python -m tests.record_histories [NAME ...] [--into tests/histories/before_CHANGE]

Re-record only when a change is meant to alter commands, and put that change
behind workflow.patched first so the old histories still replay.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from plumbing.converter import data_converter
from plumbing.entrypoint import exit_now
from storage.db import make_engine, make_sessionmaker
from storage.models import Base
from tests import test_journey_scenarios as scenarios
from tests import test_journey_updates as updates
from tests import test_long_journey as long_journey
from tests import test_preferences_journey as preferences
from tests.conftest import TEST_SERVER, Harness, register_search_attributes, running_worker
from workflows.model import workflow_id_for

HISTORIES = Path(__file__).parent / "histories"
RUNS: list[tuple[str, str, Callable[[Harness], Awaitable[None]]]] = [
    ("promoter_path", "promoter", scenarios.test_full_promoter_path_to_advisory_board),
    ("detractor_recovery", "detractor", scenarios.test_detractor_backs_off_and_recovers),
    ("referral_rewards", "referrer", scenarios.test_referral_reward_pending_then_approved_or_void),
    ("unsubscribe", "unsub", scenarios.test_unsubscribe_mid_ask_stops_everything_but_tracking),
    ("continued_as_new", "long", long_journey.test_two_years_across_continue_as_new),
    ("repeated_win_after_cap", "capwin", scenarios.test_a_repeated_win_after_the_cap_gives_the_referee_incentive_once),
    ("same_site_review_twice", "twice", scenarios.test_a_review_on_the_same_site_without_an_ask_counts_once),
    ("advisory_board_twice", "seat", scenarios.test_a_second_advisory_board_acceptance_counts_once),
    ("free_mail_referrals", "freemail", updates.test_referrals_on_a_free_mail_domain_by_event_and_by_update),
    ("many_referrals", "budget", scenarios.test_a_journey_keeps_its_latest_referrals_within_the_state_budget),
    (
        "promoter_without_segment",
        "nosegment",
        scenarios.test_a_promoter_without_segment_or_plan_is_asked_for_a_review_within_days,
    ),
    (
        "champion_without_segment",
        "nosegchamp",
        scenarios.test_a_champion_without_segment_or_plan_gets_the_advisory_board_invitation,
    ),
    ("oversized_events", "oversized", scenarios.test_text_over_its_bound_is_refused_by_the_journey),
    ("referral_burst", "burst", updates.test_fifteen_referrals_at_once_respect_the_daily_cap_and_one_referee_once),
    ("deal_in_yen", "yen", scenarios.test_a_won_deal_in_yen_without_a_rate_holds_the_advocate_reward),
    (
        "reminder_after_hours",
        "remind",
        scenarios.test_a_reminder_that_would_fall_after_hours_waits_for_the_next_opening,
    ),
    ("accepted_on_the_page", "accept", updates.test_a_reference_accepted_on_the_page_completes_once_and_tells_the_team),
    (
        "customer_preferences",
        "prefs",
        preferences.test_a_customer_pauses_for_a_month_then_is_asked_quarterly_without_referrals,
    ),
    ("preferences_carried_over", "prefsrun", preferences.test_preferences_carried_into_a_new_run_still_hold),
]


async def main(only: list[str], into: Path = HISTORIES) -> int:
    into.mkdir(exist_ok=True)
    for name, suffix, scenario in RUNS:
        if only and name not in only:
            continue
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=TEST_SERVER, data_converter=data_converter()
        )
        await register_search_attributes(env.client)
        with tempfile.TemporaryDirectory() as tmp:
            engine = make_engine(f"sqlite:///{tmp}/db.sqlite")
            Base.metadata.create_all(engine)
            async with running_worker(env, Path(tmp), make_sessionmaker(engine)) as h:
                await scenario(h)
                history = await env.client.get_workflow_handle(workflow_id_for(h.cid(suffix))).fetch_history()
            engine.dispose()
        (into / f"{name}.json").write_text(history.to_json())
        print(f"{name}: {len(history.events)} events")
        await env.shutdown()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="record only these (default: all)")
    parser.add_argument("--into", type=Path, default=HISTORIES, help="folder (e.g. one named for a change)")
    args = parser.parse_args()
    exit_now(asyncio.run(main(args.names, args.into)))
