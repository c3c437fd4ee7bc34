"""What every policy call needs besides the state: the playbook, the time, and which fixes apply."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from workflows.playbook import Playbook

# `patched(name)` answers whether a fix named in workflows.patches applies. The workflow passes
# `workflow.patched`; tests and the simulator pass `every_fix`. There is no default on purpose:
# a call that forgot it would replay a recorded journey down today's branch.
Patched = Callable[[str], bool]


def every_fix(name: str) -> bool:
    return True


@dataclass(frozen=True, kw_only=True)
class Policy:
    playbook: Playbook
    now: datetime
    patched: Patched

    def at(self, now: datetime) -> Policy:
        return replace(self, now=now)
