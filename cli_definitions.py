"""`dealflow definitions`: validate, test (dry run), publish, list, show and retire YAML definitions."""

from __future__ import annotations

import asyncio
import calendar
import re
from datetime import datetime
from pathlib import Path

import typer

from cli_common import CliError, console, err, load_settings, migrate_database

definitions_app = typer.Typer(help="Ops-authored YAML workflow definitions.", no_args_is_help=True)


def _load_definition(path: Path):
    from definitions.loader import DefinitionInvalid, load

    try:
        return load(path.read_text(), str(path))
    except DefinitionInvalid as exc:
        for problem in exc.problems:
            err.print(problem.format(str(path)), highlight=False, soft_wrap=True)
        raise CliError(f"{path}: {len(exc.problems)} problem(s)") from None


@definitions_app.command("validate")
def definitions_validate(files: list[Path] = typer.Argument(..., exists=True, dir_okay=False)) -> None:
    """Check definitions; every problem is printed as file:line:column: message."""
    failed = 0
    for path in files:
        try:
            definition = _load_definition(path)
        except CliError as exc:
            failed += 1
            err.print(f"[red]✗[/] {exc}", highlight=False, soft_wrap=True)
        else:
            console.print(f"[green]✓[/] {path}: {definition.key} v{definition.version}, {len(definition.steps)} steps",
                          highlight=False)
    if failed:
        raise CliError(f"{failed} of {len(files)} definition(s) invalid")


@definitions_app.command("test")
def definitions_test(
    path: Path = typer.Argument(..., exists=True, dir_okay=False),
    subject: Path = typer.Option(None, "--subject", exists=True, dir_okay=False,
                                 help="sample lead, deal or investor (JSON)"),
    events: Path = typer.Option(None, "--events", exists=True, dir_okay=False,
                                help="YAML list of {after: 1d, name: lead.replied, data: {...}}"),
    start_on: str = typer.Option(None, "--start-on", help="the weekday day 0 falls on: mon, tue, ... sun "
                                                          "(default: the next --start-at, whatever day it is)"),
    start_at: str = typer.Option("09:00", "--start-at", help="when day 0 begins, HH:MM in the sample's zone"),
) -> None:
    """Dry run on the time-skipping test server: side effects recorded, not performed; prints the path."""
    import json as _json

    from ruamel.yaml import YAML

    from definitions.send_window import CLOCK
    from services.dry_run import WEEKDAYS, dry_run, sample_subject

    names = {**{d: i for i, d in enumerate(WEEKDAYS)}, **{d.lower(): i for i, d in enumerate(calendar.day_name)}}
    if start_on is not None and start_on.lower() not in names:
        raise CliError(f"--start-on {start_on!r}: not a weekday (mon, tue, wed, thu, fri, sat or sun)")
    if not re.fullmatch(CLOCK, start_at):
        raise CliError(f"--start-at {start_at!r}: not a time like 09:00")
    definition = _load_definition(path)
    sample = _json.loads(subject.read_text()) if subject else sample_subject(definition.subject)
    timeline = (YAML(typ="safe").load(events.read_text()) or []) if events else []
    with console.status(f"Running {definition.key} v{definition.version} on the time-skipping test server"):
        result = asyncio.run(dry_run(definition, sample, timeline, start_at=start_at,
                                     weekday=names[start_on.lower()] if start_on else None))
    for line in result["lines"]:
        console.print(line, highlight=False)
    day0 = datetime.fromisoformat(result["starts"])
    console.print(f"[bold]{result['status']}[/] (times in {result['zone']}; day 0 is {day0:%A %d %B})",
                  highlight=False)


def _definition_store(tenant: str | None):
    from core.db import make_engine

    settings = load_settings()
    migrate_database(settings)
    return make_engine(settings.effective_database_url), tenant or settings.default_tenant


@definitions_app.command("publish")
def definitions_publish(path: Path = typer.Argument(..., exists=True, dir_okay=False),
                        tenant: str = typer.Option(None, "--tenant", "-t")) -> None:
    """Validate, store and publish (new enrollments use it; running ones keep their version)."""
    from sqlmodel import Session

    from services.definition_store import DefinitionConflict, publish, save_draft
    from models.audit import AuditLog

    definition = _load_definition(path)
    engine, tenant = _definition_store(tenant)
    try:
        with Session(engine) as session:
            save_draft(session, tenant, path.read_text(), str(path), "cli")
            session.flush()
            row = publish(session, tenant, definition.key, definition.version)
            session.add(AuditLog(tenant_id=tenant, actor="cli", action="definition.publish", entity_type="definition",
                                 entity_id=f"{row.key}@{row.version}", after={"content_hash": row.content_hash}))
            session.commit()
    except DefinitionConflict as exc:
        raise CliError(str(exc)) from None
    finally:
        engine.dispose()
    console.print(f"[green]✓[/] published {definition.key} v{definition.version} for {tenant}")


@definitions_app.command("list")
def definitions_list(tenant: str = typer.Option(None, "--tenant", "-t")) -> None:
    """Every definition version of the tenant."""
    from rich.table import Table
    from sqlmodel import Session, select

    from models.definition import WorkflowDefinition

    engine, tenant = _definition_store(tenant)
    table = Table("key", "version", "status", "published", "hash")
    with Session(engine) as session:
        for row in session.exec(select(WorkflowDefinition).where(WorkflowDefinition.tenant_id == tenant)
                                .order_by(WorkflowDefinition.key, WorkflowDefinition.version)):
            table.add_row(row.key, str(row.version), row.status,
                          f"{row.published_at:%Y-%m-%d %H:%M}" if row.published_at else "-", row.content_hash[:12])
    engine.dispose()
    console.print(table)


@definitions_app.command("show")
def definitions_show(key: str, version: int = typer.Option(None, help="default: the newest"),
                     tenant: str = typer.Option(None, "--tenant", "-t")) -> None:
    """Print a stored version's YAML exactly as published."""
    from sqlmodel import Session, col, select

    from models.definition import WorkflowDefinition

    engine, tenant = _definition_store(tenant)
    with Session(engine) as session:
        query = select(WorkflowDefinition).where(WorkflowDefinition.tenant_id == tenant, WorkflowDefinition.key == key)
        if version:
            query = query.where(WorkflowDefinition.version == version)
        row = session.exec(query.order_by(col(WorkflowDefinition.version).desc())).first()
    engine.dispose()
    if row is None:
        raise CliError(f"no definition {key}" + (f" version {version}" if version else "") + f" for {tenant}")
    console.print(f"# {row.key} v{row.version} ({row.status}, sha256 {row.content_hash[:12]})", highlight=False)
    print(row.source)


@definitions_app.command("retire")
def definitions_retire(key: str, tenant: str = typer.Option(None, "--tenant", "-t")) -> None:
    """Stop new enrollments (running executions finish on their version)."""
    from sqlmodel import Session

    from services.definition_store import retire

    engine, tenant = _definition_store(tenant)
    with Session(engine) as session:
        count = retire(session, tenant, key)
        session.commit()
    engine.dispose()
    if not count:
        raise CliError(f"no published version of {key} for {tenant}")
    console.print(f"[green]✓[/] retired {count} version(s) of {key}")
