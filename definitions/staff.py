"""The words the definition language and the CRM share about staff: the teams, and who a task or a notification
goes to (`assignee: round_robin | owner | <user>`, `to: owner | managers | <user>`). models/tenant.py imports
the teams from here, so definitions/ depends on nothing of ours."""

from __future__ import annotations

import re
from enum import StrEnum


class Team(StrEnum):
    acquisitions = "acquisitions"
    dispositions = "dispositions"
    investor_relations = "investor_relations"


TEAMS = tuple(t.value for t in Team)
ROUND_ROBIN = "round_robin"  # the next active member of the team, in turn (decided by the database)
OWNER = "owner"  # the subject's assignee: the deal's, else its lead's
MANAGERS = "managers"  # the active managers of a team (notify only)
# A user named in a definition: their email (any case) or their id (us_...). Whether they exist and are active
# is known only to the CRM: checked when the step runs (the step fails with the reason).
USER_ID = re.compile(r"^us_[A-Za-z0-9]{1,37}$")
USER_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}$")


def names_a_user(value: object) -> bool:
    return isinstance(value, str) and bool(USER_ID.match(value) or USER_EMAIL.match(value))


def is_assignee(value: object) -> bool:
    """create_task's `assignee`: round_robin, owner, or a user."""
    return value in (ROUND_ROBIN, OWNER) or names_a_user(value)


def is_recipient(value: object) -> bool:
    """notify's `to`: owner, managers, or a user."""
    return value in (OWNER, MANAGERS) or names_a_user(value)
