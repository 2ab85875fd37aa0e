"""Reading another CRM's export: headers, placeholders, types, ids, leakage, and the scoring side reading a lead's
custom fields exactly as training read the file."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from scoring.export import ExportSpec, LeadValues, clean, header_key, is_placeholder
from scoring.export_file import find_target, infer_column, read_export
from scoring.leakage import leak_reason
from scoring.synthetic_export import synthetic_export


def _export(n: int = 600, seed: int = 3) -> pd.DataFrame:
    """A small export with the traits of a real one: capitalised and spaced headers, placeholders, mixed types,
    two ids, a constant column, a leaky column (a salesperson's verdict) and one filled only for converted leads."""
    rng = np.random.default_rng(seed)
    minutes = rng.gamma(1.5, 10, n)
    origin = rng.choice(["Landing Page", "Lead Add Form", "API"], n)
    converted = rng.random(n) < 1 / (1 + np.exp(-(-1.5 + 0.08 * minutes + 1.2 * (origin == "Lead Add Form"))))
    verdict = np.where(converted, "Will revert", "Ringing")
    verdict = np.where(rng.random(n) < 0.03, "Busy", verdict)
    return pd.DataFrame({
        "Prospect ID": [f"7927b2df-8bba-4d29-b9a2-{i:012d}" for i in range(n)],
        "Lead Number": [str(660_000 + i) for i in range(n)],
        "Lead Origin": origin,
        "LEAD SOURCE": rng.choice(["Google", "google", "Select", "Direct Traffic", "N/A"], n),
        "Do Not Email": rng.choice(["Yes", "No"], n, p=[0.1, 0.9]),
        "Total Time Spent on Website": [f"{m * 60:,.0f}" for m in minutes],
        "Page Views Per Visit": np.where(rng.random(n) < 0.1, "-", np.round(rng.gamma(2, 1.2, n), 2).astype(str)),
        "Lead Created": [f"2026-{1 + i % 11:02d}-{1 + i % 27:02d} 10:{i % 60:02d}" for i in range(n)],
        "Magazine": ["No"] * n,
        "Empty Question": rng.choice(["Select", "", "N/A"], n),
        "Sales Verdict": verdict,
        "Deal Closed On": np.where(converted & (rng.random(n) < 0.9), "2026-11-02", ""),
        "Converted": np.where(converted, "Yes", "No"),
    })


@pytest.fixture
def export_file(tmp_path):
    path = tmp_path / "leads.csv"
    _export().to_csv(path, index=False)
    return path


def test_headers_match_case_and_punctuation_insensitively():
    assert header_key("Lead Source") == header_key("lead_source") == header_key(" LEAD-SOURCE ") == "lead_source"
    frame = pd.DataFrame(columns=["Prospect ID", "Converted", "Lead Source"])
    assert find_target(frame, "converted") == "Converted" and find_target(frame, "CONVERTED") == "Converted"
    with pytest.raises(ValueError, match=r"no column 'convertd' in the file \(nearest: 'Converted'"):
        find_target(frame, "convertd")


def test_placeholders_are_missing():
    for value in ("Select", "select ", "N/A", "-", "", "  ", None, float("nan"), "null"):
        assert is_placeholder(value), value
    for value in ("Selected", "No", "0", 0.0):
        assert not is_placeholder(value), value
    assert clean(pd.Series(["Select", " Google ", None, "N/A"])).tolist() == [None, "Google", None, None]


@pytest.mark.parametrize("values, kind, how", [
    (["Yes", "No", "yes", "Select"], "yes_no", "yes/no"),
    (["1,250", "$310,000", "12%", "", "7"], "numeric", "numeric"),
    (["2026-03-14", "2026-11-02 10:05", "N/A", "2025-12-31"], "date", "date (days since, month, weekday)"),
    (["Google", "google", "Direct Traffic", "Select"], "categorical", "categorical (2 values)"),
])
def test_types_are_inferred(values, kind, how):
    column, said = infer_column("Some Column", "some_column", pd.Series(values * 10))
    assert column is not None and column.kind == kind and said == how
    if kind == "categorical":
        assert column.categories == ["Direct Traffic", "Google"]  # Google and google are one value


@pytest.mark.parametrize("name, values, how", [
    ("Prospect ID", [f"id-{i}" for i in range(100)], "an id (named like one, unique per row)"),
    ("Lead Number", [str(660_000 + i) for i in range(100)], "an id (named like one, unique per row)"),
    ("Email", [f"person{i}@example.com" for i in range(100)], "an id (a different value on every row)"),
    ("Magazine", ["No"] * 100, "constant (one value on every row)"),
    ("Empty Question", ["Select", "", "N/A", "-"] * 25, "empty (only placeholders or blanks)"),
])
def test_ids_and_columns_that_say_nothing_are_left_out(name, values, how):
    column, said = infer_column(name, header_key(name), pd.Series(values))
    assert column is None and said == how


def test_every_other_column_is_a_feature_and_the_report_names_each(export_file):
    data = read_export(export_file, "Converted")
    report = {e["column"]: e for e in data.report}
    assert set(report) == set(_export().columns)
    assert not report["Prospect ID"]["used"] and not report["Lead Number"]["used"]
    assert not report["Magazine"]["used"] and not report["Empty Question"]["used"]
    assert report["Converted"]["how"] == "the outcome (target)"
    used = [c.name for c in data.spec.columns]
    assert used == ["Lead Origin", "LEAD SOURCE", "Do Not Email", "Total Time Spent on Website",
                    "Page Views Per Visit", "Lead Created", "Sales Verdict", "Deal Closed On"]
    assert data.X.shape == (600, len(data.spec.features)) and data.spec.features[5:8] == [
        "lead_created__days_since", "lead_created__month", "lead_created__weekday"]
    source = data.spec.columns[1]
    assert source.maps_to == "source"  # `lead source` is Dealflow's own field: read from the lead when custom lacks it


def test_a_leaky_column_is_flagged_by_name_with_its_reason_and_excluded_with_the_flag(export_file):
    data = read_export(export_file, "Converted")
    flagged = {e["column"]: e["leak"] for e in data.report if e["leak"]}
    assert set(flagged) == {"Sales Verdict", "Deal Closed On"}, flagged
    assert flagged["Sales Verdict"].startswith("alone it nearly separates converted from not (AUC ")
    assert float(flagged["Sales Verdict"].split("AUC ")[1][:4]) >= 0.9
    assert "of them converted: a value recorded once the lead had converted" in flagged["Deal Closed On"]
    excluded = read_export(export_file, "Converted", exclude_leaky=True)
    assert {"Sales Verdict", "Deal Closed On"}.isdisjoint(c.name for c in excluded.spec.columns)
    report = {e["column"]: e for e in excluded.report}
    assert not report["Sales Verdict"]["used"] and report["Sales Verdict"]["how"].endswith("left out as leaky")


def test_an_honest_strong_column_is_not_called_leaky():
    rng = np.random.default_rng(1)
    x = rng.normal(size=4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-1.5 * x))).astype(int)  # strong, but outcomes are noisy
    assert leak_reason(x, y, categorical=False) is None
    assert leak_reason(np.where(y == 1, 1.0, 0.0) + rng.normal(0, 0.1, 4000), y, categorical=False)


def test_a_lead_s_custom_fields_are_read_exactly_as_training_read_the_file(export_file):
    """The scoring side (one value at a time, no pandas) gives the numbers the training matrix has."""
    data = read_export(export_file, "Converted")
    values = LeadValues(ExportSpec.from_dict(data.spec.to_dict()))
    reference = datetime.fromisoformat(data.spec.reference)
    rows = pd.read_csv(export_file, dtype=str, keep_default_na=False).to_dict("records")
    for i in (0, 1, 7, 42, 599):
        custom = {k.lower().replace(" ", "_"): v for k, v in rows[i].items()}  # names in another spelling
        vector = values.vector(values.raw(custom, {}), reference)
        assert np.allclose(vector, data.X[i], equal_nan=True), (i, vector, data.X[i])
    missing = values.vector(values.raw({}, {"source": "web_form"}), datetime.now(UTC))
    assert all(math.isnan(v) for v in missing)  # a lead without the fields scores with missing values


def test_excel_exports_read_like_csv(tmp_path):
    frame = _export(n=200)
    frame.to_excel(tmp_path / "leads.xlsx", index=False)
    frame.to_csv(tmp_path / "leads.csv", index=False)
    xlsx, csv = read_export(tmp_path / "leads.xlsx", "converted"), read_export(tmp_path / "leads.csv", "converted")
    assert [c.name for c in xlsx.spec.columns] == [c.name for c in csv.spec.columns]
    assert np.allclose(xlsx.X, csv.X, equal_nan=True)


@pytest.mark.parametrize("content, message", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "cannot read"),
    (b"", "cannot read"),
    (b"just one column\nvalue\n", "expected a header row and lead rows with an outcome column"),
])
def test_unreadable_files_are_one_sentence(tmp_path, content, message):
    path = tmp_path / "leads.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as caught:
        read_export(path, "Converted")
    assert "\n" not in str(caught.value)


def test_the_synthetic_export_has_the_public_one_s_shape():
    frame = synthetic_export(n=500)
    assert frame.shape == (500, 37) and "Select" in set(frame["Specialization"])
    assert {"Google", "google"} <= set(frame["Lead Source"])


def test_many_leads_at_once_read_like_one_at_a_time(export_file):
    """Re-scoring a book builds its matrix column by column; a lead's score_lead builds one row: the same numbers."""
    data = read_export(export_file, "Converted")
    values = LeadValues(data.spec)
    now = datetime.now(UTC)
    rows = pd.read_csv(export_file, dtype=str, keep_default_na=False).to_dict("records")
    raws = [values.raw(r, {}) for r in rows[:50]] + [values.raw({"Total Time Spent on Website": 95,
                                                                 "Do Not Email": True}, {})]
    many = values.matrix(raws, now)
    one = np.array([values.vector(r, now) for r in raws])
    assert np.allclose(many, one, equal_nan=True)
