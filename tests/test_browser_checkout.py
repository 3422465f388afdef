"""In real Chromium: a customer checks out and uploads a proof image; the merchant confirms it.

Set SHOPDESK_SHOTS=/some/dir to also save screenshots of each page at 1280 px and 390 px.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from conftest import PASSWORD
from sqlalchemy import select
from werkzeug.serving import make_server

from domain.db import db
from domain.models import Order, Variant

pytestmark = pytest.mark.browser
pytest_plugins = ["jobs_fixtures"]
SHOTS = os.environ.get("SHOPDESK_SHOTS")


@pytest.fixture
def live_server(app, redis_conn):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)


@pytest.fixture
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, headless=True,
                                    args=["--no-sandbox", "--disable-gpu",
                                          "--disable-background-networking"])
        yield browser
        browser.close()


def shoot(page, name: str) -> None:
    if not SHOTS:
        return
    Path(SHOTS).mkdir(parents=True, exist_ok=True)
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=f"{SHOTS}/{name}-{width}.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def test_customer_checks_out_uploads_proof_and_merchant_confirms(
        app, live_server, browser, owner, make_variant, samples, tmp_path):
    from domain.store import get_settings

    get_settings().payment_deadline_days = 3
    db.session.commit()
    variant = make_variant(name="手工曲奇禮盒", variant="原味 12 件", price_cents=16800, stock=5)
    make_variant(name="Matcha cookies 抹茶曲奇", variant="Tin of 20", price_cents=9850, stock=2)
    variant_id = variant.id
    proof = tmp_path / "fps-receipt.png"
    proof.write_bytes(samples.image_bytes("PNG", (600, 900), colour="#2e7d32"))

    # the customer
    customer = browser.new_page(viewport={"width": 1280, "height": 900})
    customer.goto(f"{live_server}/shop/")
    shoot(customer, "storefront-list")
    customer.locator(f'[data-testid="variant-{variant.sku}"] input[name=quantity]').fill("2")
    customer.locator(f'[data-testid="variant-{variant.sku}"] button').click()
    customer.get_by_text("Added 2 × 手工曲奇禮盒 — 原味 12 件 to your cart.").wait_for()
    assert customer.get_by_test_id("cart-count").inner_text() == "2"
    customer.get_by_role("link", name="Cart").click()
    customer.get_by_label("Name").fill("陳大文")
    customer.get_by_label("Phone").fill("9123 4567")
    customer.get_by_label("Delivery address (not needed for pickup)").fill("九龍旺角彌敦道 1 號")
    customer.get_by_text("FPS", exact=True).click()
    shoot(customer, "cart-checkout")
    customer.get_by_role("button", name="Place order").click()
    customer.get_by_text("Thank you! Your order is placed.").wait_for()
    assert "Pending payment" in customer.locator("h1").inner_text()
    assert customer.get_by_test_id("deadline").is_visible()
    customer.locator("input[type=file]").set_input_files(str(proof))
    customer.get_by_role("button", name="Upload proof").click()
    customer.get_by_text("We received your payment proof").wait_for()
    assert "Payment pending confirmation" in customer.locator("h1").inner_text()
    assert customer.locator("img[alt='Your payment proof']").evaluate("i => i.naturalWidth") > 0
    shoot(customer, "customer-order")
    order_url = customer.url

    # the merchant
    merchant = browser.new_page(viewport={"width": 1280, "height": 900})
    merchant.goto(f"{live_server}/login")
    merchant.get_by_label("Email").fill(owner.email)
    merchant.get_by_label("Password").fill(PASSWORD)
    merchant.get_by_role("button", name="Sign in").click()
    merchant.wait_for_url(f"{live_server}/orders*")
    merchant.goto(f"{live_server}/review/")
    db.session.rollback()
    order = db.session.scalar(select(Order).order_by(Order.id.desc()).limit(1))
    item = merchant.get_by_test_id(f"queue-{order.number}")
    assert "陳大文" in item.inner_text() and "HK$366.00" in item.inner_text()
    assert item.locator(".proof-zoom img").evaluate("i => i.naturalWidth") > 0
    shoot(merchant, "review-queue")
    item.get_by_role("button", name="Confirm payment").click()
    merchant.get_by_text(f"Payment confirmed for {order.number}.").wait_for()
    assert merchant.get_by_test_id(f"queue-{order.number}").count() == 0

    merchant.goto(f"{live_server}/drafts/new")
    shoot(merchant, "draft-builder")

    # the customer sees it paid; the stock stayed held
    customer.goto(order_url)
    assert "Processing" in customer.locator("h1").inner_text()
    db.session.rollback()
    assert db.session.get(Order, order.id).status == "processing"
    assert db.session.get(Variant, variant_id).stock == 3
