"""Settings → WhatsApp (issue 10): owner only, credentials never shown again, activation,
the sandbox and a test message against the fake Cloud API, per-type switches, cap and
price, with hostile input and with and without htmx."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from domain.db import db
from domain.models import WhatsAppConfig, WhatsAppPrice
from domain.notify import whatsapp, whatsapp_config

pytest_plugins = ["whatsapp_fixtures"]

URL = "/settings/whatsapp"
TOKEN = "EAAGm0PX4ZCpsBA" + "Q7zK" * 10
SECRET = "0123456789abcdef0123456789abcdef"
CREDENTIALS = {"phone_number_id": "106540352242922", "business_account_id": "102290129340398",
               "access_token": TOKEN, "app_secret": SECRET}


def _row() -> WhatsAppConfig:
    db.session.expire_all()
    return db.session.get(WhatsAppConfig, 1)


@pytest.fixture
def sandboxed(app, whatsapp_api):
    """The app's sandbox mode pointed at the loopback fake (PUBLIC_URL = the fake)."""
    app.config["PUBLIC_URL"] = whatsapp_api.base_url
    return whatsapp_api


# ------------------------------------------------------------------ who may open it


def test_anonymous_is_sent_to_sign_in(client):
    response = client.get(URL)
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    response = client.http.post(URL + "/activate", data={})
    assert response.status_code in (302, 400)  # CSRF or sign-in first; never done
    assert not _row() or not _row().active


def test_staff_get_403_on_every_page_and_action(staff_client):
    assert staff_client.get(URL).status_code == 403
    for path in ("/credentials", "/activate", "/deactivate", "/sandbox", "/test",
                 "/types/order_confirmation", "/cap", "/price"):
        assert staff_client.post(URL + path, data={"cap": "1"}).status_code == 403, path
    assert not _row() or (not _row().active and _row().monthly_cap_cents is None)


def test_owner_sees_the_page_off_with_the_8_templates_in_both_languages(owner_client, app):
    response = owner_client.get(URL)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'data-active="off"' in html and "No WhatsApp messages are sent." in html
    assert 'href="/settings/whatsapp" aria-current="page"' in html  # the tab
    assert len(whatsapp.TYPES) == 9
    for t in whatsapp.TYPES.values():
        assert f"shopdesk_{t.code}" in html
        assert f'id="wa-type-{t.code}"' in html
    # the approved text, as Jinja escapes it, in English and Chinese
    first = next(iter(whatsapp.TYPES.values()))
    assert first.text["zh_HK"].split("{{")[0] in html
    # the webhook to paste into Meta, and its verify token
    assert "http://127.0.0.1:5000/settings/whatsapp/webhook" in html
    assert whatsapp_config.get_config().verify_token in html
    assert "Use the sandbox" in html  # WHATSAPP_SANDBOX_SERVER is on outside production
    fragment = owner_client.get(URL, htmx=True).get_data(as_text=True)
    assert 'id="wa-connection"' in fragment and "<html" not in fragment


def test_no_sandbox_button_where_the_server_has_no_sandbox(owner_client, app):
    app.config["WHATSAPP_SANDBOX_SERVER"] = False
    assert "Use the sandbox" not in owner_client.get(URL).get_data(as_text=True)
    assert owner_client.post(URL + "/sandbox").status_code == 404
    assert not _row().sandbox


# ------------------------------------------------------------------ credentials


def test_saved_secrets_are_never_in_any_page_and_empty_keeps_them(owner_client):
    response = owner_client.post(URL + "/credentials", data=CREDENTIALS)
    assert response.status_code == 302
    assert whatsapp_config.access_token() == TOKEN and whatsapp_config.app_secret() == SECRET
    for htmx in (False, True):
        html = owner_client.get(URL, htmx=htmx).get_data(as_text=True)
        assert TOKEN not in html and SECRET not in html
        assert _row().access_token_enc not in html
        assert "Saved. Leave empty to keep it." in html
        assert 'value="106540352242922"' in html
    # a refused form (bad phone id) shows neither the old nor the newly typed secret
    typed = dict(CREDENTIALS, phone_number_id="12ab", access_token="EAAnewtoken" + "z" * 30,
                 app_secret="f" * 32)
    for htmx in (False, True):
        response = owner_client.post(URL + "/credentials", data=typed, htmx=htmx)
        html = response.get_data(as_text=True)
        assert response.status_code == 422
        assert 'value="12ab"' in html  # what was typed is kept...
        assert "field-error" in html
        assert "EAAnewtoken" not in html and "f" * 32 not in html and TOKEN not in html
    assert whatsapp_config.access_token() == TOKEN  # nothing saved
    # empty token and secret keep the saved ones
    kept = dict(CREDENTIALS, access_token="", app_secret="", business_account_id="999999")
    assert owner_client.post(URL + "/credentials", data=kept).status_code == 302
    assert whatsapp_config.access_token() == TOKEN and whatsapp_config.app_secret() == SECRET
    assert _row().business_account_id == "999999"


@pytest.mark.parametrize("field,value", [
    ("phone_number_id", "x" * 65), ("phone_number_id", "=cmd|' /C calc'!A0"),
    ("phone_number_id", "-12345"), ("business_account_id", "123\x00456"),
    ("access_token", "has spaces in it and is long enough"), ("app_secret", "short"),
])
def test_hostile_credentials_are_refused_next_to_the_field(owner_client, field, value):
    response = owner_client.post(URL + "/credentials", data=dict(CREDENTIALS, **{field: value}),
                                 htmx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'class="field-error"' in html
    assert TOKEN not in html and SECRET not in html
    assert not _row().access_token_enc  # nothing saved


def test_activation_is_refused_without_credentials(owner_client):
    response = owner_client.post(URL + "/activate", htmx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "before turning WhatsApp on" in html
    assert not _row().active
    response = owner_client.post(URL + "/activate")
    assert response.status_code == 302 and not _row().active


# ------------------------------------------------------------------ sandbox, test message


def test_sandbox_activate_and_test_message_against_the_fake(owner_client, sandboxed):
    response = owner_client.post(URL + "/sandbox", htmx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'data-testid="wa-sandbox"' in html and "SANDBOX" in html
    assert "Connected as +852 5555 0000" in html
    response = owner_client.post(URL + "/activate", htmx=True)
    assert response.status_code == 200 and _row().active
    assert 'data-active="on"' in response.get_data(as_text=True)

    response = owner_client.post(URL + "/test", {"phone": "9123 4567"}, htmx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html
    wamid = sandboxed.sent[-1]
    assert wamid in html and "+85291234567" in html
    assert sandboxed.sends[-1].json["to"] == "+85291234567"
    assert sandboxed.sends[-1].json["template"]["name"] == "hello_world"
    assert _row().status == "connected"
    # the desk wears the label on this page as a whole page too
    assert "SANDBOX" in owner_client.get(URL).get_data(as_text=True)


def test_test_message_error_in_words_and_in_the_status_line(owner_client, sandboxed):
    owner_client.post(URL + "/sandbox")
    response = owner_client.post(URL + "/test", {"phone": "+852 9123 0400"}, htmx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "131026" in html and 'data-testid="wa-test-result"' in html
    assert _row().status == "error" and "131026" in _row().status_detail
    assert "The WhatsApp API refused" in owner_client.get(URL).get_data(as_text=True)
    # without htmx: a redirect and the error flashed on the page
    response = owner_client.post(URL + "/test", {"phone": "+852 9123 0400"})
    assert response.status_code == 302
    assert "131026" in owner_client.get(URL).get_data(as_text=True)


@pytest.mark.parametrize("phone", ["", "abc", "=1+1", "1" * 41, "\x07\x08"])
def test_test_message_refuses_a_bad_number_and_keeps_it(owner_client, sandboxed, phone):
    owner_client.post(URL + "/sandbox")
    before = len(sandboxed.sends)
    response = owner_client.post(URL + "/test", {"phone": phone}, htmx=True)
    assert response.status_code == 422
    assert 'class="field-error"' in response.get_data(as_text=True)
    assert len(sandboxed.sends) == before


def test_deactivate_stops_at_once(owner_client, sandboxed):
    owner_client.post(URL + "/sandbox")
    owner_client.post(URL + "/activate")
    assert whatsapp_config.is_active()
    response = owner_client.post(URL + "/deactivate", htmx=True)
    assert response.status_code == 200
    assert not whatsapp_config.is_active()
    assert 'data-active="off"' in response.get_data(as_text=True)


# ------------------------------------------------------------------ types, cap, price


def test_type_switches(owner_client):
    response = owner_client.post(URL + "/types/payment_reminder", htmx=True)  # no "enabled": off
    assert response.status_code == 200
    assert "payment_reminder" in _row().disabled_types
    assert 'id="wa-types"' in response.get_data(as_text=True)
    owner_client.post(URL + "/types/payment_reminder", {"enabled": "y"})
    assert "payment_reminder" not in _row().disabled_types
    assert owner_client.post(URL + "/types/nope").status_code == 404
    assert owner_client.post(URL + "/types/..%2F..%2Fetc").status_code == 404


@pytest.mark.parametrize("cap", ["-5", "=1+1", "abc", "1e9999", "9" * 13])
def test_hostile_cap_is_refused_next_to_the_field_and_kept(owner_client, cap):
    for htmx in (True, False):
        response = owner_client.post(URL + "/cap", {"cap": cap}, htmx=htmx)
        html = response.get_data(as_text=True)
        assert response.status_code == 422
        assert 'class="field-error"' in html
        assert f'value="{cap}"' in html or len(cap) > 12
    assert _row().monthly_cap_cents is None


def test_cap_saved_and_cleared(owner_client):
    assert owner_client.post(URL + "/cap", {"cap": "49.50"}).status_code == 302
    assert _row().monthly_cap_cents == 4950
    assert 'value="49.50"' in owner_client.get(URL).get_data(as_text=True)
    owner_client.post(URL + "/cap", {"cap": ""}, htmx=True)
    assert _row().monthly_cap_cents is None


def test_price_shows_current_and_a_new_one_from_a_date(owner_client):
    html = owner_client.get(URL).get_data(as_text=True)
    assert "0.15" in html and "2000-01-01" in html
    rows = db.session.query(WhatsAppPrice).count()
    past = (date.today() - timedelta(days=3)).isoformat()
    response = owner_client.post(URL + "/price", {"price": "0.20", "effective_from": past},
                                 htmx=True)
    assert response.status_code == 422 and "never in the past" in response.get_data(as_text=True)
    for bad in ({"price": "-1", "effective_from": "2099-01-01"},
                {"price": "=SUM(A1)", "effective_from": "2099-01-01"},
                {"price": "0.20", "effective_from": "01/02/2099"},
                {"price": "0.20", "effective_from": ""}):
        response = owner_client.post(URL + "/price", bad, htmx=True)
        assert response.status_code == 422, bad
        assert 'class="field-error"' in response.get_data(as_text=True)
    assert db.session.query(WhatsAppPrice).count() == rows
    future = (date.today() + timedelta(days=10)).isoformat()
    response = owner_client.post(URL + "/price", {"price": "0.20", "effective_from": future})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.query(WhatsAppPrice).count() == rows + 1
    html = owner_client.get(URL).get_data(as_text=True)
    assert future in html and "0.20" in html


# ------------------------------------------------------------------ CSRF


def test_every_settings_post_needs_a_csrf_token(owner_client):
    for path in ("/credentials", "/activate", "/deactivate", "/sandbox", "/test",
                 "/types/order_confirmation", "/cap", "/price"):
        response = owner_client.post(URL + path, dict(CREDENTIALS, cap="5"), csrf=False)
        assert response.status_code == 400, path
    row = _row()
    assert row is None or (row.monthly_cap_cents is None and not row.access_token_enc)


def test_sandbox_label_helper_for_desk_pages(app, owner_client, sandboxed):
    from flask import render_template_string

    template = "{{ 'ON' if whatsapp_sandbox_on() else 'OFF' }}"
    # each request has its own app context (and ``g``), as in production
    with app.app_context(), app.test_request_context("/orders"):
        assert render_template_string(template) == "OFF"  # signed out
    owner_client.post(URL + "/sandbox")
    from flask_login import login_user

    with app.app_context(), app.test_request_context("/orders"):
        login_user(db.session.get(type(_owner_row()), _owner_row().id))
        assert render_template_string(template) == "ON"


def _owner_row():
    from domain.models import User

    return db.session.query(User).filter_by(email="owner@shop.test").one()
