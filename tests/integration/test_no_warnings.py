"""Normal operation prints no warning: a lead posted the README's way goes through intake, the relay, enrichment,
scoring and its first touch with not one warning raised, in the API or in the worker's activities."""

from __future__ import annotations

import uuid
import warnings

from models.tenant import Role
from tests.conftest import eventually


async def test_a_lead_goes_through_intake_without_a_warning(api, make_key):
    headers = make_key(Role.admin)
    body = {"first_name": "Maria", "last_name": "Garcia", "email": f"Maria.{uuid.uuid4().hex[:6]}@Example.com",
            "phone": f"(512) 555-{uuid.uuid4().int % 10000:04d}", "source": "web_form",
            "property_address": "4500 Oak Ridge Dr, Austin, TX 78731"}
    # Recorded process-wide: the worker's activities run on its threads in this process.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        created = await api.post("/api/v1/leads", headers=headers, json=body)
        assert created.status_code == 201, created.text
        lead_id = created.json()["id"]

        async def scored():
            detail = (await api.get(f"/api/v1/leads/{lead_id}", headers=headers)).json()
            return detail if detail["score"] is not None and detail["definitions"] else None

        detail = await eventually(scored, timeout=60)
        assert detail["source"] == "web_form" and detail["status"] == "new"
        listed = (await api.get("/api/v1/leads?source=web_form", headers=headers)).json()["items"]
        assert [item["id"] for item in listed] == [lead_id]
        timeline = (await api.get(f"/api/v1/leads/{lead_id}/timeline", headers=headers)).json()
        assert "lead.scored" in [entry["kind"] for entry in timeline]
    assert [f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught] == []
