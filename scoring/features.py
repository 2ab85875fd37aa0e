"""Lead features for the lead-to-deal model, and how each one reads in plain words."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

NUMERIC = [
    "has_email", "has_phone", "phone_mobile", "email_disposable", "absentee_owner", "tax_delinquent",
    "years_owned", "assessed_value", "sqft", "year_built", "beds", "tags_count", "tag_vacant", "tag_probate",
    "tag_pre_foreclosure", "tag_tired_landlord", "tag_high_equity", "messages_sent", "replies",
    "replied_within_1d", "days_since_created",
]
CATEGORICAL = ["source", "state", "property_type"]
FEATURES = NUMERIC + CATEGORICAL
TAGS = ("vacant", "probate", "pre-foreclosure", "tired-landlord", "high-equity")
# Column names another CRM's export may use for our features (lower-cased, spaces -> underscores).
ALIASES = {"lead_source": "source", "property_state": "state", "owner_occupied": None, "absentee": "absentee_owner",
           "tax_default": "tax_delinquent", "square_feet": "sqft", "bedrooms": "beds", "type": "property_type"}


def _flag(value: Any) -> float | None:
    if value is None:
        return None
    return 1.0 if value else 0.0


def lead_features(lead: dict[str, Any], enrichment: dict[str, Any] | None, engagement: dict[str, Any],
                  now: datetime) -> dict[str, Any]:
    """One row of features from a lead (as a dict), its enrichment and its engagement counts."""
    enrichment = enrichment or {}
    facts = enrichment.get("facts") or {}
    contact = enrichment.get("contact") or {}
    phone = contact.get("phone") or {}
    email = contact.get("email") or {}
    tags = set(lead.get("tags") or [])
    created = lead.get("created_at")
    address = enrichment.get("address") or {}
    return {
        # No email / no phone is a known 0 (the book trains on it so), never missing: read as missing, a lead
        # without a phone was sent down the trees' default branch (the drift report's first find, issue 13)
        "has_email": 1.0 if lead.get("email") else 0.0, "has_phone": 1.0 if lead.get("phone") else 0.0,
        "phone_mobile": _flag(phone.get("type") == "mobile") if phone else None,
        "email_disposable": _flag(email.get("disposable")) if email else None,
        "absentee_owner": _flag(facts.get("absentee_owner")), "tax_delinquent": _flag(facts.get("tax_delinquent")),
        "years_owned": facts.get("years_owned"), "assessed_value": facts.get("assessed_value"),
        "sqft": facts.get("sqft"), "year_built": facts.get("year_built"), "beds": facts.get("beds"),
        "tags_count": float(len(tags)),
        **{f"tag_{t.replace('-', '_')}": _flag(t in tags) for t in TAGS},
        "messages_sent": float(engagement.get("messages_sent", 0)), "replies": float(engagement.get("replies", 0)),
        # Point in time: "no reply within a day" is only known once the day has passed (NaN, missing, before)
        "replied_within_1d": 1.0 if engagement.get("replied_within_1d") else (
            0.0 if created and (now - created).total_seconds() >= 86400 else None),
        "days_since_created": ((now - created).total_seconds() / 86400) if created else None,
        "source": lead.get("source"), "state": address.get("state") or (lead.get("state")),
        "property_type": facts.get("property_type"),
    }


# Features that only a lead we have written to can have: never a reason for one we have not
ENGAGEMENT = {"messages_sent", "replies", "replied_within_1d"}
# Features read from the county record: missing together when no record was found, and said once
COUNTY = {"absentee_owner", "tax_delinquent", "years_owned", "assessed_value", "sqft", "year_built", "beds",
          "property_type"}


def describe(feature: str, value: Any) -> str:
    """Plain words for a feature's value, for reasons a rep can read."""
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    if feature == "source":
        return f"source: {str(value).replace('_', ' ')}" if not missing else "source unknown"
    if feature in ("state", "property_type"):
        label = "state" if feature == "state" else "property type"
        return f"{label}: {value}" if not missing else f"{label} unknown"
    if missing:
        return f"{feature.replace('_', ' ')} unknown"
    words = {
        "has_email": ("has an email", "no email"), "has_phone": ("has a phone", "no phone"),
        "phone_mobile": ("mobile phone", "not a mobile phone"),
        "email_disposable": ("disposable email", "real email domain"),
        "absentee_owner": ("owner lives elsewhere (absentee)", "owner lives there"),
        "tax_delinquent": ("owner is tax delinquent", "property taxes paid up"),
        "replied_within_1d": ("replied within 1 day", "no reply within 1 day"),
    }
    if feature in words:
        return words[feature][0 if value else 1]
    if feature.startswith("tag_"):
        tag = feature[4:].replace("_", "-")
        return f"tagged {tag}" if value else f"not tagged {tag}"
    units = {"years_owned": "years owned", "sqft": "sq ft", "beds": "beds", "messages_sent": "messages sent",
             "replies": "replies", "days_since_created": "days since created", "tags_count": "tags",
             "year_built": "built", "assessed_value": "assessed value"}
    if feature == "year_built":
        return f"built {int(value)}"
    if feature == "days_since_created":
        return "arrived just now" if value < 1 / 24 else f"arrived {value:.0f} day{'s' * (round(value) != 1)} ago"
    if feature == "assessed_value":
        return f"assessed at ${value:,.0f}"
    return f"{value:g} {units.get(feature, feature.replace('_', ' '))}"
