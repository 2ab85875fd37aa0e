"""`dealflow documents verify FILE.pdf [--tenant T]` as a user runs it: exit 0 and who signed what and when for a
good PDF; exit 1 and one line on stderr for a changed one, one signed by someone else, or no such file/tenant."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from core.settings import Settings
from providers.documents.pades import sign_pdf
from providers.documents.pdf import render_document
from providers.documents.signing_keys import signing_identity
from tests.unit.test_document_templates import CONTEXT, WHEN

ROOT = Path(__file__).resolve().parents[2]
DEALFLOW = [sys.executable, "-c", "import cli; cli.main()"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("verify")
    home = folder / ".dealflow"
    original = render_document("purchase_agreement", CONTEXT, created_at=WHEN).pdf
    good = sign_pdf(original, signing_identity(Settings(home=home), "demo"), reason="Final signed copy of dc_test123")
    writer = IncrementalPdfFileWriter(io.BytesIO(good))
    page_ref, _ = writer.find_page_for_modification(0)
    page = page_ref.get_object()
    page["/Contents"] = generic.ArrayObject([page.raw_get("/Contents"), writer.add_object(
        generic.StreamObject(stream_data=b"BT /F1 30 Tf 100 400 Td (VOID) Tj ET"))])
    writer.update_container(page)
    appended = io.BytesIO()
    writer.write(appended)
    other = sign_pdf(original, signing_identity(Settings(home=folder / "elsewhere"), "demo"), reason="impostor")
    paths = {"home": home, "good": folder / "good.pdf", "tampered": folder / "tampered.pdf",
             "appended": folder / "appended.pdf", "other": folder / "other.pdf"}
    paths["good"].write_bytes(good)
    paths["tampered"].write_bytes(good.replace(b"Purchase and Sale Agreement", b"Purchase and Sale Agreemenx", 1))
    paths["appended"].write_bytes(appended.getvalue())
    paths["other"].write_bytes(other)
    return paths


def _verify(files, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DEALFLOW_")}
    environment.update({"DEALFLOW_HOME": str(files["home"]), "PYTHONPATH": str(ROOT), "COLUMNS": "80", **env})
    return subprocess.run([*DEALFLOW, "documents", "verify", *args], capture_output=True, text=True,
                          env=environment, cwd=files["home"].parent, timeout=120)


def test_a_good_pdf_says_who_signed_what_and_when(files):
    out = _verify(files, str(files["good"]), "--tenant", "demo")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"OK {files['good']}: “Purchase and Sale Agreement”, SHA-256 ")
    assert lines[0].endswith("unchanged since it was signed")
    assert lines[1].startswith("  signed by Dealflow documents (demo), Dealflow at ")
    assert lines[1].endswith("(signing time as the signer stated it, no timestamp): Final signed copy of dc_test123")
    assert out.stderr == ""
    # the default tenant when --tenant is left out
    assert _verify(files, str(files["good"]), DEALFLOW_DEFAULT_TENANT="demo").returncode == 0


@pytest.mark.parametrize("name, problem", [
    ("tampered", "DealflowSeal: the signed content was changed after signing (its digest does not match)"),
    ("appended", "DealflowSeal: the file was changed after the last signature (an incremental update adds changes "
                 "to the document's content)"),
    ("other", "DealflowSeal: signed by Dealflow documents (demo), Dealflow, which is not issued by the pinned signing "
              "root (Dealflow document signing root (demo), Dealflow)"),
])
def test_a_bad_pdf_fails_in_one_line(files, name, problem):
    out = _verify(files, str(files[name]), "--tenant", "demo")
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr.splitlines() == [f"FAILED {files[name]}: {problem}"]  # one line, no traceback


def test_no_such_file_or_tenant_is_one_line_too(files):
    missing = _verify(files, str(files["home"].parent / "nope.pdf"), "--tenant", "demo")
    assert missing.returncode == 1
    assert missing.stderr.splitlines() == [f"FAILED {files['home'].parent / 'nope.pdf'}: cannot read it: "
                                           "No such file or directory"]
    unknown = _verify(files, str(files["good"]), "--tenant", "acme")
    assert unknown.returncode == 1 and len(unknown.stderr.splitlines()) == 1
    assert "tenant acme has no signing root" in unknown.stderr
    assert not (files["home"] / "signing" / "acme").exists()  # verifying made no root for it


def test_json_for_scripts(files):
    good = _verify(files, str(files["good"]), "--tenant", "demo", "--json")
    assert good.returncode == 0
    body = json.loads(good.stdout)
    assert body["ok"] is True and body["title"] == "Purchase and Sale Agreement"
    assert body["signatures"][0]["signer"] == "Dealflow documents (demo), Dealflow"
    bad = _verify(files, str(files["other"]), "--tenant", "demo", "--json")
    assert bad.returncode == 1 and json.loads(bad.stdout)["ok"] is False
