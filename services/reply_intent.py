"""Reply intent for the webhooks and staff: classify an inbound reply (the LLM when one is configured, else the
shipped text model), correct a classification, and the rows the next model trains on (the shipped set plus every
correction staff made)."""

from __future__ import annotations

import logging

from sqlmodel import Session, select

from core.settings import Settings
from definitions.vocabulary import ReplyIntent
from models.audit import record_audit
from models.base import utcnow
from models.message import Message
from models.timeline import TimelineEntry
from providers import intent_llm
from scoring.intent import Intent, TextModel, save, shipped_rows, text_model, train

log = logging.getLogger("dealflow.intent")


def classify_reply(settings: Settings, text: str) -> Intent | None:
    """What the reply means, or None when nothing could say (logged): the reply is then stored and delivered
    unclassified — never lost — and staff can set its intent. Blocking (the model's CPU, the LLM's HTTP call):
    call it from a worker thread, and outside a database transaction."""
    if settings.intent_llm_url:
        try:
            label, confidence = intent_llm.classify(settings.intent_llm_url, settings.intent_llm_model,
                                                    settings.intent_llm_api_key, text,
                                                    settings.intent_llm_timeout_seconds)
            return Intent(label, round(confidence, 4), "llm", settings.intent_llm_model[:100])
        except intent_llm.IntentLlmError as exc:
            log.warning("intent LLM failed (%s); the text model answers", exc)
    try:
        return text_model(settings.effective_models_dir).classify(text)
    except Exception:  # noqa: BLE001 — a broken model must not cost the reply (or an opt-out in it) its record
        log.exception("the reply-intent model failed; the reply is kept unclassified")
        return None


def record_intent(message: Message, intent: Intent) -> None:
    message.intent, message.intent_confidence = intent.label.value, intent.confidence
    message.intent_source, message.intent_version = intent.source, intent.version


def correct_intent(session: Session, message: Message, intent: ReplyIntent, actor: str) -> Message:
    """Staff say what the reply meant: stored as the message's intent (source staff), what the model had said kept
    in the message's events, an audit row and a timeline entry; the caller commits. The next model learns it."""
    before = {"intent": message.intent, "intent_source": message.intent_source,
              "intent_confidence": message.intent_confidence}
    message.events = [*message.events, {"event": "intent_corrected", "at": utcnow().isoformat(), "by": actor,
                                        "from": message.intent, "to": intent.value}]
    record_intent(message, Intent(intent, 1.0, "staff", actor[:100]))
    session.add(message)
    record_audit(session, tenant_id=message.tenant_id, actor=actor, action="message.intent_correct",
                 entity_type="message", entity_id=message.id, before=before,
                 after={"intent": intent.value, "intent_source": "staff"})
    if message.lead_id or message.investor_id:
        corrections = sum(1 for e in message.events if e.get("event") == "intent_corrected")
        session.add(TimelineEntry(tenant_id=message.tenant_id, lead_id=message.lead_id,
                                  investor_id=message.investor_id, kind="message.intent_corrected", actor=actor,
                                  summary=f"Reply marked {intent.value.replace('_', ' ')} (was "
                                          f"{(before['intent'] or 'unclassified').replace('_', ' ')})",
                                  data={"message_id": message.id, "from": before["intent"], "to": intent.value},
                                  idempotency_key=f"{message.id}:intent_corrected:{corrections}"))
    return message


def training_rows(session: Session) -> list[tuple[str, str]]:
    """The shipped labelled set, then every staff correction (a correction of a shipped text wins)."""
    corrected = session.exec(select(Message.body, Message.intent).where(Message.intent_source == "staff",
                                                                          Message.direction == "inbound")).all()
    return [*shipped_rows(), *((body, intent) for body, intent in corrected if body and intent)]


def retrain(session: Session, settings: Settings) -> tuple[TextModel, int]:
    """Train on the shipped set and the corrections, save it where every process loads it. Returns the model and
    the number of corrections it learned from."""
    rows = training_rows(session)
    model = train(rows)
    save(model, settings.effective_models_dir)
    return model, len(rows) - len(shipped_rows())
