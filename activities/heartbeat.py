"""Heartbeats for blocking activities, so a killed worker's attempt is retried in seconds, not at its timeout."""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from temporalio import activity

log = logging.getLogger("dealflow.activities")


@contextmanager
def heartbeating(every: float = 2.0) -> Iterator[None]:
    """Heartbeat every `every` seconds from a side thread while the body runs.

    A sync activity cannot heartbeat while it waits on the database or trains a model; this thread does it for
    the activity (the SDK's heartbeat is thread-safe; the copied context carries the activity's identity). With
    a `heartbeat_timeout` on the call, an attempt lost with its worker is retried once that timeout passes
    instead of after the whole `start_to_close_timeout`."""
    context, stop = contextvars.copy_context(), threading.Event()

    def beat() -> None:
        while True:
            try:
                context.run(activity.heartbeat)
            except Exception as exc:  # noqa: BLE001 - one lost beat is no reason to stop beating
                log.warning("heartbeat failed (%s: %s); trying again", type(exc).__name__, exc)
            if stop.wait(every):
                return

    beater = threading.Thread(target=beat, name="heartbeat", daemon=True)
    beater.start()
    try:
        yield
    finally:
        stop.set()
        beater.join()
