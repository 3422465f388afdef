"""Settings → Payment methods: typed details forms, readiness, the enable toggle (issue 13)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from domain import payment_details as pd
from domain.db import db
from domain.models import PaymentMethod


def method(code: str) -> PaymentMethod:
    db.session.rollback()  # a fresh snapshot: the request (or the live server) wrote meanwhile
    return db.session.scalar(select(PaymentMethod).where(PaymentMethod.code == code))


@pytest.fixture
def fresh_fps(app):
    """FPS as a new store has it: off, no details."""
    m = method("fps")
    for name in pd.ALL_FIELDS:
        setattr(m, name, "")
    m.enabled = False
    db.session.commit()
    return m.id


def status_line(html: str, method_id: int) -> str:
    found = re.search(rf'id="pm-status-{method_id}"[^>]*>([^<]*)<', html)
    assert found, "no status line"
    return found.group(1).strip()


def test_page_shows_each_built_in_form_and_its_status(owner_client, fresh_fps):
    html = owner_client.get("/settings/payments").get_data(as_text=True)
    assert status_line(html, fresh_fps) == "Missing: FPS ID and Account name"
    bank = method("bank_transfer")
    assert status_line(html, bank.id) == "Ready"
    assert 'name="fps_id"' in html and 'name="account_number"' in html
    assert 'name="payme_link"' in html and 'value="004-123-456789-001"' in html
    assert f'action="/settings/payments/{fresh_fps}/details"' in html


def test_enable_is_refused_with_the_reason_until_filled(owner_client, fresh_fps):
    response = owner_client.post(f"/settings/payments/{fresh_fps}/toggle", {"enabled": "y"})
    assert response.status_code == 302
    page = owner_client.get("/settings/payments").get_data(as_text=True)
    assert "Fill in the FPS ID and account name before turning FPS on." in page
    assert method("fps").enabled is False
    # when the details are saved
    saved = owner_client.post(f"/settings/payments/{fresh_fps}/details",
                              {"fps_id": "9123 4567", "payee_name": "Cookie Lab Ltd"})
    assert saved.status_code == 302
    assert method("fps").fps_id == "+852 9123 4567"
    # then it can be turned on
    owner_client.post(f"/settings/payments/{fresh_fps}/toggle", {"enabled": "y"})
    assert method("fps").enabled is True
    page = owner_client.get("/settings/payments").get_data(as_text=True)
    assert status_line(page, fresh_fps) == "Ready"


def test_a_refusal_keeps_what_was_typed_with_the_error_next_to_the_field(owner_client, fresh_fps):
    response = owner_client.post(f"/settings/payments/{fresh_fps}/details", {
        "fps_id": "12345", "payee_name": "<script>alert(1)</script>", "instructions": "Hi"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    field = re.search(r'<label class="field">\s*<span class="field-label">FPS ID, phone number '
                      r'or email</span>(.*?)</label>', html, re.S).group(1)
    assert 'value="12345"' in field
    assert "Enter a 7–9 digit FPS ID, a Hong Kong mobile number or an email address." in field
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert "<html" in html  # a whole page without htmx
    assert method("fps").fps_id == "" and method("fps").instructions == ""


def test_htmx_gets_the_methods_block_422_on_refusal_200_on_success(owner_client, fresh_fps):
    bad = owner_client.post(f"/settings/payments/{fresh_fps}/details",
                            {"fps_id": "1234567", "payee_name": "Cookie\x00Lab"}, htmx=True)
    assert bad.status_code == 422
    html = bad.get_data(as_text=True)
    assert "<html" not in html and 'id="payment-methods"' in html
    assert "Account name contains invalid characters." in html
    assert 'value="1234567"' in html
    good = owner_client.post(f"/settings/payments/{fresh_fps}/details",
                             {"fps_id": "1234567", "payee_name": "Cookie Lab"}, htmx=True)
    assert good.status_code == 200
    html = good.get_data(as_text=True)
    assert "<html" not in html and "FPS details saved." in html
    assert status_line(html, fresh_fps) == "Ready — you can turn it on"


@pytest.mark.parametrize("link", ["javascript:alert(1)", "http://payme.hsbc/cookielab",
                                  "https://payme.evil.example/cookielab"])
def test_payme_link_refused_through_the_page(owner_client, link):
    payme = method("payme")
    response = owner_client.post(f"/settings/payments/{payme.id}/details", {"payme_link": link})
    assert response.status_code == 422
    assert method("payme").payme_link == "https://payme.hsbc/cookielab"


def test_details_need_csrf(owner_client, fresh_fps):
    response = owner_client.post(f"/settings/payments/{fresh_fps}/details",
                                 {"fps_id": "1234567", "payee_name": "X"}, csrf=False)
    assert response.status_code == 400
    response = owner_client.post(f"/settings/payments/{fresh_fps}/details",
                                 {"fps_id": "1234567", "payee_name": "X"}, htmx=True, csrf=False)
    assert response.status_code == 400
    assert method("fps").fps_id == ""


def test_staff_and_strangers_cannot_see_or_change_payment_details(staff_client, client,
                                                                  fresh_fps):
    assert staff_client.get("/settings/payments").status_code == 403
    assert staff_client.post(f"/settings/payments/{fresh_fps}/details",
                             {"fps_id": "1234567", "payee_name": "X"}).status_code == 403
    anonymous = client.post(f"/settings/payments/{fresh_fps}/details",
                            {"fps_id": "1234567", "payee_name": "X"}, csrf=False)
    assert anonymous.status_code in (302, 400, 401)
    assert method("fps").fps_id == ""


def test_details_of_an_online_or_unknown_method_are_not_found(owner_client):
    assert owner_client.post(f"/settings/payments/{method('credit_card').id}/details",
                             {"fps_id": "1"}).status_code == 404
    assert owner_client.post("/settings/payments/9999/details", {}).status_code == 404


def test_page_reads_in_chinese(app, owner, fresh_fps):
    from domain.store import get_settings
    from tests.conftest import Client

    settings = get_settings()
    settings.language = "zh_Hant_HK"  # an owner without a language of their own reads this
    db.session.commit()
    html = Client(app).login(owner).get("/settings/payments").get_data(as_text=True)
    assert "尚欠：轉數快識別碼 (FPS ID)及帳戶名稱" == status_line(html, fresh_fps)
    assert "Missing" not in html and "Extra note" not in html
    refused = Client(app).login(owner).post(f"/settings/payments/{fresh_fps}/details",
                                            {"fps_id": "12345", "payee_name": "X"})
    assert refused.status_code == 422
    assert "Enter a 7–9 digit" not in refused.get_data(as_text=True)


# ------------------------------------------------------------------ in a real browser

SHOTS = __import__("pathlib").Path("/tmp/shots/h3")


def test_browser_settings_payments_in_both_languages(browser, live_server, owner, fresh_fps):
    """Fill FPS in on a phone and a desktop (htmx swap, errors in place), and look at it."""
    from conftest import browser_login

    from domain.db import write_transaction
    from domain.models import User

    SHOTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    for locale in ("en", "zh_Hant_HK"):
        with write_transaction() as session:
            session.get(User, owner.id).locale = locale
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        # (the refusal's 422 is logged by the browser too: that one is expected)
        page.on("console", lambda m: problems.append(m.text) if m.type == "error"
                and "422" not in m.text else None)
        browser_login(page, live_server, owner.email)
        for width, height in ((1280, 900), (390, 844)):
            page.set_viewport_size({"width": width, "height": height})
            page.goto(f"{live_server}/settings/payments")
            form = page.locator(f"form[action$='/payments/{fresh_fps}/details']")
            form.locator("input[name=fps_id]").fill("12345")
            form.locator("button[type=submit]").click()
            page.wait_for_selector(f"#method-{fresh_fps} .field-error")
            assert form.locator("input[name=fps_id]").input_value() == "12345"
            page.screenshot(path=str(SHOTS / f"payments-error-{locale}-{width}.png"),
                            full_page=True)
            if width == 390:
                button = page.locator(f"#method-{fresh_fps} .pm-head button")
                assert button.bounding_box()["height"] >= 44
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(f"{live_server}/settings/payments")
        form = page.locator(f"form[action$='/payments/{fresh_fps}/details']")
        form.locator("input[name=fps_id]").fill("9123 4567")
        form.locator("input[name=payee_name]").fill("Cookie Lab Ltd")
        form.locator("button[type=submit]").click()
        page.wait_for_selector(f"#pm-status-{fresh_fps}.pm-ready")
        assert method("fps").fps_id == "+852 9123 4567"
        page.screenshot(path=str(SHOTS / f"payments-saved-{locale}-1280.png"), full_page=True)
        # back to empty for the next language
        with write_transaction() as session:
            fps = session.get(PaymentMethod, fresh_fps)
            fps.fps_id = fps.payee_name = ""
        context.close()
    assert problems == []


def test_browser_copy_buttons_copy_and_announce(browser, app):
    """copy.js on the customer's payment details: the value goes to the clipboard and
    "Copied" is said on the button and to screen readers."""
    from pathlib import Path

    from flask import render_template_string

    with app.test_request_context("/"):
        html = render_template_string(
            '{% from "storefront/_pay_details.html" import pay_details %}'
            '<!doctype html><html><body>{{ pay_details(m, 23000, "HKD", "SD10001") }}</body></html>',
            m=method("fps"))
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.set_content(html)
    page.add_style_tag(path=str(Path("static/css/app.css")))
    page.add_style_tag(path=str(Path("static/css/pay_details.css")))
    page.add_script_tag(path=str(Path("static/js/copy.js")))
    # A stand-in clipboard: headless about:blank has no permission to the real one.
    page.evaluate("""() => { window.copied = [];
        Object.defineProperty(navigator, 'clipboard', {value: {writeText: t => {
            window.copied.push(t); return Promise.resolve(); }}, configurable: true});
        Object.defineProperty(window, 'isSecureContext', {value: true}); }""")
    page.click("button[data-copy='SD10001']")
    page.wait_for_function("() => document.querySelector('[data-copy-status]').textContent === 'Copied'")
    assert page.evaluate("window.copied") == ["SD10001"]
    assert page.locator("button[data-copy='SD10001']").inner_text() == "Copied"
    for box in page.locator("button.pd-copy").all():
        assert box.bounding_box()["height"] >= 44
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "pay-details-390.png"), full_page=True)
    # without the Clipboard API: the textarea + execCommand fallback still copies
    page.evaluate("""() => { Object.defineProperty(navigator, 'clipboard', {value: undefined});
        document.execCommand = () => true; }""")
    page.click("button[data-copy='230.00']")
    page.wait_for_function("() => document.querySelector(\"button[data-copy='230.00']\").textContent === 'Copied'")
    page.set_viewport_size({"width": 1280, "height": 700})
    page.screenshot(path=str(SHOTS / "pay-details-1280.png"), full_page=True)
    context.close()
