"""Logs read as prose on a terminal and as JSON lines everywhere else; libraries keep quiet on a terminal."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from core.logging import configure_logging, request_id_var
from core.settings import Settings


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in ("alembic", "alembic.runtime.plugins", "temporalio",
                                                              "uvicorn.access")}
    yield
    root.handlers[:], root.level = handlers, level
    for name, value in levels.items():
        logging.getLogger(name).setLevel(value)


def _emit() -> None:
    token = request_id_var.set("req-42")
    try:
        logging.getLogger("dealflow.api").info("lead %s accepted", "ld_1")
        logging.getLogger("alembic.runtime.plugins").info("setup plugin alembic.autogenerate.schemas")
        logging.getLogger("alembic.runtime.migration").info("Running upgrade 0006 -> 0007")
        logging.getLogger("temporalio.worker").info("Beginning worker shutdown")
        logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET /health HTTP/1.1" 200')
        logging.getLogger("alembic.runtime.migration").warning("the database is ahead of the code")
    finally:
        request_id_var.reset(token)


def test_on_a_terminal_the_default_is_readable_text_without_library_chatter(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    monkeypatch.delenv("DEALFLOW_LOG_FORMAT", raising=False)
    configure_logging("INFO", Settings().log_format)
    _emit()
    raw = terminal.getvalue()
    assert "\x1b[" in raw  # coloured
    out = re.sub(r"\x1b\[[0-9;]*m", "", raw)
    assert "dealflow.api: lead ld_1 accepted" in out and "request=req-42" in out
    assert "the database is ahead of the code" in out and "WARNING" in out  # a library's warning still shows
    for chatter in ("setup plugin", "Running upgrade", "Beginning worker shutdown", "GET /health"):
        assert chatter not in out
    assert not any(line.lstrip().startswith("{") for line in out.splitlines())


def test_not_on_a_terminal_the_default_is_json_lines_with_the_request_id(monkeypatch):
    pipe = io.StringIO()
    monkeypatch.setattr("sys.stderr", pipe)
    monkeypatch.delenv("DEALFLOW_LOG_FORMAT", raising=False)
    configure_logging("INFO", Settings().log_format)
    _emit()
    lines = [json.loads(line) for line in pipe.getvalue().splitlines()]
    by_message = {line["message"]: line for line in lines}
    assert by_message["lead ld_1 accepted"]["request_id"] == "req-42"
    assert by_message["lead ld_1 accepted"]["level"] == "INFO" and "workflow_id" in by_message["lead ld_1 accepted"]
    assert "Running upgrade 0006 -> 0007" in by_message  # production keeps the migrations it ran
    assert not [m for m in by_message if m.startswith("setup plugin") or "GET /health" in m]


def test_json_can_be_forced_on_a_terminal(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    configure_logging("INFO", Settings(log_format="json").log_format)
    _emit()
    assert json.loads(terminal.getvalue().splitlines()[0])["message"] == "lead ld_1 accepted"
