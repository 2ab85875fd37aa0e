"""`dealflow up`'s supervisor: a child that dies is started again, and its readiness is the new run's."""

from __future__ import annotations

import gc
import os
import sys
import time
import warnings

from core.supervisor import Child, Supervisor

# Writes its ready file after 0.3 s, then dies with code 3 half a second later.
SCRIPT = "import pathlib, sys, time; time.sleep(0.3); pathlib.Path(sys.argv[1]).write_text('up'); time.sleep(0.5); sys.exit(3)"


def test_a_restarted_child_is_ready_only_when_its_new_run_is_and_no_log_handle_leaks(tmp_path):
    ready = tmp_path / "ready"
    child = Child("c", [sys.executable, "-c", SCRIPT, str(ready)], dict(os.environ), ready=ready.exists,
                  log_file=tmp_path / "c.log", before_start=lambda: ready.unlink(missing_ok=True))
    states: list[str] = []
    supervisor = Supervisor([child], lambda c, note: states.append(c.state))
    deadline, restarted_ready_at_once = time.monotonic() + 15, None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        supervisor.start_all()
        try:
            while time.monotonic() < deadline and child.restarts < 2:
                before = child.state
                supervisor.check()
                if before == "restarting" and child.state == "starting":
                    restarted_ready_at_once = child.ready()  # the dead run's file must not count
                time.sleep(0.02)
        finally:
            supervisor.stop_all()
        gc.collect()
    assert states[:4] == ["starting", "ready", "restarting", "starting"], states
    assert restarted_ready_at_once is False
    assert child.last_exit == 3 and child.restarts == 2
    # the parent closed its copy of the log after each start (an unclosed one is a ResourceWarning when collected)
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
