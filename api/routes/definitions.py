"""Ops-authored definitions: validate and store drafts (YAML body), publish, retire, list, show."""

from __future__ import annotations

import asyncio

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from starlette.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from sqlmodel import col, select

from api.deps import PrincipalDep, SessionDep, SettingsDep, audit, require
from api.errors import Problem
from services.dry_run import WEEKDAYS, dry_run, sample_subject
from definitions.loader import DefinitionInvalid, load
from definitions.send_window import CLOCK
from services.definition_store import DefinitionConflict, load_submitted, publish, retire, save_draft
from models.input import Input
from models.definition import WorkflowDefinition
from models.tenant import Role

router = APIRouter(prefix="/api/v1/definitions", tags=["definitions"])


def _dry_run_slots(app, size: int) -> asyncio.Semaphore:
    """The app's dry-run slots (made on first use, inside the app's event loop)."""
    if getattr(app.state, "dry_run_slots", None) is None:
        app.state.dry_run_slots = asyncio.Semaphore(size)
    return app.state.dry_run_slots
Ops = Annotated[Any, require(Role.ops)]


class DefinitionVersion(BaseModel):
    key: str
    version: int
    status: str
    name: str
    trigger: str
    steps: int
    content_hash: str
    created_at: datetime
    published_at: datetime | None
    source: str | None = None


def _public(row: WorkflowDefinition, with_source: bool = False) -> DefinitionVersion:
    definition = load(row.source, f"{row.key}.yaml")
    return DefinitionVersion(key=row.key, version=row.version, status=row.status, name=definition.name,
                             trigger=definition.trigger_event, steps=len(definition.steps),
                             content_hash=row.content_hash, created_at=row.created_at, published_at=row.published_at,
                             source=row.source if with_source else None)


@router.post("", status_code=201, response_model=DefinitionVersion,
             openapi_extra={"requestBody": {"content": {"application/yaml": {"schema": {"type": "string"}}}}})
async def create_definition(request: Request, session: SessionDep, principal: Ops) -> DefinitionVersion:
    """A YAML body. 422 lists every error with its line and column; 409 if that version is published."""
    source = (await request.body()).decode("utf-8", "replace")
    filename = request.headers.get("X-Filename", "definition.yaml")[:200]

    def save() -> DefinitionVersion:  # parsing and the database, off the event loop
        try:
            row = save_draft(session, principal.tenant_id, source, filename, principal.actor)
        except DefinitionInvalid as exc:
            raise Problem(422, f"{len(exc.problems)} problem(s) in {filename}", title="Invalid definition",
                          errors=exc.as_errors()) from None
        except DefinitionConflict as exc:
            raise Problem(409, str(exc)) from None
        audit(session, principal, "definition.save", "definition", f"{row.key}@{row.version}",
              after={"content_hash": row.content_hash})
        session.commit()
        return _public(row)

    return await run_in_threadpool(save)


class Validation(BaseModel):
    valid: bool
    key: str
    version: int
    subject: str
    trigger: str
    steps: int
    content_hash: str


@router.post("/validate", response_model=Validation,
             openapi_extra={"requestBody": {"content": {"application/yaml": {"schema": {"type": "string"}}}}})
async def validate_definition(request: Request, principal: Ops) -> Validation:
    """Check a YAML body as saving would (the same loader and checker, the same limits) and store nothing: 200
    when it would save, else 422 with every error's line and column. For editors that check as you type."""
    source = (await request.body()).decode("utf-8", "replace")
    filename = request.headers.get("X-Filename", "definition.yaml")[:200]
    try:
        definition = await run_in_threadpool(load_submitted, source, filename)
    except DefinitionInvalid as exc:
        raise Problem(422, f"{len(exc.problems)} problem(s) in {filename}", title="Invalid definition",
                      errors=exc.as_errors()) from None
    return Validation(valid=True, key=definition.key, version=definition.version, subject=definition.subject,
                      trigger=definition.trigger_event, steps=len(definition.steps),
                      content_hash=definition.content_hash)


class TestBody(Input):
    source: str
    subject: dict[str, Any] | None = Field(default=None, description="the sample lead, deal or investor; a "
                                                                    "built-in sample of the definition's subject "
                                                                    "when left out")
    events: list[dict[str, Any]] = []
    start_on: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] | None = Field(
        default=None, description="the weekday day 0 falls on (the next one); left out: the next `start_at` "
                                  "(today's if it is still to come), whatever day that is. Send windows skip "
                                  "days, so the path depends on it")
    start_at: str = Field(default="09:00", pattern=f"^{CLOCK}$",
                          description="the time day 0 begins, HH:MM in the sample's zone")


class TestResult(BaseModel):
    status: str
    zone: str
    starts: datetime = Field(description="when day 0 began on the simulated clock, in the sample's zone")
    lines: list[str]


@router.post("/test", response_model=TestResult)
async def test_definition(body: TestBody, request: Request, settings: SettingsDep, principal: Ops) -> TestResult:
    """Dry run ("Test"): the definition runs on a time-skipping test server of its own (its own simulated
    clock) with side effects recorded, not performed; returns the path with simulated times. Ops only; at
    most `DEALFLOW_DRY_RUN_CONCURRENCY` at once (429 past it), each stopped after
    `DEALFLOW_DRY_RUN_TIMEOUT_SECONDS` (a 422: a step that waits forever never ends)."""
    try:
        definition = await run_in_threadpool(load_submitted, body.source, "definition.yaml")
    except DefinitionInvalid as exc:
        raise Problem(422, f"{len(exc.problems)} problem(s)", title="Invalid definition",
                      errors=exc.as_errors()) from None
    slots = _dry_run_slots(request.app, settings.dry_run_concurrency)
    if slots.locked():
        raise Problem(429, f"{settings.dry_run_concurrency} dry runs are already running; retry shortly",
                      headers={"Retry-After": "5"})
    try:
        async with slots:
            result = await asyncio.wait_for(
                dry_run(definition, body.subject or sample_subject(definition.subject), body.events,
                        start_at=body.start_at,
                        weekday=WEEKDAYS.index(body.start_on) if body.start_on else None),
                timeout=settings.dry_run_timeout_seconds)
    except TimeoutError:
        raise Problem(422, f"the dry run did not finish within {settings.dry_run_timeout_seconds:g} s: does a "
                           "step wait with no timeout for an event the test does not send?") from None
    except (ValueError, KeyError) as exc:
        raise Problem(422, f"bad sample or events: {exc}") from None
    return TestResult(status=result["status"], zone=result["zone"], starts=result["starts"], lines=result["lines"])


@router.get("", response_model=list[DefinitionVersion])
def list_definitions(session: SessionDep, principal: PrincipalDep) -> list[DefinitionVersion]:
    rows = session.exec(select(WorkflowDefinition).where(WorkflowDefinition.tenant_id == principal.tenant_id)
                        .order_by(WorkflowDefinition.key, col(WorkflowDefinition.version).desc())).all()
    return [_public(r) for r in rows]


@router.get("/{key}", response_model=list[DefinitionVersion])
def show_definition(key: str, session: SessionDep, principal: PrincipalDep) -> list[DefinitionVersion]:
    rows = session.exec(select(WorkflowDefinition).where(WorkflowDefinition.tenant_id == principal.tenant_id,
                                                         WorkflowDefinition.key == key)
                        .order_by(col(WorkflowDefinition.version).desc())).all()
    if not rows:
        raise Problem(404, f"definition {key} not found")
    return [_public(r, with_source=True) for r in rows]


@router.post("/{key}/versions/{version}/publish", response_model=DefinitionVersion)
def publish_definition(key: str, version: Annotated[int, Path(ge=1, le=2**31 - 1)], session: SessionDep,
                       principal: Ops) -> DefinitionVersion:
    try:
        row = publish(session, principal.tenant_id, key, version)
    except LookupError as exc:
        raise Problem(404, str(exc)) from None
    except DefinitionConflict as exc:
        raise Problem(409, str(exc)) from None
    audit(session, principal, "definition.publish", "definition", f"{key}@{version}",
          after={"content_hash": row.content_hash})
    session.commit()
    return _public(row)


@router.post("/{key}/retire")
def retire_definition(key: str, session: SessionDep, principal: Ops) -> dict[str, Any]:
    count = retire(session, principal.tenant_id, key)
    if not count:
        raise Problem(404, f"no published version of {key} to retire")
    audit(session, principal, "definition.retire", "definition", key, after={"versions": count})
    session.commit()
    return {"key": key, "retired_versions": count}
