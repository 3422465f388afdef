"""The Cloud API's webhook endpoint (issue 10): the subscribe challenge, signed delivery
statuses applied to the outbox row (idempotent), everything else 403 and unchanged; no
CSRF token needed there while every other POST still needs one. And the order page:
WhatsApp rows with their delivery result, and the free wa.me link."""

from __future__ import annotations

import json
import time

import pytest

from domain.db import db
from domain.models import OutboxMessage, WhatsAppStatus
from domain.notify import whatsapp, whatsapp_config
from domain.notify.whatsapp_delivery import deliver_whatsapp_due

pytest_plugins = ["whatsapp_fixtures"]

URL = "/settings/whatsapp/webhook"
SECRET = whatsapp_config.SANDBOX_APP_SECRET


def _statuses_body(wamid: str, status: str = "delivered", **extra) -> bytes:
    entry = {"id": wamid, "status": status, "timestamp": "1764640000",
             "recipient_id": "85291234567", **extra}
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "waba", "changes": [
        {"field": "messages", "value": {"messaging_product": "whatsapp", "statuses": [entry]}}]}]}
    ).encode()


def _signed(body: bytes, secret: str = SECRET) -> dict:
    return {"Content-Type": "application/json",
            "X-Hub-Signature-256": whatsapp.signature_header(body, secret)}


@pytest.fixture
def live(app, whatsapp_api):
    """Sandbox on and active, pointed at the loopback fake; its webhooks wait for the test."""
    app.config["PUBLIC_URL"] = whatsapp_api.base_url
    whatsapp_config.use_sandbox()
    whatsapp_config.activate()
    whatsapp_api.webhook_mode = "manual"
    whatsapp_api.webhook_delay = whatsapp_api.webhook_gap = 0.0
    return whatsapp_api


def _deliver(api, count: int) -> int:
    """Wait for the fake to queue ``count`` webhooks, then POST them from this thread."""
    deadline = time.monotonic() + 5
    while len(api.pending) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return api.deliver_pending()


def _sent_message(make_order, phone="9123 4567", locale=None):
    """An order whose WhatsApp order confirmation went to the fake: (order, message)."""
    order = make_order(phone=phone)
    deliver_whatsapp_due()
    db.session.expire_all()
    message = db.session.query(OutboxMessage).filter_by(order_id=order.id,
                                                        channel="whatsapp").one()
    return order, message


# ------------------------------------------------------------------ the challenge


def test_challenge_answered_only_with_the_right_token(client, app):
    token = whatsapp_config.get_config().verify_token
    ok = client.get(f"{URL}?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444")
    assert ok.status_code == 200 and ok.get_data(as_text=True) == "1158201444"
    assert ok.mimetype == "text/plain"
    for query in (f"hub.mode=subscribe&hub.verify_token={token}x&hub.challenge=1",
                  "hub.mode=subscribe&hub.verify_token=&hub.challenge=1",
                  "hub.mode=subscribe&hub.challenge=1",
                  f"hub.mode=unsubscribe&hub.verify_token={token}&hub.challenge=1"):
        response = client.get(f"{URL}?{query}")
        assert response.status_code == 403, query
        assert "1158201444" not in response.get_data(as_text=True)


# ------------------------------------------------------------------ statuses


def test_unsigned_or_wrongly_signed_gets_403_and_changes_nothing(client, live, make_order):
    _order, message = _sent_message(make_order)
    statuses = db.session.query(WhatsAppStatus).count()
    body = _statuses_body(message.provider_id, "read")
    for headers in ({"Content-Type": "application/json"},
                    {"X-Hub-Signature-256": "sha256=" + "0" * 64},
                    {"X-Hub-Signature-256": "sha256=zz"},
                    {"X-Hub-Signature-256": whatsapp.signature_header(body, SECRET)[7:]},
                    _signed(body, "another-secret"),
                    _signed(body + b" ")):
        response = client.http.post(URL, data=body, headers=headers)
        assert response.status_code == 403, headers
    db.session.expire_all()
    assert db.session.query(WhatsAppStatus).count() == statuses
    assert db.session.get(OutboxMessage, message.id).delivery_status in ("", "sent")


def test_signed_statuses_apply_idempotently_and_in_any_order(client, live, make_order):
    _order, message = _sent_message(make_order)
    wamid = message.provider_id
    for status in ("read", "delivered", "read", "sent"):  # out of order, and twice
        body = _statuses_body(wamid, status)
        response = client.http.post(URL, data=body, headers=_signed(body))  # no CSRF token
        assert response.status_code == 200
    db.session.expire_all()
    row = db.session.get(OutboxMessage, message.id)
    assert row.delivery_status == "read"
    assert db.session.query(WhatsAppStatus).filter_by(provider_message_id=wamid).count() == 3


def test_the_fakes_own_signed_webhooks_reach_the_row(client, live, make_order):
    live.feed_to(client.http)
    _order, message = _sent_message(make_order)
    assert _deliver(live, 3) == 3
    assert all(w.delivered for w in live.webhooks)
    db.session.expire_all()
    assert db.session.get(OutboxMessage, message.id).delivery_status == "read"


def test_malformed_and_oversized_bodies(client, live):
    for body in (b"{not json", b"\xff\xfe", b"[1, 2]"):
        assert client.http.post(URL, data=body, headers=_signed(body)).status_code == 400
    big = b"{" + b" " * (1024 * 1024 + 1) + b"}"
    assert client.http.post(URL, data=big, headers=_signed(big)).status_code == 413
    assert db.session.query(WhatsAppStatus).count() == 0


def test_no_secret_saved_means_every_post_is_refused(client, app):
    body = _statuses_body("wamid.x")
    assert client.http.post(URL, data=body, headers=_signed(body, "")).status_code == 403


def test_csrf_exempt_only_for_the_webhook(owner_client, live):
    body = _statuses_body("wamid.unknown", "delivered")
    assert owner_client.http.post(URL, data=body, headers=_signed(body)).status_code == 200
    # stored though its message is not known yet (the send may not have committed)
    assert db.session.query(WhatsAppStatus).filter_by(provider_message_id="wamid.unknown").count()
    assert owner_client.post("/settings/whatsapp/deactivate", csrf=False).status_code == 400
    assert whatsapp_config.is_active()


# ------------------------------------------------------------------ the order page


def test_timeline_shows_whatsapp_results_and_the_wa_me_link(owner_client, staff_client, live,
                                                             make_order):
    live.feed_to(owner_client.http)
    order, message = _sent_message(make_order)
    assert _deliver(live, 3) == 3
    html = staff_client.get(f"/orders/{order.number}").get_data(as_text=True)
    row = html[html.index(f'id="message-{message.id}"'):]
    row = row[:row.index("</li>")]
    assert "WhatsApp" in row and 'data-message-status="read"' in row and "+85291234567" in row
    assert 'id="wa-me-link"' in html and "https://wa.me/85291234567?text=" in html
    assert 'target="_blank"' in html and 'rel="noopener' in html

    # accepted, then the webhook says failed: the code and title show
    failed_order, failed = _sent_message(make_order, phone="9123 0410")
    assert _deliver(live, 1) == 1
    html = owner_client.get(f"/orders/{failed_order.number}", htmx=True).get_data(as_text=True)
    row = html[html.index(f'id="message-{failed.id}"'):]
    row = row[:row.index("</li>")]
    assert 'data-message-status="failed"' in row and "131047" in row and "Not delivered" in row

    # refused by the API for good: failed with the error in words
    refused_order, refused = _sent_message(make_order, phone="9123 0400")
    html = owner_client.get(f"/orders/{refused_order.number}").get_data(as_text=True)
    row = html[html.index(f'id="message-{refused.id}"'):]
    assert "131026" in row[:row.index("</li>")]


def test_no_mobile_no_link_and_the_history_says_so(owner_client, live, make_order):
    order = make_order(phone="2345 6789")  # a Hong Kong landline
    html = owner_client.get(f"/orders/{order.number}").get_data(as_text=True)
    assert 'id="wa-me-link"' not in html
    assert "no valid mobile number" in html
    assert not db.session.query(OutboxMessage).filter_by(order_id=order.id,
                                                         channel="whatsapp").count()


def test_skipped_and_unknown_rows_read_in_words(owner_client, live, make_order):
    from domain.notify.whatsapp_delivery import CAP_REASON

    order = make_order(phone="9123 4567")
    message = db.session.query(OutboxMessage).filter_by(order_id=order.id,
                                                        channel="whatsapp").one()
    message.status, message.last_error = "skipped", CAP_REASON
    db.session.commit()
    html = owner_client.get(f"/orders/{order.number}").get_data(as_text=True)
    row = html[html.index(f'id="message-{message.id}"'):]
    row = row[:row.index("</li>")]
    assert 'data-message-status="skipped"' in row and "Skipped" in row
    assert "monthly cap reached" in row
    message.status, message.last_error = "unknown", "No answer from the WhatsApp API"
    db.session.commit()
    html = owner_client.get(f"/orders/{order.number}", htmx=True).get_data(as_text=True)
    row = html[html.index(f'id="message-{message.id}"'):]
    assert "Outcome unknown" in row[:row.index("</li>")]
