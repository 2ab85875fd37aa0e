"""The staff console under /app: server-rendered pages (Jinja2, autoescaped) in the API's own process, its static
assets (our CSS and one small script, no build step), and how a page answers a missing sign-in (a redirect) or a
refusal (the same Problem the API raises, shown as a page)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from api.deps import may
from api.errors import Problem
from api.security import Principal
from console.auth import SignInNeeded
from models.base import utcnow
from models.tenant import Role

HERE = Path(__file__).resolve().parent
STATIC = "/app/static"

templates = Environment(loader=FileSystemLoader(HERE / "templates"),
                        autoescape=select_autoescape(default=True, default_for_string=True))


def _money(value: Decimal | float | None) -> str:
    if value is None:
        return "—"
    amount = Decimal(value)
    return f"-${-amount:,.0f}" if amount < 0 else f"${amount:,.0f}"  # a loss is -$5,000, not $-5,000


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def _ago(value: datetime | None) -> str:
    if value is None:
        return "—"
    seconds = (utcnow() - value).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            amount = f"{int(seconds // size)}{unit}"
            return f"in {amount}" if future else f"{amount} ago"
    return "now"


def _duration(value: timedelta | None) -> str:
    """3d, 2h, 1h30m, 45s: the way pipelines.yaml writes them."""
    if value is None:
        return "—"
    seconds, parts = int(value.total_seconds()), []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts[:2]) or "0s"


templates.filters.update(money=_money, when=_when, ago=_ago, duration=_duration)


def render(request: Request, name: str, principal: Principal | None = None, *, status: int = 200,
           title: str = "", **context: Any) -> HTMLResponse:
    def can(*roles: str) -> bool:
        return principal is not None and may(principal, *(Role(r) for r in roles))

    page = templates.get_template(name).render(
        request=request, me=principal, can=can, title=title, static=STATIC, path=request.url.path, **context)
    return HTMLResponse(page, status_code=status, headers={"Cache-Control": "no-store"})


def mount(app: FastAPI) -> None:
    from console import dashboard, definitions, inbox, investors, live, pages, sign_in

    app.include_router(sign_in.router)
    app.include_router(pages.router)
    app.include_router(live.router)
    app.include_router(definitions.router)
    app.include_router(investors.router)
    app.include_router(inbox.router)
    app.include_router(dashboard.router)
    app.mount(STATIC, StaticFiles(directory=HERE / "static"), name="console-static")

    app.state.problem_page = lambda request, problem: problem_page(
        request, getattr(request.state, "principal", None), problem)

    @app.exception_handler(SignInNeeded)
    async def _sign_in(_: Request, exc: SignInNeeded) -> RedirectResponse:
        return RedirectResponse(f"/app/sign-in?next={exc.next_url}", status_code=303)


def problem_page(request: Request, principal: Principal | None, problem: Problem) -> HTMLResponse:
    """A refusal as a page (the API's words, its status)."""
    page = render(request, "problem.html.j2", principal, status=problem.status, title=f"{problem.status}",
                  problem=problem)
    page.headers.update(problem.headers or {})  # Retry-After, WWW-Authenticate
    return page
