"""The relay: drains the event outbox into Temporal, at least once, in order per subject.

Runs in the worker process (several workers may run it at once). It lists the subjects with undelivered
events, oldest first, and delivers each subject's events in a thread of its own (up to `concurrency` at
once, a free thread taking the next subject at once) while it holds that subject's claim: on Postgres a
transaction-scoped advisory lock (`pg_try_advisory_xact_lock`, the lock-free variant of FOR UPDATE SKIP
LOCKED for a key rather than a row), so no two relays deliver one subject's events at the same time; on
SQLite there is one relay (`dealflow up` runs one worker).

Delivering an event means: the subject's own workflow hears it when the event names a signal (signal-with-start
of LeadWorkflow for a lead's first event, a plain signal otherwise; a closed workflow is not restarted; a
document's events go to its DocumentSigningWorkflow, which `document.requested` starts), then
the published definitions it triggers start and the running ones hear it (events/enrollment.py). Both are
idempotent by event id (workflows dedupe signals on it, definition runs have deterministic ids), so a relay
killed between the Temporal call and the commit of `delivered_at` delivers again and nothing happens twice.

Failures: Temporal or the database unreachable is transient — the event stays first in line, its subject
waits, the whole relay backs off and retries for as long as it takes (never parked). Anything else is the
event's own fault: it is retried with backoff and parked after `relay_max_attempts` with its error, visible
and re-drivable (GET /api/v1/events?state=parked, `dealflow events`), and it never holds back the later
events of its subject (an opt-out must not wait behind a poison event).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from contextlib import nullcontext
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, bindparam, func, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session, col, select
from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy, WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from core import search_attributes as sa
from core.metrics import EVENT_DELIVERY_LATENCY, EVENTS_DELIVERED
from core.tracing import resumed_trace
from models.base import utcnow
from models.document import Document, signing_workflow_id
from models.event import (
    ACCREDITATION_RECORDED_EVENT, DEAL_OPENED_EVENT, OFFERING_OPENED_EVENT, STAFF_MESSAGE_EVENT, Event,
)
from models.lead import Lead, LeadStatus, lead_workflow_id
from models.payloads import LeadEvent, LeadWorkflowInput, MessageRequest
from models.signing import REQUESTED_EVENT as SIGNING_REQUESTED
from models.signing import DEAL_EVENTS, SigningInput
from providers.esign.base import ProviderEvent
from definitions.language import ENROLL_REQUESTED, REMOVED
from services.definition_store import active

log = logging.getLogger("dealflow.relay")

RPC_TIMEOUT = timedelta(seconds=10)

TRANSIENT_RPC = {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED,
                 RPCStatusCode.CANCELLED, RPCStatusCode.UNKNOWN, RPCStatusCode.ABORTED, RPCStatusCode.INTERNAL}


class TemporalUnavailable(Exception):
    """Temporal (or the database) did not answer: retry the subject later, in order, without counting.
    `delivered`: the events of the batch delivered (and committed) before it happened."""

    def __init__(self, message: str, delivered: int = 0) -> None:
        super().__init__(message)
        self.delivered = delivered


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, RPCError):
        return exc.status in TRANSIENT_RPC
    return isinstance(exc, (TimeoutError, concurrent.futures.TimeoutError, ConnectionError, OperationalError,
                            TemporalUnavailable)) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


class _BrokenTransaction(Exception):
    """A delivery failed without a savepoint around it: the batch was rolled back, to be delivered again with
    one savepoint per event."""


class Relay:
    def __init__(self, engine: Engine, client: Client, task_queue: str, *, poll_seconds: float = 0.2,
                 concurrency: int = 16, max_attempts: int = 5, batch: int = 200, claim: int = 8,
                 hold_file: Path | None = None) -> None:
        self._engine, self._client, self._queue = engine, client, task_queue
        self._poll, self._max_attempts, self._batch = poll_seconds, max_attempts, batch
        self._concurrency, self._claim = concurrency, claim
        self._hold_file = hold_file  # tests only: wait here, between Temporal and the commit, while it exists
        self._postgres = engine.dialect.name == "postgresql"
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=concurrency,
                                                               thread_name_prefix="relay")
        self._scanner = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-scan")
        self._loop: asyncio.AbstractEventLoop | None = None
        self.delivered = 0

    # -- the loop --------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set. Never raises: an outage is waited out with backoff.

        Streamed, not in passes: up to `concurrency` subjects are delivered at once, and a free slot takes the
        next due subject at once instead of waiting for the slowest subject of a pass (which held events of
        other subjects back for seconds). The outbox is scanned again when the subjects found last are used up,
        or every `poll_seconds` while slots are free."""
        self._loop = loop = asyncio.get_running_loop()
        pause, queue, last_scan, productive = self._poll, [], 0.0, True
        busy: dict[asyncio.Future, tuple[str, str]] = {}
        stopping = asyncio.ensure_future(stop.wait())
        log.info("event relay started (%s)", "per-subject advisory locks" if self._postgres else "single relay")
        try:
            while not stop.is_set():
                free = self._concurrency - len(busy)
                if free and not queue and (productive or time.monotonic() - last_scan >= pause):
                    try:
                        found = await loop.run_in_executor(self._scanner, self._due_subjects)
                    except Exception as exc:  # noqa: BLE001 - the database is down: wait it out
                        pause = _backoff(pause)
                        log.warning("relay: cannot read the outbox (%s: %s); retrying in %.0f s",
                                    type(exc).__name__, exc, pause)
                        await _sleep(stop, pause)
                        continue
                    in_flight = {subject for subjects in busy.values() for subject in subjects}
                    queue = [subject for subject in found if subject not in in_flight]
                    last_scan, productive = time.monotonic(), False
                while queue and len(busy) < self._concurrency:
                    # A subject per thread while few are due (the lowest latency); under a backlog up to
                    # `claim` subjects per thread and transaction (the least work per event).
                    take = min(self._claim, max(1, -(-len(queue) // (self._concurrency - len(busy)))))
                    subjects, queue = queue[:take], queue[take:]
                    busy[loop.run_in_executor(self._executor, self._deliver_subjects, subjects)] = subjects
                if not busy:
                    await _sleep(stop, pause)  # nothing due
                    continue
                wake = None if queue else max(pause - (time.monotonic() - last_scan), 0.01)
                done, _ = await asyncio.wait([*busy, stopping], timeout=wake, return_when=asyncio.FIRST_COMPLETED)
                delivered, unavailable = 0, None
                for future in done:
                    if future is stopping:
                        continue
                    busy.pop(future)
                    failure = future.exception()
                    if failure is None:
                        delivered += future.result()
                    elif is_transient(failure):
                        unavailable = failure
                        delivered += getattr(failure, "delivered", 0)  # committed before the failure
                    else:
                        log.error("relay: delivering a subject failed: %r", failure)
                self.delivered += delivered
                if delivered:
                    productive, pause = True, self._poll
                elif unavailable is not None:  # Temporal (or the database) is down: back off, keep the order
                    pause = _backoff(pause)
                    queue.clear()
                    log.warning("relay: Temporal unavailable (%s); retrying in %.0f s",
                                str(unavailable) or type(unavailable).__name__, pause)
                    await _sleep(stop, pause)
        finally:
            stopping.cancel()
            for future in busy:
                future.cancel()
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._scanner.shutdown(wait=True, cancel_futures=True)

    def _due_subjects(self) -> list[tuple[str, str]]:
        with Session(self._engine) as session:
            first = func.min(Event.seq)
            rows = session.exec(
                select(Event.subject_type, Event.subject_id, first)
                .where(col(Event.delivered_at).is_(None), col(Event.parked_at).is_(None),
                       col(Event.next_attempt_at) <= utcnow())
                .group_by(Event.subject_type, Event.subject_id)
                .order_by(first).limit(self._concurrency * self._claim)).all()
            return [(kind, subject_id) for kind, subject_id, _ in rows]

    # -- one subject (in a relay thread) ---------------------------------------------------------------

    def _call(self, coroutine_function, *args, **kwargs):
        """Run a Temporal call on the worker's event loop from this relay thread."""
        future = asyncio.run_coroutine_threadsafe(coroutine_function(*args, **kwargs), self._loop)
        return future.result(timeout=RPC_TIMEOUT.total_seconds() + 5)

    def _deliver_subjects(self, subjects: list[tuple[str, str]]) -> int:
        """Deliver the due events of `subjects`, in order per subject, in one transaction that holds their
        claims. Under load a thread takes several subjects (most have one event): the claim, the reads, the
        marking and the commit are paid once for all of them instead of once per event.

        Events are delivered without a savepoint each (two round trips an event, a third of the relay's
        statements) while every delivery succeeds. The first that fails rolls the whole batch back: a transient
        failure leaves it for the next try; any other failure has the batch delivered again at once with a
        savepoint per event, so the failing event alone is retried or parked and what it wrote before failing
        is undone with it. The events delivered before it reach Temporal twice, which at-least-once delivery
        allows (workflows dedupe by event id, definition runs have deterministic ids)."""
        try:
            return self._deliver_batch(subjects, careful=False)
        except _BrokenTransaction:
            return self._deliver_batch(subjects, careful=True)

    def _deliver_batch(self, subjects: list[tuple[str, str]], careful: bool) -> int:
        from events.enrollment import running_runs

        delivered: list[tuple[Event, str]] = []
        broken = False
        with Session(self._engine, expire_on_commit=False) as session:
            if self._postgres:
                claims = session.execute(select(*(
                    func.pg_try_advisory_xact_lock(func.hashtextextended(f"{kind}:{subject_id}", 0))
                    for kind, subject_id in subjects))).one()
                subjects = [subject for subject, claimed in zip(subjects, claims, strict=True) if claimed]
                if not subjects:
                    return 0  # other relays hold them
            wanted = set(subjects)
            events = [e for e in session.exec(
                select(Event).where(col(Event.subject_type).in_({kind for kind, _ in subjects}),  # (the index)
                                    col(Event.subject_id).in_([subject_id for _, subject_id in subjects]),
                                    col(Event.delivered_at).is_(None), col(Event.parked_at).is_(None))
                .order_by(col(Event.seq)).limit(self._batch * len(subjects))).all()
                if (e.subject_type, e.subject_id) in wanted]
            leads = [subject_id for kind, subject_id in subjects if kind == "lead"]
            # Held here, so the session's (weak) identity map keeps them for the deliveries below: one read for
            # the batch, not one per event.
            loaded = session.exec(select(Lead).where(col(Lead.id).in_(leads))).all() if leads else []
            published: dict[str, list] = {}  # each tenant's definitions, read once for this transaction
            # and the subjects' running definition runs (for each subject's first event: dropped after it, so a
            # later event of the subject reads them again, with any run the first one started)
            running = running_runs(session, None, [subject_id for _, subject_id in subjects])
            for _, subject_id in subjects:
                running.setdefault(subject_id, [])
            now = utcnow()
            try:
                for event in events:
                    if event.next_attempt_at > now:
                        continue  # a failed event waits for its retry; the events after it go on
                    try:
                        with session.begin_nested() if careful else nullcontext():
                            outcome = self._deliver(session, event, published, running)
                    except Exception as exc:  # noqa: BLE001 - classified below
                        if not careful:
                            # Without a savepoint, what this delivery wrote before it failed (a run recorded
                            # before its hand-over failed) would be committed and taken for done on the retry,
                            # and a database error may have broken the transaction: nothing of this batch is
                            # kept. The claims go with the rollback; the careful pass takes them again.
                            broken = True
                            session.rollback()
                            if is_transient(exc):
                                raise TemporalUnavailable(str(exc)) from exc
                            raise _BrokenTransaction from exc
                        if is_transient(exc):
                            event.last_error = f"{type(exc).__name__}: {exc}"[:2000]
                            session.add(event)
                            raise TemporalUnavailable(str(exc), delivered=len(delivered)) from exc
                        self._failed(event, exc)
                        session.add(event)
                        continue
                    delivered.append((event, outcome[:200]))
            finally:
                if not broken:  # (broken: rolled back, the careful pass delivers the batch again)
                    self._mark_delivered(session, delivered)
        del loaded
        return len(delivered)

    def _mark_delivered(self, session: Session, delivered: list[tuple[Event, str]]) -> None:
        while self._hold_file is not None and delivered and self._hold_file.exists():
            time.sleep(0.05)  # a test kills the process here: delivered to Temporal, not yet committed
        at = utcnow()
        if delivered:  # one statement marks them all (what was delivered stays delivered)
            table = Event.__table__
            session.connection().execute(
                update(table).where(table.c.seq == bindparam("b_seq")).values(
                    delivered_at=at, outcome=bindparam("b_outcome"), last_error=None, attempts=table.c.attempts + 1),
                [{"b_seq": event.seq, "b_outcome": outcome} for event, outcome in delivered])
        session.commit()  # the claims end with the transaction
        for event, _ in delivered:
            EVENTS_DELIVERED.labels(event.name).inc()
            EVENT_DELIVERY_LATENCY.observe((at - event.occurred_at).total_seconds())

    def _failed(self, event: Event, exc: BaseException) -> None:
        event.attempts += 1
        event.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        if event.attempts >= self._max_attempts:
            event.parked_at = utcnow()
            log.error("relay: parked event %s (%s of %s %s) after %d attempts: %s", event.seq, event.name,
                      event.subject_type, event.subject_id, event.attempts, event.last_error)
        else:
            event.next_attempt_at = utcnow() + timedelta(seconds=min(2 ** event.attempts, 300))
            log.warning("relay: event %s (%s) failed, attempt %d: %s", event.seq, event.name, event.attempts,
                        event.last_error)

    def _deliver(self, session: Session, event: Event, published: dict[str, list],
                 running: dict[str, list]) -> str:
        from events.enrollment import SUBJECT_MODELS, dispatch

        outcome = []
        with resumed_trace(event.traceparent, f"relay.deliver {event.name}", {
                "dealflow.event_id": event.event_id, "dealflow.subject": f"{event.subject_type}:{event.subject_id}"}):
            if event.name == STAFF_MESSAGE_EVENT:
                outcome.append(self._start_message(event))
            if event.name == ENROLL_REQUESTED:  # staff enrolled the subject by hand
                from events.enrollment import run_definition

                from events.enrollment import running_runs

                going = [r for r in running_runs(session, event.tenant_id, [event.subject_id]).get(event.subject_id, [])
                         if r.definition_key == event.data["key"] and r.workflow_id != event.data["workflow_id"]]
                if going:  # another request (or a trigger) started one meanwhile: one run of a cadence at a time
                    outcome.append(f"not enrolled: {going[0].workflow_id} runs {event.data['key']} already")
                else:
                    try:
                        outcome.append("enrolled " + run_definition(
                            session, self._client, self._queue, event.tenant_id, event.data["kind"],
                            event.subject_id, event.data["key"], event.data["workflow_id"], call=self._call,
                            commit=False))
                    except LookupError as exc:  # retired since, or the subject is gone: nothing to retry
                        outcome.append(f"not enrolled: {exc}")
                running.pop(event.subject_id, None)  # its next event reads its runs again, this one among them
            if event.name == REMOVED:  # staff took the subject out of one definition run
                from events.enrollment import remove

                outcome.append(remove(self._client, event.data["workflow_id"], event.event_id, event.data,
                                      call=self._call))
            if event.name == DEAL_OPENED_EVENT:
                outcome.append(self._start_deal(event))
            if event.name == ACCREDITATION_RECORDED_EVENT:
                outcome.append(self._start_accreditation(event))
            if event.name == OFFERING_OPENED_EVENT:
                outcome.append(self._start_offering(event))
            if event.subject_type == "deal" and event.name == DEAL_EVENTS["completed"] \
                    and event.data.get("kind") == "subscription_agreement":
                from events.subscriptions import commit_signed

                outcome.append(commit_signed(session, self._client, event, call=self._call))
            if event.subject_type == "document" and event.name == SIGNING_REQUESTED:
                outcome.append(self._start_signing(event))
            if event.workflow_signal and event.subject_type == "document":
                outcome.append(self._to_signing_workflow(session, event))
            elif event.workflow_signal and event.subject_type == "deal":
                outcome.append(self._to_deal_workflow(event))
            elif event.workflow_signal:
                outcome.append(self._to_lead_workflow(session, event))
            # Definitions hear leads, deals and investors; a user's events (a notification's email) have none.
            model = SUBJECT_MODELS.get(event.subject_type)
            subject = session.get(model, event.subject_id) if model is not None else None
            if subject is not None and event.name in DEFINITION_EVENTS:
                if subject.tenant_id not in published:
                    published[subject.tenant_id] = active(session, subject.tenant_id)
                try:
                    started = dispatch(session, self._client, self._queue, event.subject_type, subject, event.name,
                                       event.event_id, event.data, call=self._call,
                                       published=published[subject.tenant_id], running=running.get(subject.id))
                finally:  # the subject's next event reads its runs again: a run started here is among them
                    running.pop(subject.id, None)
                if started:
                    outcome.append("enrolled " + ",".join(started))
        return "; ".join(outcome) or "no listener"

    def _start_message(self, event: Event) -> str:
        """A staff message accepted by the API, or a notification's email to a staff user: its MessageWorkflow,
        under the id the event carries (started once: a second delivery finds it, running or done)."""
        workflow_id = event.data["workflow_id"]
        try:
            self._call(self._start_message_workflow, workflow_id, MessageRequest.model_validate(event.data["request"]))
        except WorkflowAlreadyStartedError:
            return f"{workflow_id} already sent"
        return f"started {workflow_id}"

    async def _start_message_workflow(self, workflow_id: str, request: MessageRequest) -> WorkflowHandle:
        from workflows.messaging import MessageWorkflow

        return await self._client.start_workflow(
            MessageWorkflow.run, request, id=workflow_id, task_queue=self._queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes([SearchAttributePair(sa.TENANT_ID, request.tenant_id),
                                                     SearchAttributePair(sa.LEAD_ID, request.lead_id or "")]),
            rpc_timeout=RPC_TIMEOUT)

    def _start_once(self, event: Event, workflow, argument, summary: str | None = None,
                    attribute=None) -> str:
        """The workflow an event starts (a deal opened through the API, an accreditation recorded, a capital raise
        opened), under the id the event carries: started once; a second delivery finds it."""
        workflow_id = event.data["workflow_id"]
        pairs = [SearchAttributePair(sa.TENANT_ID, event.tenant_id)] + ([attribute] if attribute else [])
        try:
            self._call(self._start_workflow, workflow, argument, workflow_id, pairs, summary)
        except WorkflowAlreadyStartedError:
            return f"{workflow_id} already started"
        return f"started {workflow_id}"

    async def _start_workflow(self, workflow, argument, workflow_id: str, pairs: list, summary: str | None):
        return await self._client.start_workflow(
            workflow, argument, id=workflow_id, task_queue=self._queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(pairs), static_summary=summary, rpc_timeout=RPC_TIMEOUT)

    def _start_deal(self, event: Event) -> str:
        from workflows.deal import DealInput, DealWorkflow

        return self._start_once(event, DealWorkflow.run, DealInput(
            tenant_id=event.tenant_id, opportunity_id=event.subject_id, pipeline=event.data["pipeline"],
            stage=event.data["stage"]), attribute=SearchAttributePair(sa.OPPORTUNITY_ID, event.subject_id))

    def _start_accreditation(self, event: Event) -> str:
        from workflows.accreditation import AccreditationInput, AccreditationWorkflow

        return self._start_once(event, AccreditationWorkflow.run, AccreditationInput(
            tenant_id=event.tenant_id, investor_id=event.subject_id, accreditation_id=event.data["accreditation_id"],
            expires_at=event.data["expires_at"], reminder_days=event.data.get("reminder_days", [30, 7])),
            summary=f"accreditation {event.data.get('method', '')} until {event.data['expires_at'][:10]}",
            attribute=SearchAttributePair(sa.INVESTOR_ID, event.subject_id))

    def _start_offering(self, event: Event) -> str:
        from workflows.offering import OfferingInput, OfferingWorkflow

        return self._start_once(event, OfferingWorkflow.run, OfferingInput(
            tenant_id=event.tenant_id, offering_id=event.data["offering_id"], opportunity_id=event.subject_id,
            target_amount=event.data["target_amount"], minimum_investment=event.data["minimum_investment"]),
            summary=f"capital raise of {event.data['target_amount']}",
            attribute=SearchAttributePair(sa.OPPORTUNITY_ID, event.subject_id))

    def _start_signing(self, event: Event) -> str:
        """A document requested for signature (POST /opportunities/{id}/documents, a definition's
        request_signature): its DocumentSigningWorkflow, started once (a closed one is not restarted)."""
        signing = SigningInput.model_validate(event.data)
        workflow_id = signing_workflow_id(signing.tenant_id, signing.document_id)
        try:
            self._call(self._start_signing_workflow, workflow_id, signing)
        except WorkflowAlreadyStartedError:
            return f"{workflow_id} closed: not restarted"
        return f"started {workflow_id}"

    async def _start_signing_workflow(self, workflow_id: str, signing: SigningInput) -> WorkflowHandle:
        from workflows.signing import DocumentSigningWorkflow

        signers = "\n".join(f"{i}. {email}" for i, email in enumerate(signing.signers, 1))
        return await self._client.start_workflow(
            DocumentSigningWorkflow.run, signing, id=workflow_id, task_queue=self._queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes([
                SearchAttributePair(sa.TENANT_ID, signing.tenant_id),
                SearchAttributePair(sa.OPPORTUNITY_ID, signing.opportunity_id or ""),
                SearchAttributePair(sa.DOCUMENT_ID, signing.document_id)]),
            static_summary=f"{signing.title} ({signing.provider}, {signing.signing_order})"[:200],
            static_details=f"**Document** {signing.document_id} · deal {signing.opportunity_id or '-'}\n\n"
                           f"**Signers**\n{signers}\n\n**Expires** {signing.expires_at:%Y-%m-%d %H:%M} UTC",
            rpc_timeout=RPC_TIMEOUT)

    def _to_signing_workflow(self, session: Session, event: Event) -> str:
        """A provider event (DocuSign Connect, the built-in page, a staff void) to the document's signing
        workflow; a closed one is not signalled (nor restarted)."""
        document = session.get(Document, event.subject_id)
        if document is None:
            raise LookupError(f"document {event.subject_id} not found")
        workflow_id = signing_workflow_id(document.tenant_id, document.id)
        provider_event = ProviderEvent.model_validate(event.signal_payload or {})
        try:
            self._call(self._signal, workflow_id, event.workflow_signal, provider_event)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            return f"{workflow_id} closed: not signalled"
        return f"signalled {workflow_id}"

    def _to_deal_workflow(self, event: Event) -> str:
        """A deal's signal (its owner changed) to its DealWorkflow; a closed (won) one is not signalled."""
        workflow_id = f"deal-{event.tenant_id}-{event.subject_id}"  # services.deals.deal_workflow_id
        try:
            self._call(self._signal, workflow_id, event.workflow_signal, event.signal_payload or {})
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            return f"{workflow_id} not running: not signalled"
        return f"signalled {workflow_id}"

    def _to_lead_workflow(self, session: Session, event: Event) -> str:
        lead = session.get(Lead, event.subject_id)
        if lead is None:
            raise LookupError(f"lead {event.subject_id} not found")
        workflow_id = lead_workflow_id(lead.tenant_id, lead.id)
        signal = LeadEvent.model_validate(event.signal_payload or {"event_id": event.event_id})
        if event.start:
            try:
                self._call(self._start_lead, lead, workflow_id, event.workflow_signal, signal)
            except WorkflowAlreadyStartedError:
                return f"{workflow_id} closed: not restarted"
            return f"signal-with-start {workflow_id}"
        try:
            self._call(self._signal, workflow_id, event.workflow_signal, signal)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            return f"{workflow_id} closed: not signalled"
        return f"signalled {workflow_id}"

    async def _start_lead(self, lead: Lead, workflow_id: str, signal: str, event: LeadEvent) -> WorkflowHandle:
        from workflows.lead import LeadWorkflow

        return await self._client.start_workflow(
            LeadWorkflow.run,
            LeadWorkflowInput(tenant_id=lead.tenant_id, lead_id=lead.id, source=lead.source,
                              status=lead.status or LeadStatus.new),
            id=workflow_id, task_queue=self._queue, start_signal=signal, start_signal_args=[event],
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            # A lead's workflow that closed (converted, dead, merged) is not restarted by a later event.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes([
                SearchAttributePair(sa.TENANT_ID, lead.tenant_id), SearchAttributePair(sa.LEAD_ID, lead.id),
                SearchAttributePair(sa.LEAD_STATUS, str(lead.status or LeadStatus.new)),
            ]),
            static_summary=lead_summary(lead), rpc_timeout=RPC_TIMEOUT)

    async def _signal(self, workflow_id: str, signal: str, event: LeadEvent | ProviderEvent | dict) -> None:
        await self._client.get_workflow_handle(workflow_id).signal(signal, event, rpc_timeout=RPC_TIMEOUT)


def _backoff(pause: float) -> float:
    return min(max(pause * 2, 1.0), 30.0)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


# The events definitions hear (triggers, wait_for, exit_when); the rest only reach the subject's workflow.
def _definition_events() -> set[str]:
    from definitions.language import EVENTS

    return set(EVENTS)


DEFINITION_EVENTS = _definition_events()


def lead_summary(lead: Lead) -> str:
    """Who and what, for the Temporal UI: "Maria Garcia, 4500 Oak Ridge Dr, web form"."""
    name = " ".join(p for p in (lead.first_name, lead.last_name) if p) or lead.email or lead.phone or lead.id
    street = (lead.property_address or "").split(",")[0]
    return ", ".join(p for p in (name, street, str(lead.source).replace("_", " ")) if p)[:200]
