"""AdvocacyJourney: one long-lived workflow per customer (contract names in workflows.model).

The workflow sequences the pure policy in `workflows.policy`: apply events,
run the effects they produce as idempotent activities, sleep on one durable
timer until the next thing falls due, and continue-as-new when history grows.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import MetricCounter, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import patches, policy
    from workflows.events import EMAIL_RE, TEXT_LIMITS, EventError, iso, parse_event
    from workflows.model import (
        PROGRAMS,
        QUERY_STATE,
        SA_CUSTOMER,
        SA_FLAGS,
        SA_NPS,
        SA_SCORE,
        SA_STAGE,
        SA_TIER,
        SIGNAL_EVENT,
        WORKFLOW_TYPE,
        AnswerAskInput,
        AnswerAskResult,
        ChurnInput,
        CustomerEvent,
        EmailFeedbackInput,
        ForgetRefereeInput,
        JourneyInput,
        JourneyState,
        JourneyStatus,
        LoadPlaybookInput,
        OptOutInput,
        PauseInput,
        Preferences,
        RecordAskInput,
        RecordCustomerInput,
        RecordReferralInput,
        RecordRewardInput,
        SendEmailInput,
        SendEmailResult,
        SetPreferencesInput,
        SetPreferencesResult,
        SettleRewardInput,
        SubmitReferralInput,
        SubmitReferralResult,
        SubmitStoryInput,
    )
    from workflows.playbook import Playbook

# Side effects retry with backoff for as long as it takes (a database or mail
# outage must not lose a step); permanent failures raise non-retryable errors.
_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=5))
_TIMEOUT = timedelta(seconds=30)
_CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"


@workflow.defn(name=WORKFLOW_TYPE)
class AdvocacyJourney:
    @workflow.init
    def __init__(self, input: JourneyInput) -> None:
        self.state = input.state or JourneyState(customer_id=input.customer_id)
        self.inbox: list[Any] = list(input.pending_events)
        self.max_history = input.max_history_length
        self.queued: list[policy.Effect] = []
        self.pb: Playbook | None = None
        self.timer: asyncio.Task[None] | None = None
        self.timer_at: str | None = None
        self.timer_fired = False
        self.dirty = False
        self.published: dict[str, Any] = {}
        self.counters: dict[str, MetricCounter] = {}
        self.at_start: dict[str, bool] = {}  # patches.AT_START, asked at the start of `run`
        self.preferences = False  # patches.CUSTOMER_PREFERENCES: see `_ask_preferences_patch`
        # The next due moment, computed once per step for both the timer and the current details.
        self.wake: tuple[datetime, str] | None = None

    # ---- run ------------------------------------------------------------------

    @workflow.run
    async def run(self, input: JourneyInput) -> JourneyState:
        state = self.state
        # Asked once, before any local activity: a patch first asked after one can fall in another
        # workflow task on replay than it did live (a slow local activity splits the task), and
        # `patched` answers per task. The policy asks it where old and new part; this is the answer.
        self.at_start = {name: workflow.patched(name) for name in patches.AT_START}
        if input.state is not None and input.state.preferences != Preferences():
            self._ask_preferences_patch()  # carried over: the policy may ask about them after the local activity
        if input.state is None:
            state.started_at = iso(workflow.now())
            state.referral_code = "".join(workflow.random().choice(_CODE_ALPHABET) for _ in range(8))
        else:
            state.runs += 1
        self.pb = await self._short_activity(
            "load_playbook", LoadPlaybookInput(), result_type=Playbook, summary="load the playbook"
        )
        state.playbook_version = self.pb.version
        policy.refresh(state, self.pb)
        while True:
            await self._step()
            if state.churned and not any(r.status == "pending" for r in state.rewards):
                break
            if self._history_full():
                await self._continue_as_new()
            self._arm_timer()
            await workflow.wait_condition(
                lambda: bool(self.inbox or self.queued) or self.timer_fired or self.dirty or self._history_full()
            )
        self._cancel_timer()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return state

    def _history_full(self) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() >= self.max_history

    async def _continue_as_new(self) -> None:
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._cancel_timer()
        workflow.continue_as_new(
            JourneyInput(
                customer_id=self.state.customer_id,
                state=self.state,
                pending_events=self.inbox,
                max_history_length=self.max_history,
            )
        )

    async def _step(self) -> None:
        """Apply what arrived and what fell due, running effects until nothing more is due."""
        state = self.state
        self.dirty = False
        while True:
            ctx = self._policy()
            effects, self.queued = self.queued, []
            while self.inbox:
                raw = self.inbox.pop(0)
                try:
                    event = self._parse(raw)
                    if event.customer_id != state.customer_id:
                        raise EventError("customer_id", f"event for {event.customer_id} sent to {state.customer_id}")
                except EventError as err:
                    state.rejected_events += 1
                    state.last_rejection = str(err)[:300]
                    workflow.logger.warning("rejected event: %s", err)
                    continue
                applied = state.events_applied
                effects += policy.apply_event(state, ctx, event)
                if state.events_applied > applied:
                    self._counter("advocacy_events_applied", "events applied by journeys").add(1, {"type": event.type})
            if self.timer_fired:
                self.timer_fired, self.timer, self.timer_at = False, None, None
            effects += policy.advance(state, ctx)
            if not effects:
                break
            await self._run_effects(effects)
        self.wake = policy.next_wake(state, self._policy())
        state.ask_outlook = policy.plan_ask(state, self._policy()).why
        self._publish()

    def _parse(self, raw: Any) -> CustomerEvent:
        try:
            return parse_event(raw)
        except EventError as err:
            # Journeys that applied oversized text before the bounds existed replay as they ran.
            if not err.over_limit or workflow.patched(patches.BOUNDED_EVENT_TEXT):
                raise
            return parse_event(raw, bounded=False)

    def _policy(self) -> policy.Policy:
        """The policy's view of this moment; every fix it asks about is asked of `workflow.patched`."""
        assert self.pb is not None
        return policy.Policy(playbook=self.pb, now=workflow.now(), patched=self._patched)

    def _patched(self, name: str) -> bool:
        if name == patches.CUSTOMER_PREFERENCES:
            return self.preferences
        return self.at_start[name] if name in patches.AT_START else workflow.patched(name)

    def _ask_preferences_patch(self) -> None:
        """The policy asks about preferences only once a customer set some: in the `set_preferences` handler
        before its first await, or at the start of a run that carried them over, both before any local
        activity of their workflow task (see `run`). Journeys running before it honour them at once."""
        if not self.preferences:
            self.preferences = workflow.patched(patches.CUSTOMER_PREFERENCES)

    async def _run_effects(self, effects: list[policy.Effect]) -> None:
        pending = list(effects)
        while pending:
            effect = pending.pop(0)
            try:
                await self._execute(effect)
            except ActivityError as err:
                cause = err.cause
                message = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
                pending += policy.effect_failed(self.state, self._policy(), effect, message)
                continue
            policy.effect_done(self.state, self._policy(), effect)
            if isinstance(effect, policy.SendEmail) and effect.step == "invite" and effect.program:
                self._counter("advocacy_asks_sent", "ask emails sent").add(1, {"program": effect.program})

    async def _execute(self, effect: policy.Effect) -> None:
        cid = self.state.customer_id
        opts: dict[str, Any] = {"start_to_close_timeout": _TIMEOUT, "retry_policy": _RETRY}
        if isinstance(effect, policy.SendEmail):
            await workflow.execute_activity(
                "send_email",
                SendEmailInput(
                    idempotency_key=effect.key,
                    customer_id=cid,
                    template=effect.template,
                    to_email=effect.to_email,
                    locale=self.state.profile.locale or "en",
                    ask_id=effect.ask_id,
                    program=effect.program,
                    context=effect.context,
                ),
                result_type=SendEmailResult,
                summary=effect.summary,
                **opts,
            )
        elif isinstance(effect, policy.RecordAsk):
            summary = f"record {effect.ask.program} ask {effect.ask.ask_id} as {effect.ask.status}"
            await workflow.execute_activity(
                "record_ask", RecordAskInput(customer_id=cid, ask=effect.ask), summary=summary, **opts
            )
        elif isinstance(effect, policy.RecordReward):
            r = effect.reward
            summary = f"ledger: {r.reward_id} {r.amount:g} {r.currency} pending"
            await workflow.execute_activity(
                "record_reward", RecordRewardInput(customer_id=cid, reward=r), summary=summary, **opts
            )
        elif isinstance(effect, policy.SettleReward):
            summary = f"ledger: {effect.reward_id} -> {effect.status}"
            settle = SettleRewardInput(
                customer_id=cid, reward_id=effect.reward_id, status=effect.status, reason=effect.reason
            )
            await workflow.execute_activity("settle_reward", settle, summary=summary, **opts)
        elif isinstance(effect, policy.RecordReferral):
            summary = f"record referral {effect.referral.referral_id} ({effect.referral.status})"
            await workflow.execute_activity(
                "record_referral",
                RecordReferralInput(customer_id=cid, referral=effect.referral, referral_code=self.state.referral_code),
                summary=summary,
                **opts,
            )
        elif isinstance(effect, policy.RecordCustomer):
            await self._short_activity(
                "record_customer",
                RecordCustomerInput(
                    customer_id=cid, profile=self.state.profile, referral_code=self.state.referral_code
                ),
                summary=f"record profile of {cid}",
            )

    async def _short_activity(self, name: str, arg: Any, *, summary: str, result_type: type | None = None) -> Any:
        """Run a quick read or upsert as a local activity: no task-queue round trip and no extra
        workflow task, which is most of a journey's cost per event when customers arrive. Runs
        recorded before this change replay on the regular-activity path."""
        opts: dict[str, Any] = {"start_to_close_timeout": _TIMEOUT, "retry_policy": _RETRY, "summary": summary}
        if workflow.patched(patches.LOCAL_SETUP_ACTIVITIES):
            return await workflow.execute_local_activity(name, arg, result_type=result_type, **opts)
        return await workflow.execute_activity(name, arg, result_type=result_type, **opts)

    def _counter(self, name: str, description: str) -> MetricCounter:
        # The SDK drops workflow metrics while replaying, so each counts once.
        if name not in self.counters:
            self.counters[name] = workflow.metric_meter().create_counter(name, description)
        return self.counters[name]

    # ---- timer ----------------------------------------------------------------

    def _arm_timer(self) -> None:
        """One durable timer for the next due moment, kept while that moment stays the same."""
        if self.wake is None:
            self._cancel_timer()
            return
        now = workflow.now()
        at, why = self.wake
        if self.timer is not None and self.timer_at == iso(at):
            return
        self._cancel_timer()
        delay = max((at - now).total_seconds(), 1.0)
        self.timer_at = iso(at)
        self.timer = asyncio.create_task(self._sleep(delay, f"{why} (until {iso(at)})"))

    async def _sleep(self, seconds: float, summary: str) -> None:
        try:
            await workflow.sleep(seconds, summary=summary[:200])
        except asyncio.CancelledError:
            return
        self.timer_fired = True

    def _cancel_timer(self) -> None:
        if self.timer is not None and not self.timer.done():
            self.timer.cancel()
        self.timer, self.timer_at = None, None

    # ---- what ops see -----------------------------------------------------------

    def _publish(self) -> None:
        state = self.state
        attributes: dict[str, Any] = {
            "stage": (SA_STAGE, state.stage),
            "tier": (SA_TIER, state.tier),
            "score": (SA_SCORE, state.score),
            "nps": (SA_NPS, state.last_nps),
            "customer": (SA_CUSTOMER, state.customer_id),
        }
        if workflow.patched(patches.FLAGS_SEARCH_ATTRIBUTE):
            attributes["flags"] = (SA_FLAGS, policy.flags(state))
        updates = []
        for name, (key, value) in attributes.items():
            if value == [] and name not in self.published:
                continue  # no flags yet: nothing to index
            if value is not None and self.published.get(name) != value:
                self.published[name] = value
                updates.append(key.value_set(value))
        if updates:
            workflow.upsert_search_attributes(updates)
        workflow.set_current_details(self._details())

    def _details(self) -> str:
        s = self.state
        # Who the journey is for, in every run: a continued run has no static summary (the server keeps it on the
        # first run), and a profile may arrive after other events. Current details are no command: replay-safe.
        named = " · ".join(x for x in (s.profile.name, s.profile.company) if x)
        who = f"**{named}** (customer {s.customer_id})" if named else f"**customer {s.customer_id}** (no profile yet)"
        lines = [
            f"{who} — stage **{s.stage}**, tier **{s.tier}**, score **{s.score}**, last NPS **{s.last_nps}**",
        ]
        ask = policy.open_ask(s)
        if ask is not None:
            lines.append(f"Open ask: {ask.program} `{ask.ask_id}` ({ask.status}, sent {ask.sent_at})")
        if self.wake is not None:
            lines.append(f"Next: {self.wake[1]} at {iso(self.wake[0])}")
        if s.ask_outlook:
            lines.append(f"Asks: {s.ask_outlook}")
        pending = sum(r.status == "pending" for r in s.rewards)
        issued = sum(r.status == "issued" for r in s.rewards)
        lines.append(
            f"Completed: {sum(s.completed.values())} · rewards {pending} pending / {issued} issued · "
            f"referrals {len(s.referrals)} · events {s.events_applied}"
        )
        flags = [f for f, on in (("paused", s.paused), ("opted out", s.opted_out), ("at risk", s.at_risk_since)) if on]
        if flags:
            lines.append("Flags: " + ", ".join(flags))
        if s.last_error:
            lines.append(f"Last error: {s.last_error}")
        return "\n\n".join(lines)

    # ---- messages ---------------------------------------------------------------

    @workflow.signal(name=SIGNAL_EVENT)
    def customer_event(self, event: Any) -> None:
        self.inbox.append(event)

    @workflow.query(name=QUERY_STATE)
    def query_state(self) -> JourneyState:
        return self.state

    def _status(self) -> JourneyStatus:
        return JourneyStatus(stage=self.state.stage, paused=self.state.paused, opted_out=self.state.opted_out)

    def _refuse_if_ended(self) -> None:
        if self.state.churned:
            raise ApplicationError("the journey has ended: the customer churned", type="JourneyEnded")

    @workflow.update
    async def pause(self, input: PauseInput) -> JourneyStatus:
        self.state.paused = True
        self.dirty = True
        return self._status()

    @pause.validator
    def _validate_pause(self, input: PauseInput) -> None:
        self._refuse_if_ended()

    @workflow.update
    async def resume(self, input: PauseInput) -> JourneyStatus:
        self.state.paused = False
        self.dirty = True
        return self._status()

    @resume.validator
    def _validate_resume(self, input: PauseInput) -> None:
        self._refuse_if_ended()
        if self.state.opted_out:
            raise ApplicationError("the customer opted out: asks stay stopped for good", type="OptedOut")

    @workflow.update
    async def opt_out(self, input: OptOutInput) -> JourneyStatus:
        self.queued += policy.opt_out(self.state, workflow.now(), input.reason or "opted out by ops")
        if self.pb is not None:
            policy.refresh(self.state, self.pb)
        self.dirty = True
        return self._status()

    @opt_out.validator
    def _validate_opt_out(self, input: OptOutInput) -> None:
        self._refuse_if_ended()

    @workflow.update
    async def forget_referee(self, input: ForgetRefereeInput) -> int:
        """Right to erasure of a customer this advocate referred: returns how many referrals were scrubbed."""
        forgotten = policy.forget_referee(self.state, input.emails, input.placeholder)
        self.dirty = True
        return forgotten

    @workflow.update
    async def churn(self, input: ChurnInput) -> JourneyStatus:
        await workflow.wait_condition(lambda: self.pb is not None)
        self.queued += policy.churn(self.state, self._policy(), input.reason or "churned")
        self.dirty = True
        return self._status()

    @churn.validator
    def _validate_churn(self, input: ChurnInput) -> None:
        self._refuse_if_ended()

    @workflow.update
    async def email_feedback(self, input: EmailFeedbackInput) -> JourneyStatus:
        await workflow.wait_condition(lambda: self.pb is not None)
        self.queued += policy.email_feedback(self.state, self._policy(), input.kind, input.ask_id, input.reason)
        self.dirty = True
        return self._status()

    @email_feedback.validator
    def _validate_email_feedback(self, input: EmailFeedbackInput) -> None:
        self._refuse_if_ended()
        if input.kind not in policy.EMAIL_FEEDBACK_KINDS:
            raise ApplicationError(
                f"kind: must be one of {', '.join(policy.EMAIL_FEEDBACK_KINDS)}", type="InvalidFeedback"
            )

    @workflow.update
    async def answer_ask(self, input: AnswerAskInput) -> AnswerAskResult:
        """The customer accepted or declined an ask on their page. A new handler: no recorded journey ran it."""
        await workflow.wait_condition(lambda: self.pb is not None)
        ctx = self._policy()
        ask, effects = policy.answer_ask(self.state, ctx, input.ask_id, input.accepted)
        assert ask is not None  # the validator refused an unknown ask
        policy.refresh(self.state, ctx.playbook)
        self.queued += effects
        self.dirty = True
        return AnswerAskResult(ask_id=ask.ask_id, program=ask.program, status=ask.status, changed=bool(effects))

    @answer_ask.validator
    def _validate_answer_ask(self, input: AnswerAskInput) -> None:
        self._refuse_if_ended()
        if not isinstance(input.accepted, bool):
            raise ApplicationError("accepted: true or false", type="InvalidAnswer")
        refusal = policy.answer_refusal(self.state, input.ask_id, input.accepted)
        if refusal:
            raise ApplicationError(refusal, type="InvalidAnswer")

    @workflow.update
    async def submit_story(self, input: SubmitStoryInput) -> AnswerAskResult:
        """The advocate's story for a case-study ask, stored by the API: completes the ask once and tells the
        team. A new handler: no recorded journey ran it."""
        await workflow.wait_condition(lambda: self.pb is not None)
        ctx = self._policy()
        ask, effects = policy.story_submitted(self.state, ctx, input.ask_id)
        assert ask is not None  # the validator refused an unknown ask
        policy.refresh(self.state, ctx.playbook)
        self.queued += effects
        self.dirty = True
        return AnswerAskResult(ask_id=ask.ask_id, program=ask.program, status=ask.status, changed=bool(effects))

    @submit_story.validator
    def _validate_submit_story(self, input: SubmitStoryInput) -> None:
        self._refuse_if_ended()
        refusal = policy.story_refusal(self.state, input.ask_id)
        if refusal:
            raise ApplicationError(refusal, type="InvalidStory")

    @workflow.update
    async def set_preferences(self, input: SetPreferencesInput) -> SetPreferencesResult:
        """The customer's preferences from their page: the same ones twice change nothing twice."""
        self._ask_preferences_patch()
        await workflow.wait_condition(lambda: self.pb is not None)
        ctx = self._policy()
        wanted = Preferences(
            frequency=input.frequency, skip_programs=list(input.skip_programs), paused_until=input.paused_until
        )
        changed, effects = policy.set_preferences(self.state, ctx, wanted)
        self.state.ask_outlook = policy.plan_ask(self.state, ctx).why  # the page reads it back at once
        self.queued += effects
        self.dirty = True
        return SetPreferencesResult(preferences=self.state.preferences, changed=changed)

    @set_preferences.validator
    def _validate_set_preferences(self, input: SetPreferencesInput) -> None:
        self._refuse_if_ended()
        refusal = policy.preferences_refusal(
            input.frequency, input.skip_programs, input.paused_until, workflow.now(), PROGRAMS
        )
        if refusal:
            raise ApplicationError(refusal, type="InvalidPreferences")

    @workflow.update
    async def submit_referral(self, input: SubmitReferralInput) -> SubmitReferralResult:
        if workflow.patched(patches.SUBMIT_REFERRAL_DIRECT):
            # Applied through the policy itself: a refusal is answered with the policy's own reason, and
            # nothing waits for an event that might never be applied.
            await workflow.wait_condition(lambda: self.pb is not None)
            ctx = self._policy()
            referral, refusal, effects = policy.add_referral(
                self.state,
                ctx,
                referee_email=input.referee_email,
                referee_name=input.referee_name,
                referee_company=input.referee_company,
            )
            policy.refresh(self.state, ctx.playbook)
            self.queued += effects
            self.dirty = True
            if referral is None:
                raise ApplicationError(f"referral refused: {refusal}", type="ReferralRefused")
            return SubmitReferralResult(referral_id=referral.referral_id, status=referral.status)
        return await self._submit_referral_as_event(input)

    async def _submit_referral_as_event(self, input: SubmitReferralInput) -> SubmitReferralResult:
        """How journeys recorded before `submit-referral-direct` applied it: as a synthetic event."""
        info = workflow.current_update_info()
        event_id = f"update-{info.id if info else workflow.uuid4()}"
        self.inbox.append(
            {
                "event_id": event_id,
                "customer_id": self.state.customer_id,
                "type": "referral_submitted",
                "occurred_at": iso(workflow.now()),
                "data": {
                    "referee_email": input.referee_email.strip(),
                    "referee_name": input.referee_name,
                    "referee_company": input.referee_company,
                },
            }
        )
        await workflow.wait_condition(lambda: policy.seen(self.state, event_id))
        email = input.referee_email.strip().lower()
        referral = next((r for r in self.state.referrals if r.referee_email == email), None)
        if referral is None:
            raise ApplicationError(f"referral refused: {self.state.score_log[-1].reason}", type="ReferralRefused")
        return SubmitReferralResult(referral_id=referral.referral_id, status=referral.status)

    @submit_referral.validator
    def _validate_submit_referral(self, input: SubmitReferralInput) -> None:
        self._refuse_if_ended()
        if not isinstance(input.referee_email, str) or not EMAIL_RE.fullmatch(input.referee_email.strip()):
            raise ApplicationError("referee_email: not an email address", type="InvalidReferral")
        for field in ("referee_email", "referee_name", "referee_company"):
            value = getattr(input, field)
            if isinstance(value, str) and len(value) > TEXT_LIMITS[field]:
                raise ApplicationError(f"{field}: at most {TEXT_LIMITS[field]} characters", type="InvalidReferral")
        # Validators do not run on replay: today's rule applies. Before the playbook is loaded only the
        # self-referral rule can be asked; the handler asks the rest (duplicates, the daily cap) when it applies.
        if self.pb is None:
            refusal = policy.self_referral(self.state.profile.email, input.referee_email, policy.every_fix)
        else:
            ctx = policy.Policy(playbook=self.pb, now=workflow.now(), patched=policy.every_fix)
            refusal = policy.referral_refusal(self.state, input.referee_email, ctx)
        if refusal:
            raise ApplicationError(f"referee_email: {refusal}", type="InvalidReferral")
