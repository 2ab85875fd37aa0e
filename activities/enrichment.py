"""Enrichment activities: each source is one activity so it retries (and fails) on its own."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, or_
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.rows import owned

from models.base import utcnow
from models.lead import Lead, Property
from models.payloads import EnrichmentInput, EnrichmentResult, PropertyLookup, SourceOutcome
from models.timeline import TimelineEntry
from providers.enrichment import (
    CountyRecordsSource, PropertyApiSource, SourceError, StandardAddress, email_facts, phone_facts, standardize,
)


def _source_failure(exc: SourceError) -> ApplicationError:
    delay = timedelta(seconds=exc.retry_after) if exc.retry_after else None
    return ApplicationError(str(exc), type="SourceUnavailable" if exc.retryable else "SourceRefused",
                            non_retryable=not exc.retryable, next_retry_delay=delay)


class EnrichmentActivities:
    def __init__(self, engine: Engine, county: CountyRecordsSource, api: PropertyApiSource | None) -> None:
        self._engine, self._county, self._api = engine, county, api

    def _lead(self, session: Session, tenant_id: str, lead_id: str) -> Lead:
        return owned(session, Lead, lead_id, tenant_id, "lead")

    @activity.defn
    def validate_contact(self, request: EnrichmentInput) -> dict[str, Any]:
        with Session(self._engine) as session:
            lead = self._lead(session, request.tenant_id, request.lead_id)
            return {"email": email_facts(lead.email), "phone": phone_facts(lead.phone)}

    @activity.defn
    def standardize_address(self, request: EnrichmentInput) -> dict[str, Any] | None:
        with Session(self._engine) as session:
            lead = self._lead(session, request.tenant_id, request.lead_id)
            if not lead.property_address:
                return None
        try:
            return standardize(lead.property_address).as_dict()
        except ValueError as exc:  # unparseable data is a result, not a retry loop
            raise ApplicationError(str(exc), type="BadAddress", non_retryable=True) from None

    @activity.defn
    def lookup_county_records(self, request: PropertyLookup) -> SourceOutcome:
        return _outcome(self._county.lookup(request.tenant_id, _address(request.address)))

    @activity.defn
    def lookup_property_api(self, request: PropertyLookup) -> SourceOutcome:
        if self._api is None:
            return SourceOutcome(status="disabled", error="no property API configured (DEALFLOW_PROPERTY_API_URL)")
        try:
            return _outcome(self._api.lookup(request.tenant_id, _address(request.address)))
        except SourceError as exc:
            raise _source_failure(exc) from None

    @activity.defn
    def save_enrichment(self, result: EnrichmentResult) -> None:
        """Store the result on the lead and its property; record `lead.enriched` once per run."""
        with Session(self._engine) as session:
            lead = session.get(Lead, result.lead_id)
            if lead is None:
                return
            lead.enrichment = result.model_dump(mode="json", exclude={"lead_id"})
            lead.enriched_at = utcnow()
            facts = result.facts
            if lead.property_id and facts:
                prop = session.get(Property, lead.property_id)
                for key in ("owner_name", "property_type", "beds", "baths", "sqft", "year_built", "apn", "county"):
                    if facts.get(key) is not None:
                        setattr(prop, key, facts[key])
                prop.facts = {**prop.facts, **facts}
                session.add(prop)
            session.add(lead)
            key = f"{lead.id}:lead.enriched:{activity.info().workflow_run_id}"
            if not session.exec(select(TimelineEntry).where(TimelineEntry.idempotency_key == key)).first():
                outcome = ", ".join(f"{name} {o.status}" for name, o in result.sources.items())
                session.add(TimelineEntry(tenant_id=lead.tenant_id, lead_id=lead.id, kind="lead.enriched",
                                          summary=f"Enriched ({outcome or 'no sources'})"
                                                  + (" — partial" if result.partial else ""),
                                          data={"partial": result.partial, "sources": {
                                              n: o.status for n, o in result.sources.items()}},
                                          workflow_id=activity.info().workflow_id, idempotency_key=key))
            session.commit()

    @activity.defn
    def link_duplicates(self, request: EnrichmentInput) -> str | None:
        """After enrichment: the same owner at the same address, or the same phone, is the same person.
        The newer lead is linked to the earliest one (kept, never deleted); returns the original's id."""
        with Session(self._engine) as session:
            lead = self._lead(session, request.tenant_id, request.lead_id)
            if lead.duplicate_of:
                return lead.duplicate_of
            owner = ((lead.enrichment or {}).get("facts") or {}).get("owner_name")
            address_key = ((lead.enrichment or {}).get("address") or {}).get("key")
            matches = []
            if lead.phone:
                matches.append(Lead.phone == lead.phone)
            query = (select(Lead).where(Lead.tenant_id == lead.tenant_id, Lead.id != lead.id,
                                        col(Lead.duplicate_of).is_(None), col(Lead.deleted_at).is_(None),
                                        col(Lead.created_at) <= lead.created_at)
                     .order_by(col(Lead.created_at), col(Lead.id)))
            candidates = session.exec(query.where(or_(*matches))).all() if matches else []
            if not candidates and owner and address_key:
                for other in session.exec(query.where(col(Lead.enrichment).is_not(None))).all():
                    enrichment = other.enrichment or {}
                    if ((enrichment.get("address") or {}).get("key") == address_key
                            and (enrichment.get("facts") or {}).get("owner_name") == owner):
                        candidates = [other]
                        break
            if not candidates:
                return None
            original = candidates[0]
            lead.duplicate_of, lead.workflow_id = original.id, original.workflow_id
            session.add(lead)
            for subject, other in ((lead, original), (original, lead)):
                session.add(TimelineEntry(
                    tenant_id=lead.tenant_id, lead_id=subject.id, kind="lead.duplicate_linked",
                    summary=f"Linked as the same person as {other.id}", data={"original": original.id,
                                                                               "duplicate": lead.id},
                    idempotency_key=f"{lead.id}:duplicate_linked:{subject.id}"))
            session.commit()
            return original.id


def _outcome(facts: dict[str, Any] | None) -> SourceOutcome:
    return SourceOutcome(status="ok", facts=facts) if facts else SourceOutcome(status="no_match")


def _address(data: dict[str, Any]) -> StandardAddress:
    return StandardAddress(line1=data["line1"], line2=data.get("line2"), city=data["city"], state=data["state"],
                           zip=data["zip"])
