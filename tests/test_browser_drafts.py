"""In real Chromium under the planned Content-Security-Policy: the draft builder's link
box, copy button and delete confirmation work from static/js/app.js, with no inline
handler (the CSP would refuse one).

Set SHOPDESK_SHOTS=/some/dir to also save screenshots of the builder with line errors.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from conftest import browser_login
from sqlalchemy import select

from domain import drafts
from domain.actors import Actor
from domain.db import db
from domain.models import Order, ShippingMethod
from domain.orders import CustomerDetails

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("SHOPDESK_SHOTS")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; object-src 'none'; "
       "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


@pytest.fixture
def csp_app(app):
    """The app sending the planned CSP (kept if the app already sends its own)."""
    @app.after_request
    def planned_csp(response):
        response.headers.setdefault("Content-Security-Policy", CSP)
        return response

    return app


def make_draft(variant):
    ship = db.session.scalar(select(ShippingMethod).where(ShippingMethod.kind == "delivery"))
    return drafts.create_draft(drafts.DraftInput(
        CustomerDetails("Amy", "9876 5432", address="Central"), [(variant.id, 2)], ship.id),
        actor=Actor("staff", 1, "Tester"))


def exists(order_id) -> bool:
    db.session.rollback()
    return db.session.scalar(select(Order.id).where(Order.id == order_id)) is not None


def test_builder_copy_select_and_delete_confirm_work_under_the_csp(
        csp_app, live_server, browser, owner, make_variant):
    draft = make_draft(make_variant())
    draft_id, number = draft.id, draft.number
    html = (Path(__file__).parents[1] / "templates/drafts/builder.html").read_text()
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler in the builder"

    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    refused = []
    page.on("console", lambda m: refused.append(m.text)
            if "Content Security Policy" in m.text else None)
    browser_login(page, live_server, owner.email)
    page.goto(f"{live_server}/drafts/{draft.id}")
    assert "script-src 'self'" in page.evaluate(
        "fetch(location.href).then(r => r.headers.get('content-security-policy'))")
    link = page.input_value("#draft-link")
    assert link.endswith(f"/shop/d/{draft.public_token}")

    # focusing the link box selects the whole link
    page.focus("#draft-link")
    assert page.evaluate("(() => { const i = document.getElementById('draft-link');"
                         " return [i.selectionStart, i.selectionEnd]; })()") == [0, len(link)]
    # Copy link puts it on the clipboard and says so
    page.click("button[data-copy]")
    page.wait_for_function("document.querySelector('button[data-copy]').textContent === 'Copied ✓'")
    assert page.evaluate("navigator.clipboard.readText()") == link

    # Delete asks first: Cancel keeps the draft ...
    questions = []
    page.once("dialog", lambda d: (questions.append(d.message), d.dismiss()))
    page.click("text=Delete draft")
    page.wait_for_timeout(300)
    assert questions == [f"Delete draft {draft.number} for good?"]
    assert page.url.endswith(f"/drafts/{draft.id}")
    assert exists(draft_id)
    # ... OK deletes it
    page.once("dialog", lambda d: (questions.append(d.message), d.accept()))
    page.click("text=Delete draft")
    page.wait_for_url(f"{live_server}/drafts/")
    assert f"Draft {number} deleted." in page.content()
    assert not exists(draft_id)
    assert refused == []
    context.close()


def test_builder_line_errors_at_desk_and_phone_width(csp_app, live_server, browser, owner,
                                                      make_variant):
    item = make_variant(name="抹茶曲奇", variant="12 件裝", stock=None)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    browser_login(page, live_server, owner.email)
    page.goto(f"{live_server}/drafts/new")
    page.fill("input[name=customer_name]", "李小姐")
    page.fill("input[name=phone]", "6123 4567")
    page.fill("textarea[name=address]", "沙田")
    page.select_option("select[name=lines-0-variant_id]", str(item.id))
    page.fill("input[name=lines-0-quantity]", "500")
    page.select_option("select[name=lines-1-variant_id]", str(item.id))  # quantity left blank
    page.click("button:has-text('Create draft')")
    page.wait_for_selector("#lines-1-error")
    assert page.inner_text("#lines-1-error") == "Give a quantity for this item."
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=f"{SHOTS}/draft-blank-quantity-1280.png", full_page=True)
    page.fill("input[name=lines-1-quantity]", "500")
    page.click("button:has-text('Create draft')")
    page.wait_for_selector("#lines-0-error")
    page.wait_for_selector("#lines-1-error")
    assert "add up to 1000" in page.inner_text("#lines-0-error")
    # everything typed is still there
    assert page.input_value("input[name=lines-1-quantity]") == "500"
    assert page.input_value("input[name=customer_name]") == "李小姐"
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        box = page.locator("#lines-1-error").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width  # readable, not cut off
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=f"{SHOTS}/draft-line-errors-{width}.png", full_page=True)
    page.close()
