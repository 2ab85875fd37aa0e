"""Messaging activities: plan a send (consent + quiet hours) and send exactly once per idempotency key.

Exactly once: the message row is created once per `idempotency_key` (unique). Before the provider call
it is marked `sending` and committed; after a crash, the retry asks the provider whether the message
went out (SendGrid custom arg, Twilio recipient+body) instead of sending again.
"""

from __future__ import annotations

import logging

from jinja2 import TemplateError
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from core.db import is_unique_violation
from core.metrics import MESSAGES
from core.settings import Settings
from models.base import utcnow
from models.consent import is_opted_out, record_consent
from models.lead import Lead
from models.investor import Investor, advance
from models.message import Message
from models.payloads import ConsentChange, MessageRequest, MessageResult, SendPlan, SendPlanInput
from models.recipient import Recipient, load_recipient
from models.tenant import Tenant
from models.timeline import add_message_entry
from providers.base import OutgoingEmail, OutgoingSms, ProviderError, Receipt
from providers.registry import Providers
from providers.sms import is_opt_out
from providers.templates import render
from services.message_content import message_context, message_template, send_plan, unsubscribe_url

log = logging.getLogger("dealflow.messaging")
COUNTED = ("sent", "suppressed", "failed")  # dealflow_messages_total's outcomes
FINAL = {"sent", "delivered", "opened", "clicked", "bounced", "failed", "suppressed", "undelivered"}


class MessagingActivities:
    def __init__(self, engine: Engine, settings: Settings, providers: Providers) -> None:
        self._engine, self._settings, self._providers = engine, settings, providers

    @activity.defn
    def plan_send(self, plan: SendPlanInput) -> SendPlan:
        with Session(self._engine) as session:
            try:
                return send_plan(session, plan)
            except LookupError as exc:
                raise ApplicationError(str(exc), type="NotFound", non_retryable=True) from None

    @activity.defn
    def send_message(self, request: MessageRequest) -> MessageResult:
        result = self._send(request)
        if result.status in COUNTED:
            MESSAGES.labels(request.channel, result.status).inc()
        return result

    def _send(self, request: MessageRequest) -> MessageResult:
        message = self._claim(request)
        if message.status in FINAL:
            return _result(message)
        provider = (self._providers.email if message.channel == "email" else self._providers.sms)(message.tenant_id)
        outgoing = self._outgoing(message)
        receipt: Receipt | None = None
        try:
            if message.status == "sending":  # an earlier attempt may have reached the provider
                receipt = provider.find_sent(outgoing, message.created_at)
                if receipt:
                    log.info("message %s was already accepted by %s; not sending again", message.id, provider.name)
            if receipt is None:
                suppressed = self._suppress(message, automated=request.actor == "workflow")
                if suppressed:
                    return _result(suppressed)
                self._update(message.id, status="sending", provider=provider.name)
                receipt = provider.send(outgoing)
        except ProviderError as exc:
            return self._provider_failed(message, exc)
        sent = self._update(message.id, status="sent", provider_message_id=receipt.provider_message_id,
                            sent_at=utcnow(), error_code=None, error_message=None)
        self._timeline(sent, "message.sent", f"{sent.channel.upper()} sent to {sent.to_address}")
        if sent.investor_id:
            self._investor_contacted(sent.investor_id)
        return _result(sent)

    # -- steps ---------------------------------------------------------------------------------------

    def _claim(self, request: MessageRequest) -> Message:
        """The message row for this idempotency key: found, or rendered and inserted once."""
        with Session(self._engine, expire_on_commit=False) as session:
            existing = session.exec(select(Message).where(Message.idempotency_key == request.idempotency_key)).first()
            if existing:
                return existing
            recipient = self._load(session, request.tenant_id, request.lead_id, request.investor_id,
                                   request.user_id)
            tenant = recipient.tenant
            message = Message(tenant_id=tenant.id, lead_id=request.lead_id, investor_id=request.investor_id,
                              user_id=recipient.user.id if recipient.user else None,
                              channel=request.channel, idempotency_key=request.idempotency_key,
                              template=request.template,
                              provider=self._settings.provider_for(tenant.id, request.channel),
                              to_address=recipient.address(request.channel) or "")
            error = None
            if not message.to_address:
                who = "investor" if request.investor_id else "user" if recipient.user else "lead"
                error = ("no_address", f"{who} has no {'email' if request.channel == 'email' else 'phone'}")
            else:
                try:
                    template = message_template(session, request)
                    message.template_version = template.version
                    context = message_context(self._settings, recipient, request)
                    rendered = render(template, context)
                    message.subject, message.body, message.html = rendered.subject, rendered.text, rendered.html
                    message.from_address = self._sender(tenant, request.channel)
                except (TemplateError, LookupError, ValueError) as exc:
                    error = ("template", f"template could not be rendered: {exc}")
            if error:
                message.status, message.error_code, message.error_message = "failed", error[0], error[1]
            session.add(message)
            try:
                session.commit()
            except IntegrityError as exc:  # a concurrent attempt claimed the key first
                session.rollback()
                if not is_unique_violation(exc):
                    raise
                return session.exec(select(Message).where(Message.idempotency_key == request.idempotency_key)).one()
            if error:
                self._timeline(message, "message.failed", f"{message.channel.upper()} not sent: {error[1]}")
            return message

    def _suppress(self, message: Message, *, automated: bool) -> Message | None:
        """Checked right before every provider call, so a change a second ago still counts: an opt-out stops
        every send; a lead that is dead, converted or merged into another gets no more cadence or definition
        messages (a person on the staff may still write to them: `automated` is False for their sends)."""
        reason = None
        with Session(self._engine) as session:
            if is_opted_out(session, message.tenant_id, message.channel, message.to_address):
                reason = ("opted_out", f"{message.to_address} opted out of {message.channel}", "opted out")
            elif automated and message.lead_id:
                lead = session.get(Lead, message.lead_id)
                if lead is not None and lead.duplicate_of:
                    reason = ("lead_merged", f"the lead was merged into {lead.duplicate_of}", "lead merged")
                elif lead is not None and lead.status in ("dead", "converted"):
                    reason = (f"lead_{lead.status}", f"the lead is {lead.status}", f"lead {lead.status}")
        if reason is None:
            return None
        suppressed = self._update(message.id, status="suppressed", error_code=reason[0], error_message=reason[1])
        self._timeline(suppressed, "message.suppressed", f"{message.channel.upper()} suppressed: {reason[2]}")
        return suppressed

    def _provider_failed(self, message: Message, exc: ProviderError) -> MessageResult:
        if exc.retryable:
            self._update(message.id, error_code=exc.code, error_message=exc.message)
            raise ApplicationError(exc.message, type="ProviderUnavailable") from None
        failed = self._update(message.id, status="failed", error_code=exc.code, error_message=exc.message)
        if message.channel == "sms" and is_opt_out(exc):
            with Session(self._engine) as session:
                record_consent(session, ConsentChange(
                    tenant_id=message.tenant_id, channel="sms", address=message.to_address, status="opted_out",
                    source="provider_error", evidence={"provider": "twilio", "code": exc.code}))
                session.commit()
        self._timeline(failed, "message.failed", f"{message.channel.upper()} failed: {exc.message}")
        # Final: the reason is on the message; the workflow sees a failed result, not an exception storm.
        raise ApplicationError(exc.message, {"message_id": message.id, "code": exc.code},
                               type="ProviderRejected", non_retryable=True) from None

    def _investor_contacted(self, investor_id: str) -> None:
        with Session(self._engine) as session:
            investor = session.get(Investor, investor_id)
            if investor is not None:  # "last contacted": the list's filter and the profile
                advance(investor, "message.sent")
                investor.last_contacted_at = utcnow()
                session.add(investor)
                session.commit()

    def _update(self, message_id: str, **changes) -> Message:
        with Session(self._engine, expire_on_commit=False) as session:
            message = session.get(Message, message_id)
            for key, value in changes.items():
                setattr(message, key, value)
            session.add(message)
            session.commit()
            return message

    def _timeline(self, message: Message, kind: str, summary: str) -> None:
        with Session(self._engine) as session:
            add_message_entry(session, message, kind, summary,
                              {"template": message.template, "status": message.status,
                               "error_code": message.error_code},
                              workflow_id=activity.info().workflow_id if activity.in_activity() else None)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()

    def _load(self, session: Session, tenant_id: str, lead_id: str | None, investor_id: str | None,
              user_id: str | None = None) -> Recipient:
        try:
            return load_recipient(session, tenant_id, lead_id, investor_id, user_id)
        except LookupError as exc:
            raise ApplicationError(str(exc), type="NotFound", non_retryable=True) from None

    def _sender(self, tenant: Tenant, channel: str) -> str | None:
        if channel == "email":
            return tenant.email_from or self._settings.email_from
        return tenant.sms_from or self._settings.twilio_from_number

    def _outgoing(self, message: Message) -> OutgoingEmail | OutgoingSms:
        if message.channel == "email" and message.user_id:  # a notification to the staff: no marketing headers
            return OutgoingEmail(message_id=message.id, to=message.to_address, sender=message.from_address or "",
                                 subject=message.subject or "", text=message.body, html=message.html)
        if message.channel == "email":
            link = unsubscribe_url(self._settings, message.tenant_id, "email", message.to_address)
            return OutgoingEmail(message_id=message.id, to=message.to_address, sender=message.from_address or "",
                                 subject=message.subject or "", text=message.body, html=message.html,
                                 headers={"List-Unsubscribe": f"<{link}>",
                                          "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})
        return OutgoingSms(message_id=message.id, to=message.to_address, body=message.body,
                           sender=message.from_address,
                           status_callback=f"{self._settings.effective_public_url}/api/v1/webhooks/twilio/status")


def _result(message: Message) -> MessageResult:
    return MessageResult(message_id=message.id, status=message.status,
                         provider_message_id=message.provider_message_id,
                         error=message.error_message if message.status in ("failed", "suppressed") else None)
