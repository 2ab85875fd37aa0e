"""Standard security headers on every answer: JSON, errors (the middleware's own 413 included), pages; HSTS only
when the API is reached over https."""

from __future__ import annotations

import httpx

from api.app import create_app
from core.settings import Settings
from models.tenant import Role
from tests.conftest import TEST_SECRET_KEY

EXPECTED = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer", "x-frame-options": "DENY"}


def _has_the_headers(response: httpx.Response) -> None:
    for name, value in EXPECTED.items():
        assert response.headers.get(name) == value, (response.request.url, name, dict(response.headers))
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_every_answer_carries_the_security_headers(api, make_key):
    headers = make_key(Role.staff)
    answers = [
        await api.get("/api/v1/leads", headers=headers),  # 200 JSON
        await api.get("/api/v1/leads"),  # 401 problem document
        await api.get("/no-such-page"),  # 404
        await api.post("/api/v1/leads", headers={**headers, "Content-Length": str(10**9)}, content=b"{}"),  # 413
        await api.get("/api/v1/unsubscribe/forged"),  # an HTML page's 400
    ]
    assert [a.status_code for a in answers] == [200, 401, 404, 413, 400]
    for answer in answers:
        _has_the_headers(answer)
        assert answer.headers["strict-transport-security"].startswith("max-age=")  # public_url is https here
        assert "script-src" not in answer.headers["content-security-policy"]  # no script outside the docs


async def test_no_hsts_over_plain_http(tmp_path):
    app = create_app(Settings(home=tmp_path, public_url="http://127.0.0.1:8000", secret_key=TEST_SECRET_KEY))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        answer = await client.get("/no-such-page")
    _has_the_headers(answer)
    assert "strict-transport-security" not in answer.headers
