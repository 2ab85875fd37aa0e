"""The definition language's vocabulary (schema dealflow/v1): step kinds, actions and their parameters,
events, variables. The loader validates against this; the interpreter executes it."""

from __future__ import annotations

import re

from definitions.durations import parse_duration  # noqa: F401  (re-exported: the language's durations)
from definitions.pipelines import PIPELINES
from definitions.vocabulary import LeadStatus

SCHEMA = "dealflow/v1"
TOP_KEYS = {"schema", "key", "name", "description", "version", "subject", "trigger", "replaces", "enrollment",
            "settings", "steps"}
REQUIRED_TOP = ("schema", "key", "trigger", "steps")
STEP_KINDS = ("action", "wait", "wait_for", "branch", "parallel", "for_each", "set", "stop")
STEP_COMMON = {"id", "if", "save_as", "timeout", "retry", "on_error", "with", "name"}
KIND_EXTRAS = {"wait_for": {"on_timeout"}, "parallel": set(), "for_each": set()}
SUBJECTS = ("lead", "deal", "investor")

# Delivery outcomes of a message the definition's subject was sent (from provider webhooks).
MESSAGE_EVENTS = {"message.delivered", "message.opened", "message.clicked", "message.bounced"}
# Events staff (or integrations) record on a subject: POST /api/v1/{leads|investors}/{id}/events/{name}.
RECORDED_EVENTS = {
    "lead": {"lead.replied", "lead.note", "lead.closed", "lead.converted", "appointment.booked", "offer.sent",
             "document.signed"},
    "investor": {"investor.replied", "investor.committed", "investor.passed", "meeting.booked", "document.signed"},
}
# A deal's document for e-signature came to its end (DocumentSigningWorkflow tells the deal): data {document_id,
# kind, template, status, reason}, and signed_sha256 once completed.
DOCUMENT_EVENTS = {"document.completed", "document.declined", "document.expired", "document.voided"}
# What each subject's definitions hear: the only events their trigger, wait_for and exit_when may name
# (anything else could never happen to that subject, so naming it is an error, not a silent no-op).
# lead.scored: LeadWorkflow enriched and scored the lead ({reason: intake | engagement, probability}); the
# first touch of a new lead starts from it (the shipped speed-to-lead definition).
SUBJECT_EVENTS = {
    "lead": {"lead.created", "lead.scored", "lead.opted_out", "lead.status_changed", "schedule.daily"}
            | MESSAGE_EVENTS
            | RECORDED_EVENTS["lead"],
    "deal": {"deal.stage_changed"} | DOCUMENT_EVENTS,
    # accreditation.expiring: {days_left, expires_at, method} (AccreditationWorkflow, 30 and 7 days before);
    # accreditation.expired: the record lapsed (the investor is no longer accredited until re-verified)
    # investor.soft_committed / committed / waitlisted / funded / withdrawn: OfferingWorkflow's moves
    # ({offering_id, opportunity_id, amount, funded_amount?})
    "investor": {"investor.created", "investor.opted_out", "investor.reopened", "accreditation.recorded",
                 "accreditation.expiring", "accreditation.expired", "investor.soft_committed", "investor.waitlisted",
                 "investor.funded", "investor.withdrawn"} | MESSAGE_EVENTS | RECORDED_EVENTS["investor"],
}
EVENTS = set().union(*SUBJECT_EVENTS.values())
# Told by the relay to a running enrollment when a definition that `replaces` it starts for the same subject:
# the run ends ("handed over to <key>"). Not a name definitions may use.
HANDED_OVER = "enrollment.handed_over"
# Told by the relay to one running enrollment that staff removed the subject from (the console's "remove from this
# cadence", POST /api/v1/workflows/{id}/remove): the run ends ("removed by <who>"). Not a name definitions may use.
REMOVED = "enrollment.removed"
# Staff enrolled the subject in a published definition by hand (the console's bulk "enroll", POST /leads/bulk): the
# relay starts a run of the newest published version whatever its trigger says. Not a name definitions may use.
ENROLL_REQUESTED = "enrollment.requested"

# Actions: parameter name -> (type, required). A capability not built yet is listed in UNAVAILABLE with the
# reason, so validation says so instead of anything being stubbed.
ACTIONS: dict[str, dict[str, tuple[str, bool]]] = {
    "send_email": {"template": ("str", True)},
    "send_sms": {"template": ("str", True)},
    "create_task": {"title": ("str", True), "description": ("str", False), "due_in": ("duration", False),
                    "assignee": ("assignee", False), "team": ("team", False)},
    "set_status": {"status": ("status", True), "reason": ("str", False)},
    "score_lead": {},
    "enrich_lead": {},
    "set_stage": {"stage": ("stage", True), "reason": ("str", False)},
    "run_definition": {"key": ("definition_key", True)},
    "match_investors": {"limit": ("count", False), "accredited_only": ("bool", False)},
    "http_call": {"url": ("url", True), "method": ("method", False), "body": ("expressions", False)},
    "notify": {"to": ("recipient", True), "title": ("str", True), "message": ("str", False), "team": ("team", False),
               "email": ("bool", False)},
    # A document over the deal sent for e-signature (DocumentSigningWorkflow); `wait: true` holds the step until
    # it completes, is declined, voided or expires (then the saved result has its status).
    "request_signature": {"template": ("document_template", True), "signers": ("signers", True),
                          "signing_order": ("signing_order", False), "expires_in": ("duration", False),
                          "terms": ("expressions", False), "wait": ("bool", False)},
}
# The document templates request_signature may send (providers/documents/templates.py's KINDS; the language
# imports nothing of ours, a unit test keeps the two equal).
DOCUMENT_TEMPLATES = ("letter_of_intent", "purchase_agreement", "assignment_of_contract", "nda",
                      "subscription_agreement")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# Actions about a lead: a deal's definition acts on the deal's lead; an investor has none.
LEAD_ACTIONS = {"set_status", "score_lead", "enrich_lead"}
DEAL_ACTIONS = {"set_stage", "match_investors", "request_signature"}  # only in definitions about a deal
UNAVAILABLE: dict[str, str] = {}
STATUSES = {s.value for s in LeadStatus} - {"converted"}  # converting happens only through POST /convert
STAGE_NAMES = set().union(*(set(spec.stages) for spec in PIPELINES.values()))  # every pipeline's stages
DEFINITION_KEY = re.compile(r"^[a-z0-9][a-z0-9\-]{1,60}$")
COMMON_VARIABLES = {"now", "vars", "event"}
# The subject's own view(s) an expression may read, plus COMMON_VARIABLES, every save_as and for_each `as`.
SUBJECT_VARIABLES = {"lead": {"lead"}, "deal": {"deal", "lead"}, "investor": {"investor"}}
VARIABLES = COMMON_VARIABLES | set().union(*SUBJECT_VARIABLES.values())

