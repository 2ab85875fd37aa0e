"""Prometheus metrics shared by the API and the worker.

Under `dealflow up` the API and the worker are separate processes: with PROMETHEUS_MULTIPROC_DIR set (it sets it)
each process writes its values to files there and the API's /metrics adds them up, so the relay's deliveries
(counted in the worker) show where they are scraped."""

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

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
# Set from the database when /metrics is scraped: the latest reading is the value.
RELAY_BACKLOG = Gauge("dealflow_relay_backlog_events", "Outbox events not yet delivered (parked excluded)",
                      multiprocess_mode="mostrecent")
RELAY_OLDEST = Gauge("dealflow_relay_oldest_event_age_seconds", "Age of the oldest undelivered outbox event",
                     multiprocess_mode="mostrecent")
RELAY_PARKED = Gauge("dealflow_relay_parked_events", "Outbox events parked after repeated failures",
                     multiprocess_mode="mostrecent")


def exposition() -> bytes:
    """The text /metrics answers: this process's metrics, or every process's in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()
