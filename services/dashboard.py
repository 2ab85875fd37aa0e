"""The dashboard's numbers for one tenant and a range of days: the funnel by source, speed to lead, conversion and
gross profit by source, messages, and the open pipeline's value by stage. Aggregates in the database (GROUP BY),
except two things that are per row on purpose: the median on SQLite (which has no percentile_cont; the per-lead
durations of the range are read and the median taken here), and each closed-won deal's gross profit, which is the
deal math's own figure (scoring/deal_analysis.gross_profit) rather than a second formula written in SQL.

Definitions (docs/console.md, docs/decisions.md):
- The range is whole UTC days, `start` to `end` inclusive: [start 00:00, end + 1 day 00:00).
- The funnel is a cohort: the live original leads (not duplicates, not deleted) received in the range, and how far
  each has got by now. A lead *reached* a stage if its status now, or any status it was given (its
  `lead.status_changed` timeline entries), is that stage or a later one — contacted (contacted or nurturing),
  qualified, deal (converted, or any deal opened for it) — or, for closed won, one of its deals is closed won.
  A lead that skipped a stage (new → qualified) counts at the skipped one too: each stage is "got at least this
  far", so the bars never grow.
- Speed to lead: per lead of the cohort, its first touch (the first outbound message that went out to it —
  `sent_at` — or the first time staff or a workflow marked it contacted or later, whichever came first) minus its
  receipt (`created_at`); the median by source and over all sources. Leads not touched yet are counted apart.
- Conversion by source: of the cohort, the share that became a deal and the share won. Gross profit by source:
  the deals closed won in the range (by their close, `closed_at`), each by its lead's source ("none" for a deal
  opened without a lead).
- Messages: to leads and investors (not staff notifications) created in the range, by channel: sent (went out to
  the provider), delivered (the provider said so), replies (inbound), and opt-outs (addresses whose consent
  became opted out in the range and still is).
- Pipeline value: the open deals now (whatever the range), per pipeline and stage, valued as the deal lists value
  them (contract price, else offer, else asking price); deals with none of them are counted as unpriced.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from statistics import median

from pydantic import BaseModel, Field
from sqlalchemy import and_, case, extract, func, literal, or_
from sqlmodel import Session, col, select

from definitions.pipelines import PIPELINES
from models.lead import Lead
from models.message import Consent, Message
from models.opportunity import Opportunity
from models.timeline import TimelineEntry
from scoring.deal_analysis import gross_profit
from services.acting import Invalid
from services.deals import deal_value

MAX_DAYS = 731  # two years, a leap day included
DEFAULT_DAYS = 30
EARLIEST, LATEST = date(1900, 1, 1), date(2200, 12, 31)
STAGES = ("leads", "contacted", "qualified", "deal", "closed_won")
# How far a lead status goes along the funnel (new, needs_review and dead are at its start; a dead lead that was
# contacted first keeps that in its history).
STATUS_RANK = {"contacted": 1, "nurturing": 1, "qualified": 2, "converted": 3}
CLOSED_WON = 4
NO_SOURCE = "none"  # the source of a deal opened without a lead


# --- the answer --------------------------------------------------------------------------------------------------


class FunnelRow(BaseModel):
    source: str = Field(description="a lead source, or 'all'")
    leads: int = Field(description="leads received in the range")
    contacted: int = Field(description="of them, reached contacted (or later)")
    qualified: int
    deal: int
    closed_won: int


class SpeedRow(BaseModel):
    source: str = Field(description="a lead source, or 'all'")
    touched: int = Field(description="leads of the range touched so far")
    untouched: int = Field(description="leads of the range not touched yet (not in the median)")
    median_seconds: float | None = Field(description="median seconds from receipt to first touch")


class ConversionRow(BaseModel):
    source: str = Field(description="a lead source, 'none' for deals without a lead, or 'all'")
    leads: int
    deals: int = Field(description="of the leads, those that became a deal")
    closed_won: int = Field(description="of the leads, those with a deal closed won")
    lead_to_deal: float | None = Field(description="deals / leads")
    lead_to_won: float | None = Field(description="closed_won / leads")
    won_deals: int = Field(description="deals closed won in the range (by their close)")
    with_profit: int = Field(description="of them, those whose gross profit the deal math can work out")
    gross_profit: Decimal = Field(description="the sum of their gross profits")


class MessageRow(BaseModel):
    channel: str = Field(description="email, sms, or 'all'")
    sent: int
    delivered: int
    replied: int
    opted_out: int


class StageValue(BaseModel):
    pipeline: str
    stage: str
    deals: int
    value: Decimal
    unpriced: int = Field(description="deals with no contract, offer or asking price (not in the value)")


class UnpricedDeal(BaseModel):
    id: str
    title: str
    reason: str


class Dashboard(BaseModel):
    start: date = Field(description="the first day of the range (UTC)")
    end: date = Field(description="the last day of the range, included (UTC)")
    funnel: list[FunnelRow] = Field(description="by source, most leads first; then 'all'")
    speed_to_lead: list[SpeedRow]
    conversion: list[ConversionRow]
    profit_unknown: list[UnpricedDeal] = Field(description="deals won in the range without a gross profit, and why")
    messages: list[MessageRow] = Field(description="email, sms, then 'all'")
    pipeline: list[StageValue] = Field(description="every open stage of every pipeline, in pipeline order")


# --- the range -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayRange:
    start: date
    end: date  # included

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time(0), tzinfo=UTC)

    @property
    def until(self) -> datetime:
        return datetime.combine(self.end + timedelta(days=1), time(0), tzinfo=UTC)


def day_range(start: date | None, end: date | None, today: date | None = None) -> DayRange:
    """The range asked for: by default the last 30 days up to today; `start` after `end`, or more than two years,
    is refused naming the field."""
    today = today or datetime.now(UTC).date()
    for field, day in (("from", start), ("to", end)):
        if day is not None and not EARLIEST <= day <= LATEST:  # (and date.max + 1 day would overflow)
            raise Invalid(f"{field} must be between {EARLIEST} and {LATEST}", field=field)
    end = end or today
    start = start or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise Invalid(f"from ({start}) is after to ({end})", field="from")
    if (end - start).days + 1 > MAX_DAYS:
        raise Invalid(f"the range is {(end - start).days + 1} days; at most {MAX_DAYS} (two years)", field="to")
    return DayRange(start, end)


# --- the numbers ---------------------------------------------------------------------------------------------------


def _rank(status):
    return case(*((status == name, rank) for name, rank in STATUS_RANK.items()), else_=0)


def _cohort(tenant_id: str, days: DayRange):
    """One row per lead received in the range: its source, receipt, how far it got (now, in its history, by its
    deals) and its first touch."""
    history = (select(func.max(_rank(TimelineEntry.data["status"].as_string())))
               .where(TimelineEntry.lead_id == Lead.id, TimelineEntry.kind == "lead.status_changed")
               .correlate(Lead).scalar_subquery())
    deals = (select(func.max(case((Opportunity.stage == "closed_won", CLOSED_WON), else_=STATUS_RANK["converted"])))
             .where(Opportunity.lead_id == Lead.id, Opportunity.tenant_id == tenant_id)
             .correlate(Lead).scalar_subquery())
    first_message = (select(func.min(Message.sent_at))
                     .where(Message.lead_id == Lead.id, Message.direction == "outbound",
                            col(Message.sent_at).is_not(None))
                     .correlate(Lead).scalar_subquery())
    first_contacted = (select(func.min(TimelineEntry.occurred_at))
                       .where(TimelineEntry.lead_id == Lead.id, TimelineEntry.kind == "lead.status_changed",
                              _rank(TimelineEntry.data["status"].as_string()) >= 1)
                       .correlate(Lead).scalar_subquery())
    return (select(Lead.source.label("source"), Lead.created_at.label("created_at"),
                   _rank(Lead.status).label("now"), func.coalesce(history, 0).label("history"),
                   func.coalesce(deals, 0).label("deals"), first_message.label("first_message"),
                   first_contacted.label("first_contacted"))
            .where(Lead.tenant_id == tenant_id, col(Lead.duplicate_of).is_(None), col(Lead.deleted_at).is_(None),
                   Lead.created_at >= days.since, Lead.created_at < days.until)
            .subquery("cohort"))


def funnel(session: Session, tenant_id: str, days: DayRange) -> list[FunnelRow]:
    cohort = _cohort(tenant_id, days)

    def reached(rank: int):
        got = or_(cohort.c.now >= rank, cohort.c.history >= rank, cohort.c.deals >= rank)
        return func.coalesce(func.sum(case((got, 1), else_=0)), 0)

    rows = session.exec(select(cohort.c.source, func.count(), reached(1), reached(2), reached(3), reached(CLOSED_WON))
                        .group_by(cohort.c.source)).all()
    found = sorted((FunnelRow(**dict(zip(("source", *STAGES), row, strict=True))) for row in rows),
                   key=lambda r: (-r.leads, r.source))
    total = FunnelRow(source="all", **{stage: sum(getattr(r, stage) for r in found) for stage in STAGES})
    return [*found, total]


def speed_to_lead(session: Session, tenant_id: str, days: DayRange) -> list[SpeedRow]:
    cohort = _cohort(tenant_id, days)
    a, b = cohort.c.first_message, cohort.c.first_contacted
    touched = case((a.is_(None), b), (b.is_(None), a), (a <= b, a), else_=b)
    counts = {source: (n, t) for source, n, t in session.exec(
        select(cohort.c.source, func.count(), func.count(touched)).group_by(cohort.c.source)).all()}
    if session.get_bind().dialect.name == "postgresql":
        seconds = extract("epoch", touched - cohort.c.created_at)
        medians = dict(session.exec(
            select(func.coalesce(cohort.c.source, literal("all")), func.percentile_cont(0.5).within_group(seconds))
            .where(touched.is_not(None)).group_by(func.rollup(cohort.c.source))).all())
    else:  # SQLite: no percentile_cont; the median of the range's per-lead durations
        spans: dict[str, list[float]] = defaultdict(list)
        for source, received, first in session.exec(
                select(cohort.c.source, cohort.c.created_at, touched.label("touched")).where(touched.is_not(None))):
            spans[source].append(_seconds(first, received))
            spans["all"].append(spans[source][-1])
        medians = {source: median(values) for source, values in spans.items()}
    rows = [SpeedRow(source=source, touched=t, untouched=n - t,
                     median_seconds=float(medians[source]) if medians.get(source) is not None else None)
            for source, (n, t) in sorted(counts.items(), key=lambda kv: (-kv[1][0], kv[0]))]
    n, t = sum(r.touched + r.untouched for r in rows), sum(r.touched for r in rows)
    all_median = medians.get("all")
    return [*rows, SpeedRow(source="all", touched=t, untouched=n - t,
                            median_seconds=float(all_median) if all_median is not None else None)]


def _seconds(later, earlier) -> float:
    """`later - earlier` in seconds (SQLite hands a CASE of two timestamps back as text)."""
    def aware(value):
        value = datetime.fromisoformat(value) if isinstance(value, str) else value
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
    return (aware(later) - aware(earlier)).total_seconds()


def won_deals(session: Session, tenant_id: str, days: DayRange) -> list[tuple[str, Opportunity]]:
    """The deals closed won in the range, each with its lead's source (on the index of closed deals by stage)."""
    rows = session.exec(select(func.coalesce(Lead.source, NO_SOURCE), Opportunity)
                        .join(Lead, Lead.id == Opportunity.lead_id, isouter=True)
                        .where(Opportunity.tenant_id == tenant_id, Opportunity.stage == "closed_won",
                               col(Opportunity.closed_at) >= days.since, col(Opportunity.closed_at) < days.until)
                        .order_by(col(Opportunity.closed_at), col(Opportunity.id))).all()
    return [(source, deal) for source, deal in rows]


def conversion(session: Session, tenant_id: str, days: DayRange, cohort: list[FunnelRow]
               ) -> tuple[list[ConversionRow], list[UnpricedDeal]]:
    profit: dict[str, list] = defaultdict(lambda: [0, 0, Decimal(0)])  # won, with a profit, the profit
    unknown = []
    for source, deal in won_deals(session, tenant_id, days):
        figure = gross_profit(deal)
        tally = profit[source]
        tally[0] += 1
        if isinstance(figure, str):
            unknown.append(UnpricedDeal(id=deal.id, title=deal.title, reason=figure))
        else:
            tally[1] += 1
            tally[2] += figure.value
    by_source = {row.source: row for row in cohort if row.source != "all"}
    sources = sorted(set(by_source) | set(profit), key=lambda s: (-(by_source[s].leads if s in by_source else 0), s))
    rows = []
    for source in [*sources, "all"]:
        leads = next((r for r in cohort if r.source == source), None)
        won = profit.get(source, [0, 0, Decimal(0)]) if source != "all" else [
            sum(t[0] for t in profit.values()), sum(t[1] for t in profit.values()),
            sum((t[2] for t in profit.values()), Decimal(0))]
        n = leads.leads if leads else 0
        rows.append(ConversionRow(
            source=source, leads=n, deals=leads.deal if leads else 0, closed_won=leads.closed_won if leads else 0,
            lead_to_deal=(leads.deal / n) if n else None, lead_to_won=(leads.closed_won / n) if n else None,
            won_deals=won[0], with_profit=won[1], gross_profit=won[2]))
    return rows, unknown


def messages(session: Session, tenant_id: str, days: DayRange) -> list[MessageRow]:
    outbound = Message.direction == "outbound"

    def count(condition):
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    rows = {channel: [sent, delivered, replied] for channel, sent, delivered, replied in session.exec(
        select(Message.channel, count(and_(outbound, col(Message.sent_at).is_not(None))),
               count(and_(outbound, col(Message.delivered_at).is_not(None))), count(Message.direction == "inbound"))
        .where(Message.tenant_id == tenant_id, col(Message.user_id).is_(None),
               Message.created_at >= days.since, Message.created_at < days.until)
        .group_by(Message.channel)).all()}
    opted = dict(session.exec(
        select(Consent.channel, func.count()).where(Consent.tenant_id == tenant_id, Consent.status == "opted_out",
                                                    Consent.updated_at >= days.since, Consent.updated_at < days.until)
        .group_by(Consent.channel)).all())
    found = [MessageRow(channel=channel, sent=rows.get(channel, [0, 0, 0])[0],
                        delivered=rows.get(channel, [0, 0, 0])[1], replied=rows.get(channel, [0, 0, 0])[2],
                        opted_out=opted.get(channel, 0))
             for channel in sorted({"email", "sms"} | set(rows) | set(opted))]
    total = MessageRow(channel="all", **{k: sum(getattr(r, k) for r in found)
                                         for k in ("sent", "delivered", "replied", "opted_out")})
    return [*found, total]


def pipeline_value(session: Session, tenant_id: str) -> list[StageValue]:
    value = deal_value()
    found = {(pipeline, stage): (n, total or Decimal(0), unpriced) for pipeline, stage, n, total, unpriced in
             session.exec(select(Opportunity.pipeline, Opportunity.stage, func.count(), func.sum(value),
                                 func.coalesce(func.sum(case((value.is_(None), 1), else_=0)), 0))
                          .where(Opportunity.tenant_id == tenant_id, col(Opportunity.closed_at).is_(None))
                          .group_by(Opportunity.pipeline, Opportunity.stage)).all()}
    rows = []
    for name, spec in PIPELINES.items():
        for stage in spec.stages.values():
            if stage.closed:
                continue
            n, total, unpriced = found.pop((name, stage.name), (0, Decimal(0), 0))
            for alias, target in spec.aliases.items():  # a deal still in an old stage name counts where it is now
                if target == stage.name and (name, alias) in found:
                    more = found.pop((name, alias))
                    n, total, unpriced = n + more[0], total + more[1], unpriced + more[2]
            rows.append(StageValue(pipeline=name, stage=stage.name, deals=n, value=Decimal(total), unpriced=unpriced))
    for (name, stage), (n, total, unpriced) in sorted(found.items()):  # a stage no pipeline names any more
        rows.append(StageValue(pipeline=name, stage=stage, deals=n, value=Decimal(total), unpriced=unpriced))
    return rows


def dashboard(session: Session, tenant_id: str, days: DayRange) -> Dashboard:
    cohort = funnel(session, tenant_id, days)
    rows, unknown = conversion(session, tenant_id, days, cohort)
    return Dashboard(start=days.start, end=days.end, funnel=cohort,
                     speed_to_lead=speed_to_lead(session, tenant_id, days), conversion=rows, profit_unknown=unknown,
                     messages=messages(session, tenant_id, days), pipeline=pipeline_value(session, tenant_id))
