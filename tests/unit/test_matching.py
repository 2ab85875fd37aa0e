"""Investor matching against buy boxes: who fits a deal, why, and in what order."""

from __future__ import annotations

from decimal import Decimal

from models.investor import Investor
from models.lead import Property
from services.matching import fit
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


def test_an_open_raise_excludes_the_ineligible_and_checks_that_cannot_fit():
    from datetime import UTC, datetime, timedelta

    from services.matching import Context, Raise

    now = datetime(2026, 12, 2, tzinfo=UTC)
    raise_ = Raise(rule="506c", minimum=Decimal("50000"), remaining=Decimal("150000"))
    ada = investor(id="iv_ada", name="Ada", check_min=Decimal("50000"), check_max=Decimal("250000"),
                   preferences={"markets": ["TX"], "target_return": "0.12"})
    context = Context(raise_=raise_, eligibility={"iv_ada": None}, projected_return=Decimal("0.141"),
                      past_investments={"iv_ada": 2}, last_reply={"iv_ada": now - timedelta(days=12)}, now=now)
    found = fit(ada, DEAL, PROP, context)
    assert found.reasons == ["buys in TX", "check size $50,000–$250,000 fits (minimum $50,000, $150,000 left)",
                             "target 12 % vs projected 14.1 %", "invested in 2 deals with us before",
                             "last replied 12 days ago"]
    assert (found.points, found.possible) == (5, 9) and found.score == 0.56
    # hard constraints: not verified for a 506(c) raise; checks too small for the minimum or too big for what is left
    assert fit(ada, DEAL, PROP, Context(raise_=raise_, eligibility={"iv_ada": "only self-certified"})) is None
    small = investor(id="iv_s", check_max=Decimal("25000"))
    big = investor(id="iv_b", check_min=Decimal("200000"))
    assert fit(small, DEAL, PROP, Context(raise_=raise_, eligibility={"iv_s": None})) is None
    assert fit(big, DEAL, PROP, Context(raise_=raise_, eligibility={"iv_b": None})) is None
    # a missed target and an old reply earn nothing but still say why
    late = fit(investor(id="iv_l", preferences={"target_return": 0.2}), DEAL, PROP, Context(
        projected_return=Decimal("0.141"), last_reply={"iv_l": now - timedelta(days=90)}, now=now))
    assert late.reasons == ["target 20 % vs projected 14.1 %", "last replied 90 days ago"]
    assert (late.points, late.possible) == (0, 8)
