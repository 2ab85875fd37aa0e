"""Prometheus metrics shared by the API and the worker."""

from prometheus_client import Counter, Histogram

HTTP_REQUESTS = Counter(
    "dealflow_http_requests_total", "HTTP requests handled by the API", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "dealflow_http_request_duration_seconds", "API request latency", ["method", "route"]
)
LEADS_RECEIVED = Counter("dealflow_leads_received_total", "Leads received", ["tenant", "outcome"])
WEBHOOK_EVENTS = Counter("dealflow_webhook_events_total", "Webhook events", ["provider", "outcome"])
