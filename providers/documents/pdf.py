"""Rendered documents as PDF (fpdf2), with the SHA-256 of the original bytes.

A DejaVu Sans subset ships in fonts/ (Latin, Greek, Cyrillic, punctuation, currency; Bitstream Vera licence,
fonts/LICENSE): fpdf2's built-in fonts are Latin-1 only, and a seller named Łukasz or an em dash in a clause
must print as written on every machine, whatever fonts it has. The same inputs give the same bytes (the
creation date is the rendering's `created_at`, the file id derives from the content), so a hash can be
reproduced.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.fonts import TextStyle

from providers.documents.templates import kind, render_html

FONT_DIR = Path(__file__).with_name("fonts")
FONT = "DejaVu"
# Black headings and list numbers (fpdf2's defaults are dark red): these are contracts, not web pages.
TAG_STYLES = {
    "h1": TextStyle(color="#000000", font_size_pt=17, t_margin=2, b_margin=1, font_style="B"),
    "h2": TextStyle(color="#000000", font_size_pt=13, t_margin=4, b_margin=1, font_style="B"),
    "h3": TextStyle(color="#000000", font_size_pt=11, t_margin=3, b_margin=1, font_style="B"),
}


@dataclass(frozen=True)
class RenderedDocument:
    kind: str
    title: str
    pdf: bytes
    sha256: str  # of `pdf`, the original as sent for signature
    html: str


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Page(FPDF):
    footer_text = ""

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font(FONT, size=8)
        self.set_text_color(110)
        self.cell(0, 10, f"{self.footer_text}    Page {self.page_no()} of {{nb}}", align="C")
        self.set_text_color(0)


def new_pdf(*, title: str, author: str, subject: str, footer: str, created_at: datetime) -> FPDF:
    """A US Letter page with the shipped fonts, metadata and a footer naming the document on every page."""
    pdf = _Page(format="letter", unit="mm")
    pdf.footer_text = footer
    pdf.add_font(FONT, "", FONT_DIR / "DejaVuSans.ttf")
    pdf.add_font(FONT, "B", FONT_DIR / "DejaVuSans-Bold.ttf")
    pdf.add_font(FONT, "I", FONT_DIR / "DejaVuSans-Oblique.ttf")
    pdf.add_font(FONT, "BI", FONT_DIR / "DejaVuSans-Bold.ttf")
    pdf.set_title(title)
    pdf.set_author(author)
    pdf.set_subject(subject)
    pdf.set_creator("Dealflow")
    pdf.set_creation_date(created_at.astimezone(UTC))
    pdf.set_margins(22, 20, 22)
    pdf.set_auto_page_break(True, margin=22)
    pdf.set_font(FONT, size=10.5)
    pdf.add_page()
    return pdf


def html_to_pdf(html: str, *, title: str, author: str, subject: str, footer: str, created_at: datetime) -> bytes:
    pdf = new_pdf(title=title, author=author, subject=subject, footer=footer, created_at=created_at)
    pdf.write_html(html, font_family=FONT, tag_styles=TAG_STYLES, li_prefix_color="#000000")
    return bytes(pdf.output())


def render_document(key: str, context: Mapping[str, Any], *, created_at: datetime | None = None) -> RenderedDocument:
    """The template `key` over `context` as a PDF. MissingValues (nothing made) when a value it uses is missing."""
    document_kind = kind(key)
    html = render_html(key, context)
    document = context.get("document") or {}
    tenant = context.get("tenant") or {}
    pdf = html_to_pdf(html, title=document_kind.title, author=str(tenant.get("legal_name") or tenant.get("name", "")),
                      subject=document_kind.key, footer=f"{document_kind.title} · {document.get('id', '')}",
                      created_at=created_at or datetime.now(UTC))
    return RenderedDocument(kind=key, title=document_kind.title, pdf=pdf, sha256=sha256(pdf), html=html)
