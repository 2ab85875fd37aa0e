"""Structured JSON logging. Every line carries the request id and, inside Temporal code, the workflow id."""

from __future__ import annotations

import contextvars
import logging
import sys

from pythonjsonlogger.json import JsonFormatter

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
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


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ContextFilter())
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(workflow_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s %(workflow_id)s] %(message)s")
        )
    # The context goes in its own JSON fields (workflow_id, temporal_activity), not into the message.
    from temporalio import activity, workflow

    activity.logger.activity_info_on_message = fmt != "json"
    workflow.logger.workflow_info_on_message = fmt != "json"
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "httpx", "temporalio.worker._workflow_instance"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
