"""Every `workflow.patched` name in one place.

A change that alters the commands a running journey would issue asks
`patched(NAME)` where the old and the new code part ways, so histories recorded
before it replay as they ran (`tests/histories/before_<name>/`). Names are
recorded in histories as markers: never rename or reuse one.
"""

from __future__ import annotations

# workflows.journey
LOCAL_SETUP_ACTIVITIES = "local-setup-activities"
FLAGS_SEARCH_ATTRIBUTE = "advocacy-flags-search-attribute"
SUBMIT_REFERRAL_DIRECT = "submit-referral-direct"
BOUNDED_EVENT_TEXT = "bounded-event-text"
# workflows.policy
REFEREE_INCENTIVE_ONCE = "referee-incentive-once"
REMINDERS_IN_BUSINESS_HOURS = "reminders-in-business-hours"
ORGANIC_COMPLETION_ONCE = "organic-completion-once"
SHARED_FREE_MAIL_LIST = "shared-free-mail-list"
STATE_BUDGET = "state-budget"
REFERRAL_DEAL_CURRENCY = "referral-deal-currency"
REFERRAL_ADDRESS_RULES = "referral-address-rules"
PROGRAM_QUALIFICATION = "program-qualification"
TEAM_TOLD_OF_ACCEPTANCE = "team-told-of-acceptance"
CUSTOMER_PREFERENCES = "customer-preferences"

JOURNEY = (LOCAL_SETUP_ACTIVITIES, FLAGS_SEARCH_ATTRIBUTE, SUBMIT_REFERRAL_DIRECT, BOUNDED_EVENT_TEXT)
POLICY = (
    REFEREE_INCENTIVE_ONCE,
    REMINDERS_IN_BUSINESS_HOURS,
    ORGANIC_COMPLETION_ONCE,
    SHARED_FREE_MAIL_LIST,
    STATE_BUDGET,
    REFERRAL_DEAL_CURRENCY,
    REFERRAL_ADDRESS_RULES,
    PROGRAM_QUALIFICATION,
    TEAM_TOLD_OF_ACCEPTANCE,
    CUSTOMER_PREFERENCES,
)
ALL = JOURNEY + POLICY
# Asked once at the start of `run`, before any local activity: their branches can be reached in a journey's
# first workflow task (an event or an Update applied right after the playbook's local activity), where a
# `patched` asked for the first time can fall in another task on replay than it did live.
AT_START = (PROGRAM_QUALIFICATION, TEAM_TOLD_OF_ACCEPTANCE)
