"""A document's context read from the CRM (deal, property, seller, investor, tenant) renders the templates; what
the rows lack is named before anything is made; another tenant's deal is not found."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import pytest
from sqlmodel import Session

from models.investor import Investor
from models.opportunity import Opportunity
from providers.documents.context import ContextNotFound, document_context
from providers.documents.pdf import render_document
from providers.documents.templates import MissingValues
from tests.conftest import insert_lead

TERMS = {"earnest_money": Decimal("1000"), "title_company": "Capital Title", "inspection_days": 10,
         "closing_date": "2027-02-15", "offering_name": "Oak Ridge Fund I", "memorandum_date": "2026-12-01",
         "subscription_amount": Decimal("50000"), "governing_state": "Texas"}
PROFILE = {"legal_name": "Lone Star Home Buyers LLC", "signatory_name": "Sam Ortiz",
           "signatory_title": "Managing Member"}


@pytest.fixture
def book(engine):
    tenant, lead_id = insert_lead(engine, first_name="Maria", last_name="Garcia",
                                  property={"street": "4500 Oak Ridge Dr", "unit": "B", "city": "Austin", "state": "TX",
                                            "zip": "78731", "county": "Travis", "apn": "0123-456"})
    with Session(engine) as session:
        from models.lead import Lead

        lead = session.get(Lead, lead_id)
        deal = Opportunity(tenant_id=tenant, lead_id=lead_id, property_id=lead.property_id, title="Oak Ridge",
                           contract_price=Decimal("155000"), offer_price=Decimal("150000"))
        investor = Investor(tenant_id=tenant, name="Dana Whitfield", company="Whitfield Capital LLC",
                            email=f"dana.{uuid.uuid4().hex[:6]}@example.com", accredited=True,
                            accreditation_method="net_worth")
        novice = Investor(tenant_id=tenant, name="Nick Novice", email=f"nick.{uuid.uuid4().hex[:6]}@example.com")
        session.add_all([deal, investor, novice])
        session.commit()
        return {"tenant": tenant, "deal": deal.id, "investor": investor.id, "novice": novice.id}


def test_the_purchase_agreement_from_the_crm(engine, book):
    with Session(engine) as session:
        context = document_context(session, tenant_id=book["tenant"], document_id="dc_ctx", opportunity_id=book["deal"],
                                   terms=TERMS, tenant_profile=PROFILE, today=date(2027, 1, 5))
    assert context["seller"]["name"] == "Maria Garcia"
    assert context["property"]["address"] == "4500 Oak Ridge Dr B, Austin, TX 78731"
    document = render_document("purchase_agreement", context)
    for text in ("Maria Garcia", "4500 Oak Ridge Dr B, Austin, TX 78731", "$155,000.00", "Travis County",
                 "0123-456", "Lone Star Home Buyers LLC", "January 5, 2027", "dc_ctx"):
        assert text in document.html, text


def test_what_the_crm_lacks_is_named(engine, book):
    with Session(engine) as session:
        row = session.get(Opportunity, book["deal"])
        row.contract_price = None
        session.add(row)
        session.commit()
        context = document_context(session, tenant_id=book["tenant"], document_id="dc_ctx", opportunity_id=book["deal"],
                                   terms={}, tenant_profile={})
    with pytest.raises(MissingValues) as caught:
        render_document("purchase_agreement", context)
    assert {"deal.contract_price", "terms.closing_date", "tenant.signatory_name"} <= set(caught.value.missing)
    assert "tenant.legal_name" not in caught.value.missing  # the tenant's name stands in


def test_a_subscription_needs_an_accredited_investor(engine, book):
    with Session(engine) as session:
        good = document_context(session, tenant_id=book["tenant"], document_id="dc_sub", investor_id=book["investor"],
                                terms=TERMS, tenant_profile=PROFILE)
        novice = document_context(session, tenant_id=book["tenant"], document_id="dc_sub",
                                  investor_id=book["novice"], terms=TERMS, tenant_profile=PROFILE)
    assert "because of its net worth" in render_document("subscription_agreement", good).html
    with pytest.raises(MissingValues, match=r"investor\.accreditation_method"):
        render_document("subscription_agreement", novice)


def test_another_tenants_rows_are_not_found(engine, book):
    other, _ = insert_lead(engine)
    with Session(engine) as session:
        with pytest.raises(ContextNotFound, match="opportunity"):
            document_context(session, tenant_id=other, document_id="dc_x", opportunity_id=book["deal"])
        with pytest.raises(ContextNotFound, match="investor"):
            document_context(session, tenant_id=other, document_id="dc_x", investor_id=book["investor"])
