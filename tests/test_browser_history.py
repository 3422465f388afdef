"""The orders list and browser history in real Chromium: Back, Forward, reload and
htmx history restores always show the form, rows and address the same way; no
duplicate history entries; no stale lists; export without JavaScript."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import browser_login, method_id
from openpyxl import load_workbook
from playwright.sync_api import expect

from domain.actors import SYSTEM
from domain.models import PaymentMethod
from domain.orders import reject_order

pytestmark = pytest.mark.browser

SHOTS = Path(os.environ.get("SHOPDESK_SCREENSHOTS", "instance/screenshots"))
CHAN = quote("陳")


@pytest.fixture
def chans(make_variant, make_order):
    """Three 陳 orders (two FPS, one credit card) and one other customer."""
    cookies = make_variant(name="曲奇禮盒", stock=None)
    return {
        "fps": [make_order(name="陳大文", items=[(cookies.id, 1)]),
                make_order(name="陳小明", items=[(cookies.id, 1)])],
        "card": make_order(name="陳志強", items=[(cookies.id, 1)], payment="credit_card"),
        "other": make_order(name="Amy Wong", items=[(cookies.id, 1)], payment="credit_card"),
    }


def expect_list(page, url: str, *, q: str, payments: set[int], status: str, orders) -> None:
    """The address, the rows, the search box, the ticks and the tab all say the same."""
    page.wait_for_url(url)
    newest_first = sorted(orders, key=lambda o: o.id, reverse=True)
    expect(page.locator("tr.order-row .order-link")).to_have_text([o.number for o in newest_first])
    expect(page.locator("#q")).to_have_value(q)
    for box in page.locator("#order-filters input[name=payment]").all():
        expect(box).to_be_checked(checked=int(box.get_attribute("value")) in payments)
    current = page.locator("#status-tabs a[aria-current=page]")
    expect(current).to_have_count(1)
    if status:
        expect(current).to_have_attribute("data-status", status)
    else:
        expect(current).not_to_have_attribute("data-status", re.compile(".*"))
    # what a submit would send is what the address says (the hidden tab field too)
    expect(page.locator("#order-filters input[name=status]")).to_have_value(status)


def _through_history(page, step) -> None:
    """Go Back or Forward within the list and wait until htmx has restored the page
    (until then the page still shows the entry it left)."""
    page.evaluate("() => { window.__restored = false; document.body.addEventListener("
                  "'htmx:historyRestore', function () { window.__restored = true; }, {once: true}); }")
    step()
    # Polled with a timeout: an evaluate awaiting a promise has none, and hangs for
    # good when the document it runs in is frozen (kept in the back/forward cache).
    # A document loaded anew (no flag at all) has been rendered from the URL too.
    page.wait_for_function("() => window.__restored !== false", timeout=15000)


def back(page) -> None:
    _through_history(page, page.go_back)


def forward(page) -> None:
    _through_history(page, page.go_forward)


def test_back_forward_reload_keep_the_form_in_step_with_the_url(live_server, browser, owner,
                                                                 chans):
    card = method_id(PaymentMethod, code="credit_card")
    fps = method_id(PaymentMethod, code="fps")
    base = f"{live_server}/orders"
    searched = f"{base}?q={CHAN}"
    filtered = f"{base}?q={CHAN}&payment={card}"
    tabbed = f"{base}?status=processing&q={CHAN}&payment={card}"
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    browser_login(page, live_server, owner.email)
    every_chan = [*chans["fps"], chans["card"]]

    # given: a search, a filter, then a tab, each its own history entry
    page.fill("#q", "陳")
    expect_list(page, searched, q="陳", payments=set(), status="", orders=every_chan)
    page.click("summary:has-text('Filters')")
    page.check("label:has-text('Credit Card') input")
    expect_list(page, filtered, q="陳", payments={card}, status="", orders=[chans["card"]])
    page.click("#status-tabs a[data-status=processing]")
    expect_list(page, tabbed, q="陳", payments={card}, status="processing", orders=[chans["card"]])

    # when / then: Back, Back, Forward, reload
    back(page)
    expect_list(page, filtered, q="陳", payments={card}, status="", orders=[chans["card"]])
    back(page)
    expect_list(page, searched, q="陳", payments=set(), status="", orders=every_chan)
    forward(page)
    expect_list(page, filtered, q="陳", payments={card}, status="", orders=[chans["card"]])
    page.reload()
    expect_list(page, filtered, q="陳", payments={card}, status="", orders=[chans["card"]])

    # a filter changed after Back keeps the search
    back(page)
    expect_list(page, searched, q="陳", payments=set(), status="", orders=every_chan)
    filters = page.locator("details.filter-panel")
    if filters.get_attribute("open") is None:
        page.click("summary:has-text('Filters')")
    page.check("label:has-text('FPS') input")
    expect_list(page, f"{base}?q={CHAN}&payment={fps}", q="陳", payments={fps}, status="",
                orders=chans["fps"])

    # Back to the very first page of the list: an empty form
    back(page)
    back(page)
    expect_list(page, base, q="", payments=set(), status="",
                orders=[*every_chan, chans["other"]])


def test_screenshots_after_back(live_server, browser, owner, chans):
    SHOTS.mkdir(parents=True, exist_ok=True)
    card = method_id(PaymentMethod, code="credit_card")
    for width, height in ((1280, 900), (390, 844)):
        page = browser.new_page(viewport={"width": width, "height": height})
        browser_login(page, live_server, owner.email)
        page.fill("#q", "陳")
        page.wait_for_url(f"**/orders?q={CHAN}")
        page.click("summary:has-text('Filters')")
        page.check("label:has-text('Credit Card') input")
        page.wait_for_url(f"**/orders?q={CHAN}&payment={card}")
        page.click("#status-tabs a[data-status=processing]")
        page.wait_for_url("**status=processing**")
        back(page)
        page.wait_for_url(f"**/orders?q={CHAN}&payment={card}")
        expect(page.locator("#q")).to_have_value("陳")
        page.screenshot(path=str(SHOTS / f"orders-after-back-{width}.png"), full_page=True)
        page.close()


def test_leaving_the_search_box_adds_no_history_entry(live_server, browser, owner, chans):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    browser_login(page, live_server, owner.email)
    # given: a search the list has answered (the date fields are empty, so the form
    # sends from= and to=; the address must still be the canonical URL)
    page.fill("#q", "陳")
    page.wait_for_url(f"{live_server}/orders?q={CHAN}")
    expect(page.locator("tr.order-row")).to_have_count(3)
    entries = page.evaluate("history.length")
    requests = []
    page.on("request", lambda r: requests.append(r.url) if "/orders" in r.url else None)

    # when: the cursor leaves the search box, then Enter sends the same search again
    page.locator("#q").blur()
    page.wait_for_timeout(700)  # longer than the 300 ms typing delay
    assert requests == []  # leaving the box is not a new search
    page.locator("#q").press("Enter")
    page.wait_for_timeout(700)

    # then: still one entry for this search, and the address is unchanged
    assert page.evaluate("history.length") == entries
    assert page.url == f"{live_server}/orders?q={CHAN}"
    back(page)
    page.wait_for_url(f"{live_server}/orders")
    expect(page.locator("#q")).to_have_value("")


def test_htmx_history_restore_shows_the_list_as_it_is_now(live_server, browser, owner, chans):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    browser_login(page, live_server, owner.email)
    order = chans["fps"][0]
    row_status = page.locator(f"#row-{order.number} [data-status]")
    page.fill("#q", "陳")
    page.wait_for_url(f"**/orders?q={CHAN}")
    expect(row_status).to_have_attribute("data-status", "pending_payment")
    page.click("#status-tabs a[data-status=processing]")
    page.wait_for_url("**status=processing**")

    # when: the order changes while the merchant looks at another tab, then Back
    reject_order(order.id, "Customer cancelled", actor=SYSTEM)
    back(page)

    # then: the list shows the order as it is now, not a snapshot
    page.wait_for_url(f"**/orders?q={CHAN}")
    expect(row_status).to_have_attribute("data-status", "canceled")
    expect(page.locator("#q")).to_have_value("陳")


def test_a_failed_history_fetch_loads_the_address_plainly(live_server, browser, owner, chans):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    browser_login(page, live_server, owner.email)
    page.fill("#q", "陳")
    page.wait_for_url(f"{live_server}/orders?q={CHAN}")
    page.click("#status-tabs a[data-status=processing]")
    page.wait_for_url("**status=processing**")
    failed = []

    def fail_the_first_restore(route):
        if route.request.headers.get("hx-history-restore-request") == "true" and not failed:
            failed.append(route.request.url)
            route.fulfill(status=500, body="Internal Server Error")
        else:
            route.continue_()

    # when: htmx's fetch of the page for Back fails
    page.route("**/orders?**", fail_the_first_restore)
    page.go_back()

    # then: the rows and form of the tab just left do not stay under the new address
    expect_list(page, f"{live_server}/orders?q={CHAN}", q="陳", payments=set(), status="",
                orders=[*chans["fps"], chans["card"]])
    assert failed == [f"{live_server}/orders?q={CHAN}"]


@pytest.mark.parametrize("arrival", ["typed", "opened"])
def test_back_from_an_order_shows_the_list_as_it_is_now(live_server, chromium_path, owner, chans,
                                                       arrival):
    """"typed": the list was reached by typing (htmx) and by a tab link whose fragment
    URL is the address itself, so only the server can answer Back. "opened": the list
    URL was opened directly, and Chrome brings the page back from its back/forward
    cache, as it was when the merchant left."""
    from playwright.sync_api import sync_playwright

    order = chans["fps"][0]
    with sync_playwright() as p:
        # Playwright turns the back/forward cache off; real browsers keep pages in it.
        browser = p.chromium.launch(
            executable_path=chromium_path, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            ignore_default_args=["--disable-back-forward-cache"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        # note every page the back/forward cache brought back, to know the test used it
        page.add_init_script("addEventListener('pageshow', function (e) {"
                             " if (e.persisted) sessionStorage.setItem('bfcache', '1'); })")
        browser_login(page, live_server, owner.email)
        if arrival == "typed":
            page.fill("#q", "陳")
            page.wait_for_url(f"**/orders?q={CHAN}")
            page.click("#status-tabs a[data-status=pending_payment]")
            page.click("#status-tabs a:not([data-status])")
        else:
            page.goto(f"{live_server}/orders?q={CHAN}")
        page.wait_for_url(f"{live_server}/orders?q={CHAN}")
        row_status = page.locator(f"#row-{order.number} [data-status]")
        expect(row_status).to_have_attribute("data-status", "pending_payment")

        # when: open the order, it changes meanwhile, then Back
        page.click(f"text={order.number}")
        page.wait_for_url(f"**/orders/{order.number}")
        reject_order(order.id, "Customer cancelled", actor=SYSTEM)
        page.go_back(wait_until="commit")  # a page from the cache fires no "load"

        # then: the whole list page (not a fragment), the fresh status, and the form
        # still says what the address says
        page.wait_for_url(f"**/orders?q={CHAN}", wait_until="commit")
        expect(row_status).to_have_attribute("data-status", "canceled")
        expect(page.locator("header.topbar")).to_be_visible()
        expect(page.locator("#q")).to_have_value("陳")
        if arrival == "opened":
            assert page.evaluate("sessionStorage.getItem('bfcache')") == "1"
        browser.close()


def test_without_javascript_back_and_reload_show_what_the_url_says(live_server, browser, owner,
                                                                   chans):
    """The browser refills form fields it remembers on Back and on reload; the list's
    fields must follow the address instead."""
    card = method_id(PaymentMethod, code="credit_card")
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    browser_login(page, live_server, owner.email)
    page.fill("#q", "陳")
    page.click("summary:has-text('Filters')")
    page.check("label:has-text('Credit Card') input")
    page.click("button:has-text('Apply')")
    page.wait_for_url(f"{live_server}/orders?q={CHAN}&payment={card}")
    expect(page.locator("tr.order-row")).to_have_count(1)

    page.go_back()
    page.wait_for_url(f"{live_server}/orders")
    expect(page.locator("#q")).to_have_value("")
    assert not page.locator("label:has-text('Credit Card') input").is_checked()

    # typed and ticked but not sent, then reload: the address still has no search
    page.fill("#q", "Amy")
    page.click("summary:has-text('Filters')")
    page.check("label:has-text('Credit Card') input")
    page.reload()
    expect(page.locator("#q")).to_have_value("")
    assert not page.locator("label:has-text('Credit Card') input").is_checked()
    context.close()


def test_export_and_search_work_without_javascript(live_server, browser, owner, chans, tmp_path):
    context = browser.new_context(java_script_enabled=False, accept_downloads=True,
                                  viewport={"width": 1280, "height": 900})
    page = context.new_page()
    browser_login(page, live_server, owner.email)

    # the search button gives a tidy address: no empty fields
    page.fill("#q", "陳")
    page.click("button:has-text('Search')")
    page.wait_for_url(f"{live_server}/orders?q={CHAN}")
    expect(page.locator("tr.order-row")).to_have_count(3)

    # Export all: the matching orders, no script needed
    with page.expect_download() as info:
        page.click("#export-all")
    path = tmp_path / "all.xlsx"
    info.value.save_as(path)
    sheet = load_workbook(path)["Orders"]
    exported = sorted(r[0] for r in sheet.iter_rows(min_row=2, values_only=True))
    assert exported == sorted(o.number for o in [*chans["fps"], chans["card"]])

    # Export selected with nothing ticked: a clear message, back on the same list
    expect(page.locator("#export-selected")).to_be_enabled()
    page.click("#export-selected")
    page.wait_for_url(f"{live_server}/orders?q={CHAN}")
    expect(page.locator(".flash-error", has_text="Select at least one order")).to_be_visible()

    # Export selected with one ticked: exactly that one
    page.check(f"#row-{chans['card'].number} input[name=ids]")
    with page.expect_download() as info:
        page.click("#export-selected")
    path = tmp_path / "selected.xlsx"
    info.value.save_as(path)
    sheet = load_workbook(path)["Orders"]
    assert [r[0] for r in sheet.iter_rows(min_row=2, values_only=True)] == [chans["card"].number]
    context.close()
