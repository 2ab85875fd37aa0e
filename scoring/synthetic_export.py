"""A synthetic CRM export for bench/ and tests: shaped like a public lead-scoring export (about 9,000 leads, 37
columns), nothing from it.

What it has, on purpose: headers capitalised and spaced as another CRM writes them (`Lead Source`, `Total Time
Spent on Website`), `Select` as the placeholder for a question left unanswered, `Google` next to `google`, numbers
with holes, Yes/No columns, dates, two identifiers (`Prospect ID`, `Lead Number`), columns with one value, and
columns filled in only after a salesperson talked to the lead (`Tags`, `Lead Quality`, `Last Notable Activity`,
`Last Activity`) or only once it converted (`Deal Closed On`).

How outcomes are drawn: a lead's log-odds start at -1.2 and move with what is known before contact (origin, source,
occupation, time on the website, visits, do-not-email, the country, specialization); the outcome is a Bernoulli draw,
so the columns known at intake alone give an AUC around 0.9. The after-contact columns are then drawn from the
outcome (tags and quality grades a salesperson wrote, knowing how the calls went), which is what makes an all-column
model look near perfect.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

ORIGINS = ["Landing Page Submission", "API", "Lead Add Form", "Lead Import"]
SOURCES = ["Google", "google", "Direct Traffic", "Olark Chat", "Organic Search", "Reference", "Welingak Website",
           "Referral Sites", "Facebook", "bing"]
OCCUPATIONS = ["Unemployed", "Working Professional", "Student", "Other", "Housewife", "Businessman"]
SPECIALIZATIONS = ["Select", "Finance Management", "Human Resource Management", "Marketing Management",
                   "Operations Management", "IT Projects Management", "Business Administration", "Banking"]
CITIES = ["Select", "Mumbai", "Thane & Outskirts", "Other Cities", "Other Cities of Maharashtra", "Tier II Cities"]
ACTIVITIES = ["Email Opened", "SMS Sent", "Olark Chat Conversation", "Page Visited on Website", "Converted to Lead",
              "Email Bounced", "Had a Phone Conversation", "Unreachable"]
EXPORTED = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)


def synthetic_export(n: int = 9000, seed: int = 11) -> pd.DataFrame:
    """The export as text cells, with `Converted` (0/1) as the outcome."""
    rng = np.random.default_rng(seed)
    pick = lambda options, p=None: rng.choice(options, n, p=p)  # noqa: E731
    origin = pick(ORIGINS, [0.53, 0.39, 0.07, 0.01])
    source = pick(SOURCES, [0.27, 0.04, 0.28, 0.19, 0.12, 0.05, 0.015, 0.015, 0.01, 0.01])
    occupation = pick(OCCUPATIONS, [0.6, 0.08, 0.1, 0.12, 0.05, 0.05])
    specialization = pick(SPECIALIZATIONS, [0.37, 0.1, 0.1, 0.1, 0.08, 0.08, 0.09, 0.08])
    minutes = np.round(rng.gamma(1.1, 9.0, n) * (rng.random(n) > 0.24), 0)
    visits = np.minimum(rng.poisson(3.4, n) * (minutes > 0), 40).astype(float)
    pages = np.round(np.where(visits > 0, rng.gamma(2.0, 1.2, n), 0.0), 2)
    no_email = rng.random(n) < 0.08
    india = rng.random(n) < 0.7
    activity_score = rng.integers(7, 19, n).astype(float)
    profile_score = rng.integers(11, 21, n).astype(float)
    logit = (-2.0 + np.select([origin == "Lead Add Form", origin == "API", origin == "Lead Import"], [3.8, -0.4, -1.5],
                              0.0)
             + np.select([source == "Reference", source == "Welingak Website", source == "Olark Chat",
                          source == "Direct Traffic"], [2.0, 3.0, -0.8, -0.4], 0.0)
             + np.select([occupation == "Working Professional", occupation == "Unemployed", occupation == "Student",
                          occupation == "Housewife"], [3.8, 0.2, -0.8, 2.5], 0.0)
             + 4.0 * (1 - np.exp(-minutes / 15)) - 1.6 * (minutes == 0) - 0.08 * np.maximum(visits - 6, 0)
             - 2.0 * no_email + 0.4 * india - 0.6 * (specialization == "Select")
             + 0.15 * (activity_score - 13))
    converted = rng.random(n) < 1 / (1 + np.exp(-logit))

    # Filled in after contact, by a salesperson who knew how the calls went.
    worked = rng.random(n) < 0.64
    tags = np.where(converted, rng.choice(["Will revert after reading the email", "Closed by Horizzon",
                                           "Lost to EINS", "Busy", "Want to take admission but has financial problems"],
                                          n, p=[0.72, 0.18, 0.06, 0.02, 0.02]),
                    rng.choice(["Ringing", "Interested in other courses", "Already a student", "switched off",
                                "Not doing further education", "Will revert after reading the email", "Busy"],
                               n, p=[0.32, 0.17, 0.15, 0.1, 0.1, 0.05, 0.11]))
    quality = np.where(converted, rng.choice(["High in Relevance", "Might be", "Not Sure", "Low in Relevance"], n,
                                             p=[0.4, 0.35, 0.15, 0.1]),
                       rng.choice(["Might be", "Not Sure", "Worst", "Low in Relevance"], n, p=[0.3, 0.35, 0.2, 0.15]))
    last_activity = np.where(converted & (rng.random(n) < 0.45), "SMS Sent",
                             rng.choice(ACTIVITIES, n, p=[0.4, 0.15, 0.12, 0.08, 0.09, 0.06, 0.04, 0.06]))
    notable = np.where(converted & (rng.random(n) < 0.4), "SMS Sent",
                       np.where(rng.random(n) < 0.5, "Modified", last_activity))
    created = [EXPORTED - timedelta(days=float(d)) for d in rng.uniform(1, 240, n)]
    closed = [(c + timedelta(days=float(rng.uniform(2, 30)))).strftime("%Y-%m-%d") if won and rng.random() < 0.9
              else "" for c, won in zip(created, converted, strict=True)]

    def maybe(values, share_missing, blank="") -> list:
        values = np.asarray(values, dtype=object)
        return np.where(rng.random(n) < share_missing, blank, values).tolist()

    def yes_no(flags) -> list[str]:
        return np.where(flags, "Yes", "No").tolist()

    number = lambda values: [f"{v:g}" for v in values]  # noqa: E731
    return pd.DataFrame({
        "Prospect ID": [str(uuid.UUID(int=int(rng.integers(0, 2**62)) << 64 | i)) for i in range(n)],
        "Lead Number": (660_000 + rng.permutation(n) * 3).astype(str),
        "Lead Origin": origin,
        "Lead Source": maybe(source, 0.004),
        "Do Not Email": yes_no(no_email),
        "Do Not Call": yes_no(rng.random(n) < 0.001),
        "Converted": converted.astype(int).astype(str),
        "TotalVisits": maybe(number(visits), 0.015),
        "Total Time Spent on Website": number(minutes * 60 + rng.integers(0, 60, n) * (minutes > 0)),
        "Page Views Per Visit": maybe(number(pages), 0.015),
        "Last Activity": maybe(last_activity, 0.01),
        "Country": maybe(np.where(india, "India", rng.choice(["United States", "United Arab Emirates", "Singapore",
                                                              "unknown"], n)), 0.26),
        "Specialization": maybe(specialization, 0.15),
        "How did you hear about X Education": maybe(rng.choice(["Select", "Online Search", "Word Of Mouth",
                                                                 "Student of SomeSchool", "Other"], n,
                                                                p=[0.7, 0.1, 0.08, 0.07, 0.05]), 0.24),
        "What is your current occupation": maybe(occupation, 0.29),
        "What matters most to you in choosing a course": maybe(np.where(rng.random(n) < 0.99, "Better Career Prospects",
                                                                        "Flexibility & Convenience"), 0.29),
        "Search": yes_no(rng.random(n) < 0.002),
        "Magazine": ["No"] * n,
        "Newspaper Article": yes_no(rng.random(n) < 0.001),
        "X Education Forums": yes_no(rng.random(n) < 0.001),
        "Deal Closed On": closed,
        "Digital Advertisement": yes_no(rng.random(n) < 0.001),
        "Through Recommendations": yes_no(rng.random(n) < 0.001),
        "Receive More Updates About Our Courses": ["No"] * n,
        "Tags": np.where(worked, tags, "").tolist(),
        "Lead Quality": np.where(worked & (rng.random(n) < 0.75), quality, "").tolist(),
        "Update me on Supply Chain Content": ["No"] * n,
        "Lead Created": [c.strftime("%Y-%m-%d %H:%M") for c in created],
        "Lead Profile": maybe(rng.choice(["Select", "Potential Lead", "Other Leads", "Student of SomeSchool",
                                          "Lateral Student"], n, p=[0.6, 0.2, 0.1, 0.07, 0.03]), 0.29),
        "City": maybe(rng.choice(CITIES, n, p=[0.32, 0.35, 0.1, 0.1, 0.08, 0.05]), 0.15),
        "Asymmetrique Activity Index": maybe(np.select([activity_score >= 15, activity_score >= 12],
                                                       ["01.High", "02.Medium"], "03.Low"), 0.45),
        "Asymmetrique Profile Index": maybe(np.select([profile_score >= 17, profile_score >= 14],
                                                      ["01.High", "02.Medium"], "03.Low"), 0.45),
        "Asymmetrique Activity Score": maybe(number(activity_score), 0.45),
        "Asymmetrique Profile Score": maybe(number(profile_score), 0.45),
        "I agree to pay the amount through cheque": ["No"] * n,
        "A free copy of Mastering The Interview": yes_no(rng.random(n) < 0.31),
        "Last Notable Activity": notable,
    })


# The columns filled in after contact (or after the outcome): what a leak check should name.
AFTER_CONTACT = ("Tags", "Lead Quality", "Last Activity", "Last Notable Activity", "Deal Closed On")
