"""Enrichment: county-records import (CLI), the property API source's failure modes, parallel sources with
partial results, and dedupe after enrichment that links and merges timelines."""

from __future__ import annotations

import subprocess
import uuid
from datetime import timedelta

import pytest
from sqlmodel import Session
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.enrichment import EnrichmentActivities
from models.lead import Lead, Property
from models.payloads import PropertyLookup
from models.tenant import Role
from providers.enrichment import CountyRecordsSource, PropertyApiSource, import_parcels, standardize
from tests.conftest import eventually, set_tenant, zone_at_local_hour
from tests.fakes.property_api import PropertyApiFake
from tests.fakes.server import Reply
from tests.integration.test_cli import DEALFLOW, _env

CSV = """address,apn,county,owner_name,owner_mailing_address,property_type,beds,baths,sqft,year_built,assessed_value,last_sale_date,last_sale_price,tax_delinquent
"4500 Oak Ridge Drive, Austin, TX 78731",0123-456,Travis,LOPEZ MARIA,"PO Box 77, Dallas, TX 75201",single_family,3,2,1680,1978,"$312,000",2004-06-15,145000,yes
"77 Peachtree Street, Atlanta, GA 30303",9-88,Fulton,SMITH JOHN,"77 Peachtree St, Atlanta, GA 30303",condo,2,2,1100,2001,250000,,,no
"not an address",,,,,,,,,,,,,
"12 Elm St, Houston, TX 77002",,,DOE JANE,,single_family,three,1,900,1950,,,,
"""


def test_cli_imports_parcels_with_progress_and_reports_bad_rows(tmp_path):
    path = tmp_path / "parcels.csv"
    path.write_text(CSV)
    unknown = subprocess.run([*DEALFLOW, "enrichment", "import", str(path), "--tenant", "acme"], cwd=tmp_path,
                             env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 1 and "unknown tenant 'acme'" in unknown.stderr
    subprocess.run([*DEALFLOW, "keys", "create", "--tenant", "acme"], cwd=tmp_path, env=_env(tmp_path),
                   capture_output=True, timeout=120, check=True)
    out = subprocess.run([*DEALFLOW, "enrichment", "import", str(path), "--tenant", "acme"], cwd=tmp_path,
                         env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "2 parcels added, 0 updated, 2 rows skipped" in out.stdout
    assert f"{path}:4: address cannot be standardised" in out.stderr
    assert f"{path}:5: column 'beds': 'three' is not a number" in out.stderr
    again = subprocess.run([*DEALFLOW, "enrichment", "import", str(path), "--tenant", "acme"], cwd=tmp_path,
                           env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert "0 parcels added, 2 updated" in again.stdout
    missing = tmp_path / "bad.csv"
    missing.write_text("street,city\n1 Main,Austin\n")
    bad = subprocess.run([*DEALFLOW, "enrichment", "import", str(missing)], cwd=tmp_path, env=_env(tmp_path),
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "needs an 'address' column" in bad.stderr and "Traceback" not in bad.stderr


@pytest.fixture
def property_api():
    fake = PropertyApiFake("prop-key").start()
    yield fake
    fake.stop()


def test_property_api_source_failure_modes(property_api, engine):
    source = PropertyApiSource(property_api.url, "prop-key", timeout=2)
    activities = EnrichmentActivities(engine, CountyRecordsSource(engine), source)
    address = standardize("4500 Oak Ridge Dr, Austin, TX 78731")
    lookup = PropertyLookup(tenant_id="t", lead_id="l", address=address.as_dict())
    property_api.properties[address.key] = {"owner_name": "LOPEZ MARIA", "beds": 3, "estimated_value": 330000}
    env = ActivityEnvironment()

    property_api.failures.append(Reply(429, {"error": "slow down"}, {"Retry-After": "7"}))
    with pytest.raises(ApplicationError) as limited:
        env.run(activities.lookup_property_api, lookup)
    assert not limited.value.non_retryable and limited.value.next_retry_delay == timedelta(seconds=7)

    property_api.failures.append(Reply(503, {"error": "down"}))
    with pytest.raises(ApplicationError) as down:
        env.run(activities.lookup_property_api, lookup)
    assert not down.value.non_retryable and down.value.type == "SourceUnavailable"

    outcome = env.run(activities.lookup_property_api, lookup)
    assert outcome.status == "ok" and outcome.facts == {"owner_name": "LOPEZ MARIA", "beds": 3,
                                                        "estimated_value": 330000}
    unknown = PropertyLookup(tenant_id="t", lead_id="l", address=standardize("1 Nowhere Rd, Austin, TX 78701").as_dict())
    assert env.run(activities.lookup_property_api, unknown).status == "no_match"

    wrong_key = EnrichmentActivities(engine, CountyRecordsSource(engine), PropertyApiSource(property_api.url, "nope"))
    with pytest.raises(ApplicationError) as refused:
        env.run(wrong_key.lookup_property_api, lookup)
    assert refused.value.non_retryable and refused.value.type == "SourceRefused"


async def test_county_records_enrich_the_lead_and_dedupe_links_the_same_owner(api, make_key, engine, tmp_path):
    tenant = f"e{uuid.uuid4().hex[:6]}"
    headers = make_key(Role.staff, tenant=tenant)
    set_tenant(engine, tenant, timezone=zone_at_local_hour(2))
    path = tmp_path / "parcels.csv"
    path.write_text(CSV)
    assert import_parcels(engine, tenant, path)["created"] == 2

    first = (await api.post("/api/v1/leads", headers=headers, json={
        "first_name": "Maria", "last_name": "Lopez", "email": f"maria.{uuid.uuid4().hex[:5]}@example.com",
        "source": "direct_mail", "property_address": "4500 Oak Ridge Dr, Austin, TX 78731"})).json()

    async def enriched(lead_id):
        body = (await api.get(f"/api/v1/leads/{lead_id}", headers=headers)).json()
        return body if body["enrichment"] and body["score"] is not None else None
    detail = await eventually(lambda: enriched(first["id"]), timeout=30)
    facts = detail["enrichment"]["facts"]
    assert facts["owner_name"] == "LOPEZ MARIA" and facts["absentee_owner"] is True and facts["tax_delinquent"]
    assert detail["enrichment"]["sources"]["county_records"]["status"] == "ok"
    assert any(r["feature"] in ("absentee_owner", "tax_delinquent", "years_owned") for r in detail["score_explanation"])
    with Session(engine) as session:
        prop = session.get(Property, detail["property"]["id"])
        assert (prop.owner_name, prop.apn, prop.beds) == ("LOPEZ MARIA", "0123-456", 3)

    # Her husband fills in the web form: another name, email and phone, same owner and address.
    second = (await api.post("/api/v1/leads", headers=headers, json={
        "first_name": "Jose", "last_name": "Ramirez", "phone": "(512) 555-0177", "source": "web_form",
        "property_address": "4500 Oak Ridge Drive, Austin, Texas 78731"})).json()
    assert second["duplicate_of"] is None  # not caught at intake

    def linked():
        with Session(engine) as session:
            return session.get(Lead, second["id"]).duplicate_of
    assert await eventually(linked, timeout=30) == first["id"]
    timeline = (await api.get(f"/api/v1/leads/{first['id']}/timeline", headers=headers)).json()
    kinds = {(e["kind"], e["lead_id"]) for e in timeline}
    assert ("lead.duplicate_linked", first["id"]) in kinds and ("lead.received", second["id"]) in kinds
    await eventually(lambda: _has_kind(api, headers, first["id"], "lead.duplicate_received"), timeout=20)
    listed = (await api.get("/api/v1/leads", headers=headers)).json()["items"]
    assert [x["id"] for x in listed] == [first["id"]]


async def _has_kind(api, headers, lead_id, kind):
    timeline = (await api.get(f"/api/v1/leads/{lead_id}/timeline", headers=headers)).json()
    return any(e["kind"] == kind for e in timeline)

