"""The built-in signing page's signatures on the document: a signature page appended to the original as an
incremental update (pypdf), so the original's bytes stay the first revision and its SHA-256 still identifies what
the signers were shown. Each signer gets a block: the typed name (or the drawn image), the name, role, date and
time of signing, e-mail, IP and time zone. The `/sig_<role>/` anchors in the template stay where they are (DocuSign
places its tabs there); the page says it belongs to the document above it. The seal (PAdES) goes on after this.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from datetime import UTC, datetime

from pypdf import PdfReader, PdfWriter

from providers.documents.pdf import FONT, new_pdf


@dataclass(frozen=True)
class PlacedSignature:
    name: str
    email: str
    role: str
    signed_at: datetime
    typed: str | None = None  # the typed signature
    drawn_png: bytes | None = None  # the drawn one
    ip: str | None = None
    timezone: str | None = None


def png_from_data_url(value: str | None) -> bytes | None:
    """The PNG of a canvas's data URL (`data:image/png;base64,...`); None when it is not one."""
    if not value or not value.startswith("data:image/png;base64,"):
        return None
    try:
        data = base64.b64decode(value.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if data.startswith(b"\x89PNG\r\n\x1a\n") else None


def signature_page(title: str, document_id: str, original_sha256: str, signatures: list[PlacedSignature],
                   *, created_at: datetime) -> bytes:
    pdf = new_pdf(title=f"Signatures — {title}", author="Dealflow", subject="signature_page",
                  footer=f"{title} · {document_id} · signature page", created_at=created_at)
    pdf.set_font(FONT, "B", 15)
    pdf.cell(0, 9, "Electronic signatures", new_x="LMARGIN", new_y="NEXT", align="C")
    pdf.set_font(FONT, "", 9)
    pdf.multi_cell(0, 5, f"This page is part of “{title}” (document {document_id}, original SHA-256 "
                         f"{original_sha256}). Each party below signed it electronically on the signing page, after "
                         "accepting the ESIGN consumer disclosure; the certificate of completion lists every event.",
                   new_x="LMARGIN", new_y="NEXT")
    for signature in signatures:
        pdf.ln(4)
        if pdf.will_page_break(48):
            pdf.add_page()
        pdf.set_font(FONT, "B", 11)
        pdf.cell(0, 7, f"{signature.role.replace('_', ' ').title()}: {signature.name}", new_x="LMARGIN", new_y="NEXT")
        top = pdf.get_y()
        if signature.drawn_png:
            try:
                pdf.image(io.BytesIO(signature.drawn_png), x=pdf.l_margin, y=top, h=18)
                pdf.set_y(top + 19)
            except Exception:  # noqa: BLE001 - a PNG fpdf cannot place is printed as the name instead
                signature = PlacedSignature(**{**signature.__dict__, "typed": signature.name, "drawn_png": None})
        if not signature.drawn_png:
            pdf.set_font(FONT, "I", 20)
            pdf.cell(0, 14, signature.typed or signature.name, new_x="LMARGIN", new_y="NEXT")
        pdf.set_draw_color(80)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + 90, pdf.get_y())
        pdf.set_font(FONT, "", 9)
        when = signature.signed_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        lines = [f"Name: {signature.name}   ·   E-mail: {signature.email}", f"Date: {when}"
                 + (f" (signer's time zone {signature.timezone})" if signature.timezone else ""),
                 f"Signed from IP {signature.ip or 'unknown'} · "
                 + ("drawn signature" if signature.drawn_png else "typed signature")]
        for line in lines:
            pdf.cell(0, 5, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def with_signature_page(original: bytes, page: bytes) -> bytes:
    """`original` with the pages of `page` appended as an incremental update (the original bytes are a prefix)."""
    writer = PdfWriter(io.BytesIO(original), incremental=True)
    for extra in PdfReader(io.BytesIO(page)).pages:
        writer.add_page(extra)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
