"""The drift report of the active lead-scoring model or (?model=deal) deal models (services/drift.py) and a plot per
feature."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.deps import DealModelsDep, PrincipalDep, SessionDep, SettingsDep
from scoring.drift_plot import drift_png
from services.drift import DriftReport, drift_report, plot_title

router = APIRouter(prefix="/api/v1/scoring", tags=["scoring"])

_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_WHY = {404: {"description": "The tenant has no active model of that kind (or, for a plot, the model has no such "
                             "feature)", "content": _PROBLEM},
        409: {"description": "No lead was scored (no deal was created) in the window, or the model version has no "
                             "stored reference (retrain it)", "content": _PROBLEM},
        422: {"description": "An unknown model, or days out of range", "content": _PROBLEM}}
Days = Annotated[int | None, Query(ge=1, le=365, description="the window: leads scored (deals created) in the last "
                                                             "`days` days (default DEALFLOW_DRIFT_WINDOW_DAYS, 30)")]
Model = Annotated[Literal["lead", "deal"], Query(description="lead: the lead-scoring model (inputs and score); deal: "
                                                            "the deal models (inputs, median days to close, p50 "
                                                            "profit)")]


@router.get("/drift", response_model=DriftReport, responses=_WHY)
def get_drift(session: SessionDep, settings: SettingsDep, principal: PrincipalDep, deals: DealModelsDep,
              days: Days = None, model: Model = "lead") -> DriftReport:
    """Population stability (PSI) of every input of the tenant's active model and of its outputs (`predictions`):
    its training data against the leads scored (`model=deal`: the deals created) in the last `days` days.
    `drifted` lists the features over DEALFLOW_DRIFT_PSI_THRESHOLD (0.25); each feature's `bins` give both
    distributions. Sets the ModelDrift (DealModelDrift) alert's gauges."""
    return drift_report(session, settings, principal.tenant_id, days, model=model, deals=deals)


@router.get("/drift/{feature}.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}, "description": "the feature's bins, training data vs "
                                                                          "the window"}, **_WHY})
def get_drift_plot(feature: str, session: SessionDep, settings: SettingsDep, principal: PrincipalDep,
                   deals: DealModelsDep, days: Days = None, model: Model = "lead") -> Response:
    """One feature's (or an output's: `score`; `median_days`, `profit_p50`) reference and current share of each
    bin, as a PNG bar chart."""
    report = drift_report(session, settings, principal.tenant_id, days, model=model, deals=deals)
    drift = report.find(feature)
    return Response(drift_png(drift, plot_title(report, feature), report.noun),
                    media_type="image/png", headers={"Cache-Control": "no-store"})
