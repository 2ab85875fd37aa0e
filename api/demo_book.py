"""A realistic demo book (leads, investors, deals) so a fresh `dealflow up --demo` has something to show.

Leads go through the same intake as POST /leads (normalisation, dedupe, the event the relay starts
LeadWorkflow from);
investors and deals are written directly. Seeding twice adds nothing (leads dedupe, the rest is keyed).
"""

from __future__ import annotations

import random
from decimal import Decimal

from models.base import utcnow
from models.event import DEAL_OPENED_EVENT, emit
from services.deals import deal_workflow_id
from sqlmodel import Session, select

from services.lead_intake import receive_lead
from models.investor import BuyBox, Investor
from models.lead import Lead, LeadCreate
from models.opportunity import Opportunity, Pipeline, StageChange

FIRST = ["Maria", "James", "Linda", "Robert", "Patricia", "Michael", "Barbara", "William", "Elizabeth", "David",
         "Jennifer", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen", "Daniel"]
LAST = ["Garcia", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Rodriguez", "Martinez", "Wilson",
        "Anderson", "Taylor", "Thomas", "Moore", "Jackson", "Martin", "Lee", "Thompson", "White", "Harris"]
STREETS = ["Oak Ridge Dr", "Maple Ave", "Pecan St", "Live Oak Ln", "Magnolia Blvd", "Cedar Creek Rd",
           "Sunset Trl", "Willow Bend Dr", "Hickory Hollow Ln", "Bluebonnet Way", "Peachtree St", "Lakeview Ct"]
CITIES = [("Austin", "TX", "787", "512"), ("San Antonio", "TX", "782", "210"), ("Houston", "TX", "770", "713"),
          ("Tampa", "FL", "336", "813"), ("Jacksonville", "FL", "322", "904"), ("Atlanta", "GA", "303", "404"),
          ("Columbus", "OH", "432", "614"), ("Memphis", "TN", "381", "901")]
SOURCES = ["web_form", "direct_mail", "cold_call", "ppc", "driving_for_dollars", "referral"]
NOTES = ["Inherited the house, lives out of state", "Behind on payments, wants to avoid foreclosure",
         "Tired landlord, tenant moving out next month", "Needs roof and HVAC, can't afford repairs",
         "Divorce, both parties want a quick sale", "Relocating for work in 60 days", None, None]
INVESTORS = [
    ("Lone Star Capital Partners", "rental", ["TX"], 150_000, 400_000, True),
    ("Gulf Coast Flippers LLC", "flip", ["FL", "TX"], 80_000, 250_000, True),
    ("Peach State Holdings", "rental", ["GA", "TN"], 100_000, 300_000, True),
    ("Buckeye BRRRR Fund", "brrrr", ["OH"], 60_000, 180_000, False),
    ("Sunbelt Wholesale Buyers", "wholesale", ["TX", "FL", "GA"], 50_000, 500_000, True),
    ("Maria Chen (private lender)", "lending", ["TX"], 100_000, 600_000, True),
]


def _demo_leads(count: int, rng: random.Random) -> list[LeadCreate]:
    leads = []
    for i in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        city, state, zip3, area = rng.choice(CITIES)
        leads.append(LeadCreate(
            first_name=first, last_name=last,
            email=f"{first}.{last}{i}@example.com".lower() if rng.random() < 0.8 else None,
            phone=f"({area}) 555-01{i % 100:02d}",
            source=rng.choice(SOURCES),
            property_address=f"{rng.randint(100, 9899)} {rng.choice(STREETS)}, {city}, {state} "
                             f"{zip3}{rng.randint(10, 99)}",
            notes=rng.choice(NOTES),
            tags=rng.sample(["absentee", "vacant", "probate", "pre-foreclosure", "tired-landlord", "high-equity"],
                            k=rng.randint(0, 2)),
        ))
    return leads


def seed_demo_book(session: Session, tenant_id: str, leads: int = 40, progress=None) -> dict[str, int]:
    rng = random.Random(20261129)
    created = 0
    for body in _demo_leads(leads, rng):
        lead, duplicate = receive_lead(session, tenant_id, "key:demo-seed", body, channel="demo")
        created += 0 if duplicate else 1
        if progress:
            progress()

    investors = 0
    for name, strategy, states, low, high, accredited in INVESTORS:
        if session.exec(select(Investor).where(Investor.tenant_id == tenant_id, Investor.name == name)).first():
            continue
        session.add(Investor(
            tenant_id=tenant_id, name=name, email=f"acquisitions@{name.split()[0].lower()}-demo.example.com",
            accredited=accredited, accreditation_method="net_worth" if accredited else None,
            preferences=BuyBox(markets=states, strategies=[strategy], price_min=low,
                               price_max=high).model_dump(mode="json", exclude_none=True),
            capital_available=Decimal(high) * 3,
        ))
        investors += 1

    deals = 0
    stages = ["contacted", "appointment_set", "offer_made", "under_contract", "closed_won"]
    originals = session.exec(select(Lead).where(Lead.tenant_id == tenant_id, Lead.duplicate_of == None)  # noqa: E711
                             .order_by(Lead.created_at).limit(len(stages))).all()
    for lead, stage in zip(originals, stages, strict=False):
        if session.exec(select(Opportunity).where(Opportunity.lead_id == lead.id)).first():
            continue
        asking = Decimal(rng.randrange(90_000, 320_000, 5_000))
        deal = Opportunity(
            tenant_id=tenant_id, lead_id=lead.id, property_id=lead.property_id, pipeline=Pipeline.acquisition,
            title=lead.property_address or f"{lead.first_name} {lead.last_name}", stage=stage,
            asking_price=asking, arv=(asking * Decimal("1.35")).quantize(Decimal("1")),
            repair_estimate=Decimal(rng.randrange(10_000, 60_000, 2_500)),
            offer_price=(asking * Decimal("0.72")).quantize(Decimal("1")) if stage != "contacted" else None,
        )
        if stage in ("under_contract", "closed_won"):
            deal.contract_price = deal.offer_price
        deal.closed_at = utcnow() if stage == "closed_won" else None
        deal.workflow_id = deal_workflow_id(tenant_id, deal.id) if stage != "closed_won" else None
        session.add(deal)
        session.flush()
        session.add(StageChange(opportunity_id=deal.id, from_stage=None, to_stage=stage, actor="demo-seed"))
        if deal.workflow_id:  # the relay starts its DealWorkflow in that stage: the demo deals move like real ones
            emit(session, tenant_id=tenant_id, subject_type="deal", subject_id=deal.id, name=DEAL_OPENED_EVENT,
                 event_id=f"{deal.id}:opened", data={"pipeline": deal.pipeline, "stage": stage,
                                                     "workflow_id": deal.workflow_id}, new_subject=True)
        deals += 1
    session.commit()
    return {"leads": created, "investors": investors, "opportunities": deals}
