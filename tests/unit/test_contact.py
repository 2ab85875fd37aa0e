import pytest
from pydantic import ValidationError

from models.contact import normalise_email, normalise_phone, parse_address
from models.lead import LeadCreate


@pytest.mark.parametrize("raw", ["(512) 555-0142", "512.555.0142", "+1 512 555 0142", "1-512-555-0142",
                                 "5125550142"])
def test_us_phone_formats_become_e164(raw):
    assert normalise_phone(raw) == "+15125550142"


def test_international_phone_keeps_its_country():
    assert normalise_phone("+44 20 7946 0958") == "+442079460958"


@pytest.mark.parametrize("raw", ["12345", "call me", "+1 000 000 0000"])
def test_bad_phones_are_rejected(raw):
    with pytest.raises(ValueError):
        normalise_phone(raw)


def test_email_is_lower_cased_and_validated():
    assert normalise_email("  John.Doe@Example.COM ") == "john.doe@example.com"
    with pytest.raises(ValueError):
        normalise_email("john@@example")


def test_one_line_address_is_parsed():
    address = parse_address("123 n main st apt 4, springfield, il 62704")
    assert (address.street, address.unit, address.city, address.state, address.zip) == (
        "123 N Main St", "apt 4", "Springfield", "IL", "62704")
    assert address.one_line == "123 N Main St apt 4, Springfield, IL 62704"


def test_address_without_zip_says_what_is_missing():
    with pytest.raises(ValueError, match="missing zip"):
        parse_address("123 Main St, Springfield, IL")


def test_lead_needs_a_way_to_reach_it():
    with pytest.raises(ValidationError, match="a lead needs an email or a phone"):
        LeadCreate(first_name="Ann", source="web_form")


def test_lead_rejects_unknown_fields_and_both_address_forms():
    with pytest.raises(ValidationError, match="extra"):
        LeadCreate(first_name="Ann", phone="5125550142", source="web_form", emial="x@y.com")
    with pytest.raises(ValidationError, match="not both"):
        LeadCreate(first_name="Ann", phone="5125550142", source="web_form",
                   property_address="1 Main St, Austin, TX 78701",
                   property={"street": "1 Main St", "city": "Austin", "state": "TX", "zip": "78701"})


def test_tags_are_normalised():
    lead = LeadCreate(first_name="Ann", phone="5125550142", source="ppc", tags=["Vacant", "vacant ", "Probate"])
    assert lead.tags == ["probate", "vacant"]
