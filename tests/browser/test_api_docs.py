"""/docs and /redoc render without the internet: their scripts and styles come from the API itself."""

from __future__ import annotations


def test_swagger_ui_lists_the_operations_offline(served_api, offline_page):
    page, refused = offline_page()
    page.goto(f"{served_api}/docs")
    page.wait_for_selector(".opblock", timeout=20_000)
    operations = page.locator(".opblock-summary-path").all_inner_texts()
    paths = {text.replace("\u200b", "").strip() for text in operations}
    assert {"/api/v1/leads", "/api/v1/leads/{lead_id}", "/health"} <= paths, sorted(paths)
    assert page.locator(".opblock-post").count() > 5
    assert "Dealflow" in page.locator(".info .title").inner_text()
    assert refused == []  # nothing was asked of a CDN


def test_redoc_lists_the_operations_offline(served_api, offline_page):
    page, refused = offline_page()
    page.goto(f"{served_api}/redoc")
    page.wait_for_selector("[role=menuitem]", timeout=30_000)
    menu = [item.strip() for item in page.locator("[role=menuitem]").all_inner_texts()]
    assert any("Create Lead" in item for item in menu), menu[:30]
    assert "/api/v1/leads/{lead_id}/timeline" in page.locator("body").inner_text()
    # Only ReDoc's "powered by" logo is an image on its CDN; no script, style, font or spec is.
    assert [r for r in refused if not r.startswith("image ")] == [], refused
