"""/docs and /redoc render without the internet: their scripts and styles come from the API itself."""

from __future__ import annotations


def _csp_violations(page) -> list[str]:
    """What the page's Content-Security-Policy refused, as the browser reports it on the console."""
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    return violations


def test_swagger_ui_lists_the_operations_offline(served_api, offline_page):
    page, refused = offline_page()
    violations = _csp_violations(page)
    response = page.goto(f"{served_api}/docs")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]  # the security headers are on
    assert response.headers["x-content-type-options"] == "nosniff"
    page.wait_for_selector(".opblock", timeout=20_000)
    operations = page.locator(".opblock-summary-path").all_inner_texts()
    paths = {text.replace("\u200b", "").strip() for text in operations}
    assert {"/api/v1/leads", "/api/v1/leads/{lead_id}", "/health"} <= paths, sorted(paths)
    assert page.locator(".opblock-post").count() > 5
    assert "Dealflow" in page.locator(".info .title").inner_text()
    assert refused == []  # nothing was asked of a CDN
    assert violations == []  # and the policy refused nothing the page needs


def test_redoc_lists_the_operations_offline(served_api, offline_page):
    page, refused = offline_page()
    violations = _csp_violations(page)
    response = page.goto(f"{served_api}/redoc")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    page.wait_for_selector("[role=menuitem]", timeout=30_000)
    menu = [item.strip() for item in page.locator("[role=menuitem]").all_inner_texts()]
    assert any("Create Lead" in item for item in menu), menu[:30]
    assert "/api/v1/leads/{lead_id}/timeline" in page.locator("body").inner_text()
    # Only ReDoc's "powered by" logo is an image on its CDN; no script, style, font or spec is.
    assert [r for r in refused if not r.startswith("image ")] == [], refused
    # The policy keeps that logo off too (img-src 'self'); nothing else is refused.
    assert [v for v in violations if "image 'https://cdn.redoc.ly/" not in v] == [], violations
