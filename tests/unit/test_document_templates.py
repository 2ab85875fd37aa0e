"""Each document template renders to a PDF over a full context; a missing (or None) value fails naming every one,
before any PDF exists; what people typed is printed as typed (escaped, any script)."""

from __future__ import annotations

import copy
import hashlib
import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from providers.documents.pdf import render_document
from providers.documents.templates import KINDS, MissingValues, UnknownTemplate, render_html

WHEN = datetime(2027, 1, 5, 15, 0, tzinfo=UTC)
CONTEXT = {
    "document": {"id": "dc_test123", "date": date(2027, 1, 5)},
    "tenant": {"id": "demo", "name": "Lone Star", "legal_name": "Lone Star Home Buyers LLC",
               "signatory_name": "Sam Ortiz", "signatory_title": "Managing Member"},
    "deal": {"id": "op_1", "offer_price": Decimal("150000"), "contract_price": Decimal("155000"),
             "assignment_fee": Decimal("12500")},
    "property": {"address": "4500 Oak Ridge Dr, Austin, TX 78731", "state": "TX", "county": "Travis",
                 "apn": "0123-456"},
    "seller": {"name": "Maria Garcia", "first_name": "Maria"},
    "investor": {"name": "Dana Whitfield", "company": "Whitfield Capital LLC", "accreditation_method": "net worth"},
    "terms": {"earnest_money": Decimal("1000"), "title_company": "Capital Title", "inspection_days": 10,
              "closing_date": "2027-02-15", "offer_expires": "2027-01-12", "contract_date": "2027-01-06",
              "assignment_deposit": Decimal("2500"), "governing_state": "Texas", "offering_name": "Oak Ridge Fund I",
              "memorandum_date": "2026-12-01", "subscription_amount": Decimal("50000")},
}
# What each template must show from the context (one value of each part it is about).
SHOWS = {
    "letter_of_intent": ["$150,000.00", "Maria Garcia", "February 15, 2027", "January 12, 2027", "/sig_seller/"],
    "purchase_agreement": ["$155,000.00", "Maria Garcia", "Lone Star Home Buyers LLC", "Travis County", "0123-456",
                           "/sig_buyer/", "/date_seller/"],
    "assignment_of_contract": ["$12,500.00", "$2,500.00", "Whitfield Capital LLC", "January 6, 2027",
                               "/sig_assignee/", "/sig_assignor/"],
    "nda": ["Whitfield Capital LLC", "24 months", "Texas", "/sig_recipient/", "/sig_company/"],
    "subscription_agreement": ["Oak Ridge Fund I", "$50,000.00", "net worth", "/sig_subscriber/", "/sig_issuer/"],
}


def test_there_are_the_five_templates():
    assert set(KINDS) == set(SHOWS)


@pytest.mark.parametrize("key", sorted(SHOWS))
def test_each_template_renders_to_a_pdf(key):
    document = render_document(key, CONTEXT, created_at=WHEN)
    for text in SHOWS[key] + ["dc_test123", "Sam Ortiz, Managing Member"]:
        assert text in document.html, text
    assert document.pdf.startswith(b"%PDF-") and document.sha256 == hashlib.sha256(document.pdf).hexdigest()
    reader = PdfFileReader(io.BytesIO(document.pdf))
    assert reader.root["/Pages"]["/Count"] >= 1
    assert reader.trailer["/Info"]["/Title"] == KINDS[key].title
    # the same inputs give the same bytes: the original's hash can be reproduced
    assert render_document(key, CONTEXT, created_at=WHEN).sha256 == document.sha256


@pytest.mark.parametrize("key, drop, named", [
    ("purchase_agreement", ("deal", "contract_price"), "deal.contract_price"),
    ("purchase_agreement", ("terms", "closing_date"), "terms.closing_date"),
    ("purchase_agreement", ("seller", "name"), "seller.name"),
    ("purchase_agreement", ("tenant", "signatory_name"), "tenant.signatory_name"),
    ("letter_of_intent", ("deal", "offer_price"), "deal.offer_price"),
    ("assignment_of_contract", ("deal", "assignment_fee"), "deal.assignment_fee"),
    ("nda", ("terms", "governing_state"), "terms.governing_state"),
    ("subscription_agreement", ("investor", "accreditation_method"), "investor.accreditation_method"),
    ("subscription_agreement", ("terms", "subscription_amount"), "terms.subscription_amount"),
])
def test_a_missing_value_is_an_error_naming_it(key, drop, named):
    context = copy.deepcopy(CONTEXT)
    del context[drop[0]][drop[1]]
    with pytest.raises(MissingValues) as caught:
        render_document(key, context, created_at=WHEN)
    assert named in caught.value.missing and named in str(caught.value)
    # None is missing too, not a printed "None"
    context[drop[0]][drop[1]] = None
    with pytest.raises(MissingValues, match=named.replace(".", r"\.")):
        render_html(key, context)


def test_every_missing_value_is_named_at_once_and_a_missing_party_by_its_name():
    context = copy.deepcopy(CONTEXT)
    context["terms"] = {}
    del context["investor"]
    with pytest.raises(MissingValues) as caught:
        render_html("assignment_of_contract", context)
    assert set(caught.value.missing) == {"investor", "terms.contract_date", "terms.earnest_money",
                                         "terms.assignment_deposit", "terms.title_company", "terms.closing_date"}


def test_optional_parts_are_left_out_without_an_error():
    context = copy.deepcopy(CONTEXT)
    del context["property"]["county"], context["property"]["apn"], context["investor"]["company"]
    html = render_html("purchase_agreement", context)
    assert "County" not in html and "parcel number" not in html
    assert "Dana Whitfield" in render_html("nda", context)  # the person stands in for a missing company


def test_what_people_typed_is_printed_as_typed():
    context = copy.deepcopy(CONTEXT)
    context["seller"]["name"] = "Łukasz <b>Żółć</b> & Søn — “Ω”"
    document = render_document("purchase_agreement", context, created_at=WHEN)
    assert "Łukasz &lt;b&gt;Żółć&lt;/b&gt; &amp; Søn — “Ω”" in document.html  # escaped, not markup
    assert document.pdf.startswith(b"%PDF-")


def test_an_unknown_template_is_named_with_the_known_ones():
    with pytest.raises(UnknownTemplate, match="purchase_agreement"):
        render_html("lease", CONTEXT)


def test_a_template_cannot_reach_outside_its_values():
    context = copy.deepcopy(CONTEXT)
    context["seller"]["name"] = "{{ seller.__class__ }}"  # data is never a template
    assert "{{ seller.__class__ }}" in render_html("purchase_agreement", context)
