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
from playwright.sync_api import expect
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
    page.wait_for_function("() => document.querySelector('button[data-copy]').textContent === 'Copied ✓'")
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


def total(page) -> str:
    return page.inner_text("[data-testid=draft-total]")


def test_builder_journey_search_step_total_method_lookup_save(
        csp_app, live_server, browser, owner, make_variant, make_order):
    """Issue 16: type in the search, add two items, step a quantity and watch the total,
    switch SF Express to store pickup (the fee goes), look up a customer, save."""
    cookie = make_variant(name="抹茶曲奇", variant="12 件裝", price_cents=10000, stock=None)
    roll = make_variant(name="抹茶蛋卷", variant="", price_cents=5000, stock=20)
    gone = make_variant(name="抹茶舊款", variant="")
    from domain.catalog import archive_product
    archive_product(gone.product_id)
    make_order(name="陳大文", phone="9123 4567", email="tai.man@example.hk",
               address="旺角彌敦道 1 號")
    sf = db.session.scalar(select(ShippingMethod).where(ShippingMethod.kind == "logistics"))
    pickup = db.session.scalar(select(ShippingMethod).where(ShippingMethod.kind == "pickup"))
    assert sf.fee_cents == 4000 and pickup.fee_cents == 0

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    refused = []
    page.on("console", lambda m: refused.append(m.text)
            if "Content Security Policy" in m.text else None)
    browser_login(page, live_server, owner.email)
    page.goto(f"{live_server}/drafts/new")
    page.select_option("[data-testid=draft-shipping]", str(sf.id))
    page.type("[data-testid=draft-search]", "抹茶", delay=30)
    page.wait_for_selector(f"[data-testid=add-{cookie.sku}]")
    assert page.locator(f"[data-testid=add-{gone.sku}]").count() == 0  # archived: not offered
    page.click(f"[data-testid=add-{cookie.sku}]")
    page.wait_for_selector("input[name=lines-0-quantity]")
    expect(page.locator("[data-testid=draft-total]")).to_have_text("HK$140.00")
    page.click(f"[data-testid=add-{roll.sku}]")  # the results stay for the next item
    page.wait_for_selector("input[name=lines-1-quantity]")
    assert total(page) == "HK$190.00"
    # step the cookies up: the total follows, from the server
    plus = page.locator("tr.draft-line").nth(0).locator("[data-step='1']")
    assert "One more 抹茶曲奇" in plus.get_attribute("aria-label")
    plus.click()
    expect(page.locator("[data-testid=draft-total]")).to_have_text("HK$290.00")
    assert page.input_value("input[name=lines-0-quantity]") == "2"
    # adding one already there adds 1 to its line
    page.click(f"[data-testid=add-{cookie.sku}]")
    expect(page.locator("input[name=lines-0-quantity]")).to_have_value("3")
    assert page.locator("input[name=lines-2-quantity]").count() == 0
    expect(page.locator("[data-testid=draft-total]")).to_have_text("HK$390.00")
    # switch to store pickup with no typed fee: the total drops by SF Express's HK$40
    assert page.get_attribute("[data-testid=draft-fee]", "placeholder") == "40.00"
    page.select_option("[data-testid=draft-shipping]", str(pickup.id))
    expect(page.locator("[data-testid=draft-total]")).to_have_text("HK$350.00")
    assert page.get_attribute("[data-testid=draft-fee]", "placeholder") == "0.00"
    # a typed fee says so; clearing it goes back to the method's
    page.fill("[data-testid=draft-fee]", "15")
    page.wait_for_selector("text=typed by you; the method charges HK$0.00")
    assert total(page) == "HK$365.00"
    page.click("[data-testid=use-method-fee]")
    expect(page.locator("[data-testid=draft-total]")).to_have_text("HK$350.00")
    assert page.input_value("[data-testid=draft-fee]") == ""
    # look up a past customer by phone and use their details
    page.type("[data-testid=draft-lookup]", "9123", delay=30)
    page.wait_for_selector("[data-testid=use-customer-1]")
    page.click("[data-testid=use-customer-1]")
    expect(page.locator("input[name=customer_name]")).to_have_value("陳大文")
    assert page.input_value("input[name=phone]") == "9123 4567"
    assert page.input_value("input[name=email]") == "tai.man@example.hk"
    assert page.input_value("input[name=lines-0-quantity]") == "3"  # lines kept
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=f"{SHOTS}/draft-journey-1280.png", full_page=True)
    page.click("[data-testid=draft-save]")
    page.wait_for_selector("#draft-link")
    db.session.rollback()
    draft = db.session.scalar(select(Order).where(Order.kind == "draft"))
    assert [(ln.variant_id, ln.quantity) for ln in draft.lines] == [(cookie.id, 3), (roll.id, 1)]
    assert (draft.customer_name, draft.shipping_kind, draft.total_cents) == (
        "陳大文", "pickup", 35000)
    assert total(page) == "HK$350.00"
    assert refused == []
    page.close()


def test_builder_works_without_javascript(live_server, browser, owner, make_variant):
    item = make_variant(name="杏仁餅", variant="", price_cents=3000)
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    browser_login(page, live_server, owner.email)
    page.goto(f"{live_server}/drafts/new")
    page.fill("[data-testid=draft-search]", "杏仁")
    page.press("[data-testid=draft-search]", "Enter")  # the default button: search
    page.click(f"[data-testid=add-{item.sku}]")
    page.fill("input[name=lines-0-quantity]", "2")
    page.fill("input[name=customer_name]", "李小姐")
    page.fill("input[name=phone]", "6123 4567")
    page.fill("textarea[name=address]", "沙田")
    page.click("[data-testid=draft-save]")
    page.wait_for_selector("#draft-link")
    db.session.rollback()
    draft = db.session.scalar(select(Order).where(Order.kind == "draft"))
    assert [(ln.variant_id, ln.quantity) for ln in draft.lines] == [(item.id, 2)]
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
    page.fill("[data-testid=draft-search]", "抹茶")
    page.click(f"[data-testid=add-{item.sku}]")
    page.wait_for_selector("input[name=lines-0-quantity]")
    page.fill("input[name=lines-0-quantity]", "500")
    # the same item on a second line, its quantity left blank (a crafted post: the
    # builder itself adds one to the first line)
    page.evaluate("""(vid) => {
      const form = document.getElementById('draft-form');
      for (const [name, value] of [['lines-1-variant_id', vid], ['lines-1-quantity', '']]) {
        const input = document.createElement('input');
        input.type = 'hidden'; input.name = name; input.value = value; form.appendChild(input);
      }}""", str(item.id))
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


@pytest.mark.parametrize("width", (1280, 390))
def test_a_filled_builder_passes_axe_and_has_touch_sized_controls(
        live_server, browser, owner, make_variant, make_order, width):
    """tests/test_accessibility.py checks the empty builder; this is the builder in use:
    lines with steppers, search results, the running total, a typed fee, customers."""
    from test_accessibility import AXE, RUN_AXE, SMALL_CONTROLS

    item = make_variant(name="抹茶曲奇", variant="12 件裝", price_cents=10000)
    make_order(name="陳大文", phone="9123 4567")
    page = browser.new_page(viewport={"width": width, "height": 900})
    browser_login(page, live_server, owner.email)
    page.goto(f"{live_server}/drafts/new?q=抹茶&lookup=陳")
    page.click(f"[data-testid=add-{item.sku}]")
    page.wait_for_selector("input[name=lines-0-quantity]")
    page.fill("[data-testid=draft-fee]", "12")
    page.fill("[data-testid=draft-lookup]", "陳大")
    page.wait_for_selector("[data-testid=use-method-fee]")
    page.wait_for_selector("[data-testid=use-customer-1]")
    page.wait_for_load_state("networkidle")
    page.evaluate(AXE.read_text(encoding="utf-8"))
    assert page.evaluate(RUN_AXE) == []
    if width < 760:
        assert page.evaluate(SMALL_CONTROLS) == []
    box = page.locator("[data-testid=draft-total]").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=f"{SHOTS}/draft-filled-{width}.png", full_page=True)
    page.close()
