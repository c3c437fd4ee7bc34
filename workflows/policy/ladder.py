"""The ladder: which program a customer may be asked for now, from reviews up to the advisory board."""

from __future__ import annotations

from datetime import datetime

from workflows import patches
from workflows.events import parse_timestamp, when
from workflows.model import JourneyState
from workflows.playbook import Playbook, ProgramSpec, Qualifier
from workflows.policy.context import Policy
from workflows.policy.preferences import skipped
from workflows.policy.scoring import completed_total, is_champion
from workflows.schedule import seconds

_RISK_RANK = {"low": 0, "medium": 1, "high": 2}


def program_or_none(pb: Playbook, name: str) -> ProgramSpec | None:
    try:
        return pb.program(name)
    except KeyError:
        return None


def _effort_ceiling(state: JourneyState, pb: Playbook, now: datetime) -> int | None:
    """After a decline the next ask must be of lower effort, until an activity is completed
    or the decline is older than `redecline_after`."""
    last = state.asks[-1] if state.asks else None
    spec = program_or_none(pb, last.program) if last else None
    if last is None or spec is None or last.status != "declined" or last.closed_at is None:
        return None
    declined = parse_timestamp(last.closed_at)
    if now >= declined + seconds(pb.redecline_after_seconds):
        return None
    if any(parse_timestamp(done) > declined for done in state.last_completed_at.values()):
        return None
    return spec.effort


def _holds(way: Qualifier, state: JourneyState, pb: Playbook) -> bool:
    return (
        (not way.promoter or (state.last_nps is not None and state.last_nps >= pb.promoter_min))
        and (way.min_tier is None or pb.tier_rank(state.tier) >= pb.tier_rank(way.min_tier))
        and completed_total(state) >= way.min_completed
        and (not way.champion or is_champion(state, pb))
    )


def _qualifies(state: JourneyState, ctx: Policy, spec: ProgramSpec) -> bool:
    """By its tier (and the playbook's qualify_score, as before), or by one of its other ways in."""
    pb = ctx.playbook
    by_tier = state.score >= pb.qualify_score and pb.tier_rank(state.tier) >= pb.tier_rank(spec.min_tier)
    if by_tier:
        return True
    # Fit used to gate every program: a promoter with no segment or plan was never asked.
    return any(_holds(way, state, pb) for way in spec.ways_in()) and ctx.patched(patches.PROGRAM_QUALIFICATION)


def requirements(spec: ProgramSpec) -> str:
    """What qualifies a customer for `spec`, in words (for the `ask_outlook` explanation)."""
    ways = [f"tier {spec.min_tier}", *(way.describe() for way in spec.ways_in())]
    gates = [
        *([f"{spec.min_completed} completed activities"] if spec.min_completed else []),
        *(["champion status"] if spec.requires_champion else []),
    ]
    return " or ".join(ways) + (f", with {' and '.join(gates)}" if gates else "")


def pick_program(state: JourneyState, ctx: Policy) -> ProgramSpec | None:
    pb, now = ctx.playbook, ctx.now
    total = completed_total(state)
    champion = is_champion(state, pb)
    effort_ceiling = _effort_ceiling(state, pb, now)
    candidates = []
    for spec in pb.programs:
        if total < spec.min_completed:
            continue
        if skipped(state, ctx, spec.name):  # the customer said it does not interest them
            continue
        if spec.requires_champion and not champion:
            continue
        if _RISK_RANK[state.churn_risk] > _RISK_RANK[spec.max_churn_risk]:
            continue
        # Recognition is no escalation: a champion's invitation does not wait out a lower rung's decline.
        capped = effort_ceiling is not None and spec.effort >= effort_ceiling
        if capped and not (spec.requires_champion and ctx.patched(patches.PROGRAM_QUALIFICATION)):
            continue
        done = state.completed.get(spec.name, 0)
        if done:
            last_done = when(state.last_completed_at.get(spec.name))
            if spec.repeat_after_seconds is None or (
                last_done and now < last_done + seconds(spec.repeat_after_seconds)
            ):
                continue
        declined_recently = any(
            a.program == spec.name and a.status == "declined" and a.closed_at
            and now < parse_timestamp(a.closed_at) + seconds(pb.redecline_after_seconds)
            for a in state.asks
        )  # fmt: skip
        if declined_recently:
            continue
        if not _qualifies(state, ctx, spec):
            continue
        candidates.append((not spec.requires_champion, done > 0, spec.effort, spec))
    if not candidates:
        return None
    return min(candidates, key=lambda c: c[:3])[3]
