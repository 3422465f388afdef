"""WhatsApp messages (issue 10): the 8 templates built from real orders in both
languages, recipients, webhook signatures, and the Cloud API client against the
fake API served on loopback (tests/whatsapp_fixtures.py)."""

from __future__ import annotations

import json
import re
import socket
import time
from datetime import timedelta

import httpx
import pytest

from domain import orders as actions
from domain.actors import Actor
from domain.db import db
from domain.models import Order, OutboxMessage
from domain.notify import whatsapp as wa
from domain.notify import whatsapp_config as wc
from domain.store import get_settings

pytest_plugins = ["whatsapp_fixtures"]

STAFF = Actor("staff", 1, "Tester")
FEW_DAYS = 3


def _fresh(order_id: int) -> Order:
    db.session.expire_all()
    return db.session.get(Order, order_id)


def _message(kind: str, order: Order) -> OutboxMessage:
    return OutboxMessage(event_key="event:1", channel="whatsapp", recipient="+85291234567",
                         audience="customer", kind=kind, order_id=order.id)


@pytest.fixture
def deadlines(app):
    settings = get_settings()
    settings.payment_deadline_days = FEW_DAYS
    db.session.commit()


def _order_for(type_code: str, make_order, locale: str) -> Order:
    """A real order brought, through the domain, to where this type's event leaves it."""
    if type_code in ("pickup_notification", "pickup_completed"):
        order = make_order(payment="credit_card", shipping="pickup", address="", locale=locale)
        actions.mark_ready_for_pickup(order.id, actor=STAFF)
        if type_code == "pickup_completed":
            actions.complete_pickup(order.id, actor=STAFF)
    elif type_code == "shipping_status":
        order = make_order(payment="credit_card", locale=locale)
        actions.ship_order(order.id, actor=STAFF, tracking_code="SF1234567890")
    else:
        order = make_order(payment="fps", locale=locale)
        if type_code == "order_cancellation":
            actions.reject_order(order.id, "Out of stock\nsorry", actor=STAFF)
        elif type_code == "payment_received":
            actions.confirm_payment(order.id, actor=STAFF)
        elif type_code == "expired_order":
            placed = _fresh(order.id)
            actions.expire_order(order.id, now=placed.payment_deadline_at + timedelta(minutes=1))
    return _fresh(order.id)


@pytest.mark.parametrize("locale,language", [("en", "en"), ("zh_Hant_HK", "zh_HK")])
@pytest.mark.parametrize("type_code", list(wa.TYPES))
def test_build_message_for_each_type_and_language(app, deadlines, make_order, type_code,
                                                  locale, language):
    app.config["PUBLIC_URL"] = "https://shop.example.hk"
    order = _order_for(type_code, make_order, locale)
    message = wa.build_message(_message(type_code, order), order)
    wa_type = wa.TYPES[type_code]
    assert message.name == f"shopdesk_{type_code}" == wa_type.template_name
    assert message.language == language
    assert tuple(message.params) == wa_type.params
    for name, value in message.params.items():
        # Meta refuses empty parameters and newlines, tabs or 5 spaces in one.
        assert value.strip() and not re.search(r"[\n\t]| {5,}", value), (name, value)
    params = message.params
    if "order_link" in params:
        assert params["order_link"] == f"https://shop.example.hk/shop/o/{order.public_token}"
    if "order_number" in params:
        assert params["order_number"] == order.number
    if "customer_name" in params:
        assert params["customer_name"] == "陳大文"
    if "store_name" in params:
        assert params["store_name"] == get_settings().name
    if "total" in params:
        assert params["total"] == f"HK${order.total_cents // 100:,}.{order.total_cents % 100:02d}"
    text = message.text()
    assert "{{" not in text and order.number in text
    assert re.search(r"[\u4e00-\u9fff]{4}", wa_type.text["zh_HK"].replace("{{", ""))
    if type_code == "shipping_status":
        assert params["tracking_code"] == "SF1234567890"
    if type_code == "order_cancellation":
        assert params["reason"] == "Out of stock sorry"
    if type_code == "payment_reminder":
        local = order.payment_deadline_at + timedelta(hours=8)  # Hong Kong, no DST
        assert params["deadline"] == f"{local:%Y-%m-%d %H:%M} HKT"
    if language == "zh_HK":
        assert "你好" in text
    else:
        assert text.startswith("Hi ")


def test_build_message_reads_the_order_at_send_time(app, make_order):
    order = make_order(payment="credit_card", locale="en")
    message = _message("shipping_status", order)  # written when the order shipped...
    actions.ship_order(order.id, actor=STAFF, tracking_code="SF1234567890")
    db.session.get(Order, order.id).customer_name = "Chan Tai Man"
    db.session.commit()
    order = _fresh(order.id)
    params = wa.build_message(message, order).params  # ...rendered from the order as it is now
    assert params["tracking_code"] == "SF1234567890" and params["customer_name"] == "Chan Tai Man"


def test_build_message_fallbacks_and_unknown_kind(app, make_order):
    order = make_order(payment="fps", locale="zh_Hant_HK")
    order.customer_name = "  \t "
    message = wa.build_message(_message("payment_reminder", order), order)
    assert message.params["customer_name"] == "顧客"
    assert message.params["deadline"] == "訂單頁面所示的期限"  # no deadline set in this store
    order.customer_name = "A" * 500
    assert len(wa.build_message(_message("order_confirmation", order), order)
               .params["customer_name"]) == 60
    with pytest.raises(LookupError):
        wa.build_message(_message("order_placed", order), order)


def test_types_and_events():
    assert len(wa.TYPES) == 9 and set(wa.EVENT_TYPES.values()) == set(wa.TYPES)
    for wa_type in wa.TYPES.values():
        for language in wa.LANGUAGES:
            text = wa_type.text[language]
            # Meta: a body may not start or end with a parameter.
            assert not text.startswith("{{") and not text.rstrip().endswith("}}")
            assert set(re.findall(r"\{\{(\w+)\}\}", text)) == set(wa_type.params)


# ------------------------------------------------------------------ recipients


@pytest.mark.parametrize("phone,expected", [
    ("9123 4567", "+85291234567"), ("+852 5123 4567", "+85251234567"),
    ("(852) 6123-4567", "+85261234567"), ("２１２３ ４５６７", None), ("2123 4567", None),
    ("hello", None), ("", None), ("123", None), ("9" * 200, None), ("+44 7911 123456", "+447911123456"),
    ("=HYPERLINK(\"x\")", None), ("\x00\x01", None),
])
def test_recipient_for(app, make_order, phone, expected):
    order = make_order(phone="9123 4567")
    order.customer_phone, order.customer_phone_e164 = phone, ""
    assert wa.recipient_for(order) == expected


def test_recipient_prefers_the_stored_e164(app, make_order):
    order = make_order(phone="9123 4567")
    assert order.customer_phone_e164 == "+85291234567"
    assert wa.recipient_for(order) == "+85291234567"


def test_wa_me_link(app, make_order):
    order = make_order(phone="9123 4567", locale="zh_Hant_HK")
    link = wa.wa_me_link(order)
    assert link.startswith("https://wa.me/85291234567?text=")
    text = httpx.URL(link).params["text"]
    assert "陳大文" in text and order.number in text and "你好" in text
    english = make_order(phone="+852 6123 4567", locale="en", name="Amy <b>&</b>")
    link = wa.wa_me_link(english)
    assert link.startswith("https://wa.me/85261234567?text=Hi%20Amy%20%3Cb%3E%26%3C%2Fb%3E")
    assert wa.wa_me_link(make_order(phone="2123 4567")) is None


# ------------------------------------------------------------------ signatures


def test_verify_signature():
    body = json.dumps({"entry": [{"changes": []}]}).encode()
    good = wa.signature_header(body, "app-secret")
    assert wa.verify_signature(body, good, "app-secret")
    assert wa.verify_signature(body, good.upper().replace("SHA256=", "sha256="), "app-secret")
    assert not wa.verify_signature(body + b" ", good, "app-secret")
    assert not wa.verify_signature(body, good, "other-secret")
    assert not wa.verify_signature(body, wa.signature_header(body, "other"), "app-secret")
    for bad in (None, "", "   ", "sha256=", "sha1=" + "0" * 40, good[7:], "sha256=" + "z" * 64,
                good[:-1], good + "0", "sha256=" + good, 12345):
        assert not wa.verify_signature(body, bad, "app-secret"), bad
    assert not wa.verify_signature(body, good, "")
    assert not wa.verify_signature(body, good, None)


# ------------------------------------------------------------------ the client


def _client(api, *, token="sandbox-token", timeout=2.0):
    return wa.CloudAPIClient(api.base_url, "106540352242922", token, "v21.0", timeout)


MESSAGE = wa.TemplateMessage("shopdesk_shipping_status", "zh_HK",
                             {"customer_name": "陳大文", "order_number": "SD1001",
                              "tracking_code": "SF1234567890"})


def test_send_template_success_and_request_shape(whatsapp_api):
    with _client(whatsapp_api) as client:
        wamid = client.send_template("+85291234567", MESSAGE)
    assert wamid.startswith("wamid.") and whatsapp_api.sent == [wamid]
    request = whatsapp_api.sends[0]
    assert request.path == "/v21.0/106540352242922/messages"
    assert request.headers["Authorization"] == "Bearer sandbox-token"
    assert request.json == {
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": "+85291234567",
        "type": "template",
        "template": {"name": "shopdesk_shipping_status", "language": {"code": "zh_HK"},
                     "components": [{"type": "body", "parameters": [
                         {"type": "text", "parameter_name": "customer_name", "text": "陳大文"},
                         {"type": "text", "parameter_name": "order_number", "text": "SD1001"},
                         {"type": "text", "parameter_name": "tracking_code",
                          "text": "SF1234567890"}]}]}}


def test_undeliverable_is_permanent(whatsapp_api):
    with _client(whatsapp_api) as client, pytest.raises(wa.WhatsAppError) as failed:
        client.send_template("+85291230400", MESSAGE)
    error = failed.value
    assert error.outcome == "permanent" and error.code == 131026 and error.http_status == 400
    assert "Undeliverable" in error.title and "(#131026)" in str(error)


def test_rate_limit_is_retried_after_the_header(whatsapp_api):
    with _client(whatsapp_api) as client, pytest.raises(wa.WhatsAppError) as failed:
        client.send_template("+85291230429", MESSAGE)
    error = failed.value
    assert error.outcome == "retry" and error.code == 130429 and error.retry_after == 2.0


def test_server_error_is_retried(whatsapp_api):
    with _client(whatsapp_api) as client, pytest.raises(wa.WhatsAppError) as failed:
        client.send_template("+85291230500", MESSAGE)
    assert failed.value.outcome == "retry" and failed.value.code == 131000


def test_read_timeout_is_unknown_never_retried(whatsapp_api):
    whatsapp_api.timeout_delay = 6.0
    started = time.monotonic()
    with _client(whatsapp_api, timeout=0.4) as client, pytest.raises(wa.WhatsAppError) as failed:
        client.send_template("+85291230408", MESSAGE)
    assert failed.value.outcome == "unknown"
    assert time.monotonic() - started < 5  # gave up long before the API answered
    assert len(whatsapp_api.sent) == 1  # the API took it: it may well be delivered


def test_wrong_token_is_permanent_and_check_reports_it(whatsapp_api):
    with _client(whatsapp_api, token="expired-token-xxxxxxxxxxxx") as client:
        with pytest.raises(wa.WhatsAppError) as failed:
            client.send_template("+85291234567", MESSAGE)
        assert failed.value.outcome == "permanent" and failed.value.code == 190
        with pytest.raises(wa.WhatsAppError):
            client.check()
    with _client(whatsapp_api) as client:
        assert client.check() == "+852 5555 0000"
        assert client.send_test("+85291234567").startswith("wamid.")
    assert whatsapp_api.sends[-1].json["template"] == {"name": "hello_world",
                                                       "language": {"code": "en_US"}}


def test_connection_refused_is_retried_and_bad_numbers_never_sent():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = wa.CloudAPIClient(f"http://127.0.0.1:{port}", "1234567", "token-" + "x" * 20)
    with pytest.raises(wa.WhatsAppError) as failed:
        client.send_template("+85291234567", MESSAGE)
    assert failed.value.outcome == "retry"
    for bad in ("91234567", "+852 9123 4567", "", None, "+0123456789"):
        with pytest.raises(wa.WhatsAppError) as failed:
            client.send_template(bad, MESSAGE)
        assert failed.value.outcome == "permanent"


def _mocked(status, body=None, headers=None):
    def handler(request):
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.Response(status, content=content, headers=headers or {})
    return wa.CloudAPIClient("https://graph.test", "1234567", "t" * 30,
                             transport=httpx.MockTransport(handler))


@pytest.mark.parametrize("status,body,outcome", [
    (200, {"messages": []}, "unknown"),  # accepted without an id: never resend
    (502, b"<html>Bad gateway</html>", "retry"),
    (400, {"error": {"code": 987654, "message": "new"}}, "permanent"),  # unknown 4xx
    (503, {"error": {"code": 987654, "message": "new"}}, "retry"),  # unknown 5xx
    (400, {"error": {"code": 131056, "message": "(#131056) Pair rate limit hit"}}, "retry"),
    (400, {"error": {"code": 4, "message": "(#4) Application request limit reached"}}, "retry"),
    (400, {"error": {"code": 131047, "message": "Re-engagement message"}}, "permanent"),
    (403, {"error": "not an object"}, "permanent"),
])
def test_error_mapping(status, body, outcome):
    with pytest.raises(wa.WhatsAppError) as failed:
        _mocked(status, body).send_template("+85291234567", MESSAGE)
    assert failed.value.outcome == outcome


def test_retry_after_as_a_date_and_garbage():
    date = "Wed, 21 Oct 2099 07:28:00 GMT"
    with pytest.raises(wa.WhatsAppError) as failed:
        _mocked(429, {}, {"Retry-After": date}).send_template("+85291234567", MESSAGE)
    assert failed.value.retry_after == 86400.0  # capped at a day
    with pytest.raises(wa.WhatsAppError) as failed:
        _mocked(429, {}, {"Retry-After": "soon"}).send_template("+85291234567", MESSAGE)
    assert failed.value.outcome == "retry" and failed.value.retry_after is None


def test_client_from_config_uses_the_sandbox(app, whatsapp_api):
    app.config["WHATSAPP_SANDBOX_SERVER"] = True
    app.config["PUBLIC_URL"] = whatsapp_api.base_url
    with pytest.raises(wa.WhatsAppError) as failed:
        wa.client_from_config()
    assert failed.value.outcome == "retry"
    wc.use_sandbox()
    with wa.client_from_config() as client:
        assert client.base_url == whatsapp_api.sandbox_base
        assert client.check() == "+852 5555 0000"
        assert client.send_template("+85291234567", MESSAGE).startswith("wamid.")
    assert whatsapp_api.sends[-1].path.endswith("/v21.0/sandbox-phone/messages")
    app.config["SECRET_KEY"] = "rotated"
    with pytest.raises(wa.WhatsAppError) as failed:
        wa.client_from_config()
    assert failed.value.outcome == "retry" and "Re-enter" in failed.value.detail


def test_error_words_name_the_code_once(whatsapp_api):
    with _client(whatsapp_api) as client, pytest.raises(wa.WhatsAppError) as failed:
        client.send_template("+85291230400", MESSAGE)
    words = str(failed.value)
    assert words.count("131026") == 1 and "not a WhatsApp user" in words


def test_parameters_are_one_clean_line(app, make_order):
    order = make_order(payment="fps", locale="en", name="Amy\u202e\tWong\n\n   Jr     ")
    actions.reject_order(order.id, "Line one\r\nline two\u2028three", actor=STAFF)
    order = _fresh(order.id)
    params = wa.build_message(_message("order_cancellation", order), order).params
    assert params["customer_name"] == "Amy Wong Jr"
    assert params["reason"] == "Line one line two three"


@pytest.mark.parametrize("language", wa.LANGUAGES)
def test_template_definitions_for_registration(language):
    for code, wa_type in wa.TYPES.items():
        definition = wa.template_definition(code, language)
        assert definition["name"] == wa_type.template_name
        assert definition["parameter_format"] == "NAMED" and definition["category"] == "UTILITY"
        body = definition["components"][0]
        assert body["text"] == wa_type.text[language]
        examples = body["example"]["body_text_named_params"]
        assert [e["param_name"] for e in examples] == list(wa_type.params)
        assert all(e["example"] for e in examples)


def test_deadline_text_names_the_zone():
    from datetime import datetime

    when = datetime(2026, 11, 30, 15, 59)  # naive = UTC, as stored
    assert wa.deadline_text(when, "Asia/Hong_Kong") == "2026-11-30 23:59 HKT"
    assert wa.deadline_text(when, "Asia/Singapore") == "2026-11-30 23:59 UTC+8"
    assert wa.deadline_text(when, "Asia/Kolkata") == "2026-11-30 21:29 IST"
    assert wa.deadline_text(None, "Asia/Hong_Kong") == ""
