"""Retraining a tenant's deal models (expected return and time to close, issue 13): ScoringRetrainWorkflow's
activity for `model="deal"` and `dealflow scoring retrain --model deal`. The forecast request only reads the active
version (services/deal_forecast.py); this is the one place a tenant's deal models are trained from its CRM.

- **The first own version**: while the tenant has no deal model of its own (only the cold start, trained on the
  synthetic book), a run that finds `min_closed` closed-won deals with their figures trains on every deal of the
  book and makes it active without a later-period comparison: the cold start never learnt from the tenant's
  deals, so the switch-over is the documented rule, not a contest.
- **Every later run**: the tenant's deals are cut in time. A candidate is trained on the book as it stood at the
  cut-off (deals opened before it; the ones that closed after it are still open there, censored at their days
  open by then); it and the active version are both scored on the deals that closed after it, which neither saw
  (the cut-off is never before the active version's own `trained_until`). It is registered either way, and made
  active only when scoring/promotion.decide_deals says so. Fewer than MIN_EVALUATION won deals with their figures
  after the cut-off is "not enough history": nothing is registered.
- Versions trained with an imported file (`kind = csv`) are left alone: retraining from the CRM would drop the
  file's deals (`dealflow scoring train-deals --csv` again is their retraining).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session

from models.base import utcnow
from scoring.deal_forecast import train_forecaster
from scoring.deal_registry import DealModels
from scoring.promotion import decide_deals, evaluate_deals
from services.deal_forecast import DealRecord, book_as_of, days_between, tenant_deals
from services.retraining import HOLD_OUT, RetrainOutcome

MIN_EVALUATION = 10  # later won deals with their figures a comparison needs


def retrain_deal_models(engine: Engine, models: DealModels, tenant_id: str, *, by: str, min_closed: int = 30,
                        margin: float = 0.02, tolerance: float = 0.0, cutoff: datetime | None = None,
                        now: datetime | None = None) -> RetrainOutcome:
    now = now or utcnow()
    with Session(engine) as session:
        records = tenant_deals(session, tenant_id)
    active = models.ensure_active(tenant_id)
    if active.kind == "csv":
        return _outcome(tenant_id, None, False, f"the active deal models (v{active.version}) were trained with an "
                        "imported file of past deals: retraining from the CRM alone would drop the file's deals "
                        "(train again with `dealflow scoring train-deals --csv`)")
    ready = sum(1 for r in records if r.outcome is not None)
    if all(v.kind == "cold_start" for v in models.versions(tenant_id)):
        return _first(models, tenant_id, records, ready, min_closed, by, now, active.version)
    if cutoff is None:
        closes = sorted(r.closed for r in records if r.closed is not None)
        if not closes:
            return _outcome(tenant_id, None, False, "not enough history: no closed deal")
        cutoff = closes[min(int(len(closes) * (1 - HOLD_OUT)), len(closes) - 1)]
        if active.kind != "cold_start":  # it learnt from what had closed by then: compare on deals neither saw
            cutoff = max(cutoff, datetime.fromisoformat(active.metrics.get("trained_until")
                                                        or active.created_at.isoformat()))
    later = [r for r in records if r.closed is not None and r.closed >= cutoff]
    returns = sum(1 for r in later if r.outcome is not None)
    if returns < MIN_EVALUATION:
        return _outcome(tenant_id, None, False, f"not enough history: {ready} closed-won deals with their figures, "
                        f"{returns} of them closed after the cut-off (a comparison needs {MIN_EVALUATION})",
                        cutoff)
    try:
        candidate = train_forecaster(book_as_of(records, now, cutoff).book())
    except ValueError as exc:  # too few won deals before the cut-off
        return _outcome(tenant_id, None, False, str(exc), cutoff)
    mine, theirs = (evaluate_deals(f, *_evaluation_set(later)) for f in (candidate, active.forecaster))
    promoted, reason = decide_deals(mine, theirs, margin, tolerance)
    version = models.register(tenant_id, candidate, "crm_history", activate=promoted, extra={
        "trained_until": cutoff.isoformat(),
        "evaluation": {"cutoff": cutoff.isoformat(), "candidate": mine.as_dict(), "active": theirs.as_dict(),
                       "active_version": active.version, "margin": margin, "tolerance": tolerance},
        "promotion": {"promoted": promoted, "by": by, "at": now.isoformat(), "reason": reason}})
    return _outcome(tenant_id, version, promoted, reason, cutoff, mine.as_dict(), theirs.as_dict(), active.version)


def _first(models: DealModels, tenant_id: str, records: list[DealRecord], ready: int, min_closed: int, by: str,
           now: datetime, cold_start: int) -> RetrainOutcome:
    """The tenant's first own deal models, on every deal, once it has `min_closed` won with their figures."""
    if ready < min_closed:
        return _outcome(tenant_id, None, False, f"not enough history: {ready} closed-won deals with their figures; "
                        f"the tenant's own deal models replace the cold start at {min_closed}")
    try:
        forecaster = train_forecaster(book_as_of(records, now).book())
    except ValueError as exc:
        return _outcome(tenant_id, None, False, str(exc))
    reason = (f"the tenant's first own deal models: {ready} closed-won deals with their figures (the threshold is "
              f"{min_closed}); the cold start is replaced without a later-period comparison")
    version = models.register(tenant_id, forecaster, "crm_history", extra={
        "trained_until": now.isoformat(), "evaluation": None,
        "promotion": {"promoted": True, "by": by, "at": now.isoformat(), "reason": reason}})
    return _outcome(tenant_id, version, True, reason, active_version=cold_start)


def _evaluation_set(later: list[DealRecord]) -> tuple[list, list, list, list, list]:
    """evaluate_deals' columns for the deals closed after the cut-off: won ones are events, lost ones censored."""
    nan = float("nan")
    return ([r.row for r in later], [r.status == "won" for r in later],
            [days_between(r.opened, r.closed) for r in later], [r.outcome[0] if r.outcome else nan for r in later],
            [r.outcome[1] if r.outcome else nan for r in later])


def _outcome(tenant_id: str, version: int | None, promoted: bool, reason: str, cutoff: datetime | None = None,
             candidate: dict | None = None, active: dict | None = None,
             active_version: int | None = None) -> RetrainOutcome:
    return RetrainOutcome(tenant_id, version, promoted, reason, cutoff.isoformat() if cutoff else None, candidate,
                          active, active_version, model="deal")
