"""The deal models' side of a drift report (services/drift.py builds the report, the same as the lead model's): their
reference and their current sample.

- The reference is what the version stored at training (the deal_return row's `metrics["reference"]`,
  scoring/deal_forecast.train_forecaster): every FEATURES input's bins and shares over the training deals, and the
  distribution of the models' central predictions for them — OUTPUTS, the median days to close of a deal as new and
  its p50 profit. A version trained before drift reports has none: the cold-start one's is recomputed when its
  `training_data_hash` is the synthetic deal book's (seeded: the same rows); any other answers Conflict, "retrain
  it" (a tenant's book then, an imported file, cannot be read again as it was).
- The current sample is every deal of the tenant *created* in the window, whatever its stage (not updated: a stage
  change on a deal of last year would bring last year's deals back in, and the question is whether the deals coming
  in now look like the ones the models learnt from). Its features are `deal_features` of what the deal has now, as
  the forecast reads it (services/deal_forecast.deal_row), and its central predictions are computed now by the
  active version, read a page of deals at a time.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from sqlmodel import Session, col, select

from models.lead import Lead, Property
from models.opportunity import Opportunity
from scoring.deal_forecast import (
    CATEGORICAL, FEATURES, OUTPUTS, DealForecaster, book_hash, deal_features, synthetic_deals,
)
from scoring.deal_registry import DealModels, LoadedForecaster
from scoring.drift import references
from services.acting import Conflict, NotFound
from services.deal_forecast import deal_row
from services.drift import PAGE, Sample


def deal_sample(session: Session, deals: DealModels, tenant_id: str, since: datetime, now: datetime,
                days: int) -> Sample:
    """`deals`: the process's deal-model registry (its loaded versions cached), as the forecast uses it."""
    try:
        loaded = deals.active(tenant_id)
    except (OSError, ValueError) as exc:  # a model file gone or unreadable (XGBoostError is a ValueError)
        raise Conflict(f"the active deal models of {tenant_id!r} cannot be read ({type(exc).__name__}): retrain "
                       "them (dealflow scoring retrain --model deal)") from None
    if loaded is None:
        raise NotFound(f"tenant {tenant_id!r} has no active deal models: the cold start is made on a deal's first "
                       "forecast (GET /api/v1/opportunities/{id}/forecast), or train them (dealflow scoring "
                       "train-deals)")
    reference, source = _reference(loaded)
    frame, outputs = current_deals(session, tenant_id, loaded.forecaster, since, now)
    if frame.empty:
        raise Conflict(f"no deal of {tenant_id!r} was created in the last {days} days (since {since:%Y-%m-%d %H:%M} "
                       f"UTC): nothing to compare deal models v{loaded.version}'s training deals with")
    return Sample(version=loaded.version, label=loaded.label, kind=loaded.kind, reference=reference, source=source,
                  frame=frame, outputs=outputs, noun="deals")


def current_deals(session: Session, tenant_id: str, forecaster: DealForecaster, since: datetime, now: datetime,
                  page: int = PAGE) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The features of every deal created since `since` (up to `now`) and the forecaster's OUTPUTS for them, read
    `page` deals at a time in id order."""
    query = (select(Opportunity, Property, Lead)
             .join(Property, col(Property.id) == col(Opportunity.property_id), isouter=True)
             .join(Lead, col(Lead.id) == col(Opportunity.lead_id), isouter=True)
             .where(Opportunity.tenant_id == tenant_id, col(Opportunity.created_at) >= since,
                    col(Opportunity.created_at) <= now)
             .order_by(col(Opportunity.id)))
    frames: list[pd.DataFrame] = []
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in OUTPUTS}
    after = ""
    while True:
        deals = session.exec(query.where(col(Opportunity.id) > after).limit(page)).all()
        if not deals:
            break
        after = deals[-1][0].id
        rows = [deal_features(deal_row(deal, prop, lead)) for deal, prop, lead in deals]
        frames.append(pd.DataFrame(rows, columns=FEATURES))
        for name, values in forecaster.central(forecaster.spec.matrix(rows)).items():
            outputs[name].append(values)
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=FEATURES)
    return frame, {name: np.concatenate(parts) if parts else np.array([]) for name, parts in outputs.items()}


def _reference(loaded: LoadedForecaster) -> tuple[dict[str, Any], str]:
    stored = loaded.metrics.get("reference")
    if stored:
        return stored, "stored with the version at training"
    if loaded.kind == "cold_start" and loaded.forecaster.data_hash == _cold_start_book_hash():
        # the same rows, predicted by this version's own trees (an older cold start's were fitted differently)
        rows = _cold_start_rows()
        outputs = loaded.forecaster.central(loaded.forecaster.spec.matrix(rows))
        return (references(pd.DataFrame(rows, columns=FEATURES), set(CATEGORICAL), outputs=outputs),
                "recomputed from the cold-start deal book (seeded: the same rows) and this version's predictions")
    raise Conflict(f"no reference stored for deal models v{loaded.version} (they were trained before drift "
                   "reports): retrain them (dealflow scoring train-deals) and drift is measured against the new "
                   "version's training deals")


@lru_cache(maxsize=1)
def _cold_start_book_hash() -> str:
    return book_hash(None, synthetic_deals())


@lru_cache(maxsize=1)
def _cold_start_rows() -> list[dict[str, Any]]:
    return [deal_features(deal) for deal in synthetic_deals().deals]
