"""The `dealflow` command as a user runs it: keys, one-line errors, and `up` end to end."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tests.conftest import TEST_SECRET_KEY

ROOT = Path(__file__).resolve().parents[2]
DEALFLOW = [sys.executable, "-c", "import cli; cli.main()"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALFLOW_")}
    env.update({"DEALFLOW_HOME": str(tmp_path / ".dealflow"), "PYTHONPATH": str(ROOT),
                "DEALFLOW_METRICS_ADDRESS": "", "DEALFLOW_TEMPORAL_METRICS_ADDRESS": "", **extra})
    return env


def _wait_healthy(process: subprocess.Popen, base: str, timeout: float = 120, home: Path | None = None) -> None:
    """The API answers /health (and, given `home`, the worker says it polls: `dealflow up` is all up)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200 and (
                    home is None or (home / "worker.ready").exists()):
                return
        except httpx.HTTPError:
            pass
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "dealflow up did not become healthy"
        time.sleep(0.3)


def test_python_worker_py_reports_configuration_errors_in_one_line(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "worker.py")], cwd=tmp_path, capture_output=True, text=True,
                         env=_env(tmp_path, DEALFLOW_SMS_PROVIDER="twilio"), timeout=120)
    assert out.returncode == 1
    assert out.stderr.strip() == ("error: bad configuration: DEALFLOW_TWILIO_ACCOUNT_SID is required: sms provider "
                                  "'twilio' is selected (default)")
    short = subprocess.run([sys.executable, str(ROOT / "worker.py")], cwd=tmp_path, capture_output=True, text=True,
                           env=_env(tmp_path, DEALFLOW_SECRET_KEY="short"), timeout=120)
    assert short.returncode == 1
    assert short.stderr.strip().startswith("error: DEALFLOW_SECRET_KEY is too short (5 characters)"), short.stderr


def test_keys_create_off_a_terminal_writes_the_key_to_a_private_file_and_lists_revoke_it(tmp_path):
    """Off a terminal (a script, CI, a log) the key is never printed: the last word is the path of a 0600 file."""
    out = subprocess.run([*DEALFLOW, "keys", "create", "--tenant", "acme", "--role", "ops", "--name", "zapier"],
                         cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    path = Path(out.stdout.split()[-1])
    assert "dfk_" not in out.stdout and "Created ops key" in out.stdout
    assert path.parent == tmp_path / ".dealflow" / "keys" and path.name.startswith("ak_")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    key = path.read_text().strip()
    assert key.startswith("dfk_")
    listed = subprocess.run([*DEALFLOW, "keys", "list", "--tenant", "acme"], cwd=tmp_path,
                            env={**_env(tmp_path), "COLUMNS": "200"}, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert key.split("_")[1] in listed.stdout and "zapier" in listed.stdout and "ops" in listed.stdout
    assert key.split("_", 2)[2] not in listed.stdout  # never the secret
    revoked = subprocess.run([*DEALFLOW, "keys", "revoke", key], cwd=tmp_path, env=_env(tmp_path),
                             capture_output=True, text=True, timeout=120)
    assert revoked.returncode == 0 and "revoked" in revoked.stdout, revoked.stderr
    listed = subprocess.run([*DEALFLOW, "keys", "list", "--tenant", "acme"], cwd=tmp_path,
                            env={**_env(tmp_path), "COLUMNS": "200"}, capture_output=True, text=True, timeout=120)
    [line] = [line for line in listed.stdout.splitlines() if key.split("_")[1] in line]
    assert line.rstrip()[-1].isdigit()  # the revoked column has a time now, not "-"
    unknown = subprocess.run([*DEALFLOW, "keys", "revoke", "ak_nope"], cwd=tmp_path, env=_env(tmp_path),
                             capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 1 and unknown.stderr.strip() == "error: no key 'ak_nope'"


def test_keys_create_on_a_terminal_prints_the_key_last(tmp_path):
    import pty

    leader, follower = pty.openpty()
    process = subprocess.Popen([*DEALFLOW, "keys", "create", "--tenant", "acme", "--role", "staff"], cwd=tmp_path,
                               env={**_env(tmp_path), "TERM": "xterm"}, stdin=follower, stdout=follower,
                               stderr=follower)
    os.close(follower)
    seen = bytearray()
    try:
        process.wait(120)  # a few lines: they wait in the terminal's buffer
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen.extend(chunk)
    finally:
        os.close(leader)
    assert process.returncode == 0
    words = _plain(bytes(seen)).split()
    assert words[-1].startswith("dfk_") and "shown once" in _plain(bytes(seen))
    assert not (tmp_path / ".dealflow" / "keys").exists()


@pytest.mark.parametrize("args, env, message", [
    (["keys", "create", "--tenant", "no spaces!", "--role", "staff"], {}, "error: tenant 'no spaces!' must be"),
    (["keys", "create", "--tenant", "acme"], {"DEALFLOW_DATABASE_URL": "mysql://x@y/z"},
     "error: bad configuration: DEALFLOW_DATABASE_URL: unsupported database URL scheme in 'mysql'"),
    (["worker"], {"DEALFLOW_EMAIL_PROVIDER": "sendgrid"},
     "error: bad configuration: DEALFLOW_SENDGRID_API_KEY is required: email provider 'sendgrid' is selected"),
    (["api"], {"DEALFLOW_TENANT_PROVIDERS": '{"acme": {"sms": "twilio"}}'},
     "error: bad configuration: DEALFLOW_TWILIO_ACCOUNT_SID is required: sms provider 'twilio' is selected "
     "(tenant acme)"),
    # Outside `dealflow up`, a server without a proper secret key does not start (issue 10).
    (["api"], {}, "error: DEALFLOW_SECRET_KEY is not set: set it to a random value of at least 32 characters"),
    (["worker"], {"DEALFLOW_SECRET_KEY": "dev-only-change-me"},
     "error: DEALFLOW_SECRET_KEY is too short (18 characters)"),
])
def test_errors_are_one_clear_line(tmp_path, args, env, message):
    out = subprocess.run([*DEALFLOW, *args], cwd=tmp_path, env=_env(tmp_path, **env), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("variable", ["DEALFLOW_METRICS_ADDRESS", "DEALFLOW_TEMPORAL_METRICS_ADDRESS"])
def test_a_metrics_port_in_use_is_one_clear_line(tmp_path, variable):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        address = "127.0.0.1:%d" % busy.getsockname()[1]
        out = subprocess.run([*DEALFLOW, "worker"], cwd=tmp_path,
                             env=_env(tmp_path, DEALFLOW_SECRET_KEY=TEST_SECRET_KEY, **{variable: address}),
                             capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert lines == [f"error: cannot serve metrics on {address}: Address already in use (set {variable}, or "
                     "empty to turn them off)"], out.stderr


def test_up_runs_everything_and_ctrl_c_stops_it(tmp_path):
    api_port, temporal_port, ui_port = _free_port(), _free_port(), _free_port()
    metrics_port, sdk_metrics_port = _free_port(), _free_port()
    env = _env(tmp_path, DEALFLOW_API_PORT=str(api_port), DEALFLOW_EMBEDDED_TEMPORAL_PORT=str(temporal_port),
               DEALFLOW_EMBEDDED_TEMPORAL_UI_PORT=str(ui_port), DEALFLOW_TEMPORAL_TASK_QUEUE="up-test",
               DEALFLOW_METRICS_ADDRESS=f"127.0.0.1:{metrics_port}",
               DEALFLOW_TEMPORAL_METRICS_ADDRESS=f"127.0.0.1:{sdk_metrics_port}")
    process = subprocess.Popen([*DEALFLOW, "up", "--demo"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{api_port}"
    try:
        _wait_healthy(process, base)
        key = (tmp_path / ".dealflow" / "dev-admin-key").read_text().strip()
        headers = {"Authorization": f"Bearer {key}"}
        leads = httpx.get(f"{base}/api/v1/leads?limit=200", headers=headers).json()["items"]
        assert len(leads) >= 30  # the demo book (a few demo leads dedupe on purpose)
        created = httpx.post(f"{base}/api/v1/leads", headers=headers, timeout=10, json={
            "first_name": "Curl", "last_name": "User", "phone": "(404) 555-0100", "source": "web_form",
            "property_address": "77 Peachtree St, Atlanta, GA 30303"})
        assert created.status_code == 201, created.text
        workflow_id = created.json()["workflow_id"]
        for _ in range(100):
            # (a generous timeout: the demo book's 40 leads keep the worker busy at first, and the answer waits for
            # the workflow's query)
            described = httpx.get(f"{base}/api/v1/workflows/{workflow_id}", headers=headers, timeout=30).json()
            if described.get("state") and described["state"]["received"]:
                break
            time.sleep(0.2)
        assert described["status"] == "RUNNING"
        assert described["search_attributes"]["TenantId"] == "demo"
        # Metrics are not on the API's port but on their own address, served by `dealflow up` for every process:
        # the relay's deliveries (counted in the worker) and the API processes' requests in one scrape.
        assert httpx.get(f"{base}/metrics").status_code == 404
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        delivered = [line for line in metrics.splitlines()
                     if line.startswith('dealflow_events_delivered_total{event="lead.created"}')]
        assert delivered and float(delivered[0].split()[-1]) >= 1, metrics[-3000:]
        assert 'dealflow_http_requests_total{method="POST",route="/api/v1/leads",status="201"}' in metrics
        assert "dealflow_relay_backlog_events " in metrics
        # and the worker's Temporal SDK metrics on theirs
        sdk = httpx.get(f"http://127.0.0.1:{sdk_metrics_port}/metrics").text
        assert "temporal_workflow_task_execution_latency" in sdk, sdk[:2000]
        assert httpx.get(f"http://127.0.0.1:{ui_port}/", timeout=5).status_code == 200  # Temporal Web UI
        assert httpx.get(f"{base}/docs").status_code == 200
        # The console, signed in as the dev admin with the password `up` made and kept
        password = (tmp_path / ".dealflow" / "dev-console-password").read_text().strip()
        with httpx.Client(base_url=base) as browser:
            token = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/app/sign-in").text).group(1)
            signed = browser.post("/app/sign-in", data={"email": "admin@demo.example.com", "password": password,
                                                        "csrf_token": token})
            assert signed.status_code == 303, signed.text
            assert browser.get("/app/leads").status_code == 200 and "Curl User" in browser.get("/app/leads").text
        assert (tmp_path / ".dealflow" / "temporal.db").exists() and (tmp_path / ".dealflow" / "crm.db").exists()
        # Embedded state is the user's alone (issue 10): the folder 0700, its files 0600, the key made once.
        home = tmp_path / ".dealflow"
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        for name in ("secret-key", "dev-admin-key", "dev-console-password", "crm.db", "temporal.db", "api.log",
                     "worker.log"):
            assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name
        assert len((home / "secret-key").read_text().strip()) == 64
        assert stat.S_IMODE((home / "metrics").stat().st_mode) == 0o700
    finally:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr[-2000:]
    assert "Dealflow is up" in stdout and "stopped" in stdout
    for port in (api_port, temporal_port, ui_port, metrics_port, sdk_metrics_port):  # nothing left running
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"


def test_up_reuses_an_external_temporal_and_database(tmp_path, settings, temporal_client):
    from tests.integration.stack import own_database

    api_port = _free_port()
    # A database of its own: the relay of this `up` must not deliver other tests' events to its task queue.
    with own_database(settings.database_url) as database_url:
        env = _env(tmp_path, DEALFLOW_API_PORT=str(api_port), DEALFLOW_TEMPORAL_ADDRESS=settings.temporal_address,
                   DEALFLOW_DATABASE_URL=database_url, DEALFLOW_TEMPORAL_TASK_QUEUE="up-external",
                   DEALFLOW_DEFAULT_TENANT="external")
        process = subprocess.Popen([*DEALFLOW, "up"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        try:
            _wait_healthy(process, f"http://127.0.0.1:{api_port}", home=tmp_path / ".dealflow")
            time.sleep(1)  # the banner follows the worker's readiness
        finally:
            process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr[-2000:]
    assert f"external Temporal at {settings.temporal_address}" in stdout
    assert not (tmp_path / ".dealflow" / "temporal.db").exists()
    assert not (tmp_path / ".dealflow" / "crm.db").exists()
    assert (tmp_path / ".dealflow" / "dev-admin-key").exists()


def _descendants(pid: int) -> set[int]:
    """Every process below `pid` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def _lead_started(base: str, headers: dict, lead_id: str) -> bool:
    return httpx.get(f"{base}/api/v1/leads/{lead_id}", headers=headers, timeout=10).json()["workflow_status"] \
        not in ("PENDING", None)


def test_up_killed_with_sigkill_leaves_nothing_behind_and_a_dead_part_is_restarted(tmp_path):
    api_port, temporal_port, ui_port = _free_port(), _free_port(), _free_port()
    env = _env(tmp_path, DEALFLOW_API_PORT=str(api_port), DEALFLOW_EMBEDDED_TEMPORAL_PORT=str(temporal_port),
               DEALFLOW_EMBEDDED_TEMPORAL_UI_PORT=str(ui_port), DEALFLOW_TEMPORAL_TASK_QUEUE="up-kill",
               DEALFLOW_API_PROCESSES="2")
    base = f"http://127.0.0.1:{api_port}"
    first = subprocess.Popen([*DEALFLOW, "up"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    _wait_healthy(first, base)
    headers = {"Authorization": f"Bearer {(tmp_path / '.dealflow' / 'dev-admin-key').read_text().strip()}"}
    lead_ids = [httpx.post(f"{base}/api/v1/leads", headers=headers, timeout=10, json={
        "first_name": f"Kill{i}", "email": f"kill{i}@example.com", "source": "ppc"}).json()["id"] for i in range(5)]
    children = _descendants(first.pid)
    assert len(children) >= 3, children  # the dev server, the worker and the API
    first.kill()  # SIGKILL: no handler runs
    first.wait(10)
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [(pid, _cmdline(pid)) for pid in children if _alive(pid)], "orphans survived dealflow up"

    second = subprocess.Popen([*DEALFLOW, "up"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)  # the ports are free: it starts
    try:
        _wait_healthy(second, base)
        deadline = time.monotonic() + 60  # the leads accepted before the kill all get their workflow
        while not all(_lead_started(base, headers, i) for i in lead_ids):
            assert time.monotonic() < deadline, "a lead accepted before the kill never got its workflow"
            time.sleep(0.3)
        apis = [pid for pid in _descendants(second.pid) if " api --fd " in _cmdline(pid)]
        assert len(apis) == 2, [_cmdline(p) for p in _descendants(second.pid)]  # DEALFLOW_API_PROCESSES=2
        os.kill(apis[0], signal.SIGKILL)  # one API process dies: the other answers meanwhile, and it comes back
        for _ in range(20):
            assert httpx.get(f"{base}/health", timeout=10).status_code == 200
        deadline = time.monotonic() + 30
        while len([p for p in _descendants(second.pid) if " api --fd " in _cmdline(p) and _alive(p)]) < 2:
            assert time.monotonic() < deadline, "the API process was not restarted"
            time.sleep(0.2)
        [worker] = [pid for pid in _descendants(second.pid) if "worker.py" in _cmdline(pid)]
        os.kill(worker, signal.SIGKILL)  # a part that dies is started again
        deadline = time.monotonic() + 30
        while not [p for p in _descendants(second.pid) if "worker.py" in _cmdline(p) and p != worker and _alive(p)]:
            assert time.monotonic() < deadline, "the worker was not restarted"
            time.sleep(0.2)
        late = httpx.post(f"{base}/api/v1/leads", headers=headers, timeout=10, json={
            "first_name": "Late", "email": "late@example.com", "source": "ppc"}).json()["id"]
        deadline = time.monotonic() + 60
        while not _lead_started(base, headers, late):
            assert time.monotonic() < deadline, "the restarted worker did not deliver"
            time.sleep(0.3)
    finally:
        second.send_signal(signal.SIGINT)
        stdout, stderr = second.communicate(timeout=90)
    assert second.returncode == 0, stderr[-2000:]
    assert "worker  restarting" in stdout and re.search(r"api-\d\s+restarting", stdout) and "stopped" in stdout, stdout


def _read_pty(fd: int, sink: bytearray, until: bytes, timeout: float, process: subprocess.Popen) -> None:
    import select

    deadline = time.monotonic() + timeout
    while until not in sink:
        assert process.poll() is None, bytes(sink).decode(errors="replace")[-3000:]
        assert time.monotonic() < deadline, f"{until!r} not seen: " + bytes(sink).decode(errors="replace")[-3000:]
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                sink.extend(os.read(fd, 65536))
            except OSError:  # the other end closed
                return


def _plain(raw: bytes) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", raw.decode(errors="replace"))


def test_up_on_a_terminal_shows_progress_a_banner_and_next_steps_and_status_answers(tmp_path):
    """What a newcomer sees: each part's state while it starts, the banner, the next steps, no log dump; then
    `dealflow status` says what runs (exit 0) and, once it is stopped, that it is down (exit 1)."""
    import pty

    api_port, temporal_port, ui_port, metrics_port = _free_port(), _free_port(), _free_port(), _free_port()
    env = _env(tmp_path, DEALFLOW_API_PORT=str(api_port), DEALFLOW_EMBEDDED_TEMPORAL_PORT=str(temporal_port),
               DEALFLOW_EMBEDDED_TEMPORAL_UI_PORT=str(ui_port), DEALFLOW_TEMPORAL_TASK_QUEUE="up-terminal",
               DEALFLOW_API_PROCESSES="1", COLUMNS="200", TERM="xterm-256color",
               DEALFLOW_METRICS_ADDRESS=f"127.0.0.1:{metrics_port}")
    leader, follower = pty.openpty()
    process = subprocess.Popen([*DEALFLOW, "up"], cwd=tmp_path, env=env, stdin=follower, stdout=follower,
                               stderr=follower)
    os.close(follower)
    seen = bytearray()
    try:
        _read_pty(leader, seen, b"Ctrl-C stops everything", 180, process)
        screen = _plain(bytes(seen))
        for part in ("database", "temporal", "api", "worker"):  # the live display's lines, each at ready
            assert re.search(rf"✓ {part}\s+ready", screen), screen
        assert "starting" in screen  # shown while they started
        assert "Dealflow is up" in screen and f"http://127.0.0.1:{api_port}/docs" in screen
        assert f"http://127.0.0.1:{metrics_port}/metrics" in screen  # where Prometheus scrapes
        key = (tmp_path / ".dealflow" / "dev-admin-key").read_text().strip()
        assert key in screen and "kept in .dealflow/dev-admin-key" in screen
        assert f"curl -s -X POST http://127.0.0.1:{api_port}/api/v1/leads" in screen
        assert f"http://127.0.0.1:{ui_port}/namespaces/default/workflows?query=TenantId%3D%22demo%22" in screen
        assert "definitions publish" in screen and "investor-capital-raise.yaml" in screen
        for noise in ('{"time"', "alembic", "setup plugin", "Traceback", "Warning"):
            assert noise not in screen, screen

        status_env = {**env, "COLUMNS": "200"}
        out = subprocess.run([*DEALFLOW, "status", "--json"], cwd=tmp_path, env=status_env, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        body = json.loads(out.stdout)
        assert body["ok"] is True
        assert {name: part["state"] for name, part in body["parts"].items()} == {
            "temporal": "up", "worker": "up", "api": "up", "relay": "up", "database": "up"}
        assert body["parts"]["temporal"]["address"] == f"127.0.0.1:{temporal_port}"
        assert body["parts"]["api"]["address"] == f"http://127.0.0.1:{api_port}"
        assert body["relay"]["backlog"] >= 0 and body["relay"]["parked"] == 0
        assert set(body["workflows"]) >= {"LeadWorkflow", "DefinitionWorkflow"}
        assert body["scoring_model"]["tenant"] == "demo"
        table = subprocess.run([*DEALFLOW, "status"], cwd=tmp_path, env=status_env, capture_output=True, text=True,
                               timeout=60)
        assert table.returncode == 0 and "everything is up" in table.stdout, table.stdout + table.stderr
        assert re.search(r"worker\s+│\s+up", table.stdout), table.stdout
    finally:
        process.send_signal(signal.SIGINT)
        _read_pty(leader, seen, b"stopped", 60, process) if process.poll() is None else None
        process.wait(60)
        os.close(leader)
    assert process.returncode == 0, _plain(bytes(seen))[-2000:]
    down = subprocess.run([*DEALFLOW, "status", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert down.returncode == 1, down.stdout + down.stderr
    parts = json.loads(down.stdout)["parts"]
    assert parts["temporal"]["state"] == "down" and parts["api"]["state"] == "down"
    assert parts["worker"]["state"] == "down"
