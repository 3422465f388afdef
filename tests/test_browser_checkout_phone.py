"""In real Chromium on a 390 px phone: the checkout explains itself before placing
(FPS details and the deadline with its zone), the total follows the shipping choice,
the card field appears only for an online method, and the order page shows how to
pay again with the order number as the reference.

Set SHOPDESK_SHOTS=/some/dir to also save screenshots at 1280 px and 390 px, in
English and Chinese."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from domain.db import db
from domain.models import Order
from domain.store import get_settings

pytestmark = pytest.mark.browser
pytest_plugins = ["jobs_fixtures"]
SHOTS = os.environ.get("SHOPDESK_SHOTS")
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def live(app, redis_conn, live_server):
    return live_server


def shoot(page, name: str) -> None:
    if not SHOTS:
        return
    Path(SHOTS).mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=f"{SHOTS}/{name}-{width}.png", full_page=True)
    page.set_viewport_size(size)


def add_to_cart(page, base, variant, quantity=1):
    page.goto(f"{base}/shop/")
    form = page.locator(f'form:has(input[name=variant_id][value="{variant.id}"])')
    form.locator("input[name=quantity]").fill(str(quantity))
    form.locator("button[type=submit]").click()
    page.wait_for_url(f"{base}/shop/")
    page.wait_for_load_state()


def total(page) -> str:
    return page.get_by_test_id("checkout-total").inner_text()


def test_phone_checkout_explains_itself_before_and_after_placing(app, live, browser,
                                                                 make_variant):
    get_settings().payment_deadline_days = 3
    db.session.commit()
    variant = make_variant(name="手工曲奇禮盒", variant="原味 12 件", price_cents=16800, stock=5)
    page = browser.new_page(viewport=PHONE)
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    add_to_cart(page, live, variant)
    page.get_by_role("link", name="Cart").click()
    page.wait_for_load_state()  # htmx is bound (deferred script) before radios are clicked

    # choosing FPS explains it before anything is placed
    page.get_by_test_id("choose-pay").wait_for()
    page.get_by_text("FPS", exact=True).click()
    pay = page.get_by_test_id("pay-before")
    pay.wait_for()
    assert "How to pay with FPS" in pay.inner_text()
    assert "1234567" in pay.inner_text()  # the FPS ID from the store's typed details
    deadline = page.get_by_test_id("deadline-before").inner_text()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d HKT", deadline), deadline
    assert "Pay within 3 days" in pay.inner_text()
    assert page.locator("input[name=card_number]").count() == 0
    assert total(page) == "HK$198.00"  # 168 + 30 local delivery
    pay.scroll_into_view_if_needed()
    shoot(page, "checkout-fps-en")

    # the total follows the shipping choice (a server fragment, nothing placed)
    page.get_by_text("Store pickup (Mong Kok)").click()
    expect(page.get_by_test_id("checkout-total")).to_have_text("HK$168.00")
    page.get_by_text("SF Express (auto waybill)").click()
    expect(page.get_by_test_id("checkout-total")).to_have_text("HK$208.00")

    # an online method: the test banner and the card field, no transfer details
    page.get_by_text("Credit Card", exact=True).click()
    page.get_by_test_id("test-banner").wait_for()
    card = page.locator("input[name=card_number]")
    card.fill("4242 4242 4242 4242")
    assert page.get_by_test_id("pay-before").count() == 0
    page.get_by_text("Local delivery", exact=True).click()  # the typed card number survives
    expect(page.get_by_test_id("checkout-total")).to_have_text("HK$198.00")
    assert page.locator("input[name=card_number]").input_value() == "4242 4242 4242 4242"
    shoot(page, "checkout-card-en")

    # back to FPS, and place the order
    page.get_by_text("FPS", exact=True).click()
    page.get_by_test_id("pay-before").wait_for()
    assert page.locator("input[name=card_number]").count() == 0
    page.get_by_role("textbox", name="Name", exact=True).fill("陳大文")
    page.get_by_role("textbox", name="Phone", exact=True).fill("9123 4567")
    page.get_by_role("textbox", name="Email", exact=True).fill("tai.man@example.hk")
    page.get_by_label("Delivery address (not needed for pickup)").fill("九龍旺角彌敦道 1 號")
    page.get_by_role("button", name="Place order").click()
    page.get_by_text("Thank you! Your order is placed.").wait_for()
    db.session.rollback()
    order = db.session.scalar(select(Order).order_by(Order.id.desc()).limit(1))
    after = page.get_by_test_id("pay-after")
    assert after.is_visible()
    text = after.inner_text()
    assert order.number in text and "HK$198.00" in text and "1234567" in text
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d HKT", page.get_by_test_id("deadline").inner_text())
    whatsapp = page.get_by_test_id("whatsapp")
    assert whatsapp.get_attribute("href").startswith("https://wa.me/?text=")
    assert whatsapp.get_attribute("rel") == "noopener"
    page.get_by_role("button", name="Email me this link").click()
    page.get_by_text("We emailed this page's link to tai.man@example.hk").wait_for()
    shoot(page, "order-en")
    # no page overflows the phone's width
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert not [e for e in errors if "Content Security Policy" in e], errors

    # the same pages in Chinese (screenshots only when asked)
    if SHOTS:
        order_url = page.url
        page.get_by_role("button", name="繁體中文").first.click()
        page.wait_for_load_state()
        shoot(page, "order-zh")
        add_to_cart(page, live, variant)
        page.goto(f"{live}/shop/cart")
        page.locator("input[name=payment_method]").first.check()
        page.get_by_test_id("pay-before").wait_for()
        shoot(page, "checkout-fps-zh")
        page.locator("input[name=payment_method][data-kind=online]").first.check()
        page.get_by_test_id("test-banner").wait_for()
        shoot(page, "checkout-card-zh")
        assert order_url
