"""Reply intent over HTTP: a plain-language revocation by SMS opts the number out like STOP (and stops the
cadence), every other reply reaches the lead's workflow and definitions with its intent, and staff corrections are
recorded, audited, honoured (a correction to opt_out opts out) and learned by the next model."""

from __future__ import annotations

import asyncio
import uuid

from sqlmodel import Session, select

from models.audit import AuditLog
from models.consent import is_opted_out
from models.event import Event
from models.message import Message
from models.tenant import Role
from scoring import intent as intent_model
from services.reply_intent import retrain
from tests.conftest import first_touch_run
from tests.integration.test_webhooks import _quiet_lead, _sent_message, _twilio_post


async def test_please_stop_texting_me_opts_out_like_stop(api, engine, make_key, temporal_client):
    tenant, number, lead, headers = await _quiet_lead(api, engine, make_key)
    first_touch = await first_touch_run(engine, temporal_client, lead["id"], step="welcome", timeout=90)
    form = {"MessageSid": f"SM{uuid.uuid4().hex}", "From": lead["phone"], "To": number,
            "Body": "Please stop texting me"}
    response = await _twilio_post(api, "/api/v1/webhooks/twilio/sms", form)
    assert response.status_code == 200
    assert "no more texts" in response.text and "START" in response.text  # one confirmation, as the FCC allows
    state = await asyncio.wait_for(first_touch.result(), timeout=10)
    assert state.status == "exited" and "lead.opted_out" in state.path[-1]["detail"]
    with Session(engine) as session:
        assert is_opted_out(session, tenant, "sms", lead["phone"])
        inbound = session.exec(select(Message).where(Message.lead_id == lead["id"],
                                                     Message.direction == "inbound")).one()
        names = session.exec(select(Event.name).where(Event.subject_id == lead["id"])).all()
    assert (inbound.intent, inbound.intent_source) == ("opt_out", "model") and inbound.intent_confidence > 0.5
    assert "lead.opted_out" in names and "lead.replied" not in names

    again = await _twilio_post(api, "/api/v1/webhooks/twilio/sms", form)  # Twilio's retry: nothing twice
    assert again.status_code == 200 and "<Message>" not in again.text


async def test_a_reply_reaches_the_workflow_with_its_intent_and_staff_can_correct_it(api, engine, make_key,
                                                                                      tmp_path, monkeypatch):
    tenant, number, lead, headers = await _quiet_lead(api, engine, make_key)
    form = {"MessageSid": f"SM{uuid.uuid4().hex}", "From": lead["phone"], "To": number,
            "Body": "How much would you pay for it?"}
    assert (await _twilio_post(api, "/api/v1/webhooks/twilio/sms", form)).status_code == 200
    with Session(engine) as session:
        message = session.exec(select(Message).where(Message.lead_id == lead["id"],
                                                     Message.direction == "inbound")).one()
        replied = session.exec(select(Event).where(Event.subject_id == lead["id"],
                                                   Event.name == "lead.replied")).one()
    assert message.intent == "asks_offer"
    assert replied.data["intent"] == "asks_offer" and replied.data["intent_confidence"] == message.intent_confidence
    shown = (await api.get(f"/api/v1/messages/{message.id}", headers=headers)).json()
    assert shown["intent"] == "asks_offer" and shown["intent_source"] == "model"

    # Staff say it was a revocation: recorded as theirs, audited, on the timeline, and the number opted out
    corrected = await api.post(f"/api/v1/messages/{message.id}/intent", headers=headers, json={"intent": "opt_out"})
    assert corrected.status_code == 200, corrected.text
    assert corrected.json()["intent"] == "opt_out" and corrected.json()["intent_source"] == "staff"
    assert corrected.json()["events"][-1]["from"] == "asks_offer"
    with Session(engine) as session:
        assert is_opted_out(session, tenant, "sms", lead["phone"])
        audit = session.exec(select(AuditLog).where(AuditLog.entity_id == message.id,
                                                    AuditLog.action == "message.intent_correct")).one()
    assert audit.before["intent"] == "asks_offer" and audit.after["intent"] == "opt_out"
    timeline = (await api.get(f"/api/v1/leads/{lead['id']}/timeline", headers=headers)).json()
    assert any(e["kind"] == "message.intent_corrected" for e in timeline)

    # Refusals: an outbound message has no intent; another tenant's message does not exist; a bad label is a 422
    outbound = _sent_message(engine)
    other = make_key(Role.staff, tenant=outbound.tenant_id)
    assert (await api.post(f"/api/v1/messages/{outbound.id}/intent", headers=other,
                           json={"intent": "interested"})).status_code == 409
    assert (await api.post(f"/api/v1/messages/{message.id}/intent", headers=other,
                           json={"intent": "interested"})).status_code == 404
    bad = await api.post(f"/api/v1/messages/{message.id}/intent", headers=headers, json={"intent": "maybe"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"].endswith("intent")
    readonly = make_key(Role.readonly, tenant=tenant)
    assert (await api.post(f"/api/v1/messages/{message.id}/intent", headers=readonly,
                           json={"intent": "interested"})).status_code == 403

    # The next model learns the correction (saved where every process loads it)
    from core.settings import Settings

    settings = Settings(home=tmp_path, models_dir=tmp_path / "models")
    with Session(engine) as session:
        model, corrections = retrain(session, settings)
    assert corrections >= 1 and (tmp_path / "models" / intent_model.MODEL_FILE).exists()
    assert intent_model.text_model(tmp_path / "models").version == model.version
    assert model.classify("How much would you pay for it?").label.value == "opt_out"


def test_dealflow_scoring_intent_train_saves_a_model_every_process_loads(tmp_path):
    """The CLI retrains on the shipped set plus corrections (none in a fresh home) and saves the model 0600."""
    import subprocess

    from tests.integration.test_cli import DEALFLOW, _env

    out = subprocess.run([*DEALFLOW, "scoring", "intent-train"], cwd=tmp_path, env=_env(tmp_path),
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert "reply-intent model" in out.stdout and "0 staff correction" in out.stdout
    saved = tmp_path / ".dealflow" / "models" / intent_model.MODEL_FILE
    assert saved.exists() and saved.stat().st_mode & 0o777 == 0o600
    assert intent_model.text_model(saved.parent).classify("take me off your list").label.value == "opt_out"


async def test_a_broken_intent_model_costs_the_reply_nothing(api, engine, make_key, monkeypatch):
    """The model failing (a corrupt saved file, a library mismatch) must not turn the webhook into a 500: Twilio
    does not retry inbound messages, so the reply — maybe a revocation staff must see — would be gone."""
    import services.reply_intent

    def broken(_models_dir=None):
        raise RuntimeError("model file does not load")

    monkeypatch.setattr(services.reply_intent, "text_model", broken)
    tenant, number, lead, headers = await _quiet_lead(api, engine, make_key)
    form = {"MessageSid": f"SM{uuid.uuid4().hex}", "From": lead["phone"], "To": number, "Body": "Sounds good"}
    response = await _twilio_post(api, "/api/v1/webhooks/twilio/sms", form)
    assert response.status_code == 200, response.text
    with Session(engine) as session:
        message = session.exec(select(Message).where(Message.lead_id == lead["id"],
                                                     Message.direction == "inbound")).one()
        names = session.exec(select(Event.name).where(Event.subject_id == lead["id"])).all()
    assert message.body == "Sounds good" and message.intent is None  # stored, unclassified, correctable
    assert "lead.replied" in names


def test_a_saved_model_that_does_not_load_falls_back_to_the_shipped_set(tmp_path):
    (tmp_path / intent_model.MODEL_FILE).write_bytes(b"not a joblib file")
    model = intent_model.text_model(tmp_path)
    assert model.classify("please take me off your list").label.value == "opt_out"
