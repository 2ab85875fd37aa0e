"""Stage SLAs on Temporal's time-skipping server with the real deal activities on the real database: a deal left in
`new` past its hour gets one reminder task for its owner (who is notified); a second hour tells the managers of
the owner's team; nothing more after that; and a deal moved before its SLA fires has the clock re-armed for its new
stage (the old timer never fires, and timers do not stack)."""

from __future__ import annotations

import concurrent.futures
import uuid
from datetime import timedelta

import pytest_asyncio
from sqlmodel import Session, select
from temporalio.api.enums.v1 import EventType

from core.devserver import time_skipping_environment
from definitions.pipelines import DealFacts
from models.notification import Notification
from models.opportunity import Opportunity
from models.payloads import StageMove
from models.task import Task
from models.tenant import Tenant, User
from models.timeline import TimelineEntry
from worker import build_worker
from workflows.deal import DealInput, DealWorkflow


@pytest_asyncio.fixture(scope="module")
async def skipping(engine, settings):
    env = await time_skipping_environment()
    queue = f"sla-{uuid.uuid4().hex[:6]}"
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as executor:
        async with build_worker(env.client, engine, settings.model_copy(update={"temporal_task_queue": queue}),
                                executor):
            yield env, queue
    await env.shutdown()


def _team_and_deal(engine) -> tuple[str, str, str, str]:
    tenant = f"s{uuid.uuid4().hex[:8]}"
    with Session(engine) as session:
        session.add(Tenant(id=tenant, name="SLA Homes"))
        session.flush()
        owner = User(tenant_id=tenant, email=f"ana@{tenant}.example.com", name="Ana", team="acquisitions")
        boss = User(tenant_id=tenant, email=f"mia@{tenant}.example.com", name="Mia", role="manager",
                    team="acquisitions")
        session.add_all([owner, boss])
        session.flush()
        deal = Opportunity(tenant_id=tenant, title="9 Birch Ln", assigned_to=owner.id)
        session.add(deal)
        session.commit()
        return tenant, deal.id, owner.id, boss.id


async def _start(env, queue, tenant: str, deal_id: str):
    return await env.client.start_workflow(DealWorkflow.run, DealInput(tenant_id=tenant, opportunity_id=deal_id),
                                           id=f"deal-{tenant}-{deal_id}", task_queue=queue)


def _tasks(engine, deal_id: str) -> list[Task]:
    with Session(engine) as session:
        return list(session.exec(select(Task).where(Task.opportunity_id == deal_id)).all())


def _notified(engine, user_id: str, deal_id: str) -> list[str]:
    with Session(engine) as session:
        return [n.title for n in session.exec(select(Notification).where(
            Notification.user_id == user_id, Notification.opportunity_id == deal_id))]


async def test_a_breach_reminds_the_owner_once_and_a_second_escalates_to_the_managers(skipping, engine):
    env, queue = skipping
    tenant, deal_id, owner, boss = _team_and_deal(engine)
    handle = await _start(env, queue, tenant, deal_id)
    assert (await handle.query(DealWorkflow.state)).sla_due_at is not None

    await env.sleep(timedelta(minutes=59))
    assert _tasks(engine, deal_id) == []  # within the hour: nothing yet

    await env.sleep(timedelta(minutes=2))
    tasks = _tasks(engine, deal_id)
    assert [(t.title, t.assignee, t.status) for t in tasks] == [
        ("First contact with the seller: 9 Birch Ln", owner, "open")]
    assert any("First contact" in title for title in _notified(engine, owner, deal_id))
    assert _notified(engine, boss, deal_id) == []
    assert (await handle.query(DealWorkflow.state)).sla_breaches == 1

    await env.sleep(timedelta(hours=1))
    assert _notified(engine, boss, deal_id) == ["SLA missed twice: 9 Birch Ln"]
    assert len(_tasks(engine, deal_id)) == 1  # still one reminder

    await env.sleep(timedelta(days=3))  # escalated: no more nagging while it stays in `new`
    assert len(_tasks(engine, deal_id)) == 1 and len(_notified(engine, boss, deal_id)) == 1
    state = await handle.query(DealWorkflow.state)
    assert (state.sla_breaches, state.sla_due_at) == (2, None)
    with Session(engine) as session:
        entries = [e.summary for e in session.exec(select(TimelineEntry).where(
            TimelineEntry.opportunity_id == deal_id, TimelineEntry.kind == "deal.sla_breached"))]
    assert entries == ["SLA missed (1): First contact with the seller", "SLA missed (2): First contact with the seller"]
    await handle.terminate("test done")


async def test_moving_the_deal_rearms_the_clock_for_its_new_stage(skipping, engine):
    env, queue = skipping
    tenant, deal_id, owner, _ = _team_and_deal(engine)
    handle = await _start(env, queue, tenant, deal_id)
    await env.sleep(timedelta(minutes=50))
    state = await handle.execute_update(DealWorkflow.advance_stage, StageMove(
        stage="contacted", actor="user:test", facts=DealFacts()))
    assert state.stage == "contacted" and state.sla_breaches == 0

    await env.sleep(timedelta(hours=2))  # new's hour would have ended 70 minutes ago
    assert _tasks(engine, deal_id) == []
    await env.sleep(timedelta(days=2, hours=21))  # contacted has three days
    assert _tasks(engine, deal_id) == []
    await env.sleep(timedelta(hours=1, minutes=5))
    assert [t.title for t in _tasks(engine, deal_id)] == ["Set an appointment or make an offer: 9 Birch Ln"]

    history = await handle.fetch_history()
    started = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED]
    fired = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_TIMER_FIRED]
    # new's timer (cancelled by the move), contacted's first (fired) and second (waiting): never two at once
    assert len(started) == 3 and len(fired) == 1, [e.event_type for e in history.events]
    await handle.terminate("test done")
