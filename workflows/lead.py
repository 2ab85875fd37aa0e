"""LeadWorkflow: owns one lead's life, from intake to deal.

receipt → enrichment (child workflow) → score (with reasons; written with a `lead.scored` event) → call
task for hot leads → waits for signals (replied, opted_out, note, close, merged, further submissions) and
updates (set_status with a validator, convert → opportunity + DealWorkflow). It sends no messages: the
first touch and every cadence are published definitions (the shipped speed-to-lead starts from
lead.scored; a tenant can retire or replace it). Continues-as-new whenever Temporal suggests it.

Running code changes are guarded with workflow.patched: leads started before the lifecycle ("lifecycle-v2")
only record events; leads that passed scoring before "first-touch-by-definition" run the old built-in
cadence (welcome email + first SMS inside the send window, 2 days' wait for a reply, SMS nudge) to its end,
also across continue-as-new. tests/histories holds recorded histories of each version that must keep
replaying.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.lead import LeadActivities
    from core import search_attributes as sa
    from models.lead import status_change_problem
    from models.payloads import (
        ConvertInput,
        ConvertResult,
        EnrichmentInput,
        EnrichmentResult,
        LeadEvent,
        LeadState,
        LeadStatusInput,
        LeadWorkflowInput,
        LeadWorkflowResult,
        MessageRequest,
        ScoreInput,
        ScoreResult,
        StatusChange,
        TaskInput,
        TimelineEntryInput,
    )

from workflows.deal import DealInput, DealWorkflow
from workflows.enrichment import EnrichmentWorkflow
from workflows.messaging import deliver

# Signals the API may send to a LeadWorkflow (POST /workflows/{id}/signals/{name}) and the
# timeline entry each one records.
LEAD_SIGNALS = {
    "replied": "lead.replied",
    "opted_out": "lead.opted_out",
    "note": "lead.note",
    "close": "lead.closed",
}
# Every submission of the lead (POST /leads, lead-source webhooks) arrives by signal-with-start of
# `submitted`: the first one (event_id == lead_id) is the lead's own receipt, later ones are
# duplicates submitted again and recorded as such.
# `merged`: the lead turned out to be a second "original" of a person (stored before the database enforced one
# original per person); the migration linked it to the earliest, whose workflow carries on alone.
_KINDS = {**LEAD_SIGNALS, "submitted": "lead.duplicate_received", "merged": "lead.merged"}
_STOPPERS = {"replied", "opted_out", "close", "merged"}
# Bound on remembered event ids; older ids are still deduplicated by the timeline's unique key.
_SEEN_LIMIT = 500
FIRST_TOUCH_STEPS = (("email", "welcome"), ("sms", "first_touch"))
# The built-in cadence of leads started before "first-touch-by-definition" (its runs finish it).
# Idempotency keys follow {subject}:{definition}:{version}:{step}.
CADENCE = "builtin-cadence"
CADENCE_VERSION = 1
REPLY_WAIT = timedelta(days=2)
HOT_SCORE = 0.7

DB_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                       maximum_interval=timedelta(seconds=30))
# A database or model-store hiccup is retried for about a quarter of an hour (2 s doubling to 1 min, 20
# attempts): minutes, not seconds. Only poison input (NotFound, BadFeatures) ends in needs_review at once.
SCORE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=1),
                          maximum_attempts=20, non_retryable_error_types=["NotFound", "BadFeatures"])
# score_lead heartbeats while it runs (a cold-start model may train for a while): an attempt lost with a killed
# worker is retried after this, not after the two-minute start-to-close timeout, so the first touch is late by
# seconds.
SCORE_HEARTBEAT = timedelta(seconds=10)


WORKFLOW_CLOSED = "the lead's workflow is closed"  # the set_status validator's answer once the lead is closed


@workflow.defn
class LeadWorkflow:
    @workflow.init
    def __init__(self, input: LeadWorkflowInput) -> None:
        self._input = input
        self._status = input.status
        self._received = input.received
        self._seen: list[str] = list(input.seen_event_ids)
        self._pending: list[tuple[str, LeadEvent]] = []
        self._closed = False
        self._submission: LeadEvent | None = None
        self._cadence_stopped = input.cadence_stopped
        self._cadence_done = input.cadence_done
        self._cadence: asyncio.Task | None = None
        self._first_touch: dict[str, str] = {}
        self._lifecycle = False  # True when this run follows the lifecycle-v2 code path
        self._step = "receipt"
        self._next_action = "record lead.received"
        self._score: ScoreResult | None = None
        self._enrichment: EnrichmentResult | None = None
        self._merged_into: str | None = None
        self._opportunity_id: str | None = None
        self._reply_deadline = input.reply_wait_until  # set while the cadence waits for a reply
        self._resumed_score = input.score
        if input.first_touch:
            self._first_touch = dict(input.first_touch)
        self._pending.extend(input.pending)  # signals the previous run accepted but had not applied

    @workflow.run
    async def run(self, input: LeadWorkflowInput) -> LeadWorkflowResult:
        if not input.tenant_id or not input.lead_id:
            raise ApplicationError("lead workflow needs tenant_id and lead_id", non_retryable=True)
        if not self._received:
            data = {"source": input.source, **(self._submission.data if self._submission else {})}
            await self._record(
                "lead.received", f"{input.lead_id}:lead.received",
                summary=f"Lead received from {input.source.replace('_', ' ')}", data=data,
                actor=self._submission.actor if self._submission else "system",
            )
            self._received = True
        if not self._cadence_done:
            if workflow.patched("lifecycle-v2"):
                self._lifecycle = True
                self._cadence = asyncio.create_task(self._run_lifecycle())
        else:
            self._lifecycle = workflow.patched("lifecycle-v2")
            self._set_waiting()

        while True:
            await workflow.wait_condition(lambda: bool(self._pending) or self._closed or self._may_continue())
            while self._pending:
                name, event = self._pending.pop(0)
                await self._apply(name, event)
            if self._closed:
                break
            if self._may_continue():
                await self._continue_as_new()

        if self._cadence and not self._cadence.done():
            self._cadence.cancel()  # closed, converted or merged: nothing left of the cadence matters
            try:
                await self._cadence
            except asyncio.CancelledError:
                pass
        await workflow.wait_condition(workflow.all_handlers_finished)
        return LeadWorkflowResult(lead_id=input.lead_id, status=self._status, events=len(self._seen))

    # -- the lifecycle ---------------------------------------------------------------------------------

    async def _run_lifecycle(self) -> None:
        if self._reply_deadline is not None:  # continued as new while waiting for a reply: wait on
            return await self._wait_for_reply_then_nudge(self._reply_deadline)
        lead_id, tenant_id = self._input.lead_id, self._input.tenant_id
        self._step, self._next_action = "enrichment", "enrich contact, address and property"
        workflow.set_current_details("Enrichment: contact, address and property")
        try:
            self._enrichment = await workflow.execute_child_workflow(
                EnrichmentWorkflow.run, EnrichmentInput(tenant_id=tenant_id, lead_id=lead_id),
                id=f"enrich-{tenant_id}-{lead_id}",
                search_attributes=self._attributes())
        except ChildWorkflowError as exc:
            if not self._closed:  # cancelled because the lead closed is not the lead's fault
                await self._needs_review(f"enrichment failed: {exc.cause}")
            return self._finish_cadence()
        if self._enrichment.duplicate_of:
            await self._hand_over(self._enrichment.duplicate_of)
            return self._finish_cadence()

        self._step, self._next_action = "scoring", "score the lead"
        workflow.set_current_details("Scoring")
        # Since "first-touch-by-definition" the score is also the `lead.scored` event the published first-touch
        # definition (speed-to-lead, or one that replaces it) starts from; this workflow sends nothing itself.
        by_definition = workflow.patched("first-touch-by-definition")
        if not await self._rescore("intake", event_id="intake" if by_definition else None):
            return self._finish_cadence()
        if self._score and self._score.probability >= HOT_SCORE and not self._cadence_stopped:
            reasons = "; ".join(r["text"] for r in self._score.reasons[:3])
            await workflow.execute_activity(
                "create_task", TaskInput(tenant_id=tenant_id, lead_id=lead_id, due_in_hours=1,
                                         title=f"Call now: hot lead ({self._score.probability:.0%})",
                                         description=reasons, idempotency_key=self._key("call_task")),
                result_type=str, start_to_close_timeout=timedelta(seconds=30), retry_policy=DB_RETRY,
                summary=f"call-now task ({self._score.probability:.0%})")
        if by_definition:
            return self._finish_cadence()

        self._step, self._next_action = "first_touch", "welcome email and first SMS inside the send window"
        workflow.set_current_details("First touch: welcome email and first SMS inside the send window")
        welcome = [MessageRequest(tenant_id=tenant_id, lead_id=lead_id, channel=channel, template=template,
                                  idempotency_key=self._key(template)) for channel, template in FIRST_TOUCH_STEPS]
        results = await asyncio.gather(*(deliver(r, self._stopped) for r in welcome))
        self._first_touch = {r.template: res.status for r, res in zip(welcome, results, strict=True)}
        if self._status == "new" and "sent" in self._first_touch.values() and not self._cadence_stopped \
                and not self._closed:
            await self._set_status("contacted", "first touch sent", "workflow")

        await self._wait_for_reply_then_nudge(workflow.now() + REPLY_WAIT)

    async def _wait_for_reply_then_nudge(self, deadline) -> None:
        lead_id, tenant_id = self._input.lead_id, self._input.tenant_id
        if not self._cadence_stopped:
            self._step, self._reply_deadline = "wait_for_reply", deadline
            self._next_action = f"wait for a reply until {deadline:%Y-%m-%d %H:%M} UTC, then SMS nudge_1"
            workflow.set_current_details(f"Waiting for a reply until {deadline:%Y-%m-%d %H:%M} UTC, then SMS nudge")
            try:
                await workflow.wait_condition(self._stopped, timeout=max(deadline - workflow.now(), timedelta(0)),
                                              timeout_summary="wait 2 days for a reply before the SMS nudge")
            except TimeoutError:
                self._reply_deadline = None
                self._step, self._next_action = "nudge", "SMS nudge inside the send window"
                nudge = MessageRequest(tenant_id=tenant_id, lead_id=lead_id, channel="sms", template="nudge_1",
                                       idempotency_key=self._key("nudge_1"))
                self._first_touch["nudge_1"] = (await deliver(nudge, self._stopped)).status
            self._reply_deadline = None
        self._finish_cadence()

    def _attributes(self) -> TypedSearchAttributes:
        return TypedSearchAttributes([SearchAttributePair(sa.TENANT_ID, self._input.tenant_id),
                                      SearchAttributePair(sa.LEAD_ID, self._input.lead_id)])

    def _key(self, step: str) -> str:
        return f"{self._input.lead_id}:{CADENCE}:{CADENCE_VERSION}:{step}"

    def _stopped(self) -> bool:
        return self._cadence_stopped

    def _finish_cadence(self) -> None:
        self._cadence_done = True
        self._set_waiting()

    def _set_waiting(self) -> None:
        self._step = "done" if not self._closed else "closed"
        self._next_action = "none (closed)" if self._closed else "waiting for replies, notes or staff actions"
        workflow.set_current_details(f"Status {self._status}: {self._next_action}")

    async def _rescore(self, reason: str, event_id: str | None = None) -> bool:
        try:
            self._score = await workflow.execute_activity(
                "score_lead", ScoreInput(tenant_id=self._input.tenant_id, lead_id=self._input.lead_id, reason=reason,
                                         event_id=event_id, stopped=self._cadence_stopped),
                result_type=ScoreResult, start_to_close_timeout=timedelta(minutes=2), retry_policy=SCORE_RETRY,
                heartbeat_timeout=SCORE_HEARTBEAT,
                summary=f"score ({reason})")
        except ActivityError as exc:
            if not self._closed:
                await self._needs_review(f"scoring failed: {exc.cause}")
            return False
        workflow.upsert_search_attributes([sa.LEAD_SCORE.value_set(self._score.probability)])
        return True

    async def _needs_review(self, reason: str) -> None:
        """Poison input ends here: a visible status with the reason, no retry loop, no messages."""
        workflow.logger.warning("lead %s needs review: %s", self._input.lead_id, reason)
        self._cadence_stopped = True
        if self._status != "needs_review" and not self._closed:
            await self._set_status("needs_review", reason[:500], "workflow")

    async def _hand_over(self, original_id: str) -> None:
        """Enrichment found this is the same person as an earlier lead: the original's workflow takes over."""
        self._merged_into = original_id
        self._cadence_stopped = True
        original = workflow.get_external_workflow_handle(f"lead-{self._input.tenant_id}-{original_id}")
        try:
            await original.signal("submitted", LeadEvent(
                event_id=self._input.lead_id, actor="workflow", note=f"Same person as {self._input.lead_id} "
                "(found by enrichment)", data={"lead_id": self._input.lead_id, "source": self._input.source}))
        except ApplicationError as exc:  # the original's workflow is closed: nothing to hand over to
            workflow.logger.info("original %s not running: %s", original_id, exc)
        self._closed = True

    def _cadence_finished(self) -> bool:
        return self._cadence is None or self._cadence.done()

    def _may_continue(self) -> bool:
        """Temporal suggests continue-as-new and the run is at a point it can be carried from: the cadence is
        over, or it is waiting for a reply (the new run resumes that wait). Anywhere else (an activity or a
        child in flight) the run waits for such a point instead of spinning on the suggestion."""
        return workflow.info().is_continue_as_new_suggested() and (
            self._cadence_finished() or self._reply_deadline is not None)

    async def _continue_as_new(self) -> None:
        await workflow.wait_condition(workflow.all_handlers_finished)
        if not self._may_continue():  # the reply wait ended meanwhile (the nudge is on its way): later
            return
        if self._cadence and not self._cadence.done():  # waiting for a reply: the new run takes the wait over
            self._cadence.cancel()
            try:
                await self._cadence
            except asyncio.CancelledError:
                pass
        workflow.continue_as_new(self._carry_over())

    # -- signals, updates, queries ------------------------------------------------------------------

    async def _apply(self, name: str, event: LeadEvent) -> None:
        kind = _KINDS[name]
        summary = event.note or kind.replace("lead.", "").replace("_", " ").capitalize()
        await self._record(kind, f"{self._input.lead_id}:{name}:{event.event_id}", summary=summary,
                           data=event.data, actor=event.actor)
        if name in _STOPPERS:
            self._cadence_stopped = True  # pause on reply; never message after an opt-out
        if name == "replied" and self._lifecycle:
            # A reply is the strongest signal there is; the new score reaches definitions as lead.scored.
            await self._rescore("engagement", f"engagement:{event.event_id}"
                                if workflow.patched("first-touch-by-definition") else None)
        if name == "close" and not self._closed:
            self._closed = True
            await self._set_status("dead", event.note or "closed", event.actor)
        if name == "merged":
            self._merged_into = str(event.data.get("original") or "") or None
            self._closed = True

    async def _record(self, kind: str, key: str, *, summary: str, data: dict, actor: str = "system") -> None:
        await workflow.execute_activity_method(
            LeadActivities.record_timeline_entry,
            TimelineEntryInput(
                tenant_id=self._input.tenant_id, lead_id=self._input.lead_id, kind=kind, summary=summary,
                data=data, actor=actor, workflow_id=workflow.info().workflow_id, idempotency_key=key,
                occurred_at=workflow.now(),
            ),
            start_to_close_timeout=timedelta(seconds=15),
            retry_policy=DB_RETRY,
            summary=f"timeline {kind}",
        )

    async def _set_status(self, status: str, reason: str, actor: str) -> None:
        await workflow.execute_activity_method(
            LeadActivities.set_lead_status,
            LeadStatusInput(tenant_id=self._input.tenant_id, lead_id=self._input.lead_id, status=status,
                            reason=reason, actor=actor),
            start_to_close_timeout=timedelta(seconds=15),
            retry_policy=DB_RETRY,
            summary=f"status {status}",
        )
        self._status = status
        workflow.upsert_search_attributes([sa.LEAD_STATUS.value_set(status)])

    def _accept(self, name: str, event: LeadEvent) -> None:
        if event.event_id in self._seen or self._closed:
            workflow.logger.info("ignoring %s %s (duplicate or closed)", name, event.event_id)
            return
        self._seen.append(event.event_id)
        del self._seen[:-_SEEN_LIMIT]
        if name in _STOPPERS:
            self._cadence_stopped = True  # at once, even before the event is recorded
        self._pending.append((name, event))

    def _carry_over(self) -> LeadWorkflowInput:
        waiting = not self._cadence_done and self._reply_deadline is not None
        return self._input.model_copy(update={
            "status": self._status, "received": self._received, "seen_event_ids": self._seen,
            "cadence_done": self._cadence_done, "cadence_stopped": self._cadence_stopped,
            "reply_wait_until": self._reply_deadline if waiting else None, "first_touch": self._first_touch,
            "score": self._score.probability if self._score else self._resumed_score,
            "pending": list(self._pending)})

    @workflow.signal
    def submitted(self, event: LeadEvent) -> None:
        if event.event_id == self._input.lead_id:
            if self._submission is None and not self._received:
                self._submission = event
            return
        self._accept("submitted", event)

    @workflow.signal
    def replied(self, event: LeadEvent) -> None:
        self._accept("replied", event)

    @workflow.signal
    def opted_out(self, event: LeadEvent) -> None:
        self._accept("opted_out", event)

    @workflow.signal
    def note(self, event: LeadEvent) -> None:
        self._accept("note", event)

    @workflow.signal
    def close(self, event: LeadEvent) -> None:
        self._accept("close", event)

    @workflow.signal
    def merged(self, event: LeadEvent) -> None:
        self._accept("merged", event)

    @workflow.update
    async def set_status(self, change: StatusChange) -> LeadState:
        if change.status in ("dead", "needs_review"):
            self._cadence_stopped = True
        await self._set_status(change.status, change.reason or f"set by {change.actor}", change.actor)
        return self.state()

    @set_status.validator
    def _check_status(self, change: StatusChange) -> None:
        if self._closed:
            raise ValueError(WORKFLOW_CLOSED)
        problem = status_change_problem(self._status, change.status)
        if problem:
            raise ValueError(problem)

    @workflow.update
    async def convert(self, request: ConvertInput) -> ConvertResult:
        self._cadence_stopped = True
        opened = await workflow.execute_activity(
            "open_opportunity", {"tenant_id": self._input.tenant_id, "lead_id": self._input.lead_id,
                                 "convert": request.model_dump()},
            result_type=dict, start_to_close_timeout=timedelta(seconds=30), retry_policy=DB_RETRY)
        deal_id = f"deal-{self._input.tenant_id}-{opened['opportunity_id']}"
        try:
            await workflow.start_child_workflow(
                DealWorkflow.run, DealInput(tenant_id=self._input.tenant_id, opportunity_id=opened["opportunity_id"],
                                            pipeline=opened["pipeline"], stage=opened["stage"]),
                id=deal_id, parent_close_policy=ParentClosePolicy.ABANDON,
                search_attributes=self._attributes())
        except WorkflowAlreadyStartedError:
            pass  # converted before (a retried update): the deal workflow is already running
        self._opportunity_id = opened["opportunity_id"]
        self._status = "converted"
        workflow.upsert_search_attributes([sa.LEAD_STATUS.value_set("converted")])
        self._closed = True
        return ConvertResult(opportunity_id=opened["opportunity_id"], deal_workflow_id=deal_id)

    @convert.validator
    def _check_convert(self, request: ConvertInput) -> None:
        if self._closed or self._status in ("converted", "dead", "needs_review"):
            raise ValueError(f"a {self._status} lead cannot be converted"
                             + (" (reopen it first)" if self._status == "dead" else ""))

    @workflow.query
    def state(self) -> LeadState:
        if self._closed:
            next_action = "none (closed)"
        elif not self._received:
            next_action = "record lead.received"
        elif self._cadence and not self._cadence.done():
            next_action = self._next_action
        else:
            next_action = "waiting for replies, notes or staff actions"
        return LeadState(lead_id=self._input.lead_id, status=self._status, received=self._received,
                         events=len(self._seen), closed=self._closed, next_action=next_action,
                         cadence_stopped=self._cadence_stopped, cadence_done=self._cadence_done,
                         first_touch=self._first_touch, step=self._step if self._lifecycle else None,
                         score=self._score.probability if self._score else self._resumed_score,
                         merged_into=self._merged_into, opportunity_id=self._opportunity_id)
