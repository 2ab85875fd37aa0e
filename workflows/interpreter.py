"""The interpreter behind DefinitionWorkflow: runs one published version of an ops-authored definition
for one subject.

Deterministic workflow code, imported through the sandbox's pass-through by workflows.definition (which
only declares the workflow): the sandbox re-imports a workflow's own module for every run, and compiling
and executing this one each time was most of the interpreter's CPU overhead over hand-written code. Like
everything here it may only use workflow APIs (workflow.now(), timers, activities), never I/O or clocks.

It receives the compiled definition (never re-reads a mutable source). Decisions are deterministic: CEL
conditions over workflow state, `now` from workflow.now(). Waits are durable timers; wait_for is a signal
with a wait_condition timeout; exit_when events and conditions end the run cleanly, checked on every
event and before every step. Side effects use idempotency keys {subject}:{key}:{version}:{step id}.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from celpy import celtypes, json_to_cel

    from core import search_attributes as sa
    from definitions.cel import program as cel_program
    from definitions.language import HANDED_OVER, REMOVED
    # Payload models live in definitions.model, created once per process (not per run).
    from definitions.model import DefinitionEvent, DefinitionRun, DefinitionState, Step
    from models.payloads import SendPlan, SendPlanInput
    from workflows.actions import StepActions, _Exit, _ExpressionFailed


class DefinitionInterpreter(StepActions):
    """DefinitionWorkflow's body; see workflows.definition for the workflow, its signal and its query."""

    def __init__(self, run: DefinitionRun) -> None:
        self._run = run
        self._d = run.definition
        self._saved = dict(run.saved)
        self._vars = dict(run.variables)
        self._path = list(run.path)
        self._events = list(run.events)
        self._consumed = set(run.consumed)
        self._status = "running"
        self._current: str | None = None
        self._lead: dict[str, Any] = {}
        self._deal: dict[str, Any] = {}
        self._investor: dict[str, Any] = {}
        self._stale = True  # the lead view must be (re)loaded before the next decision
        self._deal_lost = False  # set by a closed_lost heard from now on (a run that heard one has ended)

    async def execute(self, run: DefinitionRun) -> DefinitionState:
        workflow.upsert_search_attributes([sa.DEFINITION_KEY.value_set(self._d.key)])
        try:
            for index in range(run.next_step, len(self._d.steps)):
                if workflow.info().is_continue_as_new_suggested() and index > run.next_step:
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    workflow.continue_as_new(run.model_copy(update={
                        "next_step": index, "saved": self._saved, "variables": self._vars, "path": self._path,
                        "events": self._events, "consumed": sorted(self._consumed)}))
                await self._steps([self._d.steps[index]])
            self._status = "completed"
        except _Exit as done:
            self._status = done.status
            self._log(self._current or "-", "end", f"{done.status}: {done.reason}")
        self._current = None
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.snapshot()

    # -- steps ----------------------------------------------------------------------------------------

    async def _steps(self, steps: list[Step], scope: str = "") -> None:
        """`scope` tells repeated runs of the same steps apart (for_each items after the first: `#2`, `#3`,
        nested `#2#3`), so each item's side effects get their own idempotency keys."""
        for step in steps:
            if self._stale:
                await self._refresh()
            self._check_exit()
            self._current = step.id
            if step.if_ and not self._truthy(step.if_):
                self._log(step.id, step.kind, "skipped (if was false)")
                continue
            try:
                await getattr(self, f"_{step.kind}")(step, scope)
            except (ActivityError, ChildWorkflowError, _ExpressionFailed) as exc:
                cause = getattr(exc, "cause", None) or exc
                self._log(step.id, "error", str(getattr(cause, "message", cause)))
                if step.on_error != "continue":
                    raise _Exit("failed", f"step {step.id} failed: {getattr(cause, 'message', cause)}") from None

    async def _wait(self, step: Step, scope: str) -> None:
        if step.wait_seconds is not None:
            delay = timedelta(seconds=step.wait_seconds)
        elif step.wait_until:
            target = self._eval(step.wait_until)
            delay = (target - workflow.now()) if hasattr(target, "tzinfo") else timedelta(0)
        else:
            plan: SendPlan = await workflow.execute_activity(
                "plan_send", SendPlanInput(tenant_id=self._run.tenant_id, lead_id=self._lead.get("id"),
                                           investor_id=self._investor.get("id"), channel="sms", now=workflow.now(),
                                           send_window=self._d.send_window),
                result_type=SendPlan, start_to_close_timeout=timedelta(seconds=30))
            delay = plan.opens_at - workflow.now()
        if delay > timedelta(0):
            try:
                await workflow.wait_condition(self._exit_requested, timeout=delay,
                                              timeout_summary=f"{self._d.key} {step.id}: wait")
            except TimeoutError:
                pass
            else:
                self._check_exit()  # interrupted by exit_when: end here, not at the next step
        self._log(step.id, "wait", f"waited {_human(delay)}")

    async def _wait_for(self, step: Step, scope: str) -> None:
        # Any event of that name since the run started that no earlier wait_for used counts: an event that
        # arrives while earlier steps are still running is not lost.
        def arrived() -> dict[str, Any] | None:
            return next((e for e in self._events
                         if e["name"] == step.event and e["event_id"] not in self._consumed), None)

        try:
            await workflow.wait_condition(lambda: arrived() is not None or self._exit_requested(),
                                          timeout=timedelta(seconds=step.timeout_seconds or 0),
                                          timeout_summary=f"{self._d.key} {step.id}: wait for {step.event}")
        except TimeoutError:
            if step.save_as:
                self._saved[step.save_as] = None
            self._log(step.id, "wait_for", f"{step.event} timed out")
            if step.on_timeout == "stop":
                raise _Exit("stopped", f"{step.event} did not come in time") from None
            return
        event = arrived()
        if event is None:
            self._check_exit()  # woken by exit_when, not by the event
            return
        self._consumed.add(event["event_id"])
        if step.save_as:
            self._saved[step.save_as] = event["data"]
        self._log(step.id, "wait_for", f"{step.event} received")

    async def _branch(self, step: Step, scope: str) -> None:
        for index, (when, steps) in enumerate(step.branches):
            if when is None or self._truthy(when):
                self._log(step.id, "branch", "otherwise" if when is None else f"arm {index + 1}: {when}")
                await self._steps(steps, scope)
                return
        self._log(step.id, "branch", "no arm matched")

    async def _parallel(self, step: Step, scope: str) -> None:
        lanes = [asyncio.create_task(self._steps(lane, scope)) for lane in step.lanes]
        if step.mode == "all":
            await asyncio.gather(*lanes)
        else:
            done, pending = await workflow.wait(lanes, return_when=asyncio.FIRST_COMPLETED)
            for lane in pending:
                lane.cancel()  # the losing branches stop where they are
            for lane in done:
                lane.result()
        self._log(step.id, "parallel", f"{step.mode} done")

    async def _for_each(self, step: Step, scope: str) -> None:
        items = self._eval(step.items or "[]")
        items = list(items) if isinstance(items, list | tuple) else []
        if len(items) > step.max_items:
            self._log(step.id, "for_each", f"{len(items)} items, only the first {step.max_items} used")
        for index, item in enumerate(items[:step.max_items]):
            self._saved[step.as_ or "item"] = item
            # The first item keeps the plain keys (as before items had their own); the others are #2, #3, ...
            await self._steps(step.body, scope if index == 0 else f"{scope}#{index + 1}")
        self._log(step.id, "for_each", f"{min(len(items), step.max_items)} items")

    async def _set(self, step: Step, scope: str) -> None:
        for name, expression in step.assignments.items():
            self._vars[name] = self._eval(expression)
        self._log(step.id, "set", ", ".join(step.assignments))

    async def _stop(self, step: Step, scope: str) -> None:
        raise _Exit("stopped", step.reason or "stop")

    # -- exits, events, expressions ------------------------------------------------------------------

    def _exit_requested(self) -> bool:
        return self._exit_reason() is not None

    def _exit_reason(self) -> str | None:
        handed = next((e for e in self._events if e["name"] == HANDED_OVER), None)
        if handed is not None:  # a definition that replaces this one started for the subject
            return f"handed over to {handed['data'].get('by')}"
        # Staff took the subject out of this run (an event no older history holds: replays are unchanged).
        removed = next((e for e in self._events if e["name"] == REMOVED), None)
        if removed is not None:
            reason = removed["data"].get("reason")
            return f"removed by {removed['data'].get('by')}" + (f": {reason}" if reason else "")
        if self._deal_lost:
            return "the deal was lost: closed_lost stops its automations"
        for rule in self._d.exit_when:
            if rule.event and any(e["name"] == rule.event for e in self._events):
                return f"exit_when event {rule.event}"
            if rule.condition and self._truthy(rule.condition, log=False):
                return f"exit_when {rule.condition}"
        return None

    def _check_exit(self) -> None:
        reason = self._exit_reason()
        if reason:
            raise _Exit("exited", reason)

    def _activation(self) -> dict[str, Any]:
        values = {"lead": self._lead, "deal": self._deal, "investor": self._investor, "vars": self._vars,
                  "event": self._events[-1]["data"] if self._events else {},
                  **self._saved}
        activation = {name: json_to_cel(value) for name, value in values.items()}
        activation["now"] = celtypes.TimestampType(workflow.now())
        return activation

    def _eval(self, expression: str) -> Any:
        try:
            result = cel_program(expression).evaluate(self._activation())
        except Exception as exc:  # noqa: BLE001 - celpy raises its own errors; the step fails, the run does not hang
            # celpy's errors are (summary, exception class, (detail,)): the detail is what ops can act on.
            args = exc.args
            detail = args[2][0] if len(args) == 3 and isinstance(args[2], tuple) and args[2] else exc
            raise _ExpressionFailed(f"{expression!r} could not be evaluated: {detail}") from None
        if isinstance(result, celtypes.TimestampType):
            return result
        if isinstance(result, celtypes.BoolType):
            return bool(result)
        return _plain(result)

    def _truthy(self, expression: str, log: bool = True) -> bool:
        try:
            return bool(self._eval(expression))
        except _ExpressionFailed as exc:  # a missing field reads as false, and says so
            if log:  # never from a wait_condition callback: those must not change state
                self._log(self._current or "-", "condition", str(exc))
            return False

    async def _refresh(self) -> None:
        self._stale = False
        retry = RetryPolicy(maximum_attempts=10, non_retryable_error_types=["NotFound"])
        lead_id = self._run.subject_id
        if self._d.subject == "investor":
            self._investor = await workflow.execute_activity(
                "load_investor", {"tenant_id": self._run.tenant_id, "investor_id": self._run.subject_id},
                result_type=dict, start_to_close_timeout=timedelta(seconds=30), retry_policy=retry)
            return
        if self._d.subject == "deal":
            self._deal = await workflow.execute_activity(
                "load_deal", {"tenant_id": self._run.tenant_id, "deal_id": self._run.subject_id}, result_type=dict,
                start_to_close_timeout=timedelta(seconds=30), retry_policy=retry)
            lead_id = self._deal.get("lead_id")
            if not lead_id:
                self._lead = {}
                return
        self._lead = await workflow.execute_activity(
            "load_lead", {"tenant_id": self._run.tenant_id, "lead_id": lead_id}, result_type=dict,
            start_to_close_timeout=timedelta(seconds=30), retry_policy=retry)

    def _log(self, step_id: str, kind: str, detail: str) -> None:
        self._path.append({"at": workflow.now().isoformat(), "step": step_id, "kind": kind, "detail": detail})
        del self._path[:-200]  # bounded: the whole path lives in the history anyway

    def on_event(self, event: DefinitionEvent) -> None:
        if any(e["event_id"] == event.event_id for e in self._events):
            return  # re-delivered
        self._events.append(event.model_dump())
        del self._events[:-100]
        if self._d.subject == "deal" and _lost(self._events[-1]) and workflow.patched("lost-deal-stops-runs"):
            self._deal_lost = True
        self._stale = True  # an event usually means the lead changed (status, reply, ...)
        # The event carries the lead's new status: `exit_when: lead.status in [...]` must see it during a wait,
        # not only after the next step reloads the lead (a dead lead was messaged when the wait ended).
        status = event.data.get("status") if event.name == "lead.status_changed" else None
        if isinstance(status, str) and self._lead and workflow.patched("status-event-updates-lead-view"):
            self._lead = {**self._lead, "status": status}

    def snapshot(self) -> DefinitionState:
        return DefinitionState(key=self._d.key, version=self._d.version, status=self._status,
                               current_step=self._current, variables=self._vars, saved=self._saved,
                               path=self._path)


def _lost(event: dict[str, Any]) -> bool:
    return event["name"] == "deal.stage_changed" and (event.get("data") or {}).get("stage") == "closed_lost"


def _human(delta: timedelta) -> str:
    """`3d 4h`, `2h 59m`, `45s`: how long a wait took, for the path and the dry run."""
    seconds = max(0, round(delta.total_seconds()))
    parts = [(seconds // 86400, "d"), (seconds % 86400 // 3600, "h"), (seconds % 3600 // 60, "m"), (seconds % 60, "s")]
    return " ".join([f"{n}{unit}" for n, unit in parts if n][:2]) or "0s"  # the two largest units


def _plain(value: Any) -> Any:
    """CEL values back to JSON-able Python (for variables and the query)."""
    if isinstance(value, celtypes.MapType):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, celtypes.ListType):
        return [_plain(v) for v in value]
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, celtypes.IntType | celtypes.UintType):
        return int(value)
    if isinstance(value, celtypes.DoubleType):
        return float(value)
    if isinstance(value, celtypes.StringType):
        return str(value)
    return None if value is None or isinstance(value, type(None)) else value
