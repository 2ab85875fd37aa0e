"""DocumentSigningWorkflow alone on the time-skipping test server, its activities replaced by same-named recording
ones: reminders on day 2 and day 5 and the expiry, sequential invitations, one effect per provider event id, and
the replay of a recorded history (tests/histories/document_signing_v1.json)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path

import pytest_asyncio
from temporalio import activity
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, Worker

from core.devserver import time_skipping_environment
from models.signing import AppliedEvent, DocumentStep, EnvelopeNotice, SigningInput, SigningState
from workflows.signing import DocumentSigningWorkflow

HISTORY = Path(__file__).resolve().parents[1] / "histories" / "document_signing_v1.json"
SIGNERS = ["maria@example.com", "sam@example.com"]


@pytest_asyncio.fixture(scope="module")
async def skipping_env():
    env = await time_skipping_environment()
    yield env
    await env.shutdown()


class Recorded:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.signed: set[str] = set()

    def activities(self):
        @activity.defn(name="create_envelope")
        async def create_envelope(step: DocumentStep) -> str:
            self.calls.append(("create_envelope", step.model_dump()))
            return f"env-{step.document_id}"

        @activity.defn(name="apply_provider_event")
        async def apply_provider_event(step: DocumentStep, notice: EnvelopeNotice) -> AppliedEvent:
            self.calls.append(("apply_provider_event", notice.model_dump(mode="json")))
            if notice.event == "signed" and notice.recipient_email:
                self.signed.add(notice.recipient_email)
            return AppliedEvent(new=True, document_status="sent", pending=[e for e in SIGNERS if e not in self.signed])

        def plain(name: str, result=None):
            @activity.defn(name=name)
            async def record(step: DocumentStep):
                self.calls.append((name, step.model_dump()))
                return result
            return record

        return [create_envelope, apply_provider_event, plain("invite_next_signers", []), plain("send_reminders", 1),
                plain("complete_document"), plain("void_envelope"), plain("close_document")]

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


async def _start(env, queue: str, expires_in: timedelta, order: str = "sequential"):
    now = await env.get_current_time()
    document_id = f"dc_{uuid.uuid4().hex[:10]}"
    return await env.client.start_workflow(
        DocumentSigningWorkflow.run,
        SigningInput(tenant_id="acme", document_id=document_id, opportunity_id="op_1", kind="purchase_agreement",
                     title="Purchase and Sale Agreement", signing_order=order, expires_at=now + expires_in,
                     signers=SIGNERS, reminder_days=[2, 5]),
        id=f"sign-acme-{document_id}", task_queue=queue)


def notice(event: str, email: str | None = None, n: str = "1") -> EnvelopeNotice:
    return EnvelopeNotice(event_id=f"test:{event}:{email}:{n}", envelope_id="env", event=event,
                          at="2026-12-02T10:00:00Z", recipient_email=email)


async def test_reminders_on_day_two_and_five_then_the_envelope_expires(skipping_env):
    recorded, queue = Recorded(), f"tq-{uuid.uuid4().hex[:6]}"
    async with Worker(skipping_env.client, task_queue=queue, workflows=[DocumentSigningWorkflow],
                      activities=recorded.activities()):
        handle = await _start(skipping_env, queue, timedelta(days=7))
        state: SigningState = await handle.result()
    assert state.status == "expired" and state.reminders_sent == 2
    assert recorded.names() == ["create_envelope", "send_reminders", "send_reminders", "void_envelope",
                                "close_document"]
    reminders = [args for name, args in recorded.calls if name == "send_reminders"]
    assert [r["reminder"] for r in reminders] == [1, 2] and reminders[0]["emails"] == SIGNERS
    assert recorded.calls[-1][1]["status"] == "expired"


async def test_signatures_in_order_and_each_event_applied_once(skipping_env):
    recorded, queue = Recorded(), f"tq-{uuid.uuid4().hex[:6]}"
    async with Worker(skipping_env.client, task_queue=queue, workflows=[DocumentSigningWorkflow],
                      activities=recorded.activities()):
        handle = await _start(skipping_env, queue, timedelta(days=14))
        await handle.signal(DocumentSigningWorkflow.provider_event, notice("delivered", SIGNERS[0]))
        await handle.signal(DocumentSigningWorkflow.provider_event, notice("signed", SIGNERS[0]))
        await handle.signal(DocumentSigningWorkflow.provider_event, notice("signed", SIGNERS[0]))  # delivered again
        await skipping_env.sleep(timedelta(days=3))  # the day-2 reminder goes to the buyer only
        await handle.signal(DocumentSigningWorkflow.provider_event, notice("signed", SIGNERS[1]))
        await handle.signal(DocumentSigningWorkflow.provider_event, notice("completed"))
        state: SigningState = await handle.result()
        history = await handle.fetch_history()
    assert state.status == "completed" and state.signed == SIGNERS and state.events == 4
    assert recorded.names() == ["create_envelope", "apply_provider_event", "apply_provider_event",
                                "invite_next_signers", "send_reminders", "apply_provider_event",
                                "apply_provider_event", "complete_document"]
    assert [args for name, args in recorded.calls if name == "send_reminders"][0]["emails"] == [SIGNERS[1]]
    if not HISTORY.exists():  # recorded once; kept so later code must replay it (python -m pytest -k order ...)
        HISTORY.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")


async def test_a_declined_envelope_is_voided_and_closed(skipping_env):
    recorded, queue = Recorded(), f"tq-{uuid.uuid4().hex[:6]}"
    async with Worker(skipping_env.client, task_queue=queue, workflows=[DocumentSigningWorkflow],
                      activities=recorded.activities()):
        handle = await _start(skipping_env, queue, timedelta(days=14), order="parallel")
        await handle.signal(DocumentSigningWorkflow.provider_event, notice("declined", SIGNERS[1]))
        state: SigningState = await handle.result()
    assert state.status == "declined"
    assert recorded.names()[-2:] == ["void_envelope", "close_document"]
    assert recorded.calls[-1][1]["status"] == "declined" and SIGNERS[1] in recorded.calls[-1][1]["reason"]


async def test_the_recorded_history_replays():
    """A change that makes DocumentSigningWorkflow non-deterministic for running envelopes fails here."""
    assert HISTORY.exists(), "recorded by test_signatures_in_order_and_each_event_applied_once"
    history = WorkflowHistory.from_json("document_signing_v1", json.loads(HISTORY.read_text()))
    await Replayer(workflows=[DocumentSigningWorkflow], data_converter=pydantic_data_converter).replay_workflow(history)
