"""The cold-start book: synthetic leads with outcomes, so scoring works before a firm has history.

How it is generated (documented so nobody mistakes it for data): each lead gets a source, state,
property type, tags, ownership facts and engagement drawn from rough industry-typical rates for
motivated-seller marketing; its log-odds of becoming a deal start at -3.2 (about 4%) and move by
hand-set effects: a reply within a day (+1.6) or any reply (+0.9), absentee owner (+0.5), tax delinquency
(+0.7), tags probate (+0.6) / pre-foreclosure (+0.8) / vacant (+0.4) / tired landlord (+0.5) / high equity
(+0.3), referral (+0.8) or direct mail (+0.3) sources vs PPC (-0.2), long ownership (+0.04 per year up
to 20), a disposable email (-1.0), no phone (-0.6). Outcomes are Bernoulli draws, so the model has to
learn the effects back from noise: expect a cross-validated AUC around 0.75-0.8, not 1.0.

Point in time: a fifth of the rows are the same kind of lead as seen when it arrived (scored at intake) —
created moments ago, nothing sent, no reply, and "replied within a day" not yet known (missing) — with the
outcome it went on to have. So the model learns what a brand-new lead is worth before anyone has written to it,
instead of reading its missing engagement as "never replied" (or, worse, as whatever the trees default to).
Likewise facts are blanked as they go missing in practice (no county record: all county facts at once; no
email to check; no state), after the outcome was drawn from the true values, so "unknown" means "unknown".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scoring.features import FEATURES

SOURCES = ["web_form", "direct_mail", "cold_call", "ppc", "driving_for_dollars", "referral", "sms", "seo"]
STATES = ["TX", "FL", "GA", "OH", "TN", "NC", "AZ", "IN"]
TYPES = ["single_family", "multi_family", "condo", "mobile_home", "land"]


def synthetic_book(n: int = 5000, seed: int = 7) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    source = rng.choice(SOURCES, n, p=[0.25, 0.2, 0.15, 0.15, 0.08, 0.07, 0.05, 0.05])
    replies = rng.poisson(0.6, n)
    replied_fast = (replies > 0) & (rng.random(n) < 0.5)
    tags = {t: rng.random(n) < p for t, p in (("vacant", 0.12), ("probate", 0.06), ("pre_foreclosure", 0.07),
                                              ("tired_landlord", 0.1), ("high_equity", 0.25))}
    absentee = rng.random(n) < 0.3
    delinquent = rng.random(n) < 0.1
    years = np.clip(rng.gamma(2.0, 6.0, n), 0, 60)
    has_phone = rng.random(n) < 0.85
    disposable = rng.random(n) < 0.03
    frame = pd.DataFrame({
        "has_email": (rng.random(n) < 0.8).astype(float), "has_phone": has_phone.astype(float),
        "phone_mobile": np.where(has_phone, (rng.random(n) < 0.7).astype(float), np.nan),
        "email_disposable": disposable.astype(float), "absentee_owner": absentee.astype(float),
        "tax_delinquent": delinquent.astype(float), "years_owned": np.round(years, 1),
        "assessed_value": np.round(rng.lognormal(12.0, 0.5, n), -3), "sqft": rng.normal(1650, 450, n).round(),
        "year_built": rng.integers(1925, 2022, n).astype(float), "beds": rng.integers(1, 6, n).astype(float),
        "tags_count": sum(t.astype(float) for t in tags.values()),
        **{f"tag_{t}": v.astype(float) for t, v in tags.items()},
        "messages_sent": rng.integers(0, 8, n).astype(float), "replies": replies.astype(float),
        "replied_within_1d": replied_fast.astype(float), "days_since_created": rng.uniform(0, 180, n),
        "source": source, "state": rng.choice(STATES, n),
        "property_type": rng.choice(TYPES, n, p=[0.7, 0.12, 0.08, 0.06, 0.04]),
    })
    # Real exports have holes: blank out some facts at random.
    for column in ("years_owned", "assessed_value", "sqft", "year_built", "beds", "property_type"):
        frame.loc[rng.random(n) < 0.15, column] = np.nan if column != "property_type" else None
    logit = (-3.2 + 1.6 * replied_fast + 0.9 * (replies > 0) + 0.5 * absentee + 0.7 * delinquent
             + 0.6 * tags["probate"] + 0.8 * tags["pre_foreclosure"] + 0.4 * tags["vacant"]
             + 0.5 * tags["tired_landlord"] + 0.3 * tags["high_equity"]
             + np.select([source == "referral", source == "direct_mail", source == "ppc"], [0.8, 0.3, -0.2], 0.0)
             + 0.04 * np.minimum(years, 20) - 1.0 * disposable - 0.6 * ~has_phone)
    target = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    # What is not known about a lead, blanked after its outcome was drawn from what was true: no county record
    # found for a fifth (every county fact missing together), no email to check, no state given.
    no_record = rng.random(n) < 0.2
    frame.loc[no_record, ["absentee_owner", "tax_delinquent", "years_owned", "assessed_value", "sqft",
                          "year_built", "beds"]] = np.nan
    frame.loc[no_record, "property_type"] = None
    frame.loc[frame["has_email"] == 0.0, "email_disposable"] = np.nan
    frame.loc[rng.random(n) < 0.1, "state"] = None
    at_intake = rng.random(n) < 0.2  # the same leads as scored the moment they arrived
    frame.loc[at_intake, ["messages_sent", "replies"]] = 0.0
    frame.loc[at_intake, "replied_within_1d"] = np.nan
    frame.loc[at_intake, "days_since_created"] = rng.uniform(0, 0.01, int(at_intake.sum()))
    return frame[FEATURES], target


def book_leads(frame: pd.DataFrame, tenant_id: str, now, seed: int = 0) -> dict[str, list[dict]]:
    """The book's rows (synthetic_book's columns) as the CRM rows that lead_features reads back as those rows at
    `now`: leads (contact, source, tags, created_at, enrichment), their outbound messages and their replies
    (timeline entries). Rows for `insert()` into leads, messages and timeline_entries: the drift tests and
    bench/drift.py seed a database with them, then score it."""
    import uuid
    from datetime import timedelta

    rng = np.random.default_rng(seed)
    run = uuid.uuid4().hex[:8]
    leads, messages, replies = [], [], []

    def known(value):
        return None if value is None or (isinstance(value, float) and np.isnan(value)) else value

    for i, row in enumerate(frame.to_dict("records")):
        lead_id = f"ld_{run}{i:010d}"
        age = timedelta(days=float(row["days_since_created"]))
        created = now - age
        facts = {k: known(row[k]) for k in ("absentee_owner", "tax_delinquent", "years_owned", "assessed_value",
                                            "sqft", "year_built", "beds", "property_type")}
        facts = {k: (bool(v) if k in ("absentee_owner", "tax_delinquent") else v) for k, v in facts.items()
                 if v is not None}
        contact = {}
        if row["has_phone"]:
            contact["phone"] = {"type": "mobile" if row["phone_mobile"] == 1.0 else "landline"}
        if known(row["email_disposable"]) is not None:
            contact["email"] = {"disposable": bool(row["email_disposable"])}
        leads.append({
            "id": lead_id, "tenant_id": tenant_id, "first_name": "Book",
            "email": f"book{i}.{run}@example.com" if row["has_email"] else None,
            "phone": f"+1{2000000000 + i}" if row["has_phone"] else None,
            "source": row["source"], "status": "new", "custom": {},
            "tags": [t for t in ("vacant", "probate", "pre-foreclosure", "tired-landlord", "high-equity")
                     if row[f"tag_{t.replace('-', '_')}"] == 1.0],
            "enrichment": {"facts": facts, "contact": contact, "address": {"state": known(row["state"])}},
            "created_at": created, "updated_at": created})
        for k in range(int(row["messages_sent"])):
            messages.append({"id": f"ms_{run}{i:010d}{k:02d}", "tenant_id": tenant_id, "lead_id": lead_id,
                             "channel": "sms", "direction": "outbound", "to_address": "+15125550100",
                             "status": "sent", "idempotency_key": f"book:{run}:{i}:{k}", "events": [],
                             "created_at": created + age * rng.uniform(0, 1)})
        fast = row["replied_within_1d"] == 1.0
        for k in range(int(row["replies"])):
            window = min(age, timedelta(days=1)) if fast and k == 0 else age
            start = timedelta(0) if fast and k == 0 else min(timedelta(days=1, minutes=1), age)
            replies.append({"id": f"tl_{run}{i:010d}{k:02d}", "tenant_id": tenant_id, "lead_id": lead_id,
                            "kind": "lead.replied", "summary": "", "data": {}, "actor": "system",
                            "idempotency_key": f"book-reply:{run}:{i}:{k}",
                            "occurred_at": created + start + (window - start) * rng.uniform(0, 1)})
    return {"leads": leads, "messages": messages, "timeline_entries": replies}
