"""Normalisation of contact data: lower-cased emails, E.164 phones, parsed US addresses.

Used by the API schemas' validators, so bad input becomes a 422 naming the field.
"""

from __future__ import annotations

import re
from typing import Annotated

import phonenumbers
import usaddress
from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, Field, field_validator

US_STATES = {
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS",
    "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC",
    "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY",
    "PR", "VI", "GU",
}

STATE_NAMES = {
    "ALABAMA": "AL", "ALASKA": "AK", "ARIZONA": "AZ", "ARKANSAS": "AR", "CALIFORNIA": "CA", "COLORADO": "CO",
    "CONNECTICUT": "CT", "DELAWARE": "DE", "DISTRICT OF COLUMBIA": "DC", "FLORIDA": "FL", "GEORGIA": "GA",
    "HAWAII": "HI", "IDAHO": "ID", "ILLINOIS": "IL", "INDIANA": "IN", "IOWA": "IA", "KANSAS": "KS",
    "KENTUCKY": "KY", "LOUISIANA": "LA", "MAINE": "ME", "MARYLAND": "MD", "MASSACHUSETTS": "MA", "MICHIGAN": "MI",
    "MINNESOTA": "MN", "MISSISSIPPI": "MS", "MISSOURI": "MO", "MONTANA": "MT", "NEBRASKA": "NE", "NEVADA": "NV",
    "NEW HAMPSHIRE": "NH", "NEW JERSEY": "NJ", "NEW MEXICO": "NM", "NEW YORK": "NY", "NORTH CAROLINA": "NC",
    "NORTH DAKOTA": "ND", "OHIO": "OH", "OKLAHOMA": "OK", "OREGON": "OR", "PENNSYLVANIA": "PA",
    "RHODE ISLAND": "RI", "SOUTH CAROLINA": "SC", "SOUTH DAKOTA": "SD", "TENNESSEE": "TN", "TEXAS": "TX",
    "UTAH": "UT", "VERMONT": "VT", "VIRGINIA": "VA", "WASHINGTON": "WA", "WEST VIRGINIA": "WV", "WISCONSIN": "WI",
    "WYOMING": "WY", "PUERTO RICO": "PR",
}


def normalise_email(value: str) -> str:
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None
    return result.normalized.lower()


def normalise_phone(value: str, region: str = "US") -> str:
    try:
        number = phonenumbers.parse(value.strip(), region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"{value!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# Field types for API schemas: a bad value is a 422 naming the field.
Email = Annotated[str, Field(max_length=320, json_schema_extra={"format": "email"},
                                examples=["maria.garcia@example.com"]), AfterValidator(normalise_email)]
Phone = Annotated[str, Field(max_length=40, examples=["(512) 555-0142", "+15125550142"]),
                  AfterValidator(normalise_phone)]


class PostalAddress(BaseModel):
    street: str = Field(min_length=1, max_length=200)
    unit: str | None = Field(default=None, max_length=40)
    city: str = Field(min_length=1, max_length=100)
    state: str = Field(min_length=2, max_length=40)
    zip: str = Field(pattern=r"^\d{5}(-\d{4})?$")

    @field_validator("street", "city")
    @classmethod
    def _title(cls, value: str) -> str:
        return re.sub(r"\s+", " ", value.strip()).title()

    @field_validator("state")
    @classmethod
    def _state(cls, value: str) -> str:
        value = re.sub(r"[\s.]+", " ", value.strip().upper()).strip()
        value = STATE_NAMES.get(value, value.replace(" ", ""))
        if value not in US_STATES:
            raise ValueError(f"{value!r} is not a US state code")
        return value

    @property
    def one_line(self) -> str:
        street = f"{self.street} {self.unit}" if self.unit else self.street
        return f"{street}, {self.city}, {self.state} {self.zip}"


_STREET_PARTS = (
    "AddressNumber", "StreetNamePreDirectional", "StreetNamePreType", "StreetName",
    "StreetNamePostType", "StreetNamePostDirectional",
)
_UNIT_PARTS = ("OccupancyType", "OccupancyIdentifier")


def parse_address(one_line: str) -> PostalAddress:
    """Parse a one-line US address with usaddress; raise ValueError saying what is missing."""
    try:
        tagged, kind = usaddress.tag(one_line.strip())
    except usaddress.RepeatedLabelError as exc:
        raise ValueError(f"ambiguous address: {exc.original_string!r}") from None
    if kind != "Street Address":
        raise ValueError(f"not a street address (looks like {kind.lower()})")
    street = " ".join(tagged[p] for p in _STREET_PARTS if p in tagged).strip(" ,")
    unit = " ".join(tagged[p] for p in _UNIT_PARTS if p in tagged).strip(" ,") or None
    missing = [name for name, part in (("street", street), ("city", tagged.get("PlaceName")),
                                       ("state", tagged.get("StateName")), ("zip", tagged.get("ZipCode")))
               if not part]
    if missing:
        raise ValueError(f"address is missing {', '.join(missing)}")
    return PostalAddress(
        street=street,
        unit=unit,
        city=tagged["PlaceName"].strip(" ,"),
        state=tagged["StateName"].strip(" ,."),
        zip=tagged["ZipCode"].strip(" ,"),
    )
