"""DefinitionWorkflow on the time-skipping server with recording activities: every step type, exit on a
reply mid-wait, parallel any/all, bounded for_each, runs pinned to their version."""

from __future__ import annotations

import textwrap
import uuid
from datetime import timedelta

import pytest_asyncio
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from core import search_attributes as sa
from core.devserver import time_skipping_environment
from definitions.loader import load
from tests.integration.test_lead_workflow import WORKFLOWS, Recorded
from workflows.definition import DefinitionEvent, DefinitionRun, DefinitionWorkflow

NURTURE = """
schema: dealflow/v1
key: web-lead-nurture
version: {version}
trigger: {{event: lead.created, when: 'lead.source == "web_form"'}}
enrollment:
  exit_when: [{{event: lead.opted_out}}, {{condition: 'lead.status == "dead"'}}]
steps:
  - {{id: score, action: score_lead, save_as: score}}
  - {{id: welcome, action: send_email, with: {{template: welcome}}}}
  - {{id: wait_reply, wait_for: {{event: lead.replied, timeout: 2d}}, save_as: reply}}
  - {{id: nudge, if: 'reply == null', action: send_sms, with: {{template: nudge_1}}}}
  - id: route
    branch:
      - when: 'score.probability > 0.7 && "probate" in lead.tags'
        steps:
          - {{id: hot_task, action: create_task, with: {{title: Call now, due_in: 1h}}}}
          - {{id: qualify, action: set_status, with: {{status: qualified}}}}
      - otherwise:
          - {{id: cool_off, wait: 7d}}
          - {{id: remember, set: {{attempts: '1 + 1'}}}}
  - {{id: done, stop: nurture finished}}
"""


@pytest_asyncio.fixture(scope="module")
async def env():
    env = await time_skipping_environment()
    yield env
    await env.shutdown()


async def _start(client: Client, queue: str, source: str, version: int = 1):
    definition = load(textwrap.dedent(source).format(version=version) if "{version}" in source else source)
    lead_id = f"ld_{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow(
        DefinitionWorkflow.run, DefinitionRun(tenant_id="acme", subject_id=lead_id, definition=definition),
        id=f"def-acme-{definition.key}-{lead_id}", task_queue=queue,
        search_attributes=TypedSearchAttributes([SearchAttributePair(sa.TENANT_ID, "acme")]))
    return handle, lead_id


def _path(state) -> list[tuple[str, str]]:
    return [(p["step"], p["detail"]) for p in state.path]


async def test_the_nurture_definition_takes_the_hot_path_in_seconds(env):
    recorded, queue = Recorded(score=0.82), f"d-{uuid.uuid4().hex[:6]}"
    async with Worker(env.client, task_queue=queue, workflows=WORKFLOWS, activities=recorded.activities()):
        handle, lead_id = await _start(env.client, queue, NURTURE)
        state = await handle.result()
    assert state.status == "stopped"
    assert _path(state) == [
        ("score", "score_lead 82%"), ("welcome", "send_email welcome: sent"),
        ("wait_reply", "lead.replied timed out"), ("nudge", "send_sms nudge_1: sent"),
        ("route", "arm 1: score.probability > 0.7 && \"probate\" in lead.tags"),
        ("hot_task", "create_task 'Call now'"), ("qualify", "set_status qualified"),
        ("done", "stopped: nurture finished"),
    ]
    days = [(p["step"], p["at"][:10]) for p in state.path]
    assert days[1][1] != days[3][1]  # the nudge went out two days after the welcome
    assert [r.idempotency_key for r in recorded.sends] == [f"{lead_id}:web-lead-nurture:1:welcome",
                                                           f"{lead_id}:web-lead-nurture:1:nudge"]
    assert recorded.tasks[0].idempotency_key == f"{lead_id}:web-lead-nurture:1:hot_task"
    assert recorded.statuses[-1].actor == "definition:web-lead-nurture"
    description = await handle.describe()
    assert description.typed_search_attributes.get(sa.DEFINITION_KEY) == "web-lead-nurture"


async def test_a_reply_mid_wait_takes_the_other_path_and_exit_when_ends_the_run(env):
    recorded, queue = Recorded(score=0.3), f"d-{uuid.uuid4().hex[:6]}"
    async with Worker(env.client, task_queue=queue, workflows=WORKFLOWS, activities=recorded.activities()):
        handle, _ = await _start(env.client, queue, NURTURE)
        await env.sleep(timedelta(hours=5))
        await handle.signal(DefinitionWorkflow.event, DefinitionEvent(name="lead.replied", event_id="SM1",
                                                                      data={"text": "yes"}))
        await env.sleep(timedelta(days=1))  # now in the 7-day cool-off
        state = await handle.query(DefinitionWorkflow.state)
        assert state.current_step == "cool_off" and state.saved["reply"] == {"text": "yes"}
        await handle.signal(DefinitionWorkflow.event, DefinitionEvent(name="lead.opted_out", event_id="SM2"))
        state = await handle.result()
    assert state.status == "exited"
    assert _path(state)[-1] == ("cool_off", "exited: exit_when event lead.opted_out")
    assert [s for s, _ in _path(state)] == ["score", "welcome", "wait_reply", "nudge", "route", "cool_off"]
    assert ("nudge", "skipped (if was false)") in _path(state)
    assert len(recorded.sends) == 1  # no nudge after the reply


PARALLEL = """
schema: dealflow/v1
key: par-test
trigger: {event: lead.created}
steps:
  - id: race
    parallel:
      mode: {mode}
      branches:
        - [{id: quick, wait: 1h}, {id: quick_sms, action: send_sms, with: {template: nudge_1}}]
        - [{id: slow, wait: 3d}, {id: slow_email, action: send_email, with: {template: welcome}}]
  - id: each
    for_each: {in: 'lead.tags', as: tag, max_items: 1, steps: [{id: tag_task, action: create_task, with: {title: follow up}}]}
"""


async def test_parallel_all_and_any_and_a_bounded_for_each(env):
    for mode in ("all", "any"):
        recorded, queue = Recorded(), f"d-{uuid.uuid4().hex[:6]}"
        async with Worker(env.client, task_queue=queue, workflows=WORKFLOWS, activities=recorded.activities()):
            handle, _ = await _start(env.client, queue, PARALLEL.replace("{mode}", mode))
            state = await handle.result()
        templates = sorted(r.template for r in recorded.sends)
        if mode == "all":
            assert templates == ["nudge_1", "welcome"]
        else:
            assert templates == ["nudge_1"]  # the slow branch was cancelled when the quick one won
        assert state.status == "completed"
        assert ("each", "2 items, only the first 1 used") in _path(state) and len(recorded.tasks) == 1


async def test_running_executions_keep_their_version(env):
    recorded, queue = Recorded(score=0.3), f"d-{uuid.uuid4().hex[:6]}"
    async with Worker(env.client, task_queue=queue, workflows=WORKFLOWS, activities=recorded.activities()):
        old, _ = await _start(env.client, queue, NURTURE, version=1)
        await env.sleep(timedelta(hours=1))
        edited = NURTURE.replace("template: nudge_1", "template: first_touch")
        new, _ = await _start(env.client, queue, edited, version=2)
        old_state, new_state = await old.result(), await new.result()
    assert old_state.version == 1 and new_state.version == 2
    old_nudge = [r for r in recorded.sends if r.idempotency_key.endswith(":1:nudge")]
    new_nudge = [r for r in recorded.sends if r.idempotency_key.endswith(":2:nudge")]
    assert [r.template for r in old_nudge] == ["nudge_1"] and [r.template for r in new_nudge] == ["first_touch"]


LONG = """
schema: dealflow/v1
key: long-run
trigger: {event: lead.created}
steps:
""" + "".join(f"  - {{id: s{i}, action: create_task, with: {{title: task {i}}}}}\n" for i in range(14)) + """
  - {id: last, wait_for: {event: lead.replied, timeout: 1d}, save_as: reply}
  - {id: after, if: 'reply != null', action: set_status, with: {status: qualified}}
"""


async def test_a_long_run_continues_as_new_without_losing_its_place():
    from core.devserver import temporal_cli
    from tests.conftest import DEV_SERVER_STARTUP

    local = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(), data_converter=pydantic_data_converter, search_attributes=sa.ALL,
        dev_server_startup_timeout=DEV_SERVER_STARTUP,
        dev_server_extra_args=["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=40"])
    try:
        recorded, queue = Recorded(), f"d-{uuid.uuid4().hex[:6]}"
        async with Worker(local.client, task_queue=queue, workflows=WORKFLOWS, activities=recorded.activities()):
            handle, _ = await _start(local.client, queue, LONG)
            first_run = (await handle.describe()).run_id
            from tests.conftest import eventually

            async def waiting():
                state = await handle.query(DefinitionWorkflow.state)
                return state if state.current_step == "last" else None
            await eventually(waiting)
            assert (await handle.describe()).run_id != first_run  # it moved to a new run on the way
            await handle.signal(DefinitionWorkflow.event, DefinitionEvent(name="lead.replied", event_id="r1",
                                                                          data={"text": "ok"}))
            state = await handle.result()
    finally:
        await local.shutdown()
    assert state.status == "completed"
    assert [t.title for t in recorded.tasks] == [f"task {i}" for i in range(14)]  # each once, in order
    assert [p["step"] for p in state.path][-2:] == ["last", "after"]
    assert recorded.statuses[-1].status == "qualified"


async def test_a_definitions_own_send_window_applies_in_the_dry_run():
    from services.dry_run import dry_run

    source = """
schema: dealflow/v1
key: evening-texts
trigger: {event: lead.created}
settings: {send_window: {days: daily, from: '17:00', to: '19:00'}}
steps:
  - {id: text, action: send_sms, with: {template: nudge_1}}
"""
    result = await dry_run(load(source), {"id": "ld_1", "status": "new", "tags": [], "timezone": "America/Chicago"}, [])
    assert result["lines"] == ["day 0 17:00 text send_sms nudge_1: sent"]  # day 0 starts 09:00: waits until 17:00


EACH = """
schema: dealflow/v1
key: each-test
trigger: {event: lead.created}
steps:
  - id: each
    for_each: {in: 'lead.tags', as: tag, max_items: 5, steps: [{id: tag_task, action: create_task, with: {title: Tag}}]}
"""


async def test_each_for_each_item_has_its_own_idempotency_key(env):
    recorded, queue = Recorded(), f"d-{uuid.uuid4().hex[:6]}"
    async with Worker(env.client, task_queue=queue, workflows=WORKFLOWS, activities=recorded.activities()):
        handle, lead_id = await _start(env.client, queue, EACH)
        state = await handle.result()
    assert state.status == "completed" and ("each", "2 items") in _path(state)
    # Two tags, two tasks: the second item's key is its own (the same key would have been deduplicated).
    assert [t.idempotency_key for t in recorded.tasks] == [f"{lead_id}:each-test:1:tag_task",
                                                           f"{lead_id}:each-test:1:tag_task#2"]
