"""The journey's policy as pure functions over the state and a `Policy` (playbook, now, patched).

The workflow only sequences these: it feeds events in, runs the effects they
return as activities, reports each effect's outcome back, and sleeps until
`next_wake`. No I/O, no clocks, no randomness here, so the same code runs in
the workflow sandbox, in property tests, the simulator and forecasts.

    scoring     the score log, score, tier, stage, champion status
    ladder      which program may be asked for
    asks        budget, moments, reminders, declines, backing off
    preferences the customer's own: how often, which programs, a pause until a date
    rewards     rewards built in one place, holds, the annual cap
    completion  a completed activity counted once, thanked and rewarded
    referrals   the self-referral rule, submissions, conversions
    handlers    one handler per event type
    due         what falls due: `advance` acts on it, `next_wake` sleeps until it
    outcomes    effect results and the mail provider's feedback
"""

from workflows.policy.asks import churn, open_ask, opt_out, plan_ask, set_preferences
from workflows.policy.budget import seen
from workflows.policy.completion import ACCEPTABLE, answer_ask, answer_refusal, story_refusal, story_submitted
from workflows.policy.context import Patched, Policy, every_fix
from workflows.policy.due import advance, next_wake
from workflows.policy.effects import (
    Effect,
    RecordAsk,
    RecordCustomer,
    RecordReferral,
    RecordReward,
    SendEmail,
    SettleReward,
)
from workflows.policy.handlers import HANDLERS, apply_event
from workflows.policy.outcomes import EMAIL_FEEDBACK_KINDS, effect_done, effect_failed, email_feedback
from workflows.policy.preferences import preferences_refusal
from workflows.policy.referrals import add_referral, forget_referee, referral_refusal, self_referral
from workflows.policy.scoring import flags, refresh

__all__ = [
    "ACCEPTABLE",
    "EMAIL_FEEDBACK_KINDS",
    "HANDLERS",
    "Effect",
    "Patched",
    "Policy",
    "RecordAsk",
    "RecordCustomer",
    "RecordReferral",
    "RecordReward",
    "SendEmail",
    "SettleReward",
    "add_referral",
    "advance",
    "answer_ask",
    "answer_refusal",
    "apply_event",
    "churn",
    "effect_done",
    "effect_failed",
    "email_feedback",
    "every_fix",
    "flags",
    "forget_referee",
    "next_wake",
    "open_ask",
    "opt_out",
    "plan_ask",
    "preferences_refusal",
    "referral_refusal",
    "refresh",
    "seen",
    "self_referral",
    "set_preferences",
    "story_refusal",
    "story_submitted",
]
