"""The e-signature pieces that must agree without importing each other: the workflow's twin of ProviderEvent, the
language's list of document templates, and the definition language's request_signature and document events."""

from __future__ import annotations

import textwrap

import pytest

from definitions.language import DOCUMENT_TEMPLATES, SUBJECT_EVENTS
from definitions.loader import DefinitionInvalid, load
from models.signing import DEAL_EVENTS, EnvelopeNotice
from providers.documents.templates import KINDS
from providers.esign.base import SIGNAL, ProviderEvent
from workflows.signing import SIGNAL as WORKFLOW_SIGNAL

DEAL = """schema: dealflow/v1
key: test-deal
subject: deal
"""


def test_the_workflows_notice_is_provider_event_twin():
    assert set(EnvelopeNotice.model_fields) == set(ProviderEvent.model_fields)
    event = ProviderEvent(event_id="e1", envelope_id="env", event="signed", at="2026-12-02T10:00:00Z",
                          recipient_email="a@example.com", ip="203.0.113.1")
    assert EnvelopeNotice.model_validate(event.model_dump(mode="json")).model_dump(mode="json") == \
        event.model_dump(mode="json")
    assert WORKFLOW_SIGNAL == SIGNAL


def test_the_language_knows_every_document_template_and_event():
    assert set(DOCUMENT_TEMPLATES) == set(KINDS)
    assert set(DEAL_EVENTS.values()) <= SUBJECT_EVENTS["deal"]


def test_a_deal_definition_triggers_on_document_completed_and_requests_a_signature():
    definition = load(DEAL + textwrap.dedent("""
        trigger: {event: document.completed, when: 'event.kind == "purchase_agreement"'}
        steps:
          - id: sign
            action: request_signature
            with:
              template: assignment_of_contract
              signers: [{role: assignor, email: owner}, {role: assignee, name: Dana, email: dana@example.com}]
              signing_order: parallel
              expires_in: 3d
              terms: {closing_date: 'now'}
              wait: true
            save_as: assignment
          - {id: wait, wait_for: {event: document.declined, timeout: 1d}}
    """), "t.yaml")
    step = definition.steps[0]
    assert definition.trigger_event == "document.completed"
    assert step.params["signers"] == [{"role": "assignor", "email": "owner"},
                                      {"role": "assignee", "name": "Dana", "email": "dana@example.com"}]
    assert step.params["expires_in"] == 3 * 86400 and step.params["wait"] is True


def test_request_signature_refuses_what_it_cannot_send():
    with pytest.raises(DefinitionInvalid) as failure:
        load(DEAL + textwrap.dedent("""
            trigger: {event: deal.stage_changed}
            steps:
              - {id: a, action: request_signature, with: {template: lease, signers: [{role: seller}]}}
              - {id: b, action: request_signature, with: {template: nda, signers: [{name: x}]}}
              - {id: c, action: request_signature, with: {template: nda, signers: [{role: company}], signing_order: x}}
        """), "t.yaml")
    text = str(failure.value)
    assert "unknown document template 'lease'" in text
    assert "signers is a list of {role, name, email}" in text
    assert "signing_order is sequential or parallel" in text
    with pytest.raises(DefinitionInvalid) as failure:  # a lead has no deal to send a document about
        load("schema: dealflow/v1\nkey: t-lead\ntrigger: {event: lead.created}\nsteps:\n"
             "  - {id: a, action: request_signature, with: {template: nda, signers: [{role: company}]}}\n", "t.yaml")
    assert "moves a deal" in str(failure.value) or "subject is a lead" in str(failure.value)
