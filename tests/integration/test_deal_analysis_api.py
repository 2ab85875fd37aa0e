"""POST /api/v1/analysis over HTTP (every metric it can, the others with what they need, 422 naming the field for
bad input) and the analysis in a saved deal's view."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlmodel import Session

from models.opportunity import Opportunity
from models.tenant import Role

PROBLEM = "application/problem+json"


async def test_the_analysis_of_unsaved_numbers(api, make_key):
    headers = make_key(Role.readonly)  # nothing is stored: any key may ask
    body = {
        "arv": "300000", "repair_estimate": "50000", "mao_percentage": "0.70",
        "purchase_price": "150000", "closing_costs": "6000", "sale_price": "300000", "repairs_spent": "52000",
        "gross_annual_income": "36000", "vacancy_rate": "0.05", "annual_operating_expenses": "12000",
        "annual_debt_service": "18500", "cash_invested": "74000",
        "cash_flows": ["-100", "110"],
        "dated_cash_flows": [{"date": "2008-01-01", "amount": "-10000"}, {"date": "2008-03-01", "amount": "2750"},
                             {"date": "2008-10-30", "amount": "4250"}, {"date": "2009-02-15", "amount": "3250"},
                             {"date": "2009-04-01", "amount": "2750"}],
    }
    response = await api.post("/api/v1/analysis", json=body, headers=headers)
    assert response.status_code == 200, response.text
    metrics = response.json()["metrics"]
    value = {name: Decimal(m["value"]) for name, m in metrics.items()}
    assert value["mao"] == Decimal("160000")  # 300,000 × 0.70 − 50,000
    assert "300,000.00 × 0.70 − 50,000.00 − 0.00" in metrics["mao"]["formula"]
    assert value["flip_profit"] == Decimal("92000")  # 300,000 − 150,000 − 52,000 − 6,000
    assert value["flip_roi"] == Decimal("0.442308")  # 92,000 / 208,000
    assert value["noi"] == Decimal("22200")  # 36,000 × 0.95 − 12,000
    assert value["cap_rate"] == Decimal("0.148")  # 22,200 / 150,000 (the purchase price)
    assert value["dscr"] == Decimal("1.2")  # 22,200 / 18,500
    assert value["annual_cash_flow"] == Decimal("3700") and value["cash_on_cash"] == Decimal("0.05")
    assert value["irr"] == Decimal("0.1") and value["equity_multiple"] == Decimal("1.1")
    assert abs(value["xirr"] - Decimal("0.373362535")) < Decimal("1e-8")
    assert metrics["mao"]["unit"] == "money" and metrics["cap_rate"]["unit"] == "ratio"
    assert response.json()["unavailable"] == {"arv_from_comparables": "needs comparables and subject_sqft"}


async def test_what_cannot_be_worked_out_is_said_with_what_it_needs(api, make_key):
    response = await api.post("/api/v1/analysis", headers=make_key(Role.staff), json={
        "comparables": [{"sale_price": "250000", "sqft": 1000}, {"sale_price": "330000", "sqft": 1200,
                                                                 "adjustment": "-6000"},
                        {"sale_price": "280000", "sqft": 1100, "adjustment": "5500"}],
        "subject_sqft": 1500, "repair_estimate": "40000", "wholesale_fee": "10000",
        "gross_annual_income": "24000", "annual_operating_expenses": "9000", "annual_debt_service": "0"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert Decimal(answer["metrics"]["arv"]["value"]) == Decimal("389318.18")
    # 389,318.18 × 0.70 − 40,000 − 10,000 = 272,522.726 − 50,000 = 222,522.73
    assert Decimal(answer["metrics"]["mao"]["value"]) == Decimal("222522.73")
    assert answer["unavailable"]["dscr"] == "the deal has no debt service (all cash): DSCR is undefined"
    assert Decimal(answer["metrics"]["annual_cash_flow"]["value"]) == Decimal("15000")
    assert "purchase_price" in answer["unavailable"]["cap_rate"]
    assert set(answer["unavailable"]) >= {"flip_profit", "irr", "xirr", "equity_multiple", "cash_on_cash"}
    assert set(answer["metrics"]) | set(answer["unavailable"]) == {
        "arv_from_comparables", "arv", "mao", "flip_profit", "flip_roi", "noi", "cap_rate", "annual_debt_service",
        "dscr", "annual_cash_flow", "cash_on_cash", "equity_multiple", "irr", "xirr"}


@pytest.mark.parametrize("body, field", [
    ({"arv": "-300000"}, "arv"),
    ({"repair_estimate": "lots"}, "repair_estimate"),
    ({"arv": "300000.001"}, "arv"),  # money has cents, no more
    ({"mao_percentage": "70"}, "mao_percentage"),  # a fraction: 0.70
    ({"vacancy_rate": "1"}, "vacancy_rate"),
    ({"annual_debt_service": "-1"}, "annual_debt_service"),
    ({"asking_price": "1e30"}, "asking_price"),
    ({"asking_price": "NaN"}, "asking_price"),
    ({"cash_flows": ["100", "110"]}, "cash_flows"),  # no sign change: no rate of return
    ({"cash_flows": ["-100"]}, "cash_flows"),
    ({"dated_cash_flows": [{"date": "2020-01-01", "amount": "100"}, {"date": "2021-01-01", "amount": "5"}]},
     "dated_cash_flows"),
    ({"dated_cash_flows": [{"date": "2020-01-01", "amount": "-100"}, {"date": "2020-01-01", "amount": "110"}]},
     "dated_cash_flows"),
    ({"dated_cash_flows": [{"date": "1066-10-14", "amount": "-100"}, {"date": "2020-01-01", "amount": "110"}]},
     "dated_cash_flows.0.date"),
    ({"comparables": [{"sale_price": "0", "sqft": 1000}]}, "comparables.0.sale_price"),
    ({"comparables": [{"sale_price": "100000", "sqft": 1000, "adjustment": "-100000"}]}, "comparables"),
    ({"subject_sqft": 0}, "subject_sqft"),
    ({"amortization_years": 0}, "amortization_years"),
    ({"arv": "300000", "surprise": 1}, "surprise"),
])
async def test_bad_input_is_a_422_naming_the_field(api, make_key, body, field):
    response = await api.post("/api/v1/analysis", json=body, headers=make_key(Role.staff))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert field in [e["field"] for e in response.json()["errors"]], response.json()


async def test_the_analysis_needs_a_key(api):
    response = await api.post("/api/v1/analysis", json={"arv": "300000"})
    assert response.status_code == 401


async def test_a_saved_deal_shows_its_analysis(api, make_key, engine):
    tenant = f"an{uuid.uuid4().hex[:8]}"
    headers = make_key(Role.readonly, tenant)
    with Session(engine) as session:
        deal = Opportunity(tenant_id=tenant, title="Oak Ridge", asking_price=Decimal("210000"),
                           offer_price=Decimal("150000"), contract_price=Decimal("155000"), arv=Decimal("300000"),
                           repair_estimate=Decimal("50000"), repairs_spent=Decimal("48000"),
                           closing_costs=Decimal("7000"), sale_price=Decimal("295000"))
        session.add(deal)
        session.commit()
        deal_id = deal.id
    response = await api.get(f"/api/v1/opportunities/{deal_id}", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert Decimal(body["sale_price"]) == Decimal("295000") and Decimal(body["repairs_spent"]) == Decimal("48000")
    metrics = body["analysis"]["metrics"]
    assert Decimal(metrics["mao"]["value"]) == Decimal("160000")  # 300,000 × 0.70 − 50,000
    assert Decimal(metrics["flip_profit"]["value"]) == Decimal("85000")  # 295,000 − 155,000 − 48,000 − 7,000
    assert "gross_annual_income" in body["analysis"]["unavailable"]["noi"]
    # a saved value the math cannot take is an unavailable metric, not a broken view
    with Session(engine) as session:
        row = session.get(Opportunity, deal_id)
        row.arv = Decimal("-1")
        session.add(row)
        session.commit()
    body = (await api.get(f"/api/v1/opportunities/{deal_id}", headers=headers)).json()
    assert body["analysis"]["unavailable"]["mao"].startswith("arv: must not be negative")
    # the list stays light: no analysis per row
    listed = (await api.get("/api/v1/opportunities", headers=headers)).json()["items"]
    assert [d["analysis"] for d in listed] == [None]
