"""Temporal client factory. Every client uses the pydantic data converter."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from core.settings import Settings


async def connect(settings: Settings, *, address: str | None = None, lazy: bool = False) -> Client:
    """`lazy`: connect on first use (the API starts and takes leads while Temporal is down)."""
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
        lazy=lazy,
    )


_UNREACHABLE = {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED}


def temporal_unreachable(exc: BaseException) -> bool:
    """Whether `exc` says Temporal could not be reached (down, paused, a timeout), as opposed to an answer.
    A lazy client that never connected raises a RuntimeError ("Failed client connect") on its first call."""
    if isinstance(exc, RPCError):
        return exc.status in _UNREACHABLE
    return isinstance(exc, RuntimeError) and "client connect" in str(exc)
