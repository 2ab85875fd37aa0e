"""Audit rows say who changed what without a second copy of large values: a lead's big `custom` or long notes are
kept as a digest that matches the row, on create and on update."""

from __future__ import annotations

import json
import uuid

from sqlmodel import Session, select

from models.audit import AuditLog, digest_of
from models.lead import Lead
from models.tenant import Role


def _audits(engine, lead_id: str) -> list[AuditLog]:
    with Session(engine) as session:
        return list(session.exec(select(AuditLog).where(AuditLog.entity_id == lead_id).order_by(AuditLog.id)).all())


async def test_a_large_custom_and_notes_are_audited_as_digests_not_stored_twice(api, make_key, engine):
    headers = make_key(Role.staff)
    custom = {f"field_{i}": "x" * 1000 for i in range(60)}  # ~60 KB, under the 64 KiB input limit
    notes = "Motivated seller, call after 5pm. " * 290  # ~9,900 characters
    lead = (await api.post("/api/v1/leads", headers=headers, json={
        "first_name": "Big", "email": f"big.{uuid.uuid4().hex[:6]}@example.com", "source": "web_form",
        "custom": custom, "notes": notes, "tags": ["probate"]})).json()
    [created] = _audits(engine, lead["id"])
    with Session(engine) as session:
        row = session.get(Lead, lead["id"])
    assert created.action == "lead.create"
    assert created.after["custom"] == digest_of(row.custom) and created.after["custom"]["bytes"] > 60_000
    assert created.after["notes"] == digest_of(row.notes)
    assert created.after["first_name"] == "Big" and created.after["tags"] == ["probate"]  # small values as they are
    assert created.after["id"] == lead["id"] and "last_name" not in created.after  # empty fields left out
    assert len(json.dumps(created.after)) < 4096  # not the 70 KB of the lead again

    changed = {**custom, "field_0": "changed"}
    response = await api.patch(f"/api/v1/leads/{lead['id']}", headers=headers, json={"custom": changed})
    assert response.status_code == 200, response.text
    updated = _audits(engine, lead["id"])[-1]
    assert updated.action == "lead.update"
    assert updated.before == {"custom": digest_of(custom)} and updated.after == {"custom": digest_of(changed)}
