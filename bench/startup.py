"""How long `dealflow up` takes until it is healthy: a first start on a fresh home (creates the databases), then
`--starts` more on the same home (a second `make run` on an installed tree). Healthy means /health answers
200 "ok" and the worker polls (its ready file). Prints JSON; asserts nothing.

    python bench/startup.py [--starts 3]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_start(home: Path, env: dict[str, str], api_port: int, timeout: float = 180) -> float:
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "up"], cwd=home.parent, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"dealflow up exited with {process.returncode}")
            try:
                response = httpx.get(f"http://127.0.0.1:{api_port}/health", timeout=2)
                if response.status_code == 200 and response.json()["status"] == "ok" and \
                        (home / "worker.ready").exists():
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            if time.perf_counter() - started > timeout:
                raise SystemExit(f"not healthy within {timeout:.0f} s")
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", type=int, default=3, help="starts after the first (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / ".dealflow"
        api_port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEALFLOW_")}
        env.update({"DEALFLOW_HOME": str(home), "DEALFLOW_API_PORT": str(api_port),
                    "DEALFLOW_EMBEDDED_TEMPORAL_PORT": str(_free_port()),
                    "DEALFLOW_EMBEDDED_TEMPORAL_UI_PORT": str(_free_port()), "PYTHONPATH": str(ROOT)})
        first = one_start(home, env, api_port)
        again = [one_start(home, env, api_port) for _ in range(args.starts)]
    print(json.dumps({
        "benchmark": "startup", "cpus": os.cpu_count(),
        "first_start_seconds": round(first, 2),
        "second_start_seconds": {"median": round(statistics.median(again), 2), "min": round(min(again), 2),
                                 "max": round(max(again), 2), "runs": [round(t, 2) for t in again]},
    }, indent=2))


if __name__ == "__main__":
    main()
