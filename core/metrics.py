"""Prometheus metrics shared by the API and the worker."""

from prometheus_client import Counter, Gauge, Histogram

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
RELAY_BACKLOG = Gauge("dealflow_relay_backlog_events", "Outbox events not yet delivered (parked excluded)")
RELAY_OLDEST = Gauge("dealflow_relay_oldest_event_age_seconds", "Age of the oldest undelivered outbox event")
RELAY_PARKED = Gauge("dealflow_relay_parked_events", "Outbox events parked after repeated failures")
