"""Deal math on numbers that are not saved (yet): what an acquisition rep types in while on the phone."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import ConfigDict

from api.deps import PrincipalDep
from models.input import Input
from scoring.deal_analysis import Analysis, DealNumbers, analyse

router = APIRouter(prefix="/api/v1/analysis", tags=["analysis"])


class AnalysisRequest(Input, DealNumbers):
    """DealNumbers with the limits every request body obeys."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "arv": "300000", "repair_estimate": "50000", "mao_percentage": "0.70", "wholesale_fee": "10000",
        "purchase_price": "150000", "closing_costs": "6000", "gross_annual_income": "36000", "vacancy_rate": "0.05",
        "annual_operating_expenses": "12000", "loan_amount": "120000", "interest_rate": "0.065",
        "amortization_years": 30, "cash_flows": ["-40000", "3700", "3700", "62000"],
    }]})


@router.post("", response_model=Analysis)
def analyse_numbers(body: AnalysisRequest, principal: PrincipalDep) -> Analysis:
    """Every metric the numbers allow (ARV, MAO, flip profit and ROI, NOI, cap rate, debt service, DSCR, cash
    flow, cash-on-cash, equity multiple, IRR, XIRR), each with its formula and the values used; `unavailable`
    says for each other metric what it needs. Nothing is stored. Out-of-bounds input is a 422 naming the field."""
    return analyse(body)
