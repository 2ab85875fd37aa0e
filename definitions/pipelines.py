"""The deal pipelines as data (pipelines.yaml): stages, allowed moves, entry rules and SLAs. Pure (no database,
no Temporal): DealWorkflow's validator calls `entry_problems` with the facts the caller read about the deal, the
API answers 409 with every problem it returns, and the definition checker knows the stage names."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel, Field
from ruamel.yaml import YAML

from definitions.durations import parse_duration
from definitions.vocabulary import Pipeline

PIPELINES_FILE = Path(__file__).with_name("pipelines.yaml")
# The deal fields an entry rule may require (Opportunity's columns; the checker refuses others at load).
DEAL_FIELDS = ("title", "asking_price", "offer_price", "contract_price", "arv", "repair_estimate", "sale_price",
               "assignment_fee", "closing_costs", "repairs_spent", "assigned_to", "property_id")


@dataclass(frozen=True)
class Sla:
    within: timedelta
    expect: str


@dataclass(frozen=True)
class Stage:
    name: str
    next: frozenset[str]
    fields: tuple[str, ...] = ()
    documents: tuple[str, ...] = ()
    reason: bool = False
    sla: Sla | None = None
    closed: bool = False


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    start: str
    stages: dict[str, Stage]
    aliases: dict[str, str]  # an old stage name a running workflow may still hold -> the stage it now is


class DealFacts(BaseModel):
    """What the rules look at, read from the database by whoever asks for the move (services/deals.py)."""

    fields_set: list[str] = Field(default_factory=list)  # deal fields with a value
    completed_documents: list[str] = Field(default_factory=list)  # templates signed for this deal


def _load(path: Path) -> dict[str, PipelineSpec]:
    raw = YAML(typ="safe").load(path.read_text())
    pipelines: dict[str, PipelineSpec] = {}
    for name, spec in raw.items():
        stages: dict[str, Stage] = {}
        for stage_name, stage in spec["stages"].items():
            requires = stage.get("requires") or {}
            sla = stage.get("sla")
            unknown = set(requires.get("fields", [])) - set(DEAL_FIELDS)
            if unknown:
                raise ValueError(f"{path.name}: {name}.{stage_name} requires unknown deal field(s) {sorted(unknown)}")
            stages[stage_name] = Stage(
                name=stage_name, next=frozenset(stage.get("next") or ()), fields=tuple(requires.get("fields", ())),
                documents=tuple(requires.get("documents", ())), reason=bool(requires.get("reason", False)),
                sla=Sla(parse_duration(sla["within"]), sla["expect"]) if sla else None,
                closed=bool(stage.get("closed", False)))
        for stage in stages.values():
            if not stage.next <= set(stages):
                raise ValueError(f"{path.name}: {name}.{stage.name} moves to unknown stage(s) "
                                 f"{sorted(stage.next - set(stages))}")
        if spec["start"] not in stages:
            raise ValueError(f"{path.name}: {name} starts in unknown stage {spec['start']!r}")
        aliases = dict(spec.get("aliases") or {})
        if not set(aliases.values()) <= set(stages):
            raise ValueError(f"{path.name}: {name}'s aliases name unknown stages")
        pipelines[name] = PipelineSpec(name=name, start=spec["start"], stages=stages, aliases=aliases)
    return pipelines


PIPELINES: dict[str, PipelineSpec] = _load(PIPELINES_FILE)
assert set(PIPELINES) == {p.value for p in Pipeline}, "pipelines.yaml and vocabulary.Pipeline disagree"


def entry_problems(pipeline: str, current: str, target: str, facts: DealFacts | None = None,
                   reason: str | None = None) -> list[str]:
    """Every reason the move is refused (empty: allowed). `facts` None checks the move alone (a caller that
    read nothing about the deal, e.g. a replayed old update)."""
    spec = PIPELINES.get(pipeline)
    if spec is None:
        return [f"unknown pipeline {pipeline!r}"]
    stage = spec.stages.get(target)
    if stage is None:
        return [f"unknown stage {target!r} (stages of {pipeline}: {', '.join(spec.stages)})"]
    current = spec.aliases.get(current, current)
    if target == current:
        return [f"the deal is already in {target}"]
    problems = []
    here = spec.stages.get(current)
    allowed = here.next if here else frozenset()
    if target not in allowed:
        problems.append(f"cannot move from {current} to {target} (allowed: "
                        f"{', '.join(sorted(allowed)) or 'none: the deal is closed'})")
    if stage.reason and not (reason or "").strip():
        problems.append(f"{target} needs a reason")
    if facts is not None:
        problems += [f"{target} needs {field.replace('_', ' ')} ({field})" for field in stage.fields
                     if field not in facts.fields_set]
        problems += [f"{target} needs a signed {document.replace('_', ' ')} ({document} completed)"
                     for document in stage.documents if document not in facts.completed_documents]
    return problems


def sla_for(pipeline: str, stage: str) -> Sla | None:
    spec = PIPELINES.get(pipeline)
    found = spec.stages.get(stage) if spec else None
    return None if found is None or found.closed else found.sla


def is_closed(pipeline: str, stage: str) -> bool:
    spec = PIPELINES.get(pipeline)
    found = spec.stages.get(stage) if spec else None
    return bool(found and found.closed)


def start_stage(pipeline: str) -> str:
    return PIPELINES[pipeline].start
