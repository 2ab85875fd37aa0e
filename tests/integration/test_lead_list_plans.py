"""Every list a rep uses is an index scan on Postgres: EXPLAIN of the statements the routes run, over a book large
enough (20,000 leads) that the planner would rather scan the table than use a poor index. A list that stops
using its index (the index dropped, a filter or the cursor written so that the index cannot serve it) fails here.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from rich.progress import Progress
from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlmodel import col, select

from api.paging import keyset
from bench.lead_list import seed
from models.investor import Investor
from models.lead import Lead
from models.message import Message
from models.opportunity import Opportunity
from models.timeline import TimelineEntry
from models.base import utcnow
from models.task import Task
from services.deals import DealFilters, deal_list_query
from services.inbound_sms import texted_by_query
from services.lead_lists import LeadFilters, lead_list_query
from services.tasks import TaskFilters, task_list_query
from services.tenants import create_tenant
from sqlmodel import Session

LEADS = 20_000


@pytest.fixture(scope="module")
def book(engine, database_url):
    if engine.dialect.name != "postgresql":
        pytest.skip("query plans are checked on Postgres (SQLite's search scans by design, docs/decisions.md)")
    tenant = f"plans{uuid.uuid4().hex[:6]}"
    with Session(engine) as session:
        create_tenant(session, tenant, None, "test")
        session.commit()
    with Progress(disable=True) as progress:
        # 5,000 deals (500 a rep): enough that the planner's choice does not hinge on the few hundred other
        # tests leave in the table (at 1,000 it flipped to a sort, or a scan, after the deal-forecast tests)
        ids = seed(database_url, tenant, LEADS, progress, prefix=tenant, deals_per_lead=4)
    return tenant, ids


def plan(engine, statement) -> dict:
    sql = str(statement.compile(dialect=postgresql.psycopg.dialect(), compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:  # the dialect doubled % for the driver, which reads %% as %
        return conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql).scalar()[0]["Plan"]


def nodes(node: dict):
    yield node
    for child in node.get("Plans", ()):
        yield from nodes(child)


def assert_index_scan(engine, statement, index: str | set[str], ordered: bool = True) -> None:
    """No table scan, one of `index` used and, when `ordered`, no sort: the index gives the page's order."""
    tree = plan(engine, statement)
    found = list(nodes(tree))
    shown = json.dumps(tree, indent=1)[:3000]
    indexes = {index} if isinstance(index, str) else index
    assert not [n for n in found if n["Node Type"] == "Seq Scan"], shown
    assert any(n.get("Index Name") in indexes for n in found), f"{indexes} not used:\n{shown}"
    if ordered:  # the page comes in the index's order: no sort of the tenant's rows before the limit
        assert not [n for n in found if n["Node Type"] in ("Sort", "Incremental Sort")], shown


LEAD_SHAPES = {
    "newest": (LeadFilters(), "ix_leads_list_created"),
    "oldest": (LeadFilters(sort="created_at"), "ix_leads_list_created"),
    "status=qualified": (LeadFilters(status=["qualified"]), "ix_leads_list_status"),
    "by score (call next)": (LeadFilters(sort="-score"), "ix_leads_list_score"),
    "min_score=0.9 by score": (LeadFilters(min_score=0.9, sort="-score"), "ix_leads_list_score"),
    "status=new by score": (LeadFilters(status=["new"], sort="-score"), "ix_leads_list_status_score"),
    "source=ppc": (LeadFilters(source=["ppc"]), "ix_leads_list_source"),
    # 40% of the book: the newest-first index with the filter reads ~2.5 rows a hit, as good as the assignee's
    "unassigned": (LeadFilters(assigned="none"), {"ix_leads_list_assigned", "ix_leads_list_created"}),
}


@pytest.mark.parametrize("shape", LEAD_SHAPES)
def test_each_lead_list_page_is_an_index_scan_in_its_order(engine, book, shape):
    tenant, ids = book
    filters, index = LEAD_SHAPES[shape]
    query = lead_list_query(tenant, filters)
    assert_index_scan(engine, keyset(query, Lead, 51, None, filters.sort_key, filters.descending), index)


def test_a_rep_s_own_leads_use_the_assignee_index(engine, book):
    tenant, ids = book
    filters = LeadFilters(assigned=ids["user"])
    assert_index_scan(engine, keyset(lead_list_query(tenant, filters), Lead, 51), "ix_leads_list_assigned")


def test_a_cursor_page_far_down_the_list_starts_its_scan_at_the_cursor(engine, book):
    tenant, _ = book
    with engine.connect() as conn:  # the 5,000th newest lead: the cursor the 100th page of 50 would carry
        created_at, lead_id = conn.execute(text(
            "SELECT created_at, id FROM leads WHERE tenant_id = :t AND deleted_at IS NULL AND duplicate_of IS NULL "
            "ORDER BY created_at DESC, id DESC OFFSET 5000 LIMIT 1"), {"t": tenant}).one()
    for filters, index in ((LeadFilters(), "ix_leads_list_created"),
                           (LeadFilters(status=["new"]), "ix_leads_list_status")):
        statement = keyset(lead_list_query(tenant, filters), Lead, 51, (created_at, lead_id))
        assert_index_scan(engine, statement, index)
        scan = next(n for n in nodes(plan(engine, statement)) if n.get("Index Name") == index)
        # the cursor is an index condition (where the scan starts), not a filter it reads 5,000 rows to apply
        assert "created_at" in scan.get("Index Cond", ""), scan
        assert "created_at" not in scan.get("Filter", ""), scan


@pytest.mark.parametrize("q", ["Lead4242", "lead4242@plans", "oak ridge dr, austin, tx 78242", "5122004242"])
def test_the_search_uses_the_trigram_index(engine, book, q):
    tenant, _ = book
    statement = keyset(lead_list_query(tenant, LeadFilters(q=q)), Lead, 51)
    assert_index_scan(engine, statement, "ix_leads_search", ordered=False)  # few matches, sorted after


def test_the_other_lists_staff_use_are_index_scans(engine, book):
    tenant, ids = book
    assert_index_scan(engine, keyset(select(Investor).where(Investor.tenant_id == tenant), Investor, 51),
                      "ix_investors_tenant_created")
    assert_index_scan(engine, keyset(select(Investor).where(Investor.tenant_id == tenant,
                                                            col(Investor.status).in_(["engaged"])), Investor, 51),
                      "ix_investors_tenant_status")
    assert_index_scan(engine, keyset(select(Opportunity).where(Opportunity.tenant_id == tenant,
                                                               Opportunity.stage == "offer_made"), Opportunity, 51),
                      "ix_opportunities_tenant_stage")
    assert_index_scan(engine, keyset(select(Message).where(Message.tenant_id == tenant), Message, 51),
                      "ix_messages_tenant_created")
    assert_index_scan(engine, keyset(select(Message).where(Message.tenant_id == tenant,
                                                           Message.lead_id == ids["lead"]), Message, 51),
                      "ix_messages_lead_created")
    assert_index_scan(engine, select(Lead.id).where(Lead.tenant_id == tenant, Lead.duplicate_of == ids["lead"]),
                      "ix_leads_duplicate_of", ordered=False)  # the timeline's linked duplicates
    assert_index_scan(engine, select(TimelineEntry).where(
        TimelineEntry.tenant_id == tenant, col(TimelineEntry.lead_id).in_([ids["lead"]])).order_by(
        col(TimelineEntry.occurred_at), col(TimelineEntry.id)), "ix_timeline_lead", ordered=False)


def test_a_stop_finds_the_tenants_that_texted_the_number_by_index(engine, book):
    """An inbound STOP looks, across tenants, for who texted the number: by ix_messages_to_address, not a scan of
    every tenant's messages."""
    assert_index_scan(engine, texted_by_query("someone-else", "+15122004242", "+15125550100"),
                      "ix_messages_to_address", ordered=False)


DEAL_SHAPES = {  # GET /opportunities: by pipeline, stage, assignee (a rep's, the unassigned), value, stale-for
    "all": (lambda ids: DealFilters(), "ix_opportunities_tenant_created", ("created_at", True)),
    "pipeline": (lambda ids: DealFilters(pipeline="disposition"), "ix_opportunities_tenant_pipeline",
                 ("created_at", True)),
    "stage": (lambda ids: DealFilters(stage="offer_made"), "ix_opportunities_tenant_stage", ("created_at", True)),
    "assignee=me": (lambda ids: DealFilters(assignee=ids["user"]), "ix_opportunities_tenant_assignee",
                    ("created_at", True)),
    # a tenth of the deals: found on the assignee index, then sorted (as the few snoozed tasks below), or read
    # newest first on the tenant's index with the unassigned kept (one in ten passes): either is an index scan
    "assignee=none": (lambda ids: DealFilters(assignee="none"),
                      {"ix_opportunities_tenant_assignee", "ix_opportunities_tenant_created"}, ("created_at", True),
                      False),
    # the value is a filter on the newest-first scan (most deals pass a rep's typical range)
    "min_value": (lambda ids: DealFilters(min_value=Decimal("100000")), "ix_opportunities_tenant_created",
                  ("created_at", True)),
    "stale_for=3d": (lambda ids: DealFilters(stale_for=timedelta(days=3)), "ix_opportunities_open_stage_entered",
                     ("stage_entered_at", False)),
}


@pytest.mark.parametrize("shape", DEAL_SHAPES)
def test_each_deal_list_page_is_an_index_scan_in_its_order(engine, book, shape):
    tenant, ids = book
    filters, index, (by, descending), *ordered = DEAL_SHAPES[shape]
    assert_index_scan(engine, keyset(deal_list_query(tenant, filters(ids)), Opportunity, 51, None, by, descending),
                      index, ordered=ordered[0] if ordered else True)


TASK_SHAPES = {  # GET /tasks: a rep's list by status and due, the unassigned, everyone's (a manager's view)
    "assignee=me": (lambda ids: TaskFilters(assignee=ids["user"]), "ix_tasks_list_assignee", True),
    "assignee=me&due_before": (lambda ids: TaskFilters(assignee=ids["user"], due_before=utcnow()),
                               "ix_tasks_list_assignee", True),
    "assignee=me&status=done": (lambda ids: TaskFilters(assignee=ids["user"], status="done"),
                                "ix_tasks_list_assignee", True),
    # 10% of the book: the status index with the filter reads ~5 rows a hit, as good as the assignee index's
    "assignee=none": (lambda ids: TaskFilters(assignee="none"), {"ix_tasks_list_assignee", "ix_tasks_list_status"},
                      True),
    "status=open": (lambda ids: TaskFilters(), "ix_tasks_list_status", True),
    # a rep's few snoozed tasks (open ones with snoozed_until ahead): found on the index, then sorted
    "assignee=me&status=snoozed": (lambda ids: TaskFilters(assignee=ids["user"], status="snoozed"),
                                   "ix_tasks_list_assignee", False),
}


@pytest.mark.parametrize("shape", TASK_SHAPES)
def test_each_task_list_page_is_an_index_scan_in_due_order(engine, book, shape):
    tenant, ids = book
    filters, index, ordered = TASK_SHAPES[shape]
    assert_index_scan(engine, keyset(task_list_query(tenant, filters(ids)), Task, 51, None, "due_at", False), index,
                      ordered=ordered)


def test_a_task_page_far_down_a_reps_list_starts_its_scan_at_the_cursor(engine, book):
    tenant, ids = book
    with engine.connect() as conn:
        due_at, task_id = conn.execute(text(
            "SELECT due_at, id FROM tasks WHERE tenant_id = :t AND assignee = :u AND status = 'open' "
            "ORDER BY due_at, id OFFSET 500 LIMIT 1"), {"t": tenant, "u": ids["user"]}).one()
    statement = keyset(task_list_query(tenant, TaskFilters(assignee=ids["user"])), Task, 51, (due_at, task_id),
                       "due_at", False)
    assert_index_scan(engine, statement, "ix_tasks_list_assignee")
    scan = next(n for n in nodes(plan(engine, statement)) if n.get("Index Name") == "ix_tasks_list_assignee")
    assert "due_at" in scan.get("Index Cond", "") and "due_at" not in scan.get("Filter", ""), scan


def test_the_dashboard_reads_a_range_by_index(engine, book):
    """The dashboard's cohort (the leads received in 30 days, each one's history, deals and first touch) and its
    messages: index scans, the per-lead lookups on the per-lead indexes (services/dashboard.py)."""
    from sqlmodel import func

    from services.dashboard import DayRange, _cohort

    tenant, _ = book
    today = utcnow().date()
    days = DayRange(today - timedelta(days=29), today)
    cohort = _cohort(tenant, days)
    statement = select(cohort.c.source, func.count(), func.max(cohort.c.history), func.max(cohort.c.deals),
                       func.min(cohort.c.first_message), func.min(cohort.c.first_contacted)).group_by(cohort.c.source)
    tree = plan(engine, statement)
    used = {n.get("Index Name") for n in nodes(tree)}
    assert not [n for n in nodes(tree) if n["Node Type"] == "Seq Scan"], json.dumps(tree, indent=1)[:3000]
    # the cohort by the day it was received, or by source (both cover the range): the planner picks by the book
    assert used & {"ix_leads_list_created", "ix_leads_list_source"}, used
    assert {"ix_timeline_lead", "ix_opportunities_lead_id", "ix_messages_lead_created"} <= used, used
    messages = select(Message.channel, func.count()).where(
        Message.tenant_id == tenant, col(Message.user_id).is_(None), Message.created_at >= days.since,
        Message.created_at < days.until).group_by(Message.channel)
    assert_index_scan(engine, messages, "ix_messages_tenant_created", ordered=False)
