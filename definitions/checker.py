"""Checks behind the loader: positions (line, column) of every YAML node, the small checks (durations,
expressions, events, keys, retry), every step kind, and CEL expressions once every name is known. Problems
are collected, never raised one by one: validation is total."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from definitions.cel import ENVIRONMENT, bounds_problem
from definitions.language import (
    ACTIONS, COMMON_VARIABLES, DEAL_ACTIONS, EVENTS, KIND_EXTRAS, LEAD_ACTIONS, STEP_COMMON, STEP_KINDS,
    SUBJECT_EVENTS, SUBJECT_VARIABLES, UNAVAILABLE, VARIABLES, parse_duration,
)
from definitions.model import Retry, Step
from definitions.params import PARAM_TYPES, hint

_IDENT = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_FOR_EACH = 100


@dataclass(frozen=True)
class Problem:
    line: int
    column: int
    message: str

    def format(self, filename: str) -> str:
        return f"{filename}:{self.line}:{self.column}: {self.message}"


class DefinitionInvalid(ValueError):
    def __init__(self, filename: str, problems: list[Problem]):
        self.filename, self.problems = filename, sorted(problems, key=lambda p: (p.line, p.column))
        super().__init__("\n".join(p.format(filename) for p in self.problems))

    def as_errors(self) -> list[dict[str, Any]]:
        return [{"line": p.line, "column": p.column, "message": p.message} for p in self.problems]


class Checker:
    def __init__(self, subject: str = "lead") -> None:
        self.subject = subject  # lead, deal or investor: decides the events, actions and variables allowed
        self.problems: list[Problem] = []
        self.step_ids: dict[str, int] = {}
        self.names: set[str] = set()  # save_as / for_each `as`, usable in expressions
        self.set_names: set[str] = set()  # `set` variables, read back as vars.<name>
        self.expressions: list[tuple[str, int, int]] = []  # checked once every name is known

    @property
    def a_subject(self) -> str:
        return f"{'an' if self.subject[0] in 'aeiou' else 'a'} {self.subject}"

    # -- positions --------------------------------------------------------------------------------

    def at(self, node: Any, key: Any = None, value: bool = False) -> tuple[int, int]:
        try:
            if key is None:
                return node.lc.line + 1, node.lc.col + 1
            if isinstance(node, CommentedSeq):
                line, col = node.lc.item(key)
            else:
                line, col = node.lc.value(key) if value else node.lc.key(key)
            return line + 1, col + 1
        except (AttributeError, KeyError, TypeError, IndexError):
            return 1, 1

    def error(self, where: tuple[int, int], message: str) -> None:
        self.problems.append(Problem(where[0], where[1], message))

    # -- small checks -----------------------------------------------------------------------------

    def duration(self, node, key) -> float | None:
        try:
            return parse_duration(node[key]).total_seconds()
        except ValueError as exc:
            self.error(self.at(node, key, True), str(exc))
            return None

    def expression(self, node, key) -> str | None:
        text = node[key]
        if not isinstance(text, str) or not text.strip():
            self.error(self.at(node, key, True), f"'{key}' must be a CEL expression in quotes")
            return None
        self.expressions.append((text, *self.at(node, key, True)))
        return text

    def event(self, node, key) -> str | None:
        name = node[key]
        heard = SUBJECT_EVENTS[self.subject]
        if name not in EVENTS:
            self.error(self.at(node, key, True), f"unknown event '{name}'{hint(name, heard)}")
            return None
        if name not in heard:
            self.error(self.at(node, key, True), f"event '{name}' never happens to {self.a_subject} "
                                                 f"({self.a_subject} definition hears: {', '.join(sorted(heard))})")
            return None
        return name

    def keys(self, node: CommentedMap, allowed: set[str], what: str) -> None:
        for key in node:
            if key not in allowed:
                self.error(self.at(node, key), f"unknown key '{key}' in {what}{hint(key, allowed)}")

    def retry(self, node, key) -> Retry | None:
        spec = node[key]
        if not isinstance(spec, CommentedMap):
            self.error(self.at(node, key, True), "retry must be a mapping like {max_attempts: 5, initial: 30s}")
            return None
        self.keys(spec, {"max_attempts", "initial", "backoff"}, "retry")
        retry = Retry()
        if "max_attempts" in spec:
            if not isinstance(spec["max_attempts"], int) or not 1 <= spec["max_attempts"] <= 50:
                self.error(self.at(spec, "max_attempts", True), "max_attempts must be a whole number from 1 to 50")
            else:
                retry.max_attempts = spec["max_attempts"]
        if "initial" in spec:
            retry.initial_seconds = self.duration(spec, "initial") or retry.initial_seconds
        if "backoff" in spec:
            if not isinstance(spec["backoff"], int | float) or not 1 <= spec["backoff"] <= 10:
                self.error(self.at(spec, "backoff", True), "backoff must be a number from 1 to 10")
            else:
                retry.backoff = float(spec["backoff"])
        return retry

    # -- steps --------------------------------------------------------------------------------------

    def steps(self, node, key, parent: str) -> list[Step]:
        seq = node[key]
        if not isinstance(seq, CommentedSeq) or not seq:
            self.error(self.at(node, key, True), f"'{key}' must be a non-empty list of steps")
            return []
        compiled: list[Step] = []
        stopped_at = None
        for index in range(len(seq)):
            if stopped_at is not None:
                self.error(self.at(seq, index), f"unreachable: it comes after the unconditional stop on line "
                                                f"{stopped_at}")
                break
            step = self.step(seq, index, f"{parent}{index + 1}" if parent else f"step{index + 1}")
            if step:
                compiled.append(step)
                if step.kind == "stop" and not step.if_:
                    stopped_at = step.line
        return compiled

    def step(self, seq, index: int, default_id: str) -> Step | None:
        node = seq[index]
        where = self.at(seq, index)
        if not isinstance(node, CommentedMap):
            self.error(where, "a step must be a mapping like {id: welcome, action: send_email, with: {...}}")
            return None
        kinds = [k for k in STEP_KINDS if k in node]
        allowed = STEP_COMMON | set(STEP_KINDS) | set().union(*KIND_EXTRAS.values())
        self.keys(node, allowed, "a step")
        if len(kinds) != 1:
            self.error(where, "a step needs exactly one of: " + ", ".join(STEP_KINDS)
                       + (f" (found {', '.join(kinds)})" if kinds else ""))
            return None
        kind = kinds[0]
        step_id = str(node.get("id", default_id))
        if "id" in node:
            if not _IDENT.match(step_id):
                self.error(self.at(node, "id", True), f"step id '{step_id}' must be lower-case letters, digits, _")
            elif step_id in self.step_ids:
                self.error(self.at(node, "id", True), f"duplicate step id '{step_id}' (first on line "
                                                      f"{self.step_ids[step_id]})")
        self.step_ids.setdefault(step_id, where[0])
        step = Step(id=step_id, kind=kind, line=where[0])
        if "if" in node:
            step.if_ = self.expression(node, "if")
        if "save_as" in node:
            if not _IDENT.match(str(node["save_as"])):
                self.error(self.at(node, "save_as", True), "save_as must be a lower-case name")
            else:
                step.save_as = node["save_as"]
                self.names.add(step.save_as)
        if "timeout" in node and kind != "wait_for":
            step.timeout_seconds = self.duration(node, "timeout")
        if "retry" in node:
            step.retry = self.retry(node, "retry")
        if "on_error" in node:
            if node["on_error"] not in ("stop", "continue"):
                self.error(self.at(node, "on_error", True), "on_error must be stop or continue")
            else:
                step.on_error = node["on_error"]
        if "with" in node and kind != "action":
            self.error(self.at(node, "with"), "'with' only goes with an action")
        if "on_timeout" in node and kind != "wait_for":
            self.error(self.at(node, "on_timeout"), "'on_timeout' only goes with wait_for")
        getattr(self, f"_{kind}")(node, step)
        return step

    def _action(self, node, step: Step) -> None:
        name = node["action"]
        if name in UNAVAILABLE:
            self.error(self.at(node, "action", True), f"action '{name}' is not available yet: {UNAVAILABLE[name]}")
            return
        if name not in ACTIONS:
            self.error(self.at(node, "action", True),
                       f"unknown action '{name}'{hint(name, set(ACTIONS) | set(UNAVAILABLE))}")
            return
        if name in LEAD_ACTIONS and self.subject == "investor":
            self.error(self.at(node, "action", True), f"action '{name}' acts on a lead; this definition's subject "
                                                      "is an investor")
        if name in DEAL_ACTIONS and self.subject != "deal":
            self.error(self.at(node, "action", True), f"action '{name}' moves a deal; this definition's subject "
                                                      f"is {self.a_subject} (use subject: deal)")
        step.action = name
        spec = ACTIONS[name]
        params = node.get("with") or CommentedMap()
        if not isinstance(params, CommentedMap):
            self.error(self.at(node, "with", True), "'with' must be a mapping of parameters")
            return
        for key in params:
            if key not in spec:
                self.error(self.at(params, key), f"unknown parameter '{key}' for {name}{hint(key, spec)}"
                           + ("" if spec else f" ({name} takes no parameters)"))
        for key, (kind, required) in spec.items():
            if key not in params:
                if required:
                    self.error(self.at(node, "action", True), f"{name} needs '{key}' in 'with'")
                continue
            value = params[key]
            if kind == "duration":
                seconds = self.duration(params, key)
                if seconds is not None:
                    step.params[key] = seconds
            elif kind == "expressions":
                if not isinstance(value, CommentedMap):
                    self.error(self.at(params, key, True), f"'{key}' is a mapping of names to expressions, "
                                                           "e.g. {lead_id: 'lead.id', hot: 'score.probability > 0.7'}")
                    continue
                step.params[key] = {str(name): self.expression(value, name) for name in value}
            else:
                accepts, message = PARAM_TYPES[kind]
                if accepts(value):
                    # plain data for the compiled definition (ruamel's CommentedSeq/Map carry line numbers)
                    step.params[key] = [dict(v) for v in value] if kind == "signers" else value
                else:
                    self.error(self.at(params, key, True), message(key, value))
        # `team` says whose turn (round_robin) or whose managers (notify): with anyone else it would be ignored
        if "team" in params and ((name == "create_task" and params.get("assignee") != "round_robin")
                                 or (name == "notify" and params.get("to") not in ("managers", "owner"))):
            self.error(self.at(params, "team"), "'team' goes with assignee: round_robin" if name == "create_task"
                       else "'team' goes with to: managers (or owner, whose stand-ins they are)")

    def _wait(self, node, step: Step) -> None:
        spec = node["wait"]
        if isinstance(spec, str):
            step.wait_seconds = self.duration(node, "wait")
        elif isinstance(spec, CommentedMap) and "until" in spec:
            self.keys(spec, {"until"}, "wait")
            step.wait_until = self.expression(spec, "until")
        elif isinstance(spec, CommentedMap) and spec.get("send_window") == "next":
            self.keys(spec, {"send_window"}, "wait")
            step.wait_send_window = True
        else:
            self.error(self.at(node, "wait", True), "wait takes a duration (3d), {until: <expression>} or "
                                                    "{send_window: next}")

    def _wait_for(self, node, step: Step) -> None:
        spec = node["wait_for"]
        if not isinstance(spec, CommentedMap):
            self.error(self.at(node, "wait_for", True), "wait_for takes {event: lead.replied, timeout: 2d}")
            return
        self.keys(spec, {"event", "timeout"}, "wait_for")
        if "event" not in spec:
            self.error(self.at(node, "wait_for", True), "wait_for needs an event")
        else:
            step.event = self.event(spec, "event")
        if "timeout" not in spec:
            self.error(self.at(node, "wait_for", True), "wait_for needs a timeout (nothing may wait forever)")
        else:
            step.timeout_seconds = self.duration(spec, "timeout")
        if "on_timeout" in node:
            if node["on_timeout"] not in ("continue", "stop"):
                self.error(self.at(node, "on_timeout", True), "on_timeout must be continue or stop")
            else:
                step.on_timeout = node["on_timeout"]

    def _branch(self, node, step: Step) -> None:
        arms = node["branch"]
        if not isinstance(arms, CommentedSeq) or not arms:
            self.error(self.at(node, "branch", True), "branch takes a list of {when: ..., steps: [...]} and "
                                                      "an optional last {otherwise: [...]}")
            return
        for index, arm in enumerate(arms):
            where = self.at(arms, index)
            if not isinstance(arm, CommentedMap):
                self.error(where, "each branch arm is {when: ..., steps: [...]} or {otherwise: [...]}")
                continue
            if "otherwise" in arm:
                self.keys(arm, {"otherwise"}, "otherwise")
                if index != len(arms) - 1:
                    self.error(where, "otherwise must be the last arm (arms after it could never run)")
                step.branches.append((None, self.steps(arm, "otherwise", f"{step.id}_else")))
                continue
            self.keys(arm, {"when", "steps"}, "a branch arm")
            if "when" not in arm or "steps" not in arm:
                self.error(where, "a branch arm needs 'when' and 'steps'")
                continue
            step.branches.append((self.expression(arm, "when"), self.steps(arm, "steps", f"{step.id}_{index + 1}_")))

    def _parallel(self, node, step: Step) -> None:
        spec = node["parallel"]
        if not isinstance(spec, CommentedMap) or "branches" not in spec:
            self.error(self.at(node, "parallel", True), "parallel takes {mode: all|any, branches: [[...], [...]]}")
            return
        self.keys(spec, {"mode", "branches"}, "parallel")
        if spec.get("mode", "all") not in ("all", "any"):
            self.error(self.at(spec, "mode", True), "mode must be all (wait for every branch) or any (first wins)")
        step.mode = spec.get("mode", "all")
        lanes = spec["branches"]
        if not isinstance(lanes, CommentedSeq) or len(lanes) < 2:
            self.error(self.at(spec, "branches", True), "parallel needs at least two branches")
            return
        for index in range(len(lanes)):
            step.lanes.append(self.steps(lanes, index, f"{step.id}_{index + 1}_"))

    def _for_each(self, node, step: Step) -> None:
        spec = node["for_each"]
        if not isinstance(spec, CommentedMap):
            self.error(self.at(node, "for_each", True), "for_each takes {in: <list expression>, as: item, "
                                                        "max_items: 10, steps: [...]}")
            return
        self.keys(spec, {"in", "as", "max_items", "steps"}, "for_each")
        for required in ("in", "as", "max_items", "steps"):
            if required not in spec:
                self.error(self.at(node, "for_each", True), f"for_each needs '{required}'"
                           + (" (loops must be bounded)" if required == "max_items" else ""))
        if "as" in spec and _IDENT.match(str(spec["as"])):
            step.as_ = spec["as"]
            self.names.add(step.as_)
        if "in" in spec:
            step.items = self.expression(spec, "in")
        if "max_items" in spec:
            if not isinstance(spec["max_items"], int) or not 1 <= spec["max_items"] <= MAX_FOR_EACH:
                self.error(self.at(spec, "max_items", True), f"max_items must be from 1 to {MAX_FOR_EACH}")
            else:
                step.max_items = spec["max_items"]
        if "steps" in spec:
            step.body = self.steps(spec, "steps", f"{step.id}_")

    def _set(self, node, step: Step) -> None:
        spec = node["set"]
        if not isinstance(spec, CommentedMap) or not spec:
            self.error(self.at(node, "set", True), "set takes {name: <expression>, ...}")
            return
        for name in spec:
            if not _IDENT.match(str(name)):
                self.error(self.at(spec, name), f"variable name '{name}' must be lower-case letters, digits, _")
                continue
            self.set_names.add(str(name))
            expression = self.expression(spec, name)  # read back as vars.<name>
            if expression:
                step.assignments[name] = expression

    def _stop(self, node, step: Step) -> None:
        value = node["stop"]
        step.reason = value if isinstance(value, str) else "stopped"

    # -- expressions --------------------------------------------------------------------------------

    def check_expressions(self) -> None:
        known = SUBJECT_VARIABLES[self.subject] | COMMON_VARIABLES | self.names
        for text, line, col in self.expressions:
            too_big = bounds_problem(text)
            if too_big:
                self.problems.append(Problem(line, col, too_big))
                continue
            try:
                tree = ENVIRONMENT.compile(text)
            except Exception as exc:  # noqa: BLE001 - celpy raises its own parse errors (RecursionError too)
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                self.problems.append(Problem(line, col, f"expression does not compile: {first}"))
                continue
            too_big = bounds_problem(text, tree)
            if too_big:
                self.problems.append(Problem(line, col, too_big))
                continue
            for node in tree.iter_subtrees():
                if node.data == "ident":
                    name = str(node.children[0])
                    if name in known:
                        continue
                    if name in VARIABLES:
                        message = f"'{name}' is not available in a definition about {self.a_subject}"
                    elif name in self.set_names:
                        message = f"unknown variable '{name}' in expression (did you mean 'vars.{name}'?)"
                    else:
                        message = f"unknown variable '{name}' in expression{hint(name, known)}"
                    self.problems.append(Problem(line, col, message))
