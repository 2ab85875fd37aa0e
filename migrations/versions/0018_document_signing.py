"""document signing: signers with their single-use links, applied provider events, the PDFs

Revision ID: 0018
Revises: 0017

- documents: `signing_order`, `expires_at`, `workflow_id`, `certificate_sha256`, `status_reason`, `requested_by`.
- document_signers: one row per signer (name, email, role, routing order), the built-in page's link as the
  SHA-256 of its token (unique), the consent, signature and where it was given from (IP, user agent, time zone).
- document_events: every provider event DocumentSigningWorkflow applied, once per (document, event id).
- document_files: the original, signed and certificate PDFs (bytes in the database, one per kind).
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.base

revision: str = "0018"
down_revision: Union[str, None] = "0017"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

S = sqlmodel.sql.sqltypes.AutoString
T = models.base.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signing_order", S(length=20), server_default="sequential", nullable=False))
        batch_op.add_column(sa.Column("expires_at", T(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("workflow_id", S(length=200), nullable=True))
        batch_op.add_column(sa.Column("certificate_sha256", S(length=64), nullable=True))
        batch_op.add_column(sa.Column("status_reason", S(length=500), nullable=True))
        batch_op.add_column(sa.Column("requested_by", S(length=200), nullable=True))
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.alter_column("signing_order", server_default=None)

    op.create_table(
        "document_signers",
        sa.Column("id", S(length=40), nullable=False),
        sa.Column("tenant_id", S(length=40), nullable=False),
        sa.Column("document_id", S(length=40), nullable=False),
        sa.Column("name", S(length=200), nullable=False),
        sa.Column("email", S(length=320), nullable=False),
        sa.Column("role", S(length=40), nullable=False),
        sa.Column("routing_order", sa.Integer(), nullable=False),
        sa.Column("status", S(length=20), nullable=False),
        sa.Column("token_hash", S(length=64), nullable=True),
        sa.Column("token_used_at", T(timezone=True), nullable=True),
        sa.Column("sent_at", T(timezone=True), nullable=True),
        sa.Column("viewed_at", T(timezone=True), nullable=True),
        sa.Column("consented_at", T(timezone=True), nullable=True),
        sa.Column("consent_version", S(length=40), nullable=True),
        sa.Column("signed_at", T(timezone=True), nullable=True),
        sa.Column("declined_at", T(timezone=True), nullable=True),
        sa.Column("decline_reason", S(length=500), nullable=True),
        sa.Column("signature_kind", S(length=10), nullable=True),
        sa.Column("signature_text", S(length=200), nullable=True),
        sa.Column("signature_image", S(), nullable=True),
        sa.Column("ip", S(length=64), nullable=True),
        sa.Column("user_agent", S(length=500), nullable=True),
        sa.Column("timezone", S(length=64), nullable=True),
        sa.Column("created_at", T(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"],
                                name=op.f("fk_document_signers_document_id_documents")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_document_signers_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_signers")),
        sa.UniqueConstraint("document_id", "email", name="uq_document_signers_document_id_email"),
        sa.UniqueConstraint("token_hash", name=op.f("uq_document_signers_token_hash")),
    )
    with op.batch_alter_table("document_signers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_document_signers_document_id"), ["document_id"], unique=False)

    op.create_table(
        "document_events",
        sa.Column("id", S(length=40), nullable=False),
        sa.Column("tenant_id", S(length=40), nullable=False),
        sa.Column("document_id", S(length=40), nullable=False),
        sa.Column("event_id", S(length=300), nullable=False),
        sa.Column("event", S(length=20), nullable=False),
        sa.Column("at", T(timezone=True), nullable=False),
        sa.Column("recipient_email", S(length=320), nullable=True),
        sa.Column("ip", S(length=64), nullable=True),
        sa.Column("user_agent", S(length=500), nullable=True),
        sa.Column("detail", S(length=500), nullable=True),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"],
                                name=op.f("fk_document_events_document_id_documents")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_document_events_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_events")),
        sa.UniqueConstraint("document_id", "event_id", name="uq_document_events_document_id_event_id"),
    )
    with op.batch_alter_table("document_events", schema=None) as batch_op:
        batch_op.create_index("ix_document_events_document", ["document_id", "at"], unique=False)

    op.create_table(
        "document_files",
        sa.Column("id", S(length=40), nullable=False),
        sa.Column("tenant_id", S(length=40), nullable=False),
        sa.Column("document_id", S(length=40), nullable=False),
        sa.Column("kind", S(length=20), nullable=False),
        sa.Column("sha256", S(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", T(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"],
                                name=op.f("fk_document_files_document_id_documents")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_document_files_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_files")),
        sa.UniqueConstraint("document_id", "kind", name="uq_document_files_document_id_kind"),
    )


def downgrade() -> None:
    op.drop_table("document_files")
    with op.batch_alter_table("document_events", schema=None) as batch_op:
        batch_op.drop_index("ix_document_events_document")
    op.drop_table("document_events")
    with op.batch_alter_table("document_signers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_document_signers_document_id"))
    op.drop_table("document_signers")
    with op.batch_alter_table("documents", schema=None) as batch_op:
        for column in ("requested_by", "status_reason", "certificate_sha256", "workflow_id", "expires_at",
                       "signing_order"):
            batch_op.drop_column(column)
