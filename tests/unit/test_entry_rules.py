"""The pipelines' entry rules (definitions/pipelines.yaml through definitions.pipelines.entry_problems), stage by
stage for both pipelines: what each stage needs is written out here, not read from the file, so a rule dropped from
(or added to) the YAML fails a case. Each rule unmet alone is named alone; with every rule met the move passes."""

from __future__ import annotations

import pytest

from definitions.pipelines import PIPELINES, DealFacts, entry_problems

# (pipeline, stage, a stage it may be entered from, the deal fields it needs, the documents signed, a reason)
RULES = [
    ("acquisition", "new", None, (), (), False),  # the start: nothing moves back into it
    ("acquisition", "contacted", "new", (), (), False),
    ("acquisition", "appointment_set", "contacted", (), (), False),
    ("acquisition", "offer_made", "contacted", ("offer_price",), (), False),
    ("acquisition", "under_contract", "offer_made", ("contract_price",), ("purchase_agreement",), False),
    ("acquisition", "closed_won", "under_contract", ("contract_price",), (), False),
    ("acquisition", "closed_lost", "new", (), (), True),
    ("disposition", "marketing", "showing", (), (), False),
    ("disposition", "showing", "marketing", (), (), False),
    ("disposition", "buyer_offer", "showing", ("sale_price",), (), False),
    ("disposition", "assigned", "buyer_offer", ("sale_price",), ("assignment_of_contract",), False),
    ("disposition", "closed_won", "assigned", (), (), False),
    ("disposition", "closed_lost", "marketing", (), (), True),
]
IDS = [f"{pipeline}.{stage}" for pipeline, stage, *_ in RULES]


def _messages(stage: str, fields, documents, reason: bool) -> list[str]:
    return ([f"{stage} needs a reason"] if reason else []) \
        + [f"{stage} needs {f.replace('_', ' ')} ({f})" for f in fields] \
        + [f"{stage} needs a signed {d.replace('_', ' ')} ({d} completed)" for d in documents]


def test_every_stage_of_both_pipelines_is_in_the_table():
    assert {(p, s) for p, s, *_ in RULES} == {(p, s) for p, spec in PIPELINES.items() for s in spec.stages}


@pytest.mark.parametrize(("pipeline", "stage", "source", "fields", "documents", "reason"), RULES, ids=IDS)
def test_each_entry_rule_unmet_is_named(pipeline, stage, source, fields, documents, reason):
    if source is None:  # a start stage: entered from nowhere, whatever the facts
        for other in PIPELINES[pipeline].stages:
            if other != stage:
                problems = entry_problems(pipeline, other, stage, DealFacts(), None)
                assert problems and problems[0].startswith(f"cannot move from {other} to {stage}"), problems
        return
    everything = DealFacts(fields_set=list(fields), completed_documents=list(documents))
    because = "the seller chose an agent" if reason else None
    assert entry_problems(pipeline, source, stage, everything, because) == []
    # nothing known: every rule of the stage, each naming what is missing
    assert entry_problems(pipeline, source, stage, DealFacts(), None) == _messages(stage, fields, documents, reason)
    for field in fields:  # one missing at a time: that one alone
        facts = DealFacts(fields_set=[f for f in fields if f != field], completed_documents=list(documents))
        assert entry_problems(pipeline, source, stage, facts, because) == [
            f"{stage} needs {field.replace('_', ' ')} ({field})"]
    for document in documents:
        facts = DealFacts(fields_set=list(fields), completed_documents=[d for d in documents if d != document])
        assert entry_problems(pipeline, source, stage, facts, because) == [
            f"{stage} needs a signed {document.replace('_', ' ')} ({document} completed)"]
    if reason:
        assert entry_problems(pipeline, source, stage, everything, "   ") == [f"{stage} needs a reason"]
    # an unsigned document of another kind, or a field the stage does not read, is no help
    other = DealFacts(fields_set=["title", "arv"], completed_documents=["nda"])
    assert entry_problems(pipeline, source, stage, other, None) == _messages(stage, fields, documents, reason)
