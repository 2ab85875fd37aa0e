"""Investors (buyers and capital partners) with accreditation and buy-box preferences."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlmodel import Field, SQLModel

from models.base import json_field, money_field, new_id, time_field


class Investor(SQLModel, table=True):
    __tablename__ = "investors"
    id: str = Field(default_factory=lambda: new_id("iv"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=40)
    name: str = Field(max_length=200)
    company: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=20)
    accredited: bool = False
    accreditation_method: str | None = Field(default=None, max_length=64)  # income, net_worth, license, entity
    accreditation_verified_at: datetime | None = time_field(nullable=True, default_now=False)
    accreditation_expires_at: datetime | None = time_field(nullable=True, default_now=False)
    # Buy box: markets (states/zips), property types, price range, strategies (flip, rental, wholesale).
    preferences: dict[str, Any] = json_field()
    capital_available: Decimal | None = money_field()
    created_at: datetime = time_field()
