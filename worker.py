"""Temporal worker entry point: `python worker.py` is the same as `dealflow worker`."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import re
import signal
import warnings
from datetime import timedelta
import sys
from pathlib import Path

from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.worker import Worker

from activities.deal import DealActivities
from activities.investor import AccreditationActivities
from activities.offering import OfferingActivities
from activities.enrichment import EnrichmentActivities
from activities.lead import LeadActivities
from activities.messaging import MessagingActivities
from activities.enrollment import EnrollmentActivities
from activities.outbound import OutboundActivities
from activities.scoring import ScoringActivities
from activities.signing import SigningActivities
from activities.staff import StaffActivities
from core.db import make_engine
from core.logging import configure_logging
from core.metrics import serve
from core.process import exit_now
from core.settings import ConfigError, Settings, get_settings
from core.tracing import configure_tracing
from core.temporal import connect, prometheus_runtime
from events.relay import Relay
from providers.enrichment import CountyRecordsSource, PropertyApiSource
from providers.http_call import OutboundHttp
from providers.registry import Providers
from scoring.registry import ModelRegistry
from services.drift import restore_drift_gauges
from workflows.accreditation import AccreditationWorkflow
from events.schedules import ensure_daily_schedule, ensure_retrain_schedules
from workflows.daily import DailyTriggersWorkflow
from workflows.retrain import ScoringDriftWorkflow, ScoringRetrainWorkflow
from workflows.deal import DealWorkflow
from workflows.definition import DefinitionWorkflow
from workflows.enrichment import EnrichmentWorkflow
from workflows.lead import LeadWorkflow
from workflows.messaging import MessageWorkflow
from workflows.offering import OfferingWorkflow
from workflows.signing import DocumentSigningWorkflow

WORKFLOWS = [LeadWorkflow, EnrichmentWorkflow, DealWorkflow, MessageWorkflow, DefinitionWorkflow, DailyTriggersWorkflow,
             AccreditationWorkflow, OfferingWorkflow, DocumentSigningWorkflow, ScoringRetrainWorkflow,
             ScoringDriftWorkflow]
log = logging.getLogger("dealflow.worker")


def build_worker(client: Client, engine: Engine, settings: Settings,
                 executor: concurrent.futures.ThreadPoolExecutor) -> Worker:
    lead = LeadActivities(engine)
    messaging = MessagingActivities(engine, settings, Providers(settings))
    api = PropertyApiSource(settings.property_api_url, settings.property_api_key) if settings.property_api_url \
        else None
    enrichment = EnrichmentActivities(engine, CountyRecordsSource(engine), api)
    scoring = ScoringActivities(engine, ModelRegistry(engine, settings.effective_models_dir), settings)
    deal = DealActivities(engine)
    accreditation = AccreditationActivities(engine)
    offering = OfferingActivities(engine)
    staff = StaffActivities(engine)
    signing = SigningActivities(engine, settings)
    outbound = OutboundActivities(OutboundHttp(settings.http_call_hosts, settings.provider_timeout_seconds))
    enrollment = EnrollmentActivities(engine, client, settings.temporal_task_queue, asyncio.get_running_loop())
    with warnings.catch_warnings():
        # More activity slots than threads is on purpose (below); the SDK warns about it on every start.
        warnings.filterwarnings("ignore", "Worker max_concurrent_activities is", UserWarning)
        return Worker(
            client,
            task_queue=settings.temporal_task_queue,
            workflows=WORKFLOWS,
            activities=[lead.record_timeline_entry, lead.set_lead_status, lead.load_lead, lead.load_deal,
                        lead.load_investor, messaging.plan_send, messaging.send_message,
                        enrichment.validate_contact, enrichment.standardize_address, enrichment.lookup_county_records,
                        enrichment.lookup_property_api, enrichment.save_enrichment, enrichment.link_duplicates,
                        scoring.score_lead, scoring.retrain_scoring_model, scoring.check_scoring_drift,
                        deal.open_opportunity,
                        deal.record_stage_change, deal.deal_sla_breached,
                        deal.deal_stage_sla, deal.deal_stage_facts,
                        deal.match_investors, accreditation.remind_accreditation,
                        accreditation.expire_accreditation, offering.record_offering_change,
                        offering.record_commit_refused,
                        staff.create_task, staff.notify_staff,
                        enrollment.fire_daily_triggers, enrollment.change_lead_status, enrollment.move_deal_stage,
                        enrollment.start_definition, outbound.http_call, signing.create_envelope,
                        signing.apply_provider_event, signing.invite_next_signers, signing.send_reminders,
                        signing.complete_document, signing.void_envelope, signing.close_document,
                        signing.request_signature],
            activity_executor=executor,
            # Slots well above the executor's 32 threads: the async activities that wait on another workflow's
            # update (change_lead_status, move_deal_stage) take a slot but no thread, and must not leave the sync
            # activities those updates need (set_lead_status, record_stage_change) without one.
            max_concurrent_activities=256,
            max_concurrent_workflow_tasks=settings.worker_workflow_tasks,
            # On SIGTERM let in-flight activities finish (compose gives 30 s): cancelling a sync activity raises
            # into its thread, and one raised inside XGBoost's native code was seen to corrupt the heap (SIGABRT).
            graceful_shutdown_timeout=timedelta(seconds=25),
        )


async def run_worker(settings: Settings, stop: asyncio.Event | None = None, client: Client | None = None,
                     runtime: Runtime | None = None) -> None:
    """Run until `stop` is set (or forever); shuts the worker down inside the event loop. `runtime`: the
    process's Temporal Runtime (main's serves the SDK's metrics)."""
    client = client or await connect(settings, runtime=runtime)
    engine = make_engine(settings.effective_database_url)
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as executor:
        worker = build_worker(client, engine, settings, executor)
        await ensure_daily_schedule(client, settings.temporal_task_queue)
        await ensure_retrain_schedules(client, engine, settings.temporal_task_queue,
                                       timedelta(days=settings.scoring_retrain_every_days),
                                       timedelta(hours=settings.drift_check_every_hours))
        log.info("worker polling %s on %s", settings.temporal_task_queue, settings.effective_temporal_address)
        async with worker, running_relay(engine, client, settings):
            restoring = asyncio.get_running_loop().run_in_executor(executor, _restore_drift_gauges, engine)
            ready = os.environ.get("DEALFLOW_WORKER_READY_FILE")  # `dealflow up` watches for it
            if ready:
                Path(ready).write_text(str(os.getpid()))
            await (stop or asyncio.Event()).wait()
            await restoring
    engine.dispose()


def _restore_drift_gauges(engine: Engine) -> None:
    """The ModelDrift alert reads the last checks until the next ones. Beside the polling, not before it: a worker
    whose models table is locked (a migration, a test holding it) still takes work, and a failure here only leaves
    the gauges empty until the next check."""
    try:
        log.info("drift gauges restored from the last check of %d tenant(s)", restore_drift_gauges(engine))
    except Exception:  # noqa: BLE001 - logged: the gauges fill again at the next scheduled check
        log.exception("drift gauges not restored; they are set again at the next drift check")


def make_relay(engine: Engine, client: Client, settings: Settings) -> Relay:
    return Relay(engine, client, settings.temporal_task_queue, poll_seconds=settings.relay_poll_seconds,
                 concurrency=settings.relay_concurrency, max_attempts=settings.relay_max_attempts,
                 hold_file=settings.relay_hold_file)


@contextlib.asynccontextmanager
async def running_relay(engine: Engine, client: Client, settings: Settings):
    """The event relay beside the worker (unless DEALFLOW_RELAY_ENABLED=false), stopped after it."""
    if not settings.relay_enabled:
        yield None
        return
    relay, stop = make_relay(engine, client, settings), asyncio.Event()
    task = asyncio.create_task(relay.run(stop), name="event-relay")
    try:
        yield relay
    finally:
        stop.set()
        await task


async def run_until_signalled(settings: Settings, runtime: Runtime | None = None) -> None:
    """Run the worker until SIGINT/SIGTERM, then finish in-flight tasks and stop (docker stop, Ctrl-C)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run_worker(settings, stop, runtime=runtime)


def main() -> None:
    try:
        settings = get_settings()
        settings.check_secret_key()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    configure_logging(settings.log_level, settings.log_format)
    configure_tracing(settings, "dealflow-worker")
    runtime = None
    try:
        if settings.metrics_address:  # (empty under `dealflow up`, which serves every process's metrics itself)
            address, variable = settings.metrics_address, "DEALFLOW_METRICS_ADDRESS"
            serve(address)
        if settings.temporal_metrics_address:
            address, variable = settings.temporal_metrics_address, "DEALFLOW_TEMPORAL_METRICS_ADDRESS"
            runtime = prometheus_runtime(address)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or re.sub(r"^Failed starting Prometheus exporter: | \(os error \d+\)$",
                                                          "", str(exc))
        print(f"error: cannot serve metrics on {address}: {reason} (set {variable}, or empty to turn them off)",
              file=sys.stderr)
        raise SystemExit(1) from None
    asyncio.run(run_until_signalled(settings, runtime))
    exit_now(0)




if __name__ == "__main__":
    main()
