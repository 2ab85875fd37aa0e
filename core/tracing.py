"""W3C trace context (OpenTelemetry's propagator): the API adopts a request's `traceparent` or starts one,
every event row written in the request carries it, and the relay makes it current again while it delivers
the event, so one trace id follows a lead from the HTTP request across the outbox into Temporal."""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import context, trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()


def _new_span_context() -> trace.SpanContext:
    return trace.SpanContext(trace_id=random.getrandbits(128) or 1, span_id=random.getrandbits(64) or 1,
                             is_remote=False, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))


@contextmanager
def request_trace(headers: Mapping[str, str]) -> Iterator[str]:
    """Within the block, the request's trace is current: a child of its `traceparent`, or a new trace."""
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
def resumed_trace(traceparent: str | None) -> Iterator[None]:
    """Make a stored traceparent current again (the relay delivering an event written by a request)."""
    if not traceparent:
        yield
        return
    token = context.attach(_propagator.extract({"traceparent": traceparent}))
    try:
        yield
    finally:
        context.detach(token)


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")
