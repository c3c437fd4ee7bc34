"""Workflow code passes through the sandbox (for speed), so non-determinism is caught statically instead:
ruff's banned-API rule over workflows/ (workflows/ruff.toml)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from plumbing.config import ROOT

PROBES = [
    ("from datetime import datetime\n\nNOW = datetime.now()\n", "datetime.datetime.now"),
    ("import datetime\n\nTODAY = datetime.date.today()\n", "datetime.date.today"),
    ("import random\n\nX = random.random()\n", "`random`"),
    ("import uuid\n\nID = uuid.uuid4()\n", "uuid.uuid4"),
    ("import time\n\nT = time.time()\n", "`time`"),
    ("import os\n\nHOME = os.environ.get('HOME')\n", "`os`"),
    ("from sqlalchemy import select\n\nQ = select\n", "`sqlalchemy`"),
]


def _ruff(source: str, filename: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--stdin-filename", filename, "-"],
        input=source, capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(("source", "banned"), PROBES, ids=[b.strip("`") for _, b in PROBES])
def test_a_non_deterministic_call_in_workflow_code_is_refused(source: str, banned: str) -> None:
    for filename in ("workflows/policy/probe.py", "workflows/journey_probe.py"):
        result = _ruff(source, filename)
        assert result.returncode == 1 and "TID251" in result.stdout and banned in result.stdout, result.stdout


def test_the_same_call_elsewhere_is_fine() -> None:
    assert "TID251" not in _ruff(PROBES[0][0], "client/probe.py").stdout


def test_workflow_code_is_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "workflows"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout
