"""The deal models' registry: each version of a tenant's deal forecaster is two scoring_models rows of one version
number, `deal_return` (a directory holding profit.json and roi.json, XGBoost's own JSON) and `deal_close_time`
(close_time.json), both active or neither. A tenant with none gets the cold-start forecaster (trained once per
process on the synthetic deal book) as its version 1. Every version is kept: a retrained one that was not promoted
is registered inactive (services/deal_retraining.py), and `activate` makes any version the active one again."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import xgboost as xgb
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from models.base import utcnow
from models.enrichment import ScoringModel
from scoring.deal_forecast import FEATURES, DealForecaster, FeatureSpec, synthetic_deals, train_forecaster

DEAL_RETURN, DEAL_CLOSE_TIME = "deal_return", "deal_close_time"
RETURN_KEYS = ("n_returns", "profit_pinball", "profit_pinball_baseline", "profit_coverage_80", "roi_pinball",
               "roi_pinball_baseline", "roi_coverage_80")
CLOSE_KEYS = ("n_open", "n_lost", "concordance", "sigma", "distribution")


@dataclass
class DealVersion:
    """One version of a tenant's deal models as the registry lists it: both rows' metrics in one."""

    version: int
    kind: str
    active: bool
    created_at: datetime
    training_data_hash: str
    features: list[str]
    metrics: dict[str, Any]


@dataclass
class LoadedForecaster:
    tenant_id: str
    version: int
    kind: str  # cold_start, crm_history, csv
    forecaster: DealForecaster
    metrics: dict[str, Any]
    created_at: datetime

    @property
    def label(self) -> str:
        return f"{self.tenant_id}-deals-v{self.version}-{self.kind}"


_COLD_START: DealForecaster | None = None
_COLD_START_LOCK = threading.Lock()


def cold_start_forecaster() -> DealForecaster:
    """Trained once per process on the synthetic deal book (about two seconds on two cores)."""
    global _COLD_START
    with _COLD_START_LOCK:
        if _COLD_START is None:
            _COLD_START = train_forecaster(synthetic_deals())
        return _COLD_START


class DealModels:
    def __init__(self, engine: Engine, models_dir: Path) -> None:
        self._engine, self._dir = engine, models_dir
        self._cache: dict[tuple[str, int], LoadedForecaster] = {}
        self.lock = threading.Lock()  # one training per process at a time; the database settles the rest

    def register(self, tenant_id: str, forecaster: DealForecaster, kind: str, *, activate: bool = True,
                 extra: dict[str, Any] | None = None) -> int:
        """Store a new version (both rows; `extra` in both rows' metrics: its evaluation and promotion) and make it
        the active one unless `activate` is False. Returns its version."""
        with Session(self._engine, expire_on_commit=False) as session:
            version = (session.exec(select(func.max(ScoringModel.version)).where(
                ScoringModel.tenant_id == tenant_id,
                col(ScoringModel.model).in_([DEAL_RETURN, DEAL_CLOSE_TIME]))).one() or 0) + 1
            # A directory of its own per attempt: two processes racing for one version number must not overwrite
            # each other's files (the loser's insert fails; the winner's row points at the winner's files).
            attempt = f"v{version}-{uuid.uuid4().hex[:8]}"
            returns = self._dir / tenant_id / DEAL_RETURN / attempt
            returns.mkdir(parents=True, exist_ok=True)
            forecaster.profit.save_model(returns / "profit.json")
            forecaster.roi.save_model(returns / "roi.json")
            close = self._dir / tenant_id / DEAL_CLOSE_TIME / attempt
            close.mkdir(parents=True, exist_ok=True)
            forecaster.close_time.save_model(close / "close_time.json")
            m = forecaster.metrics
            common = {"n_deals": m["n_deals"], "n_won": m["n_won"], "train_seconds": m.get("train_seconds"),
                      "categories": forecaster.spec.categories, **(extra or {})}
            rows = [ScoringModel(tenant_id=tenant_id, model=DEAL_RETURN, version=version, kind=kind,
                                 path=str(returns), features=list(FEATURES), training_data_hash=forecaster.data_hash,
                                 metrics={**common, **{k: m[k] for k in RETURN_KEYS if k in m},
                                          # the drift reference, once per version (services/deal_drift.py)
                                          **({"reference": m["reference"]} if "reference" in m else {})},
                                 active=activate),
                    ScoringModel(tenant_id=tenant_id, model=DEAL_CLOSE_TIME, version=version, kind=kind,
                                 path=str(close / "close_time.json"), features=list(FEATURES),
                                 training_data_hash=forecaster.data_hash,
                                 metrics={**common, **{k: m[k] for k in CLOSE_KEYS if k in m}}, active=activate)]
            for current in self._active_rows(session, tenant_id) if activate else []:
                current.active = False
                session.add(current)
            session.flush()
            session.add_all(rows)
            session.commit()
            return version

    def versions(self, tenant_id: str) -> list[DealVersion]:
        """Every version of the tenant's deal models, newest first."""
        with Session(self._engine) as session:
            rows = session.exec(select(ScoringModel).where(
                ScoringModel.tenant_id == tenant_id, col(ScoringModel.model).in_([DEAL_RETURN, DEAL_CLOSE_TIME]))
                .order_by(col(ScoringModel.version).desc(), col(ScoringModel.model).desc())).all()
            out: dict[int, DealVersion] = {}
            for row in rows:  # deal_return first: its kind, hash and features stand for the version
                known = out.setdefault(row.version, DealVersion(
                    version=row.version, kind=row.kind, active=row.active, created_at=row.created_at,
                    training_data_hash=row.training_data_hash, features=list(row.features), metrics={}))
                known.metrics.update({k: v for k, v in row.metrics.items() if k != "categories"})
                known.active = known.active and row.active
            return list(out.values())

    def activate(self, tenant_id: str, version: int, by: str, reason: str) -> DealVersion:
        """Make `version` the active one (a rollback, or a promotion by hand), recording who and why on both rows."""
        with Session(self._engine, expire_on_commit=False) as session:
            rows = session.exec(select(ScoringModel).where(
                ScoringModel.tenant_id == tenant_id, col(ScoringModel.model).in_([DEAL_RETURN, DEAL_CLOSE_TIME]),
                ScoringModel.version == version)).all()
            if len(rows) != 2:
                raise LookupError(f"{tenant_id} has no deal model v{version}")
            current = [row for row in self._active_rows(session, tenant_id) if row.version != version]
            for row in current:
                row.active = False
                session.add(row)
            session.flush()  # one active version per model at a time
            replaced = current[0].version if current else None
            for row in rows:
                entry = {"by": by, "at": utcnow().isoformat(), "reason": reason, "replaced": replaced}
                row.metrics = {**row.metrics, "activations": [*row.metrics.get("activations", []), entry]}
                row.active = True
                session.add(row)
            session.commit()
        return next(v for v in self.versions(tenant_id) if v.version == version)

    def _active_rows(self, session: Session, tenant_id: str) -> list[ScoringModel]:
        return list(session.exec(select(ScoringModel).where(
            ScoringModel.tenant_id == tenant_id, col(ScoringModel.model).in_([DEAL_RETURN, DEAL_CLOSE_TIME]),
            col(ScoringModel.active).is_(True))))

    def active(self, tenant_id: str) -> LoadedForecaster | None:
        with Session(self._engine) as session:
            rows = {row.model: row for row in self._active_rows(session, tenant_id)}
        returns, close = rows.get(DEAL_RETURN), rows.get(DEAL_CLOSE_TIME)
        if returns is None or close is None or returns.version != close.version:
            return None
        return self._load(returns, close)

    def ensure_active(self, tenant_id: str) -> LoadedForecaster:
        loaded = self.active(tenant_id)
        if loaded:
            return loaded
        with self.lock:
            loaded = self.active(tenant_id)
            if loaded:
                return loaded
            self.register_or_settle(tenant_id, cold_start_forecaster(), "cold_start")
            loaded = self.active(tenant_id)
            assert loaded is not None
            return loaded

    def register_or_settle(self, tenant_id: str, forecaster: DealForecaster, kind: str) -> None:
        try:
            self.register(tenant_id, forecaster, kind)
        except IntegrityError:
            pass  # another process registered a version of the same number first: theirs stands

    def _load(self, returns: ScoringModel, close: ScoringModel) -> LoadedForecaster:
        key = (returns.tenant_id, returns.version)
        if key not in self._cache:
            directory = Path(returns.path)
            profit, roi = xgb.XGBRegressor(), xgb.XGBRegressor()
            profit.load_model(directory / "profit.json")
            roi.load_model(directory / "roi.json")
            booster = xgb.Booster()
            booster.load_model(close.path)
            spec = FeatureSpec(returns.metrics.get("categories", {}))
            metrics = {**{k: v for k, v in returns.metrics.items() if k != "categories"},
                       **{k: v for k, v in close.metrics.items() if k != "categories"}}
            forecaster = DealForecaster(profit=profit, roi=roi, close_time=booster, spec=spec,
                                        sigma=float(close.metrics["sigma"]), metrics=metrics,
                                        data_hash=returns.training_data_hash,
                                        distribution=close.metrics.get("distribution", "normal"))
            self._cache[key] = LoadedForecaster(tenant_id=returns.tenant_id, version=returns.version,
                                                kind=returns.kind, forecaster=forecaster, metrics=metrics,
                                                created_at=returns.created_at)
        return self._cache[key]
