"""The built-in signing page in a real browser: the disclosure, consent, the document framed, a signature drawn
with the mouse (the inline script under the page's CSP nonce), the browser's time zone, and nothing refused."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from sqlmodel import Session, select

from api.app import create_app
from core.db import make_engine, migrate
from core.settings import Settings
from models.document import DocumentSigner
from tests.browser.conftest import _free_port
from tests.conftest import TEST_SECRET_KEY
from tests.integration.test_signing import TERMS


@pytest.fixture(scope="module")
def signing_link(tmp_path_factory):
    """A document requested over a deal (SQLite, no Temporal: the page needs neither the relay nor the workflow),
    its seller's link as if mailed, and the API serving it."""
    import uvicorn

    from models.lead import Lead, Property
    from models.opportunity import Opportunity
    from providers.esign.builtin import signing_link as link_of
    from services.documents import request_document
    from services.tenants import create_tenant

    home = tmp_path_factory.mktemp("home")
    url = f"sqlite:///{home / 'crm.db'}"
    migrate(url)
    port = _free_port()
    settings = Settings(home=home, database_url=url, secret_key=TEST_SECRET_KEY, public_url=f"http://127.0.0.1:{port}")
    engine = make_engine(url)
    with Session(engine) as session:
        create_tenant(session, "acme", "Lone Star Home Buyers")
        prop = Property(tenant_id="acme", street="4500 Oak Ridge Dr", city="Austin", state="TX", zip="78745",
                        normalized_address="4500 oak ridge dr, austin")
        session.add(prop)
        session.flush()
        lead = Lead(tenant_id="acme", first_name="Maria", last_name="Garcia", email="maria@example.com",
                    source="web_form", property_id=prop.id)
        session.add(lead)
        session.flush()
        deal = Opportunity(tenant_id="acme", lead_id=lead.id, property_id=prop.id, title="4500 Oak Ridge",
                           contract_price=Decimal("185000"))
        session.add(deal)
        session.flush()
        document, _ = request_document(session, settings, tenant_id="acme", opportunity_id=deal.id,
                                       template="purchase_agreement", terms=TERMS, signers=[
                                           {"name": "Maria Garcia", "email": "maria@example.com", "role": "seller"},
                                           {"name": "Sam Buyer", "email": "sam@example.com", "role": "buyer"}])
        session.commit()
        signer = session.exec(select(DocumentSigner).where(DocumentSigner.document_id == document.id,
                                                           DocumentSigner.role == "seller")).one()
        signer.status = "sent"  # as the provider's invitation leaves it
        session.add(signer)
        session.commit()
        link, signer_id = link_of(settings, signer.id), signer.id
    app = create_app(settings, engine=engine)
    app.state.engine = engine  # (no lifespan: the page needs the database, not Temporal)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield link, signer_id, engine
    server.should_exit = True
    thread.join(10)
    engine.dispose()


def test_a_signer_consents_draws_and_signs(signing_link, offline_page, tmp_path):
    link, signer_id, engine = signing_link
    page, refused = offline_page()
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(link)
    assert page.get_by_text("Paper option.").is_visible()
    page.screenshot(path=str(tmp_path / "disclosure.png"), full_page=True)
    page.check("#accept")
    page.get_by_role("button", name="Continue to the document").click()
    page.wait_for_selector("#pad")
    page.locator("#pad").scroll_into_view_if_needed()  # mouse coordinates are the viewport's
    box = page.locator("#pad").bounding_box()
    page.mouse.move(box["x"] + 20, box["y"] + 60)
    page.mouse.down()
    for step in range(1, 12):
        page.mouse.move(box["x"] + 20 + step * 25, box["y"] + 60 + (15 if step % 2 else -15), steps=3)
    page.mouse.up()
    page.check("#agree")
    page.screenshot(path=str(tmp_path / "sign.png"), full_page=True)
    page.get_by_role("button", name="Sign", exact=True).click()
    page.wait_for_selector("text=Signed — thank you")
    off_machine = [r for r in refused if r.split(" ", 1)[1].startswith(("http:", "https:"))]  # (not the
    assert off_machine == [] and violations == [], (refused, violations)  # browser's own PDF viewer)
    with Session(engine) as session:
        signer = session.get(DocumentSigner, signer_id)
        assert signer.status == "signed" and signer.signature_kind == "drawn"
        assert signer.timezone and signer.user_agent and "Chrome" in signer.user_agent
        assert signer.consent_version and signer.consented_at <= signer.signed_at
    page.goto(link)
    assert page.get_by_text("this link was used").is_visible()
