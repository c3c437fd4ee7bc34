"""A completed advocacy activity: the ask closes, the ladder counts it once, thanks and reward follow."""

from __future__ import annotations

from dataclasses import replace

from workflows import patches
from workflows.events import iso
from workflows.model import OPEN_ASK_STATUSES, Ask, JourneyState
from workflows.policy.asks import customer_context, decline, email
from workflows.policy.context import Policy
from workflows.policy.effects import Effect, RecordAsk, SendEmail
from workflows.policy.ladder import program_or_none
from workflows.policy.rewards import cap_remaining, grant, has_reward
from workflows.policy.scoring import note, positive_moment


def complete_activity(state: JourneyState, ctx: Policy, program: str, reward_key: str) -> list[Effect]:
    now = ctx.now
    effects: list[Effect] = []
    ask = next((a for a in reversed(state.asks) if a.program == program and a.status in OPEN_ASK_STATUSES), None)
    key = f"{program}-{reward_key}"
    # A second review on the same site without an ask (the platform re-sending it, an edit) used to count
    # as another activity and send a thank-you that the outbox then dropped as a duplicate.
    if ask is None and key in state.completion_keys and ctx.patched(patches.ORGANIC_COMPLETION_ONCE):
        note(state, ctx, now, program, None, f"{program} already counted ({reward_key})")
        return effects
    if key not in state.completion_keys:
        state.completion_keys.append(key)
    if ask is not None:
        ask.status = "completed"
        ask.completed_at = iso(now)
        ask.closed_at = iso(now)
        effects.append(RecordAsk(ask=replace(ask)))
    state.completed[program] = state.completed.get(program, 0) + 1
    state.last_completed_at[program] = iso(now)
    note(state, ctx, now, program, "activity_completed", f"{program} completed")
    positive_moment(state, now)
    ask_ref = ask.ask_id if ask else f"organic-{reward_key}"
    effects += email(
        state, f"{ask_ref}:thanks", "thank_you", "thanks", f"thank {state.customer_id} for the {program}",
        program=program, ask_id=ask.ask_id if ask else None,
    )  # fmt: skip
    spec = program_or_none(ctx.playbook, program)
    if spec is not None and spec.reward is not None:
        reward_id = f"{program}-{reward_key}"
        if not has_reward(state, reward_id):
            amount = min(spec.reward.amount, cap_remaining(state, ctx))
            if spec.reward.amount > 0 and amount <= 0:
                note(state, ctx, now, program, None, "annual reward cap reached: no reward")
            else:
                effects += grant(
                    state, ctx, reward_id=reward_id, program=program, amount=amount,
                    currency=spec.reward.currency, kind=spec.reward.kind, hold_seconds=spec.reward.hold_seconds,
                )  # fmt: skip
    return effects


# Asks where saying yes is the advocacy itself (the team arranges the call, the talk, the seat); a review,
# a case study or a referral is done when it is published or submitted. Any open ask may be declined.
ACCEPTABLE = ("reference", "speaking", "advisory_board")


def answer_refusal(state: JourneyState, ask_id: str, accepted: bool) -> str | None:
    """Why the customer cannot answer this ask, or None (an ask already answered is no refusal)."""
    ask = next((a for a in state.asks if a.ask_id == ask_id), None)
    if ask is None:
        return "ask_id: no such ask"
    if accepted and ask.program not in ACCEPTABLE:
        return f"accepted: a {ask.program} ask is done by doing it, not by accepting it"
    return None


def answer_ask(state: JourneyState, ctx: Policy, ask_id: str, accepted: bool) -> tuple[Ask | None, list[Effect]]:
    """The customer's answer to an open ask: accepting completes it (once: thanks, reward), declining closes it
    with the usual cooldown. An answer to an ask no longer open changes nothing, so a second click is harmless."""
    ask = next((a for a in state.asks if a.ask_id == ask_id), None)
    if ask is None or ask.status not in OPEN_ASK_STATUSES or answer_refusal(state, ask_id, accepted):
        return ask, []
    if not accepted:
        note(state, ctx, ctx.now, ask.program, None, f"{ask.program} ask declined by the customer")
        return ask, decline(state, ctx, ask)
    # The open ask of a program is this one (one open ask at a time); the advisory board has one seat.
    key = "seat" if ask.program == "advisory_board" else f"ask-{ask.ask_id}"
    return ask, accept(state, ctx, ask.program, key)


def accept(state: JourneyState, ctx: Policy, program: str, reward_key: str) -> list[Effect]:
    """Yes to a reference call, a talk or the advisory board: the activity completes, and the team, who now
    arrange it, is told (once per completion; a `team_*` email, sent whatever the customer opted out of)."""
    ask = next((a for a in reversed(state.asks) if a.program == program and a.status in OPEN_ASK_STATUSES), None)
    counted = state.completed.get(program, 0)
    effects = complete_activity(state, ctx, program, reward_key)
    if state.completed.get(program, 0) == counted or not ctx.patched(patches.TEAM_TOLD_OF_ACCEPTANCE):
        return effects
    effects.append(
        SendEmail(
            key=f"{state.customer_id}:{program}-{reward_key}:accepted:team",
            template="team_accepted",
            to_email=ctx.playbook.team_email,
            step="team",
            ask_id=ask.ask_id if ask else None,
            program=program,
            context={"customer": customer_context(state), "score": state.score, "completed": dict(state.completed)},
            summary=f"tell the team {state.customer_id} said yes to {program.replace('_', ' ')}",
        )
    )
    return effects


def story_refusal(state: JourneyState, ask_id: str) -> str | None:
    """Why a story cannot be taken for this ask, or None (a story for an ask already completed is no refusal)."""
    ask = next((a for a in state.asks if a.ask_id == ask_id), None)
    if ask is None:
        return "ask_id: no such ask"
    if ask.program != "case_study":
        return f"ask_id: a {ask.program} ask takes no story"
    return None


def story_submitted(state: JourneyState, ctx: Policy, ask_id: str) -> tuple[Ask | None, list[Effect]]:
    """The advocate told their story on the case-study ask's page (stored with the ask by the API): the ask
    completes once (thanks, reward) and the team gets the story. A story for an ask no longer open changes
    nothing here, so sending the form again only updates the stored story."""
    ask = next((a for a in state.asks if a.ask_id == ask_id), None)
    if ask is None or ask.status not in OPEN_ASK_STATUSES or story_refusal(state, ask_id):
        return ask, []
    effects = complete_activity(state, ctx, ask.program, f"ask-{ask.ask_id}")
    effects.append(
        SendEmail(
            key=f"{state.customer_id}:{ask.ask_id}:story:team",
            template="team_story",
            to_email=ctx.playbook.team_email,
            step="team",
            ask_id=ask.ask_id,
            program=ask.program,
            context={"customer": customer_context(state), "score": state.score, "completed": dict(state.completed)},
            summary=f"send the team {state.customer_id}'s story",
        )
    )
    return ask, effects
