"""`dealflow up`'s supervisor: a child that dies is started again, and its readiness is the new run's."""

from __future__ import annotations

import os
import sys
import time

from core.supervisor import Child, Supervisor

# Writes its ready file after 0.3 s, then dies with code 3 half a second later.
SCRIPT = "import pathlib, sys, time; time.sleep(0.3); pathlib.Path(sys.argv[1]).write_text('up'); time.sleep(0.5); sys.exit(3)"


def test_a_restarted_child_is_ready_only_when_its_new_run_is_and_no_log_handle_leaks(tmp_path):
    ready = tmp_path / "ready"
    child = Child("c", [sys.executable, "-c", SCRIPT, str(ready)], dict(os.environ), ready=ready.exists,
                  log_file=tmp_path / "c.log", before_start=lambda: ready.unlink(missing_ok=True))
    states: list[str] = []
    supervisor = Supervisor([child], lambda c, note: states.append(c.state))
    handles = len(os.listdir("/proc/self/fd"))
    supervisor.start_all()
    deadline, restarted_ready_at_once = time.monotonic() + 15, None
    try:
        while time.monotonic() < deadline and child.restarts < 2:
            before = child.state
            supervisor.check()
            if before == "restarting" and child.state == "starting":
                restarted_ready_at_once = child.ready()  # the dead run's file must not count
            time.sleep(0.02)
    finally:
        supervisor.stop_all()
    assert states[:4] == ["starting", "ready", "restarting", "starting"], states
    assert restarted_ready_at_once is False
    assert child.last_exit == 3 and child.restarts == 2
    assert len(os.listdir("/proc/self/fd")) == handles  # the parent kept no copy of the log per start
