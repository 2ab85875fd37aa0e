"""Deal math: the figures acquisitions and investors judge a deal by, in Decimal money.

Each function states its formula. Money is `Decimal` rounded to the cent (half up, as a closing statement
rounds); ratios (cap rate, cash-on-cash, DSCR, equity multiple) are `Decimal` to 6 places; IRR and XIRR come
from pyxirr (a kept, tested solver, not one written here) and are given to 9 places, as Excel shows them.

Bad input — a negative price, a zero divisor, cash flows without both an outflow and an inflow — raises
`DealMathError` naming the input, never a ZeroDivisionError or a solver's own exception.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation
from statistics import median

import pyxirr

MONEY = Decimal("0.01")
RATIO = Decimal("0.000001")
RATE = Decimal("0.000000001")
DEFAULT_MAO_PERCENTAGE = Decimal("0.70")

Number = Decimal | int | str | float


class DealMathError(ValueError):
    """Input the formula cannot take, with the input's name (`field`) for a 422."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def to_decimal(value: Number, field: str) -> Decimal:
    """`value` as a finite Decimal (a float goes through its shortest repr: 0.1 is 0.1, not 0.1000000000000000055)."""
    if isinstance(value, bool):
        raise DealMathError(field, "must be a number")
    try:
        result = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise DealMathError(field, f"{value!r} is not a number") from None
    if not result.is_finite():
        raise DealMathError(field, "must be a finite number")
    return result


def _amount(value: Number, field: str, *, negative: bool = False, zero: bool = True) -> Decimal:
    result = to_decimal(value, field)
    if result < 0 and not negative:
        raise DealMathError(field, f"must not be negative (got {result})")
    if result == 0 and not zero:
        raise DealMathError(field, "must be more than 0")
    return result


def money(value: Decimal) -> Decimal:
    return value.quantize(MONEY, rounding=ROUND_HALF_UP)


def ratio(value: Decimal) -> Decimal:
    return value.quantize(RATIO, rounding=ROUND_HALF_EVEN)


# --- acquisition: after-repair value and the maximum allowable offer ------------------------------------------


@dataclass(frozen=True)
class Comparable:
    """A recent sale near the subject. `adjustment` is the appraiser's dollar adjustment bringing the comp to the
    subject (positive when the comp is worse — smaller lot, no garage — negative when it is better)."""

    sale_price: Number
    sqft: Number
    adjustment: Number = 0


@dataclass(frozen=True)
class ArvEstimate:
    value: Decimal
    price_per_sqft: Decimal  # the median adjusted price per square foot
    comparables: int


def arv_from_comparables(comparables: Sequence[Comparable], subject_sqft: Number) -> ArvEstimate:
    """After-repair value by the sales-comparison method:

        ARV = median over the comps of ((sale_price + adjustment) / comp_sqft) × subject_sqft

    The median rather than the mean, so one odd comp (a distressed sale, a flipped showpiece) moves it little.
    """
    sqft = _amount(subject_sqft, "subject_sqft", zero=False)
    if not comparables:
        raise DealMathError("comparables", "at least one comparable sale is needed")
    per_sqft = []
    for i, comp in enumerate(comparables):
        price = _amount(comp.sale_price, f"comparables.{i}.sale_price", zero=False)
        comp_sqft = _amount(comp.sqft, f"comparables.{i}.sqft", zero=False)
        adjusted = price + to_decimal(comp.adjustment, f"comparables.{i}.adjustment")
        if adjusted <= 0:
            raise DealMathError(f"comparables.{i}.adjustment", f"leaves an adjusted price of {adjusted}, not above 0")
        per_sqft.append(adjusted / comp_sqft)
    middle = median(per_sqft)
    return ArvEstimate(value=money(middle * sqft), price_per_sqft=money(middle), comparables=len(per_sqft))


def max_allowable_offer(arv: Number, repairs: Number, percentage: Number = DEFAULT_MAO_PERCENTAGE,
                        fee: Number = 0) -> Decimal:
    """The most to offer a seller, by the 70 % rule (the percentage and the wholesale fee are parameters):

        MAO = ARV × percentage − repairs − fee

    e.g. ARV 300,000, repairs 50,000, 70 %, no fee: 300,000 × 0.70 − 50,000 = 160,000. A negative result is
    returned as it is: at these numbers no price works.
    """
    value = _amount(arv, "arv")
    p = to_decimal(percentage, "mao_percentage")
    if not 0 < p <= 1:
        raise DealMathError("mao_percentage", f"must be a fraction above 0 and at most 1 (0.70 for 70 %), got {p}")
    return money(value * p - _amount(repairs, "repairs") - _amount(fee, "wholesale_fee"))


# --- income property: NOI, cap rate, debt, cash-on-cash, DSCR ------------------------------------------------


def net_operating_income(gross_income: Number, operating_expenses: Number, vacancy_rate: Number = 0) -> Decimal:
    """Annual net operating income (before debt service, capital expenditure and income tax):

        NOI = gross scheduled income × (1 − vacancy rate) − operating expenses
    """
    vacancy = to_decimal(vacancy_rate, "vacancy_rate")
    if not 0 <= vacancy < 1:
        raise DealMathError("vacancy_rate", f"must be a fraction from 0 up to (not including) 1, got {vacancy}")
    gross = _amount(gross_income, "gross_annual_income")
    return money(gross * (1 - vacancy) - _amount(operating_expenses, "annual_operating_expenses"))


def cap_rate(noi: Number, value: Number) -> Decimal:
    """Capitalisation rate: cap rate = NOI / property value (the purchase price for a going-in cap rate)."""
    return ratio(to_decimal(noi, "noi") / _amount(value, "value", zero=False))


def annual_debt_service(loan_amount: Number, annual_rate: Number, amortization_years: int) -> Decimal:
    """Twelve level monthly payments of a fully amortising loan:

        payment = P × r / (1 − (1 + r)^−n), r = annual rate / 12, n = years × 12 (P / n when r = 0)
        annual debt service = 12 × payment (rounded to the cent)
    """
    principal = _amount(loan_amount, "loan_amount")
    rate = to_decimal(annual_rate, "interest_rate")
    if not 0 <= rate <= 1:
        raise DealMathError("interest_rate", f"must be an annual fraction from 0 to 1 (0.065 for 6.5 %), got {rate}")
    if isinstance(amortization_years, bool) or not isinstance(amortization_years, int) or amortization_years < 1:
        raise DealMathError("amortization_years", "must be a whole number of years, at least 1")
    n = amortization_years * 12
    r = rate / 12
    payment = principal / n if r == 0 else principal * r / (1 - (1 + r) ** -n)
    return money(12 * money(payment))


def debt_service_coverage_ratio(noi: Number, debt_service: Number) -> Decimal:
    """DSCR = NOI / annual debt service (lenders usually ask for 1.20–1.25 or more)."""
    service = to_decimal(debt_service, "annual_debt_service")
    if service <= 0:
        raise DealMathError("annual_debt_service", "must be more than 0: DSCR is undefined without debt service")
    return ratio(to_decimal(noi, "noi") / service)


def cash_on_cash(annual_cash_flow: Number, cash_invested: Number) -> Decimal:
    """Cash-on-cash return = annual pre-tax cash flow / total cash invested, where the annual pre-tax cash flow is
    NOI − annual debt service and the cash invested is down payment + closing costs + repairs paid in cash."""
    return ratio(to_decimal(annual_cash_flow, "annual_cash_flow") / _amount(cash_invested, "cash_invested", zero=False))


# --- returns over the hold: equity multiple, IRR, XIRR -------------------------------------------------------


def equity_multiple(total_distributions: Number, equity_invested: Number) -> Decimal:
    """Equity multiple = total cash distributed to the investors (sale proceeds included) / equity invested."""
    return ratio(_amount(total_distributions, "total_distributions")
                 / _amount(equity_invested, "equity_invested", zero=False))


def equity_multiple_of(cash_flows: Iterable[Number], field: str = "cash_flows") -> Decimal:
    """The equity multiple of a series of investor cash flows (outflows negative): sum of inflows / −sum of outflows."""
    amounts = [to_decimal(a, f"{field}.{i}") for i, a in enumerate(cash_flows)]
    check_sign_change(amounts, field)
    paid_in = -sum(a for a in amounts if a < 0)
    return ratio(sum(a for a in amounts if a > 0) / paid_in)


def check_sign_change(amounts: Sequence[Decimal], field: str = "cash_flows") -> None:
    """IRR exists only for flows with money going in and coming out: at least one negative and one positive."""
    if len(amounts) < 2:
        raise DealMathError(field, "at least two cash flows are needed")
    if not (any(a < 0 for a in amounts) and any(a > 0 for a in amounts)):
        raise DealMathError(field, "needs at least one negative (invested) and one positive (returned) cash flow: "
                                   "without a sign change there is no rate of return")


MAX_RATE = 1e9  # 100,000,000,000 % a period: past that a "rate" says only that the flows are not an investment


def _rate(value: float | None, field: str) -> Decimal:
    if value is None or not math.isfinite(value):
        raise DealMathError(field, "the rate of return does not converge for these cash flows")
    if abs(value) > MAX_RATE:
        raise DealMathError(field, f"the rate of return ({value:.3g}) is beyond ±{MAX_RATE:.0e}: check the amounts")
    return Decimal(repr(value)).quantize(RATE, rounding=ROUND_HALF_EVEN)


def irr(cash_flows: Sequence[Number]) -> Decimal:
    """Internal rate of return per period of evenly spaced cash flows (the first at period 0, outflows negative):
    the rate r where Σ CFₜ / (1 + r)ᵗ = 0. Solved by pyxirr.irr."""
    amounts = [to_decimal(a, f"cash_flows.{i}") for i, a in enumerate(cash_flows)]
    check_sign_change(amounts, "cash_flows")
    try:
        return _rate(pyxirr.irr([float(a) for a in amounts]), "cash_flows")
    except pyxirr.InvalidPaymentsError as exc:
        raise DealMathError("cash_flows", str(exc)) from None


def xirr(dated_cash_flows: Sequence[tuple[date, Number]]) -> Decimal:
    """Annual internal rate of return of cash flows on given dates (Excel's XIRR, actual/365): the rate r where

        Σ CFᵢ / (1 + r)^((dᵢ − d₀) / 365) = 0

    Solved by pyxirr.xirr. Excel's documented example (−10,000 on 2008-01-01, 2,750 on 2008-03-01, 4,250 on
    2008-10-30, 3,250 on 2009-02-15, 2,750 on 2009-04-01) gives 0.373362535.
    """
    dates = [d for d, _ in dated_cash_flows]
    amounts = [to_decimal(a, f"dated_cash_flows.{i}.amount") for i, (_, a) in enumerate(dated_cash_flows)]
    check_sign_change(amounts, "dated_cash_flows")
    if len(set(dates)) == 1:
        raise DealMathError("dated_cash_flows", "the cash flows must not all fall on one date")
    try:
        return _rate(pyxirr.xirr(dates, [float(a) for a in amounts]), "dated_cash_flows")
    except pyxirr.InvalidPaymentsError as exc:
        raise DealMathError("dated_cash_flows", str(exc)) from None
