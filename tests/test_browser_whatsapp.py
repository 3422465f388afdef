"""Settings → WhatsApp in real headless Chromium: the owner turns the sandbox on,
activates, sends a test message to the loopback fake and sees "Connected", with htmx
swapping the section in place and nothing refused by the Content-Security-Policy."""

from __future__ import annotations

import pytest
from conftest import browser_login
from playwright.sync_api import expect

from domain.db import db
from domain.models import WhatsAppConfig

pytestmark = pytest.mark.browser
pytest_plugins = ["whatsapp_fixtures"]


def test_owner_activates_the_sandbox_and_sends_a_test_message(live_server, browser, app, owner,
                                                              whatsapp_api):
    app.config["PUBLIC_URL"] = whatsapp_api.base_url  # the sandbox's API is the loopback fake
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    browser_login(page, live_server, owner.email)
    page.goto(f"{live_server}/settings/whatsapp")
    expect(page.locator("#wa-status")).to_contain_text("Off")
    page.evaluate("() => { window.__sameDocument = true; }")

    page.click("#wa-use-sandbox")
    expect(page.locator("[data-testid=wa-sandbox]")).to_have_text("SANDBOX")
    page.click("#wa-activate")
    expect(page.locator("#wa-status [data-active]")).to_have_text("On")

    page.fill("#wa-test-phone", "9123 4567")
    page.click("#wa-send-test")
    result = page.locator("[data-testid=wa-test-result]")
    expect(result).to_contain_text("Test message sent to +85291234567")
    expect(page.locator("#wa-status")).to_contain_text("Connected as +852 5555 0000")
    assert whatsapp_api.sent and whatsapp_api.sent[-1] in result.inner_text()
    assert page.evaluate("() => window.__sameDocument === true")  # swapped, not reloaded
    db.session.rollback()  # a fresh read: the server's threads wrote it
    config = db.session.get(WhatsAppConfig, 1)
    assert config.active and config.sandbox and config.status == "connected"
    assert not [p for p in problems if "Content Security Policy" in p], problems
