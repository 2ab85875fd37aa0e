"""The "Test" button: run a definition for a sample subject on Temporal's time-skipping test server, with
every side-effecting activity recorded instead of performed, and report the path taken with simulated
timestamps (`day 0 09:00 welcome send_email welcome: sent` ... `day 2 09:00 wait_reply lead.replied timed out`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from temporalio import activity
from temporalio.worker import Worker

from core.devserver import time_skipping_environment
from definitions.language import parse_duration
from definitions.model import Definition
from models.payloads import (
    DealStageInput, EnrichmentInput, EnrichmentResult, HttpCallInput, LeadStatusInput, MatchInput, MessageRequest,
    MessageResult, PropertyLookup, ScoreInput, ScoreResult, SendPlan, SendPlanInput, SourceOutcome,
    NotifyInput, StartDefinitionInput, TaskInput,
)
from definitions.send_window import DAYS, SendWindow, recipient_zones
from models.signing import SignatureRequest
from workflows.definition import DefinitionEvent, DefinitionRun, DefinitionWorkflow
from workflows.enrichment import EnrichmentWorkflow


# The subject a dry run uses when none is given, per definition subject.
SAMPLES: dict[str, dict[str, Any]] = {
    "lead": {"id": "sample", "first_name": "Sample", "source": "web_form", "status": "new", "tags": []},
    "deal": {"id": "sample-deal", "stage": "new", "pipeline": "acquisition", "title": "Sample deal",
             "lead": {"id": "sample", "first_name": "Sample", "source": "web_form", "status": "qualified",
                      "tags": []}},
    "investor": {"id": "sample-investor", "name": "Sample Investor", "accredited": True, "status": "prospect",
                 "capital_available": 250000.0, "preferences": {"markets": ["TX"], "strategies": ["lending"]},
                 "tags": []},
}


# Day names a dry run may start on (`start_on`), Monday first as in `date.weekday()`: the send window's.
WEEKDAYS = tuple(DAYS)


def sample_subject(kind: str) -> dict[str, Any]:
    return dict(SAMPLES[kind])


class _Recorder:
    """Activities that answer from the sample subject and record what would have happened."""

    def __init__(self, subject: dict[str, Any], zone: str) -> None:
        self.subject, self.zone = dict(subject), zone
        self.window = SendWindow.parse(subject.get("send_window_days", "mon-sat"),
                                       subject.get("send_window_start", "08:00"),
                                       subject.get("send_window_end", "20:00"))

    def view(self) -> dict[str, Any]:
        """The sample as `lead` or `investor` (without the dry run's own send-window settings)."""
        return {k: v for k, v in self.subject.items() if not k.startswith("send_window")}

    def activities(self):
        @activity.defn(name="load_lead")
        async def load_lead(ref: dict) -> dict:
            if "stage" in self.subject:  # a deal sample: its lead is under "lead"
                return dict(self.subject.get("lead") or {})
            return self.view()

        @activity.defn(name="load_deal")
        async def load_deal(ref: dict) -> dict:
            return {k: v for k, v in self.subject.items() if k != "lead"}

        @activity.defn(name="load_investor")
        async def load_investor(ref: dict) -> dict:
            return self.view()

        @activity.defn(name="plan_send")
        async def plan_send(plan: SendPlanInput) -> SendPlan:
            window = SendWindow.parse(*plan.send_window) if plan.send_window else self.window
            opens = window.next_opening(plan.now, [self.zone])
            return SendPlan(zones=[self.zone], zone_source="sample", opens_at=opens, summary="dry run")

        @activity.defn(name="send_message")
        async def send_message(request: MessageRequest) -> MessageResult:
            return MessageResult(message_id=f"dry-{uuid.uuid4().hex[:8]}", status="sent")

        @activity.defn(name="create_task")
        async def create_task(request: TaskInput) -> str:
            return "dry-task"

        @activity.defn(name="notify_staff")
        async def notify_staff(request: NotifyInput) -> list[str]:
            return [f"dry-run-{request.to}"]  # recorded, nobody told

        @activity.defn(name="move_deal_stage")
        async def move_deal_stage(move: DealStageInput) -> str:
            self.subject["stage"] = move.stage
            return move.stage

        @activity.defn(name="match_investors")
        async def match_investors(request: MatchInput) -> list[dict]:
            return list(self.subject.get("matches") or [])[:request.limit]  # the sample's own, if it has any

        @activity.defn(name="request_signature")
        async def request_signature(request: SignatureRequest) -> dict:
            # recorded, nothing sent: a dry run's events may end it (document.completed with this document_id)
            return {"document_id": "dry-run-document", "status": "sent", "kind": request.template}

        @activity.defn(name="http_call")
        async def http_call(request: HttpCallInput) -> dict:
            return {"status": 200, "body": {"dry_run": True}}  # recorded, not sent

        @activity.defn(name="start_definition")
        async def start_definition(request: StartDefinitionInput) -> str:
            return f"dry-run-{request.key}"  # recorded, not started: the dry run covers this definition only

        @activity.defn(name="change_lead_status")
        async def change_lead_status(change: LeadStatusInput) -> str:
            self.subject["status"] = change.status
            return change.status

        @activity.defn(name="score_lead")
        async def score_lead(request: ScoreInput) -> ScoreResult:
            probability = float(self.subject.get("score") or 0.5)
            return ScoreResult(probability=probability, model_version="dry-run",
                               reasons=[{"text": "sample subject's score"}])

        @activity.defn(name="validate_contact")
        async def validate_contact(request: EnrichmentInput) -> dict:
            return {}

        @activity.defn(name="standardize_address")
        async def standardize_address(request: EnrichmentInput) -> dict | None:
            return None

        @activity.defn(name="lookup_county_records")
        async def lookup_county_records(request: PropertyLookup) -> SourceOutcome:
            return SourceOutcome(status="skipped")

        @activity.defn(name="lookup_property_api")
        async def lookup_property_api(request: PropertyLookup) -> SourceOutcome:
            return SourceOutcome(status="skipped")

        @activity.defn(name="save_enrichment")
        async def save_enrichment(result: EnrichmentResult) -> None:
            return None

        @activity.defn(name="link_duplicates")
        async def link_duplicates(request: EnrichmentInput) -> str | None:
            return None

        return [load_lead, load_deal, load_investor, plan_send, send_message, create_task, notify_staff,
                move_deal_stage, request_signature,
                match_investors, http_call, start_definition, change_lead_status, score_lead,
                validate_contact,
                standardize_address, lookup_county_records, lookup_property_api, save_enrichment, link_duplicates]


def day_zero(now: datetime, zone: str, start_at: str = "09:00",
             weekday: int | None = None) -> tuple[datetime, timedelta]:
    """Day 0's start: the next `start_at` (HH:MM) after `now` on the wall clock of `zone`, on `weekday`
    (0 = Monday) if given, and the time until then. That wait is taken in UTC: two times of one zone subtract
    as clock readings, so across a daylight-saving change the simulated clock would land an hour off."""
    local = now.astimezone(ZoneInfo(zone))
    hour, minute = (int(x) for x in start_at.split(":"))
    start = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if start <= local:
        start += timedelta(days=1)
    while weekday is not None and start.weekday() != weekday:
        start += timedelta(days=1)
    start = start.astimezone(UTC).astimezone(ZoneInfo(zone))  # a time the change skips (02:30) reads as it lands
    return start, start.astimezone(UTC) - now.astimezone(UTC)


async def dry_run(definition: Definition, subject: dict[str, Any], events: list[dict[str, Any]],
                  start_at: str = "09:00", weekday: int | None = None) -> dict[str, Any]:
    """Run and return {status, zone, lines, path, starts}. `events`: [{after: 1d, name: lead.replied, data: {...}}].
    Day 0 is the next `start_at` in the subject's zone; with `weekday` (0 = Monday), the next such day on that
    weekday, so that send windows over weekdays give the same path whatever day it is run."""
    zones, _ = recipient_zones(subject.get("phone"), subject.get("state"), subject.get("timezone", "America/New_York"))
    zone = zones[0]
    schedule = sorted(({"offset": parse_duration(e["after"]), "name": e["name"], "data": e.get("data") or {}}
                       for e in events), key=lambda e: e["offset"])
    env = await time_skipping_environment()
    try:
        now = await env.get_current_time()
        start, wait = day_zero(now, zone, start_at, weekday)
        await env.sleep(wait)  # day 0 begins at start_at in the subject's zone
        recorder = _Recorder(subject, zone)
        queue = f"dry-run-{uuid.uuid4().hex[:8]}"
        async with Worker(env.client, task_queue=queue, workflows=[DefinitionWorkflow, EnrichmentWorkflow],
                          activities=recorder.activities()):
            handle = await env.client.start_workflow(
                DefinitionWorkflow.run, DefinitionRun(tenant_id="dry-run", subject_id=str(subject.get("id", "sample")),
                                                      definition=definition),
                id=f"dry-run-{definition.key}-{uuid.uuid4().hex[:6]}", task_queue=queue)
            elapsed = timedelta(0)
            for event in schedule:
                await env.sleep(event["offset"] - elapsed)
                elapsed = event["offset"]
                await handle.signal(DefinitionWorkflow.event, DefinitionEvent(
                    name=event["name"], event_id=uuid.uuid4().hex, data=event["data"]))
            state = await handle.result()
    finally:
        await env.shutdown()
    day0 = start.date()
    lines = []
    for entry in state.path:
        at = datetime.fromisoformat(entry["at"]).astimezone(ZoneInfo(zone))
        lines.append(f"day {(at.date() - day0).days} {at:%H:%M} {entry['step']} {entry['detail']}")
    return {"status": state.status, "zone": zone, "lines": lines, "path": state.path, "starts": start.isoformat()}
