"""Deliver one message: wait (durable timer) for the recipient's send window, then send exactly once.

Shared by LeadWorkflow's cadence and MessageWorkflow (staff one-off messages). Activities are called by
name so this module never imports provider SDKs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from core import search_attributes as sa
    from models.payloads import MessageRequest, MessageResult, SendPlan, SendPlanInput

SEND_RETRY = RetryPolicy(initial_interval=timedelta(seconds=5), backoff_coefficient=2.0,
                         maximum_interval=timedelta(minutes=5), maximum_attempts=12,
                         non_retryable_error_types=["ProviderRejected", "NotFound"])
PLAN_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))


async def deliver(request: MessageRequest, stopped: Callable[[], bool]) -> MessageResult:
    """Wait for the window unless `stopped()` turns true (opt-out, reply, close), then send."""
    while request.respect_send_window:
        if stopped():
            return MessageResult(message_id=None, status="cancelled")
        plan: SendPlan = await workflow.execute_activity(
            "plan_send", SendPlanInput(tenant_id=request.tenant_id, lead_id=request.lead_id,
                                       investor_id=request.investor_id, user_id=request.user_id,
                                       channel=request.channel, now=workflow.now(), send_window=request.send_window),
            result_type=SendPlan, start_to_close_timeout=timedelta(seconds=30), retry_policy=PLAN_RETRY)
        wait = plan.opens_at - workflow.now()
        if plan.opted_out or wait <= timedelta(0):
            break  # send_message records the suppression itself
        try:
            await workflow.wait_condition(stopped, timeout=wait,
                                          timeout_summary=f"{request.channel} {request.template or 'message'}: "
                                                          f"{plan.summary}")
        except TimeoutError:
            continue  # the window should be open now; plan again (it may have moved, e.g. tenant change)
    if stopped():
        return MessageResult(message_id=None, status="cancelled")
    try:
        return await workflow.execute_activity(
            "send_message", request, result_type=MessageResult, start_to_close_timeout=timedelta(seconds=30),
            retry_policy=SEND_RETRY, summary=f"{request.channel} {request.template or 'message'}")
    except ActivityError as exc:
        cause = exc.cause
        details = cause.details if isinstance(cause, ApplicationError) and cause.details else [{}]
        workflow.logger.warning("message %s not sent: %s", request.idempotency_key, cause)
        return MessageResult(message_id=details[0].get("message_id"), status="failed", error=str(cause))


@workflow.defn
class MessageWorkflow:
    """A one-off message (POST /leads/{id}/messages): same rules as cadences, visible in the UI."""

    @workflow.init
    def __init__(self, request: MessageRequest) -> None:
        self._cancelled = False
        self._result: MessageResult | None = None

    @workflow.run
    async def run(self, request: MessageRequest) -> MessageResult:
        if request.lead_id:
            workflow.upsert_search_attributes([sa.LEAD_ID.value_set(request.lead_id)])
        self._result = await deliver(request, lambda: self._cancelled)
        return self._result

    @workflow.signal
    def cancel(self) -> None:
        self._cancelled = True

    @workflow.query
    def result(self) -> MessageResult | None:
        return self._result
