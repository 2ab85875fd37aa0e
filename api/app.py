"""App factory. The lifespan connects ONE Temporal client (it is bound to the running event loop)."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import uuid
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from sqlalchemy import Engine
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.client import Client

from api import errors
from api.headers import SecurityHeaders
from api.openapi import document as openapi_document
from api.routes import (
    analysis, audit, dashboard, definitions, documents, events, health, investors, keys, leads, messages,
    notifications, offerings, opportunities, scoring, signing, tasks, users, webhooks, workflows,
)
from core.db import make_engine
from core.logging import request_id_var
from core.metrics import HTTP_LATENCY, HTTP_REQUESTS
from core.settings import ConfigError, Settings, get_settings
from core.temporal import connect
from core.tracing import request_trace, tracing_recorded

log = logging.getLogger("dealflow.api")


class RequestContext:
    """Per request: its id (X-Request-ID, taken from the caller or made) for the logs and the answer, its trace
    (every event the request writes carries its traceparent), and the HTTP metrics. Plain ASGI: Starlette's
    BaseHTTPMiddleware ran the app in a task of its own and re-wrapped the body, a fifth of a lead intake's CPU."""

    def __init__(self, app, max_body_bytes: int | None = None, larger: dict[str, int] | None = None) -> None:
        self.app, self.default_max_body_bytes, self.larger = app, max_body_bytes, larger or {}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        limit = self.larger.get(scope.get("path", ""), self.default_max_body_bytes)
        request_id = (headers.get("x-request-id") or uuid.uuid4().hex)[:64]
        status, begun = 500, False  # unless the app answers: an exception escaping it becomes a 500 (below)

        async def answer(message) -> None:
            nonlocal status, begun
            if message["type"] == "http.response.start":
                status, begun = message["status"], True
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            if self._too_large(headers, limit):  # said up front; a body without a length is cut off as it comes
                status = 413
                await errors.problem_response(
                    413, f"the body is larger than the {limit:,} bytes allowed",
                    headers={"X-Request-ID": request_id, "Connection": "close"})(scope, receive, send)
                return
            nul = self._nul_in(scope)
            if nul:  # no column may hold a NUL (Postgres refuses it: a 500 deep in a query), nor any id or filter
                status = 422
                await errors.problem_response(
                    422, f"the {nul} contains a NUL character", errors=[{"field": nul, "message": "NUL (U+0000) "
                                                                        "is not allowed"}],
                    headers={"X-Request-ID": request_id})(scope, receive, send)
                return
            with request_trace(headers):
                trace.get_current_span().set_attribute("dealflow.request_id", request_id)
                await self.app(scope, self._limited(receive, limit) if limit else receive, answer)
        except Exception as exc:  # noqa: BLE001 — the one place a crash becomes an answer
            # Here rather than in an exception handler: Starlette runs those outside this middleware, where the
            # request id is gone and uvicorn then closes the keep-alive connection. Logged once, traceback and id.
            log.exception("unhandled error: %s", exc)
            if begun:  # nothing more can be said on an answer already under way
                raise
            status = 500
            response = errors.problem_response(500, f"internal error; quote the request id {request_id} when "
                                                    "reporting it", headers={"X-Request-ID": request_id})
            await response(scope, receive, send)
        finally:
            request_id_var.reset(token)
            path = getattr(scope.get("route"), "path", "unmatched")
            HTTP_REQUESTS.labels(scope["method"], path, str(status)).inc()
            HTTP_LATENCY.labels(scope["method"], path).observe(time.perf_counter() - started)


    @staticmethod
    def _limited(receive, limit: int):
        """`receive`, counting: a body sent without a length (chunked) is refused once it passes the limit, as
        an HTTPException the app's handlers turn into the same problem document."""
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise StarletteHTTPException(413, f"the body is larger than the {limit:,} bytes allowed")
            return message

        return counted

    @staticmethod
    def _nul_in(scope) -> str | None:
        """'path' or 'query' when either holds a NUL (%00 in the query; the path arrives decoded), else None.
        Bodies are checked field by field (models.input.Input)."""
        if "\x00" in scope.get("path", ""):
            return "path"
        if b"%00" in scope.get("query_string", b"").lower() or b"\x00" in scope.get("query_string", b""):
            return "query"
        return None

    @staticmethod
    def _too_large(headers: Headers, limit: int | None) -> bool:
        length = headers.get("content-length", "")
        return bool(limit and length.isdigit() and int(length) > limit)


def _warm_intent_model(settings: Settings) -> None:
    from scoring.intent import text_model

    try:
        text_model(settings.effective_models_dir)
    except Exception:  # noqa: BLE001 — the first reply will say what is wrong, in its own request
        log.warning("the reply-intent model could not be loaded", exc_info=True)


def create_app(settings: Settings | None = None, *, temporal_client: Client | None = None,
               engine: Engine | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.check_secret_key()  # before serving anything: a server without a proper key does not start

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        owns_engine = engine is None
        app.state.engine = engine or make_engine(settings.effective_database_url)
        app.state.temporal = temporal_client or await connect(settings, lazy=True)
        # The reply-intent model, trained (or loaded) in the background: the first inbound SMS need not wait for it
        asyncio.get_running_loop().run_in_executor(None, _warm_intent_model, settings)
        log.info("API ready (Temporal %s, task queue %s)", settings.effective_temporal_address,
                 settings.temporal_task_queue)
        yield
        if owns_engine:
            app.state.engine.dispose()

    # /docs and /redoc from the Swagger UI and ReDoc files installed with fastapi-offline (FastAPI's own pages
    # load them from a CDN: a blank page on a network without one).
    app = FastAPIOffline(
        title="Dealflow",
        version="0.1.0",
        description="Durable lead, deal and document workflows for real-estate investors. "
                    "Authenticate with `Authorization: Bearer <api key>` (`dealflow keys create`).",
        lifespan=lifespan,
        static_url="/docs-assets",
    )
    app.state.settings = settings
    errors.install(app)

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = openapi_document(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi

    app.add_middleware(RequestContext, max_body_bytes=settings.max_body_bytes,
                       larger={webhooks.INBOUND_EMAIL_PATH: settings.inbound_email_max_bytes})
    # The request's server span (outside RequestContext: its trace is current there, so the events the request
    # writes carry it), when a provider records spans (DEALFLOW_OTEL_EXPORTER, core/tracing.py). Without one the
    # middleware would make spans nobody keeps (a twentieth of an intake's CPU): RequestContext's request_trace
    # still gives each request its trace id, from the caller's traceparent or new. Probes are not traced, nor
    # each body chunk read and written.
    if tracing_recorded():
        FastAPIInstrumentor.instrument_app(app, excluded_urls="/health$,/api/v1/health$",
                                           exclude_spans=["receive", "send"])
    # Outermost: the headers go on every answer, the 413s and 500s RequestContext writes itself included.
    app.add_middleware(SecurityHeaders, https=settings.effective_public_url.startswith("https://"))

    # Routers carry their full /api/v1 prefix (not nested) so the metrics' route label is the full path.
    app.include_router(leads.router)
    app.include_router(workflows.router)
    app.include_router(messages.router)
    app.include_router(opportunities.router)
    app.include_router(documents.router)
    app.include_router(signing.router)  # the built-in e-signature page (/sign/{token}), HTML
    app.include_router(analysis.router)
    app.include_router(scoring.router)
    app.include_router(investors.router)
    app.include_router(offerings.router)
    app.include_router(definitions.router)
    app.include_router(webhooks.router)
    app.include_router(events.router)
    app.include_router(keys.router)
    app.include_router(users.router)
    app.include_router(tasks.router)
    app.include_router(notifications.router)
    app.include_router(audit.router)
    app.include_router(dashboard.router)
    app.include_router(health.router, prefix="/api/v1")
    app.include_router(health.router)  # /health at the root too, for probes (metrics: their own address)
    from console.app import mount  # the staff console at /app: pages over these same routes (console/)

    mount(app)
    return app


def serve() -> FastAPI:
    """The factory for running the API under uvicorn directly (`uvicorn --factory api.app:serve`; `dealflow api`
    is the usual way): a configuration error — no secret key, a bad setting — is one line and exit status 2,
    not a traceback."""
    try:
        return create_app()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
