"""Recorded histories replay against the current workflow code: non-determinism is caught before deploy."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from plumbing.converter import data_converter
from workflows.journey import AdvocacyJourney

HISTORIES = sorted((Path(__file__).parent / "histories").rglob("*.json"))


def test_histories_are_recorded() -> None:
    assert len(HISTORIES) >= 4


@pytest.mark.parametrize("path", HISTORIES, ids=[f"{p.parent.name}/{p.stem}" for p in HISTORIES])
async def test_replay(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    await Replayer(workflows=[AdvocacyJourney], data_converter=data_converter()).replay_workflow(history)
