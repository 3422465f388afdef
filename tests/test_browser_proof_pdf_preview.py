"""In real Chromium: a PDF proof in the review queue shows its first page as a loaded
image (not a broken one), zooms like a photo, and a damaged PDF shows the placeholder.

Set SHOPDESK_SHOTS=/some/dir to also save screenshots at 1280 and 390 px.
"""

from __future__ import annotations

import os
from io import BytesIO
from pathlib import Path

import pytest
from conftest import browser_login
from test_proof_pdf_preview import damaged, receipt_pdf

from domain.proofs import pdf_preview_path, resolve, submit_proof

pytestmark = pytest.mark.browser
pytest_plugins = ["jobs_fixtures"]
SHOTS = os.environ.get("SHOPDESK_SHOTS")


@pytest.mark.parametrize("width", [1280, 390])
def test_a_pdf_proof_loads_as_an_image_and_zooms(app, live_server, browser, owner, make_order,
                                                 width):
    pdf = submit_proof(make_order().id, BytesIO(receipt_pdf()))
    legacy = submit_proof(make_order().id, BytesIO(receipt_pdf(amount="HK$ 128.00")))
    resolve(pdf_preview_path(legacy.proof_path)).unlink()  # stored before previews: drawn now
    bad = submit_proof(make_order().id, BytesIO(damaged(receipt_pdf())))
    page = browser.new_page(viewport={"width": width, "height": 900})
    broken = []
    page.on("response", lambda r: broken.append(r.url) if r.status >= 400 else None)
    browser_login(page, live_server, owner.email)
    page.goto(f"{live_server}/review/")
    for order in (pdf, legacy):
        img = page.get_by_test_id(f"queue-{order.number}").locator(".proof-zoom img")
        img.scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())
        natural = img.evaluate("img => [img.naturalWidth, img.naturalHeight]")
        assert natural[1] == 1400 and 900 < natural[0] < 1100  # A4, long side 1400 px
        shown = img.bounding_box()
        assert shown["width"] > 250  # as large as a photo proof, not an icon
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.get_by_test_id(f"queue-{pdf.number}").scroll_into_view_if_needed()
        page.screenshot(path=f"{SHOTS}/review-pdf-{width}.png", full_page=True)
    card = page.get_by_test_id(f"queue-{bad.number}")
    assert card.get_by_test_id("pdf-preview-unavailable").is_visible()
    assert card.locator("img").count() == 0
    # Click to zoom, as for a photo: the dialog shows the same page, with the PDF a tap away.
    page.get_by_test_id(f"queue-{pdf.number}").locator(".proof-zoom").click()
    dialog = page.locator(f"#zoom-{pdf.number}")
    dialog.wait_for(state="visible")
    assert dialog.locator("img").evaluate("img => img.naturalWidth") > 0
    assert dialog.get_by_role("link", name="PDF · open").get_attribute("href") == \
        f"/review/proofs/{pdf.number}"
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/review-pdf-zoom-{width}.png")
    page.keyboard.press("Escape")
    assert not dialog.evaluate("d => d.open")
    assert broken == []  # no image request failed: nothing on the page is a broken image
