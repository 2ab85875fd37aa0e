"""Where an intake's time goes: pyinstrument over authenticate + receive_lead + the response model, 200 leads
one after another on a fresh Postgres database (DEALFLOW_TEST_DATABASE_URL or the local server).

    python bench/profile_intake.py [--leads 200] [--backend postgres|sqlite]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyinstrument import Profiler  # noqa: E402
from sqlmodel import Session  # noqa: E402

from api.routes.leads import _public  # noqa: E402
from api.security import authenticate, create_api_key  # noqa: E402
from bench.intake import fresh_database, lead_body  # noqa: E402
from core.db import make_engine  # noqa: E402
from models.lead import LeadCreate  # noqa: E402
from models.tenant import Role  # noqa: E402
from services.lead_intake import receive_lead  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=200)
    parser.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, fresh_database(args.backend, Path(tmp)) as url:
        engine = make_engine(url)
        _, key = create_api_key(engine, "profile", Role.staff)
        for i in range(30):  # warm caches and connections
            with Session(engine, expire_on_commit=False) as session:
                receive_lead(session, "profile", "bench", LeadCreate(**lead_body("warm", i)))
        profiler = Profiler()
        profiler.start()
        started = time.perf_counter()
        for i in range(args.leads):
            with Session(engine, expire_on_commit=False) as session:
                authenticate(session, key)
                lead, _ = receive_lead(session, "profile", "bench", LeadCreate(**lead_body("profile", i)))
                _public(session, lead)
        elapsed = time.perf_counter() - started
        profiler.stop()
        engine.dispose()
    print(f"{elapsed / args.leads * 1000:.2f} ms per intake ({args.backend}, one at a time)")
    print(profiler.output_text(unicode=False, color=False))


if __name__ == "__main__":
    main()
