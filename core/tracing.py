"""Tracing (OpenTelemetry): one trace id follows a lead from the HTTP request across the outbox into Temporal.

The API's server span comes from opentelemetry-instrumentation-fastapi (a child of the caller's `traceparent`,
or a new trace); every event row written in the request stores the span's traceparent; the relay makes it
current again while it delivers the event, in a span of its own, and the Temporal SDK's TracingInterceptor
(core/temporal.py) carries it on to the workflow and its activities.

DEALFLOW_OTEL_EXPORTER picks where spans go: `none` (the default) installs no SDK — spans are not recorded, yet a
request without a trace still gets a trace id of its own, for its events and the logs — `otlp` (OTLP over HTTP, to
OTEL_EXPORTER_OTLP_ENDPOINT) or `console`."""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from opentelemetry import context, trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from core.settings import Settings

_propagator = TraceContextTextMapPropagator()
tracer = trace.get_tracer("dealflow")  # a proxy: it records once a provider is installed


def configure_tracing(settings: Settings, service_name: str) -> None:
    """Install the tracer provider DEALFLOW_OTEL_EXPORTER asks for (once per process; `none` installs nothing)."""
    if settings.otel_exporter == "none":
        return
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    if settings.otel_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    else:
        exporter = ConsoleSpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": f"{settings.otel_service_name}"
                                                        f"{service_name.removeprefix('dealflow')}"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def tracing_recorded() -> bool:
    """Whether this process records spans (a provider is installed: configure_tracing, or a test's own)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def _new_span_context() -> trace.SpanContext:
    return trace.SpanContext(trace_id=random.getrandbits(128) or 1, span_id=random.getrandbits(64) or 1,
                             is_remote=False, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))


@contextmanager
def request_trace(headers: Mapping[str, str]) -> Iterator[str]:
    """Within the block, the request has a trace: the instrumentation's server span when one is current, else a
    child of the caller's `traceparent`, or a new trace (spans not recorded: the trace id is for the events and
    the logs). Yields the traceparent."""
    if trace.get_current_span().get_span_context().is_valid:
        yield current_traceparent() or ""
        return
    parent = trace.get_current_span(_propagator.extract(dict(headers))).get_span_context()
    span_context = _new_span_context()
    if parent.is_valid:
        span_context = trace.SpanContext(trace_id=parent.trace_id, span_id=span_context.span_id, is_remote=False,
                                         trace_flags=parent.trace_flags)
    token = context.attach(trace.set_span_in_context(trace.NonRecordingSpan(span_context)))
    try:
        yield current_traceparent() or ""
    finally:
        context.detach(token)


@contextmanager
def resumed_trace(traceparent: str | None, name: str = "relay.deliver",
                  attributes: Mapping[str, str] | None = None) -> Iterator[None]:
    """Continue a stored traceparent (the relay delivering an event written by a request) in a span `name`."""
    token = context.attach(_propagator.extract({"traceparent": traceparent})) if traceparent else None
    try:
        with tracer.start_as_current_span(name, kind=trace.SpanKind.PRODUCER, attributes=dict(attributes or {})):
            yield
    finally:
        if token is not None:
            context.detach(token)


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


def current_trace_id() -> str | None:
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None
