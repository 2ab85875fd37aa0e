"""The words both the definition language and the CRM use: lead statuses and the pipelines' stages with their
allowed moves. They belong to the language (a definition says `set_status: qualified`, `deal.stage ==
"under_contract"`); the tables in models/ import them from here, so definitions/ depends on nothing of ours."""

from __future__ import annotations

from enum import StrEnum


class LeadStatus(StrEnum):
    new = "new"
    contacted = "contacted"
    nurturing = "nurturing"
    qualified = "qualified"
    converted = "converted"
    dead = "dead"
    needs_review = "needs_review"  # poison input: kept, visible, not retried forever


class Pipeline(StrEnum):
    acquisition = "acquisition"
    disposition = "disposition"


# The pipelines' stages, moves, entry rules and SLAs are data: definitions/pipelines.yaml (pipelines.py).


class ReplyIntent(StrEnum):
    """What a lead's or investor's reply means (scoring/intent.py classifies every inbound SMS; staff correct it).
    A definition reads it on the reply it waited for (`wait_for: {event: lead.replied}, save_as: reply`, then
    `reply.intent`) or as `event.intent` in a trigger or exit_when on `lead.replied` / `investor.replied`."""

    interested = "interested"
    not_interested = "not_interested"
    wrong_number = "wrong_number"
    call_later = "call_later"
    asks_offer = "asks_offer"  # asks for a price or an offer
    opt_out = "opt_out"  # revokes consent in plain words: honoured like STOP
    other = "other"
