"""Logging: readable and coloured on a terminal (Rich), JSON lines everywhere else (files, containers, CI).

Every JSON line carries the request id, the trace id (the same as in the request's trace: core/tracing.py) and,
inside Temporal code, the workflow id. On a terminal the libraries
(alembic, uvicorn's access log, temporalio, httpx) only speak at WARNING and above, unless DEALFLOW_LOG_LEVEL is
DEBUG: a newcomer's terminal shows what Dealflow does, not how its libraries start up.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

from core.tracing import current_trace_id

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

FORMATS = ("auto", "json", "text")
# Quiet on a terminal (WARNING and above) unless the level asked for is DEBUG.
LIBRARIES = ("alembic", "uvicorn.access", "uvicorn.error", "temporalio", "httpx", "httpcore")
# Quiet in every format: chatter with nothing for an operator (alembic lists its plugins on every start).
NOISE = ("alembic.runtime.plugins", "uvicorn.access", "httpx", "temporalio.worker._workflow_instance")


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.trace_id = current_trace_id()
        workflow_id = None
        # temporalio's workflow.logger / activity.logger put their context in these extras.
        for attr in ("temporal_workflow", "temporal_activity"):
            details = getattr(record, attr, None)
            if isinstance(details, dict):
                workflow_id = details.get("workflow_id") or workflow_id
        if workflow_id is None:
            try:
                from temporalio import activity

                if activity.in_activity():
                    workflow_id = activity.info().workflow_id
            except Exception:  # noqa: BLE001 - logging must never fail
                pass
        record.workflow_id = workflow_id
        return True


class _ContextSuffix(logging.Formatter):
    """The message, then the request and workflow ids when there are any (the Rich handler adds time and level)."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        ids = [f"{name}={value}" for name, value in (("request", getattr(record, "request_id", None)),
                                                      ("workflow", getattr(record, "workflow_id", None))) if value]
        return f"{message}  [{' '.join(ids)}]" if ids else message


def resolve_format(fmt: str, stream: TextIO) -> str:
    """`auto` is `text` on a terminal and `json` otherwise."""
    if fmt == "auto":
        return "text" if stream.isatty() else "json"
    return fmt


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None) -> str:
    """Install the one root handler; returns the format used (`json` or `text`)."""
    stream = stream or sys.stderr
    fmt = resolve_format(fmt, stream)
    if fmt == "json":
        handler: logging.Handler = logging.StreamHandler(stream)
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(trace_id)s %(workflow_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    elif stream.isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        handler = RichHandler(console=Console(file=stream), show_path=False, markup=False, rich_tracebacks=True,
                              tracebacks_show_locals=False, log_time_format="%H:%M:%S")
        handler.setFormatter(_ContextSuffix("%(name)s: %(message)s"))
    else:  # text asked for, but not on a terminal: the same, without colours or wrapping
        handler = logging.StreamHandler(stream)
        handler.setFormatter(_ContextSuffix("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(_ContextFilter())
    # The context goes in its own JSON fields (workflow_id, temporal_activity), not into the message.
    from temporalio import activity, workflow

    activity.logger.activity_info_on_message = fmt != "json"
    workflow.logger.workflow_info_on_message = fmt != "json"
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    floor = max(logging.WARNING, root.level)
    for name in NOISE:
        logging.getLogger(name).setLevel(floor)
    quiet = fmt == "text" and root.level > logging.DEBUG
    for name in set(LIBRARIES) - set(NOISE):
        logging.getLogger(name).setLevel(floor if quiet else logging.NOTSET)
    return fmt
