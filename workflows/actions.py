"""The actions of DefinitionWorkflow's steps (send_email, create_task, set_status, set_stage, http_call, ...):
one method each, mixed into the interpreter. Deterministic workflow code, passed through the sandbox like
workflows.interpreter; side effects happen in activities, each with the step's idempotency key
{subject}:{key}:{version}:[{enrollment}:]{step id}[#item] (the enrollment for re-enrolled runs only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celpy import celtypes
from temporalio import workflow
from temporalio.common import RetryPolicy

from definitions.language import DOCUMENT_EVENTS, LEAD_ACTIONS
from definitions.model import Retry, Step
from models.payloads import (
    DealStageInput, EnrichmentInput, HttpCallInput, LeadStatusInput, MatchInput, MessageRequest, MessageResult,
    NotifyInput, ScoreInput, ScoreResult, StartDefinitionInput, TaskInput,
)
from models.signing import SignatureRequest
from workflows.enrichment import EnrichmentWorkflow
from workflows.messaging import deliver

# Actions that need a person to act on: a lead's own, and messages (to the lead, or to the investor).
_NEEDS_A_PERSON = LEAD_ACTIONS | {"send_email", "send_sms"}


@dataclass(frozen=True)
class _Call:
    """What every action of one step needs: its idempotency key, the subject's ids, timeout and retry."""

    key: str
    scope: str
    lead_id: str | None
    deal_id: str | None
    investor_id: str | None
    timeout: timedelta
    retry: RetryPolicy


class _ExpressionFailed(Exception):
    """A CEL expression that could not be evaluated at run time (e.g. a field the subject does not have)."""


class _Exit(Exception):
    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def _policy(retry: Retry) -> RetryPolicy:
    return RetryPolicy(initial_interval=timedelta(seconds=retry.initial_seconds), backoff_coefficient=retry.backoff,
                       maximum_attempts=retry.max_attempts, non_retryable_error_types=["NotFound", "BadFeatures"])


def _json_value(value: Any) -> Any:
    """An evaluated expression as JSON for an outgoing body (timestamps as ISO 8601)."""
    return value.isoformat() if isinstance(value, celtypes.TimestampType) else value



class StepActions:
    """Needs the interpreter's state: _run, _d, _lead, _deal, _saved, _stale, _eval, _log, _exit_requested,
    _check_exit."""

    async def _action(self, step: Step, scope: str) -> None:
        d = self._d
        investor_id = self._run.subject_id if d.subject == "investor" else None
        deal_id = self._run.subject_id if d.subject == "deal" else None
        lead_id = self._lead.get("id") if deal_id else None if investor_id else self._run.subject_id
        if lead_id is None and investor_id is None and step.action in _NEEDS_A_PERSON:
            raise _Exit("failed", f"step {step.id}: {step.action} needs a lead, and this deal has none")
        run = f"{self._run.enrollment}:" if self._run.enrollment else ""
        call = _Call(key=f"{self._run.subject_id}:{d.key}:{d.version}:{run}{step.id}{scope}", scope=scope,
                     lead_id=lead_id, deal_id=deal_id, investor_id=investor_id,
                     timeout=timedelta(seconds=step.timeout_seconds or d.default_timeout_seconds),
                     retry=_policy(step.retry or d.default_retry))
        result, detail = await getattr(self, f"_do_{step.action}")(step, call)
        if step.save_as:
            self._saved[step.save_as] = result
        self._log(step.id, "action", detail)

    # One method per action: (result for save_as, detail for the path). `call.key` is the idempotency key.

    async def _send(self, step: Step, call: _Call, channel: str) -> tuple[Any, str]:
        d = self._d
        sent: MessageResult = await deliver(
            MessageRequest(tenant_id=self._run.tenant_id, lead_id=call.lead_id, investor_id=call.investor_id,
                           channel=channel, template=step.params["template"], idempotency_key=call.key,
                           respect_send_window=d.respect_send_window, send_window=d.send_window),
            self._exit_requested)
        if sent.status == "cancelled":
            self._check_exit()
        return sent.model_dump(), f"{step.action} {step.params['template']}: {sent.status}"

    async def _do_send_email(self, step: Step, call: _Call) -> tuple[Any, str]:
        return await self._send(step, call, "email")

    async def _do_send_sms(self, step: Step, call: _Call) -> tuple[Any, str]:
        return await self._send(step, call, "sms")

    async def _do_create_task(self, step: Step, call: _Call) -> tuple[Any, str]:
        hours = step.params.get("due_in", 0) / 3600 or None
        assignee = step.params.get("assignee")
        result = await self._activity("create_task", TaskInput(
            tenant_id=self._run.tenant_id, lead_id=call.lead_id, opportunity_id=call.deal_id,
            investor_id=call.investor_id, title=step.params["title"], description=step.params.get("description"),
            due_in_hours=hours, idempotency_key=call.key, assignee=assignee, team=step.params.get("team"),
            actor=f"definition:{self._d.key}"), str, call)
        return result, f"create_task {step.params['title']!r}" + (f" for {assignee}" if assignee else "")

    async def _do_notify(self, step: Step, call: _Call) -> tuple[Any, str]:
        notified = await self._activity("notify_staff", NotifyInput(
            tenant_id=self._run.tenant_id, lead_id=call.lead_id, opportunity_id=call.deal_id,
            investor_id=call.investor_id, to=step.params["to"], team=step.params.get("team"),
            title=step.params["title"], message=step.params.get("message", ""), email=step.params.get("email", True),
            idempotency_key=call.key, actor=f"definition:{self._d.key}"), list, call)
        return notified, f"notify {step.params['to']}: {len(notified)} told"

    async def _do_set_status(self, step: Step, call: _Call) -> tuple[Any, str]:
        d = self._d
        change = LeadStatusInput(tenant_id=self._run.tenant_id, lead_id=call.lead_id, status=step.params["status"],
                                 reason=step.params.get("reason") or f"{d.key} v{d.version}",
                                 actor=f"definition:{d.key}", idempotency_key=call.key)
        # Through the lead's own workflow (its validator decides, its cadence hears it); runs that took this
        # step before the patch wrote the row directly and replay that way.
        if workflow.patched("set-status-through-lead-workflow"):
            await self._activity("change_lead_status", change, str, call)
        else:
            await workflow.execute_activity("set_lead_status", change, start_to_close_timeout=call.timeout,
                                            retry_policy=call.retry)
        self._lead["status"] = step.params["status"]  # known here: no need to re-read the lead
        return None, f"set_status {step.params['status']}"

    async def _do_score_lead(self, step: Step, call: _Call) -> tuple[Any, str]:
        score: ScoreResult = await self._activity(
            "score_lead", ScoreInput(tenant_id=self._run.tenant_id, lead_id=call.lead_id, reason=self._d.key),
            ScoreResult, call)
        self._lead["score"] = score.probability
        return score.model_dump(), f"score_lead {score.probability:.0%}"

    async def _do_enrich_lead(self, step: Step, call: _Call) -> tuple[Any, str]:
        d = self._d
        enriched = await workflow.execute_child_workflow(
            EnrichmentWorkflow.run, EnrichmentInput(tenant_id=self._run.tenant_id, lead_id=call.lead_id),
            id=f"enrich-{self._run.tenant_id}-{call.lead_id}-{d.key}-{d.version}-"
               f"{self._run.enrollment + '-' if self._run.enrollment else ''}{step.id}{call.scope}")
        self._stale = True  # enrichment changed the lead
        return enriched.model_dump(mode="json"), "enrich_lead" + (" (partial)" if enriched.partial else "")

    async def _do_set_stage(self, step: Step, call: _Call) -> tuple[Any, str]:
        d = self._d
        stage = await self._activity("move_deal_stage", DealStageInput(
            tenant_id=self._run.tenant_id, opportunity_id=call.deal_id or "", stage=step.params["stage"],
            reason=step.params.get("reason") or f"{d.key} v{d.version}", actor=f"definition:{d.key}",
            idempotency_key=call.key), str, call)
        self._deal["stage"] = stage
        return stage, f"set_stage {stage}"

    async def _do_match_investors(self, step: Step, call: _Call) -> tuple[Any, str]:
        matches = await self._activity("match_investors", MatchInput(
            tenant_id=self._run.tenant_id, opportunity_id=call.deal_id or "", limit=step.params.get("limit", 10),
            accredited_only=step.params.get("accredited_only", False), idempotency_key=call.key), list, call)
        return matches, f"match_investors {len(matches)} matched"

    async def _do_http_call(self, step: Step, call: _Call) -> tuple[Any, str]:
        body = {name: _json_value(self._eval(expression)) for name, expression in step.params.get("body", {}).items()}
        method = step.params.get("method", "POST")
        answer = await self._activity("http_call", HttpCallInput(
            tenant_id=self._run.tenant_id, method=method, url=step.params["url"], body=body or None,
            idempotency_key=call.key), dict, call)
        return answer, f"http_call {method} {step.params['url']}: {answer['status']}"

    async def _do_run_definition(self, step: Step, call: _Call) -> tuple[Any, str]:
        run_id = await self._activity("start_definition", StartDefinitionInput(
            tenant_id=self._run.tenant_id, subject_type=self._d.subject, subject_id=self._run.subject_id,
            key=step.params["key"], idempotency_key=call.key), str, call)
        return run_id, f"run_definition {step.params['key']}"

    async def _do_request_signature(self, step: Step, call: _Call) -> tuple[Any, str]:
        """The document goes out through DocumentSigningWorkflow (started by the relay); with `wait`, the step
        holds until the deal hears how it ended (document.completed, .declined, .voided or .expired)."""
        d, template = self._d, step.params["template"]
        terms = {name: _json_value(self._eval(expression)) for name, expression in step.params.get("terms", {}).items()}
        expires_in = step.params.get("expires_in")
        requested = await self._activity("request_signature", SignatureRequest(
            tenant_id=self._run.tenant_id, opportunity_id=call.deal_id or "", template=template,
            signers=step.params["signers"], signing_order=step.params.get("signing_order", "sequential"),
            expires_in_seconds=expires_in, terms=terms, idempotency_key=call.key, actor=f"definition:{d.key}"),
            dict, call)
        document_id = requested["document_id"]
        if not step.params.get("wait"):
            return requested, f"request_signature {template}: {document_id} sent"

        def ended() -> dict[str, Any] | None:
            return next((e for e in self._events if e["name"] in DOCUMENT_EVENTS
                         and (e.get("data") or {}).get("document_id") == document_id), None)

        try:  # the envelope's own expiry ends it first; a day more in case its workflow is late to say so
            await workflow.wait_condition(lambda: ended() is not None or self._exit_requested(),
                                          timeout=timedelta(seconds=(expires_in or 14 * 86400) + 86400),
                                          timeout_summary=f"{d.key} {step.id}: wait for {document_id}")
        except TimeoutError:
            return {**requested, "status": "unknown"}, f"request_signature {template}: no end heard"
        event = ended()
        if event is None:
            self._check_exit()
            return requested, f"request_signature {template}: interrupted"
        status = event["data"].get("status") or event["name"].removeprefix("document.")
        self._stale = True  # a completed document may have changed what the deal's view says
        return {**requested, **event["data"], "status": status}, f"request_signature {template}: {status}"

    async def _activity(self, name: str, argument: Any, result_type: type, call: _Call) -> Any:
        return await workflow.execute_activity(name, argument, result_type=result_type,
                                               start_to_close_timeout=call.timeout, retry_policy=call.retry)
