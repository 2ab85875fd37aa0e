"""The dashboard's numbers (GET /api/v1/dashboard) over a small book whose every figure is worked out by hand
below, on Postgres (the session's database, when DEALFLOW_TEST_DATABASE_URL is set) and on SQLite (a migrated
file of its own): the funnel by source, speed to lead, conversion and gross profit, messages, the open pipeline,
the range leaving out what falls outside it, and the 422s of a bad range. The rows are written straight to the
database, with the times the test chooses, and deleted afterwards (the plan tests after this one count on the
tables holding their own book)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import delete
from sqlmodel import Session

from api.app import create_app
from api.security import create_api_key
from core.db import make_engine, migrate
from core.settings import Settings
from models.lead import Lead
from models.message import Consent, Message
from models.opportunity import Opportunity
from models.tenant import Role, User
from models.timeline import TimelineEntry
from tests.conftest import TEST_SECRET_KEY


def at(day: int, hour: int = 12, minute: int = 0, second: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


RANGE = {"from": "2026-03-01", "to": "2026-03-31"}


@pytest.fixture(scope="module")
def sqlite_engine(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('dashboard') / 'crm.db'}"
    migrate(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def backend(request, engine, sqlite_engine):
    if request.param == "postgresql":
        if engine.dialect.name != "postgresql":
            pytest.skip("set DEALFLOW_TEST_DATABASE_URL to a Postgres database")
        return engine
    return sqlite_engine


class Book:
    """A tenant with its rows; `lead(...)`, `deal(...)`, ... write them; `remove()` deletes them again."""

    def __init__(self, engine, tenant: str | None = None) -> None:
        self.engine = engine
        self.tenant = tenant or f"dash{uuid.uuid4().hex[:8]}"
        _, key = create_api_key(engine, self.tenant, Role.readonly)  # any signed-in role may read the dashboard
        self.headers = {"Authorization": f"Bearer {key}"}
        self.users: list[str] = []

    def add(self, *rows):
        with Session(self.engine, expire_on_commit=False) as session:
            session.add_all(rows)
            session.commit()
        self.users += [row.id for row in rows if isinstance(row, User)]
        return rows[0]

    def lead(self, source: str, status: str, created: datetime, history: tuple = (), **fields) -> Lead:
        lead = self.add(Lead(tenant_id=self.tenant, first_name="Seller", source=source, status=status,
                             email=f"s.{uuid.uuid4().hex[:8]}@example.com", created_at=created, updated_at=created,
                             **fields))
        previous = "new"
        for status_then, when in history:  # as services/lead_status.apply_status writes them
            self.add(TimelineEntry(tenant_id=self.tenant, lead_id=lead.id, kind="lead.status_changed",
                                   summary=f"Status {previous} → {status_then}", occurred_at=when,
                                   data={"status": status_then, "previous": previous, "reason": None},
                                   idempotency_key=f"{lead.id}:status:{uuid.uuid4().hex}"))
            previous = status_then
        return lead

    def deal(self, stage: str, *, pipeline: str = "acquisition", lead: Lead | None = None,
             closed: datetime | None = None, **money) -> Opportunity:
        return self.add(Opportunity(tenant_id=self.tenant, title=f"{stage} deal", pipeline=pipeline, stage=stage,
                                    lead_id=lead.id if lead else None, closed_at=closed,
                                    **{k: Decimal(v) for k, v in money.items()}))

    def message(self, channel: str, created: datetime, *, lead: Lead | None = None, direction: str = "outbound",
                sent: datetime | None = None, delivered: datetime | None = None, user_id: str | None = None):
        status = "delivered" if delivered else "sent" if sent else "received" if direction == "inbound" else "pending"
        return self.add(Message(tenant_id=self.tenant, lead_id=lead.id if lead else None, user_id=user_id,
                                channel=channel, direction=direction, to_address="+15125550123", status=status,
                                created_at=created, sent_at=sent, delivered_at=delivered,
                                idempotency_key=f"dash:{uuid.uuid4().hex}"))

    def consent(self, channel: str, status: str, when: datetime):
        return self.add(Consent(tenant_id=self.tenant, channel=channel, address=f"{uuid.uuid4().hex[:10]}@x.com",
                                status=status, source="inbound_sms", updated_at=when))

    def remove(self) -> None:
        with Session(self.engine) as session:
            for table in (TimelineEntry, Message, Consent, Opportunity):
                session.exec(delete(table).where(table.tenant_id == self.tenant))
            session.exec(delete(Lead).where(Lead.tenant_id == self.tenant, Lead.duplicate_of.is_not(None)))
            session.exec(delete(Lead).where(Lead.tenant_id == self.tenant))
            session.exec(delete(User).where(User.id.in_(self.users)))
            session.commit()


def seed(book: Book) -> None:
    # web_form, received in March: four leads
    w1 = book.lead("web_form", "converted", at(2, 10), history=(
        ("contacted", at(2, 10, 5)), ("qualified", at(3)), ("converted", at(5))))
    book.message("sms", at(2, 10, 1), lead=w1, sent=at(2, 10, 2), delivered=at(2, 10, 3))  # first touch: 120 s
    # won in March, an assigned contract: 150,000 + 20,000 − 150,000 − 0 repairs − 1,500 closing = 18,500
    book.deal("closed_won", lead=w1, closed=at(20), contract_price="150000", assignment_fee="20000",
              closing_costs="1500")
    w2 = book.lead("web_form", "dead", at(4, 9), history=(("contacted", at(4, 9, 10)), ("dead", at(6))))  # 600 s
    book.lead("web_form", "new", at(6, 8))  # never touched
    book.lead("web_form", "new", at(6, 9), duplicate_of=w2.id)  # a duplicate: not in the funnel
    book.lead("web_form", "new", at(6, 10), deleted_at=at(7))  # deleted: not in the funnel
    w4 = book.lead("web_form", "qualified", at(7, 8), history=(("qualified", at(7, 9)),))  # skipped contacted
    book.message("email", at(7, 8, 30), lead=w4, sent=at(7, 8, 30), delivered=at(7, 8, 31))  # 1,800 s < 3,600 s
    book.message("email", at(8), lead=w4, direction="inbound")
    # ppc, received in March: two leads
    p1 = book.lead("ppc", "contacted", at(10, 12), history=(("contacted", at(10, 12, 1)),))
    book.message("sms", at(10, 12), lead=p1, sent=at(10, 12, 0, 30), delivered=at(10, 12, 1))  # 30 s
    book.message("sms", at(10, 13), lead=p1, direction="inbound")
    p2 = book.lead("ppc", "nurturing", at(11, 12))  # nurturing, with a deal opened for it: reached "deal"
    book.message("sms", at(11, 12, 1), lead=p2, sent=at(11, 12, 1, 30))  # 90 s, never delivered
    book.message("email", at(12), lead=p2)  # still pending: not sent
    book.deal("offer_made", lead=p2, offer_price="90000")
    # on the range's edges: the first moment of March is in it, the first moment of April is not
    book.lead("cold_call", "new", at(1, 0))
    book.lead("ppc", "new", at(1, 0, month=4))
    # outside the range: leads received before and after March, and their deals
    o1 = book.lead("web_form", "converted", at(27, month=2), history=(("converted", at(28, month=2)),))
    book.message("sms", at(20, month=2), lead=o1, sent=at(20, month=2))
    # ...but won in March, a flip: 250,000 − 160,000 − 40,000 repairs spent (not the 45,000 estimate) − 5,000
    book.deal("closed_won", lead=o1, closed=at(15), contract_price="160000", sale_price="250000",
              repairs_spent="40000", repair_estimate="45000", closing_costs="5000")
    o2 = book.lead("ppc", "converted", at(1, month=4), history=(("converted", at(1, 13, month=4)),))
    book.deal("closed_won", lead=o2, closed=at(2, month=4), contract_price="1", sale_price="999999")  # April
    book.deal("closed_won", closed=at(25), contract_price="100000")  # no lead, and no sale: profit unknown
    book.deal("closed_lost", closed=at(26), asking_price="77000")
    # a staff notification is not a message to a lead
    user = book.add(User(tenant_id=book.tenant, email=f"pat.{uuid.uuid4().hex[:6]}@example.com", name="Pat"))
    book.message("email", at(9), user_id=user.id, sent=at(9), delivered=at(9))
    # opt-outs: one in March (sms); one in February; an address opted back in during March
    book.consent("sms", "opted_out", at(15))
    book.consent("email", "opted_out", at(1, month=2))
    book.consent("sms", "opted_in", at(16))
    # the open pipeline, now
    book.deal("contacted", asking_price="120000")
    book.deal("contacted")  # no price: unpriced
    book.deal("marketing", pipeline="disposition", contract_price="130000")
    book.deal("new", pipeline="disposition", contract_price="10000")  # an old stage name: marketing now


@pytest.fixture
async def dashboard_api(backend):
    settings = Settings(database_url=str(backend.url), secret_key=TEST_SECRET_KEY)
    app = create_app(settings, engine=backend)
    app.state.engine, app.state.temporal = backend, None  # no lifespan: the dashboard needs no Temporal
    book = Book(backend)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        try:
            yield client, book
        finally:
            book.remove()


async def test_the_dashboard_answers_the_books_numbers(dashboard_api):
    api, book = dashboard_api
    seed(book)
    answer = await api.get("/api/v1/dashboard", params=RANGE, headers=book.headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["start"], body["end"]) == ("2026-03-01", "2026-03-31")

    funnel = {row["source"]: row for row in body["funnel"]}
    assert [row["source"] for row in body["funnel"]] == ["web_form", "ppc", "cold_call", "all"]  # most leads first
    # web_form: w1 (all the way), w2 (contacted, then dead), w3 (new), w4 (qualified, skipping contacted)
    assert funnel["web_form"] == {"source": "web_form", "leads": 4, "contacted": 3, "qualified": 2, "deal": 1,
                                  "closed_won": 1}
    # ppc: p1 (contacted), p2 (nurturing, with an open deal: got at least as far as a deal)
    assert funnel["ppc"] == {"source": "ppc", "leads": 2, "contacted": 2, "qualified": 1, "deal": 1,
                             "closed_won": 0}
    assert funnel["cold_call"] == {"source": "cold_call", "leads": 1, "contacted": 0, "qualified": 0, "deal": 0,
                                   "closed_won": 0}
    assert funnel["all"] == {"source": "all", "leads": 7, "contacted": 5, "qualified": 3, "deal": 2,
                             "closed_won": 1}

    speed = {row["source"]: row for row in body["speed_to_lead"]}
    assert speed["web_form"] == {"source": "web_form", "touched": 3, "untouched": 1, "median_seconds": 600.0}
    assert speed["ppc"] == {"source": "ppc", "touched": 2, "untouched": 0, "median_seconds": 60.0}  # (30 + 90) / 2
    # 30, 90, 120, 600, 1,800
    assert speed["cold_call"] == {"source": "cold_call", "touched": 0, "untouched": 1, "median_seconds": None}
    assert speed["all"] == {"source": "all", "touched": 5, "untouched": 2, "median_seconds": 120.0}

    conversion = {row["source"]: row for row in body["conversion"]}
    assert [row["source"] for row in body["conversion"]] == ["web_form", "ppc", "cold_call", "none", "all"]
    web = conversion["web_form"]
    assert (web["leads"], web["deals"], web["closed_won"], web["lead_to_deal"], web["lead_to_won"]) == (
        4, 1, 1, 0.25, 0.25)
    # won in March: w1's assignment (18,500) and o1's flip (45,000), though o1 came in February
    assert (web["won_deals"], web["with_profit"], Decimal(web["gross_profit"])) == (2, 2, Decimal("63500"))
    ppc = conversion["ppc"]
    assert (ppc["deals"], ppc["closed_won"], ppc["lead_to_deal"], ppc["won_deals"], Decimal(ppc["gross_profit"])
            ) == (1, 0, 0.5, 0, 0)  # o2's deal was won in April
    none = conversion["none"]
    assert (none["leads"], none["lead_to_won"], none["won_deals"], none["with_profit"]) == (0, None, 1, 0)
    everything = conversion["all"]
    assert (everything["leads"], everything["won_deals"], everything["with_profit"],
            Decimal(everything["gross_profit"])) == (7, 3, 2, Decimal("63500"))
    assert [d["reason"] for d in body["profit_unknown"]] == [
        "needs a sale_price, or a contract_price and an assignment_fee"]

    messages = {row["channel"]: row for row in body["messages"]}
    assert messages["sms"] == {"channel": "sms", "sent": 3, "delivered": 2, "replied": 1, "opted_out": 1}
    assert messages["email"] == {"channel": "email", "sent": 1, "delivered": 1, "replied": 1, "opted_out": 0}
    assert messages["all"] == {"channel": "all", "sent": 4, "delivered": 3, "replied": 2, "opted_out": 1}

    pipeline = {(row["pipeline"], row["stage"]): row for row in body["pipeline"]}
    assert [key for key in pipeline] == [
        ("acquisition", "new"), ("acquisition", "contacted"), ("acquisition", "appointment_set"),
        ("acquisition", "offer_made"), ("acquisition", "under_contract"), ("disposition", "marketing"),
        ("disposition", "showing"), ("disposition", "buyer_offer"), ("disposition", "assigned")]
    assert [(r["deals"], Decimal(r["value"]), r["unpriced"]) for r in body["pipeline"]] == [
        (0, 0, 0), (2, Decimal("120000"), 1), (0, 0, 0), (1, Decimal("90000"), 0), (0, 0, 0),
        (2, Decimal("140000"), 0), (0, 0, 0), (0, 0, 0), (0, 0, 0)]


async def test_the_range_leaves_out_what_falls_outside_it(dashboard_api):
    api, book = dashboard_api
    seed(book)
    # February: only o1 (received, converted) and its SMS; its deal was won in March, the opt-out of February counts
    february = (await api.get("/api/v1/dashboard", params={"from": "2026-02-01", "to": "2026-02-28"},
                              headers=book.headers)).json()
    assert february["funnel"] == [
        {"source": "web_form", "leads": 1, "contacted": 1, "qualified": 1, "deal": 1, "closed_won": 1},
        {"source": "all", "leads": 1, "contacted": 1, "qualified": 1, "deal": 1, "closed_won": 1}]
    assert [(r["source"], r["won_deals"]) for r in february["conversion"]] == [("web_form", 0), ("all", 0)]
    assert {r["channel"]: (r["sent"], r["opted_out"]) for r in february["messages"]} == {
        "email": (0, 1), "sms": (1, 0), "all": (1, 1)}
    # one day: March 2nd, w1 alone (from and to are both included)
    day = (await api.get("/api/v1/dashboard", params={"from": "2026-03-02", "to": "2026-03-02"},
                         headers=book.headers)).json()
    assert [(r["source"], r["leads"]) for r in day["funnel"]] == [("web_form", 1), ("all", 1)]
    assert day["speed_to_lead"][0]["median_seconds"] == 120.0
    # a range with nothing in it: empty rows, no medians, the pipeline still there (it is now, not the range)
    empty = (await api.get("/api/v1/dashboard", params={"from": "2025-01-01", "to": "2025-01-31"},
                           headers=book.headers)).json()
    assert empty["funnel"] == [{"source": "all", "leads": 0, "contacted": 0, "qualified": 0, "deal": 0,
                                "closed_won": 0}]
    assert empty["speed_to_lead"] == [{"source": "all", "touched": 0, "untouched": 0, "median_seconds": None}]
    assert sum(r["deals"] for r in empty["pipeline"]) == 5
    # another tenant sees none of it
    _, key = create_api_key(book.engine, f"other{uuid.uuid4().hex[:6]}", Role.staff)
    other = (await api.get("/api/v1/dashboard", params=RANGE, headers={"Authorization": f"Bearer {key}"})).json()
    assert other["funnel"][-1]["leads"] == 0 and sum(r["deals"] for r in other["pipeline"]) == 0


async def test_the_default_range_is_the_last_30_days(dashboard_api):
    api, book = dashboard_api
    answer = await api.get("/api/v1/dashboard", headers=book.headers)
    assert answer.status_code == 200, answer.text
    today = datetime.now(UTC).date()
    assert (answer.json()["start"], answer.json()["end"]) == (str(today - timedelta(days=29)), str(today))


@pytest.mark.parametrize("params, field", [
    ({"from": "2026-03-10", "to": "2026-03-09"}, "from"),  # from after to
    ({"from": "2024-01-01", "to": "2026-01-01"}, "to"),  # 732 days: over two years
    ({"from": "2026-13-01"}, "from"),
    ({"to": "yesterday"}, "to"),
    ({"to": "9999-12-31"}, "to"),  # the day after it is not a date
    ({"from": "0001-01-01", "to": "0001-01-02"}, "from"),
])
async def test_a_bad_range_is_a_422_naming_its_field(dashboard_api, params, field):
    api, book = dashboard_api
    answer = await api.get("/api/v1/dashboard", params=params, headers=book.headers)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in answer.json()["errors"]] == [field]


async def test_two_years_exactly_is_allowed_and_a_key_is_needed(dashboard_api):
    api, book = dashboard_api
    assert (await api.get("/api/v1/dashboard", params={"from": "2024-01-01", "to": "2025-12-31"},
                          headers=book.headers)).status_code == 200  # 731 days
    assert (await api.get("/api/v1/dashboard")).status_code == 401
