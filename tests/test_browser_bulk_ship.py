"""Bulk ship and tracking import in real Chromium (issue 12): tick two orders, Confirm
shipment, the progress reaches done and the list shows them shipped; the import journey
(upload, preview, apply, progress). Screenshots at 1280 and 390 px, in English and
Chinese, into SHOPDESK_SCREENSHOTS (default /tmp/shots/bulk_ship)."""

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

SHOTS = Path(os.environ.get("SHOPDESK_SCREENSHOTS", "/tmp/shots/bulk_ship"))
TEXT = {"en": {"done": "Done: 2 orders.", "preview": "Preview of codes.csv",
               "completed": "Completed", "skipped": "1 order skipped"},
        "zh_Hant_HK": {"done": "完成", "preview": "codes.csv", "completed": "已完成",
                       "skipped": "1"}}


def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def work_until_done(page, run_worker, selector=".job-done", timeout=20):
    """Run the queued job on a burst worker while the page polls, until it shows done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run_worker()
        if page.locator(selector).count():
            return
        page.wait_for_timeout(300)
    expect(page.locator(selector)).to_be_visible()


def set_locale(user, locale):
    user.locale = locale
    db.session.commit()


def test_tick_two_orders_and_confirm_shipment(live_server, browser, staff, make_order,
                                              run_worker):
    set_locale(staff, "en")
    a, b = make_order(payment="credit_card"), make_order(payment="credit_card")
    untouched = make_order(payment="credit_card")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: dialog.accept())  # "Confirm shipment of the selected…"
    browser_login(page, live_server, staff.email)
    page.check(f"input[name=ids][value='{a.id}']")
    page.check(f"input[name=ids][value='{b.id}']")
    page.click("#bulk-ship")
    page.wait_for_url("**/jobs/*")
    work_until_done(page, run_worker)
    expect(page.locator(".job-done")).to_contain_text("Done: 2 orders.")
    shot(page, "bulk_ship_done_en_1280")
    page.click("text=← Orders")
    for order in (a, b):
        expect(page.locator(f"#row-{order.number}")).to_contain_text("Completed")
    expect(page.locator(f"#row-{untouched.number}")).not_to_contain_text("Completed")
    db.session.rollback()
    assert db.session.get(Order, untouched.id).status == "processing"
    assert not errors


@pytest.mark.parametrize("locale", ["en", "zh_Hant_HK"])
@pytest.mark.parametrize("width", [1280, 390])
def test_import_journey(live_server, browser, staff, make_order, run_worker, tmp_path,
                        locale, width):
    set_locale(staff, locale)
    a, b = make_order(payment="credit_card"), make_order(payment="credit_card")
    pending = make_order(payment="fps")
    csv = tmp_path / "codes.csv"
    csv.write_text(f"訂單編號,追蹤編號,立即發貨\n{a.number},SF1000001,是\n{b.number},SF1000002,否\n"
                   f"{pending.number},SF1000003,是\nSD99999,SF1000004,否\n", encoding="utf-8-sig")
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    browser_login(page, live_server, staff.email)
    page.click("#import-tracking")
    page.wait_for_url("**/orders/bulk/tracking")
    shot(page, f"import_{locale}_{width}")
    page.set_input_files("input[name=file]", str(csv))
    page.click("#importer form[enctype] button[type=submit]")
    preview = page.locator("[data-testid=tracking-preview]")
    expect(preview).to_be_visible()
    expect(page.locator("tr.row-error")).to_have_count(2)
    expect(page).to_have_url(f"{live_server}/orders/bulk/tracking")  # htmx: no page change
    shot(page, f"preview_{locale}_{width}")
    page.click("[data-testid=tracking-preview] button[type=submit]")
    expect(page.locator("#importer .job")).to_be_visible()
    work_until_done(page, run_worker)
    expect(page.locator("[data-testid=job-skipped] li")).to_have_count(2)
    shot(page, f"progress_done_{locale}_{width}")
    db.session.rollback()
    assert (db.session.get(Order, a.id).status, db.session.get(Order, b.id).tracking_code,
            db.session.get(Order, pending.id).tracking_code) == ("completed", "SF1000002", "")
    assert not errors


@pytest.mark.parametrize("locale", ["en", "zh_Hant_HK"])
@pytest.mark.parametrize("width", [1280, 390])
def test_orders_list_bulk_buttons_look(live_server, browser, staff, make_order, locale, width):
    set_locale(staff, locale)
    a = make_order(payment="credit_card")
    make_order(payment="credit_card")
    page = browser.new_page(viewport={"width": width, "height": 900})
    browser_login(page, live_server, staff.email)
    page.check(f"input[name=ids][value='{a.id}']")
    expect(page.locator("#bulk-ship")).to_be_visible()
    expect(page.locator("#import-tracking")).to_be_visible()
    shot(page, f"orders_list_{locale}_{width}")
