"""Action parameter types: what each accepts, and the message when a value is not accepted. The checker
reports the message at the value's line and column; `duration` and `expressions` it checks itself."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from definitions.language import DEFINITION_KEY, DOCUMENT_TEMPLATES, HTTP_METHODS, STAGE_NAMES, STATUSES
from definitions.staff import TEAMS, is_assignee, is_recipient


def hint(word: str, options) -> str:
    close = difflib.get_close_matches(str(word), sorted(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _is_url(value: Any) -> bool:
    parts = urlsplit(value) if isinstance(value, str) else None
    return parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname)


def _is_signers(value: Any) -> bool:
    """request_signature's signers: a list of {role, name?, email?}; `email: owner` is the deal's owner, a seller
    without an email is the deal's lead (completed when the step runs)."""
    if not isinstance(value, list) or not 1 <= len(value) <= 10:
        return False
    for signer in value:
        if not isinstance(signer, dict) or not set(signer) <= {"role", "name", "email"}:
            return False
        if not all(isinstance(v, str) and v.strip() for v in signer.values()) or "role" not in signer:
            return False
        email = signer.get("email")
        if email is not None and email != "owner" and "@" not in email:
            return False
    return True


# kind -> (accepts(value), message(parameter name, value))
PARAM_TYPES: dict[str, tuple[Callable[[Any], bool], Callable[[str, Any], str]]] = {
    "str": (lambda v: isinstance(v, str) and bool(v.strip()), lambda k, v: f"'{k}' must be text"),
    "status": (lambda v: v in STATUSES,
               lambda k, v: f"unknown status '{v}'{hint(v, STATUSES)} (one of {', '.join(sorted(STATUSES))})"),
    "stage": (lambda v: v in STAGE_NAMES,
              lambda k, v: f"unknown stage '{v}'{hint(v, STAGE_NAMES)} (one of {', '.join(sorted(STAGE_NAMES))})"),
    "count": (lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 100,
              lambda k, v: f"'{k}' must be a whole number from 1 to 100"),
    "bool": (lambda v: isinstance(v, bool), lambda k, v: f"'{k}' must be true or false"),
    "url": (_is_url, lambda k, v: f"'{k}' must be an http:// or https:// address"),
    "method": (lambda v: v in HTTP_METHODS, lambda k, v: f"method must be one of {', '.join(HTTP_METHODS)}"),
    "definition_key": (lambda v: isinstance(v, str) and bool(DEFINITION_KEY.match(v)),
                       lambda k, v: "key must be another definition's key (lower-case letters, digits and '-')"),
    "assignee": (is_assignee, lambda k, v: f"'{k}' is round_robin, owner, or a user's email or id (us_...)"
                                           + hint(v, ("round_robin", "owner"))),
    "recipient": (is_recipient, lambda k, v: f"'{k}' is owner, managers, or a user's email or id (us_...)"
                                             + hint(v, ("owner", "managers"))),
    "document_template": (lambda v: v in DOCUMENT_TEMPLATES,
                          lambda k, v: f"unknown document template '{v}'{hint(v, DOCUMENT_TEMPLATES)} (one of "
                                       f"{', '.join(DOCUMENT_TEMPLATES)})"),
    "signers": (_is_signers, lambda k, v: "signers is a list of {role, name, email} (name and email optional: a "
                                          "seller is the deal's lead, email: owner is the deal's owner)"),
    "signing_order": (lambda v: v in ("sequential", "parallel"),
                      lambda k, v: "signing_order is sequential or parallel"),
    "team": (lambda v: v in TEAMS, lambda k, v: f"unknown team '{v}'{hint(v, TEAMS)} (one of {', '.join(TEAMS)})"),
}
