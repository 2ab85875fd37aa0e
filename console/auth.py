"""Who is signed in to the console, and the CSRF checks of its forms.

A signed-in page gets the same Principal the API builds from the session cookie (api.security.console_principal),
so every rule that reads a principal reads the same one. A page asked for without a session redirects to the
sign-in page (and back afterwards). Changes made from a page go through the JSON API (console.js) with the
session's CSRF token in a header; the console's own forms (sign-in, sign-out, link confirmation) carry a token in a
field: the session's once signed in, before that a random one also set as a cookie (double submit), which keeps
another site from signing a browser in to an account of its choosing."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from api.deps import Principal
from api.errors import Problem
from api.security import SESSION_COOKIE, console_principal

ANON_CSRF_COOKIE = "dealflow_csrf"


class SignInNeeded(Exception):
    """A page asked for without a session: answered with a redirect to the sign-in page."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def secure_cookies(request: Request) -> bool:
    """Cookies are `Secure` when the console is reached over https (or its public URL is https)."""
    public = request.app.state.settings.public_url
    return request.url.scheme == "https" or public.startswith("https://")


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path of the console only (never another site)."""
    if not value or not value.startswith("/app") or value.startswith("//"):
        return "/app"
    parts = urlsplit(value)
    return value if not parts.scheme and not parts.netloc else "/app"


async def signed_in(request: Request) -> Principal:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        try:
            principal = await run_in_threadpool(_principal, request, cookie)
            request.state.principal = principal  # (a refusal's page still shows who is signed in)
            return principal
        except Problem as problem:
            if problem.status != 401:
                raise
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    raise SignInNeeded(quote(target, safe="/"))


def _principal(request: Request, cookie: str) -> Principal:
    # (no CSRF header asked for: the console's own forms carry their token in a field, checked by each)
    return console_principal(request.app.state.engine, request, cookie, csrf_header=False)


SignedIn = Annotated[Principal, Depends(signed_in)]


def check_form_token(principal: Principal, value: str | None) -> None:
    if not value or not principal.csrf_token or not hmac.compare_digest(value.encode(), principal.csrf_token.encode()):
        raise Problem(403, "missing or wrong CSRF token: reload the page and try again",
                      errors=[{"field": "csrf_token", "message": "missing or wrong"}])


def anon_token(request: Request) -> tuple[str, bool]:
    """The pre-sign-in form token (the cookie's, or a new one to set: the flag)."""
    current = request.cookies.get(ANON_CSRF_COOKIE)
    if current and 20 <= len(current) <= 100:
        return current, False
    return secrets.token_urlsafe(24), True


def check_anon_token(request: Request, value: str | None) -> None:
    cookie = request.cookies.get(ANON_CSRF_COOKIE) or ""
    if not value or not cookie or not hmac.compare_digest(value.encode(), cookie.encode()):
        raise Problem(403, "this form has expired or did not come from this site: reload the page and try again",
                      errors=[{"field": "csrf_token", "message": "missing or wrong"}])


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""
