"""One trace from the HTTP request to a workflow's activity: the API's server span (FastAPI instrumentation),
the event row's stored traceparent, the relay's delivery span, the SDK interceptor's SignalWithStartWorkflow /
StartActivity / RunActivity spans — recorded by an in-memory exporter, each span a descendant of the request's."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlmodel import Session, select

from api.app import create_app
from core.db import make_engine
from core.settings import Settings
from core.temporal import connect
from models.event import Event
from models.tenant import Role
from api.security import create_api_key
from tests.integration.stack import own_database
from worker import build_worker, running_relay


@pytest.fixture(scope="module")
def spans():
    """The process's tracer provider, recording in memory (installed once per process; dropped after)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    yield exporter
    exporter.shutdown()  # later tests' spans are no longer kept


def _ancestors(span, by_id: dict) -> list:
    chain = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        chain.append(span)
    return chain


async def test_one_trace_from_the_post_through_the_relay_to_an_activity(spans, settings, database_url):
    caller_trace = uuid.uuid4().int & ((1 << 128) - 1) or 1
    traceparent = f"00-{caller_trace:032x}-{0x1234567890abcdef:016x}-01"
    with own_database(database_url) as url:
        own = Settings(**{**settings.model_dump(), "database_url": url,
                          "temporal_task_queue": f"trace-{uuid.uuid4().hex[:6]}"})
        engine = make_engine(url)
        client = await connect(own)  # carries the tracing interceptor; so does the worker built on it
        _, key = create_api_key(engine, f"t{uuid.uuid4().hex[:8]}", Role.staff)
        app = create_app(own, temporal_client=client, engine=engine)
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as executor:
            worker = build_worker(client, engine, own, executor)
            async with worker, running_relay(engine, client, own), app.router.lifespan_context(app):
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as api:
                    created = await api.post("/api/v1/leads", json={
                        "first_name": "Trace", "email": f"trace{uuid.uuid4().hex[:6]}@example.com",
                        "source": "web_form"}, headers={"Authorization": f"Bearer {key}", "traceparent": traceparent,
                                                        "X-Request-ID": "req-trace-1"})
                assert created.status_code == 201, created.text
                lead_id = created.json()["id"]
                with Session(engine) as session:
                    stored = session.exec(select(Event.traceparent).where(Event.subject_id == lead_id)).first()
                assert stored and stored.split("-")[1] == f"{caller_trace:032x}"

                activity_span = None
                for _ in range(200):
                    activity_span = next((s for s in spans.get_finished_spans()
                                          if s.name.startswith("RunActivity:")
                                          and s.context.trace_id == caller_trace), None)
                    if activity_span:
                        break
                    await asyncio.sleep(0.1)
        engine.dispose()

    finished = [s for s in spans.get_finished_spans() if s.context.trace_id == caller_trace]
    assert activity_span is not None, sorted({s.name for s in finished})
    by_id = {s.context.span_id: s for s in finished}
    chain = [s.name for s in _ancestors(activity_span, by_id)]
    server = next(s for s in finished if s.kind == trace.SpanKind.SERVER and s.name.startswith("POST"))
    assert server.attributes["dealflow.request_id"] == "req-trace-1"
    assert server.parent.span_id == 0x1234567890abcdef  # the caller's span
    # the activity descends from the request, through the relay's delivery and the workflow's start
    assert server.name in chain, chain
    assert any(name.startswith("relay.deliver lead.") for name in chain), chain
    assert any(name.startswith("SignalWithStartWorkflow:LeadWorkflow") for name in chain), chain
