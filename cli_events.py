"""`dealflow events`: the event outbox from a terminal — the backlog, the parked events and why, redrive and
discard (the same services as GET/POST /api/v1/events)."""

from __future__ import annotations

import typer
from rich.table import Table

from cli_common import CliError, console, load_settings, migrate_database

events_app = typer.Typer(help="The event outbox: backlog, parked events, redrive and discard.",
                         no_args_is_help=True)


def _engine():
    from core.db import make_engine

    settings = load_settings()
    migrate_database(settings)
    return make_engine(settings.effective_database_url)


@events_app.command("list")
def events_list(
    parked: bool = typer.Option(False, "--parked", help="only events parked after repeated failures"),
    tenant: str = typer.Option(None, "--tenant", "-t", help="one tenant only"),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
) -> None:
    """Undelivered events, oldest first, with their attempts and last error; and the backlog figures."""
    from sqlmodel import Session, col, select

    from models.event import Event, backlog

    engine = _engine()
    with Session(engine) as session:
        query = select(Event).where(col(Event.delivered_at).is_(None))
        query = query.where(col(Event.parked_at).is_not(None)) if parked else query
        if tenant:
            query = query.where(Event.tenant_id == tenant)
        rows = session.exec(query.order_by(col(Event.seq)).limit(limit)).all()
        count, oldest, parked_count = backlog(session)
    engine.dispose()
    table = Table("seq", "tenant", "event", "subject", "state", "attempts", "last error")
    for row in rows:
        table.add_row(str(row.seq), row.tenant_id, row.name, f"{row.subject_type} {row.subject_id}",
                      "parked" if row.parked_at else "pending", str(row.attempts), (row.last_error or "")[:80])
    console.print(table)
    age = f", oldest {oldest:.0f} s old" if oldest is not None else ""
    console.print(f"backlog: {count} undelivered{age}; parked: {parked_count}", highlight=False)


def _apply(action, seqs: list[int], all_parked: bool, tenant: str | None, verb: str) -> None:
    from sqlmodel import Session

    if not seqs and not all_parked:
        raise CliError(f"name the events to {verb} (their seq numbers) or pass --all")
    engine = _engine()
    with Session(engine) as session:
        rows = action(session, None if all_parked else seqs, tenant_id=tenant, actor="cli")
    engine.dispose()
    missing = set(seqs) - {r.seq for r in rows}
    console.print(f"{verb}: {len(rows)} event(s)" + (f"; not parked: {sorted(missing)}" if missing else ""),
                  highlight=False)
    if missing:
        raise typer.Exit(1)


@events_app.command("redrive")
def events_redrive(
    seqs: list[int] = typer.Argument(None, help="seq numbers of parked events"),
    all_parked: bool = typer.Option(False, "--all", help="every parked event (of --tenant, if given)"),
    tenant: str = typer.Option(None, "--tenant", "-t"),
) -> None:
    """Put parked events back in line; the relay tries them again."""
    from services.outbox import redrive

    _apply(redrive, seqs or [], all_parked, tenant, "redriven")


@events_app.command("discard")
def events_discard(
    seqs: list[int] = typer.Argument(..., help="seq numbers of parked events"),
    tenant: str = typer.Option(None, "--tenant", "-t"),
) -> None:
    """Mark parked events as dealt with by hand (kept, never delivered)."""
    from services.outbox import discard

    _apply(lambda session, s, **kw: discard(session, s or [], **kw), seqs, False, tenant, "discarded")
