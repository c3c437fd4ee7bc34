"""Our data converter writes the SDK's JSON byte for byte and decodes to the same objects, only faster."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.converter import DataConverter

from activities.playbook import read_playbook
from plumbing.config import DEFAULT_PLAYBOOK, DEMO_PLAYBOOK
from plumbing.converter import data_converter
from tests.test_policy_properties import simulate, step
from workflows.model import Ask, JourneyInput, JourneyState, SendEmailInput
from workflows.playbook import Playbook

OURS = data_converter().payload_converter
SDK = DataConverter.default.payload_converter


def _both_ways(value: Any, hint: Any) -> None:
    ours, theirs = OURS.to_payloads([value]), SDK.to_payloads([value])
    assert ours[0].data == theirs[0].data
    assert OURS.from_payloads(ours, [hint]) == SDK.from_payloads(theirs, [hint]) == [value]


@pytest.mark.parametrize("path", [DEFAULT_PLAYBOOK, DEMO_PLAYBOOK])
def test_playbooks_round_trip_like_the_sdk(path: Any) -> None:
    _both_ways(read_playbook(path), Playbook)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=1, max_size=40))
def test_journey_states_round_trip_like_the_sdk(steps: list[Any]) -> None:
    state = simulate(steps)
    _both_ways(state, JourneyState)
    _both_ways(JourneyInput(customer_id=state.customer_id, state=state, pending_events=[{"x": 1}]), JourneyInput)


def test_unknown_fields_are_ignored_and_missing_ones_defaulted() -> None:
    payload = SDK.to_payloads([{"customer_id": "c-1", "added_later": True}])
    (state,) = OURS.from_payloads(payload, [JourneyState])
    assert state == JourneyState(customer_id="c-1")


def test_a_wrong_type_names_the_field() -> None:
    payload = SDK.to_payloads([{"ask_id": "a", "program": "review", "status": "sent", "created_at": 5}])
    with pytest.raises(TypeError, match="field created_at of Ask: expected str"):
        OURS.from_payloads(payload, [Ask])


def test_a_missing_required_field_fails() -> None:
    payload = SDK.to_payloads([{"idempotency_key": "k"}])
    with pytest.raises(TypeError, match="missing"):
        OURS.from_payloads(payload, [SendEmailInput])


def test_integers_decode_into_float_fields() -> None:
    pb = read_playbook(DEFAULT_PLAYBOOK)
    raw = SDK.to_payloads([pb])
    raw[0].data = raw[0].data.replace(b'"moment_window_seconds":1209600.0', b'"moment_window_seconds":1209600')
    (decoded,) = OURS.from_payloads(raw, [Playbook])
    assert decoded.moment_window_seconds == 1209600.0 and isinstance(decoded.moment_window_seconds, float)


def test_a_state_carried_over_before_the_score_log_rename_decodes() -> None:
    """Continue-as-new carries the state as JSON: runs started before the rename wrote `signals`."""
    from plumbing.converter import decode
    from workflows.model import JourneyState

    old = {"customer_id": "c-1", "signals": [{"at": "2026-11-01T10:00:00Z", "event_type": "nps_response",
                                               "delta": 20, "reason": "promoter NPS 10"}]}  # fmt: skip
    state = decode(JourneyState, old)
    assert [entry.reason for entry in state.score_log] == ["promoter NPS 10"]
    assert decode(JourneyState, {"customer_id": "c-1", "score_log": old["signals"]}).score_log == state.score_log
