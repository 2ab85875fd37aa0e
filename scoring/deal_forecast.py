"""A deal's expected return and time to close (issue 13): pure ML over deal rows, no database.

- **Expected return**: XGBoost quantile regression (`reg:quantileerror`, `quantile_alpha` [0.1, 0.5, 0.9]), one
  multi-quantile model for the profit and one for the ROI, trained on deals that closed won. Each row's three
  predictions are sorted, so p10 <= p50 <= p90 always (trees fitted per quantile can cross on odd inputs).
- **Time to close**: XGBoost accelerated failure time (`survival:aft`, a normal distribution of log-days) on every
  deal: a deal that closed won is an event at its days to close; a deal still open is right-censored at the days it
  has been open (lower bound = days so far, upper bound = +inf), a lost one at the days until it was lost. The model
  predicts each deal's location (its median days, exp(mu)); with the scale sigma, P(T <= t) = F((ln t - mu) / sigma).
  For a deal open `age` days already, P(close within h days from now) = (F(age + h) - F(age)) / (1 - F(age)).

The synthetic book (cold start) is `synthetic_deals`; docs/scoring.md#deal-forecasts explains all of it.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from scoring.drift import references
from scoring.synthetic import SOURCES, STATES, TYPES

QUANTILES = (0.1, 0.5, 0.9)
HORIZONS = (30, 60, 90)  # days: P(close within h days)
CATEGORICAL = ("pipeline", "property_type", "state", "lead_source")
NUMERIC = ("asking_price", "offer_price", "price", "arv", "repair_estimate", "price_to_arv", "repairs_to_arv",
           "spread")
FEATURES = [*CATEGORICAL, *NUMERIC]
# The central predictions a drift report compares (docs/scoring.md#drift): the predicted median days to close of a
# deal as new (age 0) and its p50 profit. ROI's p50 is left out: profit over price, it moves with those two.
OUTPUTS = ("median_days", "profit_p50")
# What a deal row may carry (a saved Opportunity's fields, its property's type and state, its lead's source).
INPUTS = ("pipeline", "property_type", "state", "lead_source", "asking_price", "offer_price", "contract_price", "arv",
          "repair_estimate")
DISTRIBUTION = "normal"  # of log-days in the AFT model (xgboost also has logistic and extreme)
SIGMAS = tuple(round(s, 2) for s in np.arange(0.2, 2.01, 0.05))  # the scale is chosen from these on held-out deals

# Shallow, slow and with at least 20 deals a leaf: on the synthetic book's held-out deals this covered 74 % within
# p10-p90 at a lower pinball loss than 150 trees of depth 4 (68 %: deeper trees fit the tails too tightly).
RETURN_PARAMS = dict(objective="reg:quantileerror", quantile_alpha=np.array(QUANTILES), n_estimators=120,
                     max_depth=3, learning_rate=0.05, subsample=0.9, colsample_bytree=0.9, min_child_weight=20.0,
                     tree_method="hist", enable_categorical=True, max_cat_to_onehot=8, n_jobs=1, random_state=13)
AFT_PARAMS = {"objective": "survival:aft", "eval_metric": "aft-nloglik", "aft_loss_distribution": DISTRIBUTION,
              "tree_method": "hist", "learning_rate": 0.06, "max_depth": 3, "min_child_weight": 1.0,
              "subsample": 0.9, "colsample_bytree": 0.9, "nthread": 1, "seed": 13, "max_cat_to_onehot": 8}
AFT_ROUNDS = 200
# One thread each: a few thousand rows are too few to share out (two threads made a fit 3x slower on a busy 2-core
# machine), and the worker that retrains them runs other activities beside.
HOLDOUT = 0.2

Progress = Callable[[str], None]


# --- features --------------------------------------------------------------------------------------------------


def _number(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text.lower() if text else None


def deal_features(deal: Mapping[str, Any]) -> dict[str, Any]:
    """A deal's features from what it has now (missing is NaN / None): its pipeline, the property's type and state,
    the lead's source, its prices, and three ratios. `price` is the best price known: the contract price, else the
    offer, else the asking price (a closed deal's is its contract price)."""
    asking, offer, contract = (_number(deal.get(k)) for k in ("asking_price", "offer_price", "contract_price"))
    arv, repairs = _number(deal.get("arv")), _number(deal.get("repair_estimate"))
    price = next((p for p in (contract, offer, asking) if not math.isnan(p)), math.nan)
    state = _text(deal.get("state"))
    return {
        "pipeline": _text(deal.get("pipeline")), "property_type": _text(deal.get("property_type")),
        "state": state.upper() if state else None, "lead_source": _text(deal.get("lead_source")),
        "asking_price": asking, "offer_price": offer, "price": price, "arv": arv, "repair_estimate": repairs,
        "price_to_arv": price / arv if arv > 0 else math.nan,
        "repairs_to_arv": repairs / arv if arv > 0 else math.nan,
        "spread": arv - price - repairs,  # NaN when any is missing
    }


@dataclass
class FeatureSpec:
    """The model's columns and each categorical's known values (codes in this order; anything else is missing)."""

    categories: dict[str, list[str]]

    @property
    def features(self) -> list[str]:
        return list(FEATURES)

    @property
    def types(self) -> list[str]:
        return ["c" if f in CATEGORICAL else "q" for f in FEATURES]

    @classmethod
    def of(cls, rows: list[dict[str, Any]]) -> FeatureSpec:
        return cls({c: sorted({r[c] for r in rows if r.get(c) is not None}) for c in CATEGORICAL})

    def matrix(self, rows: list[dict[str, Any]]) -> np.ndarray:
        codes = {c: {v: float(i) for i, v in enumerate(values)} for c, values in self.categories.items()}
        out = np.full((len(rows), len(FEATURES)), np.nan)
        for i, row in enumerate(rows):
            for j, name in enumerate(FEATURES):
                value = row.get(name)
                if name in CATEGORICAL:
                    out[i, j] = codes[name].get(value, math.nan) if value is not None else math.nan
                else:
                    out[i, j] = _number(value)
        return out


def realised_return(values: Mapping[str, Any]) -> tuple[float, float] | None:
    """What a closed-won deal made, from its figures, or None without them: an assignment (an assignment fee is set)
    made the fee less the closing costs, its ROI that over the contract price; a flip made sale price − contract
    price − repairs (spent, else the estimate) − closing costs, its ROI that over the contract price + repairs +
    closing costs (scoring/deal_analysis.py's flip_profit and flip_roi)."""
    get = {k: _number(values.get(k)) for k in ("contract_price", "closing_costs", "assignment_fee", "sale_price",
                                                 "repairs_spent", "repair_estimate")}
    contract = get["contract_price"]
    if not contract > 0:
        return None
    closing = 0.0 if math.isnan(get["closing_costs"]) else get["closing_costs"]
    if not math.isnan(get["assignment_fee"]):
        profit = get["assignment_fee"] - closing
        return profit, profit / contract
    sale = get["sale_price"]
    repairs = get["repair_estimate"] if math.isnan(get["repairs_spent"]) else get["repairs_spent"]
    if math.isnan(sale) or math.isnan(repairs):
        return None
    profit = sale - contract - repairs - closing
    return profit, profit / (contract + repairs + closing)


# --- the synthetic book -----------------------------------------------------------------------------------------

MARKET = {"TX": 1.0, "FL": 1.15, "GA": 0.95, "OH": 0.7, "TN": 0.9, "NC": 0.95, "AZ": 1.2, "IN": 0.7}
TYPE_VALUE = {"single_family": 1.0, "multi_family": 1.6, "condo": 0.8, "mobile_home": 0.35, "land": 0.4}
TYPE_DAYS = {"single_family": 0.0, "multi_family": 0.3, "condo": -0.1, "mobile_home": 0.1, "land": 0.5}
SOURCE_DAYS = {"referral": -0.25, "driving_for_dollars": -0.1, "ppc": 0.15}
SLOW_STATES = {"OH": 0.2, "IN": 0.2, "FL": -0.1}  # judicial-foreclosure / busier title markets, by hand


@dataclass
class DealBook:
    """Deals with what happened to them: `status` won / lost / open, `days` the days to close (won), until lost, or
    open so far, `profit` and `roi` for the won ones (NaN otherwise)."""

    deals: list[dict[str, Any]]
    status: np.ndarray
    days: np.ndarray
    profit: np.ndarray
    roi: np.ndarray
    true_median_days: np.ndarray | None = None  # the synthetic book's own (tests compare with it)
    true_sigma: float | None = None


def synthetic_deals(n: int = 3000, seed: int = 13, history_days: float = 365.0, sigma: float = 0.5,
                    lost_share: float = 0.3) -> DealBook:
    """The cold-start book (documented in docs/scoring.md#the-synthetic-deal-book): `n` deals opened uniformly over
    the last `history_days`, with hand-set effects; what is still open at the snapshot is censored."""
    rng = np.random.default_rng(seed)
    pipeline = rng.choice(["acquisition", "disposition"], n, p=[0.8, 0.2])
    state = rng.choice(STATES, n)
    ptype = rng.choice(TYPES, n, p=[0.7, 0.12, 0.08, 0.06, 0.04])
    source = rng.choice(SOURCES, n, p=[0.25, 0.2, 0.15, 0.15, 0.08, 0.07, 0.05, 0.05])
    market = np.array([MARKET[s] for s in state]) * np.array([TYPE_VALUE[t] for t in ptype])
    arv = np.round(rng.lognormal(np.log(230_000 * market), 0.35), -3)
    repair_ratio = rng.beta(2.0, 9.0, n)
    repairs = np.round(arv * repair_ratio, -2)
    discount = np.clip(rng.normal(0.72, 0.06, n), 0.5, 0.9)  # what the contract leaves of the ARV after repairs
    contract = np.round(np.maximum(arv * discount - repairs, 0.2 * arv), -2)
    asking = np.round(contract * rng.uniform(1.05, 1.35, n), -2)
    offer = np.round(contract * rng.uniform(0.9, 1.0, n), -2)
    assignment = (pipeline == "disposition") | (rng.random(n) < 0.2)
    # Profit: a flip sells near the ARV, with repair overruns (worse on mobile homes and land) and ~8 % selling and
    # closing costs; an assignment earns a fee that grows with the discount, less ~1,500 of costs.
    risky = np.isin(ptype, ["mobile_home", "land"])
    sale = arv * (1 + rng.normal(0, 0.07, n))
    spent = repairs * rng.lognormal(0.05, 0.25 + 0.25 * risky)
    closing = 0.08 * sale
    flip_profit = sale - contract - spent - closing
    flip_roi = flip_profit / (contract + spent + closing)
    fee = contract * rng.lognormal(np.log(0.07) + 2.5 * (0.72 - discount), 0.45)
    fee_profit = fee - 1_500.0
    profit = np.round(np.where(assignment, fee_profit, flip_profit), 2)
    roi = np.where(assignment, fee_profit / contract, flip_roi)
    # Days to close: log-normal around 50 days, moved by the deal's traits.
    mu = (np.log(50.0) + np.array([TYPE_DAYS[t] for t in ptype]) - 0.35 * (pipeline == "disposition")
          + np.array([SOURCE_DAYS.get(s, 0.0) for s in source]) + 1.5 * (repair_ratio - 0.18)
          + 0.3 * np.log(market) + np.array([SLOW_STATES.get(s, 0.0) for s in state]))
    true_days = np.exp(mu + sigma * rng.standard_normal(n))
    age = rng.uniform(0, history_days, n)  # how long ago it was opened, at the snapshot
    lost = rng.random(n) < lost_share
    lost_after = true_days * rng.uniform(0.1, 1.2, n)
    status = np.where(lost & (lost_after <= age), "lost", np.where(~lost & (true_days <= age), "won", "open"))
    days = np.where(status == "won", true_days, np.where(status == "lost", lost_after, age))
    deals = []
    for i in range(n):
        won = status[i] == "won"
        deal = {"pipeline": pipeline[i], "property_type": ptype[i], "state": state[i],
                "lead_source": source[i] if pipeline[i] == "acquisition" or rng.random() < 0.4 else None,
                "asking_price": asking[i], "offer_price": offer[i],
                "contract_price": contract[i] if won or rng.random() < 0.3 else None,
                "arv": arv[i], "repair_estimate": repairs[i]}
        # Real books have holes: blank some facts at random (after the outcomes were drawn from the true values).
        for key, share in (("offer_price", 0.3), ("asking_price", 0.15), ("arv", 0.1), ("repair_estimate", 0.12),
                           ("property_type", 0.1), ("state", 0.05), ("lead_source", 0.2)):
            if rng.random() < share:
                deal[key] = None
        deals.append(deal)
    won = status == "won"
    return DealBook(deals=deals, status=status, days=days, profit=np.where(won, profit, np.nan),
                    roi=np.where(won, roi, np.nan), true_median_days=np.exp(mu), true_sigma=sigma)


# --- the distribution of log-days --------------------------------------------------------------------------------


def cdf(z: np.ndarray | float, distribution: str = DISTRIBUTION) -> np.ndarray:
    """F(z) of the AFT model's standardised log-time: normal Phi(z), logistic 1/(1+e^-z), extreme 1 - exp(-e^z)."""
    z = np.asarray(z, dtype=float)
    if distribution == "normal":
        return 0.5 * np.vectorize(math.erfc)(-z / math.sqrt(2))
    if distribution == "logistic":
        return 1 / (1 + np.exp(-z))
    if distribution == "extreme":
        return -np.expm1(-np.exp(z))
    raise ValueError(f"unknown AFT distribution {distribution!r}")


def _log_survival(z: np.ndarray, distribution: str) -> np.ndarray:
    if distribution == "normal":
        return np.log(np.maximum(0.5 * np.vectorize(math.erfc)(z / math.sqrt(2)), 1e-300))
    if distribution == "logistic":
        return -np.logaddexp(0, z)
    return -np.exp(z)  # extreme


def _log_density(z: np.ndarray, distribution: str) -> np.ndarray:
    if distribution == "normal":
        return -0.5 * z * z - 0.5 * math.log(2 * math.pi)
    if distribution == "logistic":
        return -z - 2 * np.logaddexp(0, -z)
    return z - np.exp(z)  # extreme


def censored_log_likelihood(days: np.ndarray, event: np.ndarray, median_days: np.ndarray, sigma: float,
                            distribution: str = DISTRIBUTION) -> float:
    """Mean log-likelihood of observed days under log T = ln(median) + sigma * e: events by their density, censored
    deals by their survival."""
    z = (np.log(np.maximum(days, 1e-3)) - np.log(median_days)) / sigma
    ll = np.where(event, _log_density(z, distribution) - np.log(sigma * np.maximum(days, 1e-3)),
                  _log_survival(z, distribution))
    return float(np.mean(ll))


def close_within(median_days: float, sigma: float, age_days: float = 0.0, horizons: tuple[int, ...] = HORIZONS,
                 distribution: str = DISTRIBUTION) -> dict[str, float]:
    """P(the deal closes within h days from now | still open after `age_days`), for each horizon h:
    (F(age + h) - F(age)) / (1 - F(age)) with F(t) = cdf((ln t - ln median) / sigma); F(0) = 0. Monotone in h and
    in [0, 1] by construction (F is a CDF)."""
    def at(t: float) -> float:
        if t <= 0:
            return 0.0
        return float(cdf((math.log(t) - math.log(median_days)) / sigma, distribution))

    start = at(age_days)
    rest = 1.0 - start
    out = {}
    for h in horizons:
        p = (at(age_days + h) - start) / rest if rest > 1e-12 else 1.0
        out[str(h)] = min(1.0, max(0.0, p))
    return out


# --- metrics -----------------------------------------------------------------------------------------------------


def pinball_loss(y: np.ndarray, predicted: np.ndarray, quantiles: tuple[float, ...] = QUANTILES) -> float:
    """Mean pinball (quantile) loss over the rows and the quantiles: for q, alpha * (y - q) when y >= q, else
    (1 - alpha) * (q - y). `predicted` is (rows, quantiles)."""
    y = np.asarray(y, dtype=float).reshape(-1, 1)
    diff = y - np.asarray(predicted, dtype=float)
    alpha = np.asarray(quantiles).reshape(1, -1)
    return float(np.mean(np.maximum(alpha * diff, (alpha - 1) * diff)))


def concordance(days: np.ndarray, event: np.ndarray, predicted_days: np.ndarray) -> float:
    """Harrell's C: over the pairs where one deal closed (an event) before the other's time (closed later, or still
    open or lost at a later time), the share where the model predicted the earlier one sooner (ties count half)."""
    days, event, predicted_days = (np.asarray(a, dtype=float) for a in (days, event, predicted_days))
    concordant = pairs = 0.0
    for start in range(0, len(days), 512):
        idx = np.arange(start, min(start + 512, len(days)))
        idx = idx[event[idx] > 0]
        if not len(idx):
            continue
        comparable = days[idx, None] < days[None, :]
        pairs += comparable.sum()
        sooner = predicted_days[idx, None] < predicted_days[None, :]
        tied = predicted_days[idx, None] == predicted_days[None, :]
        concordant += (comparable & sooner).sum() + 0.5 * (comparable & tied).sum()
    return float(concordant / pairs) if pairs else math.nan


# --- training ----------------------------------------------------------------------------------------------------


@dataclass
class DealForecaster:
    """The three trained models, their feature spec, the AFT scale, and how well each did on held-out deals."""

    profit: xgb.XGBRegressor
    roi: xgb.XGBRegressor
    close_time: xgb.Booster
    spec: FeatureSpec
    sigma: float
    metrics: dict[str, Any]
    data_hash: str
    distribution: str = DISTRIBUTION
    _boosters: dict[str, xgb.Booster] = field(default_factory=dict, repr=False)

    def _single(self, name: str) -> xgb.Booster:
        """A copy of a booster for one deal at a time: one thread (threads cost more than they give)."""
        if name not in self._boosters:
            source = {"profit": self.profit.get_booster() if isinstance(self.profit, xgb.XGBModel) else self.profit,
                      "roi": self.roi.get_booster() if isinstance(self.roi, xgb.XGBModel) else self.roi,
                      "close_time": self.close_time}[name]
            booster = source.copy()
            booster.set_param({"nthread": 1})
            self._boosters[name] = booster
        return self._boosters[name]

    def quantiles(self, name: str, matrix: np.ndarray) -> np.ndarray:
        """(rows, 3) of p10, p50, p90, sorted per row: the quantiles never cross."""
        raw = self._single(name).inplace_predict(matrix)
        return np.sort(np.asarray(raw, dtype=float).reshape(len(matrix), len(QUANTILES)), axis=1)

    def median_days(self, matrix: np.ndarray) -> np.ndarray:
        dm = xgb.DMatrix(matrix, feature_types=self.spec.types, enable_categorical=True)
        return np.asarray(self._single("close_time").predict(dm), dtype=float)

    def central(self, matrix: np.ndarray) -> dict[str, np.ndarray]:
        """OUTPUTS for many rows at once: each row's median days to close (as new) and its p50 profit."""
        return {"median_days": self.median_days(matrix), "profit_p50": self.quantiles("profit", matrix)[:, 1]}

    def forecast(self, deal: Mapping[str, Any], age_days: float = 0.0) -> dict[str, Any]:
        """One deal: profit and ROI p10/p50/p90, its median days to close and P(close within 30/60/90 days)."""
        matrix = self.spec.matrix([deal_features(deal)])
        profit, roi = self.quantiles("profit", matrix)[0], self.quantiles("roi", matrix)[0]
        median = float(self.median_days(matrix)[0])
        return {"profit": dict(zip(("p10", "p50", "p90"), map(float, profit), strict=True)),
                "roi": dict(zip(("p10", "p50", "p90"), map(float, roi), strict=True)),
                "median_days": median,
                "close_within": close_within(median, self.sigma, age_days, distribution=self.distribution)}


def _fit_quantiles(X: np.ndarray, y: np.ndarray, types: list[str]) -> xgb.XGBRegressor:
    # a small book (a tenant's first 30 closed deals) gets smaller leaves, or the trees could not split at all
    model = xgb.XGBRegressor(**{**RETURN_PARAMS, "min_child_weight": min(20.0, max(3.0, len(y) / 50))},
                             feature_types=types)
    model.fit(X, y)
    return model


def aft_bounds(days: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interval labels: a closed (won) deal is [days, days]; a censored one [days so far, +inf)."""
    lower = np.maximum(np.asarray(days, dtype=float), 0.5)  # a same-day close is half a day (log-time needs > 0)
    upper = np.where(np.asarray(event) > 0, lower, np.inf)
    return lower, upper


def fit_close_time(X: np.ndarray, days: np.ndarray, event: np.ndarray, types: list[str], sigma: float = 1.0,
                   rounds: int = AFT_ROUNDS) -> xgb.Booster:
    lower, upper = aft_bounds(days, event)
    dtrain = xgb.DMatrix(X, feature_types=types, enable_categorical=True)
    dtrain.set_float_info("label_lower_bound", lower)
    dtrain.set_float_info("label_upper_bound", upper)
    return xgb.train({**AFT_PARAMS, "aft_loss_distribution_scale": sigma}, dtrain, num_boost_round=rounds)


def best_sigma(days: np.ndarray, event: np.ndarray, median_days: np.ndarray,
               distribution: str = DISTRIBUTION) -> float:
    """The scale with the highest censored log-likelihood of held-out deals given the model's medians."""
    return float(max(SIGMAS, key=lambda s: censored_log_likelihood(days, event, median_days, s, distribution)))


def tune_close_time(X: np.ndarray, days: np.ndarray, event: np.ndarray, types: list[str]) -> tuple[float, float]:
    """The AFT scale and the held-out concordance. The scale is fitted, not assumed: XGBoost trains with a fixed
    one, and a wrong one biases the locations of a censored book (at 1.0 on a book of true scale 0.5, a third of
    the deals still open, the medians came out ~20 % long). So: fit at 1.0 on 80 % of the deals, take the scale of
    the highest censored likelihood of the other 20 %, fit again at that scale and take it again."""
    train, test = _split(len(days))
    dtest = xgb.DMatrix(X[test], feature_types=types, enable_categorical=True)
    sigma = 1.0
    for _ in range(2):
        medians = fit_close_time(X[train], days[train], event[train], types, sigma).predict(dtest)
        sigma = best_sigma(days[test], event[test], medians)
    return sigma, concordance(days[test], event[test], medians)


def _split(n: int, seed: int = 13) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    cut = max(1, int(round(n * HOLDOUT)))
    return np.sort(order[cut:]), np.sort(order[:cut])


def _interval_metrics(name: str, y_train: np.ndarray, y_test: np.ndarray, predicted: np.ndarray
                      ) -> dict[str, float]:
    baseline = np.tile(np.quantile(y_train, QUANTILES), (len(y_test), 1))
    return {f"{name}_pinball": round(pinball_loss(y_test, predicted), 4),
            f"{name}_pinball_baseline": round(pinball_loss(y_test, baseline), 4),
            f"{name}_coverage_80": round(float(np.mean((y_test >= predicted[:, 0]) & (y_test <= predicted[:, 2]))), 3)}


def train_forecaster(book: DealBook, progress: Progress | None = None) -> DealForecaster:
    """Both models: evaluated on a seeded 20 % of held-out deals (pinball loss against the constant quantiles of the
    training deals; Harrell's C; the AFT scale chosen there), then fitted again on every deal."""
    started = time.perf_counter()
    say = progress or (lambda _: None)
    rows = [deal_features(d) for d in book.deals]
    spec = FeatureSpec.of(rows)
    X, types = spec.matrix(rows), spec.types
    won = book.status == "won"
    event = won.astype(float)
    returns = np.flatnonzero(won & np.isfinite(book.profit) & np.isfinite(book.roi))
    check_enough(len(returns), len(book.deals))
    metrics: dict[str, Any] = {"n_deals": len(book.deals), "n_won": int(won.sum()),
                               "n_open": int((book.status == "open").sum()),
                               "n_lost": int((book.status == "lost").sum()), "n_returns": int(len(returns)),
                               "distribution": DISTRIBUTION, "holdout": HOLDOUT}

    say("expected return: held-out evaluation")
    train_r, test_r = _split(len(returns))
    for name, target in (("profit", book.profit), ("roi", book.roi)):
        y = target[returns]
        model = _fit_quantiles(X[returns[train_r]], y[train_r], types)
        predicted = np.sort(model.predict(X[returns[test_r]]).reshape(-1, len(QUANTILES)), axis=1)
        metrics.update(_interval_metrics(name, y[train_r], y[test_r], predicted))

    say("time to close: held-out evaluation")
    sigma, c_index = tune_close_time(X, book.days, event, types)
    metrics.update({"concordance": round(c_index, 4), "sigma": sigma})

    say("fitting the final models on every deal")
    profit = _fit_quantiles(X[returns], book.profit[returns], types)
    roi = _fit_quantiles(X[returns], book.roi[returns], types)
    close_time = fit_close_time(X, book.days, event, types, sigma=sigma)
    forecaster = DealForecaster(profit=profit, roi=roi, close_time=close_time, spec=spec, sigma=sigma, metrics={},
                                data_hash=book_hash(X, book))
    # The drift reference (docs/scoring.md#drift): every training deal's features, and the final models' central
    # predictions for every training deal (won, lost and open: the current sample is every new deal, of any stage).
    # In-sample predictions: the report compares their distribution, not their accuracy, and shallow trees with
    # large leaves give rows they learnt from much what they give new rows of the same population.
    metrics["reference"] = references(pd.DataFrame(rows, columns=FEATURES), set(CATEGORICAL),
                                      outputs=forecaster.central(X))
    metrics["train_seconds"] = round(time.perf_counter() - started, 2)
    # A tiny book can leave a held-out measure undefined (no closed deal among the held-out ones): None, not NaN,
    # which neither JSON nor Postgres' jsonb takes.
    forecaster.metrics = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
    return forecaster


def book_hash(X: np.ndarray | None, book: DealBook) -> str:
    """A version's `training_data_hash`: its feature matrix (None: computed from the book) and outcomes."""
    if X is None:
        rows = [deal_features(d) for d in book.deals]
        X = FeatureSpec.of(rows).matrix(rows)
    event = (book.status == "won").astype(float)
    digest = hashlib.sha256(np.ascontiguousarray(X).tobytes() + book.days.tobytes() + event.tobytes()
                            + np.nan_to_num(book.profit).tobytes() + np.nan_to_num(book.roi).tobytes())
    return digest.hexdigest()


MIN_RETURNS = 10  # below this no model is trained at all (services decide when a tenant's own takes over)


def check_enough(returns: int, deals: int) -> None:
    if returns < MIN_RETURNS:
        raise ValueError(f"not enough closed deals to train: {returns} won with a profit among {deals} deals "
                         f"(need at least {MIN_RETURNS})")


def book_frame(book: DealBook) -> pd.DataFrame:
    """The book as a table (the deals' inputs and outcomes), for looking at it."""
    frame = pd.DataFrame(book.deals)
    frame["status"], frame["days"], frame["profit"], frame["roi"] = book.status, book.days, book.profit, book.roi
    return frame
