"""EnrichmentWorkflow (child of LeadWorkflow): validate contact, standardise the address, ask every
property source in parallel, keep what succeeded (a failed source leaves a recorded partial result),
save, then link duplicates."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from models.payloads import EnrichmentInput, EnrichmentResult, PropertyLookup, SourceOutcome

# Our own database: a hiccup is retried for about twelve minutes (1 s doubling to 30 s, 30 attempts), so a
# database restart does not park the lead in needs_review; NotFound and BadAddress are final at once.
LOCAL = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30),
                    maximum_attempts=30, non_retryable_error_types=["NotFound", "BadAddress"])
# Remote sources: a few tries with backoff (a 429 sets its own delay), then the result is partial.
REMOTE = RetryPolicy(initial_interval=timedelta(seconds=2), backoff_coefficient=2.0,
                     maximum_interval=timedelta(minutes=1), maximum_attempts=4,
                     non_retryable_error_types=["SourceRefused"])
SOURCES = ("county_records", "property_api")  # order = precedence when facts disagree


def _reason(exc: BaseException) -> str:
    cause = exc.cause if isinstance(exc, ActivityError) and exc.cause else exc
    return cause.message if isinstance(cause, ApplicationError) else str(cause)


@workflow.defn
class EnrichmentWorkflow:
    @workflow.run
    async def run(self, request: EnrichmentInput) -> EnrichmentResult:
        result = EnrichmentResult(lead_id=request.lead_id)
        contact, address = await asyncio.gather(
            workflow.execute_activity("validate_contact", request, result_type=dict,
                                      start_to_close_timeout=timedelta(seconds=30), retry_policy=LOCAL),
            workflow.execute_activity("standardize_address", request, result_type=dict | None,
                                      start_to_close_timeout=timedelta(seconds=30), retry_policy=LOCAL),
            return_exceptions=True)
        if isinstance(contact, BaseException):
            result.sources["contact"] = SourceOutcome(status="failed", error=_reason(contact))
        else:
            result.contact = contact
        if isinstance(address, BaseException):
            result.sources["address"] = SourceOutcome(status="failed", error=_reason(address))
        else:
            result.address = address

        if result.address:
            lookup = PropertyLookup(tenant_id=request.tenant_id, lead_id=request.lead_id, address=result.address)
            answers = await asyncio.gather(*(
                workflow.execute_activity(f"lookup_{name}", lookup, result_type=SourceOutcome,
                                          start_to_close_timeout=timedelta(seconds=30), retry_policy=REMOTE,
                                          summary=f"property facts from {name}")
                for name in SOURCES), return_exceptions=True)
            for name, answer in zip(SOURCES, answers, strict=True):
                if isinstance(answer, BaseException):
                    result.sources[name] = SourceOutcome(status="failed", error=_reason(answer))
                else:
                    result.sources[name] = answer
            for name in reversed(SOURCES):  # earlier sources win
                result.facts.update({k: v for k, v in result.sources[name].facts.items() if v is not None})
        else:
            for name in SOURCES:
                result.sources[name] = SourceOutcome(status="skipped", error="no usable property address")
        result.partial = any(o.status == "failed" for o in result.sources.values())

        await workflow.execute_activity("save_enrichment", result, start_to_close_timeout=timedelta(seconds=30),
                                        retry_policy=LOCAL)
        result.duplicate_of = await workflow.execute_activity(
            "link_duplicates", request, result_type=str | None, start_to_close_timeout=timedelta(seconds=30),
            retry_policy=LOCAL)
        return result
