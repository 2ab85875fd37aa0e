"""PAdES signing and verification against the tenant's pinned root: sign → verify OK; changed bytes, an appended
incremental update, another certificate (even one with the same names), a bad timestamp all fail with the reason;
the tenant's identity is made once, 0600, and a configured PKCS#12 is used instead when set."""

from __future__ import annotations

import io
import shutil
import stat
import subprocess
import threading
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader

from core.settings import Settings
from providers.documents.certificate import (
    AuditEvent, CompletionRecord, SignerRecord, certificate_sections, signed_completion_certificate,
)
from providers.documents.pades import SigningFailed, sign_pdf, verify_pdf
from providers.documents.pdf import render_document, sha256
from providers.documents.signing_keys import SigningKeyError, make_identity, pinned_roots, signing_identity
from tests.fakes.tsa import TimestampAuthorityFake
from tests.unit.test_document_templates import CONTEXT, WHEN


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture(scope="module")
def original() -> bytes:
    return render_document("purchase_agreement", CONTEXT, created_at=WHEN).pdf


@pytest.fixture
def signed(settings, original) -> bytes:
    return sign_pdf(original, signing_identity(settings, "demo"), reason="Final signed copy of dc_test123")


def _append(pdf: bytes, change) -> bytes:
    """`pdf` plus one incremental update made by `change(writer)` (pyHanko's writer: a well-formed update)."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    change(writer)
    out = io.BytesIO()
    writer.write(out)
    assert out.getvalue().startswith(pdf)  # appended: the signed bytes are all still there
    return out.getvalue()


def test_sign_then_verify(settings, original, signed):
    assert signed.startswith(original)  # an incremental update: the original revision is kept byte for byte
    result = verify_pdf(signed, pinned_roots(settings, "demo"))
    assert result.ok, result.problem
    assert result.title == "Purchase and Sale Agreement" and result.sha256 == sha256(signed)
    [signature] = result.signatures
    assert signature.signer == "Dealflow documents (demo), Dealflow"
    assert signature.reason == "Final signed copy of dc_test123" and signature.covers_whole_file
    assert abs(signature.signed_at - datetime.now(UTC)) < timedelta(minutes=5) and not signature.timestamped
    summary = result.summary("pa.pdf")
    assert summary.startswith("OK pa.pdf: “Purchase and Sale Agreement”, SHA-256 ")
    assert "signed by Dealflow documents (demo), Dealflow at " in summary


def test_changed_bytes_fail(settings, signed):
    # same length, inside the signed byte range (the title in the document information dictionary)
    tampered = signed.replace(b"Purchase and Sale Agreement", b"Purchase and Sale Agreemenx", 1)
    assert tampered != signed and len(tampered) == len(signed)
    result = verify_pdf(tampered, pinned_roots(settings, "demo"))
    assert not result.ok
    assert result.problem == "DealflowSeal: the signed content was changed after signing (its digest does not match)"
    # the signature value itself
    start = signed.index(b"/Contents <") + len(b"/Contents <") + 200
    flipped = signed[:start] + (b"1" if signed[start:start + 1] != b"1" else b"2") + signed[start + 1:]
    assert not verify_pdf(flipped, pinned_roots(settings, "demo")).ok
    # cut short
    assert not verify_pdf(signed[: len(signed) // 2], pinned_roots(settings, "demo")).ok
    # bytes appended that make no revision: viewers ignore them, pyHanko calls them "no modification"; still not
    # the file that was signed
    junk = verify_pdf(signed + b"\n% nothing to see\n", pinned_roots(settings, "demo"))
    assert junk.problem == "DealflowSeal: 18 bytes were appended after the signed file"


def test_an_appended_incremental_update_that_changes_content_fails(settings, signed):
    def paint(writer):
        page_ref, _ = writer.find_page_for_modification(0)
        page = page_ref.get_object()
        stamp = writer.add_object(generic.StreamObject(stream_data=b"BT /F1 30 Tf 100 400 Td (PAID IN FULL) Tj ET"))
        contents = page["/Contents"]
        existing = list(contents) if isinstance(contents, generic.ArrayObject) else [page.raw_get("/Contents")]
        page["/Contents"] = generic.ArrayObject(existing + [stamp])
        writer.update_container(page)

    changed = _append(signed, paint)
    result = verify_pdf(changed, pinned_roots(settings, "demo"))
    assert not result.ok
    assert result.problem == ("DealflowSeal: the file was changed after the last signature (an incremental update "
                              "adds changes to the document's content)")
    # even a change that looks harmless (the document's language) is a change after signing
    relabelled = _append(signed, lambda w: (w.root.__setitem__("/Lang", generic.TextStringObject("fr")),
                                            w.update_root()))
    assert not verify_pdf(relabelled, pinned_roots(settings, "demo")).ok


def test_a_pdf_signed_by_another_self_signed_certificate_fails(tmp_path, settings, original, signed):
    roots = pinned_roots(settings, "demo")
    # another installation's identity for a tenant of the same name: the same subject names, another key
    impostor = signing_identity(Settings(home=tmp_path / "elsewhere"), "demo")
    result = verify_pdf(sign_pdf(original, impostor, reason="Final signed copy of dc_test123"), roots)
    assert not result.ok
    assert result.problem == ("DealflowSeal: signed by Dealflow documents (demo), Dealflow, which is not issued by "
                              "the pinned signing root (Dealflow document signing root (demo), Dealflow)")
    # and the genuine PDF does not verify against the impostor's root either
    assert not verify_pdf(signed, impostor.roots).ok


def test_unsigned_and_unreadable_files_fail(settings, original, signed):
    roots = pinned_roots(settings, "demo")
    assert verify_pdf(original, roots).problem == "the PDF carries no signature"
    assert verify_pdf(b"not a pdf", roots).problem.startswith("not a readable PDF")


def test_a_sealed_pdf_cannot_be_signed_again(settings, signed):
    with pytest.raises(SigningFailed, match="cannot sign the PDF"):
        sign_pdf(signed, signing_identity(settings, "demo"), reason="again", field_name="Second")


def test_the_identity_is_made_once_private_and_kept(settings):
    assert not (settings.home / "signing").exists()
    with pytest.raises(SigningKeyError, match="has signed no document here"):
        pinned_roots(settings, "acme")  # verifying never makes a root
    assert not (settings.home / "signing" / "acme").exists()
    identities = []
    threads = [threading.Thread(target=lambda: identities.append(signing_identity(settings, "acme")))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({i.certificate.dump() for i in identities}) == 1  # eight at once: one identity
    folder = settings.home / "signing" / "acme"
    for path in (settings.home, settings.home / "signing", folder):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert {p.name for p in folder.iterdir()} == {"root.pem", "root-key.pem", "signer.pem", "signer-key.pem", ".lock"}
    assert signing_identity(settings, "acme").certificate.dump() == identities[0].certificate.dump()
    assert pinned_roots(settings, "acme")[0].dump() == identities[0].roots[0].dump()
    # each tenant its own root
    assert signing_identity(settings, "other").roots[0].dump() != identities[0].roots[0].dump()
    with pytest.raises(SigningKeyError, match="not a tenant slug"):
        signing_identity(settings, "../etc")


def test_a_configured_pkcs12_is_used_for_every_tenant(tmp_path, original):
    root_pem, _, cert_pem, key_pem = make_identity("production")
    root = x509.load_pem_x509_certificate(root_pem)
    bundle = pkcs12.serialize_key_and_certificates(
        b"dealflow", serialization.load_pem_private_key(key_pem, None), x509.load_pem_x509_certificate(cert_pem),
        [root], serialization.BestAvailableEncryption(b"s3cret"))
    (tmp_path / "signing.p12").write_bytes(bundle)
    settings = Settings(home=tmp_path / "home", signing_pkcs12=tmp_path / "signing.p12",
                        signing_pkcs12_password="s3cret")
    signed = sign_pdf(original, signing_identity(settings, "acme"), reason="sealed")
    assert verify_pdf(signed, pinned_roots(settings, "demo")).ok  # the root pinned: the PKCS#12's self-signed one
    assert not (tmp_path / "home" / "signing").exists()  # nothing embedded was made
    wrong = Settings(home=tmp_path / "home", signing_pkcs12=tmp_path / "signing.p12", signing_pkcs12_password="x")
    with pytest.raises(SigningKeyError, match="DEALFLOW_SIGNING_PKCS12_PASSWORD"):
        signing_identity(wrong, "acme")
    # a PKCS#12 without its root needs the root pinned explicitly
    (tmp_path / "leaf.p12").write_bytes(pkcs12.serialize_key_and_certificates(
        b"x", serialization.load_pem_private_key(key_pem, None), x509.load_pem_x509_certificate(cert_pem), None,
        serialization.NoEncryption()))
    leaf_only = Settings(home=tmp_path / "home", signing_pkcs12=tmp_path / "leaf.p12")
    with pytest.raises(SigningKeyError, match="DEALFLOW_SIGNING_TRUST_ROOTS is required"):
        signing_identity(leaf_only, "acme")
    (tmp_path / "root.pem").write_bytes(root_pem)
    pinned = Settings(home=tmp_path / "home", signing_pkcs12=tmp_path / "leaf.p12",
                      signing_trust_roots=tmp_path / "root.pem")
    assert verify_pdf(sign_pdf(original, signing_identity(pinned, "acme"), reason="sealed"),
                      pinned_roots(pinned, "acme")).ok
    with pytest.raises(SigningKeyError, match="cannot read"):
        signing_identity(Settings(home=tmp_path, signing_pkcs12=tmp_path / "missing.p12"), "acme")


def test_a_timestamped_signature_verifies_with_the_authority_pinned(settings, original):
    from pyhanko.keys import load_certs_from_pemder_data

    tsa = TimestampAuthorityFake().start()
    try:
        signed = sign_pdf(original, signing_identity(settings, "demo"), reason="sealed", timestamp_url=tsa.url)
    finally:
        tsa.stop()
    assert tsa.calls("POST", "/")  # the authority was asked
    roots = pinned_roots(settings, "demo")
    tsa_roots = tuple(load_certs_from_pemder_data(tsa.root_pem))
    result = verify_pdf(signed, roots, tsa_roots)
    assert result.ok, result.problem
    assert result.signatures[0].timestamped and "(timestamped)" in result.summary("x.pdf")
    # a timestamp from an authority nobody pinned is not trusted
    untrusted = verify_pdf(signed, roots)
    assert untrusted.problem == "DealflowSeal: its timestamp is not valid or not from a trusted timestamp authority"


T0 = datetime(2027, 1, 5, 15, 0, tzinfo=UTC)
RECORD = CompletionRecord(
    envelope_id="env_123", document_id="dc_test123", document_title="Purchase and Sale Agreement", tenant_id="demo",
    tenant_name="Lone Star Home Buyers", provider="builtin", original_sha256="a" * 64, final_sha256="b" * 64,
    sent_at=T0, completed_at=T0 + timedelta(hours=3),
    signers=[SignerRecord(name="Maria Garcia", email="maria@example.com", role="seller", routing_order=1,
                          authentication="email link (single use, expires in 7 days)", ip="203.0.113.7",
                          user_agent="Mozilla/5.0 (iPhone)", timezone="America/Chicago",
                          consent_version="esign-2026-11", consented_at=T0 + timedelta(minutes=30),
                          viewed_at=T0 + timedelta(minutes=29), signed_at=T0 + timedelta(minutes=35),
                          signature="typed: Maria Garcia")],
    events=[AuditEvent(at=T0 + timedelta(minutes=35), event="signed", actor="Maria Garcia", ip="203.0.113.7"),
            AuditEvent(at=T0, event="sent", actor="key:ak_1"),
            AuditEvent(at=T0 + timedelta(minutes=29), event="viewed", actor="Maria Garcia", ip="203.0.113.7",
                       detail="Mozilla/5.0 (iPhone)")])


def test_the_certificate_of_completion_says_everything_and_is_signed(settings):
    sections = dict(certificate_sections(RECORD))
    envelope = dict(sections["Envelope"])
    assert envelope["Envelope id"] == "env_123" and envelope["Document id"] == "dc_test123"
    assert envelope["Original SHA-256"] == "a" * 64 and envelope["Final SHA-256"] == "b" * 64
    signer = dict(sections["Signer 1: Maria Garcia (seller)"])
    assert signer["Authentication"].startswith("email link") and signer["IP address"] == "203.0.113.7"
    assert signer["User agent"] == "Mozilla/5.0 (iPhone)" and signer["Time zone"] == "America/Chicago"
    assert signer["Consent (ESIGN)"] == "version esign-2026-11, accepted 2027-01-05 15:30:00 UTC"
    assert signer["Signed"] == "2027-01-05 15:35:00 UTC" and signer["Signature"] == "typed: Maria Garcia"
    # every event with its time, in order
    assert [when for when, _ in sections["Events"]] == ["2027-01-05 15:00:00 UTC", "2027-01-05 15:29:00 UTC",
                                                        "2027-01-05 15:35:00 UTC"]
    assert sections["Events"][1][1] == "viewed · Maria Garcia · 203.0.113.7 · Mozilla/5.0 (iPhone)"

    pdf = signed_completion_certificate(RECORD, signing_identity(settings, "demo"))
    result = verify_pdf(pdf, pinned_roots(settings, "demo"))
    assert result.ok and result.title == "Certificate of Completion — Purchase and Sale Agreement"
    assert result.signatures[0].reason == "Certificate of completion of envelope env_123 (dc_test123)"
    assert PdfFileReader(io.BytesIO(pdf)).root["/Pages"]["/Count"] >= 1
    if shutil.which("pdftotext"):  # the words themselves, where poppler is installed
        text = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
        for words in ("env_123", "203.0.113.7", "esign-2026-11", "a" * 40, "Maria Garcia", "America/Chicago"):
            assert words in text.replace("\n", " "), words
