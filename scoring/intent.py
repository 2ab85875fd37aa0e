"""Reply intent: what an inbound SMS (or email reply) means, from a text model trained on a labelled set shipped in
the repo (scoring/data/reply_intents.csv) plus the corrections staff made.

The model is TF-IDF over words (1–2-grams) and characters (2–5-grams within words, which carries typos and
"dont"/"don't") into a logistic regression (scikit-learn; trained in well under a second, so a process trains it
on first use and keeps it; `dealflow scoring intent-train` saves one that includes the corrections). The labels
are the language's `ReplyIntent` (definitions/vocabulary.py). Nothing is downloaded at run time.
"""

from __future__ import annotations

import csv
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

from typing import Any

from definitions.vocabulary import ReplyIntent

# scikit-learn and joblib are imported where they are used: the API imports this module, and loading them took a
# second of every process's start-up, before the first reply needed them.

SHIPPED = Path(__file__).with_name("data") / "reply_intents.csv"
MODEL_FILE = "reply-intent.joblib"
MAX_TEXT = 2000  # a reply longer than this is classified on its start (the rest is quoted history, mostly)


@dataclass(frozen=True)
class Intent:
    label: ReplyIntent
    confidence: float  # the model's probability of `label`
    source: str  # model, llm, staff
    version: str  # the model that said so (its data hash), the LLM's model name, or the staff member


@dataclass(frozen=True)
class TextModel:
    pipeline: Any  # sklearn.pipeline.Pipeline
    version: str  # sha256 of the training rows, first 12 hex digits

    def classify(self, text: str) -> Intent:
        probabilities = self.pipeline.predict_proba([_clean(text)])[0]
        best = int(probabilities.argmax())
        return Intent(ReplyIntent(self.pipeline.classes_[best]), round(float(probabilities[best]), 4), "model",
                      self.version)


def _clean(text: str) -> str:
    return " ".join(text[:MAX_TEXT].split())


def shipped_rows(path: Path = SHIPPED) -> list[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [(row["text"], row["intent"]) for row in csv.DictReader(handle)]
    unknown = {label for _, label in rows} - {i.value for i in ReplyIntent}
    if unknown:
        raise ValueError(f"{path.name}: unknown intent(s) {sorted(unknown)}")
    return rows


def train(rows: list[tuple[str, str]]) -> TextModel:
    """Fit the pipeline on (text, intent) rows. A later row for the same text wins (a staff correction over the
    shipped label)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_union

    latest = {_clean(text).lower(): (text, label) for text, label in rows if text.strip()}
    texts = [_clean(text) for text, _ in latest.values()]
    labels = [label for _, label in latest.values()]
    if len(set(labels)) < 2:
        raise ValueError("reply intent training needs at least two intents")
    pipeline = Pipeline([
        ("features", make_union(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                                TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True))),
        ("model", LogisticRegression(C=30.0, max_iter=2000, class_weight="balanced")),
    ])
    pipeline.fit(texts, labels)
    digest = hashlib.sha256("\n".join(f"{t}\t{label}" for t, label in sorted(zip(texts, labels, strict=True))).encode())
    return TextModel(pipeline, digest.hexdigest()[:12])


def save(model: TextModel, models_dir: Path) -> Path:
    import joblib

    models_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = models_dir / MODEL_FILE
    tmp = path.with_suffix(".tmp")
    joblib.dump({"pipeline": model.pipeline, "version": model.version}, tmp)
    tmp.chmod(0o600)
    tmp.replace(path)
    return path


_lock = threading.Lock()
_loaded: dict[Path, tuple[float, TextModel]] = {}


def _load(path: Path) -> TextModel | None:
    import logging

    import joblib

    try:
        saved = joblib.load(path)
        return TextModel(saved["pipeline"], saved["version"])
    except Exception:  # noqa: BLE001 — the shipped set is always there to train on instead
        logging.getLogger("dealflow.intent").warning("%s does not load; using the shipped set", path, exc_info=True)
        return None


def text_model(models_dir: Path | None = None) -> TextModel:
    """The saved model (the shipped set plus corrections, `dealflow scoring intent-train`) when there is one, else
    one trained on the shipped set; kept per process and reloaded when the saved file changes."""
    path = (models_dir / MODEL_FILE) if models_dir else None
    stamp = path.stat().st_mtime if path and path.exists() else 0.0
    key = path or SHIPPED
    with _lock:
        cached = _loaded.get(key)
        if cached is None or cached[0] != stamp:
            model = _load(path) if stamp else None
            if model is None:  # no saved model, or one that does not load (corrupt, another scikit-learn)
                model = train(shipped_rows())
            _loaded[key] = (stamp, model)
        return _loaded[key][1]
