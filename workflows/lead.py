"""LeadWorkflow: owns one lead's life. In this first slice: record receipt, then react to signals.

Every signal carries a LeadEvent with an event id; the workflow records each event once on the
lead's timeline (idempotency key `{lead_id}:{signal}:{event_id}`) and ignores re-deliveries.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.lead import LeadActivities
    from core import search_attributes as sa
    from models.payloads import (
        LeadEvent,
        LeadState,
        LeadStatusInput,
        LeadWorkflowInput,
        LeadWorkflowResult,
        TimelineEntryInput,
    )

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

        while True:
            await workflow.wait_condition(lambda: bool(self._pending) or workflow.info().is_continue_as_new_suggested())
            while self._pending:
                name, event = self._pending.pop(0)
                await self._apply(name, event)
            if self._closed:
                break
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self._carry_over())

        await workflow.wait_condition(workflow.all_handlers_finished)
        return LeadWorkflowResult(lead_id=input.lead_id, status=self._status, events=len(self._seen))

    async def _apply(self, name: str, event: LeadEvent) -> None:
        kind = _KINDS[name]
        summary = event.note or kind.replace("lead.", "").replace("_", " ").capitalize()
        await self._record(kind, f"{self._input.lead_id}:{name}:{event.event_id}", summary=summary,
                           data=event.data, actor=event.actor)
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
        self._pending.append((name, event))

    def _carry_over(self) -> LeadWorkflowInput:
        return self._input.model_copy(update={"status": self._status, "received": self._received,
                                              "seen_event_ids": self._seen})

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
        else:
            next_action = "waiting for replies, notes or staff actions"
        return LeadState(lead_id=self._input.lead_id, status=self._status, received=self._received,
                         events=len(self._seen), closed=self._closed, next_action=next_action)
