"""A new merchant's first hour, in real Chromium (issue 13's "done when").

From an empty store (the default name, no logo, no product, manual payment methods
empty and off, no notification email) the owner follows the desk's setup checklist:
names the store and uploads a logo, fills in FPS and turns it on, adds a product
with two variants and stock. The checklist then goes away. A customer on a phone
sees the FPS details and the deadline before placing, places the order, and sees
them again with the order number as the reference. The stock ledger reconciles.
"""

from __future__ import annotations

import re

import pytest
from conftest import browser_login
from PIL import Image
from sqlalchemy import select, update

from domain.db import db
from domain.inventory import reconcile
from domain.models import Order, PaymentMethod, Product, StockMove, StoreSettings, Variant

pytestmark = pytest.mark.browser


@pytest.fixture
def empty_store(app):
    """What `make run DEMO=0` leaves: the defaults as a fresh store has them."""
    db.session.execute(update(PaymentMethod).where(PaymentMethod.kind == "manual").values(
        enabled=False, fps_id="", payee_name="", bank_name="", account_number="",
        payme_link="", instructions=""))
    settings = db.session.get(StoreSettings, 1)
    settings.name, settings.notification_email, settings.logo_path = "My Shop", "", None
    db.session.commit()
    assert db.session.scalar(select(Product.id)) is None


def _logo(tmp_path):
    path = tmp_path / "logo.png"
    Image.new("RGB", (400, 160), (200, 120, 60)).save(path, format="PNG")
    return str(path)


def test_a_new_merchant_sets_up_and_takes_a_first_fps_order(
        app, empty_store, owner, live_server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    browser_login(page, live_server, owner.email)
    card = page.locator(".setup-card, [data-testid=setup-checklist]").first
    assert card.is_visible()
    assert "0 of 5" in card.inner_text() or "1 of 5" in card.inner_text()

    # 1. The store's name, notification email, a 3-day payment deadline and a logo.
    page.goto(f"{live_server}/settings/store")
    page.get_by_label("Store name").fill("曲奇實驗室 Cookie Lab")
    page.get_by_label("Notification email (new orders)").fill("orders@cookielab.hk")
    page.get_by_label("Payment deadline (days, empty = none)").fill("3")
    page.locator("form:has(input[name=name]) button[type=submit]").first.click()
    page.wait_for_load_state()
    page.set_input_files("input[name=logo]", _logo(tmp_path))
    page.locator("form:has(input[name=logo]) button[type=submit]").click()
    page.wait_for_load_state()

    # 2. FPS details, then turn it on.
    fps = db.session.scalar(select(PaymentMethod).where(PaymentMethod.code == "fps"))
    page.goto(f"{live_server}/settings/payments")
    method = page.locator(f"#method-{fps.id}")
    method.locator(f"#pm{fps.id}-fps_id").fill("1234567")
    method.locator(f"#pm{fps.id}-payee_name").fill("Cookie Lab Ltd")
    method.locator(".pm-form button[type=submit]").click()
    page.wait_for_timeout(300)
    page.goto(f"{live_server}/settings/payments")
    page.locator(f"#method-{fps.id} form.toggle button[type=submit]").click()
    page.wait_for_load_state()
    db.session.rollback()
    assert db.session.get(PaymentMethod, fps.id).enabled

    # 3. A product with two variants and stock.
    page.goto(f"{live_server}/products/new")
    page.fill("input[name=name]", "手工曲奇禮盒")
    page.fill("input[name=variants-0-name]", "原味")
    page.fill("input[name=variants-0-sku]", "COOK-1")
    page.fill("input[name=variants-0-price]", "168")
    page.fill("input[name=variants-0-stock]", "12")
    page.fill("input[name=variants-1-name]", "抹茶")
    page.fill("input[name=variants-1-sku]", "COOK-2")
    page.fill("input[name=variants-1-price]", "178")
    page.fill("input[name=variants-1-stock]", "5")
    page.get_by_role("button", name="Save product").click()
    page.wait_for_url(re.compile(r".*/products/\d+$"))
    assert "12 in stock" in page.content()

    # The checklist has gone: the store is ready.
    page.goto(f"{live_server}/orders")
    assert page.locator(".setup-card, [data-testid=setup-checklist]").count() == 0

    # 4. A customer on a phone pays by FPS with what the page shows.
    shop = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-GB")
    customer = shop.new_page()
    customer.goto(f"{live_server}/shop/")
    assert "曲奇實驗室 Cookie Lab" in customer.content()
    db.session.rollback()  # end the test's read snapshot: see what the browser saved
    variant = db.session.scalar(select(Variant).where(Variant.sku == "COOK-1"))
    customer.locator(f"form:has(input[name=variant_id][value='{variant.id}']) button[type=submit]").click()
    customer.goto(f"{live_server}/shop/cart")
    customer.fill("input[name=name]", "陳大文")
    customer.fill("input[name=phone]", "9123 4567")
    customer.fill("input[name=email]", "tai.man@example.hk")
    customer.fill("textarea[name=address]", "旺角彌敦道 1 號")
    customer.locator("label:has-text('FPS')").first.click()
    panel = customer.locator("#checkout-panel, .pay-details").first
    panel.wait_for(state="visible")
    customer.wait_for_function("() => document.body.innerText.includes('1234567')")
    before = customer.inner_text("body")
    # Before placing: the FPS ID, the account name, the amount and the deadline with its zone.
    assert "1234567" in before and "Cookie Lab Ltd" in before
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} HKT", before)
    customer.get_by_role("button", name=re.compile("Place order")).click()
    customer.wait_for_url(re.compile(r".*/shop/o/[^/]+$"))
    after = customer.inner_text("body")
    db.session.rollback()
    order = db.session.scalar(select(Order).where(Order.kind == "placed"))
    assert order.status == "pending_payment" and order.payment_method_name == "FPS"
    # After placing: the details again, with the order number as the reference.
    assert "1234567" in after and order.number in after

    # 5. The stock ledger reconciles: opening 12, hold −1.
    assert db.session.get(Variant, variant.id).stock == 11
    moves = list(db.session.scalars(select(StockMove).where(StockMove.variant_id == variant.id)
                                    .order_by(StockMove.id)))
    assert [(m.reason, m.delta) for m in moves] == [("opening", 12), ("order_hold", -1)]
    assert moves[1].order_number == order.number
    assert reconcile() == []
    shop.close()
