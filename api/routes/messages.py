"""Messages (list, detail, staff one-off sends), versioned templates, and unsubscribe links."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field
from jinja2 import TemplateError
from sqlmodel import col, func, select
from starlette.concurrency import run_in_threadpool

from services.delivery_events import Effects, apply_and_commit, opt_out
from api.deps import ClientDep, PrincipalDep, SessionDep, SettingsDep, Staff, audit, require
from api.errors import Problem
from api.paging import page
from core.signing import verify
from definitions.vocabulary import ReplyIntent
from models.event import STAFF_MESSAGE_EVENT, emit
from models.input import Input
from models.base import utcnow
from models.investor import Investor
from models.lead import Lead
from models.message import Message, MessageTemplate
from models.payloads import MessageRequest
from models.tenant import Role
from services.message_content import preview_message
from services.reply_intent import correct_intent
from providers.templates import (
    Template, TemplateInvalid, audiences, builtin_templates, latest_template, validate,
)

router = APIRouter(prefix="/api/v1", tags=["messages"])


class MessagePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    lead_id: str | None
    investor_id: str | None = None
    user_id: str | None = None  # a notification's email to a staff user
    channel: str
    direction: str
    to_address: str
    from_address: str | None
    subject: str | None
    body: str
    template: str | None
    template_version: int | None
    provider: str
    provider_message_id: str | None
    status: str
    error_code: str | None
    error_message: str | None
    events: list[dict[str, Any]]
    idempotency_key: str
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    intent: ReplyIntent | None = None
    intent_confidence: float | None = None
    intent_source: str | None = None
    intent_version: str | None = None


class MessagePage(BaseModel):
    items: list[MessagePublic]
    next_cursor: str | None


class SendBody(Input):
    model_config = ConfigDict(extra="forbid")
    channel: str = Field(pattern="^(email|sms)$")
    template: str | None = Field(default=None, max_length=100)
    text: str | None = Field(default=None, max_length=5000, description="inline Jinja2 text instead of a template")
    subject: str | None = Field(default=None, max_length=500)
    idempotency_key: str | None = Field(default=None, max_length=200)


class SendAccepted(BaseModel):
    workflow_id: str
    idempotency_key: str
    status: str = "queued"
    detail: str = "sent inside the recipient's send window, unless they opted out"


class TemplateBody(Input):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(pattern=r"^[a-z0-9_\-]{1,100}$")
    channel: str = Field(pattern="^(email|sms)$")
    subject: str | None = Field(default=None, max_length=500)
    text: str = Field(min_length=1, max_length=10_000)
    html: str | None = Field(default=None, max_length=100_000)


class TemplatePublic(BaseModel):
    key: str
    version: int
    channel: str
    subject: str | None
    text: str
    html: str | None
    builtin: bool
    audiences: list[str] = Field(default_factory=list, description="whom a one-off send of it can go to: lead, "
                                 "investor (none: it needs what only a cadence, a blast or a notice gives)")
    report: dict[str, Any] = Field(default_factory=dict)


@router.get("/messages", response_model=MessagePage)
def list_messages(
    session: SessionDep, principal: PrincipalDep,
    lead_id: str | None = None,
    investor_id: str | None = None,
    user_id: Annotated[str | None, Query(max_length=40, description="emails to this staff user")] = None,
    channel: Annotated[str | None, Query(pattern="^(email|sms)$")] = None,
    status: Annotated[list[str] | None, Query()] = None,
    direction: Annotated[str | None, Query(pattern="^(inbound|outbound)$")] = None,
    intent: Annotated[list[ReplyIntent] | None, Query(description="replies read (or marked) as meaning this")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> MessagePage:
    query = select(Message).where(Message.tenant_id == principal.tenant_id)
    if lead_id:
        query = query.where(Message.lead_id == lead_id)
    if investor_id:
        query = query.where(Message.investor_id == investor_id)
    if user_id:
        query = query.where(Message.user_id == user_id)
    if channel:
        query = query.where(Message.channel == channel)
    if status:
        query = query.where(col(Message.status).in_(status))
    if direction:
        query = query.where(Message.direction == direction)
    if intent:
        query = query.where(col(Message.intent).in_([i.value for i in intent]))
    items, next_cursor = page(session, query, Message, limit, cursor)
    return MessagePage(items=[_shown(m, principal) for m in items], next_cursor=next_cursor)


STAFF_ONLY = "(an email to a member of the staff: its text is shown to them and to admins)"


def _shown(message: Message, principal) -> MessagePublic:
    """An email to a staff user (a notification, a sign-in link) is theirs: its text is shown to them and to admins
    only (a sign-in link in it would let anyone who reads it sign in as them)."""
    public = MessagePublic.model_validate(message)
    if message.user_id and principal.role != Role.admin and message.user_id != principal.user_id:
        public = public.model_copy(update={"body": STAFF_ONLY, "html": None, "subject": STAFF_ONLY})
    return public


@router.get("/messages/{message_id}", response_model=MessagePublic)
def get_message(message_id: str, session: SessionDep, principal: PrincipalDep) -> MessagePublic:
    message = session.get(Message, message_id)
    if message is None or message.tenant_id != principal.tenant_id:
        raise Problem(404, f"message {message_id} not found")
    return _shown(message, principal)


class IntentCorrection(Input):
    intent: ReplyIntent


@router.post("/messages/{message_id}/intent", response_model=MessagePublic,
             responses={409: {"description": "not an inbound reply"}})
async def correct_message_intent(message_id: str, body: IntentCorrection, session: SessionDep,
                                 principal: Staff) -> Message:
    """Staff say what an inbound reply meant. Stored with who said it (the model's answer kept in the message's
    events), audited, on the timeline, and a training row for the next intent model. Marking a text `opt_out`
    opts the number out (a revocation staff recognised is honoured); moving away from `opt_out` opts nobody back
    in — only the person can (START)."""

    def apply(effects: Effects) -> Message:
        message = session.get(Message, message_id)
        if message is None or message.tenant_id != principal.tenant_id:
            raise Problem(404, f"message {message_id} not found")
        if message.direction != "inbound":
            raise Problem(409, f"message {message_id} is not an inbound reply: only replies have an intent")
        correct_intent(session, message, body.intent, principal.actor)
        if body.intent == ReplyIntent.opt_out and message.from_address:
            opt_out(session, effects, message.tenant_id, message.channel, message.from_address, "staff",
                    f"{message.id}:intent", {"message_id": message.id, "by": principal.actor})
        return message

    return await run_in_threadpool(apply_and_commit, session, apply)


Person = Lead | Investor


def _person(session, principal, kind: str, person_id: str) -> Person:
    person = session.get(Lead if kind == "lead" else Investor, person_id)
    if person is None or person.tenant_id != principal.tenant_id or (isinstance(person, Lead) and person.deleted_at):
        raise Problem(404, f"{kind} {person_id} not found")
    return person


def _check_sendable(session, principal, kind: str, person_id: str, body: SendBody) -> Person:
    """The checks a one-off send passes before it is accepted (and a preview before it is shown): the person, an
    address on the channel, a template of that channel written for this kind of person (or a valid inline text)."""
    person = _person(session, principal, kind, person_id)
    if bool(body.template) == bool(body.text):
        raise Problem(422, "give a template or a text",
                      errors=[{"field": "template", "message": "give exactly one of template and text"}])
    if not (person.email if body.channel == "email" else person.phone):
        raise Problem(422, f"{kind} {person_id} has no {'email' if body.channel == 'email' else 'phone'}",
                      errors=[{"field": "channel", "message": "no address for this channel"}])
    field = "template" if body.template else "text"
    if body.template:
        template = latest_template(session, principal.tenant_id, body.template)
        if template is None:
            raise Problem(422, f"no template {body.template!r}", errors=[{"field": "template", "message": "unknown"}])
        if template.channel != body.channel:
            raise Problem(422, f"template {body.template!r} is for {template.channel}",
                          errors=[{"field": "channel", "message": f"template is for {template.channel}"}])
    else:
        template = Template(key="inline", version=0, channel=body.channel, text=body.text or "",
                            subject=body.subject if body.channel == "email" else None)
        try:
            validate(template)
        except TemplateInvalid as exc:
            raise Problem(422, f"invalid message: {exc}", errors=exc.errors) from None
    if kind not in audiences(template):
        raise Problem(422, f"{'template ' + repr(body.template) if body.template else 'this text'} is not written for "
                      f"a message to one {kind}: it names what only another send has (a lead, an investor, a deal)",
                      errors=[{"field": field, "message": f"not written for one {kind}"}])
    return person


def _request(principal, kind: str, person_id: str, body: SendBody, idempotency_key: str) -> MessageRequest:
    return MessageRequest(tenant_id=principal.tenant_id, channel=body.channel, template=body.template, text=body.text,
                          subject=body.subject, idempotency_key=idempotency_key, actor=principal.actor,
                          **{f"{kind}_id": person_id})


async def _accept(session, principal, kind: str, person_id: str, body: SendBody, header_key: str | None,
                  ) -> SendAccepted:
    """A one-off send, checked, stored with its event and answered from the database: the relay starts the
    MessageWorkflow (so a send accepted while Temporal is down goes out once it is back)."""
    await run_in_threadpool(_check_sendable, session, principal, kind, person_id, body)
    key = body.idempotency_key or header_key or uuid.uuid4().hex
    business_key = f"{person_id}:staff:{key}"
    workflow_id = f"msg-{principal.tenant_id}-{person_id}-{key}"[:250]
    request = _request(principal, kind, person_id, body, business_key)

    def record() -> None:  # the request and its event in one transaction
        if emit(session, tenant_id=principal.tenant_id, subject_type=kind, subject_id=person_id,
                name=STAFF_MESSAGE_EVENT, event_id=f"send:{business_key}"[:300],
                data={"workflow_id": workflow_id, "request": request.model_dump(mode="json")}):
            audit(session, principal, "message.send", kind, person_id,
                  after={"channel": body.channel, "template": body.template, "idempotency_key": business_key})
        session.commit()

    await run_in_threadpool(record)
    return SendAccepted(workflow_id=workflow_id, idempotency_key=business_key)


@router.post("/leads/{lead_id}/messages", status_code=202, response_model=SendAccepted)
async def send_to_lead(lead_id: str, body: SendBody, session: SessionDep, principal: Staff,
                       idempotency_key: Annotated[str | None, Header(max_length=200)] = None) -> SendAccepted:
    """A one-off message through the same activity path and rules as cadences (consent, quiet hours,
    exactly once per idempotency key), answered once it is stored (the relay starts its MessageWorkflow)."""
    return await _accept(session, principal, "lead", lead_id, body, idempotency_key)


@router.post("/investors/{investor_id}/messages", status_code=202, response_model=SendAccepted, tags=["investors"])
async def send_to_investor(investor_id: str, body: SendBody, session: SessionDep, principal: Staff,
                           idempotency_key: Annotated[str | None, Header(max_length=200)] = None) -> SendAccepted:
    """A one-off message to an investor (a reply from the inbox, a note from their page): the same path and rules
    as a lead's; the investor counts as contacted once it is sent."""
    return await _accept(session, principal, "investor", investor_id, body, idempotency_key)


class MessagePreview(BaseModel):
    channel: str
    to: str | None
    subject: str | None
    text: str
    html: str | None
    sms_segments: int | None
    opted_out: bool = Field(description="the address opted out of this channel: a send would be suppressed")
    window_open: bool = Field(description="the recipient's send window (quiet hours) is open now")
    opens_at: datetime
    zones: list[str]
    summary: str


def _preview(session, settings, principal, kind: str, person_id: str, body: SendBody) -> MessagePreview:
    _check_sendable(session, principal, kind, person_id, body)
    now = utcnow()
    try:
        preview = preview_message(session, settings, _request(principal, kind, person_id, body, "preview"), now)
    except (TemplateError, LookupError, ValueError) as exc:
        raise Problem(422, f"the message cannot be rendered: {exc}",
                      errors=[{"field": "template" if body.template else "text", "message": str(exc)}]) from None
    plan = preview.plan
    return MessagePreview(channel=body.channel, to=preview.to, subject=preview.rendered.subject,
                          text=preview.rendered.text, html=preview.rendered.html, sms_segments=preview.segments,
                          opted_out=plan.opted_out, window_open=plan.opens_at <= now, opens_at=plan.opens_at,
                          zones=plan.zones, summary=plan.summary)


@router.post("/leads/{lead_id}/messages/preview", response_model=MessagePreview)
def preview_for_lead(lead_id: str, body: SendBody, session: SessionDep, settings: SettingsDep,
                     principal: Staff) -> MessagePreview:
    """The message a send with this body would make, rendered for this lead now, with its consent and quiet
    hours: nothing is sent or stored. The same checks as the send (422 naming the field), the same rendering
    and send plan as the message workflow's activities (services/message_content.py)."""
    return _preview(session, settings, principal, "lead", lead_id, body)


@router.post("/investors/{investor_id}/messages/preview", response_model=MessagePreview, tags=["investors"])
def preview_for_investor(investor_id: str, body: SendBody, session: SessionDep, settings: SettingsDep,
                         principal: Staff) -> MessagePreview:
    """What a send to this investor would say and when it could go, sending nothing (as for a lead)."""
    return _preview(session, settings, principal, "investor", investor_id, body)


@router.get("/templates", response_model=list[TemplatePublic])
def list_templates(session: SessionDep, principal: PrincipalDep,
                   audience: Annotated[Literal["lead", "investor"] | None, Query(
                       description="only those a one-off send to a lead or an investor can use")] = None,
                   ) -> list[TemplatePublic]:
    keys = set(builtin_templates()) | set(session.exec(
        select(MessageTemplate.key).where(MessageTemplate.tenant_id == principal.tenant_id)).all())
    result = []
    for key in sorted(keys):
        t = latest_template(session, principal.tenant_id, key)
        fits = audiences(t)
        if audience is None or audience in fits:
            result.append(TemplatePublic(key=t.key, version=t.version, channel=t.channel, subject=t.subject,
                                         text=t.text, html=t.html, builtin=t.builtin, audiences=fits))
    return result


@router.post("/templates", status_code=201, response_model=TemplatePublic)
def create_template(body: TemplateBody, session: SessionDep,
                    principal: Annotated[Any, require(Role.ops, Role.staff)]) -> TemplatePublic:
    """A new version of a template (versions are immutable; sends record the version they used)."""
    try:
        report = validate(Template(key=body.key, version=0, channel=body.channel, text=body.text,
                                   subject=body.subject, html=body.html))
    except TemplateInvalid as exc:
        raise Problem(422, f"invalid template: {exc}", errors=exc.errors) from None
    current = session.exec(select(func.max(MessageTemplate.version)).where(
        MessageTemplate.tenant_id == principal.tenant_id, MessageTemplate.key == body.key)).one()
    builtin = builtin_templates().get(body.key)
    version = max(current or 0, builtin.version if builtin else 0) + 1
    row = MessageTemplate(tenant_id=principal.tenant_id, key=body.key, version=version, channel=body.channel,
                          subject=body.subject, text=body.text, html=body.html, created_by=principal.actor)
    session.add(row)
    audit(session, principal, "template.create", "template", f"{body.key}@{version}", after=body.model_dump())
    session.commit()
    saved = Template(key=row.key, version=row.version, channel=row.channel, text=row.text, subject=row.subject,
                     html=row.html)
    return TemplatePublic(key=row.key, version=row.version, channel=row.channel, subject=row.subject, text=row.text,
                          html=row.html, builtin=False, audiences=audiences(saved), report=report)


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title></head><body style="font-family:sans-serif;max-width:32rem;margin:4rem auto">
<h1>{title}</h1><p>{text}</p>{form}</body></html>"""


def _unsubscribe_target(settings, token: str) -> dict:
    payload = verify(settings, "unsubscribe", token, settings.unsubscribe_link_max_age_days * 86400)
    if not payload or not {"t", "c", "a"} <= set(payload):
        raise Problem(400, "this unsubscribe link is not valid or has expired")
    return payload


@router.get("/unsubscribe/{token}", response_class=HTMLResponse, include_in_schema=False)
def unsubscribe_page(token: str, settings: SettingsDep) -> HTMLResponse:
    """A confirmation page (link scanners GET links; only the POST opts out)."""
    target = _unsubscribe_target(settings, token)
    form = '<form method="post"><button type="submit">Unsubscribe</button></form>'
    return HTMLResponse(_PAGE.format(title="Unsubscribe", text=f"Stop emails to {target['a']}?", form=form))


@router.post("/unsubscribe/{token}", response_class=HTMLResponse, include_in_schema=False)
async def unsubscribe(token: str, session: SessionDep, client: ClientDep, settings: SettingsDep) -> HTMLResponse:
    """One-click unsubscribe (RFC 8058 List-Unsubscribe-Post) and the confirmation page's button."""
    target = _unsubscribe_target(settings, token)

    def apply(effects: Effects) -> None:
        opt_out(session, effects, target["t"], target["c"], target["a"], "unsubscribe_link", f"unsub:{token[-24:]}",
                {"link": "email"})
        audit(session, None, "consent.opt_out", "consent", f"{target['c']}:{target['a']}",
              after={"source": "unsubscribe_link"}, actor="recipient", tenant_id=target["t"])

    await run_in_threadpool(apply_and_commit, session, apply)
    return HTMLResponse(_PAGE.format(title="Unsubscribed", text=f"{target['a']} will get no more emails.", form=""))

