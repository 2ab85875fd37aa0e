"""Sign-in, the one-time link, sign-out: plain forms (they work without JavaScript), each with its CSRF token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from api.deps import SessionDep, SettingsDep
from api.security import SESSION_COOKIE
from console.app import render
from console.auth import (
    ANON_CSRF_COOKIE, SignedIn, anon_token, check_anon_token, check_form_token, client_ip, safe_next,
    secure_cookies,
)
from services.acting import ServiceError
from services.staff_sessions import (
    SignInRefused, TooManyTries, link_owner, redeem_sign_in_link, request_sign_in_link, sign_in_with_password,
    sign_out,
)

router = APIRouter(prefix="/app", include_in_schema=False)

Field = Annotated[str, Form(max_length=1024)]
Optional = Annotated[str, Form(max_length=1024)]


def _form(request: Request, *, status: int = 200, error: str | None = None, field: str | None = None,
          email: str = "", tenant: str = "", next_url: str = "/app", sent: bool = False) -> HTMLResponse:
    token, new = anon_token(request)
    response = render(request, "sign_in.html.j2", status=status, title="Sign in", csrf=token, error=error,
                      field=field, email=email, tenant=tenant, next_url=safe_next(next_url), sent=sent)
    if new:
        response.set_cookie(ANON_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/app",
                            secure=secure_cookies(request))
    return response


def _signed_in(request: Request, signed, next_url: str) -> RedirectResponse:
    response = RedirectResponse(safe_next(next_url), status_code=303)
    settings = request.app.state.settings
    response.set_cookie(SESSION_COOKIE, signed.token, httponly=True, samesite="lax", path="/",
                        secure=secure_cookies(request), max_age=settings.console_session_hours * 3600)
    response.delete_cookie(ANON_CSRF_COOKIE, path="/app")
    return response


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_page(request: Request, next: str = "/app") -> HTMLResponse:  # noqa: A002 - the query's name
    return _form(request, next_url=next[:500])


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request, session: SessionDep, settings: SettingsDep, email: Field = "",
                  password: Field = "", tenant: Optional = "", csrf_token: Optional = "",
                  next: Optional = "/app"):  # noqa: A002
    check_anon_token(request, csrf_token)
    if not email.strip() or not password:
        return _form(request, status=422, error="enter your email and your password",
                     field="email" if not email.strip() else "password", email=email, tenant=tenant, next_url=next)
    try:
        signed = await run_in_threadpool(
            sign_in_with_password, session, settings, email=email, password=password, tenant_id=tenant.strip() or None,
            ip=client_ip(request), user_agent=request.headers.get("user-agent", ""))
    except TooManyTries as exc:
        response = _form(request, status=429, error=str(exc), email=email, tenant=tenant, next_url=next)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except SignInRefused as exc:
        return _form(request, status=401, error=str(exc), field=exc.field or "password", email=email, tenant=tenant,
                     next_url=next)
    return _signed_in(request, signed, next)


@router.post("/sign-in/link", response_class=HTMLResponse)
async def ask_for_link(request: Request, session: SessionDep, settings: SettingsDep, email: Field = "",
                       tenant: Optional = "", csrf_token: Optional = "") -> HTMLResponse:
    check_anon_token(request, csrf_token)
    if "@" not in email:
        return _form(request, status=422, error="enter the email address you work with", field="link_email",
                     email=email)
    base = settings.effective_public_url  # never the request's Host header: a forged one would mail a link elsewhere
    try:
        await run_in_threadpool(request_sign_in_link, session, settings, email=email,
                                tenant_id=tenant.strip() or None, ip=client_ip(request), base_url=base)
    except TooManyTries as exc:
        response = _form(request, status=429, error=str(exc), field="link_email", email=email)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    # The same answer whether or not the address is staff here (no account enumeration).
    return _form(request, sent=True, email=email)


@router.get("/sign-in/link/{token}", response_class=HTMLResponse)
def confirm_link(request: Request, token: str, session: SessionDep) -> HTMLResponse:
    """A page with a button, not a sign-in: mail scanners that open links must not use them up."""
    user = link_owner(session, token[:100])
    csrf, new = anon_token(request)
    response = render(request, "sign_in_link.html.j2", status=200 if user else 410, title="Sign in", user=user,
                      token=token[:100], csrf=csrf)
    if new:
        response.set_cookie(ANON_CSRF_COOKIE, csrf, httponly=True, samesite="strict", path="/app",
                            secure=secure_cookies(request))
    return response


@router.post("/sign-in/link/{token}", response_class=HTMLResponse)
async def use_link(request: Request, token: str, session: SessionDep, settings: SettingsDep,
                   csrf_token: Optional = ""):
    check_anon_token(request, csrf_token)
    try:
        signed = await run_in_threadpool(redeem_sign_in_link, session, settings, token[:100], ip=client_ip(request),
                                         user_agent=request.headers.get("user-agent", ""))
    except ServiceError as exc:
        return render(request, "sign_in_link.html.j2", status=410, title="Sign in", user=None, token="",
                      csrf="", error=str(exc))
    return _signed_in(request, signed, "/app")


@router.post("/sign-out")
async def sign_out_now(request: Request, principal: SignedIn, session: SessionDep, csrf_token: Optional = ""):
    check_form_token(principal, csrf_token)
    await run_in_threadpool(sign_out, session, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/app/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response

