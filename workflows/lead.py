"""LeadWorkflow: owns one lead's life: record receipt, first touch (email + SMS inside the recipient's
send window), then react to signals. A reply, an opt-out or a close stops every pending send.

Every signal carries a LeadEvent with an event id; the workflow records each event once on the
lead's timeline (idempotency key `{lead_id}:{signal}:{event_id}`) and ignores re-deliveries.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.lead import LeadActivities
    from core import search_attributes as sa
    from models.payloads import (
        LeadEvent,
        MessageRequest,
        LeadState,
        LeadStatusInput,
        LeadWorkflowInput,
        LeadWorkflowResult,
        TimelineEntryInput,
    )

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
_KINDS = {**LEAD_SIGNALS, "submitted": "lead.duplicate_received"}
# Bound on remembered event ids; older ids are still deduplicated by the timeline's unique key.
_SEEN_LIMIT = 500
# The built-in first touch (speed to lead). Its idempotency keys follow
# {subject}:{definition}:{version}:{step}, so a duplicate start never sends twice.
FIRST_TOUCH = "builtin-first-touch"
FIRST_TOUCH_VERSION = 1
FIRST_TOUCH_STEPS = (("email", "welcome"), ("sms", "first_touch"))

DB_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                       maximum_interval=timedelta(seconds=30))


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
        if not self._cadence_done and workflow.patched("first-touch-v1"):
            self._cadence = asyncio.create_task(self._send_first_touch())

        while True:
            await workflow.wait_condition(lambda: bool(self._pending) or workflow.info().is_continue_as_new_suggested())
            while self._pending:
                name, event = self._pending.pop(0)
                await self._apply(name, event)
            if self._closed:
                break
            if workflow.info().is_continue_as_new_suggested() and self._cadence_finished():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self._carry_over())

        if self._cadence:
            await self._cadence
        await workflow.wait_condition(workflow.all_handlers_finished)
        return LeadWorkflowResult(lead_id=input.lead_id, status=self._status, events=len(self._seen))

    def _cadence_finished(self) -> bool:
        return self._cadence is None or self._cadence.done()

    async def _send_first_touch(self) -> None:
        """Welcome email and first SMS in parallel; each waits for the recipient's send window."""
        lead_id = self._input.lead_id
        requests = [MessageRequest(tenant_id=self._input.tenant_id, lead_id=lead_id, channel=channel,
                                   template=template,
                                   idempotency_key=f"{lead_id}:{FIRST_TOUCH}:{FIRST_TOUCH_VERSION}:{template}")
                    for channel, template in FIRST_TOUCH_STEPS]
        results = await asyncio.gather(*(deliver(r, lambda: self._cadence_stopped) for r in requests))
        self._first_touch = {r.template: res.status for r, res in zip(requests, results, strict=True)}
        self._cadence_done = True

    async def _apply(self, name: str, event: LeadEvent) -> None:
        kind = _KINDS[name]
        summary = event.note or kind.replace("lead.", "").replace("_", " ").capitalize()
        await self._record(kind, f"{self._input.lead_id}:{name}:{event.event_id}", summary=summary,
                           data=event.data, actor=event.actor)
        if name in ("replied", "opted_out", "close"):
            self._cadence_stopped = True  # pause on reply; never message after an opt-out
        if name == "close" and not self._closed:
            self._closed = True
            await self._set_status("dead", event.note or "closed", event.actor)

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
        )

    async def _set_status(self, status: str, reason: str, actor: str) -> None:
        await workflow.execute_activity_method(
            LeadActivities.set_lead_status,
            LeadStatusInput(tenant_id=self._input.tenant_id, lead_id=self._input.lead_id, status=status,
                            reason=reason, actor=actor),
            start_to_close_timeout=timedelta(seconds=15),
            retry_policy=DB_RETRY,
        )
        self._status = status
        workflow.upsert_search_attributes([sa.LEAD_STATUS.value_set(status)])

    def _accept(self, name: str, event: LeadEvent) -> None:
        if event.event_id in self._seen or self._closed:
            workflow.logger.info("ignoring %s %s (duplicate or closed)", name, event.event_id)
            return
        self._seen.append(event.event_id)
        del self._seen[:-_SEEN_LIMIT]
        if name in ("replied", "opted_out", "close"):
            self._cadence_stopped = True  # at once, even before the event is recorded
        self._pending.append((name, event))

    def _carry_over(self) -> LeadWorkflowInput:
        return self._input.model_copy(update={"status": self._status, "received": self._received,
                                              "seen_event_ids": self._seen, "cadence_done": self._cadence_done,
                                              "cadence_stopped": self._cadence_stopped})

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
    def duplicate_received(self, event: LeadEvent) -> None:
        self._accept("duplicate_received", event)

    @workflow.signal
    def close(self, event: LeadEvent) -> None:
        self._accept("close", event)

    @workflow.query
    def state(self) -> LeadState:
        if self._closed:
            next_action = "none (closed)"
        elif not self._received:
            next_action = "record lead.received"
        elif self._cadence and not self._cadence.done():
            next_action = "first touch: welcome email and SMS inside the recipient's send window"
        else:
            next_action = "waiting for replies, notes or staff actions"
        return LeadState(lead_id=self._input.lead_id, status=self._status, received=self._received,
                         events=len(self._seen), closed=self._closed, next_action=next_action,
                         cadence_stopped=self._cadence_stopped, cadence_done=self._cadence_done,
                         first_touch=self._first_touch)
