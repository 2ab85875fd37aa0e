"""Investor matching against buy boxes: who fits a deal, why, and in what order."""

from __future__ import annotations

from decimal import Decimal

from models.investor import Investor
from models.lead import Property
from models.matching import fit
from models.opportunity import Opportunity

PROP = Property(tenant_id="t", street="4500 Oak Ridge Dr", city="Austin", state="TX", zip="78731",
                normalized_address="4500 OAK RIDGE DR, AUSTIN, TX 78731", property_type="single_family")
DEAL = Opportunity(tenant_id="t", title="Oak Ridge", asking_price=Decimal("310000"), contract_price=Decimal("285000"))


def investor(**fields) -> Investor:
    return Investor(tenant_id="t", name=fields.pop("name", "Dana"), **fields)


def test_a_precise_buy_box_that_fits_earns_every_point_with_reasons():
    found = fit(investor(accredited=True, capital_available=Decimal("400000"),
                         preferences={"markets": ["TX"], "price_min": 150000, "price_max": 300000,
                                      "property_types": ["single_family", "duplex"]}), DEAL, PROP)
    assert found.score == 1.0
    assert found.reasons == ["buys in TX", "$285,000 within $150,000–$300,000", "buys single_family",
                             "$400,000 available", "accredited"]


def test_anything_anywhere_fits_but_ranks_low():
    found = fit(investor(), DEAL, PROP)
    assert found is not None and found.score == 0.0 and found.reasons == []


def test_each_criterion_can_exclude():
    assert fit(investor(preferences={"markets": ["FL", "30301"]}), DEAL, PROP) is None
    assert fit(investor(preferences={"markets": ["78731"]}), DEAL, PROP).reasons == ["buys in 78731"]
    assert fit(investor(preferences={"price_max": 250000}), DEAL, PROP) is None  # the contract price counts
    assert fit(investor(preferences={"property_types": ["multifamily"]}), DEAL, PROP) is None
    assert fit(investor(capital_available=Decimal("100000")), DEAL, PROP) is None


def test_what_the_deal_cannot_be_checked_against_does_not_exclude():
    unknown = Opportunity(tenant_id="t", title="No price yet")
    found = fit(investor(preferences={"markets": ["TX"], "price_max": 100}), unknown, None)
    assert found is not None and found.points == 0
