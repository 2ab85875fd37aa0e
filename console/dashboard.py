"""The console's dashboard: the funnel by source, speed to lead, conversion and gross profit by source, messages
and the open pipeline's value by stage, for the days chosen in a plain GET form. Reads through the dashboard API's
own handler (the numbers and what they mean are services/dashboard.py's); draws each as an inline SVG bar chart
beside a table of the same numbers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from api.deps import SessionDep
from api.routes import dashboard as dashboard_api
from console.app import render
from console.auth import SignedIn
from console.charts import bar_chart
from definitions.pipelines import PIPELINES
from services.acting import Invalid
from services.dashboard import STAGES, Dashboard

router = APIRouter(prefix="/app", include_in_schema=False)

STAGE_LABELS = {"leads": "leads", "contacted": "contacted", "qualified": "qualified", "deal": "deal",
                "closed_won": "closed won"}
MESSAGE_LABELS = {"sent": "sent", "delivered": "delivered", "replied": "replies", "opted_out": "opted out"}


def _label(value: str) -> str:
    return {"all": "all sources", "none": "no lead"}.get(value, value.replace("_", " "))


def _wait(seconds: float | None) -> str:
    """Seconds as the page says them: 45s, 12m, 3h20m, 2d4h."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.0f}s"
    total, parts = int(round(seconds)), []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if total >= size:
            parts.append(f"{total // size}{unit}")
            total %= size
    return "".join(parts[:2])


def _money(value) -> str:
    return f"−${abs(value):,.0f}" if value < 0 else f"${value:,.0f}"


def charts(found: Dashboard) -> dict:
    funnel = [(row, bar_chart([(STAGE_LABELS[s], getattr(row, s), f"{getattr(row, s):,}") for s in STAGES]))
              for row in found.funnel if row.leads]
    speed = bar_chart([(_label(r.source), r.median_seconds, _wait(r.median_seconds))
                       for r in found.speed_to_lead if r.touched])
    profit = bar_chart([(_label(r.source), r.gross_profit, _money(r.gross_profit))
                        for r in found.conversion if r.won_deals])
    messages = [(row, bar_chart([(label, getattr(row, key), f"{getattr(row, key):,}")
                                 for key, label in MESSAGE_LABELS.items()])) for row in found.messages]
    pipeline = [(name, [r for r in found.pipeline if r.pipeline == name],
                 bar_chart([(_label(r.stage), r.value, f"{_money(r.value)} · {r.deals}")
                            for r in found.pipeline if r.pipeline == name]))
                for name in dict.fromkeys([*PIPELINES, *(r.pipeline for r in found.pipeline)])]
    return {"funnel": funnel, "speed": speed, "profit": profit, "messages": messages, "pipeline": pipeline}


def _day(value: str, field: str, errors: dict[str, str]) -> date | None:
    if not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        errors[field] = f"{field} is a date (YYYY-MM-DD)"
        return None


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(request: Request, principal: SignedIn, session: SessionDep,
              start: Annotated[str, Query(alias="from", max_length=10)] = "",
              end: Annotated[str, Query(alias="to", max_length=10)] = "") -> HTMLResponse:
    # (the form sends its empty fields too: empty means the default, the last 30 days)
    errors: dict[str, str] = {}
    since, until = _day(start, "from", errors), _day(end, "to", errors)
    found = None
    if not errors:
        try:
            found = dashboard_api.get_dashboard(session, principal, start=since, end=until)
        except Invalid as exc:
            errors[exc.field or "from"] = str(exc)
    chosen = {"from": start if errors else found.start.isoformat(), "to": end if errors else found.end.isoformat()}
    today = datetime.now(UTC).date()  # (the days are UTC days, as the API's)
    presets = [(label, (today - timedelta(days=days - 1)).isoformat(), today.isoformat())
               for label, days in (("7 days", 7), ("30 days", 30), ("90 days", 90), ("a year", 365))]
    return render(request, "dashboard.html.j2", principal, status=422 if errors else 200, title="Dashboard",
                  found=found, errors=errors, chosen=chosen, presets=presets, stages=STAGES,
                  stage_labels=STAGE_LABELS, charts=charts(found) if found else None, wait=_wait, money=_money,
                  label=_label)
