"""The dashboard: the funnel by source, speed to lead, conversion and gross profit by source, messages and the open
pipeline's value by stage, for a range of days. Any signed-in role may read it; the numbers and their definitions
are services/dashboard.py's."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import PrincipalDep, SessionDep
from services.dashboard import Dashboard, dashboard, day_range

router = APIRouter(prefix="/api/v1/dashboard", tags=["dashboard"])


@router.get("", response_model=Dashboard)
def get_dashboard(
    session: SessionDep,
    principal: PrincipalDep,
    start: Annotated[date | None, Query(alias="from", description="the first day (UTC), default: 29 days before "
                                                                  "`to`")] = None,
    end: Annotated[date | None, Query(alias="to", description="the last day, included (UTC), default: today")
                   ] = None,
) -> Dashboard:
    """The tenant's numbers for the days `from` to `to` (both included; at most two years): the funnel of the leads
    received then, their speed to lead and conversion by source, the gross profit of the deals closed won then,
    the messages, and the open deals' value by stage now. `from` after `to` or a longer range is a 422 naming the
    field."""
    return dashboard(session, principal.tenant_id, day_range(start, end))
