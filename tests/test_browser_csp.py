"""In real Chromium, under the app's Content-Security-Policy: the desk and the shop work
and not one policy violation is reported (inline script, eval, inline handlers, ...)."""

from __future__ import annotations

import pytest
from conftest import browser_login
from playwright.sync_api import expect

from blueprints.security import CONTENT_SECURITY_POLICY

pytestmark = pytest.mark.browser
pytest_plugins = ["jobs_fixtures"]

# Report every violation on the console, where the test collects it; init scripts
# are injected by the browser itself, so the policy does not stop this one.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", function (e) {
  console.error("CSP-VIOLATION " + e.effectiveDirective + " " + (e.blockedURI || "inline")
                + " at " + e.sourceFile + ":" + e.lineNumber + " " + (e.sample || ""));
});
"""


class Watch:
    """A page whose every CSP report, console error and page error is kept."""

    def __init__(self, browser, width=1280):
        self.page = browser.new_page(viewport={"width": width, "height": 900})
        self.violations: list[str] = []
        self.errors: list[str] = []
        self.page.add_init_script(REPORT_VIOLATIONS)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))

    def _console(self, message):
        text = message.text
        if "CSP-VIOLATION" in text or "Content Security Policy" in text:
            self.violations.append(text)
        elif message.type == "error":
            self.errors.append(text)

    def goto(self, url):
        response = self.page.goto(url)
        assert response.headers.get("content-security-policy") == CONTENT_SECURITY_POLICY, url
        return response


def test_the_watch_sees_a_violation(live_server, browser, owner):
    # given the reporting above: an inline script is refused and the refusal is seen
    watch = Watch(browser)
    watch.goto(f"{live_server}/login")
    watch.page.evaluate("""() => { const s = document.createElement('script');
                                    s.textContent = 'window.ran = 1'; document.body.append(s); }""")
    watch.page.wait_for_timeout(200)
    assert watch.page.evaluate("() => window.ran") is None
    assert any("script-src" in v for v in watch.violations), watch.violations


def test_desk_pages_run_without_a_policy_violation(live_server, browser, owner, make_order):
    order = make_order(name="陳大文", payment="credit_card")
    make_order(name="Amy Wong")
    watch = Watch(browser)
    browser_login(watch.page, live_server, owner.email)

    # the list: htmx search, filters, bulk selection, the inline tracking editor and Escape
    watch.goto(f"{live_server}/orders")
    page = watch.page
    page.fill("#q", "陳大文")
    expect(page.locator(".results")).to_contain_text(order.number)
    expect(page.locator(".results")).not_to_contain_text("Amy Wong")
    page.fill("#q", "")
    expect(page.locator(".results")).to_contain_text("Amy Wong")
    cell = page.locator(f"#tracking-list-{order.number}")
    cell.locator("button").click()
    box = cell.locator("input[name=tracking_code]")
    expect(box).to_be_focused()
    box.fill("")
    box.press_sequentially("SF99")  # real keystrokes: only Escape may cancel the edit
    expect(box).to_have_value("SF99")
    box.press("Escape")  # was an eval-based htmx trigger filter
    expect(page.locator(f"#tracking-list-{order.number} input[name=tracking_code]")).to_have_count(0)

    # the order page and its reject dialog (opened by app.js)
    watch.goto(f"{live_server}/orders/{order.number}")
    page.click("text=Reject order…")
    expect(page.locator("#reject-dialog")).to_be_visible()
    page.keyboard.press("Escape")

    for url in ("/review/", "/drafts/", "/settings/store", "/no-such-page"):
        watch.goto(f"{live_server}{url}")
        page.wait_for_load_state("networkidle")

    assert watch.violations == []
    assert [e for e in watch.errors if "404" not in e] == []


def test_shop_checkout_runs_without_a_policy_violation(live_server, browser, make_variant,
                                                        redis_conn):
    variant = make_variant(name="手工曲奇禮盒", variant="原味", price_cents=16800, stock=5)
    watch = Watch(browser, width=390)
    page = watch.page
    watch.goto(f"{live_server}/shop/")
    page.locator(f'[data-testid="variant-{variant.sku}"] button').click()
    page.get_by_text("to your cart.").wait_for()
    watch.goto(f"{live_server}/shop/cart")
    page.get_by_label("Name").fill("陳大文")
    page.get_by_label("Phone").fill("9123 4567")
    page.get_by_label("Delivery address (not needed for pickup)").fill("九龍旺角彌敦道 1 號")
    page.get_by_text("FPS", exact=True).click()
    page.get_by_role("button", name="Place order").click()
    page.get_by_text("Thank you! Your order is placed.").wait_for()
    assert page.url.startswith(f"{live_server}/shop/o/")
    watch.goto(page.url)  # the order page itself, with its headers
    watch.goto(f"{live_server}/shop/o/not-a-link")
    page.wait_for_load_state("networkidle")

    assert watch.violations == []
    assert [e for e in watch.errors if "404" not in e] == []
