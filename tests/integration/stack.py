"""Real processes for race, outage and kill tests: the API under uvicorn (a thread with its own event loop and its
own connections, or `dealflow api` in a subprocess), workers as subprocesses, a dev server of a test's own, a
database of a test's own, and senders that release their requests together."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from sqlalchemy import text
from sqlalchemy.engine import make_url

from core.db import make_engine, migrate

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def uvicorn_api(settings) -> Iterator[str]:
    """The real app under uvicorn in a thread with its own event loop (a lazy Temporal client of its own, its
    own engine and pool): requests arrive over TCP and run concurrently, as in production."""
    from api.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning",
                                           limit_concurrency=1000, backlog=2048, timeout_graceful_shutdown=10))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def released_together(base_url: str, requests: list[Callable[[httpx.Client], httpx.Response]]) -> list[httpx.Response]:
    """Each request on its own connection, opened beforehand; all are released by one barrier."""
    barrier = threading.Barrier(len(requests))
    results: list[httpx.Response | BaseException | None] = [None] * len(requests)

    def send(i: int) -> None:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            client.get("/health")  # the connection is open before the release
            barrier.wait()
            try:
                results[i] = requests[i](client)
            except BaseException as exc:  # noqa: BLE001 - reported by the caller
                results[i] = exc

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    errors = [r for r in results if not isinstance(r, httpx.Response)]
    if errors:
        raise AssertionError(f"{len(errors)} requests failed: {errors[:3]}")
    return results  # type: ignore[return-value]


@contextmanager
def own_database(base_url: str) -> Iterator[str]:
    """A fresh, migrated database of the test's own: a new database on the same Postgres server, or a new
    SQLite file beside the session's."""
    parsed = make_url(base_url)
    if parsed.get_backend_name() == "postgresql":
        name = f"dealflow_{uuid.uuid4().hex[:10]}"
        admin = make_engine(base_url).execution_options(isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = parsed.set(database=name).render_as_string(hide_password=False)
        try:
            migrate(url)
            yield url
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    else:
        path = Path(parsed.database).parent / f"own-{uuid.uuid4().hex[:8]}.db"
        url = f"sqlite:///{path}"
        migrate(url)
        yield url


def process_env(**settings: str) -> dict[str, str]:
    from tests.conftest import TEST_SECRET_KEY  # the servers refuse to start without a proper key

    return {**os.environ, "DEALFLOW_LOG_LEVEL": "WARNING", "DEALFLOW_SECRET_KEY": TEST_SECRET_KEY,
            **{f"DEALFLOW_{k.upper()}": v for k, v in settings.items()}}


def start_worker(**settings: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=process_env(**settings))


def start_api(port: int, **settings: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host",
                                "127.0.0.1", "--port", str(port), "--log-level", "warning"], cwd=ROOT,
                               env=process_env(**settings))
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code in (200, 503):
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the API did not start")
        time.sleep(0.2)


def stop(process: subprocess.Popen | None, sig: int | None = None) -> None:
    if process is None or process.poll() is not None:
        return
    if sig is None:
        process.terminate()
    else:
        process.send_signal(sig)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


async def wait_for(check: Callable[[], object], timeout: float = 60.0, interval: float = 0.25):
    """Poll a blocking `check` in a thread until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await asyncio.to_thread(check)
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout:.0f}s (last: {last!r})")
