"""Reply intent from an LLM: any OpenAI-compatible chat-completions endpoint (`DEALFLOW_INTENT_LLM_URL`), asked for
one label of the language's `ReplyIntent` and its confidence as JSON. Off by default; the text model in
scoring/intent.py answers whenever this one does not (no URL, an error, an answer that is not a known label)."""

from __future__ import annotations

import json

import httpx

from definitions.vocabulary import ReplyIntent

LABELS = ", ".join(i.value for i in ReplyIntent)
PROMPT = (
    "You classify a reply that a homeowner or investor sent to a real-estate investor's text message or email. "
    f"Answer with JSON only: {{\"intent\": one of [{LABELS}], \"confidence\": 0..1}}. "
    "opt_out means they ask, in any words, not to be contacted again (including 'wrong number, don't text me'); "
    "asks_offer means they ask for a price or an offer; call_later means not now but later; other is anything "
    "else (a question about who is writing, a thank-you)."
)


class IntentLlmError(Exception):
    pass


def classify(url: str, model: str, api_key: str | None, text: str, timeout: float) -> tuple[ReplyIntent, float]:
    """(intent, confidence) from the endpoint, or IntentLlmError saying why not."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    body = {"model": model, "temperature": 0, "response_format": {"type": "json_object"},
            "messages": [{"role": "system", "content": PROMPT}, {"role": "user", "content": text[:2000]}]}
    try:
        answer = httpx.post(f"{url.rstrip('/')}/chat/completions", json=body, headers=headers, timeout=timeout)
        answer.raise_for_status()
        content = answer.json()["choices"][0]["message"]["content"]
        parsed = json.loads(content)
        intent = ReplyIntent(str(parsed["intent"]).strip().lower())
        confidence = min(max(float(parsed.get("confidence", 0.5)), 0.0), 1.0)
    except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise IntentLlmError(f"{type(exc).__name__}: {exc}"[:300]) from exc
    return intent, confidence
