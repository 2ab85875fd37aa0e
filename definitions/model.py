"""The compiled form of a definition: what the loader produces and DefinitionWorkflow executes.

Plain pydantic (sandbox-safe, no YAML); durations are seconds, expressions are CEL source text
(already checked to compile and to reference known variables)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Retry(BaseModel):
    max_attempts: int = 5
    initial_seconds: float = 30.0
    backoff: float = 2.0


class Step(BaseModel):
    id: str
    kind: str  # action, wait, wait_for, branch, parallel, for_each, set, stop
    line: int = 0
    if_: str | None = None
    save_as: str | None = None
    timeout_seconds: float | None = None
    retry: Retry | None = None
    on_error: str = "stop"  # stop | continue
    # action
    action: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    # wait
    wait_seconds: float | None = None
    wait_until: str | None = None  # CEL giving a timestamp
    wait_send_window: bool = False
    # wait_for
    event: str | None = None
    on_timeout: str = "continue"  # continue | stop
    # branch: [(when or None for otherwise, steps)]
    branches: list[tuple[str | None, list[Step]]] = Field(default_factory=list)
    # parallel
    mode: str = "all"  # all | any
    lanes: list[list[Step]] = Field(default_factory=list)
    # for_each
    items: str | None = None
    as_: str | None = None
    max_items: int = 0
    body: list[Step] = Field(default_factory=list)
    # set
    assignments: dict[str, str] = Field(default_factory=dict)
    # stop
    reason: str | None = None


class ExitRule(BaseModel):
    event: str | None = None
    condition: str | None = None


class Definition(BaseModel):
    key: str
    name: str
    version: int
    subject: str = "lead"
    trigger_event: str
    trigger_when: str | None = None
    # Definitions this one takes the place of: for an event that triggers both, only this one starts, and
    # starting it ends their running enrollment for the subject (hand-over).
    replaces: list[str] = Field(default_factory=list)
    reenroll_after_seconds: float | None = None  # None = never re-enroll
    exit_when: list[ExitRule] = Field(default_factory=list)
    respect_send_window: bool = True
    send_window: tuple[str, str, str] | None = None  # (days, from, to); None = the tenant's window
    default_timeout_seconds: float = 120.0
    default_retry: Retry = Field(default_factory=Retry)
    steps: list[Step]
    content_hash: str = ""


# What DefinitionWorkflow takes, hears and answers (here, not in the workflow module: see its imports).

class DefinitionRun(BaseModel):
    tenant_id: str
    subject_id: str  # the lead's id; the deal's or investor's for definitions with `subject: deal|investor`
    definition: Definition
    # Which run of the definition for this subject: "" for the first enrollment (keys as before), "e2", "e3"
    # for re-enrollments, "by-<digest>" for a run another definition started. Part of every idempotency key,
    # so a re-enrolled subject gets its messages, tasks and status changes again, once per enrollment.
    enrollment: str = ""
    # carried over continue-as-new
    next_step: int = 0
    saved: dict[str, Any] = Field(default_factory=dict)
    variables: dict[str, Any] = Field(default_factory=dict)
    path: list[dict[str, Any]] = Field(default_factory=list)
    events: list[dict[str, Any]] = Field(default_factory=list)
    consumed: list[str] = Field(default_factory=list)  # event ids already matched by a wait_for


class DefinitionEvent(BaseModel):
    name: str
    event_id: str
    data: dict[str, Any] = Field(default_factory=dict)


class DefinitionState(BaseModel):
    key: str
    version: int
    status: str  # running, completed, exited, stopped, failed
    current_step: str | None
    variables: dict[str, Any]
    saved: dict[str, Any]
    path: list[dict[str, Any]]
