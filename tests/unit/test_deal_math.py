"""Deal math against examples worked by hand (and Excel's documented IRR/XIRR examples); bad input is a
DealMathError naming the input, never a crash."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from scoring.deal_math import (
    Comparable, DealMathError, annual_debt_service, arv_from_comparables, cap_rate, cash_on_cash,
    debt_service_coverage_ratio, equity_multiple, equity_multiple_of, irr, max_allowable_offer, net_operating_income,
    xirr,
)

D = Decimal


def test_mao_by_the_70_percent_rule():
    # 300,000 × 0.70 − 50,000 − 0 = 210,000 − 50,000 = 160,000
    assert max_allowable_offer(D("300000"), D("50000"), D("0.70")) == D("160000.00")
    assert max_allowable_offer(300000, 50000) == D("160000.00")  # 70 % is the default
    # 300,000 × 0.65 − 50,000 − 10,000 (wholesale fee) = 195,000 − 60,000 = 135,000
    assert max_allowable_offer(300000, 50000, D("0.65"), fee=10000) == D("135000.00")
    # 100,000 × 0.70 − 90,000 = −20,000: no price works, and that is said, not hidden
    assert max_allowable_offer(100000, 90000) == D("-20000.00")


def test_arv_is_the_median_adjusted_price_per_sqft_times_the_subject_sqft():
    comps = [Comparable(250000, 1000),              # 250,000 / 1,000 = 250.00 per sqft
             Comparable(330000, 1200, -6000),       # 324,000 / 1,200 = 270.00
             Comparable(280000, 1100, 5500)]        # 285,500 / 1,100 = 259.5454…  (the median)
    estimate = arv_from_comparables(comps, 1500)
    # 285,500 / 1,100 × 1,500 = 428,250,000 / 1,100 = 389,318.1818… → 389,318.18
    assert estimate.value == D("389318.18")
    assert estimate.price_per_sqft == D("259.55") and estimate.comparables == 3
    # an even count takes the mean of the middle two: (250 + 270) / 2 = 260 × 1,000 = 260,000
    assert arv_from_comparables(comps[:2], 1000).value == D("260000.00")


def test_noi_cap_rate_dscr_cash_on_cash_and_equity_multiple():
    # rent 3,000 a month = 36,000 a year; 5 % vacancy: 36,000 × 0.95 = 34,200; less 12,000 expenses = 22,200
    noi = net_operating_income(36000, 12000, D("0.05"))
    assert noi == D("22200.00")
    # bought for 300,000: 22,200 / 300,000 = 0.074
    assert cap_rate(noi, 300000) == D("0.074000")
    # 18,500 a year of debt service: 22,200 / 18,500 = 1.2
    assert debt_service_coverage_ratio(noi, 18500) == D("1.200000")
    # cash flow 22,200 − 18,500 = 3,700 on 60,000 down + 9,000 closing + 5,000 repairs = 74,000: 0.05
    assert cash_on_cash(noi - 18500, 60000 + 9000 + 5000) == D("0.050000")
    # 150,000 back on 100,000 in: 1.5×
    assert equity_multiple(150000, 100000) == D("1.500000")
    # the same from the flows: in 100,000; back 10,000 + 10,000 + 130,000 = 150,000
    assert equity_multiple_of([-100000, 10000, 10000, 130000]) == D("1.500000")


def test_debt_service_of_an_amortising_loan():
    # 240,000 at 6 % over 30 years: r = 0.005, n = 360; 240,000 × 0.005 / (1 − 1.005^−360) = 1,438.92 a month
    assert annual_debt_service(240000, D("0.06"), 30) == D("17267.04")  # 12 × 1,438.92
    assert annual_debt_service(120000, 0, 10) == D("12000.00")  # no interest: 120,000 / 120 months × 12


def test_irr_and_xirr():
    # one period, 100 in, 110 back: 10 %
    assert irr([-100, 110]) == D("0.1")
    # two periods, 1,000 in, 1,210 back at the end: (1 + r)² = 1.21, r = 10 %
    assert irr([-1000, 0, 1210]) == D("0.1")
    # Excel's IRR example: −70,000 then 12,000, 15,000, 18,000, 21,000, 26,000 → 8.66 %
    assert abs(irr([-70000, 12000, 15000, 18000, 21000, 26000]) - D("0.0866309")) < D("0.0000001")
    # Excel's documented XIRR example → 0.373362535 (Excel stops at 0.000001 % precision: within 1e-8 of it)
    flows = [(date(2008, 1, 1), -10000), (date(2008, 3, 1), 2750), (date(2008, 10, 30), 4250),
             (date(2009, 2, 15), 3250), (date(2009, 4, 1), 2750)]
    assert abs(xirr(flows) - D("0.373362535")) < D("0.00000001")
    # 365 days apart, 1,000 in, 1,100 back: 10 % a year
    assert xirr([(date(2021, 1, 1), -1000), (date(2022, 1, 1), 1100)]) == D("0.1")


@pytest.mark.parametrize("call, field", [
    (lambda: max_allowable_offer(-300000, 50000), "arv"),
    (lambda: max_allowable_offer(300000, -1), "repairs"),
    (lambda: max_allowable_offer(300000, 50000, 70), "mao_percentage"),  # 70 instead of 0.70
    (lambda: max_allowable_offer(300000, 50000, 0), "mao_percentage"),
    (lambda: max_allowable_offer("lots", 50000), "arv"),
    (lambda: max_allowable_offer(float("nan"), 50000), "arv"),
    (lambda: arv_from_comparables([], 1500), "comparables"),
    (lambda: arv_from_comparables([Comparable(-250000, 1000)], 1500), "comparables.0.sale_price"),
    (lambda: arv_from_comparables([Comparable(250000, 0)], 1500), "comparables.0.sqft"),
    (lambda: arv_from_comparables([Comparable(250000, 1000, -250000)], 1500), "comparables.0.adjustment"),
    (lambda: arv_from_comparables([Comparable(250000, 1000)], 0), "subject_sqft"),
    (lambda: net_operating_income(36000, 12000, 1), "vacancy_rate"),
    (lambda: cap_rate(22200, 0), "value"),
    (lambda: cap_rate(22200, -5), "value"),
    (lambda: debt_service_coverage_ratio(22200, 0), "annual_debt_service"),
    (lambda: cash_on_cash(3700, 0), "cash_invested"),
    (lambda: equity_multiple(150000, 0), "equity_invested"),
    (lambda: annual_debt_service(240000, D("6"), 30), "interest_rate"),
    (lambda: annual_debt_service(240000, D("0.06"), 0), "amortization_years"),
    (lambda: irr([100, 110]), "cash_flows"),         # no sign change
    (lambda: irr([-100, -110]), "cash_flows"),
    (lambda: irr([-100]), "cash_flows"),
    (lambda: irr([D("-0.01"), 10**12]), "cash_flows"),  # a "rate" of 10^14: not an investment
    (lambda: equity_multiple_of([10, 20]), "cash_flows"),
    (lambda: xirr([(date(2021, 1, 1), 1000), (date(2022, 1, 1), 1100)]), "dated_cash_flows"),
    (lambda: xirr([(date(2021, 1, 1), -1000), (date(2021, 1, 1), 1100)]), "dated_cash_flows"),
])
def test_bad_input_is_a_clear_error_naming_the_input(call, field):
    with pytest.raises(DealMathError) as caught:
        call()
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
