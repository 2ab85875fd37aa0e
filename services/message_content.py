"""What a message will say and when it may go, worked out one way for everyone: the messaging activities (a send,
a send plan) and the preview staff see before sending (POST /leads/{id}/messages/preview, the console's composer).

- `message_template`: the request's template (the tenant's latest version, or the built-in) or its inline text.
- `message_context`: the variables a template sees (recipient, tenant, sender, unsubscribe link).
- `send_plan`: the recipient's zones, when the send window opens (now, or later), and whether the address opted out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from core.settings import Settings
from core.signing import sign
from definitions.send_window import SendWindow, recipient_zones
from models.consent import is_opted_out
from models.payloads import MessageRequest, SendPlan, SendPlanInput
from models.recipient import Recipient, load_recipient
from providers.templates import Rendered, Template, latest_template, render, sms_segments


def unsubscribe_url(settings: Settings, tenant_id: str, channel: str, address: str) -> str:
    token = sign(settings, "unsubscribe", {"t": tenant_id, "c": channel, "a": address})
    return f"{settings.effective_public_url}/api/v1/unsubscribe/{token}"


def message_template(session: Session, request: MessageRequest) -> Template:
    """LookupError for an unknown template, ValueError for one of another channel or a request without text."""
    if request.template:
        template = latest_template(session, request.tenant_id, request.template)
        if template is None:
            raise LookupError(f"no template {request.template!r}")
        if template.channel != request.channel:
            raise ValueError(f"template {request.template!r} is for {template.channel}, not {request.channel}")
        return template
    if not request.text:
        raise ValueError("a message needs a template or a text")
    return Template(key="inline", version=0, channel=request.channel, text=request.text,
                    subject=request.subject or ("" if request.channel == "sms" else None))


def message_context(settings: Settings, recipient: Recipient, request: MessageRequest) -> dict[str, Any]:
    tenant = recipient.tenant
    # The tenant's own sender name when it set one; otherwise the tenant speaks for itself.
    sender_name = (parseaddr(tenant.email_from)[0] if tenant.email_from else "") or tenant.name
    # The request's own variables (a notification) first: the recipient and the tenant are not theirs to change
    context = {**request.context, **recipient.context(), "tenant": {"id": tenant.id, "name": tenant.name},
               "sender": {"name": sender_name}}
    if request.channel == "email":
        context["unsubscribe_url"] = unsubscribe_url(settings, tenant.id, "email", recipient.address("email") or "")
    return context


def send_plan(session: Session, plan: SendPlanInput) -> SendPlan:
    recipient = load_recipient(session, plan.tenant_id, plan.lead_id, plan.investor_id, plan.user_id)
    tenant, address = recipient.tenant, recipient.address(plan.channel)
    window = SendWindow.parse(*(plan.send_window or (tenant.send_window_days, tenant.send_window_start,
                                                     tenant.send_window_end)))
    zones, source = recipient_zones(recipient.person.phone, recipient.state, tenant.timezone)
    opens_at = window.next_opening(plan.now, zones)
    opted_out = bool(address) and is_opted_out(session, plan.tenant_id, plan.channel, address)
    when = "now" if opens_at == plan.now else opens_at.astimezone(ZoneInfo(zones[0])).strftime("%a %H:%M %Z")
    return SendPlan(zones=zones, zone_source=source, opens_at=opens_at, opted_out=opted_out,
                    summary=f"send window opens {when} ({', '.join(zones)} from {source})")


@dataclass(frozen=True)
class Preview:
    to: str | None
    rendered: Rendered
    plan: SendPlan
    segments: int | None  # an SMS's segments (what the carrier bills)


def preview_message(session: Session, settings: Settings, request: MessageRequest, now: datetime) -> Preview:
    """The message as it would be rendered and planned now, sending nothing (LookupError, ValueError and
    jinja2's TemplateError as message_template and render raise them)."""
    recipient = load_recipient(session, request.tenant_id, request.lead_id, request.investor_id, request.user_id)
    rendered = render(message_template(session, request), message_context(settings, recipient, request))
    plan = send_plan(session, SendPlanInput(tenant_id=request.tenant_id, lead_id=request.lead_id,
                                            investor_id=request.investor_id, channel=request.channel, now=now,
                                            send_window=request.send_window))
    segments = sms_segments(rendered.text).segments if request.channel == "sms" else None
    return Preview(to=recipient.address(request.channel), rendered=rendered, plan=plan, segments=segments)
