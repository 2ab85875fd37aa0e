"""The reply-intent model: accuracy on a held-out set written apart from the training set, every plain-language
opt-out in it caught, harmless replies that merely contain a keyword left alone; corrections win; the optional
LLM behind the same interface, with the text model answering when it fails."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from core.settings import Settings
from definitions.vocabulary import ReplyIntent
from scoring.intent import shipped_rows, text_model, train
from services.reply_intent import classify_reply
from tests.fakes.llm import ChatCompletionsFake

HELD_OUT = Path(__file__).resolve().parents[1] / "fixtures" / "reply_intents_heldout.csv"


def _held_out() -> list[tuple[str, str]]:
    with HELD_OUT.open(newline="", encoding="utf-8") as handle:
        return [(row["text"], row["intent"]) for row in csv.DictReader(handle)]


def test_the_held_out_set_is_apart_from_the_training_set():
    trained = {" ".join(text.lower().split()) for text, _ in shipped_rows()}
    overlap = [text for text, _ in _held_out() if " ".join(text.lower().split()) in trained]
    assert overlap == []
    assert {label for _, label in _held_out()} == {i.value for i in ReplyIntent}  # every intent is tested


def test_accuracy_on_the_held_out_set_and_every_opt_out_caught():
    model = text_model()
    rows = _held_out()
    predicted = [model.classify(text).label.value for text, _ in rows]
    accuracy = sum(p == y for p, (_, y) in zip(predicted, rows, strict=True)) / len(rows)
    assert accuracy >= 0.9, [(t, y, p) for p, (t, y) in zip(predicted, rows, strict=True) if p != y]
    missed = [text for p, (text, y) in zip(predicted, rows, strict=True) if y == "opt_out" and p != "opt_out"]
    assert missed == []  # a revocation missed means texting someone who asked us to stop


@pytest.mark.parametrize("text", ["can you stop by Tuesday", "Stop by anytime after 3 to see the place",
                                  "We had to stop the remodel, so yes we'd sell", "Don't stop calling, I'm interested"])
def test_a_harmless_reply_that_contains_a_keyword_is_not_an_opt_out(text):
    assert text_model().classify(text).label != ReplyIntent.opt_out


def test_a_correction_of_a_shipped_text_wins():
    text = "can you stop by tuesday to look at it"  # shipped as interested
    corrected = train([*shipped_rows(), (text, "call_later")])
    assert corrected.classify(text).label == ReplyIntent.call_later
    assert corrected.version != text_model().version  # the data hash names what it learned from


def test_the_llm_answers_when_configured_and_the_model_when_it_cannot(tmp_path):
    fake = ChatCompletionsFake().start()
    try:
        settings = Settings(home=tmp_path, intent_llm_url=f"{fake.url}/v1", intent_llm_api_key="sk-test",
                            intent_llm_model="tiny")
        said = classify_reply(settings, "what would you give me for it")
        assert (said.label, said.confidence, said.source, said.version) == (ReplyIntent.asks_offer, 0.91, "llm", "tiny")
        request = fake.requests[-1].json()
        assert request["model"] == "tiny" and request["messages"][-1]["content"] == "what would you give me for it"
        assert fake.requests[-1].headers["authorization"] == "Bearer sk-test"

        fake.content = '{"intent": "maybe", "confidence": 2}'  # not a label: the text model answers
        assert classify_reply(settings, "please stop texting me").source == "model"
        fake.content = "not json at all"
        assert classify_reply(settings, "please stop texting me").label == ReplyIntent.opt_out
    finally:
        fake.stop()
    down = Settings(home=tmp_path, intent_llm_url="http://127.0.0.1:9/v1", intent_llm_timeout_seconds=1)
    assert classify_reply(down, "take me off your list").label == ReplyIntent.opt_out  # nobody there: the model
