"""A deal's analysis: every figure of scoring/deal_math.py its numbers allow, each with the formula and the
values it was worked from, and for each figure it cannot give, what is missing.

`DealNumbers` carries the inputs with their bounds (the API's `POST /analysis` body is this model);
`analyse(numbers)` answers an `Analysis`; `deal_numbers(opportunity)` reads a saved deal's prices and costs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from models.opportunity import Opportunity
from scoring import deal_math as dm

MAX_MONEY = Decimal("999999999999.99")  # the money columns' Numeric(14, 2)
Money = Annotated[Decimal, Field(ge=0, le=MAX_MONEY, decimal_places=2, allow_inf_nan=False)]
SignedMoney = Annotated[Decimal, Field(ge=-MAX_MONEY, le=MAX_MONEY, decimal_places=2, allow_inf_nan=False)]
MAX_CASH_FLOWS = 600  # 50 years of monthly flows


class ComparableSale(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sale_price: Money = Field(gt=0)
    sqft: int = Field(gt=0, le=1_000_000)
    adjustment: SignedMoney = Field(default=Decimal(0), description="dollars added to (or taken from) the comp's "
                                    "price to bring it to the subject: positive when the comp is worse")
    address: str | None = Field(default=None, max_length=400)


class DatedCashFlow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date: date
    amount: SignedMoney

    @field_validator("date")
    @classmethod
    def _plausible(cls, value: date) -> date:
        if not date(1900, 1, 1) <= value <= date(2200, 12, 31):
            raise ValueError("must be between 1900-01-01 and 2200-12-31")
        return value


def _sign_change(amounts: list[Decimal], field: str) -> None:
    try:
        dm.check_sign_change(amounts, field)
    except dm.DealMathError as exc:
        raise ValueError(exc.message) from None


class DealNumbers(BaseModel):
    """A deal's numbers, all optional: what is given is used, what is missing is named in `unavailable`.
    Money is dollars with at most 2 decimals; rates are fractions (0.70 for 70 %, 0.065 for 6.5 %)."""

    model_config = ConfigDict(extra="forbid")

    # prices and costs (a saved deal records these)
    asking_price: Money | None = None
    offer_price: Money | None = None
    purchase_price: Money | None = Field(default=None, description="the contract price")
    sale_price: Money | None = Field(default=None, description="resale price (a flip)")
    assignment_fee: Money | None = Field(default=None, description="what the end buyer pays us for the contract")
    closing_costs: Money | None = None
    repair_estimate: Money | None = None
    repairs_spent: Money | None = None
    # valuation
    arv: Money | None = Field(default=None, description="after-repair value as estimated; else from comparables")
    comparables: list[ComparableSale] | None = Field(default=None, max_length=50)
    subject_sqft: int | None = Field(default=None, gt=0, le=1_000_000)
    mao_percentage: Decimal = Field(default=dm.DEFAULT_MAO_PERCENTAGE, gt=0, le=1, decimal_places=4)
    wholesale_fee: Money = Decimal(0)
    # income property (annual figures)
    gross_annual_income: Money | None = None
    vacancy_rate: Decimal = Field(default=Decimal(0), ge=0, lt=1, decimal_places=4)
    annual_operating_expenses: Money | None = None
    annual_debt_service: Money | None = Field(default=None, description="0 for an all-cash deal")
    loan_amount: Money | None = None
    interest_rate: Decimal | None = Field(default=None, ge=0, le=1, decimal_places=6)
    amortization_years: int | None = Field(default=None, ge=1, le=50)
    cash_invested: Money | None = None
    # returns over the hold
    cash_flows: Annotated[list[SignedMoney] | None, Field(min_length=2, max_length=MAX_CASH_FLOWS)] = Field(
        default=None, description="evenly spaced cash flows, period 0 first, outflows negative (IRR per period)")
    dated_cash_flows: list[DatedCashFlow] | None = Field(default=None, min_length=2, max_length=MAX_CASH_FLOWS)
    total_distributions: Money | None = None
    equity_invested: Money | None = None

    @field_validator("cash_flows")
    @classmethod
    def _flows_change_sign(cls, flows: list[Decimal] | None) -> list[Decimal] | None:
        if flows is not None:
            _sign_change(flows, "cash_flows")
        return flows

    @field_validator("dated_cash_flows")
    @classmethod
    def _dated_change_sign(cls, flows: list[DatedCashFlow] | None) -> list[DatedCashFlow] | None:
        if flows is not None:
            _sign_change([f.amount for f in flows], "dated_cash_flows")
            if len({f.date for f in flows}) == 1:
                raise ValueError("the cash flows must not all fall on one date")
        return flows

    @field_validator("comparables")
    @classmethod
    def _comps_stay_positive(cls, comps: list[ComparableSale] | None) -> list[ComparableSale] | None:
        for i, comp in enumerate(comps or []):
            if comp.sale_price + comp.adjustment <= 0:
                raise ValueError(f"comparable {i}: the adjustment leaves a price of {comp.sale_price + comp.adjustment}"
                                 ", not above 0")
        return comps


class Metric(BaseModel):
    value: Decimal
    unit: Literal["money", "ratio", "rate"]  # money: dollars; ratio: 0.074 = 7.4 % (or 1.2×); rate: per year/period
    formula: str  # the formula with the values it was worked from


class Analysis(BaseModel):
    metrics: dict[str, Metric] = Field(default_factory=dict)
    unavailable: dict[str, str] = Field(default_factory=dict, description="metric -> what it needs")


METRICS = ("arv_from_comparables", "arv", "mao", "flip_profit", "flip_roi", "noi", "cap_rate",
           "annual_debt_service", "dscr", "annual_cash_flow", "cash_on_cash", "equity_multiple", "irr", "xirr")


def _n(value: Decimal) -> str:
    return f"{value:,.2f}"


def _pct(value: Decimal) -> str:
    return f"{(value * 100).normalize():f} %"


def analyse(numbers: DealNumbers) -> Analysis:
    """Every metric the numbers allow, in METRICS order; the others in `unavailable` with what they need."""
    result = Analysis()
    n = numbers

    def put(name: str, unit: str, work: Callable[[], tuple[Decimal, str] | str]) -> Decimal | None:
        try:
            answer = work()
        except dm.DealMathError as exc:
            result.unavailable[name] = str(exc)
            return None
        if isinstance(answer, str):
            result.unavailable[name] = answer
            return None
        value, formula = answer
        result.metrics[name] = Metric(value=value, unit=unit, formula=formula)
        return value

    def arv_comps():
        if not n.comparables or not n.subject_sqft:
            return "needs comparables and subject_sqft"
        comps = [dm.Comparable(c.sale_price, c.sqft, c.adjustment) for c in n.comparables]
        estimate = dm.arv_from_comparables(comps, n.subject_sqft)
        return estimate.value, (f"median adjusted price per sqft of {estimate.comparables} comparable(s) × subject "
                                f"sqft = {_n(estimate.price_per_sqft)} × {n.subject_sqft:,}")

    from_comps = put("arv_from_comparables", "money", arv_comps)
    arv = put("arv", "money", lambda: (dm.money(n.arv), "as estimated") if n.arv is not None else
              (from_comps, "from comparables") if from_comps is not None else
              "needs arv, or comparables and subject_sqft")

    put("mao", "money", lambda: "needs arv and repair_estimate" if arv is None or n.repair_estimate is None else (
        dm.max_allowable_offer(arv, n.repair_estimate, n.mao_percentage, n.wholesale_fee),
        f"ARV × {_pct(n.mao_percentage)} − repairs − wholesale fee = {_n(arv)} × {n.mao_percentage} − "
        f"{_n(n.repair_estimate)} − {_n(n.wholesale_fee)}"))

    repairs = n.repairs_spent if n.repairs_spent is not None else n.repair_estimate
    closing = n.closing_costs if n.closing_costs is not None else Decimal(0)
    price = n.purchase_price

    def flip_profit():
        if n.sale_price is None or price is None or repairs is None:
            return "needs sale_price, purchase_price and repairs_spent (or repair_estimate)"
        return (dm.money(n.sale_price - price - repairs - closing),
                f"sale price − purchase price − repairs − closing costs = {_n(n.sale_price)} − {_n(price)} − "
                f"{_n(repairs)} − {_n(closing)}")

    profit = put("flip_profit", "money", flip_profit)

    def flip_roi():
        if profit is None:
            return "needs flip_profit"
        cost = price + repairs + closing
        if cost <= 0:
            return "the purchase price, repairs and closing costs add up to 0: no return on nothing"
        return (dm.ratio(profit / cost),
                f"flip profit / (purchase price + repairs + closing costs) = {_n(profit)} / {_n(cost)}")

    put("flip_roi", "ratio", flip_roi)

    noi = put("noi", "money", lambda: "needs gross_annual_income and annual_operating_expenses"
              if n.gross_annual_income is None or n.annual_operating_expenses is None else (
                  dm.net_operating_income(n.gross_annual_income, n.annual_operating_expenses, n.vacancy_rate),
                  f"gross income × (1 − vacancy) − operating expenses = {_n(n.gross_annual_income)} × "
                  f"(1 − {n.vacancy_rate}) − {_n(n.annual_operating_expenses)}"))

    value_name, value = next(((name, v) for name, v in (("purchase price", n.purchase_price),
                                                        ("offer price", n.offer_price),
                                                        ("asking price", n.asking_price)) if v), (None, None))
    put("cap_rate", "ratio", lambda: "needs noi and a purchase_price (or offer_price or asking_price)"
        if noi is None or value is None else (dm.cap_rate(noi, value), f"NOI / {value_name} = {_n(noi)} / {_n(value)}"))

    def debt_service():
        if n.annual_debt_service is not None:
            return dm.money(n.annual_debt_service), "as given"
        if n.loan_amount is None or n.interest_rate is None or n.amortization_years is None:
            return "needs annual_debt_service (0 for an all-cash deal), or loan_amount, interest_rate and " \
                   "amortization_years"
        return (dm.annual_debt_service(n.loan_amount, n.interest_rate, n.amortization_years),
                f"12 × monthly payment of {_n(n.loan_amount)} at {_pct(n.interest_rate)} a year over "
                f"{n.amortization_years} years")

    service = put("annual_debt_service", "money", debt_service)
    put("dscr", "ratio", lambda: "needs noi and annual_debt_service" if noi is None or service is None else
        "the deal has no debt service (all cash): DSCR is undefined" if service == 0 else
        (dm.debt_service_coverage_ratio(noi, service), f"NOI / annual debt service = {_n(noi)} / {_n(service)}"))
    cash_flow = put("annual_cash_flow", "money", lambda: "needs noi and annual_debt_service"
                    if noi is None or service is None else
                    (dm.money(noi - service), f"NOI − annual debt service = {_n(noi)} − {_n(service)}"))

    def invested() -> tuple[Decimal, str] | str:
        if n.cash_invested is not None:
            return n.cash_invested, "as given"
        if price is None or (n.loan_amount is None and service != 0):
            return "needs cash_invested, or purchase_price with loan_amount (or annual_debt_service 0 for all cash)"
        loan = n.loan_amount or Decimal(0)
        total = price + closing + (repairs or Decimal(0)) - loan
        return total, (f"purchase price + closing costs + repairs − loan = {_n(price)} + {_n(closing)} + "
                       f"{_n(repairs or Decimal(0))} − {_n(loan)}")

    def coc():
        if cash_flow is None:
            return "needs annual_cash_flow"
        spent = invested()
        if isinstance(spent, str):
            return spent
        return (dm.cash_on_cash(cash_flow, spent[0]),
                f"annual cash flow / cash invested = {_n(cash_flow)} / {_n(spent[0])} ({spent[1]})")

    put("cash_on_cash", "ratio", coc)

    def multiple():
        if n.total_distributions is not None and n.equity_invested is not None:
            return (dm.equity_multiple(n.total_distributions, n.equity_invested),
                    f"total distributions / equity invested = {_n(n.total_distributions)} / {_n(n.equity_invested)}")
        flows = n.cash_flows or ([f.amount for f in n.dated_cash_flows] if n.dated_cash_flows else None)
        if flows:
            back, paid = sum(a for a in flows if a > 0), -sum(a for a in flows if a < 0)
            return dm.equity_multiple_of(flows), f"cash returned / cash invested = {_n(back)} / {_n(paid)}"
        return "needs total_distributions and equity_invested, or cash_flows"

    put("equity_multiple", "ratio", multiple)
    put("irr", "rate", lambda: "needs cash_flows (evenly spaced, period 0 first)" if not n.cash_flows else
        (dm.irr(n.cash_flows), f"the rate per period where the {len(n.cash_flows)} cash flows' present value is 0"))
    put("xirr", "rate", lambda: "needs dated_cash_flows" if not n.dated_cash_flows else
        (dm.xirr([(f.date, f.amount) for f in n.dated_cash_flows]),
         f"the annual rate (actual/365) where the {len(n.dated_cash_flows)} dated cash flows' present value is 0"))
    return result


def deal_numbers(deal: Opportunity) -> DealNumbers:
    """The saved deal's prices and costs as analysis inputs (the contract price is the purchase price). Not
    validated: a stored value out of bounds makes its metrics unavailable, with the reason, instead of failing
    the deal's view."""
    return DealNumbers.model_construct(
        asking_price=deal.asking_price, offer_price=deal.offer_price, purchase_price=deal.contract_price,
        sale_price=deal.sale_price, assignment_fee=deal.assignment_fee, closing_costs=deal.closing_costs,
        repair_estimate=deal.repair_estimate, repairs_spent=deal.repairs_spent, arv=deal.arv)


def analyse_deal(deal: Opportunity) -> Analysis:
    """The analysis of a saved deal, for its view (GET /opportunities/{id})."""
    return analyse(deal_numbers(deal))


def gross_profit(deal: Opportunity) -> Metric | str:
    """A won deal's gross profit, as its flip profit: the sale price — or, for an assigned contract without one,
    the assignment price (contract price + assignment fee) — minus the purchase (contract) price, the repairs
    spent and the closing costs. Only recorded costs: the repair estimate is not one, and a cost not recorded is
    0. What the figure cannot be worked from is answered as a reason instead."""
    numbers = deal_numbers(deal)
    sale = deal.sale_price
    if sale is None and deal.assignment_fee is not None and deal.contract_price is not None:
        sale = deal.contract_price + deal.assignment_fee
    if sale is None:
        return "needs a sale_price, or a contract_price and an assignment_fee"
    if deal.contract_price is None:
        return "needs a contract_price (the purchase price)"
    analysis = analyse(numbers.model_copy(update={"sale_price": sale, "repairs_spent": deal.repairs_spent or
                                                  Decimal(0)}))
    return analysis.metrics.get("flip_profit") or analysis.unavailable["flip_profit"]
