"""The ops pages for definitions: every key with its versions and how its runs went, and an editor that checks the
YAML as it is typed (POST /api/v1/definitions/validate: the loader and checker that saving uses), tries it on a
sample ("Test": the API's dry run), saves a version, publishes and retires it, and lists who is enrolled now.
Reads go through the API's read handlers and services/definition_runs; every change is the API's (definitions.js
and console.js send it), so its role checks, rules and audit rows are the console's."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from api.deps import ClientDep, SessionDep
from api.routes import definitions as definitions_api
from console.app import render
from console.auth import SignedIn
from services.definition_runs import RunCounts, enrolled_now, run_counts, settle, subject_names

router = APIRouter(prefix="/app/definitions", include_in_schema=False)

STARTER = """schema: dealflow/v1
key: my-cadence
version: 1
trigger: {event: lead.scored, when: 'lead.source == "web_form"'}
enrollment:
  exit_when: [{event: lead.replied}, {event: lead.opted_out}]
steps:
  - {id: welcome, action: send_email, with: {template: welcome}}
  - {id: wait_reply, wait_for: {event: lead.replied, timeout: 2d}, save_as: reply}
  - {id: nudge, if: 'reply == null', action: send_sms, with: {template: nudge_1}}
"""

SUBJECT_PAGES = {"lead": "/app/leads/", "deal": "/app/deals/", "opportunity": "/app/deals/",
                 "investor": "/app/investors/"}


async def _settled(request: Request, client, tenant_id: str, key: str | None = None) -> None:
    await settle(request.app.state.engine, client, tenant_id, key)


@router.get("", response_class=HTMLResponse)
async def definitions(request: Request, principal: SignedIn, session: SessionDep, client: ClientDep) -> HTMLResponse:
    await _settled(request, client, principal.tenant_id)

    def read():
        versions = definitions_api.list_definitions(session, principal)
        return versions, run_counts(session, principal.tenant_id)

    versions, counts = await run_in_threadpool(read)
    keys: dict[str, list] = {}
    for version in versions:
        keys.setdefault(version.key, []).append(version)
    return render(request, "definitions.html.j2", principal, title="Definitions", keys=keys, counts=counts,
                  empty=RunCounts())


@router.get("/new", response_class=HTMLResponse)
def new_definition(request: Request, principal: SignedIn) -> HTMLResponse:
    return render(request, "definition_editor.html.j2", principal, title="New definition", key=None, versions=[],
                  source=STARTER, editing=None, counts=RunCounts(), running=[], names={},
                  subject_pages=SUBJECT_PAGES)


@router.get("/{key}", response_class=HTMLResponse)
async def definition(request: Request, key: str, principal: SignedIn, session: SessionDep, client: ClientDep,
                     version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None) -> HTMLResponse:
    versions = await run_in_threadpool(definitions_api.show_definition, key, session, principal)  # (its 404)
    await _settled(request, client, principal.tenant_id, key)

    def read():
        running = enrolled_now(session, principal.tenant_id, key)
        return (run_counts(session, principal.tenant_id).get(key, RunCounts()), running,
                subject_names(session, principal.tenant_id, running))

    counts, running, names = await run_in_threadpool(read)
    editing = next((v for v in versions if v.version == version), versions[0])
    return render(request, "definition_editor.html.j2", principal, title=f"Definition {key}", key=key,
                  versions=versions, source=editing.source, editing=editing, counts=counts, running=running,
                  names=names,
                  subject_pages=SUBJECT_PAGES, published=[v for v in versions if v.status == "published"])
