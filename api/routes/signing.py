"""The built-in signing page (e-signature provider `builtin`): HTML served by the API behind the link e-mailed to
each signer. No JavaScript build: server-rendered Jinja2 pages with a tiny inline script (the signer's time zone,
the drawn signature), allowed by a per-response CSP nonce.

GET never changes anything (a mail scanner following the link uses nothing up): it shows the ESIGN consumer
disclosure, or, once accepted, the document and the signature form. The POSTs — accept the disclosure, sign,
decline — carry a CSRF token bound to the link, and each becomes a ProviderEvent on the event path
(services/signing_page.py). A forged, used or expired link, a stale form or an incomplete one is a clear 4xx page,
never a 5xx.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from api.deps import SessionDep, SettingsDep
from models.document import CONSENT_VERSION
from models.tenant import Tenant
from services import documents
from services.signing_page import (
    LinkRefused, Visitor, accept_disclosure, csrf_token, open_link, record_decline, record_signature,
)

router = APIRouter(prefix="/sign", tags=["signing page"], include_in_schema=False)
_pages = Environment(loader=FileSystemLoader(Path(__file__).resolve().parents[1] / "templates" / "signing"),
                     autoescape=select_autoescape(default=True, default_for_string=True))
_HEADINGS = {403: "This form has expired", 404: "Link not valid", 409: "Not yet", 410: "This link works no more",
             422: "Something is missing"}


def _page(template: str, status: int = 200, **values) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    html = _pages.get_template(template).render(nonce=nonce, consent_version=CONSENT_VERSION, **values)
    policy = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; img-src 'self' data:; "
              "frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": policy,
                                                           "Cache-Control": "no-store"})


def _refused(exc: LinkRefused) -> HTMLResponse:
    return _page("refused.html.j2", exc.status, heading=_HEADINGS.get(exc.status, "Cannot continue"),
                 message=exc.message)


def _visitor(request: Request, timezone: str | None) -> Visitor:
    return Visitor(ip=request.client.host if request.client else None,
                   user_agent=request.headers.get("user-agent"), timezone=(timezone or "").strip()[:64] or None)


def _values(session, token: str, document, signer, settings) -> dict:
    tenant = session.get(Tenant, document.tenant_id)
    return {"document": document, "signer": signer, "sender": tenant.name if tenant else document.tenant_id,
            "csrf": csrf_token(settings, signer), "base": f"/sign/{token}", "heading": document.title}


@router.get("/{token}", response_class=HTMLResponse)
def signing_page(token: str, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    try:
        document, signer = open_link(session, settings, token)
    except LinkRefused as exc:
        return _refused(exc)
    values = _values(session, token, document, signer, settings)
    return _page("sign.html.j2" if signer.consented_at else "disclosure.html.j2", **values)


@router.get("/{token}/disclosure", response_class=HTMLResponse)
def disclosure(token: str, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    try:
        document, signer = open_link(session, settings, token)
    except LinkRefused as exc:
        return _refused(exc)
    return _page("disclosure_page.html.j2", **_values(session, token, document, signer, settings))


@router.get("/{token}/document.pdf", response_model=None)
def document_pdf(token: str, session: SessionDep, settings: SettingsDep) -> Response:
    """The original PDF, for the signer who accepted the disclosure (framed by the signing page)."""
    try:
        document, signer = open_link(session, settings, token)
        if signer.consented_at is None:
            raise LinkRefused(409, "Accept the consumer disclosure to see the document.")
    except LinkRefused as exc:
        return _refused(exc)
    original = documents.file_of(session, document.id, "original")
    return Response(original.content if original else b"", media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{document.id}.pdf"', "Cache-Control": "no-store",
        "X-Frame-Options": "SAMEORIGIN", "Content-Security-Policy": "default-src 'none'; frame-ancestors 'self'"})


@router.post("/{token}/consent", response_model=None)
def consent(token: str, request: Request, session: SessionDep, settings: SettingsDep,
            csrf: str = Form(default="", max_length=600), accept: str = Form(default="", max_length=10),
            timezone: str = Form(default="", max_length=64)) -> Response:
    if accept != "yes":
        return _refused(LinkRefused(422, "Tick the box to accept the disclosure, or decline to sign."))
    try:
        accept_disclosure(session, settings, token, csrf, _visitor(request, timezone))
    except LinkRefused as exc:
        session.rollback()
        return _refused(exc)
    return RedirectResponse(f"/sign/{token}", status_code=303)


@router.post("/{token}", response_class=HTMLResponse)
def sign(token: str, request: Request, session: SessionDep, settings: SettingsDep,
         csrf: str = Form(default="", max_length=600), agree: str = Form(default="", max_length=10),
         typed: str = Form(default="", max_length=200), drawn: str = Form(default="", max_length=500_000),
         timezone: str = Form(default="", max_length=64)) -> HTMLResponse:
    try:
        document = record_signature(session, settings, token, csrf, _visitor(request, timezone), agree=agree == "yes",
                                    typed=typed, drawn=drawn or None)
    except LinkRefused as exc:
        session.rollback()
        return _refused(exc)
    return _page("done.html.j2", heading="Signed — thank you",
                 message=f"You signed “{document.title}”. Once every party has signed, you will be able to ask the "
                         "sender for the signed copy and its certificate of completion.")


@router.post("/{token}/decline", response_class=HTMLResponse)
def decline(token: str, request: Request, session: SessionDep, settings: SettingsDep,
            csrf: str = Form(default="", max_length=600), reason: str = Form(default="", max_length=500),
            timezone: str = Form(default="", max_length=64)) -> HTMLResponse:
    try:
        document = record_decline(session, settings, token, csrf, _visitor(request, timezone), reason)
    except LinkRefused as exc:
        session.rollback()
        return _refused(exc)
    return _page("done.html.j2", heading="You declined to sign",
                 message=f"You declined to sign “{document.title}”. The sender is told; nothing was signed.")
