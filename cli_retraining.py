"""`dealflow scoring retrain | models | rollback | schedule [--model lead|deal]`: the models' lifecycle (issue 13) —
retrain now as its Schedule does, list every version, roll back, keep the tenant's Schedules (its retraining and its
drift check). `--model` is the lead model (the default) or the deal models (expected return and time to close). The
logic is services/retraining.py, services/deal_retraining.py and events/schedules.py."""

from __future__ import annotations

import typer
from rich.table import Table

from cli_common import CliError, console
from cli_scoring import Model, _model_option, _tenant_engine, scoring_app

MODELS = {"lead": "lead model", "deal": "deal models"}


def _registry(settings, engine, model: str):
    from scoring.deal_registry import DealModels
    from scoring.registry import ModelRegistry

    kind = DealModels if model == "deal" else ModelRegistry
    return kind(engine, settings.effective_models_dir)


@scoring_app.command("retrain")
def scoring_retrain(
    tenant: str = typer.Option(None, "--tenant", "-t", help="tenant slug (default DEALFLOW_DEFAULT_TENANT)"),
    local: bool = typer.Option(False, "--local", help="run here instead of as a ScoringRetrainWorkflow on the worker"),
    model: Model = _model_option(),
) -> None:
    """Retrain the tenant's lead model (or --model deal: its deal models) now, as its weekly Schedule does: a
    candidate trained on what closed up to a cut-off, compared with the active model on what closed after, promoted
    only when better by the margin. Every version is kept (`dealflow scoring models`); `dealflow scoring rollback`
    undoes a promotion."""
    import asyncio

    settings, tenant, engine = _tenant_engine(tenant)
    model = Model(model).value
    if local:
        from services.retraining import retrain_model

        with console.status(f"Retraining {tenant}'s {MODELS[model]}"):
            outcome = retrain_model(engine, settings, _registry(settings, engine, "lead"),
                                    _registry(settings, engine, "deal"), tenant, model, by="cli").as_dict()
    else:
        outcome = asyncio.run(_retrain_on_worker(settings, tenant, model))
    _retrained(outcome)


async def _retrain_on_worker(settings, tenant: str, model: str) -> dict:
    import asyncio
    import uuid
    from datetime import timedelta

    from core.temporal import connect, temporal_unreachable
    from workflows.retrain import RetrainRequest, ScoringRetrainWorkflow, retrain_schedule_id

    try:
        client = await asyncio.wait_for(connect(settings), timeout=10)
        with console.status(f"Retraining {tenant}'s {MODELS[model]} on the worker (ScoringRetrainWorkflow)"):
            return await client.execute_workflow(
                ScoringRetrainWorkflow.run, RetrainRequest(tenant_id=tenant, model=model, by="cli"),
                id=f"{retrain_schedule_id(tenant, model)}-now-{uuid.uuid4().hex[:8]}",
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
    deal = outcome.get("model") == "deal"
    rows = "deals" if deal else "leads"
    trained = f"trained on {rows} closed before {outcome['cutoff']}" if outcome["cutoff"] else "trained on every deal"
    console.print(f"{'deal models' if deal else 'model'} v{outcome['version']} for {outcome['tenant_id']}: {state} "
                  f"({outcome['reason']}); {trained}", highlight=False, soft_wrap=True)


@scoring_app.command("models")
def scoring_models(tenant: str = typer.Option(None, "--tenant", "-t", help="tenant slug"),
                   model: Model = _model_option()) -> None:
    """Every version of the tenant's lead model (or --model deal: its deal models): kind, data hash, metrics, the
    evaluation on later data, and who promoted it."""
    settings, tenant, engine = _tenant_engine(tenant)
    model = Model(model).value
    if model == "deal":
        table = Table("version", "kind", "active", "held-out pinball profit / ROI, C", "later (vs active)", "data",
                      "promotion")
    else:
        table = Table("version", "kind", "active", "CV AUC", "later AUC (vs active)", "data", "promotion")
    for row in _registry(settings, engine, model).versions(tenant):
        m = row.metrics
        own, later = _deal_columns(m) if model == "deal" else _lead_columns(m)
        table.add_row(f"v{row.version}", row.kind, "✓" if row.active else "", own, later,
                      row.training_data_hash[:10], _who(m)[:70])
    console.print(table)


def _lead_columns(m: dict) -> tuple[str, str]:
    evaluation = m.get("evaluation") or {}
    later = (f"{evaluation['candidate']['auc']:.3f} (vs v{evaluation['active_version']} "
             f"{evaluation['active']['auc']:.3f})") if evaluation else ""
    return f"{m.get('cv_auc', 0):.3f}", later


def _deal_columns(m: dict) -> tuple[str, str]:
    def figures(e: dict) -> str:
        return f"{e['profit_pinball']:,.0f} / {e['roi_pinball']:.4f}, {e['concordance']}"

    own = figures({"profit_pinball": m.get("profit_pinball") or 0, "roi_pinball": m.get("roi_pinball") or 0,
                   "concordance": m.get("concordance")})
    evaluation = m.get("evaluation") or {}
    later = (f"{figures(evaluation['candidate'])} (vs v{evaluation['active_version']} "
             f"{figures(evaluation['active'])})") if evaluation else ""
    return own, later


def _who(m: dict) -> str:
    activations, promotion = m.get("activations") or [], m.get("promotion") or {}
    if activations:
        return f"{activations[-1]['by']}: {activations[-1]['reason']}"
    if promotion:
        return f"{promotion.get('by')}: {'promoted' if promotion.get('promoted') else 'not promoted'}"
    return ""


@scoring_app.command("rollback")
def scoring_rollback(
    tenant: str = typer.Option(None, "--tenant", "-t", help="tenant slug"),
    to: int = typer.Option(None, "--to", help="the version to make active (default: the one before the current)"),
    model: Model = _model_option(),
) -> None:
    """Make the lead model's version before the current one (or --to VERSION) active again (--model deal: the deal
    models')."""
    from services.retraining import rollback

    settings, tenant, engine = _tenant_engine(tenant)
    model = Model(model).value
    try:
        was, now = rollback(_registry(settings, engine, model), tenant, by="cli", to=to, model=model)
    except LookupError as exc:
        raise CliError(str(exc).strip("'\"")) from None
    console.print(f"[green]✓[/] {tenant}'s {MODELS[model]}: v{now} active again (was v{was})", highlight=False)


@scoring_app.command("schedule")
def scoring_schedule(
    tenant: str = typer.Option(None, "--tenant", "-t", help="tenant slug"),
    every_days: int = typer.Option(None, "--every-days", min=1, max=365,
                                   help="retrain every N days (default DEALFLOW_SCORING_RETRAIN_EVERY_DAYS)"),
    model: Model = _model_option(),
) -> None:
    """Create or change the tenant's retraining Schedule of the lead model (or --model deal) on Temporal, and its
    drift-check Schedule (every DEALFLOW_DRIFT_CHECK_EVERY_HOURS): the worker creates them for every tenant at
    start, this for a tenant made since."""
    import asyncio
    from datetime import timedelta

    from core.temporal import connect, temporal_unreachable
    from events.schedules import ensure_drift_schedule, ensure_retrain_schedule
    from workflows.retrain import drift_schedule_id, retrain_schedule_id

    settings, tenant, engine = _tenant_engine(tenant)
    model = Model(model).value
    days, hours = every_days or settings.scoring_retrain_every_days, settings.drift_check_every_hours
    queue = settings.temporal_task_queue

    async def run() -> tuple[str, str]:
        client = await asyncio.wait_for(connect(settings), timeout=10)
        return (await ensure_retrain_schedule(client, tenant, queue, timedelta(days=days), model),
                await ensure_drift_schedule(client, tenant, queue, timedelta(hours=hours)))

    try:
        retrain, drift = asyncio.run(run())
    except Exception as exc:  # noqa: BLE001
        if isinstance(exc, TimeoutError) or temporal_unreachable(exc):
            raise CliError(f"Temporal is unreachable at {settings.effective_temporal_address}") from None
        raise CliError(f"the Schedules could not be saved: {exc}") from None
    console.print(f"[green]✓[/] {retrain_schedule_id(tenant, model)}: every {_count(days, 'day')} ({retrain})",
                  highlight=False)
    console.print(f"[green]✓[/] {drift_schedule_id(tenant)}: every {_count(hours, 'hour')} ({drift})", highlight=False)


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}{'s' if n != 1 else ''}"
