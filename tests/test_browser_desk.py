"""Main journeys of the order desk in real headless Chromium."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import browser_login
from playwright.sync_api import expect

from domain.db import db
from domain.models import Order, Variant

pytestmark = pytest.mark.browser

SHOTS = Path(os.environ.get("SHOPDESK_SCREENSHOTS", "instance/screenshots"))


def test_inline_tracking_and_reject(live_server, browser, owner, make_variant, make_order):
    # given two orders
    to_ship = make_order(name="陳大文", payment="credit_card")
    v = make_variant(stock=5)
    to_reject = make_order(name="Amy Wong", items=[(v.id, 2)])
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    browser_login(page, live_server, owner.email)

    # when: open an order from the list and edit its tracking code inline
    page.click(f"text={to_ship.number}")
    page.wait_for_url(f"{live_server}/orders/{to_ship.number}")
    expect(page.locator("h1")).to_contain_text(to_ship.number)
    page.goto(f"{live_server}/orders")
    cell = page.locator(f"#tracking-list-{to_ship.number}")
    cell.locator("button").click()
    box = page.locator(f"#tracking-list-{to_ship.number} input[name=tracking_code]")
    expect(box).to_be_focused()
    box.fill("SF1234567890")
    box.press("Enter")
    expect(page.locator(f"#tracking-list-{to_ship.number}")).to_contain_text("SF1234567890")
    assert page.url == f"{live_server}/orders"  # no page reload or navigation

    # Escape cancels an edit without saving
    page.locator(f"#tracking-list-{to_ship.number} button").click()
    page.locator(f"#tracking-list-{to_ship.number} input[name=tracking_code]").fill("WRONG")
    page.locator(f"#tracking-list-{to_ship.number} input[name=tracking_code]").press("Escape")
    expect(page.locator(f"#tracking-list-{to_ship.number}")).to_contain_text("SF1234567890")
    expect(page.locator(f"#tracking-list-{to_ship.number} input[name=tracking_code]")).to_have_count(0)

    # when: reject the other order with a reason in the dialog
    page.goto(f"{live_server}/orders/{to_reject.number}")
    expect(page.locator("h1 .badge")).to_have_class("badge badge-red")
    page.click("text=Reject order…")
    dialog = page.locator("#reject-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("No refund is made by Shopdesk")
    dialog.locator("textarea").fill("客人取消 — customer cancelled")
    dialog.locator("button[type=submit]").click()

    # then the badge turns grey, the reason shows, stock is back
    expect(page.locator("h1 .badge")).to_have_class("badge badge-grey")
    expect(page.locator("h1 .badge")).to_have_text("Canceled")
    expect(page.locator(".timeline")).to_contain_text("客人取消")
    db.session.rollback()
    assert db.session.get(Order, to_reject.id).status == "canceled"
    assert db.session.get(Variant, v.id).stock == 5
    assert db.session.get(Order, to_ship.id).tracking_code == "SF1234567890"


def test_refused_inline_edit_says_why(live_server, browser, owner, make_order):
    order = make_order(payment="credit_card")
    page = browser.new_page()
    browser_login(page, live_server, owner.email)
    page.goto(f"{live_server}/orders/{order.number}")
    page.fill(".ship-form input[name=tracking_code]", "SF42")
    page.click("text=Confirm shipment")
    expect(page.locator("h1 .badge")).to_have_text("Completed")
    expect(page.locator("#tracking-page-" + order.number)).to_contain_text("SF42")
    expect(page.locator(f"#tracking-page-{order.number} button")).to_have_count(0)


@pytest.mark.parametrize("width,height,name", [(1280, 900, "desktop"), (390, 844, "phone")])
def test_screenshots(live_server, browser, owner, make_variant, make_order, width, height, name):
    """Renders every desk page at desktop and phone width and saves screenshots to look at."""
    for i, who in enumerate(["陳大文", "Amy Wong", "李嘉欣", "Kelvin Chan", "黃志強"]):
        order = make_order(name=who, payment="credit_card" if i % 2 else "fps",
                           shipping="pickup" if i == 3 else "delivery",
                           address="" if i == 3 else "旺角彌敦道 100 號 12 樓")
    from domain.actors import Actor
    from domain.orders import add_note, set_tracking_code
    set_tracking_code(order.id, "SF1234567890", actor=Actor("staff", owner.id, owner.label))
    add_note(order.id, "客人要求禮物包裝", actor=Actor("staff", owner.id, owner.label))
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": width, "height": height})
    browser_login(page, live_server, owner.email)
    for slug, path in [("orders", "/orders"), ("order", f"/orders/{order.number}"),
                       ("settings-store", "/settings/store"),
                       ("settings-payments", "/settings/payments"),
                       ("settings-shipping", "/settings/shipping"),
                       ("settings-staff", "/settings/staff")]:
        page.goto(live_server + path)
        expect(page.locator("h1")).to_be_visible()
        # nothing wider than the viewport (no sideways scrolling on a phone)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{slug} scrolls sideways by {overflow}px at {width}px"
        page.screenshot(path=str(SHOTS / f"{slug}-{name}.png"), full_page=True)
    from domain.saved_views import save_view

    save_view(owner.id, "待確認付款", "status=pending_confirmation")
    page.goto(f"{live_server}/orders?q=%E9%99%B3")
    page.click("summary:has-text('Filters')")
    page.check("#select-page")
    page.screenshot(path=str(SHOTS / f"orders-filters-{name}.png"), full_page=True)
    page.goto(f"{live_server}/orders/{order.number}")
    page.click("text=Reject order…") if page.locator("text=Reject order…").count() else None
    page.screenshot(path=str(SHOTS / f"reject-dialog-{name}.png"))
    page.context.clear_cookies()
    page.goto(live_server + "/login")
    page.screenshot(path=str(SHOTS / f"login-{name}.png"))
