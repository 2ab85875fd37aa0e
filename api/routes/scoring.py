"""The active lead-scoring model's drift report (services/drift.py) and a plot per feature."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.deps import PrincipalDep, SessionDep, SettingsDep
from scoring.drift_plot import drift_png
from services.drift import DriftReport, drift_report

router = APIRouter(prefix="/api/v1/scoring", tags=["scoring"])

_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_WHY = {404: {"description": "The tenant has no active scoring model (or, for a plot, the model has no such "
                             "feature)", "content": _PROBLEM},
        409: {"description": "No lead was scored in the window, or the model version has no stored reference "
                             "(retrain it)", "content": _PROBLEM}}
Days = Annotated[int | None, Query(ge=1, le=365, description="the window: leads scored in the last `days` days "
                                                             "(default DEALFLOW_DRIFT_WINDOW_DAYS, 30)")]


@router.get("/drift", response_model=DriftReport, responses=_WHY)
def get_drift(session: SessionDep, settings: SettingsDep, principal: PrincipalDep, days: Days = None) -> DriftReport:
    """Population stability (PSI) of every input of the tenant's active model and of its score: its training data
    against the leads scored in the last `days` days. `drifted` lists the features over DEALFLOW_DRIFT_PSI_THRESHOLD
    (0.25); each feature's `bins` give both distributions. Sets the ModelDrift alert's gauges."""
    return drift_report(session, settings, principal.tenant_id, days)


@router.get("/drift/{feature}.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}, "description": "the feature's bins, training data vs "
                                                                          "the window"}, **_WHY})
def get_drift_plot(feature: str, session: SessionDep, settings: SettingsDep, principal: PrincipalDep,
                   days: Days = None) -> Response:
    """One feature's (or `score`'s) reference and current share of each bin, as a PNG bar chart."""
    report = drift_report(session, settings, principal.tenant_id, days)
    drift = report.find(feature)
    return Response(drift_png(drift, f"{feature} (model v{report.model_version}, last {report.window_days} days)"),
                    media_type="image/png", headers={"Cache-Control": "no-store"})
