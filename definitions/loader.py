"""Load and validate a definition: ruamel.yaml round-trip parsing so every problem has a line and a column,
GitHub-Actions style (`web-lead.yaml:29:9: unknown key 'whith' (did you mean 'with'?)`). Validation is
total: every error is reported at once, and nothing is compiled unless there are none. The top-level keys
are checked here; steps and expressions in definitions.checker."""

from __future__ import annotations

import hashlib
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent
from ruamel.yaml.reader import ReaderError

from definitions.checker import DefinitionInvalid, Problem, Checker
from definitions.language import DEFINITION_KEY, REQUIRED_TOP, SCHEMA, SUBJECTS, TOP_KEYS
from definitions.model import Definition, ExitRule, Retry
from definitions.send_window import SendWindow

__all__ = ["DefinitionInvalid", "Problem", "load"]

MAX_BYTES = 262_144  # the API passes its settings' limits; these serve the CLI and the shipped library
MAX_DEPTH = 32


def _position(source: str, offset: int) -> tuple[int, int]:
    line = source.count("\n", 0, offset) + 1
    return line, offset - (source.rfind("\n", 0, offset) + 1) + 1


def _check_shape(source: str, max_bytes: int, max_depth: int) -> None:
    """Size and nesting before the document is built: ruamel builds nested nodes recursively (10,000 levels
    took 13 s to end in a RecursionError), its event parser does not, so the depth is counted on events."""
    size = len(source.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise DefinitionInvalid("definition", [Problem(1, 1, f"{size:,} bytes: a definition may have at most "
                                                             f"{max_bytes:,}")])
    depth = 0
    for event in YAML(typ="rt").parse(source):
        if isinstance(event, CollectionStartEvent):
            depth += 1
            if depth > max_depth:
                mark = event.start_mark
                raise DefinitionInvalid("definition", [Problem(
                    mark.line + 1, mark.column + 1, f"nested deeper than {max_depth} levels")])
        elif isinstance(event, CollectionEndEvent):
            depth -= 1


def load(source: str, filename: str = "definition.yaml", *, max_bytes: int = MAX_BYTES,
         max_depth: int = MAX_DEPTH) -> Definition:
    """Parse, validate and compile. Raises DefinitionInvalid listing every problem (a YAML error, control
    characters, a document too large or too deep included: each with its line and column)."""
    try:
        _check_shape(source, max_bytes, max_depth)
        document = YAML(typ="rt").load(source)
    except DefinitionInvalid as exc:
        raise DefinitionInvalid(filename, exc.problems) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise DefinitionInvalid(filename, [Problem((mark.line + 1) if mark else 1, (mark.column + 1) if mark else 1,
                                                   f"YAML: {exc.problem or exc.context}")]) from None
    except ReaderError as exc:  # a control character or bytes that are not text
        line, column = _position(source, exc.position)
        raise DefinitionInvalid(filename, [Problem(line, column, f"YAML: {exc.reason} (character "
                                                                 f"{exc.character!r})")]) from None
    except (YAMLError, RecursionError) as exc:
        raise DefinitionInvalid(filename, [Problem(1, 1, f"YAML: {str(exc).splitlines()[0] if str(exc) else exc!r}")]
                                ) from None
    check = Checker()
    if not isinstance(document, CommentedMap):
        raise DefinitionInvalid(filename, [Problem(1, 1, "a definition is a YAML mapping (schema, key, trigger, "
                                                         "steps, ...)")])
    check.keys(document, TOP_KEYS, "the definition")
    for key in REQUIRED_TOP:
        if key not in document:
            check.error((1, 1), f"missing '{key}'")
    if "schema" in document and document["schema"] != SCHEMA:
        check.error(check.at(document, "schema", True), f"schema must be {SCHEMA}")
    key = str(document.get("key", ""))
    if "key" in document and not DEFINITION_KEY.match(key):
        check.error(check.at(document, "key", True), "key must be lower-case letters, digits and '-' (2-61)")
    version = document.get("version", 1)
    if not isinstance(version, int) or version < 1:
        check.error(check.at(document, "version", True), "version must be a whole number from 1")
        version = 1
    subject = document.get("subject", "lead")
    if subject not in SUBJECTS:
        check.error(check.at(document, "subject", True), f"subject must be one of {', '.join(SUBJECTS)}")
        subject = "lead"
    check.subject = subject
    compiled: dict[str, Any] = {"key": key, "name": str(document.get("name") or key), "version": version,
                                "subject": subject, "trigger_event": "lead.created"}

    trigger = document.get("trigger")
    if "trigger" in document:
        if not isinstance(trigger, CommentedMap) or "event" not in trigger:
            check.error(check.at(document, "trigger", True), "trigger takes {event: lead.created, when: '...'}")
        else:
            check.keys(trigger, {"event", "when"}, "trigger")
            compiled["trigger_event"] = check.event(trigger, "event") or "lead.created"
            if "when" in trigger:
                compiled["trigger_when"] = check.expression(trigger, "when")

    replaces = document.get("replaces")
    if "replaces" not in document:
        pass
    elif isinstance(replaces, CommentedSeq) and all(isinstance(k, str) and DEFINITION_KEY.match(k) for k in replaces):
        if key in replaces:
            check.error(check.at(document, "replaces", True), "a definition cannot replace itself")
        compiled["replaces"] = list(dict.fromkeys(replaces))
    else:
        check.error(check.at(document, "replaces", True),
                    "replaces is a list of definition keys, like [speed-to-lead]")

    enrollment = document.get("enrollment") or CommentedMap()
    if isinstance(enrollment, CommentedMap):
        check.keys(enrollment, {"reenroll", "exit_when"}, "enrollment")
        reenroll = enrollment.get("reenroll", "never")
        if isinstance(reenroll, CommentedMap) and "after" in reenroll:
            compiled["reenroll_after_seconds"] = check.duration(reenroll, "after")
        elif reenroll != "never":
            check.error(check.at(enrollment, "reenroll", True), "reenroll is never or {after: 30d}")
        rules = enrollment.get("exit_when") or []
        exits = []
        for index, rule in enumerate(rules if isinstance(rules, CommentedSeq) else []):
            if isinstance(rule, CommentedMap) and "event" in rule:
                check.keys(rule, {"event"}, "exit_when")
                exits.append(ExitRule(event=check.event(rule, "event")))
            elif isinstance(rule, CommentedMap) and "condition" in rule:
                check.keys(rule, {"condition"}, "exit_when")
                exits.append(ExitRule(condition=check.expression(rule, "condition")))
            else:
                check.error(check.at(rules, index), "exit_when items are {event: ...} or {condition: '...'}")
        compiled["exit_when"] = exits
    else:
        check.error(check.at(document, "enrollment", True), "enrollment must be a mapping")

    settings = document.get("settings") or CommentedMap()
    if isinstance(settings, CommentedMap):
        check.keys(settings, {"send_window", "defaults"}, "settings")
        window = settings.get("send_window", "respect")
        if isinstance(window, CommentedMap):
            check.keys(window, {"days", "from", "to"}, "send_window")
            spec = (str(window.get("days", "mon-sat")), str(window.get("from", "08:00")),
                    str(window.get("to", "20:00")))
            try:
                SendWindow.parse(*spec)
            except ValueError as exc:
                check.error(check.at(settings, "send_window", True), f"send_window: {exc}")
            else:
                compiled["send_window"] = spec
        elif window not in ("respect", "ignore"):
            check.error(check.at(settings, "send_window", True),
                        "send_window is respect (the tenant's window, default), ignore, or "
                        "{days: mon-fri, from: '09:00', to: '18:00'} (in the lead's time zone)")
        compiled["respect_send_window"] = window != "ignore"
        defaults = settings.get("defaults") or CommentedMap()
        if isinstance(defaults, CommentedMap):
            check.keys(defaults, {"timeout", "retry"}, "defaults")
            if "timeout" in defaults:
                compiled["default_timeout_seconds"] = check.duration(defaults, "timeout") or 120.0
            if "retry" in defaults:
                compiled["default_retry"] = check.retry(defaults, "retry") or Retry()

    steps = check.steps(document, "steps", "") if "steps" in document else []
    check.check_expressions()
    if check.problems:
        raise DefinitionInvalid(filename, check.problems)
    compiled["steps"] = steps
    compiled["content_hash"] = hashlib.sha256(source.encode()).hexdigest()
    return Definition(**compiled)
