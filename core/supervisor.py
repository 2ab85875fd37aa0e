"""`dealflow up`'s process tree: the API and the worker run as children of their own (one cannot freeze the
other), each restarted with backoff when it dies, and none outlives the parent — on Linux every child asks
the kernel for SIGKILL when its parent dies (prctl PR_SET_PDEATHSIG), so even `kill -9` of `dealflow up`
leaves no worker, API or dev server holding a port for the next start."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PR_SET_PDEATHSIG = 1


def _prctl():
    try:  # looked up here, in the parent: between fork and exec the child should only make the call
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: the parent's own shutdown is the only guard
        return None


_PRCTL = _prctl()


def die_with_parent() -> None:
    """preexec_fn for a child: SIGKILL when the parent goes. Must be spawned from the main thread (the
    kernel ties PDEATHSIG to the thread that forked)."""
    if _PRCTL is None:
        return
    _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


@dataclass
class Child:
    name: str
    command: list[str]
    env: dict[str, str]
    ready: Callable[[], bool]
    log_file: Path | None = None
    stop_timeout: float = 30.0
    # Run before every start (e.g. remove the ready file a dead run left, so `ready` waits for the new one).
    before_start: Callable[[], None] | None = None
    pass_fds: tuple[int, ...] = ()  # inherited by the child under the same numbers (a shared listening socket)
    process: subprocess.Popen | None = None
    state: str = "stopped"  # starting, ready, restarting, stopped
    restarts: int = 0
    last_exit: int | None = None
    _next_start: float = 0.0
    _started_at: float = field(default=0.0)

    def start(self) -> None:
        if self.before_start:
            self.before_start()
        log = open(self.log_file, "ab") if self.log_file else None  # noqa: SIM115
        try:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=log or subprocess.DEVNULL,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True, preexec_fn=die_with_parent,
                                            pass_fds=self.pass_fds)
        finally:
            if log:
                log.close()  # the child has its own copy; one handle per restart would leak otherwise
        self.state, self._started_at = "starting", time.monotonic()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            self.state = "stopped"
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.state = "stopped"


class Supervisor:
    """Start the children, watch them, restart the ones that die (1 s, 2 s, 4 s … 30 s between tries; a child
    that stayed up a minute starts again from 1 s), stop them in order."""

    def __init__(self, children: list[Child], on_change: Callable[[Child, str], None]) -> None:
        self.children, self._on_change = children, on_change
        self._stopping = False

    def _set(self, child: Child, state: str, note: str = "") -> None:
        if child.state != state or note:
            child.state = state
            self._on_change(child, note)

    def start_all(self) -> None:
        for child in self.children:
            child.start()
            self._on_change(child, "")

    def check(self) -> None:
        """One look at every child (call it from the main thread: restarts fork from here)."""
        now = time.monotonic()
        for child in self.children:
            code = child.process.poll() if child.process else None
            if child.state in ("starting", "ready") and code is not None and not self._stopping:
                child.last_exit, child.restarts = code, child.restarts + 1
                lived = now - child._started_at
                delay = 1.0 if lived > 60 else min(30.0, 2.0 ** min(child.restarts - 1, 5))
                child._next_start = now + delay
                self._set(child, "restarting", f"exited with code {code}; starting again in {delay:.0f} s")
            elif child.state == "restarting" and now >= child._next_start and not self._stopping:
                child.start()
                self._on_change(child, "")
            elif child.state == "starting" and code is None and child.ready():
                self._set(child, "ready")

    async def watch(self, stop: asyncio.Event, interval: float = 0.5) -> None:
        while not stop.is_set():
            self.check()
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except TimeoutError:
                pass

    def stop_all(self) -> None:
        """In the order given (the API first: it stops taking requests, then the worker finishes its tasks)."""
        self._stopping = True
        for child in self.children:
            child.stop()
            self._on_change(child, "")
