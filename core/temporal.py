"""Temporal client factory. Every client uses the pydantic data converter and carries the OpenTelemetry tracing
interceptor (the worker built on a client inherits it): a span's context travels in Temporal's headers from the
relay's signal-with-start to the workflow and its activities."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from core.settings import Settings


def prometheus_runtime(address: str) -> Runtime:
    """A Temporal Runtime whose SDK metrics (workflow task latency, activity failures, polls, slots) are served
    for Prometheus on `address` (host:port). Create one per process: it binds the port."""
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(
        bind_address=address, counters_total_suffix=True, durations_as_seconds=True)))


async def connect(settings: Settings, *, address: str | None = None, lazy: bool = False,
                  runtime: Runtime | None = None) -> Client:
    """`lazy`: connect on first use (the API starts and takes leads while Temporal is down). `runtime`: the
    process's Temporal Runtime (the worker's serves the SDK's metrics); the SDK's default otherwise."""
    tls: bool | TLSConfig = settings.temporal_tls
    if settings.temporal_tls_cert and settings.temporal_tls_key:
        tls = TLSConfig(
            client_cert=settings.temporal_tls_cert.read_bytes(),
            client_private_key=settings.temporal_tls_key.read_bytes(),
        )
    elif settings.temporal_api_key:
        tls = True
    return await Client.connect(
        address or settings.effective_temporal_address,
        namespace=settings.temporal_namespace,
        api_key=settings.temporal_api_key,
        tls=tls,
        data_converter=pydantic_data_converter,
        interceptors=[TracingInterceptor()],
        lazy=lazy,
        runtime=runtime,
    )


_UNREACHABLE = {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED}


def temporal_unreachable(exc: BaseException) -> bool:
    """Whether `exc` says Temporal could not be reached (down, paused, a timeout), as opposed to an answer.
    A lazy client that never connected raises a RuntimeError ("Failed client connect") on its first call."""
    if isinstance(exc, RPCError):
        return exc.status in _UNREACHABLE
    return isinstance(exc, RuntimeError) and "client connect" in str(exc)
