"""Inputs and outputs of workflows and activities (pydantic; no DB imports, sandbox-safe)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from definitions.pipelines import DealFacts


class LeadWorkflowInput(BaseModel):
    tenant_id: str
    lead_id: str
    source: str
    status: str = "new"
    # Carried over continue-as-new so a long-lived lead keeps its place.
    received: bool = False
    seen_event_ids: list[str] = Field(default_factory=list)
    cadence_done: bool = False
    cadence_stopped: bool = False
    # Continue-as-new in the middle of the cadence: the new run resumes waiting for a reply until this moment
    # (then the nudge), with what the first touch did and the score so far; signals not yet applied go along.
    reply_wait_until: datetime | None = None
    first_touch: dict[str, str] = Field(default_factory=dict)
    score: float | None = None
    pending: list[tuple[str, LeadEvent]] = Field(default_factory=list)


class LeadEvent(BaseModel):
    """The payload of every LeadWorkflow signal. `event_id` makes re-delivery harmless."""

    event_id: str
    data: dict[str, Any] = Field(default_factory=dict)
    actor: str = "system"
    note: str | None = None


class LeadState(BaseModel):
    lead_id: str
    status: str
    received: bool
    events: int
    closed: bool
    next_action: str
    cadence_stopped: bool = False
    cadence_done: bool = False
    first_touch: dict[str, str] = Field(default_factory=dict)  # template -> message status
    step: str | None = None  # receipt, enrichment, scoring, first_touch, wait_for_reply, nudge, done
    score: float | None = None
    merged_into: str | None = None  # set when enrichment found this is an earlier lead's person
    opportunity_id: str | None = None


class LeadWorkflowResult(BaseModel):
    lead_id: str
    status: str
    events: int


class TimelineEntryInput(BaseModel):
    tenant_id: str
    lead_id: str | None = None
    opportunity_id: str | None = None
    kind: str
    summary: str = ""
    data: dict[str, Any] = Field(default_factory=dict)
    actor: str = "system"
    workflow_id: str | None = None
    idempotency_key: str
    occurred_at: datetime


class TimelineEntryResult(BaseModel):
    entry_id: str
    created: bool  # False when a retry found the earlier write


class LeadStatusInput(BaseModel):
    tenant_id: str
    lead_id: str
    status: str
    reason: str | None = None
    actor: str = "workflow"
    idempotency_key: str | None = None  # a definition step's key: the update id of LeadWorkflow.set_status


class MessageRequest(BaseModel):
    """One message to one lead or one investor. `idempotency_key` is a business key: the same key never sends
    twice."""

    tenant_id: str
    lead_id: str | None = None
    investor_id: str | None = None  # instead of lead_id
    user_id: str | None = None  # instead of either: an email to a staff user (a notification)
    channel: str  # email or sms
    template: str | None = None  # template key; or inline text below (rendered the same way)
    text: str | None = None
    subject: str | None = None
    idempotency_key: str
    actor: str = "workflow"
    respect_send_window: bool = True
    # A definition's own window (days, HH:MM, HH:MM), stricter or looser than the tenant's; None = tenant's.
    send_window: tuple[str, str, str] | None = None
    # Template variables beside the recipient's own, as data (never rendered as a template themselves): the
    # notification a staff email is about.
    context: dict[str, Any] = Field(default_factory=dict)


class SendPlanInput(BaseModel):
    tenant_id: str
    lead_id: str | None = None
    investor_id: str | None = None  # instead of lead_id
    user_id: str | None = None  # instead of either
    channel: str
    now: datetime
    send_window: tuple[str, str, str] | None = None


class SendPlan(BaseModel):
    zones: list[str]
    zone_source: str  # phone, phone+state, state, tenant
    opens_at: datetime  # == now when the window is open
    opted_out: bool = False
    summary: str = ""


class MessageResult(BaseModel):
    message_id: str | None
    status: str  # sent, suppressed, failed, cancelled, ...
    provider_message_id: str | None = None
    error: str | None = None


class ConsentChange(BaseModel):
    tenant_id: str
    channel: str
    address: str
    status: str  # opted_in, opted_out
    source: str
    evidence: dict[str, Any] = Field(default_factory=dict)


class EnrichmentInput(BaseModel):
    tenant_id: str
    lead_id: str


class PropertyLookup(BaseModel):
    tenant_id: str
    lead_id: str
    address: dict[str, Any]  # StandardAddress.as_dict()


class SourceOutcome(BaseModel):
    status: str  # ok, no_match, failed, disabled, skipped
    error: str | None = None
    facts: dict[str, Any] = Field(default_factory=dict)


class EnrichmentResult(BaseModel):
    lead_id: str
    contact: dict[str, Any] = Field(default_factory=dict)
    address: dict[str, Any] | None = None
    sources: dict[str, SourceOutcome] = Field(default_factory=dict)
    facts: dict[str, Any] = Field(default_factory=dict)
    partial: bool = False
    duplicate_of: str | None = None


class ScoreInput(BaseModel):
    tenant_id: str
    lead_id: str
    reason: str = "intake"  # intake, engagement, manual
    # Set by LeadWorkflow: the score is also written as a `lead.scored` event with this id (in the same
    # transaction), which definitions hear (speed-to-lead starts from the intake one). None: no event.
    event_id: str | None = None
    # The lead replied, opted out, was closed or merged before this score: the event says so (`stopped`), and the
    # shipped first-touch definitions do not start for it.
    stopped: bool = False


class ScoreResult(BaseModel):
    probability: float
    model_version: str
    reasons: list[dict[str, Any]]


class DriftCheckInput(BaseModel):
    """ScoringDriftWorkflow's input (its daily Schedule's, scoring-drift-{tenant})."""

    tenant_id: str
    by: str = "schedule"


class DriftCheck(BaseModel):
    """check_scoring_drift's answer: the tenant's drift report in brief (services/drift.check_drift)."""

    tenant_id: str
    model: str = "lead"  # lead, or deal (the deal models' check, in the lead check's `deals`)
    checked: bool  # False: no report (no active model, no reference, an empty window): `reason`
    reason: str
    model_version: int | None = None
    n_current: int = 0
    threshold: float | None = None
    significant: bool = False  # a feature or the score over the threshold
    drifted: list[str] = Field(default_factory=list)  # highest PSI first; "score" when the score drifted
    max_psi: float | None = None
    retrain: bool = False  # significant, and settings.scoring_retrain_on_drift allows a retrain (lead model only)
    # The deal models' check, run by the same activity (None in a history recorded before they had one)
    deals: DriftCheck | None = None


class TaskInput(BaseModel):
    tenant_id: str
    lead_id: str | None = None
    opportunity_id: str | None = None
    investor_id: str | None = None
    title: str
    description: str | None = None
    due_in_hours: float | None = None
    idempotency_key: str
    # round_robin, owner, or a user's email or id; None: the subject's owner when it has one (else nobody)
    assignee: str | None = None
    team: str | None = None  # round_robin's team (default: the subject's: see services.assignment)
    actor: str = "workflow"


class NotifyInput(BaseModel):
    """A definition's `notify`: an in-app notification and an email to a user, the owner or a team's managers."""

    tenant_id: str
    lead_id: str | None = None
    opportunity_id: str | None = None
    investor_id: str | None = None
    to: str  # owner, managers, or a user's email or id
    team: str | None = None  # managers' team (default: the owner's, else the subject's)
    title: str
    message: str = ""
    email: bool = True
    idempotency_key: str
    actor: str = "workflow"


class ConvertInput(BaseModel):
    title: str | None = None
    asking_price: str | None = None  # Decimal as text: exact money across the wire
    actor: str = "staff"


class ConvertResult(BaseModel):
    opportunity_id: str
    deal_workflow_id: str


class StatusChange(BaseModel):
    status: str
    reason: str | None = None
    actor: str = "staff"


class StageMove(BaseModel):
    stage: str
    reason: str | None = None
    actor: str = "staff"
    # What the entry rules look at, read from the database by the caller (services/deals.py deal_facts); None
    # checks the move alone (an update recorded before the rules existed).
    facts: DealFacts | None = None


class DealStageInput(BaseModel):
    """A definition's `set_stage`: DealWorkflow's validated update, sent once per idempotency key."""

    tenant_id: str
    opportunity_id: str
    stage: str
    reason: str | None = None
    actor: str
    idempotency_key: str


class StartDefinitionInput(BaseModel):
    """A definition's `run_definition`: another published definition for the same subject."""

    tenant_id: str
    subject_type: str  # lead, deal, investor
    subject_id: str
    key: str
    idempotency_key: str


class MatchInput(BaseModel):
    """A definition's `match_investors` (or staff asking for matches): the deal's investor fits, stored."""

    tenant_id: str
    opportunity_id: str
    limit: int = 10
    accredited_only: bool = False
    idempotency_key: str | None = None


class HttpCallInput(BaseModel):
    """A definition's `http_call`: one request to an allow-listed host, with the step's key as Idempotency-Key."""

    tenant_id: str
    method: str = "POST"
    url: str
    body: dict[str, Any] | None = None
    idempotency_key: str


LeadWorkflowInput.model_rebuild()
