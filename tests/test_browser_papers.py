"""Bulk papers and carrier shipments in real Chromium (issue 11): tick orders, print
invoices, the progress reaches done and the download is a PDF; the order page's
shipping card before and after a shipment and after a carrier failure. Screenshots at
1280 and 390 px, in English and Chinese, into SHOPDESK_SCREENSHOTS (default
/tmp/shots/carrier)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import browser_login
from playwright.sync_api import expect

from domain.db import db
from domain.models import Order

pytestmark = pytest.mark.browser
pytest_plugins = ["jobs_fixtures"]

SHOTS = Path(os.environ.get("SHOPDESK_SCREENSHOTS", "/tmp/shots/carrier"))
TEXT = {"en": {"create": "Create shipment", "locked": "Locked", "failed": "refused the address",
               "invoices": "Invoices"},
        "zh_Hant_HK": {"create": "建立寄件", "locked": "已鎖定", "failed": "拒絕了此地址",
                       "invoices": "發票"}}


def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def work_until(page, run_worker, selector, timeout=25):
    """Run queued jobs on a burst worker while the page polls, until ``selector`` shows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run_worker()
        if page.locator(selector).count():
            return
        page.wait_for_timeout(300)
    expect(page.locator(selector).first).to_be_visible()


def set_locale(user, locale):
    user.locale = locale
    db.session.commit()


def test_tick_orders_print_invoices_and_download_the_pdf(live_server, browser, staff,
                                                         make_order, run_worker):
    set_locale(staff, "en")
    a, b = make_order(payment="credit_card"), make_order(payment="credit_card", name="李小龍")
    make_order(payment="credit_card")
    page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    browser_login(page, live_server, staff.email)
    page.check(f"input[name=ids][value='{a.id}']")
    page.check(f"input[name=ids][value='{b.id}']")
    page.click("[data-testid=print-menu]")
    page.click("[data-testid=print-invoice]")
    expect(page.locator("#papers-job .job")).to_be_visible()
    work_until(page, run_worker, "#papers-job .job-done")
    expect(page.locator("#papers-job")).to_contain_text("Done: 2 orders.")
    with page.expect_download() as info:
        page.click("#papers-job a[download]")
    data = Path(info.value.path()).read_bytes()
    assert data.startswith(b"%PDF")
    from io import BytesIO

    from pypdf import PdfReader

    text = "\n".join(p.extract_text() for p in PdfReader(BytesIO(data)).pages)
    assert a.number in text and b.number in text
    assert not errors


@pytest.mark.parametrize("locale", ["en", "zh_Hant_HK"])
def test_shipping_card_and_bulk_progress_screens(live_server, browser, staff, make_order,
                                                 run_worker, locale):
    set_locale(staff, locale)
    words = TEXT[locale]
    order = make_order(payment="credit_card", shipping="logistics", name="陳大文")
    failing = make_order(payment="credit_card", shipping="logistics",
                         address="九龍 FAIL-CARRIER 道 3 號")
    delivery = make_order(payment="credit_card")
    for width in (1280, 390):
        page = browser.new_page(viewport={"width": width, "height": 900})
        errors = []
        page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
        browser_login(page, live_server, staff.email)
        tag = f"{locale}-{width}"
        if width == 1280:
            # before: the card offers "Create shipment"
            page.goto(f"{live_server}/orders/{order.number}")
            card = page.locator("[data-testid=shipment-card]")
            expect(card).to_contain_text(words["create"])
            card.scroll_into_view_if_needed()
            shot(page, f"card-before-{tag}")
            page.fill("#shipment-" + order.number + " input[name=weight]", "1.4")
            page.click("[data-testid=create-shipment]")
            work_until(page, run_worker, "[data-testid=carrier-code]")
            db.session.rollback()  # the worker and the server wrote in their own sessions
            code = db.session.get(Order, order.id).tracking_code
            assert code.startswith("TC")
            expect(page.locator("[data-testid=carrier-code]")).to_have_text(code)
            expect(page.locator(f"#tracking-page-{order.number}")).to_contain_text(code)
            expect(card).to_contain_text(words["locked"])
            shot(page, f"card-after-{tag}")
            # failure: the carrier refuses, the card says so, the order is unchanged
            page.goto(f"{live_server}/orders/{failing.number}")
            page.click("[data-testid=create-shipment]")
            work_until(page, run_worker, "[data-testid=shipment-failure]")
            expect(page.locator("[data-testid=shipment-failure]")).to_contain_text(words["failed"])
            shot(page, f"card-failure-{tag}")
        else:
            for number, name in ((order.number, "after"), (failing.number, "failure")):
                page.goto(f"{live_server}/orders/{number}")
                page.locator("[data-testid=shipment-card]").scroll_into_view_if_needed()
                shot(page, f"card-{name}-{tag}")
        # the bulk bar: labels for three orders, one skipped as not logistics
        page.goto(f"{live_server}/orders")
        for o in (order, failing, delivery):
            page.check(f"input[name=ids][value='{o.id}']")
        page.click("[data-testid=print-menu]")
        shot(page, f"bulk-menu-{tag}")
        page.click("[data-testid=print-label]")
        work_until(page, run_worker, "#papers-job .job-done")
        expect(page.locator("[data-testid=job-skipped]")).to_be_visible()
        shot(page, f"bulk-progress-{tag}")
        assert not errors
        page.close()
