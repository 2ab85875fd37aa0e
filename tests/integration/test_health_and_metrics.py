import uuid

import httpx

from api.app import create_app
from core.settings import Settings
from models.tenant import Role


async def test_health_reports_database_and_temporal(api):
    for path in ("/health", "/api/v1/health"):
        response = await api.get(path)
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ok" and body["checks"] == {"database": "ok", "temporal": "ok", "relay": "ok"}
        assert set(body["relay"]) == {"backlog", "oldest_seconds", "parked"}


async def test_health_is_503_when_the_database_is_unreachable(temporal_env, settings):
    broken = Settings(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none",
                      temporal_address=settings.temporal_address, secret_key=settings.secret_key)
    app = create_app(broken, temporal_client=temporal_env.client)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            response = await client.get("/health")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["checks"]["temporal"] == "ok" and body["checks"]["database"].startswith("error: OperationalError")


async def test_metrics_count_requests_by_route_on_their_own_address(api, make_key, engine):
    from api.routes.health import read_backlog
    from core.metrics import serve
    from tests.integration.stack import free_port

    headers = make_key(Role.staff)
    created = await api.post("/api/v1/leads", headers=headers, json={
        "first_name": "Metric", "email": f"m{uuid.uuid4().hex[:6]}@example.com", "source": "seo"})
    assert created.status_code == 201, created.text
    assert (await api.get("/metrics")).status_code == 404  # not on the public API port
    port = free_port()
    server = serve(f"127.0.0.1:{port}", backlog=lambda: read_backlog(engine))
    try:
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    finally:
        server.shutdown()
        server.server_close()
    assert 'dealflow_http_requests_total{method="POST",route="/api/v1/leads",status="201"}' in text
    assert "dealflow_leads_received_total" in text
    assert "dealflow_http_request_duration_seconds_bucket" in text
    assert "dealflow_relay_backlog_events " in text and "dealflow_relay_parked_events " in text


async def test_request_id_is_echoed(api):
    response = await api.get("/health", headers={"X-Request-ID": "abc123"})
    assert response.headers["x-request-id"] == "abc123"
