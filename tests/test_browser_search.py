"""Search, filter, back button, select-all-matching and export in real Chromium."""

from __future__ import annotations

import pytest
from conftest import browser_login
from openpyxl import load_workbook
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_search_filter_back_select_all_export(app, live_server, browser, owner, make_variant,
                                              make_order, tmp_path):
    # given a small page size so "select all matching" has more than one page to mean
    app.config["ORDERS_PER_PAGE"] = 2
    cookies = make_variant(name="曲奇禮盒", stock=None)
    shirt = make_variant(name="Cotton T-Shirt", variant="M", stock=None)
    chans = [make_order(name=n, items=[(cookies.id, 1)]) for n in ("陳大文", "陳小明", "陳嘉欣")]
    chans.append(make_order(name="陳志強", items=[(shirt.id, 1)], payment="credit_card"))
    others = [make_order(name=n, items=[(shirt.id, 1)]) for n in ("Amy Wong", "李嘉欣")]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    browser_login(page, live_server, owner.email)
    rows = page.locator("tr.order-row")
    expect(page.locator("#bulk-count")).to_have_text("6 orders")

    # when: type into search, the list narrows without a page load
    page.evaluate("window.__marker = 1")
    page.fill("#q", "陳")
    expect(page.locator("#bulk-count")).to_have_text("4 orders")
    assert page.evaluate("window.__marker") == 1
    assert "q=%E9%99%B3" in page.url
    expect(page.locator("#status-tabs a[aria-current=page] .count")).to_have_text("4")

    # apply a filter: payment method credit card
    page.click("summary:has-text('Filters')")
    page.check("label:has-text('Credit Card') input")
    expect(page.locator("#bulk-count")).to_have_text("1 order")
    expect(rows).to_have_count(1)
    assert "payment=" in page.url

    # back: the filter is undone, the search stays
    page.go_back()
    expect(page.locator("#bulk-count")).to_have_text("4 orders")
    assert "payment=" not in page.url and "q=" in page.url

    # select all on the page, then all matching, then export
    page.check("#select-page")
    expect(page.locator("#bulk-count")).to_have_text("2 selected")
    page.click("#select-matching")
    expect(page.locator("#bulk-count")).to_have_text("All 4 matching orders selected")
    with page.expect_download() as download_info:
        page.click("#export-selected")
    path = tmp_path / "export.xlsx"
    download_info.value.save_as(path)
    sheet = load_workbook(path)["Orders"]
    exported = sorted(r[0] for r in sheet.iter_rows(min_row=2, values_only=True))
    assert exported == sorted(o.number for o in chans)
    assert not set(exported) & {o.number for o in others}
