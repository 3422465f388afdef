"""Desk → Products in real Chromium: create a product with two variants, adjust
stock, see the ledger; search the list; screenshots at 1280 and 390 px."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import browser_login
from playwright.sync_api import expect

from domain.actors import Actor
from domain.catalog import VariantInput, save_product
from domain.db import db
from domain.models import Product
from domain.store import get_settings

pytestmark = pytest.mark.browser

SHOTS = Path(os.environ.get("SHOPDESK_SCREENSHOTS", "instance/screenshots"))


def test_create_adjust_and_ledger(live_server, browser, owner):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))  # script errors (CSP, JS)
    browser_login(page, live_server, owner.email)
    page.click("nav.mainnav >> text=Products")
    expect(page.locator("h1")).to_contain_text("Products")
    page.click("text=Add product")

    page.fill("input[name=name]", "曲奇禮盒")
    page.fill("input[name=variants-0-name]", "原味")
    page.fill("input[name=variants-0-sku]", "cook-1")
    page.fill("input[name=variants-0-barcode]", "4006381333931")
    page.fill("input[name=variants-0-price]", "128")
    page.fill("input[name=variants-0-stock]", "5")
    # the spare row (index 1) takes the second variant; "Add variant" gives a third row
    page.fill("input[name=variants-1-name]", "朱古力")
    page.fill("input[name=variants-1-sku]", "COOK-2")
    page.fill("input[name=variants-1-price]", "138")
    page.click("#add-variant")
    expect(page.locator("tr.variant-row")).to_have_count(3)
    expect(page.locator("input[name=variants-2-name]")).to_be_focused()
    page.fill("input[name=variants-2-name]", "壞")
    page.fill("input[name=variants-2-sku]", "COOK-1")  # duplicate: refused next to the field
    page.fill("input[name=variants-2-price]", "1")
    page.click("button:has-text('Save product')")
    expect(page.locator("#err-variants-2-sku")).to_contain_text("used twice")
    expect(page.locator("input[name=variants-0-name]")).to_have_value("原味")  # kept as typed
    # remove the bad row (a new row: dropped from the page) and save
    expect(page.locator("tr.variant-row")).to_have_count(4)  # with a new spare blank row
    page.locator("input[name=variants-2-remove]").click()
    expect(page.locator("tr.variant-row")).to_have_count(3)
    page.click("button:has-text('Save product')")

    expect(page.locator("h1")).to_contain_text("曲奇禮盒")
    expect(page.locator(".flash-success")).to_contain_text("Product saved.")
    ledger = page.locator("#ledger")
    expect(ledger).to_contain_text("Opening stock")
    detail_url = page.url
    assert detail_url.startswith(f"{live_server}/products/")

    # adjust: +12 received, then a refused -100 keeps the typed text
    row = page.locator(".variant-item").first
    row.locator("input[name=delta]").fill("+12")
    row.locator("input[name=note]").fill("received")
    page.evaluate("window.__marker = 1")
    row.locator("button:has-text('Adjust stock')").click()
    expect(page.locator(".variant-item").first).to_contain_text("17 in stock")
    expect(ledger.locator("tbody tr").first).to_contain_text("+12")
    expect(ledger.locator("tbody tr").first).to_contain_text("received")
    expect(ledger.locator("tbody tr").first).to_contain_text("Olivia Owner")
    row = page.locator(".variant-item").first
    row.locator("input[name=delta]").fill("-100")
    row.locator("input[name=note]").fill("lost")
    row.locator("button:has-text('Adjust stock')").click()
    expect(page.locator(".variant-item .field-error")).to_contain_text("cannot go below zero")
    expect(page.locator(".variant-item").first.locator("input[name=delta]")).to_have_value("-100")
    assert page.evaluate("window.__marker") == 1  # no page load
    expect(ledger.locator("tbody tr")).to_have_count(2)

    # the list finds it by CJK, SKU and barcode; archive hides it
    page.goto(f"{live_server}/products/")
    page.fill("#q", "礼盒")
    page.wait_for_url("**/products/?q=*")
    expect(page.locator("#results")).to_contain_text("COOK-2")
    page.fill("#q", "zzz")
    expect(page.locator("#results")).to_contain_text("No products match")
    page.goto(detail_url)
    page.click("button:has-text('Archive')")
    expect(page.locator("h1 .badge")).to_contain_text("Archived")
    db.session.rollback()
    assert db.session.query(Product).one().active is False
    assert not errors, errors


def _demo(owner):
    actor = Actor.staff(owner)
    p = save_product(None, name="曲奇禮盒 Butter Cookies", description="每盒 12 件",
                     variants=[VariantInput(None, "原味 Original", "COOK-1", "4006381333931", "128",
                                            "3", "5"),
                               VariantInput(None, "朱古力 Chocolate", "COOK-2", "", "138", "40", "5"),
                               VariantInput(None, "抹茶 Matcha", "COOK-3", "", "138", "", "")],
                     actor=actor)
    save_product(None, name="Jasmine Green Tea 茉莉綠茶", variants=[
        VariantInput(None, "", "TEA-1", "4891234567898", "45.5", "120", "10")], actor=actor)
    from domain import inventory
    inventory.adjust_stock(p.variants[1].id, "-2", note="damaged in transit", actor=actor)
    return p


@pytest.mark.parametrize("lang", ["en", "zh_Hant_HK"])
def test_screenshots(live_server, browser, owner, lang):
    get_settings().language = lang
    db.session.commit()
    p = _demo(owner)
    out = Path(os.environ.get("SHOTS_DIR", SHOTS))
    out.mkdir(parents=True, exist_ok=True)
    for width, height in ((1280, 900), (390, 844)):
        page = browser.new_page(viewport={"width": width, "height": height})
        browser_login(page, live_server, owner.email)
        for name, url in (("list", "/products/"), ("detail", f"/products/{p.id}"),
                          ("edit", f"/products/{p.id}/edit")):
            page.goto(live_server + url)
            page.screenshot(path=str(out / f"{name}-{lang}-{width}.png"), full_page=True)
        # a refused save: errors next to the fields, the typed text kept
        page.fill("input[name=variants-0-price]", "-1")
        page.fill("input[name=variants-1-barcode]", "4006381333932")
        page.locator("#product-form button[type=submit]").click()
        expect(page.locator("#err-variants-0-price")).to_be_visible()
        expect(page.locator("input[name=variants-0-price]")).to_have_value("-1")
        page.screenshot(path=str(out / f"edit-error-{lang}-{width}.png"), full_page=True)
        page.close()
