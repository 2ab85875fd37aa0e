"""`dealflow scoring retrain | models | rollback | schedule`: the lead model's lifecycle (issue 13) — retrain now
as its Schedule does, list every version, roll back, keep the tenant's Schedule. The logic is services/retraining.py
and events/schedules.py."""

from __future__ import annotations

import typer
from rich.table import Table

from cli_common import CliError, console
from cli_scoring import _tenant_engine, scoring_app


@scoring_app.command("retrain")
def scoring_retrain(
    tenant: str = typer.Option(None, "--tenant", "-t", help="tenant slug (default DEALFLOW_DEFAULT_TENANT)"),
    local: bool = typer.Option(False, "--local", help="run here instead of as a ScoringRetrainWorkflow on the worker"),
) -> None:
    """Retrain the tenant's lead model now, as its weekly Schedule does: a candidate trained on the closed leads up
    to a cut-off, compared with the active model on the ones closed after, promoted only when better by the
    margin. Every version is kept (`dealflow scoring models`); `dealflow scoring rollback` undoes a promotion."""
    import asyncio

    settings, tenant, engine = _tenant_engine(tenant)
    if local:
        from scoring.registry import ModelRegistry
        from services.retraining import retrain_lead_model

        with console.status(f"Retraining {tenant}'s lead model"):
            outcome = retrain_lead_model(engine, ModelRegistry(engine, settings.effective_models_dir), tenant,
                                         by="cli", margin=settings.scoring_promotion_margin).as_dict()
    else:
        outcome = asyncio.run(_retrain_on_worker(settings, tenant))
    _retrained(outcome)


async def _retrain_on_worker(settings, tenant: str) -> dict:
    import asyncio
    import uuid
    from datetime import timedelta

    from core.temporal import connect, temporal_unreachable
    from workflows.retrain import RetrainRequest, ScoringRetrainWorkflow, retrain_schedule_id

    try:
        client = await asyncio.wait_for(connect(settings), timeout=10)
        with console.status(f"Retraining {tenant}'s lead model on the worker (ScoringRetrainWorkflow)"):
            return await client.execute_workflow(
                ScoringRetrainWorkflow.run, RetrainRequest(tenant_id=tenant, by="cli"),
                id=f"{retrain_schedule_id(tenant)}-now-{uuid.uuid4().hex[:8]}",
                task_queue=settings.temporal_task_queue, execution_timeout=timedelta(hours=1))
    except Exception as exc:  # noqa: BLE001 — one line, whatever Temporal said
        if isinstance(exc, TimeoutError) or temporal_unreachable(exc):
            raise CliError(f"Temporal is unreachable at {settings.effective_temporal_address}: start it (dealflow up) "
                           "or retrain here with --local") from None
        cause = getattr(exc, "cause", None)
        raise CliError(f"retraining failed: {getattr(cause, 'message', None) or exc}") from None


def _retrained(outcome: dict) -> None:
    if outcome["version"] is None:
        raise CliError(f"not retrained: {outcome['reason']}")
    state = "[green]promoted: now active[/]" if outcome["promoted"] else "[yellow]kept inactive[/]"
    console.print(f"model v{outcome['version']} for {outcome['tenant_id']}: {state} ({outcome['reason']}); "
                  f"trained on leads closed before {outcome['cutoff']}", highlight=False, soft_wrap=True)


@scoring_app.command("models")
def scoring_models(tenant: str = typer.Option(None, "--tenant", "-t", help="tenant slug")) -> None:
    """Every version of the tenant's lead model: kind, data hash, metrics, and who promoted it."""
    from scoring.registry import ModelRegistry

    settings, tenant, engine = _tenant_engine(tenant)
    table = Table("version", "kind", "active", "CV AUC", "later AUC (vs active)", "data", "promotion")
    for row in ModelRegistry(engine, settings.effective_models_dir).versions(tenant):
        m = row.metrics
        evaluation, promotion = m.get("evaluation") or {}, m.get("promotion") or {}
        later = (f"{evaluation['candidate']['auc']:.3f} (vs v{evaluation['active_version']} "
                 f"{evaluation['active']['auc']:.3f})") if evaluation else ""
        activations = m.get("activations") or []
        who = (f"{activations[-1]['by']}: {activations[-1]['reason']}" if activations else
               f"{promotion.get('by')}: {'promoted' if promotion.get('promoted') else 'not promoted'}"
               if promotion else "")
        table.add_row(f"v{row.version}", row.kind, "✓" if row.active else "", f"{m.get('cv_auc', 0):.3f}", later,
                      row.training_data_hash[:10], who[:70])
    console.print(table)


@scoring_app.command("rollback")
def scoring_rollback(
    tenant: str = typer.Option(None, "--tenant", "-t", help="tenant slug"),
    to: int = typer.Option(None, "--to", help="the version to make active (default: the one before the current)"),
) -> None:
    """Make the lead model active before the current one (or --to VERSION) active again."""
    from scoring.registry import ModelRegistry
    from services.retraining import rollback

    settings, tenant, engine = _tenant_engine(tenant)
    try:
        was, now = rollback(ModelRegistry(engine, settings.effective_models_dir), tenant, by="cli", to=to)
    except LookupError as exc:
        raise CliError(str(exc).strip("'\"")) from None
    console.print(f"[green]✓[/] {tenant}'s lead model: v{now} active again (was v{was})", highlight=False)


@scoring_app.command("schedule")
def scoring_schedule(
    tenant: str = typer.Option(None, "--tenant", "-t", help="tenant slug"),
    every_days: int = typer.Option(None, "--every-days", min=1, max=365,
                                   help="retrain every N days (default DEALFLOW_SCORING_RETRAIN_EVERY_DAYS)"),
) -> None:
    """Create or change the tenant's retraining Schedule on Temporal (the worker creates one per tenant at start)."""
    import asyncio
    from datetime import timedelta

    from core.temporal import connect, temporal_unreachable
    from events.schedules import ensure_retrain_schedule
    from workflows.retrain import retrain_schedule_id

    settings, tenant, engine = _tenant_engine(tenant)
    days = every_days or settings.scoring_retrain_every_days

    async def run() -> str:
        client = await asyncio.wait_for(connect(settings), timeout=10)
        return await ensure_retrain_schedule(client, tenant, settings.temporal_task_queue, timedelta(days=days))

    try:
        done = asyncio.run(run())
    except Exception as exc:  # noqa: BLE001
        if isinstance(exc, TimeoutError) or temporal_unreachable(exc):
            raise CliError(f"Temporal is unreachable at {settings.effective_temporal_address}") from None
        raise CliError(f"the schedule could not be saved: {exc}") from None
    console.print(f"[green]✓[/] {retrain_schedule_id(tenant)}: every {days} day{'s' if days != 1 else ''} ({done})",
                  highlight=False)
