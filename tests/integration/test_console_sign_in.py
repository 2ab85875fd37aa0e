"""The console's sign-in over real HTTP (uvicorn, the session's database: Postgres in CI): passwords, the mailed
one-time link (sent through the outbox by the worker), the session cookie on the API with its CSRF token,
sign-out, deactivation, roles, and the rate limit under concurrency — tries released together, counted after."""

from __future__ import annotations

import re
import uuid

import httpx
from sqlmodel import Session, func, select

from models.message import Message
from models.staff_session import SignInAttempt, StaffSession
from models.tenant import Role, User
from services.tenants import create_tenant
from services.users import create_user
from tests.conftest import eventually
from tests.integration.stack import released_together, uvicorn_api

PASSWORD = "correct horse battery staple"


def staff(engine, role: Role = Role.staff, tenant: str | None = None, password: str | None = PASSWORD) -> User:
    tenant = tenant or f"c{uuid.uuid4().hex[:8]}"
    with Session(engine, expire_on_commit=False) as session:
        if session.exec(select(func.count()).select_from(User).where(User.tenant_id == tenant)).one() == 0:
            from models.tenant import Tenant

            if session.get(Tenant, tenant) is None:
                create_tenant(session, tenant, f"{tenant} Home Buyers", "test")
                session.commit()
        return create_user(session, tenant, email=f"{role.value}.{uuid.uuid4().hex[:6]}@example.com",
                           name=f"Pat {role.value.title()}", role=role.value, team="acquisitions", password=password,
                           actor="test")


def plain_http(settings):
    """The console over plain http, as in a test: the session's public URL is https, which makes its cookies
    Secure (a browser, and httpx, would not send them back over http)."""
    return settings.model_copy(update={"public_url": ""})


def form_token(client: httpx.Client, path: str = "/app/sign-in") -> str:
    page = client.get(path)
    assert page.status_code in (200, 410), page.text
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def sign_in(client: httpx.Client, email: str, password: str = PASSWORD, **extra) -> httpx.Response:
    token = form_token(client)
    return client.post("/app/sign-in", data={"email": email, "password": password, "csrf_token": token, **extra})


def page_csrf(client: httpx.Client) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get("/app").text).group(1)


async def test_a_password_opens_a_session_that_the_api_honours_with_its_csrf_token_until_sign_out(settings, engine):
    user = staff(engine)
    lead = {"first_name": "Ann", "last_name": "Lee", "email": f"ann.{uuid.uuid4().hex[:6]}@example.com",
            "source": "web_form"}
    with uvicorn_api(plain_http(settings)) as base, httpx.Client(base_url=base) as client:
        assert client.get("/app/leads").status_code == 303  # no session: to the sign-in page, and back after
        assert client.get("/app/leads").headers["location"] == "/app/sign-in?next=/app/leads"

        wrong = sign_in(client, user.email, "not the password")
        assert wrong.status_code == 401 and "wrong email or password" in wrong.text
        assert 'aria-invalid="true"' in wrong.text  # shown at the field
        unknown = sign_in(client, "nobody@example.com")
        assert unknown.status_code == 401 and "wrong email or password" in unknown.text  # the same words

        done = sign_in(client, user.email.upper(), next="/app/leads")
        assert done.status_code == 303 and done.headers["location"] == "/app/leads"
        cookie = done.cookies.get("dealflow_session")
        assert cookie and "httponly" in done.headers["set-cookie"].lower()
        assert "samesite=lax" in done.headers["set-cookie"].lower()
        page = client.get("/app/leads")
        assert page.status_code == 200 and "Leads" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]

        # The API takes the cookie for reads; a change also needs the page's CSRF token.
        assert client.get("/api/v1/leads").status_code == 200
        refused = client.post("/api/v1/leads", json=lead)
        assert refused.status_code == 403 and refused.json()["errors"][0]["field"] == "csrf_token"
        assert client.post("/api/v1/leads", json=lead, headers={"X-CSRF-Token": "forged"}).status_code == 403
        created = client.post("/api/v1/leads", json=lead, headers={"X-CSRF-Token": page_csrf(client)})
        assert created.status_code == 201, created.text

        # Signing out needs the token too (no logout CSRF), then the cookie is refused everywhere.
        assert client.post("/app/sign-out", data={"csrf_token": "forged"}).status_code == 403
        out = client.post("/app/sign-out", data={"csrf_token": page_csrf(client)})
        assert out.status_code == 303
        with httpx.Client(base_url=base, cookies={"dealflow_session": cookie}) as stolen:
            assert stolen.get("/api/v1/leads").status_code == 401
            assert stolen.get("/app").status_code == 303
    with Session(engine) as session:  # who changed what names the person
        from models.audit import AuditLog

        actions = session.exec(select(AuditLog.action).where(AuditLog.actor == f"user:{user.id}")).all()
        assert "user.sign_in" in actions and "lead.create" in actions


async def test_sign_in_forms_refuse_a_post_that_did_not_come_from_their_page(settings, engine):
    user = staff(engine)
    with uvicorn_api(plain_http(settings)) as base, httpx.Client(base_url=base) as client:
        bare = client.post("/app/sign-in", data={"email": user.email, "password": PASSWORD})
        assert bare.status_code == 403 and "dealflow_session" not in bare.headers.get("set-cookie", "")
        token = form_token(client)
        with httpx.Client(base_url=base) as other:  # a token from someone else's page (login CSRF)
            forged = other.post("/app/sign-in", data={"email": user.email, "password": PASSWORD,
                                                      "csrf_token": token})
            assert forged.status_code == 403


async def test_a_deactivated_user_is_signed_out_and_a_readonly_one_cannot_change_anything(settings, engine):
    user = staff(engine)
    reader = staff(engine, Role.readonly, tenant=user.tenant_id)
    with uvicorn_api(plain_http(settings)) as base:
        with httpx.Client(base_url=base) as client:
            assert sign_in(client, reader.email).status_code == 303
            lead_page = client.get("/app")
            assert lead_page.status_code == 200 and "Complete</button>" not in lead_page.text
            answer = client.post("/api/v1/leads", headers={"X-CSRF-Token": page_csrf(client)}, json={
                "first_name": "No", "email": "no@example.com", "source": "web_form"})
            assert answer.status_code == 403 and "readonly" in answer.json()["detail"]
        with httpx.Client(base_url=base) as client:
            assert sign_in(client, user.email).status_code == 303
            assert client.get("/api/v1/leads").status_code == 200
            with Session(engine) as session:
                row = session.get(User, user.id)
                row.active = False
                session.add(row)
                session.commit()
            assert client.get("/api/v1/leads").status_code == 401
            assert client.get("/app").status_code == 303
            assert sign_in(client, user.email).status_code == 401


async def test_concurrent_wrong_passwords_are_checked_no_more_than_the_limit(settings, engine):
    """25 wrong passwords for one account released together: the database counts each try before it is judged,
    so at most sign_in_max_failures are ever verified; the rest, and the right password after them, get 429."""
    user = staff(engine)
    limit = settings.sign_in_max_failures
    # From an address of its own (uvicorn trusts X-Forwarded-For from 127.0.0.1, as behind a local proxy): the
    # other tests' tries from 127.0.0.1 stay under the per-address limit.
    address = {"X-Forwarded-For": f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"}
    with uvicorn_api(plain_http(settings)) as base:
        def attempt(client: httpx.Client) -> httpx.Response:
            token = form_token(client)
            return client.post("/app/sign-in", data={"email": user.email, "password": "guess", "csrf_token": token},
                               headers=address)

        responses = released_together(base, [attempt] * 25)
        codes = sorted(r.status_code for r in responses)
        assert codes.count(401) <= limit and codes.count(429) >= 25 - limit, codes
        assert set(codes) <= {401, 429}, codes
        assert all(r.headers.get("retry-after") for r in responses if r.status_code == 429)
        # The right password next: refused while the window holds `limit` real failures. (A try turned away by
        # the limit is no failure of its own — else one guess a minute would lock a person out for ever — so when
        # tries in flight were counted against others, fewer than the limit were checked and it may go through.)
        checked = codes.count(401)
        with httpx.Client(base_url=base, headers=address) as client:
            late = sign_in(client, user.email)
            if checked == limit:
                assert late.status_code == 429 and "too many sign-in attempts" in late.text
            else:
                assert late.status_code == 303, (checked, late.text[:200])
    with Session(engine) as session:
        tries = session.exec(select(SignInAttempt).where(SignInAttempt.email == user.email)).all()
        assert len(tries) == 26 and {t.ip for t in tries} == {address["X-Forwarded-For"]}
        failures = [t for t in tries if t.kind == "password" and not t.ok]
        assert len(failures) == checked  # the checked ones; the turned-away ones are labelled so
        assert len([t for t in tries if t.kind == "refused"]) == 25 - checked + (late.status_code == 429)


async def test_a_mailed_link_signs_in_once_even_when_clicked_many_times_at_once(settings, engine, worker):
    user = staff(engine, password=None)  # no password: the link is their way in
    with uvicorn_api(plain_http(settings)) as base:
        with httpx.Client(base_url=base) as client:
            token = form_token(client)
            sent = client.post("/app/sign-in/link", data={"email": user.email, "csrf_token": token},
                               headers={"Host": "evil.example"})  # a forged Host must not say where the link goes
            assert sent.status_code == 200 and "a sign-in link is on its way" in sent.text
            unknown = client.post("/app/sign-in/link", data={"email": "nobody@example.com", "csrf_token": token})
            assert unknown.status_code == 200 and "a sign-in link is on its way" in unknown.text  # same answer

        def mailed() -> Message | None:  # the worker's relay started the message workflow; the outbox has it
            with Session(engine) as session:
                return session.exec(select(Message).where(Message.to_address == user.email,
                                                          Message.template == "staff_sign_in_link")).first()

        message = await eventually(mailed, timeout=60)
        assert "evil.example" not in message.body
        link = re.search(r"https?://\S+/app/sign-in/link/(\S+)", message.body).group(1)
        # The link is the user's (and the admins') to read: another role's key sees neither it nor its event.
        from api.security import create_api_key

        _, reader = create_api_key(engine, user.tenant_id, Role.readonly, "reader")
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {reader}"}) as api:
            shown = api.get("/api/v1/messages", params={"user_id": user.id}).json()["items"]
            assert shown and all(link not in m["body"] for m in shown)
            assert link not in api.get(f"/api/v1/messages/{message.id}").text
            assert link not in api.get("/api/v1/events", params={"subject_id": user.id}).text

        with httpx.Client(base_url=base) as scanner:  # opening the link (a mail scanner does) uses nothing
            assert scanner.get(f"/app/sign-in/link/{link}").status_code == 200

        def click(client: httpx.Client) -> httpx.Response:
            page = client.get(f"/app/sign-in/link/{link}")
            if page.status_code == 410:  # claimed by another click already
                return page
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            return client.post(f"/app/sign-in/link/{link}", data={"csrf_token": token})

        responses = released_together(base, [click] * 12)
        codes = sorted(r.status_code for r in responses)
        assert codes == [303] + [410] * 11, codes
        with httpx.Client(base_url=base) as late:
            assert late.get(f"/app/sign-in/link/{link}").status_code == 410
    with Session(engine) as session:
        sessions = session.exec(select(StaffSession).where(StaffSession.user_id == user.id)).all()
        assert len(sessions) == 1 and sessions[0].method == "link"

    # Links are limited per address too, answered or not (nobody's inbox is flooded with them).
    with uvicorn_api(plain_http(settings)) as base, httpx.Client(base_url=base) as client:
        token = form_token(client)
        answers = [client.post("/app/sign-in/link", data={"email": user.email, "csrf_token": token}).status_code
                   for _ in range(settings.sign_in_max_failures)]
    assert answers == [200] * (settings.sign_in_max_failures - 1) + [429], answers
    with Session(engine) as session:
        mailed = session.exec(select(func.count()).select_from(Message).where(
            Message.to_address == user.email, Message.template == "staff_sign_in_link")).one()
    assert mailed <= settings.sign_in_max_failures
