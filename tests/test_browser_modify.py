"""In real Chromium, under the app's Content-Security-Policy: the merchant opens the
modify editor on the order page, adds a product found by search, changes a quantity,
sees the total follow live, saves, and reads the diff in history and the balance due;
the customer then uploads a proof for the balance on their page and the merchant
confirms it.

Set SHOPDESK_SHOTS=/some/dir to also save screenshots (editor, order page with the
balance due, customer page with the balance) at 1280 and 390 px, in English and Chinese.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import browser_login
from PIL import Image

from domain import orders as actions
from domain.actors import Actor
from domain.db import db
from domain.models import BalancePayment, Order, StoreSettings, User

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("SHOPDESK_SHOTS")


def shoot(page, name, full=True):
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=f"{SHOTS}/{name}.png", full_page=full)


def receipt_png(path: Path) -> Path:
    Image.new("RGB", (300, 420), (40, 120, 200)).save(path, "PNG")
    return path


@pytest.fixture
def paid_order(app, owner, make_order, make_variant):
    db.session.get(StoreSettings, 1).plan = "advanced"
    db.session.commit()

    def make(locale=None):
        first = make_variant(name="原味曲奇禮盒", variant="細盒", price_cents=12800, stock=10)
        order = make_order(items=[(first.id, 2)], locale=locale) if locale \
            else make_order(items=[(first.id, 2)])
        actions.confirm_payment(order.id, actor=Actor.staff(owner))
        return db.session.get(Order, order.id)
    return make


def journey(page, base, order, matcha, shots_suffix, tmp_path):
    page.goto(f"{base}/orders/{order.number}")
    page.get_by_test_id("modify-open").click()
    editor = page.locator("#modify-editor")
    editor.wait_for()
    assert page.url.endswith(f"/orders/{order.number}")  # opened in place, no page change
    total = page.get_by_test_id("modify-total")
    total.wait_for()
    before = total.inner_text()

    # add a product found by its SKU
    page.get_by_test_id("modify-search").fill(matcha.sku)
    page.get_by_test_id(f"add-{matcha.sku}").click()
    page.locator(f'input[name=key][value="variant:{matcha.id}"]').wait_for(state="attached")
    page.wait_for_function("() => !document.querySelector('.htmx-request')")
    after_add = page.get_by_test_id("modify-total").inner_text()
    assert after_add != before

    # change a quantity with the stepper: the total follows without saving
    line_key = f"line-{order.lines[0].id}"
    page.locator(f'tr[data-key="line:{order.lines[0].id}"] [data-step="1"]').click()
    page.wait_for_function(
        "(old) => document.querySelector('[data-testid=modify-total]').innerText !== old",
        arg=after_add)
    assert page.get_by_test_id(f"qty-{line_key}").input_value() == "3"
    assert page.get_by_test_id("modify-balance").is_visible()
    shoot(page, f"editor-{shots_suffix}")

    page.get_by_test_id("modify-save").click()
    page.locator("#order-body .flash-success").wait_for()
    assert page.locator("#modify-editor").count() == 0
    diff = page.get_by_test_id("history-diff").first
    diff.wait_for()
    assert matcha.product.name in diff.inner_text()
    page.get_by_test_id("balance-due").wait_for()
    shoot(page, f"order-balance-due-{shots_suffix}")
    return page.get_by_test_id("balance-due").inner_text()


def test_modify_journey_then_customer_pays_the_balance(app, live_server, browser, owner,
                                                       paid_order, make_variant, tmp_path):
    order = paid_order()
    version = order.version
    matcha = make_variant(name="抹茶曲奇禮盒", variant="大盒", price_cents=12800, stock=5)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    browser_login(page, live_server, owner.email)
    due = journey(page, live_server, order, matcha, "1280-en", tmp_path)
    assert due.startswith("HK$")
    db.session.rollback()
    saved = db.session.get(Order, order.id)
    assert saved.version == version + 1
    assert {(ln.product_name, ln.quantity) for ln in saved.lines} == {
        ("原味曲奇禮盒", 3), ("抹茶曲奇禮盒", 1)}

    # the customer pays the balance on their own page
    shop = browser.new_page(viewport={"width": 390, "height": 844})
    shop.goto(f"{live_server}/shop/o/{order.public_token}")
    assert shop.get_by_test_id("customer-balance-due").inner_text() == due
    shoot(shop, "customer-balance-390-en")
    shop.get_by_test_id("balance-proof-input").set_input_files(str(receipt_png(tmp_path / "r.png")))
    shop.get_by_test_id("balance-proof-upload").click()
    shop.get_by_test_id("balance-proof-waiting").wait_for()

    # the merchant sees the proof beside the amount and confirms it
    page.goto(f"{live_server}/orders/{order.number}")
    proof = page.get_by_test_id("balance-proof")
    assert proof.locator("img").evaluate("img => img.complete && img.naturalWidth > 0")
    shoot(page, "order-balance-proof-1280-en")
    page.get_by_test_id("balance-confirm").click()
    page.get_by_text("Balance payment confirmed for").wait_for()
    assert page.get_by_test_id("balance-due").count() == 0
    db.session.rollback()
    assert db.session.query(BalancePayment).one().status == "confirmed"
    assert not [e for e in errors if "Content Security Policy" in e], errors
    page.close()
    shop.close()


def test_screenshots_of_every_width_and_language(app, live_server, browser, owner,
                                                 paid_order, make_variant, tmp_path):
    if not SHOTS:
        pytest.skip("SHOPDESK_SHOTS not set")
    for locale in ("en", "zh_Hant_HK"):
        db.session.rollback()  # a fresh snapshot: the server wrote since
        user = db.session.get(User, owner.id)
        user.locale = locale
        db.session.commit()
        for width in (1280, 390):
            db.session.rollback()
            order = paid_order(locale=locale)
            matcha = make_variant(name="抹茶曲奇禮盒", variant="大盒", price_cents=12800, stock=5)
            page = browser.new_page(viewport={"width": width, "height": 900 if width > 400 else 844})
            browser_login(page, live_server, owner.email)
            suffix = f"{width}-{'zh' if locale != 'en' else 'en'}"
            journey(page, live_server, order, matcha, suffix, tmp_path)
            shop = browser.new_page(viewport={"width": width, "height": 900})
            shop.goto(f"{live_server}/shop/o/{order.public_token}")
            shop.get_by_test_id("customer-balance").wait_for()
            shoot(shop, f"customer-balance-{suffix}")
            page.close()
            shop.close()
    # the Basic plan's explanation, for the owner
    db.session.rollback()
    order = paid_order()
    db.session.get(StoreSettings, 1).plan = "basic"
    db.session.commit()
    page = browser.new_page(viewport={"width": 390, "height": 844})
    browser_login(page, live_server, owner.email)
    page.goto(f"{live_server}/orders/{order.number}")
    page.get_by_test_id("modify-open").click()
    page.get_by_test_id("modify-refusal").wait_for()
    shoot(page, "basic-plan-390-zh", full=False)
    page.close()
