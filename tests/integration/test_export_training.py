"""`dealflow scoring train --csv` on another CRM's export, as a new user runs it (a subprocess against the test
database), and a lead posted later scored with the export's fields through the real API, worker and Temporal."""

from __future__ import annotations

import subprocess
import uuid

import pytest
from sqlmodel import Session

from models.lead import Lead
from models.tenant import Role
from scoring.export_file import read_export
from scoring.registry import ModelRegistry
from scoring.synthetic_export import synthetic_export
from scoring.training import train_export
from services.rescoring import rescore_leads
from tests.conftest import eventually, insert_lead
from tests.integration.test_cli import DEALFLOW, _env


@pytest.fixture(scope="module")
def export_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "leads.csv"
    synthetic_export(n=9000, seed=11).to_csv(path, index=False)  # the quoted export's size
    return path


def _train(tmp_path, database_url, *args):
    return subprocess.run([*DEALFLOW, "scoring", "train", *args], cwd=tmp_path, capture_output=True, text=True,
                          env=_env(tmp_path, DEALFLOW_DATABASE_URL=database_url, COLUMNS="200"), timeout=300)


def test_the_target_as_written_trains_on_every_column_and_reports_each(tmp_path, database_url, export_csv):
    tenant = f"ex{uuid.uuid4().hex[:6]}"
    out = _train(tmp_path, database_url, "--tenant", tenant, "--csv", str(export_csv), "--target", "Converted",
                 "--create-tenant")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"created tenant {tenant}"
    assert lines[1].startswith(f"✓ model v1 for {tenant}: cross-validated AUC 0.9") and "30 of 37 columns used" in lines[1]
    table = {line.split("  ")[0]: line for line in lines if line and not line.startswith((" ", "✓", "created"))}
    assert "yes   categorical (10 values)" in table["Tags"] and table["Tags"].rstrip().endswith("leaky")
    assert "no    an id (named like one, unique per row)" in table["Prospect ID"]
    assert "numeric" in table["Total Time Spent on Website"] and "%" in table["Total Time Spent on Website"]
    assert "  leaky: Deal Closed On: filled in for" in out.stdout
    assert out.stderr.startswith("warning: 2 column(s) look filled in after the outcome and were kept: ")
    assert "--exclude-leaky" in out.stderr

    excluded = _train(tmp_path, database_url, "--tenant", tenant, "--csv", str(export_csv), "--target", "converted",
                      "--exclude-leaky", "--activate", "always")
    assert excluded.returncode == 0 and excluded.stderr == "", excluded.stderr
    assert "28 of 37 columns used" in excluded.stdout and "left out as leaky: Deal Closed On, Tags" in excluded.stdout
    auc_all = float(lines[1].split("AUC ")[1].split(" ")[0])
    auc_honest = float(excluded.stdout.splitlines()[0].split("AUC ")[1].split(" ")[0])
    assert auc_honest < auc_all  # the leak is what made it look near perfect


@pytest.mark.parametrize("args, message", [
    (["--tenant", "nobody-here", "--target", "Converted"],
     "error: tenant 'nobody-here' does not exist: create it with `dealflow keys create --tenant nobody-here --role "
     "admin` (or train with --create-tenant)"),
    (["--tenant", "acme", "--target", "Convertd"], "error: no column 'Convertd' in the file (nearest: 'Converted'"),
    (["--tenant", "acme", "--target", "Lead Origin"],
     "error: target 'Lead Origin' has values that are neither yes nor no: api, landing page submission"),
])
def test_export_problems_are_one_line(tmp_path, database_url, export_csv, args, message):
    out = _train(tmp_path, database_url, "--csv", str(export_csv), *args)
    assert out.returncode == 1 and out.stderr.startswith(message), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


@pytest.mark.parametrize("write, message", [
    (None, "cannot read {path}: no such file"),
    (b"PK\x03\x04\x14\x00\x00\x00garbage that is no workbook", "cannot read {path}: "),
    (b"\xff\xfe\x00\x01\x02binary\x00\x00", "cannot read {path}: "),
])
def test_an_unreadable_file_is_one_line(tmp_path, database_url, write, message):
    path = tmp_path / ("leads.xlsx" if write and write.startswith(b"PK") else "leads.csv")
    if write is not None:
        path.write_bytes(write)
    out = _train(tmp_path, database_url, "--tenant", "acme", "--csv", str(path), "--target", "Converted")
    assert out.returncode == 1 and out.stderr.startswith("error: " + message.format(path=path)), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def _lead(**extra):
    return {"first_name": "Priya", "email": f"priya.{uuid.uuid4().hex[:6]}@example.com", "source": "web_form",
            **extra}


async def test_a_lead_posted_later_is_scored_with_the_export_s_fields(api, make_key, engine, settings, export_csv):
    tenant = f"ex{uuid.uuid4().hex[:6]}"
    headers = make_key(Role.staff, tenant)
    data = read_export(export_csv, "Converted", exclude_leaky=True)
    ModelRegistry(engine, settings.effective_models_dir).register(tenant, train_export(data), "export",
                                                                  activate="always")
    # The export's names in other spellings: matched the way headers are.
    custom = {"lead origin": "Lead Add Form", "What is your current occupation": "Working Professional",
              "TOTAL TIME SPENT ON WEBSITE": "1,850", "Lead Quality": "High in Relevance", "Country": "India"}
    unlikely = {"Lead Origin": "Lead Import", "Do Not Email": "Yes", "Total Time Spent on Website": 0,
                "What is your current occupation": "Student", "Lead Quality": "Worst"}
    with_fields = (await api.post("/api/v1/leads", json=_lead(custom=custom), headers=headers)).json()
    without = (await api.post("/api/v1/leads", json=_lead(), headers=headers)).json()
    cold = (await api.post("/api/v1/leads", json=_lead(custom=unlikely), headers=headers)).json()

    async def scored(lead_id):
        body = (await api.get(f"/api/v1/leads/{lead_id}", headers=headers)).json()
        return body if body["score"] is not None else None

    rich, bare = await eventually(lambda: scored(with_fields["id"]), 60), await eventually(
        lambda: scored(without["id"]), 60)
    assert rich["score_model_version"] == bare["score_model_version"] == f"{tenant}-v1-export"
    unlikely_one = await eventually(lambda: scored(cold["id"]), 60)
    assert abs(rich["score"] - bare["score"]) > 0.01, (rich["score"], bare["score"])
    assert rich["score"] > unlikely_one["score"] + 0.5, (rich["score"], unlikely_one["score"])
    texts = [r["text"] for r in rich["score_explanation"]]
    assert any(t.startswith("What is your current occupation: Working Professional +") for t in texts), texts
    assert any(t.startswith("Lead Origin: Lead Add Form +") for t in texts), texts
    assert {r["feature"] for r in rich["score_explanation"]} <= {c.name for c in data.spec.columns}
    assert all(r["text"].split(": ")[0] in {c.name for c in data.spec.columns} for r in bare["score_explanation"])


def test_rescoring_writes_every_live_lead_s_score_and_reasons(engine, tmp_path, export_csv):
    tenant, first = insert_lead(engine, custom={"Lead Origin": "Lead Add Form", "Total Time Spent on Website": 1500})
    _, second = insert_lead(engine, tenant, custom={})
    registry = ModelRegistry(engine, tmp_path)
    registry.register(tenant, train_export(read_export(export_csv, "Converted", exclude_leaky=True)), "export",
                      activate="always")
    pages = []
    result = rescore_leads(engine, registry, tenant, page=1, progress=pages.append)
    assert result == {"scored": 2, "model": f"{tenant}-v1-export"} and pages == [1, 1]
    with Session(engine) as session:
        a, b = session.get(Lead, first), session.get(Lead, second)
        assert a.score > b.score and a.score_model_version == f"{tenant}-v1-export" and a.scored_at
        assert any(r["text"].startswith("Lead Origin: Lead Add Form +") for r in a.score_explanation)
        single, reasons = registry.active(tenant).score(a.model_dump(), None, {}, a.scored_at)
    assert round(single, 4) == a.score and reasons == a.score_explanation  # the batch says what score_lead says
    # An export model without a column mapped onto engagement is re-scored without reading any; Dealflow's own
    # features read it.
    assert not registry.active(tenant).reads_engagement
    assert registry.ensure_active(insert_lead(engine)[0]).reads_engagement
