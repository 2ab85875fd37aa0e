"""`dealflow scoring train-deals --csv past_deals.csv`: another system's export of past deals (its own headers, money
as `$185,000`, US dates, placeholders) trains the tenant's deal models with the CRM's deals; a bad file is one
line."""

from __future__ import annotations

import subprocess

import numpy as np
import pandas as pd

from scoring.deal_forecast import synthetic_deals
from tests.integration.test_cli import DEALFLOW, _env

NOW = pd.Timestamp("2026-11-30", tz="UTC")
STATUS = {"won": "Sold", "lost": "Dead", "open": "Under Contract"}


def past_deals_csv(path, n: int = 400, seed: int = 9) -> dict[str, int]:
    """The synthetic book dressed as another system's export; returns how many of each status it has."""
    book = synthetic_deals(n=n, seed=seed)
    rng = np.random.default_rng(seed)
    rows = []
    for deal, status, days, profit, roi in zip(book.deals, book.status, book.days, book.profit, book.roi,
                                               strict=True):
        opened = NOW - pd.Timedelta(days=float(days if status == "open" else days + rng.uniform(0, 200)))
        closed = "" if status == "open" else (opened + pd.Timedelta(days=float(days))).strftime("%m/%d/%Y")
        rows.append({
            "Deal Status": STATUS[status], "Date Opened": opened.strftime("%m/%d/%Y"), "Close Date": closed,
            "Property Type": deal["property_type"] or "N/A", "STATE": deal["state"] or "-",
            "Lead Source": deal["lead_source"] or "Select",
            "Asking Price": f"${deal['asking_price']:,.0f}" if deal["asking_price"] else "",
            "ARV": deal["arv"] or "", "Repair Estimate": deal["repair_estimate"] or "",
            "Purchase Price": deal["contract_price"] or "",
            "Net Profit": f"{profit:.2f}" if status == "won" else "", "ROI": f"{roi * 100:.1f}%" if status == "won" else "",
        })
    pd.DataFrame(rows).to_csv(path, index=False)
    return {s: int((book.status == s).sum()) for s in ("won", "lost", "open")}


def test_train_deals_from_a_csv_of_past_deals(tmp_path):
    path = tmp_path / "past_deals.csv"
    counts = past_deals_csv(path)
    env = _env(tmp_path)
    out = subprocess.run([*DEALFLOW, "scoring", "train-deals", "--tenant", "acme", "--csv", str(path),
                          "--create-tenant"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if not line.startswith("created tenant")]
    assert lines[0].startswith("✓ deal models v1 for acme (csv), active now: 400 deals (400 from past_deals.csv and "
                               "0 from the CRM)")
    assert f"{counts['won']} won with their figures, {counts['open']} open and {counts['lost']} lost" in lines[0]
    model, baseline = (float(x.split(" ")[0].rstrip("),").replace(",", "")) for x in
                       (lines[1].split("profit ")[1], lines[1].split("p10/p50/p90: ")[1]))
    assert model < baseline, lines[1]  # better than a constant p10/p50/p90
    assert float(lines[2].split("concordance ")[1].split(" ")[0]) > 0.55


def test_a_bad_file_is_one_line(tmp_path):
    bad = tmp_path / "deals.csv"
    pd.DataFrame([{"Name": "x", "Price": 1}] * 5).to_csv(bad, index=False)
    unknown = tmp_path / "status.csv"
    pd.DataFrame([{"Status": "maybe", "Opened": "2026-01-01", "Closed": "2026-02-01"}] * 5).to_csv(unknown, index=False)
    for path, message in ((bad, "error: deals.csv: no status column"),
                          (unknown, "error: status.csv: status column 'Status' has values that are not won, lost or "
                                    "open: maybe"),
                          (tmp_path / "missing.csv", "error: cannot read")):
        out = subprocess.run([*DEALFLOW, "scoring", "train-deals", "--tenant", "acme", "--csv", str(path)],
                             cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
        assert out.returncode == 1 and out.stderr.startswith(message), out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
