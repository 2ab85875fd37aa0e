"""DocumentSigningWorkflow (`sign-{tenant}-{document_id}`): one document's envelope from sending to its end.

Creates the envelope through the tenant's provider (builtin or DocuSign), then waits for the provider's events by
signal (`provider_event`: sent, delivered, consented, signed per recipient, completed, declined, voided, expired),
each applied once (by event id), with reminder timers (day 2 and day 5 after sending, by default) and the
envelope's expiry. In sequential order each signature has the next signer invited (the built-in page; DocuSign
routes by itself). Completed: the signed PDF is sealed and stored with the certificate of completion and the deal
hears `document.completed`; declined, voided or expired: the envelope is voided and the deal hears
`document.declined` / `document.voided` / `document.expired`. Pure: every effect is an activity.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from models.signing import AppliedEvent, DocumentStep, EnvelopeNotice, SigningInput, SigningState

SIGNAL = "provider_event"  # providers/esign/base.py's SIGNAL (workflows/ may not import providers/)
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1),
                    non_retryable_error_types=["NotFound", "ProviderRejected"])
SHORT = timedelta(minutes=2)
LONG = timedelta(minutes=10)  # sealing and the certificate (PAdES, maybe a timestamp authority)
_ENDS = {"completed": "completed", "declined": "declined", "voided": "voided", "expired": "expired"}
_SEEN_LIMIT = 1000


@workflow.defn
class DocumentSigningWorkflow:
    @workflow.init
    def __init__(self, input: SigningInput) -> None:
        self._input = input
        self._status = "draft"
        self._envelope_id: str | None = None
        self._pending: list[EnvelopeNotice] = []
        self._seen: list[str] = []
        self._signed: list[str] = []
        self._applied = 0
        self._reminders = 0

    @workflow.run
    async def run(self, input: SigningInput) -> SigningState:
        step = DocumentStep(tenant_id=input.tenant_id, document_id=input.document_id)
        workflow.set_current_details(f"Creating the envelope ({input.provider})")
        try:
            self._envelope_id = await workflow.execute_activity(
                "create_envelope", step, result_type=str, start_to_close_timeout=SHORT, retry_policy=RETRY)
        except ActivityError as exc:  # the provider refused the envelope for good: nothing was sent
            await self._close("voided", f"the provider refused the envelope: {_message(exc)}")
            return await self._finish()
        self._status = "sent"
        sent_at = workflow.now()
        reminders = [sent_at + timedelta(days=d) for d in input.reminder_days
                     if sent_at + timedelta(days=d) < input.expires_at]
        while self._status not in _ENDS:
            if self._pending:
                await self._apply(self._pending.pop(0))
                continue
            now = workflow.now()
            if now >= input.expires_at:
                await self._end("expired", "the envelope expired unsigned")
                break
            due = min([input.expires_at, *reminders])
            waiting = ", ".join(e for e in input.signers if e not in self._signed) or "the provider"
            workflow.set_current_details(f"Waiting for {waiting} to sign; expires {input.expires_at:%Y-%m-%d %H:%M} "
                                         "UTC" + (f"; reminder {reminders[0]:%Y-%m-%d %H:%M} UTC" if reminders else ""))
            try:
                await workflow.wait_condition(lambda: bool(self._pending), timeout=due - now,
                                              timeout_summary="reminder" if due in reminders else "expiry")
            except TimeoutError:
                if reminders and workflow.now() >= reminders[0]:
                    reminders.pop(0)
                    await self._remind()
        return await self._finish()

    async def _finish(self) -> SigningState:
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.set_current_details(f"Document {self._status}")
        return self.state()

    async def _apply(self, notice: EnvelopeNotice) -> None:
        applied: AppliedEvent = await workflow.execute_activity(
            "apply_provider_event", args=[self._step(), notice], result_type=AppliedEvent,
            start_to_close_timeout=SHORT, retry_policy=RETRY)
        self._applied += 1
        event = notice.event
        if event == "delivered" and self._status == "sent":
            self._status = "delivered"
        elif event == "signed" and notice.recipient_email:
            if notice.recipient_email.lower() not in self._signed:
                self._signed.append(notice.recipient_email.lower())
            if self._input.signing_order == "sequential" and applied.pending:
                await workflow.execute_activity("invite_next_signers", self._step(), result_type=list,
                                                start_to_close_timeout=SHORT, retry_policy=RETRY)
        elif event == "completed":
            workflow.set_current_details("Completed: sealing the signed PDF and the certificate of completion")
            await workflow.execute_activity("complete_document", self._step(), start_to_close_timeout=LONG,
                                            retry_policy=RETRY)
            self._status = "completed"
        elif event in ("declined", "voided", "expired"):
            who = f" by {notice.recipient_email}" if notice.recipient_email and event == "declined" else ""
            await self._end(event, f"{event}{who}" + (f": {notice.detail}" if notice.detail else ""))

    async def _end(self, status: str, reason: str) -> None:
        """Void the envelope (a voided one stays voided) and close the document, telling the deal."""
        await workflow.execute_activity("void_envelope", self._step(reason=reason), start_to_close_timeout=SHORT,
                                        retry_policy=RETRY)
        await self._close(status, reason)

    async def _close(self, status: str, reason: str) -> None:
        await workflow.execute_activity("close_document", self._step(status=status, reason=reason),
                                        start_to_close_timeout=SHORT, retry_policy=RETRY)
        self._status = status

    async def _remind(self) -> None:
        self._reminders += 1
        emails = [e for e in self._input.signers if e not in self._signed]
        await workflow.execute_activity("send_reminders", self._step(emails=emails, reminder=self._reminders),
                                        start_to_close_timeout=SHORT, retry_policy=RETRY)

    def _step(self, **extra) -> DocumentStep:
        return DocumentStep(tenant_id=self._input.tenant_id, document_id=self._input.document_id,
                            envelope_id=self._envelope_id, **extra)

    @workflow.signal(name=SIGNAL)
    def provider_event(self, notice: EnvelopeNotice) -> None:
        if notice.event_id in self._seen:
            return  # the same provider event delivered again: one effect
        self._seen.append(notice.event_id)
        del self._seen[:-_SEEN_LIMIT]
        if self._status in _ENDS:
            return
        self._pending.append(notice)

    @workflow.query
    def state(self) -> SigningState:
        return SigningState(document_id=self._input.document_id, status=self._status, envelope_id=self._envelope_id,
                            signed=list(self._signed), events=self._applied, reminders_sent=self._reminders)


def _message(exc: ActivityError) -> str:
    cause = exc.cause
    return str(getattr(cause, "message", None) or cause or exc)
