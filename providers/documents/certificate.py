"""The certificate of completion: what happened to one envelope, who signed, how they were identified, from where,
and every event with its time — the same for the built-in signing page and DocuSign (whose audit events supply
the signers' IPs and times). It is a PDF of its own, PAdES-signed like the final document, so that neither can be
changed unnoticed; it names the SHA-256 of the original sent for signature and of the final signed PDF.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fpdf.enums import TableCellFillMode
from pydantic import AwareDatetime, BaseModel, Field

from providers.documents.pades import sign_pdf
from providers.documents.pdf import FONT, new_pdf
from providers.documents.signing_keys import SigningIdentity


class SignerRecord(BaseModel):
    name: str
    email: str | None = None
    role: str  # the template's role: seller, buyer, assignee, ...
    routing_order: int | None = None
    authentication: str  # how the signer was identified, e.g. "email link (single use, expiring)"
    ip: str | None = None
    user_agent: str | None = None
    timezone: str | None = None
    consent_version: str | None = None  # the ESIGN consumer disclosure accepted
    consented_at: AwareDatetime | None = None
    viewed_at: AwareDatetime | None = None
    signed_at: AwareDatetime | None = None
    signature: str | None = None  # "typed: Maria Garcia", "drawn", or the provider's own description
    declined_at: AwareDatetime | None = None
    decline_reason: str | None = None


class AuditEvent(BaseModel):
    at: AwareDatetime
    event: str  # sent, delivered, viewed, consented, signed, completed, declined, voided, reminded, ...
    actor: str | None = None
    ip: str | None = None
    detail: str | None = None


class CompletionRecord(BaseModel):
    envelope_id: str
    document_id: str
    document_title: str
    tenant_id: str
    tenant_name: str | None = None
    provider: str  # builtin or docusign
    status: str = "completed"
    original_sha256: str = Field(pattern="^[0-9a-f]{64}$")
    final_sha256: str | None = Field(default=None, pattern="^[0-9a-f]{64}$")
    signing_order: str = "sequential"  # or parallel
    sent_at: AwareDatetime | None = None
    completed_at: AwareDatetime | None = None
    signers: list[SignerRecord]
    events: list[AuditEvent]


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


def _rows(pdf, rows: list[tuple[str, str]], widths=(45, 127)) -> None:
    with pdf.table(col_widths=widths, first_row_as_headings=False, line_height=5.2, text_align="LEFT",
                   cell_fill_color=245, cell_fill_mode=TableCellFillMode.ROWS, borders_layout="NONE") as table:
        for label, value in rows:
            row = table.row()
            pdf.set_font(FONT, "B", 9)
            row.cell(label)
            pdf.set_font(FONT, "", 9)
            row.cell(value)


def certificate_sections(record: CompletionRecord) -> list[tuple[str, list[tuple[str, str]]]]:
    """What the certificate says, as (heading, [(label, value)]) sections: the envelope, each signer, the events
    (label: the time; value: event · by · IP · detail)."""
    sections = [("Envelope", [
        ("Document", record.document_title), ("Document id", record.document_id), ("Envelope id", record.envelope_id),
        ("Sender", f"{record.tenant_name or record.tenant_id} (tenant {record.tenant_id})"),
        ("Provider", record.provider), ("Status", record.status), ("Signing order", record.signing_order),
        ("Sent", _when(record.sent_at)), ("Completed", _when(record.completed_at)),
        ("Original SHA-256", record.original_sha256), ("Final SHA-256", record.final_sha256 or "—"),
    ])]
    for i, signer in enumerate(record.signers, 1):
        rows = [("Email", signer.email or "—"), ("Routing order", str(signer.routing_order or "—")),
                ("Authentication", signer.authentication), ("IP address", signer.ip or "—"),
                ("User agent", signer.user_agent or "—"), ("Time zone", signer.timezone or "—"),
                ("Consent (ESIGN)", f"version {signer.consent_version}, accepted {_when(signer.consented_at)}"
                 if signer.consent_version else "—"),
                ("Viewed", _when(signer.viewed_at)), ("Signed", _when(signer.signed_at)),
                ("Signature", signer.signature or "—")]
        if signer.declined_at:
            rows.append(("Declined", f"{_when(signer.declined_at)}: {signer.decline_reason or 'no reason given'}"))
        sections.append((f"Signer {i}: {signer.name} ({signer.role})", rows))
    sections.append(("Events", [(_when(e.at), " · ".join([e.event, e.actor or "—", e.ip or "—", e.detail or ""]))
                                for e in sorted(record.events, key=lambda e: e.at)]))
    return sections


def completion_certificate(record: CompletionRecord, *, created_at: datetime | None = None) -> bytes:
    """The certificate as an (unsigned) PDF."""
    created_at = created_at or record.completed_at or datetime.now(UTC)
    pdf = new_pdf(title=f"Certificate of Completion — {record.document_title}", author=record.tenant_name or
                  record.tenant_id, subject="certificate_of_completion",
                  footer=f"Certificate of Completion · envelope {record.envelope_id}", created_at=created_at)
    pdf.set_font(FONT, "B", 16)
    pdf.cell(0, 9, "Certificate of Completion", new_x="LMARGIN", new_y="NEXT", align="C")
    pdf.set_font(FONT, "", 9)
    pdf.multi_cell(0, 5, "This certificate records the electronic signature of the document below: who signed, how "
                         "each signer was identified and every event of the envelope, with its time. It is signed "
                         "(PAdES) by the sender's signing certificate; `dealflow documents verify` checks it.",
                   new_x="LMARGIN", new_y="NEXT")
    parts = certificate_sections(record)[:-1]  # the events get a table of their own, below
    for heading, rows in parts:
        pdf.ln(3)
        if pdf.will_page_break(40):  # a heading with its first rows, not alone at the foot of a page
            pdf.add_page()
        if heading != "Envelope":
            pdf.set_font(FONT, "B", 11)
            pdf.cell(0, 7, heading, new_x="LMARGIN", new_y="NEXT")
        _rows(pdf, rows)
    pdf.ln(3)
    if pdf.will_page_break(30):
        pdf.add_page()
    pdf.set_font(FONT, "B", 11)
    pdf.cell(0, 7, "Events", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 8)
    with pdf.table(col_widths=(38, 24, 42, 26, 42), line_height=4.6, cell_fill_color=245, text_align="LEFT",
                   cell_fill_mode=TableCellFillMode.ROWS) as table:
        header = table.row()
        for title in ("Time (UTC)", "Event", "By", "IP", "Detail"):
            header.cell(title)
        for event in sorted(record.events, key=lambda e: e.at):
            row = table.row()
            for value in (_when(event.at).removesuffix(" UTC"), event.event, event.actor or "—", event.ip or "—",
                          event.detail or ""):
                row.cell(value)
    return bytes(pdf.output())


def signed_completion_certificate(record: CompletionRecord, identity: SigningIdentity, *,
                                  timestamp_url: str | None = None, created_at: datetime | None = None) -> bytes:
    """The certificate, PAdES-signed by the tenant's signing certificate."""
    return sign_pdf(completion_certificate(record, created_at=created_at), identity,
                    reason=f"Certificate of completion of envelope {record.envelope_id} ({record.document_id})",
                    timestamp_url=timestamp_url, field_name="DealflowCertificateSeal")
