"""Schemathesis over every operation of a live stack (real dev server, the worker, the API under uvicorn, the
test database's server): a fixed seed and a bounded number of examples per operation, all four phases (the
schema's examples, coverage, fuzzing, and the stateful phase that follows the OpenAPI links from a created lead,
investor, deal or definition), failing on any 5xx, an undocumented status or content type, or a body that does
not match its schema — the problem documents included (api/openapi.py declares them).

What it found, each now a regression test in test_bad_input.py or test_leads_api.py: PATCH /leads with
`first_name: null` (a NOT NULL violation) and `assigned_to: ""` (a foreign key), /metrics documented as JSON,
webhooks' 403s undocumented."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from core.db import make_engine
from core.devserver import DevServer
from api.security import create_api_key
from models.tenant import Role
from tests.integration.stack import free_port, own_database, start_api, start_worker, stop

ROOT = Path(__file__).resolve().parents[2]
# CI's budget; a deeper run: DEALFLOW_SCHEMATHESIS_EXAMPLES=100 DEALFLOW_SCHEMATHESIS_SEED=7 pytest this file.
SEED = os.environ.get("DEALFLOW_SCHEMATHESIS_SEED", "42")
EXAMPLES = os.environ.get("DEALFLOW_SCHEMATHESIS_EXAMPLES", "20")
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(tmp_path, database_url):
    temporal = DevServer(tmp_path / "temporal.db", port=free_port(), ui_port=None, log_file=tmp_path / "t.log")
    temporal.start()
    worker = api = None
    try:
        with own_database(database_url) as url:
            engine = make_engine(url)
            _, key = create_api_key(engine, "fuzzed", Role.admin)
            engine.dispose()
            settings = {"database_url": url, "temporal_address": temporal.address, "home": str(tmp_path),
                        "temporal_task_queue": "fuzzed"}
            worker = start_worker(**settings)
            port = free_port()
            api = start_api(port, **settings)
            run = subprocess.run(
                [str(Path(sys.executable).parent / "st"), "run", f"http://127.0.0.1:{port}/openapi.json",
                 "--header", f"Authorization: Bearer {key}", "--checks", CHECKS, "--seed", SEED,
                 "--max-examples", EXAMPLES, "--phases", "examples,coverage,fuzzing,stateful", "--request-timeout",
                 "30", "--max-failures", "20", "--no-color", "--generation-database", "none"],
                cwd=tmp_path, capture_output=True, text=True, timeout=900 * max(1, int(EXAMPLES) // 20))
            output = run.stdout + run.stderr
            summary = [line for line in output.splitlines() if " generated" in line]
            assert run.returncode == 0, output[-20_000:]
            assert summary and "passed" in summary[-1] and "fail" not in summary[-1], output[-5000:]
            generated = int(summary[-1].split()[0])
            assert generated > 1000, summary  # every operation was exercised, not skipped
    finally:
        stop(api)
        stop(worker)
        temporal.stop()
