"""Enrichment sources: contact validation, USPS-style address standardisation, property/owner facts.

Sources are small classes with `lookup(...) -> dict | None`; a failure is a SourceError saying whether a
retry can help (and when: rate limits carry the provider's Retry-After).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import httpx
import phonenumbers
from disposable_email_domains import blocklist as DISPOSABLE_DOMAINS
from email_validator import EmailNotValidError, validate_email
from phonenumbers import PhoneNumberType
from phonenumbers import timezone as phone_zones
from scourgify import normalize_address_record
from scourgify.exceptions import AddressNormalizationError
from sqlalchemy import Engine
from sqlmodel import Session, select

from models.enrichment import Parcel

ROLE_ACCOUNTS = {"info", "sales", "admin", "contact", "office", "support", "hello", "team", "noreply", "no-reply"}
PHONE_TYPES = {PhoneNumberType.MOBILE: "mobile", PhoneNumberType.FIXED_LINE: "landline",
               PhoneNumberType.FIXED_LINE_OR_MOBILE: "landline_or_mobile", PhoneNumberType.VOIP: "voip",
               PhoneNumberType.TOLL_FREE: "toll_free", PhoneNumberType.PREMIUM_RATE: "premium_rate"}


class SourceError(Exception):
    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable, self.retry_after = retryable, retry_after


@dataclass(frozen=True)
class StandardAddress:
    line1: str
    line2: str | None
    city: str
    state: str
    zip: str

    @property
    def key(self) -> str:
        """The lookup key shared by parcels and leads: USPS abbreviations, upper case, one line."""
        street = f"{self.line1} {self.line2}" if self.line2 else self.line1
        return f"{street}, {self.city}, {self.state} {self.zip[:5]}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "key": self.key}


def standardize(one_line: str) -> StandardAddress:
    try:
        record = normalize_address_record(one_line)
    except (AddressNormalizationError, ValueError, KeyError) as exc:
        raise ValueError(f"address cannot be standardised: {exc}") from None
    if not record.get("postal_code") or not record.get("city"):
        raise ValueError("address cannot be standardised: city or ZIP missing")
    return StandardAddress(line1=record["address_line_1"], line2=record.get("address_line_2"),
                           city=record["city"], state=record["state"], zip=record["postal_code"])


def email_facts(email: str | None) -> dict[str, Any] | None:
    if not email:
        return None
    try:
        result = validate_email(email, check_deliverability=False)
    except EmailNotValidError as exc:
        return {"address": email, "valid": False, "reason": str(exc)}
    domain = result.domain.lower()
    return {"address": result.normalized.lower(), "valid": True, "domain": domain,
            "disposable": domain in DISPOSABLE_DOMAINS, "role_account": result.local_part.lower() in ROLE_ACCOUNTS}


def phone_facts(phone: str | None, region: str = "US") -> dict[str, Any] | None:
    if not phone:
        return None
    try:
        number = phonenumbers.parse(phone, region)
    except phonenumbers.NumberParseException as exc:
        return {"number": phone, "valid": False, "reason": str(exc)}
    valid = phonenumbers.is_valid_number(number)
    return {"number": phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), "valid": valid,
            "type": PHONE_TYPES.get(phonenumbers.number_type(number), "unknown"),
            "region": phonenumbers.region_code_for_number(number),
            "zones": [z for z in phone_zones.time_zones_for_number(number) if z != phone_zones.UNKNOWN_TIMEZONE][:3],
            "sms_capable": phonenumbers.number_type(number) in (PhoneNumberType.MOBILE,
                                                                 PhoneNumberType.FIXED_LINE_OR_MOBILE,
                                                                 PhoneNumberType.VOIP)}


def _facts_from_parcel(parcel: Parcel, address: StandardAddress) -> dict[str, Any]:
    mailing = (parcel.owner_mailing_address or "").upper()
    years_owned = None
    if parcel.last_sale_date:
        years_owned = round((date.today() - parcel.last_sale_date).days / 365.25, 1)
    return {
        "apn": parcel.apn, "county": parcel.county, "owner_name": parcel.owner_name,
        "owner_mailing_address": parcel.owner_mailing_address,
        "absentee_owner": bool(mailing) and address.line1.upper() not in mailing,
        "property_type": parcel.property_type, "beds": parcel.beds, "baths": parcel.baths, "sqft": parcel.sqft,
        "year_built": parcel.year_built,
        "assessed_value": float(parcel.assessed_value) if parcel.assessed_value is not None else None,
        "last_sale_date": parcel.last_sale_date.isoformat() if parcel.last_sale_date else None,
        "last_sale_price": float(parcel.last_sale_price) if parcel.last_sale_price is not None else None,
        "years_owned": years_owned, "tax_delinquent": parcel.tax_delinquent,
    }


class CountyRecordsSource:
    """The tenant's imported parcel CSV, matched on the standardised address."""

    name = "county_records"

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def lookup(self, tenant_id: str, address: StandardAddress) -> dict[str, Any] | None:
        with Session(self._engine) as session:
            parcel = session.exec(select(Parcel).where(Parcel.tenant_id == tenant_id,
                                                       Parcel.address_key == address.key)).first()
        return _facts_from_parcel(parcel, address) if parcel else None


class PropertyApiSource:
    """A property-data HTTP API (ATTOM/Estated style): GET {base}/property?address=...; JSON facts back."""

    name = "property_api"

    def __init__(self, base_url: str, api_key: str | None, timeout: float = 10.0) -> None:
        self._client = httpx.Client(base_url=base_url, timeout=timeout,
                                    headers={"Authorization": f"Bearer {api_key}"} if api_key else {})

    def lookup(self, tenant_id: str, address: StandardAddress) -> dict[str, Any] | None:
        try:
            response = self._client.get("/property", params={"address": address.key})
        except httpx.TimeoutException:
            raise SourceError("property API timed out", retryable=True) from None
        except httpx.HTTPError as exc:
            raise SourceError(f"property API unreachable: {exc}", retryable=True) from None
        if response.status_code == 404:
            return None
        if response.status_code == 429:
            retry_after = response.headers.get("Retry-After", "")
            raise SourceError("property API rate limit", retryable=True,
                              retry_after=float(retry_after) if retry_after.replace(".", "", 1).isdigit() else 30.0)
        if response.status_code >= 500:
            raise SourceError(f"property API {response.status_code}", retryable=True)
        if response.status_code >= 400:
            raise SourceError(f"property API refused: {response.status_code} {response.text[:200]}", retryable=False)
        data = response.json()
        return {k: data.get(k) for k in ("owner_name", "property_type", "beds", "baths", "sqft", "year_built",
                                          "estimated_value", "last_sale_date", "last_sale_price", "tax_delinquent",
                                          "owner_mailing_address") if data.get(k) is not None}


PARCEL_COLUMNS = {
    "address": "property address, one line (required)", "apn": "assessor's parcel number", "county": "county",
    "owner_name": "owner name", "owner_mailing_address": "owner's mailing address (absentee owners differ)",
    "property_type": "single_family, multi_family, condo, ...", "beds": "bedrooms", "baths": "bathrooms",
    "sqft": "living area", "year_built": "year built", "assessed_value": "assessed value ($)",
    "last_sale_date": "YYYY-MM-DD", "last_sale_price": "($)", "tax_delinquent": "yes/no",
}


def parcel_from_row(tenant_id: str, row: dict[str, str]) -> Parcel:
    """One CSV row -> Parcel. Raises ValueError naming the column at fault."""
    from datetime import date as _date
    from decimal import Decimal, InvalidOperation

    def text(name: str) -> str | None:
        value = (row.get(name) or "").strip()
        return value or None

    def number(name: str, kind=float):
        value = text(name)
        if value is None:
            return None
        try:
            return kind(float(value.replace(",", "").replace("$", "")))
        except ValueError:
            raise ValueError(f"column {name!r}: {value!r} is not a number") from None

    def money(name: str):
        value = text(name)
        try:
            return Decimal(value.replace(",", "").replace("$", "")) if value else None
        except InvalidOperation:
            raise ValueError(f"column {name!r}: {value!r} is not an amount") from None

    address = text("address")
    if not address:
        raise ValueError("column 'address' is empty")
    standard = standardize(address)
    sale = text("last_sale_date")
    try:
        sale_date = _date.fromisoformat(sale) if sale else None
    except ValueError:
        raise ValueError(f"column 'last_sale_date': {sale!r} is not YYYY-MM-DD") from None
    delinquent = text("tax_delinquent")
    return Parcel(tenant_id=tenant_id, address_key=standard.key, apn=text("apn"), county=text("county"),
                  owner_name=text("owner_name"), owner_mailing_address=text("owner_mailing_address"),
                  property_type=text("property_type"), beds=number("beds", int), baths=number("baths"),
                  sqft=number("sqft", int), year_built=number("year_built", int),
                  assessed_value=money("assessed_value"),
                  last_sale_date=sale_date, last_sale_price=money("last_sale_price"),
                  tax_delinquent=None if delinquent is None else delinquent.lower() in ("yes", "y", "true", "1"),
                  extra={k: v for k, v in row.items() if k not in PARCEL_COLUMNS and v})


def import_parcels(engine: Engine, tenant_id: str, path, progress=None) -> dict[str, Any]:
    """Upsert a parcel CSV for a tenant. Bad rows are reported (line and reason), never half-imported."""
    import csv

    created = updated = 0
    errors: list[str] = []
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "address" not in [f.strip().lower() for f in reader.fieldnames]:
            raise ValueError(f"{path}: the CSV needs an 'address' column (columns: {', '.join(PARCEL_COLUMNS)})")
        rows = [{(k or "").strip().lower(): v for k, v in r.items()} for r in reader]
    with Session(engine) as session:
        from models.tenant import Tenant

        if session.get(Tenant, tenant_id) is None:
            raise ValueError(f"unknown tenant {tenant_id!r} "
                             f"(create it with: dealflow keys create --tenant {tenant_id})")
        existing = {p.address_key: p for p in session.exec(select(Parcel).where(Parcel.tenant_id == tenant_id))}
        for line, row in enumerate(rows, start=2):
            try:
                parcel = parcel_from_row(tenant_id, row)
            except ValueError as exc:
                errors.append(f"{path}:{line}: {exc}")
            else:
                current = existing.get(parcel.address_key)
                if current:
                    for key, value in parcel.model_dump(exclude={"id", "tenant_id", "imported_at"}).items():
                        setattr(current, key, value)
                    session.add(current)
                    updated += 1
                else:
                    session.add(parcel)
                    existing[parcel.address_key] = parcel
                    created += 1
            if progress:
                progress()
        session.commit()
    return {"rows": len(rows), "created": created, "updated": updated, "errors": errors}
