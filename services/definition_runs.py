"""The runs of ops' definitions as the console shows them: how many each key enrolled and how they ended, and who
is enrolled now.

A run is recorded (`workflow_executions`) when enrollment starts it, as `running`; the workflow itself writes
nothing when it ends, and the relay marks a row `closed` only when an event for it finds it gone. So before counting,
`settle` asks Temporal about the rows still recorded as open and writes down how each run ended: the interpreter's
own outcome (`completed`, `exited`, `failed`) from the run's result, or Temporal's (`terminated`, `timed_out`,
`canceled`), or `ended` when Temporal no longer knows the run (retention). A fact copied from Temporal, not a
change anybody makes: no event, no audit row."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from models.base import utcnow
from models.definition import WorkflowExecution
from models.investor import Investor
from models.lead import Lead
from models.opportunity import Opportunity

DEFINITION_WORKFLOW = "DefinitionWorkflow"
OPEN = ("running", "closed")  # what the database may still have to learn the end of
EXITED = {"exited", "canceled", "closed", "ended"}
FAILED = {"failed", "terminated", "timed_out"}
RPC_TIMEOUT = timedelta(seconds=5)


@dataclass
class RunCounts:
    enrolled: int = 0
    running: int = 0
    completed: int = 0
    exited: int = 0
    failed: int = 0
    by_version: dict[int, int] = field(default_factory=dict)


def run_counts(session: Session, tenant_id: str) -> dict[str, RunCounts]:
    """Per definition key: runs enrolled, running, completed, exited (left early: an exit rule, a stop, a lost
    deal, a cancel) and failed."""
    rows = session.exec(select(WorkflowExecution.definition_key, WorkflowExecution.definition_version,
                               WorkflowExecution.status, func.count())
                        .where(WorkflowExecution.tenant_id == tenant_id,
                               WorkflowExecution.workflow_type == DEFINITION_WORKFLOW)
                        .group_by(WorkflowExecution.definition_key, WorkflowExecution.definition_version,
                                  WorkflowExecution.status)).all()
    counts: dict[str, RunCounts] = {}
    for key, version, status, number in rows:
        entry = counts.setdefault(key or "", RunCounts())
        entry.enrolled += number
        if version is not None:
            entry.by_version[version] = entry.by_version.get(version, 0) + number
        if status == "running":
            entry.running += number
        elif status in FAILED:
            entry.failed += number
        elif status in EXITED:
            entry.exited += number
        else:
            entry.completed += number
    return counts


def enrolled_now(session: Session, tenant_id: str, key: str, limit: int = 200) -> list[WorkflowExecution]:
    """The key's runs still running, newest first."""
    return list(session.exec(select(WorkflowExecution).where(
        WorkflowExecution.tenant_id == tenant_id, WorkflowExecution.workflow_type == DEFINITION_WORKFLOW,
        WorkflowExecution.definition_key == key, WorkflowExecution.status == "running")
        .order_by(col(WorkflowExecution.started_at).desc()).limit(limit)).all())


def subject_names(session: Session, tenant_id: str, runs: list[WorkflowExecution]) -> dict[str, str]:
    """{subject id: what staff call it} for the runs' leads (their name), investors (theirs) and deals (titles)."""
    ids: dict[str, set[str]] = {}
    for run in runs:
        if run.subject_id:
            ids.setdefault(run.subject_type or "lead", set()).add(run.subject_id)
    names: dict[str, str] = {}
    if ids.get("lead"):
        for lead_id, first, last in session.exec(select(Lead.id, Lead.first_name, Lead.last_name).where(
                Lead.tenant_id == tenant_id, col(Lead.id).in_(ids["lead"]))):
            names[lead_id] = f"{first} {last or ''}".strip()
    if ids.get("investor"):
        names.update(session.exec(select(Investor.id, Investor.name).where(
            Investor.tenant_id == tenant_id, col(Investor.id).in_(ids["investor"]))).all())
    deals = ids.get("deal", set()) | ids.get("opportunity", set())
    if deals:
        names.update(session.exec(select(Opportunity.id, Opportunity.title).where(
            Opportunity.tenant_id == tenant_id, col(Opportunity.id).in_(deals))).all())
    return names


async def settle(engine: Engine, client: Client, tenant_id: str, key: str | None = None, limit: int = 100) -> int:
    """Record how runs that the database still has as open ended (at most `limit`, the oldest first); returns how
    many it recorded. Temporal unreachable: nothing changes (the counts say what the database knows)."""
    def open_runs() -> list[tuple[str, str]]:
        with Session(engine) as session:
            query = select(WorkflowExecution.id, WorkflowExecution.workflow_id).where(
                WorkflowExecution.tenant_id == tenant_id, WorkflowExecution.workflow_type == DEFINITION_WORKFLOW,
                col(WorkflowExecution.status).in_(OPEN))
            if key is not None:
                query = query.where(WorkflowExecution.definition_key == key)
            return list(session.exec(query.order_by(col(WorkflowExecution.started_at)).limit(limit)).all())

    rows = await asyncio.to_thread(open_runs)
    slots = asyncio.Semaphore(8)

    async def outcome(workflow_id: str) -> str | None:
        async with slots:
            handle = client.get_workflow_handle(workflow_id)
            try:
                description = await handle.describe(rpc_timeout=RPC_TIMEOUT)
                if description.status == WorkflowExecutionStatus.RUNNING:
                    return "running"
                if description.status == WorkflowExecutionStatus.COMPLETED:
                    result = await handle.result(rpc_timeout=RPC_TIMEOUT)
                    status = result.get("status") if isinstance(result, dict) else getattr(result, "status", None)
                    return status if isinstance(status, str) and status else "completed"
                if description.status == WorkflowExecutionStatus.CONTINUED_AS_NEW:
                    return "running"  # (a handle without a run id follows the chain: not reached in practice)
                return description.status.name.lower() if description.status else None
            except RPCError as exc:
                return "ended" if exc.status == RPCStatusCode.NOT_FOUND else None
            except Exception:  # noqa: BLE001 - Temporal down or slow: leave the row as it is
                return None

    found = await asyncio.gather(*(outcome(workflow_id) for _, workflow_id in rows))
    ended = {row_id: status for (row_id, _), status in zip(rows, found, strict=True)
             if status is not None and status != "running"}
    if not ended:
        return 0

    def record() -> None:
        with Session(engine) as session:
            for execution in session.exec(select(WorkflowExecution).where(col(WorkflowExecution.id).in_(ended))):
                execution.status = ended[execution.id]
                execution.closed_at = execution.closed_at or utcnow()
                session.add(execution)
            session.commit()

    await asyncio.to_thread(record)
    return len(ended)

