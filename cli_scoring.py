"""`dealflow scoring`: train the lead-to-deal model (from the tenant's closed leads or another CRM's export), re-score
the book with the active model, report its drift (and retrain on it), retrain the reply-intent model. The logic is
scoring/'s and services/'s."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from cli_common import CliError, console, err, load_settings, migrate_database

scoring_app = typer.Typer(help="Lead scoring models.", no_args_is_help=True)
FOLDS = 5


class Model(str, Enum):
    lead = "lead"
    deal = "deal"


def _model_option():
    return typer.Option(Model.lead, "--model", "-m", help="lead (the lead-to-deal model, the default) or deal "
                                                          "(expected return and time to close)")


def _progress(transient: bool = True) -> Progress:
    """A Rich progress bar on a terminal; off one (a script, a log) nothing, not a stray blank line."""
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    console=console, transient=transient, disable=not console.is_terminal)


def _engine(settings):
    from core.db import make_engine

    migrate_database(settings)
    return make_engine(settings.effective_database_url)


def _tenant_engine(tenant: str | None):
    """(settings, tenant, engine) for a command about one existing tenant (the default one when not named)."""
    settings = load_settings()
    tenant = tenant or settings.default_tenant
    engine = _engine(settings)
    _known_tenant(engine, tenant, create=False)
    return settings, tenant, engine


def _known_tenant(engine, tenant: str, create: bool) -> None:
    """An unknown tenant is one line saying how to make it (or, with --create-tenant, it is made here)."""
    from sqlmodel import Session

    from models.tenant import Tenant
    from services.tenants import create_tenant

    with Session(engine) as session:
        if session.get(Tenant, tenant) is not None:
            return
        if not create:
            raise CliError(f"tenant {tenant!r} does not exist: create it with `dealflow keys create --tenant {tenant} "
                           "--role admin` (or train with --create-tenant)")
        create_tenant(session, tenant, actor="cli")
        session.commit()
    console.print(f"created tenant {tenant}", highlight=False)


@scoring_app.command("train")
def scoring_train(
    tenant: str = typer.Option(None, "--tenant", "-t", help="tenant slug (default DEALFLOW_DEFAULT_TENANT)"),
    csv_path: Path = typer.Option(None, "--csv", "--file", dir_okay=False,
                                  help="another CRM's export, CSV or Excel .xlsx (else: the tenant's closed leads)"),
    target: str = typer.Option("converted", "--target",
                               help="the export's yes/no outcome column, as written in the file (any case)"),
    exclude_leaky: bool = typer.Option(False, "--exclude-leaky",
                                       help="leave out the columns that look filled in after the outcome"),
    create_tenant: bool = typer.Option(False, "--create-tenant", help="create the tenant if it does not exist"),
    activate: str = typer.Option("if_better", help="if_better (higher CV AUC than the active model), always, never"),
) -> None:
    """Train a lead-to-deal model, report its cross-validated AUC (and, from an export, what each column was used
    for, its importance and any leakage), and activate it if it is better."""
    if activate not in ("if_better", "always", "never"):
        raise CliError("--activate must be if_better, always or never")
    settings = load_settings()
    tenant = tenant or settings.default_tenant
    data = None
    if csv_path:  # the file first: its problems are the user's to fix before anything else
        from scoring.export_file import read_export

        with console.status(f"Reading {csv_path.name}"):
            try:
                data = read_export(csv_path, target, exclude_leaky=exclude_leaky)
            except ValueError as exc:
                raise CliError(str(exc)) from None
    engine = _engine(settings)
    try:
        _known_tenant(engine, tenant, create_tenant)
        trained, row = _train_and_register(engine, settings, tenant, data, activate)
    finally:
        engine.dispose()
    _trained(tenant, trained, row, data, exclude_leaky)


def _train_and_register(engine, settings, tenant: str, data, activate: str):
    """Train on the export `data`, or (None) on the tenant's closed leads, with a progress bar, and register the
    version: `dealflow scoring train`'s work, and `dealflow scoring drift --retrain`'s."""
    from scoring.registry import ModelRegistry
    from scoring.training import from_closed_leads, train, train_export

    try:
        if data is None:
            with console.status("Reading the tenant's closed leads"):
                frame, y, _ = from_closed_leads(engine, tenant)
        rows, deals = (len(data.y), int(data.y.sum())) if data is not None else (len(y), int(y.sum()))
        with _progress() as progress:
            task = progress.add_task(f"Training on {rows} leads ({deals} deals)", total=FOLDS + 1)

            def step(what: str) -> None:
                progress.update(task, description=f"Training on {rows} leads: {what}")
                if not what.startswith("cross-validating: fold 1 "):
                    progress.advance(task)

            trained = train_export(data, FOLDS, step) if data is not None else train(frame, y, FOLDS, step)
            progress.advance(task)
        row = ModelRegistry(engine, settings.effective_models_dir).register(
            tenant, trained, "export" if data is not None else "crm_history", activate=activate)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    return trained, row


def _trained(tenant: str, trained, row, data, exclude_leaky: bool) -> None:
    m = trained.metrics
    used = f", {len(data.spec.columns)} of {len(data.report)} columns used" if data is not None else (
        f", features used: {', '.join(trained.features)}")
    console.print(f"[green]✓[/] model v{row.version} for {tenant}: cross-validated AUC {m['cv_auc']:.3f} "
                  f"± {m['cv_auc_std']:.3f} on {m['n_rows']} leads ({m['positives']} deals){used}", highlight=False)
    console.print(f"  {'active now' if row.active else 'not activated (the active model is at least as good)'}")
    if data is not None:
        _report(trained.report, exclude_leaky)


def _report(report: list[dict], excluded: bool) -> None:
    """Every column of the export: used or not, how it was read, its share of the model's gain, leakage."""
    table = Table("column", "used", "how", "importance", "leak", box=None, pad_edge=False)
    for entry in sorted(report, key=lambda e: (not e["used"], -(e["importance"] or 0))):
        importance = f"{entry['importance']:.1%}" if entry["importance"] is not None else "-"
        table.add_row(entry["column"], "yes" if entry["used"] else "no", entry["how"], importance,
                      "leaky" if entry["leak"] else "", style=None if entry["used"] else "dim")
    console.print(table, soft_wrap=True)
    for entry in report:
        if entry["leak"]:
            console.print(f"  leaky: {entry['column']}: {entry['leak']}", highlight=False, soft_wrap=True)
    leaky = [e for e in report if e["leak"]]
    if leaky and not excluded:
        err.print(f"[yellow]warning:[/] {len(leaky)} column(s) look filled in after the outcome and were kept: "
                  f"{', '.join(e['column'] for e in leaky)}; a lead is scored before anyone knows them, so the AUC "
                  "above is optimistic: train again with --exclude-leaky to leave them out", highlight=False,
                  soft_wrap=True)
    elif leaky:
        console.print(f"  left out as leaky: {', '.join(e['column'] for e in leaky)}", highlight=False)


@scoring_app.command("train-deals")
def scoring_train_deals(
    tenant: str = typer.Option(None, "--tenant", "-t", help="tenant slug (default DEALFLOW_DEFAULT_TENANT)"),
    csv_path: Path = typer.Option(None, "--csv", "--file", dir_okay=False,
                                  help="past deals exported from another system, CSV or Excel .xlsx (with the "
                                       "CRM's own deals)"),
    create_tenant: bool = typer.Option(False, "--create-tenant", help="create the tenant if it does not exist"),
) -> None:
    """Train the tenant's expected-return and time-to-close models on its deals (and a file of past deals), report
    their held-out pinball loss against a constant baseline and their concordance, and make them the active ones."""
    from sqlmodel import Session

    from scoring.deal_registry import DealModels
    from services.deal_forecast import train_deal_models

    settings = load_settings()
    tenant = tenant or settings.default_tenant
    past = None
    if csv_path:  # the file first: its problems are the user's to fix before anything else
        from scoring.deal_export import read_past_deals

        with console.status(f"Reading {csv_path.name}"):
            try:
                past = read_past_deals(csv_path)
            except ValueError as exc:
                raise CliError(str(exc)) from None
    engine = _engine(settings)
    try:
        _known_tenant(engine, tenant, create_tenant)
        with _progress() as progress, Session(engine) as session:
            task = progress.add_task("Training the deal models", total=3)

            def step(what: str) -> None:
                progress.update(task, description=f"Training the deal models: {what}")
                if not what.startswith("expected return"):
                    progress.advance(task)

            try:
                result = train_deal_models(session, DealModels(engine, settings.effective_models_dir), tenant,
                                           past, step)
            except ValueError as exc:
                raise CliError(str(exc)) from None
            progress.advance(task)
    finally:
        engine.dispose()
    m = result.metrics
    source = f"{result.from_file} from {csv_path.name} and {result.from_crm} from the CRM" if past else \
        f"{result.from_crm} from the CRM"
    console.print(f"[green]✓[/] deal models v{result.version} for {tenant} ({result.kind}), active now: "
                  f"{m['n_deals']} deals ({source}): {m['n_returns']} won with their figures, {m['n_open']} open and "
                  f"{m['n_lost']} lost (censored)", highlight=False, soft_wrap=True)
    console.print(f"  expected return, held-out pinball loss: profit {m['profit_pinball']:,.0f} (a constant "
                  f"p10/p50/p90: {m['profit_pinball_baseline']:,.0f}), ROI {m['roi_pinball']:.4f} "
                  f"({m['roi_pinball_baseline']:.4f}); p10-p90 held {m['profit_coverage_80']:.0%} of profits",
                  highlight=False, soft_wrap=True)
    console.print(f"  time to close: concordance {m['concordance']:.3f} on held-out deals, scale {m['sigma']}",
                  highlight=False)
    if past and past.skipped:
        err.print(f"[yellow]warning:[/] {past.skipped} row(s) of {csv_path.name} had no time to close (no dates, no "
                  "days) and were left out", highlight=False)


@scoring_app.command("rescore")
def scoring_rescore(
    tenant: str = typer.Option(None, "--tenant", "-t", help="tenant slug (default DEALFLOW_DEFAULT_TENANT)"),
) -> None:
    """Score every live lead of the tenant again with its active model (scores and reasons written back)."""
    from sqlmodel import Session

    from scoring.registry import ModelRegistry
    from services.rescoring import live_leads, rescore_leads

    settings = load_settings()
    tenant = tenant or settings.default_tenant
    engine = _engine(settings)
    try:
        _known_tenant(engine, tenant, create=False)
        with Session(engine) as session:
            total = live_leads(session, tenant)
        with _progress(transient=False) as progress:
            task = progress.add_task(f"Re-scoring {tenant}'s leads", total=total)
            result = rescore_leads(engine, ModelRegistry(engine, settings.effective_models_dir), tenant,
                                   progress=lambda n: progress.advance(task, n))
    finally:
        engine.dispose()
    console.print(f"[green]✓[/] {result['scored']} leads scored with {result['model']}", highlight=False)


@scoring_app.command("intent-train")
def scoring_intent_train() -> None:
    """Retrain the reply-intent model on the shipped labelled set plus every correction staff made, and save it
    where the API and the worker load it (each process picks the new file up on its next reply)."""
    from sqlmodel import Session

    from services.reply_intent import retrain

    settings = load_settings()
    engine = _engine(settings)
    try:
        with console.status("Training the reply-intent model"), Session(engine) as session:
            model, corrections = retrain(session, settings)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    finally:
        engine.dispose()
    console.print(f"[green]✓[/] reply-intent model {model.version}: the shipped set and {corrections} staff "
                  f"correction(s), saved in {settings.effective_models_dir}")


@scoring_app.command("drift")
def scoring_drift(
    tenant: str = typer.Option(None, "--tenant", "-t", help="tenant slug (default DEALFLOW_DEFAULT_TENANT)"),
    days: int = typer.Option(None, "--days", min=1, max=365,
                             help="the window: leads scored (deals created) in the last N days (default "
                                  "DEALFLOW_DRIFT_WINDOW_DAYS)"),
    plots: Path = typer.Option(None, "--plots", file_okay=False,
                               help="write a PNG per drifted feature (and output, if drifted) into this folder"),
    retrain: bool = typer.Option(False, "--retrain", help="if drift is significant, retrain: the lead model on the "
                                                          "tenant's closed leads as `dealflow scoring train` does "
                                                          "(if_better); the deal models as `dealflow scoring retrain "
                                                          "--model deal --local` does"),
    model: Model = _model_option(),
) -> None:
    """Population stability (PSI) of every input of the tenant's active model and of its outputs (the score; the
    deal models' median days to close and p50 profit): its training data against the leads scored (the deals
    created) in the last N days; drifted ones over DEALFLOW_DRIFT_PSI_THRESHOLD."""
    from sqlmodel import Session

    from services.acting import ServiceError
    from services.drift import drift_report

    settings = load_settings()
    tenant = tenant or settings.default_tenant
    model = Model(model).value
    engine = _engine(settings)
    try:
        with console.status(f"Reading the {'deals created' if model == 'deal' else 'leads scored'} in the window"), \
                Session(engine) as session:
            try:
                report = drift_report(session, settings, tenant, days, model=model)
            except ServiceError as exc:
                raise CliError(str(exc)) from None
        _drift_table(report)
        if plots:
            _drift_plots(report, plots)
        if retrain:
            _retrain(engine, settings, report)
    finally:
        engine.dispose()


def _drift_table(report) -> None:
    what, rows = ("deal models", "training deals") if report.family == "deal" else ("model", "training rows")
    console.print(f"{what} v{report.model_version} ({report.model_kind}) of {report.tenant}: {report.n_current:,} "
                  f"{report.noun} in the last {report.window_days} days against {report.n_reference:,} {rows} "
                  f"(reference {report.reference})", highlight=False, soft_wrap=True)
    table = Table("feature", "PSI", "level", "largest change (training → window)", box=None, pad_edge=False)
    styles = {"significant": "red", "moderate": "yellow", "none": None}
    for entry in report.predictions + report.features:
        biggest = max(entry.bins, key=lambda b: abs(b.current - b.reference))
        table.add_row(entry.feature, f"{entry.psi:.3f}", entry.level,
                      f"{biggest.bin}: {biggest.reference:.1%} → {biggest.current:.1%}", style=styles[entry.level])
    console.print(table, soft_wrap=True)
    for note in report.notes:
        console.print(f"  note: {note}", highlight=False, soft_wrap=True)
    drifted = report.drifted + report.predictions_drifted
    if drifted:
        console.print(f"[red]drifted[/] (PSI over {report.threshold}): {', '.join(drifted)}", highlight=False)
    else:
        console.print(f"[green]✓[/] no drift over {report.threshold}", highlight=False)


def _drift_plots(report, folder: Path) -> None:
    from scoring.drift_plot import drift_png
    from services.drift import plot_title

    drifted = report.drifted + report.predictions_drifted
    if not drifted:
        console.print("  no plot written: nothing drifted (plots are for drifted features)")
        return
    folder.mkdir(parents=True, exist_ok=True)
    for name in drifted:
        path = folder / f"{name}.png"
        path.write_bytes(drift_png(report.find(name), plot_title(report, name), report.noun))
        console.print(f"  wrote {path}", highlight=False, soft_wrap=True)


def _retrain(engine, settings, report) -> None:
    if not report.significant:
        console.print("  not retrained: no significant drift")
        return
    if report.family == "deal":
        _retrain_deals(engine, settings, report)
        return
    console.print("  drift is significant: retraining on the tenant's closed leads (as `dealflow scoring train`)")
    try:
        trained, row = _train_and_register(engine, settings, report.tenant, None, "if_better")
    except CliError as exc:
        raise CliError(f"drift is significant but retraining failed: {exc}") from None
    m = trained.metrics
    console.print(f"[green]✓[/] model v{row.version} for {report.tenant}: cross-validated AUC {m['cv_auc']:.3f} on "
                  f"{m['n_rows']} leads ({m['positives']} deals); "
                  f"{'active now' if row.active else 'not activated (the active model is at least as good)'}",
                  highlight=False, soft_wrap=True)


def _retrain_deals(engine, settings, report) -> None:
    """The deal models' retraining as their Schedule runs it (services/deal_retraining.py: its promotion rule)."""
    from cli_retraining import _registry, _retrained
    from services.retraining import retrain_model

    console.print("  drift is significant: retraining the deal models (as `dealflow scoring retrain --model deal`)")
    with console.status(f"Retraining {report.tenant}'s deal models"):
        outcome = retrain_model(engine, settings, _registry(settings, engine, "lead"),
                                _registry(settings, engine, "deal"), report.tenant, "deal", by="drift").as_dict()
    try:
        _retrained(outcome)
    except CliError as exc:
        raise CliError(f"drift is significant but {exc}") from None
