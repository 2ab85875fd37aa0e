"""Staff sign-in for the console: email and password (argon2id, services/users.py) or a one-time link mailed
through the tenant's email provider, a session per browser, sign-out, and a rate limit on failures.

The rate limit is the database's, so it holds across API processes and under concurrency: every try is written
(and committed) before it is judged, then the failures in the window are counted, the try's own included. The
k-th try to commit sees at least k rows, so no more than the limit are ever checked in a window, however many
arrive at once.

A session is a random cookie (its SHA-256 stored), valid until an absolute expiry, ended by signing out or by the
user's deactivation; the role is the user's as it stands on each request."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, text, update
from sqlmodel import Session, col, select

from core.settings import Settings
from models.audit import record_audit
from models.base import utcnow
from models.event import STAFF_MESSAGE_EVENT, emit
from models.payloads import MessageRequest
from models.staff_session import SignInAttempt, SignInLink, StaffSession
from models.tenant import Role, User
from services.acting import ServiceError
from services.users import _hasher, verify_password

SIGN_IN_LINK_TEMPLATE = "staff_sign_in_link"  # providers/message_templates.yaml
REFUSED = "refused"  # a try the rate limit turned away (kept, but counted by neither limit)
_DUMMY_HASH = _hasher.hash("not-a-password-of-anyone")  # an unknown email costs the same hashing as a known one


class SignInRefused(ServiceError):
    status = 401


class TooManyTries(ServiceError):
    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class SignedIn:
    session_id: str
    token: str  # the cookie's value, known only to the browser from now on
    csrf_token: str
    user_id: str
    tenant_id: str


@dataclass(frozen=True)
class SessionPrincipal:
    session_id: str
    tenant_id: str
    user_id: str
    role: Role
    csrf_token: str
    name: str
    email: str


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _normal(email: str) -> str:
    return email.strip().lower()[:320]


def _attempt(session: Session, settings: Settings, email: str, ip: str, kind: str) -> SignInAttempt:
    """Record the try (committed), then refuse it if the window's failures (its own included) pass the limit."""
    row = SignInAttempt(email=email, ip=ip[:64], kind=kind)
    session.add(row)
    session.commit()
    since = utcnow() - timedelta(seconds=settings.sign_in_window_seconds)
    # Passwords: the failures count. Links: every request does (each mails someone: no inbox is flooded).
    by_email = session.exec(select(func.count()).select_from(SignInAttempt).where(
        SignInAttempt.email == email, SignInAttempt.kind == kind, SignInAttempt.at >= since,
        *([col(SignInAttempt.ok).is_(False)] if kind == "password" else []))).one()
    by_ip = session.exec(select(func.count()).select_from(SignInAttempt).where(
        SignInAttempt.ip == row.ip, col(SignInAttempt.ok).is_(False), SignInAttempt.kind != REFUSED,
        SignInAttempt.at >= since)).one()
    session.rollback()  # (the counts' read transaction)
    if by_email > settings.sign_in_max_failures or by_ip > settings.sign_in_max_failures_per_ip:
        # Not a failure of its own (no check was made): refused tries do not keep the window closed for ever.
        session.execute(update(SignInAttempt).where(col(SignInAttempt.id) == row.id).values(kind=REFUSED))
        session.commit()
        minutes = max(1, settings.sign_in_window_seconds // 60)
        raise TooManyTries(f"too many sign-in attempts; try again in {minutes} minutes",
                           retry_after=settings.sign_in_window_seconds)
    return row


def _succeeded(session: Session, attempt: SignInAttempt) -> None:
    session.execute(update(SignInAttempt).where(col(SignInAttempt.id) == attempt.id).values(ok=True))


def _open_session(session: Session, settings: Settings, user: User, method: str, ip: str,
                  user_agent: str) -> SignedIn:
    token = secrets.token_urlsafe(32)
    row = StaffSession(tenant_id=user.tenant_id, user_id=user.id, token_hash=digest(token),
                       csrf_token=secrets.token_urlsafe(32), method=method, ip=ip[:64] or None,
                       user_agent=user_agent[:300] or None,
                       expires_at=utcnow() + timedelta(hours=settings.console_session_hours))
    session.add(row)
    record_audit(session, tenant_id=user.tenant_id, actor=f"user:{user.id}", action="user.sign_in",
                 entity_type="user", entity_id=user.id, after={"method": method, "ip": ip or None})
    session.commit()
    return SignedIn(session_id=row.id, token=token, csrf_token=row.csrf_token, user_id=user.id,
                    tenant_id=user.tenant_id)


def _candidates(session: Session, email: str, tenant_id: str | None) -> list[User]:
    query = select(User).where(User.email == email, col(User.active).is_(True))
    if tenant_id:
        query = query.where(User.tenant_id == tenant_id)
    return list(session.exec(query.order_by(col(User.created_at), col(User.id))).all())


def sign_in_with_password(session: Session, settings: Settings, *, email: str, password: str,
                          tenant_id: str | None = None, ip: str = "", user_agent: str = "") -> SignedIn:
    """A session for the active user with this email and password (in `tenant_id` when the email is staff at
    several tenants). SignInRefused with one message for every wrong case (no account enumeration); TooManyTries
    past the limit."""
    email = _normal(email)
    attempt = _attempt(session, settings, email, ip, "password")
    users = [user for user in _candidates(session, email, tenant_id) if user.password_hash]
    matching = [user for user in users if verify_password(session, user, password[:1024])]
    if not users:
        try:
            _hasher.verify(_DUMMY_HASH, password[:1024])
        except Exception:  # noqa: BLE001 - the point is the time it takes, not its answer
            pass
    if not matching:
        session.rollback()
        raise SignInRefused("wrong email or password")
    if len(matching) > 1:
        session.rollback()
        raise SignInRefused("this email is staff at several companies: choose one", field="tenant")
    _succeeded(session, attempt)
    return _open_session(session, settings, matching[0], "password", ip, user_agent)


def request_sign_in_link(session: Session, settings: Settings, *, email: str, tenant_id: str | None = None,
                         ip: str = "", base_url: str) -> int:
    """Mail a one-time link to each active user with this email (the relay sends it through the tenant's email
    provider; the outbox by default). Returns how many were sent — the caller says the same either way."""
    email = _normal(email)
    attempt = _attempt(session, settings, email, ip, "link")
    users = _candidates(session, email, tenant_id)
    for user in users:
        token = secrets.token_urlsafe(32)
        link = SignInLink(tenant_id=user.tenant_id, user_id=user.id, token_hash=digest(token),
                          expires_at=utcnow() + timedelta(minutes=settings.sign_in_link_minutes))
        session.add(link)
        key = f"sign-in-link:{link.id}"
        request = MessageRequest(
            tenant_id=user.tenant_id, user_id=user.id, channel="email", template=SIGN_IN_LINK_TEMPLATE,
            idempotency_key=key, actor="system", respect_send_window=False,
            context={"sign_in": {"url": f"{base_url.rstrip('/')}/app/sign-in/link/{token}",
                                 "minutes": settings.sign_in_link_minutes}})
        emit(session, tenant_id=user.tenant_id, subject_type="user", subject_id=user.id, name=STAFF_MESSAGE_EVENT,
             event_id=key, data={"workflow_id": f"sign-in-{user.tenant_id}-{link.id}",
                                 "request": request.model_dump(mode="json")})
    if users:
        _succeeded(session, attempt)  # a known address: not a failure (its requests are still rate limited)
    session.commit()
    return len(users)


def link_owner(session: Session, token: str) -> User | None:
    """Whose unused, unexpired link this is (the confirmation page names them; nothing is claimed)."""
    link = session.exec(select(SignInLink).where(SignInLink.token_hash == digest(token))).first()
    if link is None or link.used_at is not None or link.expires_at <= utcnow():
        return None
    user = session.get(User, link.user_id)
    return user if user is not None and user.active else None


def redeem_sign_in_link(session: Session, settings: Settings, token: str, *, ip: str = "",
                        user_agent: str = "") -> SignedIn:
    """Claim the link (once: one UPDATE ... WHERE used_at IS NULL, so two clicks at once open one session) and open
    a session for its user."""
    now = utcnow()
    table = SignInLink.__table__
    claimed = session.connection().execute(
        update(table).where(table.c.token_hash == digest(token), table.c.used_at.is_(None), table.c.expires_at > now)
        .values(used_at=now).returning(table.c.user_id)).first()
    user = session.get(User, claimed[0]) if claimed else None
    if user is None or not user.active:
        session.rollback()
        raise SignInRefused("this sign-in link was used already, has expired, or is not ours: ask for a new one")
    return _open_session(session, settings, user, "link", ip, user_agent)


_STANDING = text(
    "SELECT s.id, s.tenant_id, s.user_id, s.csrf_token, u.role, u.name, u.email FROM staff_sessions s "
    "JOIN users u ON u.id = s.user_id WHERE s.token_hash = :hash AND s.revoked_at IS NULL AND s.expires_at > :now "
    "AND u.active AND u.tenant_id = s.tenant_id")


def session_principal(connection, token: str) -> SessionPrincipal | None:
    """The signed-in user of a session cookie as things stand now (one read): None once signed out, expired, or
    the user deactivated."""
    if not token or len(token) > 100:
        return None
    row = connection.execute(_STANDING, {"hash": digest(token), "now": utcnow()}).first()
    if row is None:
        return None
    return SessionPrincipal(session_id=row[0], tenant_id=row[1], user_id=row[2], csrf_token=row[3], role=Role(row[4]),
                            name=row[5], email=row[6])


def sign_out(session: Session, token: str) -> bool:
    """End the session (its cookie is refused from now on, everywhere). Returns whether one was open."""
    table = StaffSession.__table__
    ended = session.connection().execute(
        update(table).where(table.c.token_hash == digest(token), table.c.revoked_at.is_(None))
        .values(revoked_at=utcnow())).rowcount
    session.commit()
    return bool(ended)
