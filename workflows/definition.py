"""DefinitionWorkflow: interprets one published version of an ops-authored definition for one subject.

It receives the compiled definition (never re-reads a mutable source). Decisions are deterministic: CEL
conditions over workflow state, `now` from workflow.now(). Waits are durable timers; wait_for is a signal
with a wait_condition timeout; exit_when events and conditions end the run cleanly, checked on every
event and before every step. Side effects use idempotency keys {subject}:{key}:{version}:{step id}.

The steps are carried out by workflows.interpreter, passed through the sandbox so it is compiled once per
process rather than once per run; this module only declares the workflow, its signal and its query.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from definitions.model import DefinitionEvent, DefinitionRun, DefinitionState
    from workflows.interpreter import DefinitionInterpreter

__all__ = ["DefinitionEvent", "DefinitionRun", "DefinitionState", "DefinitionWorkflow"]


@workflow.defn
class DefinitionWorkflow(DefinitionInterpreter):
    @workflow.init
    def __init__(self, run: DefinitionRun) -> None:
        super().__init__(run)

    @workflow.run
    async def run(self, run: DefinitionRun) -> DefinitionState:
        return await self.execute(run)

    @workflow.signal
    def event(self, event: DefinitionEvent) -> None:
        """Something happened to the subject (a reply, an opt-out, a recorded event, a message event)."""
        self.on_event(event)

    @workflow.query
    def state(self) -> DefinitionState:
        """The current step, the variables and saved values, and the path taken so far."""
        return self.snapshot()
