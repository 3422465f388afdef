"""Live alerts in real Chromium: the desk open on /orders hears a new order (and a proof)
within 5 seconds without a reload, through the event stream woken by real Redis, or
by polling when EventSource is missing or keeps failing. Desktop notifications and the
sound are asked for from buttons only. Screenshots (ALERTS_SHOTS=/dir) in both
languages at 1280 and 390 px, with layout checks that run either way."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from conftest import browser_login
from playwright.sync_api import expect

from domain.db import db
from domain.models import DeskNotification, User

pytestmark = pytest.mark.browser
pytest_plugins = ["jobs_fixtures"]

SHOTS = os.environ.get("ALERTS_SHOTS")
LIVE = 5000  # ms: the "within 5 seconds"


def desk_page(browser, live_server, user, width=1280, init_script=None):
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    if init_script:
        page.add_init_script(script=init_script)
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    browser_login(page, live_server, user.email)
    page.evaluate("() => { window.__sameDocument = 'yes'; }")  # gone if the page reloads
    return page, urls


def count(page, element_id):
    return page.locator(f"#{element_id}")


def new_order(make_order, **details):
    """An order placed by the test thread while the live server has been writing: end
    this thread's read snapshot first (SQLite cannot upgrade a stale one to a write)."""
    db.session.rollback()
    return make_order(**details)


def place_through_the_shop(browser, live_server, variant, *, name="陳大文", proof_file=None):
    """A customer in their own browser context: cart, checkout, optionally the proof."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{live_server}/shop/")
    page.locator(f'[data-testid="variant-{variant.sku}"] button').click()
    page.get_by_role("link", name="Cart").click()
    page.get_by_label("Name").fill(name)
    page.get_by_label("Phone").fill("9123 4567")
    page.get_by_label("Delivery address (not needed for pickup)").fill("九龍旺角彌敦道 1 號")
    page.get_by_text("FPS", exact=True).click()
    page.get_by_role("button", name="Place order").click()
    page.get_by_text("Thank you! Your order is placed.").wait_for()
    number = re.search(r"SD\d+", page.locator("h1").inner_text()).group(0)
    return page, number


def upload_proof(page, path):
    page.locator("input[type=file]").set_input_files(str(path))
    page.get_by_role("button", name="Upload proof").click()
    page.get_by_text("We received your payment proof").wait_for()


def test_a_new_order_and_its_proof_reach_the_open_desk_live(
        app, live_server, redis_conn, browser, staff, make_variant, samples, tmp_path):
    app.config["NOTIFY_DISPATCH"] = True  # commits publish the wake-up on Redis
    variant = make_variant(name="手工曲奇禮盒", price_cents=16800, stock=5)
    desk, urls = desk_page(browser, live_server, staff)
    expect(desk.locator("#alerts-live")).to_have_attribute("data-live", "sse")
    expect(count(desk, "badge-orders")).to_be_hidden()
    expect(count(desk, "bell-count")).to_be_hidden()

    customer, number = place_through_the_shop(browser, live_server, variant,
                                              name="陳大文 <b>bold</b>")
    toast = desk.locator(f'[data-testid="toast-{number}"]')
    expect(toast).to_be_visible(timeout=LIVE)
    expect(toast).to_contain_text(f"New order {number}")
    expect(toast).to_contain_text("陳大文 <b>bold</b>")  # the name as typed, as text
    expect(toast).to_contain_text("HK$")
    assert toast.locator("b").count() == 0
    assert toast.locator("a").get_attribute("href") == f"/orders/{number}"
    expect(count(desk, "badge-orders")).to_have_attribute("data-count", "1")
    expect(count(desk, "badge-orders")).to_be_visible()
    expect(count(desk, "bell-count")).to_have_attribute("data-count", "1")

    proof = tmp_path / "receipt.png"
    proof.write_bytes(samples.image_bytes("PNG", (300, 400)))
    upload_proof(customer, proof)
    expect(desk.locator(".toast-proof_uploaded")).to_contain_text(f"Payment proof for {number}",
                                                                  timeout=LIVE)
    expect(count(desk, "badge-review")).to_have_attribute("data-count", "1")
    expect(count(desk, "bell-count")).to_have_attribute("data-count", "2")
    assert desk.evaluate("() => window.__sameDocument") == "yes"  # no reload happened
    assert desk.url == f"{live_server}/orders"
    assert any("/events?" in u for u in urls) and not any("/alerts/poll" in u for u in urls)

    # The bell lists both; opening one reads the order's entries and opens the order.
    desk.locator("#bell-button").click()
    panel = desk.locator("#bell-panel")
    expect(panel).to_be_visible()
    expect(panel.locator(".bell-item.unread")).to_have_count(2)
    expect(panel.locator(".bell-item").first).to_contain_text("Payment proof uploaded")
    expect(panel.locator(".bell-item").nth(1)).to_contain_text("New order")
    expect(panel.locator(".bell-item").nth(1)).to_contain_text("陳大文 <b>bold</b>")
    desk.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    desk.locator("#bell-button").click()
    panel.locator(".bell-entry").first.click()
    desk.wait_for_url(f"{live_server}/orders/{number}")
    expect(count(desk, "bell-count")).to_be_hidden()
    expect(count(desk, "badge-orders")).to_be_hidden()
    expect(count(desk, "badge-review")).to_have_attribute("data-count", "1")  # still to confirm


def test_mark_all_as_read_and_dismiss(app, live_server, redis_conn, browser, staff, make_order):
    app.config["NOTIFY_DISPATCH"] = True
    make_order(name="Before the page")
    desk, _ = desk_page(browser, live_server, staff)
    expect(desk.locator("#alerts-live")).to_have_attribute("data-live", "sse")
    expect(count(desk, "bell-count")).to_have_attribute("data-count", "1")
    order = new_order(make_order, name="Amy Wong")
    toast = desk.locator(f'[data-testid="toast-{order.number}"]')
    expect(toast).to_be_visible(timeout=LIVE)
    assert desk.locator(".toast").count() == 1  # the order from before the page is no toast
    toast.locator("[data-toast-close]").click()
    expect(toast).to_have_count(0)
    desk.locator("#bell-button").click()
    desk.get_by_role("button", name="Mark all as read").click()
    expect(count(desk, "bell-count")).to_be_hidden()
    expect(desk.locator("#bell-panel .bell-item.unread")).to_have_count(0)
    db.session.rollback()
    assert db.session.query(DeskNotification).filter_by(user_id=staff.id, read_at=None).count() == 0


def test_the_toast_opens_the_order_which_reads_its_entries(app, live_server, redis_conn, browser,
                                                          staff, make_order):
    app.config["NOTIFY_DISPATCH"] = True
    desk, _ = desk_page(browser, live_server, staff)
    expect(desk.locator("#alerts-live")).to_have_attribute("data-live", "sse")
    order = new_order(make_order, name="Amy Wong")
    toast = desk.locator(f'[data-testid="toast-{order.number}"]')
    expect(toast).to_be_visible(timeout=LIVE)
    toast.locator("a").click()
    desk.wait_for_url(f"{live_server}/orders/{order.number}")
    # The order page (blueprints/orders) reads the order's entries before it is drawn.
    expect(count(desk, "bell-count")).to_be_hidden()
    expect(count(desk, "badge-orders")).to_be_hidden()


def test_polling_when_the_browser_has_no_eventsource(app, live_server, browser, staff, make_order):
    # No Redis here at all (NOTIFY_DISPATCH stays off): the poll reads the database.
    desk, urls = desk_page(browser, live_server, staff, init_script="delete window.EventSource;")
    expect(desk.locator("#alerts-live")).to_have_attribute("data-live", "poll")
    order = new_order(make_order, name="Polly Poll")
    expect(desk.locator(f'[data-testid="toast-{order.number}"]')).to_be_visible(timeout=LIVE)
    expect(count(desk, "badge-orders")).to_have_attribute("data-count", "1")
    expect(count(desk, "bell-count")).to_have_attribute("data-count", "1")
    assert desk.evaluate("() => window.__sameDocument") == "yes"
    assert any("/alerts/poll" in u for u in urls) and not any("/events" in u for u in urls)


def test_polling_after_the_stream_keeps_failing(app, live_server, browser, staff, make_order):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    # Something between the browser and the app refuses the stream (a proxy, say).
    context.route("**/events?*", lambda route: route.fulfill(status=503, body="no"))
    desk = context.new_page()
    browser_login(desk, live_server, staff.email)
    expect(desk.locator("#alerts-live")).to_have_attribute("data-live", "poll", timeout=15000)
    order = new_order(make_order, name="After errors")
    expect(desk.locator(f'[data-testid="toast-{order.number}"]')).to_be_visible(timeout=LIVE)


FAKE_BROWSER_APIS = """
window.__notes = []; window.__asked = 0; window.__played = [];
class FakeNotification {
  constructor(title, options) { window.__notes.push({ title: title, body: options.body, tag: options.tag }); }
  close() {}
}
// The browser remembers a permission across reloads; so does this stand-in.
FakeNotification.permission = sessionStorage.getItem("fakePermission") || "default";
FakeNotification.requestPermission = function () {
  window.__asked += 1; FakeNotification.permission = "granted";
  sessionStorage.setItem("fakePermission", "granted");
  return Promise.resolve("granted");
};
window.Notification = FakeNotification;
document.hasFocus = function () { return false; };  // the staff member is in another window
HTMLMediaElement.prototype.play = function () { window.__played.push(this.src); return Promise.resolve(); };
"""


def test_desktop_notification_and_sound_only_when_asked(app, live_server, redis_conn, browser,
                                                        staff, make_order):
    app.config["NOTIFY_DISPATCH"] = True
    desk, _ = desk_page(browser, live_server, staff, init_script=FAKE_BROWSER_APIS)
    expect(desk.locator("#alerts-live")).to_have_attribute("data-live", "sse")
    first = new_order(make_order, name="Quiet")
    expect(desk.locator(f'[data-testid="toast-{first.number}"]')).to_be_visible(timeout=LIVE)
    # Nothing asked on page load, no notification and no sound until turned on.
    assert desk.evaluate("() => [window.__asked, window.__notes.length, window.__played.length]") == [0, 0, 0]
    assert desk.evaluate("() => localStorage.getItem('shopdesk.alertSound')") is None

    desk.locator("#bell-button").click()
    panel = desk.locator("#bell-panel")
    sound = panel.get_by_label("Play a sound for new orders and proofs")
    expect(sound).not_to_be_checked()
    panel.get_by_role("button", name="Turn on desktop notifications").click()
    expect(panel.get_by_text("Desktop notifications are on in this browser.")).to_be_visible()
    sound.check()
    assert desk.evaluate("() => window.__asked") == 1
    assert desk.evaluate("() => localStorage.getItem('shopdesk.alertSound')") == "on"
    assert desk.evaluate("() => window.__played.length") == 1  # a sample when turned on
    desk.keyboard.press("Escape")

    second = new_order(make_order, name="Amy Wong")
    expect(desk.locator(f'[data-testid="toast-{second.number}"]')).to_be_visible(timeout=LIVE)
    desk.wait_for_function("() => window.__notes.length === 1 && window.__played.length === 2")
    note = desk.evaluate("() => window.__notes[0]")
    assert note["title"] == f"New order {second.number}" and note["body"].startswith("Amy Wong · HK$")
    assert desk.evaluate("() => window.__played[1]").split("?")[0].endswith("/static/sounds/alert.wav")

    # The choice stays with this browser; "Turn off" is honoured without asking again.
    desk.reload()
    desk.locator("#bell-button").click()
    expect(panel.get_by_label("Play a sound for new orders and proofs")).to_be_checked()
    panel.get_by_role("button", name="Turn off").click()
    expect(panel.get_by_role("button", name="Turn on desktop notifications")).to_be_visible()
    assert desk.evaluate("() => window.__asked") == 0  # a fresh page: still never asked on load


def boxes_overlap(a, b) -> bool:
    return not (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])


@pytest.mark.parametrize("locale", ["en", "zh_Hant_HK"])
def test_toast_and_bell_layout(app, live_server, redis_conn, browser, staff, make_order, locale):
    user = db.session.get(User, staff.id)
    user.locale = locale
    db.session.commit()
    make_order(name="黃小姐")
    for width in (1280, 390):
        desk, _ = desk_page(browser, live_server, staff, width=width)
        expect(desk.locator("#alerts-live")).to_have_attribute("data-live", re.compile("sse|poll"))
        order = new_order(make_order, name="陳大文 Chan Tai Man")
        toast = desk.locator(f'[data-testid="toast-{order.number}"]')
        expect(toast).to_be_visible(timeout=LIVE)
        if locale != "en":
            expect(toast).to_contain_text(f"新訂單 {order.number}")
        view = desk.viewport_size
        box = toast.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= view["width"]
        assert box["y"] + box["height"] <= view["height"]
        # The top bar's pieces never sit on each other, on a phone either.
        parts = [desk.locator(s).bounding_box() for s in (".brand", ".bell", ".signout", ".mainnav")]
        for i, a in enumerate(parts):
            for b in parts[i + 1:]:
                assert not boxes_overlap(a, b), (width, locale, a, b)
        nav = desk.locator(".mainnav").bounding_box()
        assert nav["x"] + nav["width"] <= view["width"] + 1
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            desk.screenshot(path=f"{SHOTS}/toast-{locale}-{width}.png")
        toast.locator("[data-toast-close]").click()
        desk.locator("#bell-button").click()
        panel = desk.locator("#bell-panel")
        expect(panel).to_be_visible()
        box = panel.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= view["width"] + 1
        if SHOTS:
            desk.screenshot(path=f"{SHOTS}/bell-{locale}-{width}.png")
        desk.context.close()
