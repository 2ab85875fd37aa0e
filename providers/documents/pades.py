"""PAdES signatures on our PDFs (pyHanko) and their verification against a tenant's pinned root.

Signing: a PAdES baseline signature (SubFilter ETSI.CAdES.detached, SHA-256), B-B offline, B-T when a timestamp
authority is configured (`DEALFLOW_SIGNING_TIMESTAMP_URL`). A PDF that carries no signature yet gets a
certification signature allowing no changes (DocMDP P=1): viewers such as Acrobat then flag any later edit too.

Verification (`verify_pdf`) passes only when all of these hold, and otherwise says in one line what failed:
- the file parses and carries at least one signature;
- every signature is intact (the signed bytes hash to the signed digest) and cryptographically valid;
- every signer's certificate chains to one of the pinned roots (a PDF signed by any other certificate fails,
  however valid its own signature) and has the non-repudiation key usage;
- nothing was changed after the last signature: it covers the whole file, or what follows it is only
  pyHanko-recognised long-term-validation data (DSS, document timestamps); an appended incremental update that
  changes content, even a harmless-looking one, fails (pyHanko's difference analysis grades what the earlier
  signatures allow), and so do bytes appended after the signed file that make no revision at all;
- a timestamp, when present, is valid and chains to `DEALFLOW_SIGNING_TIMESTAMP_ROOTS`.

Both functions are synchronous and run pyHanko's coroutines with `asyncio.run`: call them from a sync activity,
a thread (`run_in_threadpool`) or the CLI, never from a coroutine on a running event loop.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.fields import MDPPerm, SigSeedSubFilter
from pyhanko.sign.general import SigningError
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from providers.documents.pdf import sha256
from providers.documents.signing_keys import SigningIdentity

log = logging.getLogger("dealflow.documents")
SEAL_FIELD = "DealflowSeal"


class SigningFailed(ValueError):
    """The PDF cannot be signed (unreadable, or certified allowing no further change), in one line."""


def sign_pdf(pdf: bytes, identity: SigningIdentity, *, reason: str, timestamp_url: str | None = None,
             field_name: str = SEAL_FIELD, location: str | None = None) -> bytes:
    """`pdf` with a PAdES signature by `identity` added as an incremental update (the original bytes are kept
    as they were, so the original's SHA-256 still identifies the revision that was signed)."""
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
        first = not PdfFileReader(io.BytesIO(pdf), strict=False).embedded_signatures
        meta = signers.PdfSignatureMetadata(
            field_name=field_name, md_algorithm="sha256", subfilter=SigSeedSubFilter.PADES, reason=reason,
            location=location, name=_common_name(identity.certificate),
            certify=first, docmdp_permissions=MDPPerm.NO_CHANGES)
        timestamper = HTTPTimeStamper(timestamp_url) if timestamp_url else None
        out = signers.PdfSigner(meta, signer=identity.signer, timestamper=timestamper).sign_pdf(writer)
    except (SigningError, PdfError) as exc:
        raise SigningFailed(f"cannot sign the PDF: {exc}") from None
    return out.getvalue()


def _common_name(cert: asn1_x509.Certificate) -> str:
    return cert.subject.native.get("common_name") or cert.subject.human_friendly


def who(cert: asn1_x509.Certificate) -> str:
    """A certificate's subject as people say it: common name, then organisation and e-mail when there."""
    subject = cert.subject.native
    parts = [subject.get("common_name"), subject.get("organization_name"), subject.get("email_address")]
    flat = [", ".join(p) if isinstance(p, list) else p for p in parts if p]
    return ", ".join(flat) or cert.subject.human_friendly


@dataclass(frozen=True)
class SignatureReport:
    field: str
    signer: str  # the certificate's subject
    signed_at: datetime | None  # the signer's claimed time (B-B) or the timestamp's (B-T)
    timestamped: bool
    reason: str | None
    covers_whole_file: bool


@dataclass(frozen=True)
class Verification:
    ok: bool
    problem: str | None  # one line, when not ok
    title: str | None
    sha256: str
    signatures: tuple[SignatureReport, ...]

    def summary(self, name: str) -> str:
        if not self.ok:
            return f"FAILED {name}: {self.problem}"
        what = f"“{self.title}”" if self.title else "the document"
        lines = [f"OK {name}: {what}, SHA-256 {self.sha256}, unchanged since it was signed"]
        for s in self.signatures:
            when = s.signed_at.strftime("%Y-%m-%d %H:%M:%S %Z") if s.signed_at else "an unknown time"
            how = "timestamped" if s.timestamped else "signing time as the signer stated it, no timestamp"
            lines.append(f"  signed by {s.signer} at {when} ({how})" + (f": {s.reason}" if s.reason else ""))
        return "\n".join(lines)


def _fail(problem: str, data: bytes, title: str | None = None) -> Verification:
    return Verification(ok=False, problem=problem, title=title, sha256=sha256(data), signatures=())


def _title(reader: PdfFileReader) -> str | None:
    try:
        info = reader.trailer_view.get("/Info")
        return str(info.get_object()["/Title"]) if info is not None and "/Title" in info.get_object() else None
    except (KeyError, PdfError, AttributeError, TypeError):
        return None


def verify_pdf(data: bytes, roots: tuple[asn1_x509.Certificate, ...],
               timestamp_roots: tuple[asn1_x509.Certificate, ...] = ()) -> Verification:
    """Check every signature of `data` against the pinned `roots` (see the module's docstring for the rules)."""
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        signatures = reader.embedded_signatures
    except (PdfError, ValueError, KeyError, TypeError, IndexError) as exc:
        return _fail(f"not a readable PDF ({exc})", data)
    title = _title(reader)
    if not signatures:
        return _fail("the PDF carries no signature", data, title)
    reports = []
    for index, embedded in enumerate(signatures):
        last = index == len(signatures) - 1
        name = embedded.field_name or f"signature {index + 1}"
        try:
            # fresh contexts per signature: a ValidationContext accumulates state as it validates
            status = validate_pdf_signature(
                embedded, signer_validation_context=ValidationContext(trust_roots=list(roots)),
                ts_validation_context=ValidationContext(trust_roots=list(timestamp_roots or roots)))
        except Exception as exc:  # noqa: BLE001 — a malformed signature must be a failed check, not a crash
            log.debug("signature %s could not be validated", name, exc_info=True)
            return _fail(f"{name} could not be validated ({type(exc).__name__}: {exc})", data, title)
        signer = who(status.signing_cert) if status.signing_cert else "an unknown signer"
        if not status.intact:
            return _fail(f"{name}: the signed content was changed after signing (its digest does not match)", data,
                         title)
        if not status.valid:
            return _fail(f"{name}: the signature by {signer} is not valid for its content", data, title)
        if not status.trusted:
            return _fail(f"{name}: signed by {signer}, which is not issued by the pinned signing root "
                         f"({'; '.join(who(r) for r in roots)})", data, title)
        ts = status.timestamp_validity
        if ts is not None and not (ts.intact and ts.valid and ts.trusted):
            return _fail(f"{name}: its timestamp is not valid or not from a trusted timestamp authority", data, title)
        level = status.modification_level
        whole = status.coverage == SignatureCoverageLevel.ENTIRE_FILE
        if last and not whole and level == ModificationLevel.NONE:
            # bytes after the signed revision that make no revision of their own (pyHanko sees "no modification"):
            # viewers ignore them, but the file is not the one that was signed
            return _fail(f"{name}: {len(data) - _signed_end(embedded)} bytes were appended after the signed file",
                         data, title)
        if last and not whole and (level is None or level > ModificationLevel.LTA_UPDATES):
            return _fail(f"{name}: the file was changed after the last signature (an incremental update adds "
                         f"{_what_changed(level)})", data, title)
        if not status.docmdp_ok and level is not None:
            return _fail(f"{name}: the file was changed after signing in a way the signature does not allow "
                         f"({_what_changed(level)})", data, title)
        if not status.bottom_line:
            return _fail(f"{name}: pyHanko judges the signature not valid: {status.summary()}", data, title)
        reason = embedded.sig_object.get("/Reason")
        signed_at = ts.timestamp if ts is not None else status.signer_reported_dt
        reports.append(SignatureReport(field=name, signer=signer, signed_at=signed_at, timestamped=ts is not None,
                                       reason=str(reason) if reason is not None else None, covers_whole_file=whole))
    return Verification(ok=True, problem=None, title=title, sha256=sha256(data), signatures=tuple(reports))


def _signed_end(embedded) -> int:
    byte_range = embedded.sig_object["/ByteRange"]
    return int(byte_range[2]) + int(byte_range[3])


def _what_changed(level: ModificationLevel | None) -> str:
    return {None: "changes that could not be analysed",
            ModificationLevel.FORM_FILLING: "form fields or signatures",
            ModificationLevel.ANNOTATIONS: "annotations",
            ModificationLevel.OTHER: "changes to the document's content"}.get(level, str(level))
