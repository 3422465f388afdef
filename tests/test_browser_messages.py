"""Messages on the order page in real headless Chromium: Resend email updates the
history in place, and the rendered copy shows in its sandboxed frame."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import browser_login
from playwright.sync_api import expect

from domain.db import db
from domain.models import Order, OutboxMessage
from domain.notify.delivery import deliver_due
from domain.notify.transport import MailSettings

pytestmark = pytest.mark.browser


def test_resend_updates_the_history_in_place_and_the_copy_opens(live_server, browser, app,
                                                                  owner, make_order):
    email = owner.email
    order = make_order(name="陳大文", email="tai.man@example.hk")
    number, order_id = order.number, order.id
    deliver_due(MailSettings(), Path(app.config["MAIL_FOLDER"]))
    db.session.rollback()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    browser_login(page, live_server, email)
    page.goto(f"{live_server}/orders/{number}")
    button = page.locator("#resend-email")
    expect(button).to_contain_text("(5 of 5 left)")
    page.evaluate("() => { window.__sameDocument = true; }")

    # when: press Resend email
    button.click()

    # then the history gains the event and the count drops, without a reload
    expect(page.locator(".timeline .ev-email_resent")).to_contain_text("Email resent (1 of 5)")
    expect(page.locator("#resend-email")).to_contain_text("(4 of 5 left)")
    expect(page.locator("#order-body .flash-success")).to_contain_text(
        "Email resent to tai.man@example.hk (1 of 5).")
    assert page.evaluate("() => window.__sameDocument === true")
    db.session.expire_all()
    assert db.session.get(Order, order_id).email_resends == 1

    # when: open the rendered copy of the order's first email
    first = db.session.query(OutboxMessage).filter_by(order_id=order_id).order_by(OutboxMessage.id).first()
    page.locator(f"#message-{first.id} a", has_text="View the copy").click()
    page.wait_for_url(f"{live_server}/orders/{number}/messages/{first.id}")

    # then the HTML part shows inside its sandboxed frame, and the text part below it
    frame = page.frame_locator("iframe.mail-frame")
    expect(frame.locator("body")).to_contain_text(number)
    expect(page.locator("pre.mail-text")).to_contain_text(number)
    assert page.locator("iframe.mail-frame").get_attribute("sandbox") == ""
    # nothing refused by a Content-Security-Policy, in the desk page or in the frame
    assert not [p for p in problems if "Content Security Policy" in p], problems
