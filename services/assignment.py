"""Who gets a lead, a deal or a task: a named user (active, of the tenant), the subject's owner, or the next
member of a team in turn.

Round robin is decided by the database: one upsert advances the team's cursor and returns its new position
(`INSERT ... ON CONFLICT DO UPDATE SET position = position + 1 RETURNING position`), so concurrent assignments
wait for each other on that row and each gets a position of its own; the member is position modulo the team's
active staff, in the order they joined. Reading the position and writing it back would let two requests read the
same one and pick the same person (tests/integration/test_assignment.py shows it). The cursor moves in the
transaction of the assignment: an assignment rolled back gives its turn back."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from definitions.staff import OWNER, ROUND_ROBIN, TEAMS, Team
from models.audit import record_audit
from models.base import new_id, utcnow
from models.event import DEAL_ASSIGNED_EVENT, OWNER_SIGNAL, emit
from models.investor import Investor
from models.lead import Lead
from models.opportunity import Opportunity
from models.tenant import WORKING_ROLES, AssignmentCursor, User
from services.acting import Acting, Invalid, check_owner
from services.notifications import notify
from services.users import find_user


def advance_cursor(session: Session, tenant_id: str, team: str) -> int:
    """The team's next round-robin position (1, 2, 3, ...), taken in one statement that locks the cursor row
    until the caller's transaction ends."""
    table = AssignmentCursor.__table__
    dialect = session.get_bind().dialect.name
    insert = (postgresql if dialect == "postgresql" else sqlite).insert
    now = utcnow()
    statement = (insert(table).values(tenant_id=tenant_id, team=team, position=1, updated_at=now)
                 .on_conflict_do_update(index_elements=[table.c.tenant_id, table.c.team],
                                        set_={"position": table.c.position + 1, "updated_at": now})
                 .returning(table.c.position))
    return session.connection().execute(statement).scalar_one()


def team_members(session: Session, tenant_id: str, team: str) -> list[User]:
    """The active staff (and managers) of the team, in the order they joined: the round robin's order."""
    return list(session.exec(select(User).where(
        User.tenant_id == tenant_id, User.team == team, col(User.active).is_(True),
        col(User.role).in_(WORKING_ROLES)).order_by(col(User.created_at), col(User.id))).all())


def next_in_turn(session: Session, tenant_id: str, team: str) -> User:
    if team not in TEAMS:
        raise Invalid(f"unknown team {team!r} (one of {', '.join(TEAMS)})", field="team")
    position = advance_cursor(session, tenant_id, team)  # first: the row lock orders the readers below
    members = team_members(session, tenant_id, team)
    if not members:
        raise Invalid(f"team {team} has no active staff to take turns", field="team")
    return members[(position - 1) % len(members)]


def default_team(subject: Any) -> str:
    """The team a subject's round robin goes to when none is named: investors to investor relations, deals in
    the disposition pipeline to dispositions, everything else to acquisitions."""
    if isinstance(subject, Investor):
        return Team.investor_relations.value
    if isinstance(subject, Opportunity) and subject.pipeline == "disposition":
        return Team.dispositions.value
    return Team.acquisitions.value


def owner_of(session: Session, subject: Any) -> User | None:
    """The subject's assignee, when active: a deal's, else its lead's; a lead's own. Investors have no owner."""
    assignee = getattr(subject, "assigned_to", None)
    if assignee is None and isinstance(subject, Opportunity) and subject.lead_id:
        lead = session.get(Lead, subject.lead_id)
        assignee = lead.assigned_to if lead else None
    user = session.get(User, assignee) if assignee else None
    return user if user is not None and user.active else None


def owner_label(user: User | None) -> str | None:
    """How DealWorkflow's current details name an owner: "Ana Ruiz <ana@example.com>"."""
    if user is None:
        return None
    return f"{user.name} <{user.email}>" if user.name else user.email


def active_user(session: Session, tenant_id: str, id_or_email: str, field: str = "assignee") -> User:
    """The named user: refused (422) unless an active user of the tenant."""
    user = find_user(session, tenant_id, id_or_email) if id_or_email else None
    if user is None:
        raise Invalid(f"no user {id_or_email!r} in this tenant", field=field)
    if not user.active:
        raise Invalid(f"user {user.email} is deactivated: assign to an active user", field=field)
    return user


def resolve(session: Session, tenant_id: str, assignee: str | None, *, team: str | None = None,
            subject: Any = None) -> User | None:
    """`assignee`: a user's id or email, `round_robin` (in `team`, by default the subject's), `owner` (the
    subject's, possibly nobody), or None for nobody."""
    if assignee is None:
        return None
    if assignee == ROUND_ROBIN:
        return next_in_turn(session, tenant_id, team or default_team(subject))
    if assignee == OWNER:
        return owner_of(session, subject) if subject is not None else None
    return active_user(session, tenant_id, assignee)


def assign_lead(session: Session, caller: Acting, lead: Lead, assignee: str | None, *,
                team: str | None = None) -> Lead:
    """Give the lead to `assignee` (see `resolve`), audited, the new owner notified (unless they assigned it to
    themselves), in one transaction; commits. A staff member may assign a lead that is theirs or no one's."""
    check_owner(caller, lead.assigned_to, f"lead {lead.id}")
    user = resolve(session, caller.tenant_id, assignee, team=team, subject=lead)
    before = lead.assigned_to
    hand_lead(session, caller, lead, user)
    record_audit(session, tenant_id=caller.tenant_id, actor=caller.actor, action="lead.assign", entity_type="lead",
                 entity_id=lead.id, before={"assigned_to": before},
                 after={"assigned_to": lead.assigned_to, **({"round_robin": team or default_team(lead)}
                                                            if assignee == ROUND_ROBIN else {})})
    session.commit()
    return lead


def check_lead_assignee(session: Session, caller: Acting, lead: Lead, assignee: str | None) -> User | None:
    """PATCH /leads/{id} `assigned_to`: the caller may change this lead's owner, and the new one (a user id, or
    None) is an active user of the tenant."""
    check_owner(caller, lead.assigned_to, f"lead {lead.id}")
    return active_user(session, caller.tenant_id, assignee, field="assigned_to") if assignee is not None else None


def hand_lead(session: Session, caller: Acting, lead: Lead, user: User | None) -> None:
    """Set the lead's owner and notify them (unless it is the caller, or nothing changed) in the caller's
    transaction."""
    before = lead.assigned_to
    lead.assigned_to = user.id if user else None
    lead.updated_at = utcnow()
    session.add(lead)
    if user is not None and user.id != before and user.id != caller.user_id:
        name = " ".join(p for p in (lead.first_name, lead.last_name) if p) or lead.email or lead.phone or lead.id
        notify(session, user, kind="lead.assigned", title=f"New lead for you: {name}",
               body=f"{name} ({str(lead.source).replace('_', ' ')}) is yours now."
                    + (f" Property: {lead.property_address}." if lead.property_address else ""),
               key=f"lead.assigned:{lead.id}:{lead.updated_at.isoformat()}", lead_id=lead.id)


def assign_deal(session: Session, caller: Acting, deal: Opportunity, assignee: str | None, *,
                team: str | None = None) -> Opportunity:
    """The deal's counterpart of `assign_lead` (for the deal routes): `assignee` as in `resolve` (round robin in
    `team`, by default dispositions for a disposition deal, acquisitions otherwise), audited `deal.assign`, the new
    owner notified; commits. A staff member may assign a deal that is theirs or no one's."""
    check_owner(caller, deal.assigned_to, f"deal {deal.id}")
    user = resolve(session, caller.tenant_id, assignee, team=team, subject=deal)
    before = deal.assigned_to
    deal.assigned_to = user.id if user else None
    deal.updated_at = utcnow()
    session.add(deal)
    record_audit(session, tenant_id=caller.tenant_id, actor=caller.actor, action="deal.assign", entity_type="deal",
                 entity_id=deal.id, before={"assigned_to": before},
                 after={"assigned_to": deal.assigned_to, **({"round_robin": team or default_team(deal)}
                                                            if assignee == ROUND_ROBIN else {})})
    if deal.assigned_to != before:  # DealWorkflow's current details name the owner (on the event path, in order)
        event_id = f"{deal.id}:assigned:{new_id('as')}"
        emit(session, tenant_id=deal.tenant_id, subject_type="deal", subject_id=deal.id, name=DEAL_ASSIGNED_EVENT,
             event_id=event_id, data={"assigned_to": deal.assigned_to}, workflow_signal=OWNER_SIGNAL,
             signal_payload={"event_id": event_id, "owner": owner_label(user)})
    if user is not None and user.id != before and user.id != caller.user_id:
        notify(session, user, kind="deal.assigned", title=f"Deal for you: {deal.title}",
               body=f"{deal.title} ({deal.pipeline}, {deal.stage}) is yours now.",
               key=f"deal.assigned:{deal.id}:{deal.updated_at.isoformat()}", opportunity_id=deal.id)
    session.commit()
    return deal
