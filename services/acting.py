"""Who is acting on the staff services (users, assignment, tasks, notifications), and what they may do; the
refusals these services raise, which the API answers as problem documents (api/errors.py) and the CLI as one
line.

Ownership rules need a person: a key owned by a user acts as that user (a staff member may act on their own and
unassigned leads and tasks; managers and admins on anyone's). A tenant-level key has no person behind it and
keeps the role-only rules keys had before users existed (an integration key with role staff does what staff
could)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from models.tenant import Role


class Acting(Protocol):
    """What the services need of a caller (api.security.Principal is one)."""

    tenant_id: str
    role: str
    user_id: str | None

    @property
    def actor(self) -> str: ...


@dataclass(frozen=True)
class Caller:
    """A caller that is not a request: the CLI, a definition's activity, the system."""

    tenant_id: str
    actor: str
    role: str = Role.admin.value
    user_id: str | None = None


class ServiceError(Exception):
    status = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(ServiceError, LookupError):
    status = 404


class Invalid(ServiceError, ValueError):
    status = 422


class Conflict(ServiceError):
    status = 409


class Forbidden(ServiceError):
    status = 403


def acts_for_others(caller: Acting) -> bool:
    """Managers and admins act on anyone's leads and tasks; so does a key with no person behind it."""
    return caller.user_id is None or caller.role in (Role.admin, Role.manager)


def check_owner(caller: Acting, assignee: str | None, what: str) -> None:
    """A staff member acts on what is theirs or no one's."""
    if acts_for_others(caller) or assignee is None or assignee == caller.user_id:
        return
    raise Forbidden(f"{what} is assigned to someone else: only a manager or an admin may act on it")
