"""A definition's `notify`: who it reaches (a named user, the subject's owner, a team's managers) and their
notifications, in one transaction."""

from __future__ import annotations

from sqlmodel import Session, col, select

from definitions.staff import MANAGERS, OWNER
from models.tenant import Role, User
from services.acting import Invalid
from services.assignment import active_user, default_team, owner_of
from services.notifications import notify
from services.tasks import subject_of


def managers_of(session: Session, tenant_id: str, team: str) -> list[User]:
    return list(session.exec(select(User).where(
        User.tenant_id == tenant_id, User.team == team, User.role == Role.manager.value,
        col(User.active).is_(True)).order_by(col(User.created_at), col(User.id))).all())


def notify_people(session: Session, *, tenant_id: str, to: str, title: str, message: str = "",
                  team: str | None = None, email: bool = True, key: str, lead_id: str | None = None,
                  opportunity_id: str | None = None, investor_id: str | None = None) -> list[str]:
    """Notify `to` — `owner` (the subject's; a subject without one reaches its team's managers instead),
    `managers` (of `team`, by default the owner's team, else the subject's), or a user's email or id — and commit.
    Returns the users notified. Invalid when nobody can be reached (a named user unknown or deactivated, a team
    without managers). The same `key` twice notifies nobody twice."""
    subject = subject_of(session, tenant_id, lead_id, opportunity_id, investor_id)
    if opportunity_id and not lead_id and subject is not None:
        lead_id = subject.lead_id
    if to == OWNER:
        owner = owner_of(session, subject) if subject is not None else None
        people = [owner] if owner else managers_of(session, tenant_id, team or default_team(subject))
        if not people:
            raise Invalid(f"the {type(subject).__name__.lower() if subject else 'subject'} has no owner, and team "
                          f"{team or default_team(subject)} no active manager to tell instead", field="to")
    elif to == MANAGERS:
        owner = owner_of(session, subject) if subject is not None else None
        chosen = team or (owner.team if owner and owner.team else default_team(subject))
        people = managers_of(session, tenant_id, chosen)
        if not people:
            raise Invalid(f"team {chosen} has no active manager", field="team")
    else:
        people = [active_user(session, tenant_id, to, field="to")]
    for user in people:
        notify(session, user, kind="definition.notify", title=title, body=message, key=key, email=email,
               lead_id=lead_id, opportunity_id=opportunity_id, investor_id=investor_id)
    session.commit()
    return [user.id for user in people]
