"""Prometheus metrics shared by the API and the worker, served on their own bind address (never the API's port).

Dealflow's own metrics (prometheus-client) are served on `metrics_address` (default 127.0.0.1:9464) by
`dealflow api`, by `dealflow worker`, or — under `dealflow up` — by the `dealflow up` process alone: there the API
processes and the worker write their values to files in PROMETHEUS_MULTIPROC_DIR (it sets it) and one scrape adds
them up. The Temporal SDK's own metrics (workflow task latency, activity failures, ...) are served by the worker's
Temporal Runtime on `temporal_metrics_address` (default 127.0.0.1:9465; core/temporal.py)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from prometheus_client import (
    CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess, start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

log = logging.getLogger("dealflow.metrics")

HTTP_REQUESTS = Counter(
    "dealflow_http_requests_total", "HTTP requests handled by the API", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "dealflow_http_request_duration_seconds", "API request latency", ["method", "route"]
)
LEADS_RECEIVED = Counter("dealflow_leads_received_total", "Leads received", ["tenant", "outcome"])
WEBHOOK_EVENTS = Counter("dealflow_webhook_events_total", "Webhook events", ["provider", "outcome"])
EVENTS_DELIVERED = Counter("dealflow_events_delivered_total", "Outbox events delivered to Temporal", ["event"])
EVENT_DELIVERY_LATENCY = Histogram(
    "dealflow_event_delivery_seconds", "From an event's commit to its delivery by the relay",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800))
# The outcome of each send_message attempt that settles a message: sent, suppressed (opt-out, quiet hours for a
# workflow's send) or failed (the provider refused it, no address, a template that cannot render).
MESSAGES = Counter("dealflow_messages_total", "Messages settled by a send attempt", ["channel", "outcome"])

# Drift (services/drift.py): set by the process that computed a tenant's drift report (the worker's daily check,
# the API's GET /scoring/drift), and by a starting worker from the last daily check kept in the database; the newest
# value wins across `dealflow up`'s processes. The ModelDrift alert reads them.
MODEL_FEATURE_PSI = Gauge("dealflow_model_feature_psi", "Population stability index of a model input: training "
                          "data vs the leads scored in the report's window", ["tenant", "model_version", "feature"],
                          multiprocess_mode="mostrecent")
MODEL_SCORE_PSI = Gauge("dealflow_model_score_psi", "Population stability index of the score: out-of-fold training "
                        "scores vs the scores of the leads scored in the report's window", ["tenant", "model_version"],
                        multiprocess_mode="mostrecent")
# The deal models' (services/deal_drift.py): names of their own, so the lead model's series and the ModelDrift alert
# stay as they were; read by the DealModelDrift alert.
DEAL_FEATURE_PSI = Gauge("dealflow_deal_model_feature_psi", "Population stability index of a deal-model input: "
                         "training deals vs the deals created in the report's window",
                         ["tenant", "model_version", "feature"], multiprocess_mode="mostrecent")
DEAL_PREDICTION_PSI = Gauge("dealflow_deal_model_prediction_psi", "Population stability index of a deal model's "
                            "central prediction (median_days, profit_p50): for the training deals vs for the deals "
                            "created in the report's window", ["tenant", "model_version", "prediction"],
                            multiprocess_mode="mostrecent")

# Realised performance (services/retraining.py): the active lead model's AUC and Brier score on the leads whose
# outcome arrived after it was trained (or after the retrain's cut-off), set by each retrain.
MODEL_LIVE_AUC = Gauge("dealflow_model_live_auc", "The active lead model's AUC on outcomes that arrived after it "
                       "was trained", ["tenant", "model_version"], multiprocess_mode="mostrecent")
MODEL_LIVE_BRIER = Gauge("dealflow_model_live_brier", "The active lead model's Brier score on outcomes that arrived "
                         "after it was trained", ["tenant", "model_version"], multiprocess_mode="mostrecent")

ReadBacklog = Callable[[], tuple[int, float | None, int]]


class RelayBacklog(Collector):
    """The relay's backlog, read from the database when scraped (one reading, wherever the relays run): events
    not yet delivered, the age of the oldest, and the parked ones. Served beside the API's metrics only, so a
    stack with N workers does not report it N times."""

    def __init__(self, read: ReadBacklog) -> None:
        self._read = read

    def collect(self):
        try:
            count, oldest, parked = self._read()
        except Exception as exc:  # noqa: BLE001 - a scrape still answers without the database
            log.warning("metrics: cannot read the relay backlog (%s: %s)", type(exc).__name__, exc)
            return
        yield GaugeMetricFamily("dealflow_relay_backlog_events", "Outbox events not yet delivered (parked excluded)",
                                value=count)
        yield GaugeMetricFamily("dealflow_relay_oldest_event_age_seconds",
                                "Age of the oldest undelivered outbox event", value=oldest or 0)
        yield GaugeMetricFamily("dealflow_relay_parked_events", "Outbox events parked after repeated failures",
                                value=parked)


def registry(backlog: ReadBacklog | None = None, multiprocess_dir: Path | None = None) -> CollectorRegistry:
    """What a scrape answers: this process's metrics, or every process's in multiprocess mode, and the relay's
    backlog when `backlog` reads it."""
    directory = multiprocess_dir or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        chosen = CollectorRegistry()
        multiprocess.MultiProcessCollector(chosen, path=str(directory))
    else:
        chosen = CollectorRegistry()
        chosen.register(_Process())
    if backlog is not None:
        chosen.register(RelayBacklog(backlog))
    return chosen


class _Process(Collector):
    """This process's own metrics (the default registry), inside a registry of its own."""

    def collect(self):
        return REGISTRY.collect()


def exposition(backlog: ReadBacklog | None = None) -> bytes:
    return generate_latest(registry(backlog))


def parse_address(address: str) -> tuple[str, int]:
    """`host:port` (or `[v6]:port`) -> (host, port)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r} is not host:port, e.g. 127.0.0.1:9464")
    return host.strip("[]"), int(port)


def serve(address: str, backlog: ReadBacklog | None = None, multiprocess_dir: Path | None = None):
    """Serve /metrics on `address` (host:port) from a thread; returns the server (`.shutdown()` stops it)."""
    host, port = parse_address(address)
    server, _thread = start_http_server(port, addr=host, registry=registry(backlog, multiprocess_dir))
    log.info("metrics on http://%s:%d/metrics", host, port)
    return server
