"""Past deals from another system's export (CSV or Excel) for the deal models (`dealflow scoring train-deals --csv`).

Headers are matched case- and punctuation-insensitively (`Contract Price`, `contract_price`, `CONTRACT-PRICE`), with
the aliases below; placeholders (`N/A`, `-`, `Select`, empty) are missing; money may be written `$185,000`. Every
row needs a status (won, lost or open: STATUS_WORDS) and either an opened date (with a closed date for won and lost
deals) or a days-to-close column. A still-open deal's days so far are counted to the newest date in the file (the
export's snapshot). The return a won deal made is its `profit` / `roi` columns when the file has them, else worked
out from its prices like the CRM's own deals (scoring/deal_forecast.realised_return).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scoring.deal_forecast import INPUTS, realised_return
from scoring.export import clean, header_key, parse_dates
from scoring.export_file import read_table

ALIASES: dict[str, tuple[str, ...]] = {
    "status": ("status", "stage", "outcome", "deal_status", "result", "deal_stage"),
    "opened": ("opened", "opened_at", "open_date", "date_opened", "created", "created_at", "created_date",
               "date_created", "start_date"),
    "closed": ("closed", "closed_at", "close_date", "closed_date", "date_closed", "closing_date"),
    "days_to_close": ("days_to_close", "days", "days_open", "time_to_close"),
    "pipeline": ("pipeline", "deal_type"),
    "property_type": ("property_type", "type", "property"),
    "state": ("state", "property_state"),
    "lead_source": ("lead_source", "source", "marketing_source"),
    "asking_price": ("asking_price", "asking", "list_price", "seller_asking_price"),
    "offer_price": ("offer_price", "offer", "our_offer"),
    "contract_price": ("contract_price", "purchase_price", "contract", "price_under_contract"),
    "arv": ("arv", "after_repair_value"),
    "repair_estimate": ("repair_estimate", "repairs_estimate", "estimated_repairs", "rehab_estimate", "repairs"),
    "sale_price": ("sale_price", "resale_price", "sold_price", "sold_for"),
    "assignment_fee": ("assignment_fee", "fee", "wholesale_fee"),
    "closing_costs": ("closing_costs", "closing_cost"),
    "repairs_spent": ("repairs_spent", "actual_repairs", "rehab_cost", "repair_cost"),
    "profit": ("profit", "net_profit"),
    "roi": ("roi", "return_on_investment"),
}
MONEY = ("asking_price", "offer_price", "contract_price", "arv", "repair_estimate", "sale_price", "assignment_fee",
         "closing_costs", "repairs_spent", "profit")
WON_WORDS = {"won", "closed_won", "sold", "closed", "funded", "yes", "true", "1", "win"}
LOST_WORDS = {"lost", "closed_lost", "dead", "cancelled", "canceled", "fell_through", "no", "false", "0", "lose"}
OPEN_WORDS = {"open", "active", "pending", "in_progress", "new", "contacted", "appointment_set", "offer_made",
              "under_contract", "marketing", "showing", "buyer_offer", "assigned"}
STATUS_WORDS = WON_WORDS | LOST_WORDS | OPEN_WORDS
DAY = 86_400.0


@dataclass
class PastDeals:
    """An export's deals in the shape services/deal_forecast.BookRows takes: (deal, status, days, (profit, roi))."""

    rows: list[tuple[dict[str, Any], str, float, tuple[float, float] | None]]
    columns: dict[str, str]  # our name -> the file's header
    skipped: int  # rows without a time (no dates, no days)


def _columns(frame: pd.DataFrame) -> dict[str, str]:
    keys = {header_key(name): name for name in frame.columns}
    found = {}
    for ours, names in ALIASES.items():
        for name in names:
            if name in keys:
                found[ours] = keys[name]
                break
    return found


def _money(value: Any) -> float:
    if value is None:
        return math.nan
    text = str(value).replace(",", "").replace("$", "").strip()
    negative = text.startswith("(") and text.endswith(")")  # accounting style (1,200)
    try:
        number = float(Decimal(text.strip("()")))
    except (InvalidOperation, ValueError):
        return math.nan
    if not math.isfinite(number):
        return math.nan
    return -number if negative else number


def _ratio(value: Any) -> float:
    if value is None:
        return math.nan
    text = str(value).strip()
    percent = text.endswith("%")
    number = _money(text.rstrip("%"))
    return number / 100 if percent else number


def read_past_deals(path: str | Path) -> PastDeals:
    """The file's deals, or a ValueError saying in one line what is wrong with it."""
    frame = read_table(path)
    columns = _columns(frame)
    name = Path(path).name
    if "status" not in columns:
        keys = [header_key(c) for c in frame.columns]
        near = difflib.get_close_matches("status", keys, n=2, cutoff=0.5)
        hint = f" (nearest: {', '.join(near)})" if near else ""
        raise ValueError(f"{name}: no status column (one of: {', '.join(ALIASES['status'])}){hint}")
    if "opened" not in columns and "days_to_close" not in columns:
        raise ValueError(f"{name}: no opened date (one of: {', '.join(ALIASES['opened'][:5])}, …) and no "
                         "days-to-close column: the time to close cannot be learned")
    cells = {ours: clean(frame[header]) for ours, header in columns.items()}
    status_key = cells["status"].map(lambda v: header_key(v) if v is not None else None)
    unknown = sorted({s for s in status_key.dropna() if s not in STATUS_WORDS})
    if unknown or status_key.isna().any():
        what = f"values that are not won, lost or open: {', '.join(unknown[:5])}" if unknown else (
            f"no value on {int(status_key.isna().sum())} row(s)")
        raise ValueError(f"{name}: status column {columns['status']!r} has {what}")
    status = status_key.map(lambda s: "won" if s in WON_WORDS else "lost" if s in LOST_WORDS else "open")
    opened = parse_dates(cells["opened"]) if "opened" in cells else None
    closed = parse_dates(cells["closed"]) if "closed" in cells else None
    dates = [d for d in (opened, closed) if d is not None]
    snapshot = max((d.max() for d in dates if d.notna().any()), default=None)
    days_given = cells["days_to_close"].map(_money) if "days_to_close" in cells else None
    rows, skipped = [], 0
    for i in range(len(frame)):
        numbers = {k: _money(cells[k].iloc[i]) for k in MONEY if k in cells}
        state = status.iloc[i]
        days = math.nan
        if opened is not None and pd.notna(opened.iloc[i]):
            end = closed.iloc[i] if state != "open" and closed is not None else snapshot if state == "open" else None
            if end is not None and pd.notna(end):
                days = max((end - opened.iloc[i]).total_seconds() / DAY, 0.0)
        if math.isnan(days) and days_given is not None:
            days = days_given.iloc[i]
        if not (days >= 0):
            skipped += 1
            continue
        deal = {k: (numbers.get(k) if k in MONEY else cells[k].iloc[i]) if k in cells else None for k in INPUTS}
        deal = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in deal.items()}
        outcome = None
        if state == "won":
            given_profit = numbers.get("profit", math.nan)
            given_roi = _ratio(cells["roi"].iloc[i]) if "roi" in cells else math.nan
            worked = realised_return(numbers)
            profit = given_profit if not math.isnan(given_profit) else worked[0] if worked else math.nan
            roi = given_roi if not math.isnan(given_roi) else worked[1] if worked else math.nan
            outcome = (profit, roi) if np.isfinite([profit, roi]).all() else None
        rows.append((deal, state, float(days), outcome))
    if not rows:
        raise ValueError(f"{name}: no row has a time to close (an opened date with a closed date, or days)")
    return PastDeals(rows=rows, columns=columns, skipped=skipped)
