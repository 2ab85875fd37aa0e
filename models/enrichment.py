"""County-records parcels a tenant imports (the offline enrichment source) and scoring model versions."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import json_field, money_field, new_id, optional_json_field, time_field


class Parcel(SQLModel, table=True):
    """One row of a county-records / parcel CSV (`dealflow enrichment import parcels.csv`)."""

    __tablename__ = "parcels"
    __table_args__ = (UniqueConstraint("tenant_id", "address_key"),)
    id: str = Field(default_factory=lambda: new_id("pc"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=40)
    address_key: str = Field(max_length=400)  # USPS-standardised one line (scourgify), upper case
    apn: str | None = Field(default=None, max_length=64)
    county: str | None = Field(default=None, max_length=100)
    owner_name: str | None = Field(default=None, max_length=200)
    owner_mailing_address: str | None = Field(default=None, max_length=400)
    property_type: str | None = Field(default=None, max_length=40)
    beds: int | None = None
    baths: float | None = None
    sqft: int | None = None
    year_built: int | None = None
    assessed_value: Decimal | None = money_field()
    last_sale_date: date | None = None
    last_sale_price: Decimal | None = money_field()
    tax_delinquent: bool | None = None
    extra: dict[str, Any] = json_field()
    imported_at: datetime = time_field()


MODELS = ("lead", "deal_return", "deal_close_time")


class ScoringModel(SQLModel, table=True):
    """A trained model: file(s) + metadata. `model` says which: the lead-to-deal classifier (lead), a deal's expected
    return (deal_return: profit and ROI quantiles) or its time to close (deal_close_time). Versions count per tenant
    and model; one active version per tenant and model."""

    __tablename__ = "scoring_models"
    __table_args__ = (UniqueConstraint("tenant_id", "model", "version"),
                      Index("ix_scoring_models_active", "tenant_id", "model", "active"))
    id: str = Field(default_factory=lambda: new_id("sm"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", max_length=40)
    model: str = Field(default="lead", max_length=20, sa_column_kwargs={"server_default": "lead"})  # one of MODELS
    version: int
    kind: str = Field(max_length=20)  # cold_start, crm_history, csv / export (what it was trained on)
    path: str = Field(max_length=500)  # model JSON (xgboost's own format); a deal_return version: its directory
    features: list[str] = json_field(default_factory=list)
    metrics: dict[str, Any] = json_field()  # cv_auc, cv_auc_std, n_rows, positives, folds
    training_data_hash: str = Field(max_length=64)
    active: bool = False
    created_at: datetime = time_field()
    # A lead version's last scheduled drift check (services/drift.py: checked_at, window_days, n_current, each
    # feature's PSI, the score's): what a starting worker sets its drift gauges from, so a restart does not blind the
    # ModelDrift alert until the next check. Not in `metrics`, which retraining and rollback rewrite.
    last_drift_check: dict[str, Any] | None = optional_json_field()
