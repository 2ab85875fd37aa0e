"""Accreditation records: how an investor was found accredited, on what evidence, by whom, and until when.

An investor's current record (the newest `valid` one) is what an offering checks: a Rule 506(b) offering takes the
investor's self-certification; a 506(c) offering needs a verification (income, net worth, a third-party letter,
the minimum-investment method) that has not expired. Each method's window is a setting
(`accreditation_valid_days`); AccreditationWorkflow reminds before the end and marks the record expired at it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from models.base import new_id, time_field


class AccreditationMethod(StrEnum):
    self_certification = "self_certification"  # 506(b): the investor's questionnaire
    income = "income"  # 506(c): tax returns / W-2s for the last two years
    net_worth = "net_worth"  # 506(c): bank and brokerage statements with a credit report
    third_party_letter = "third_party_letter"  # 506(c): a broker-dealer, RIA, attorney or CPA confirms it
    minimum_investment = "minimum_investment"  # 506(c): a high minimum investment with written representations


VERIFIED = {AccreditationMethod.income, AccreditationMethod.net_worth, AccreditationMethod.third_party_letter,
            AccreditationMethod.minimum_investment}  # the methods Rule 506(c) accepts


class AccreditationStatus(StrEnum):
    valid = "valid"
    expired = "expired"
    superseded = "superseded"  # a newer record replaced it
    revoked = "revoked"


class Accreditation(SQLModel, table=True):
    __tablename__ = "accreditations"
    __table_args__ = (Index("ix_accreditations_investor", "investor_id", "created_at", "id"),
                      # recording one supersedes the one before: two recorded at once cannot both stand
                      Index("uq_accreditations_one_valid", "investor_id", unique=True,
                            postgresql_where=text("status = 'valid'"), sqlite_where=text("status = 'valid'")))
    id: str = Field(default_factory=lambda: new_id("ac"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", max_length=40)
    investor_id: str = Field(foreign_key="investors.id", max_length=40)
    method: str = Field(max_length=32)  # an AccreditationMethod
    status: str = Field(default=AccreditationStatus.valid.value, max_length=20)
    evidence_document_id: str | None = Field(default=None, foreign_key="documents.id", max_length=40)
    evidence: str | None = Field(default=None, max_length=2000)  # what was seen: "CPA letter from J. Doe, CPA #123"
    verifier: str | None = Field(default=None, max_length=200)  # the letter's author (third_party_letter)
    verified_by: str = Field(max_length=200)  # the actor who recorded it (user:<id>, key:<id>)
    verified_at: datetime = time_field()
    expires_at: datetime = time_field()
    expired_at: datetime | None = time_field(nullable=True, default_now=False)
    workflow_id: str | None = Field(default=None, max_length=200)
    created_at: datetime = time_field()
