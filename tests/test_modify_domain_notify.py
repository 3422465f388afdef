"""What the customer and the shop are told after a modification (issue 12): the
"order updated" email rendered as the outbox renders it (at send time, in the order's
language), the balance emails, and the WhatsApp "order_updated" template."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from test_modify_domain_helpers import STAFF, events_of, fresh, keep

from domain import balance
from domain import orders as actions
from domain.db import db
from domain.models import OutboxMessage, ShippingMethod, StoreSettings
from domain.modify import modify_order
from domain.notify import whatsapp
from domain.notify.email import render_email
from domain.notify.kinds import EVENT_MESSAGES, KIND_LABELS

PUBLIC = "https://shop.example.hk"


@pytest.fixture
def store(app):
    app.config["PUBLIC_URL"] = PUBLIC
    settings = db.session.get(StoreSettings, 1)
    settings.name = "Cookie Lab"
    settings.notification_email = "orders@cookielab.hk"
    settings.payment_deadline_days = 3
    settings.plan = "video_commerce"
    db.session.commit()
    return settings


def _message(order_id, kind, audience="customer"):
    db.session.rollback()
    message = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.order_id == order_id,
                                    OutboxMessage.kind == kind,
                                    OutboxMessage.audience == audience,
                                    OutboxMessage.channel == "email")
        .order_by(OutboxMessage.id.desc())).first()
    assert message is not None, kind
    return message


def _paid(make_order, **kw):
    order = make_order(payment="fps", quantity=2, **kw)
    actions.upload_proof(order.id, path="p.png", sha256="a" * 64)
    actions.confirm_payment(order.id, actor=STAFF)
    return fresh(order.id)


def _sf():
    return db.session.scalar(select(ShippingMethod).where(ShippingMethod.kind == "logistics"))


def test_the_tables_name_every_new_kind():
    assert EVENT_MESSAGES["order_modified"] == (("customer", "order_updated"),)
    assert EVENT_MESSAGES["balance_proof_uploaded"] == (("merchant", "balance_proof_uploaded"),)
    for kind in ("order_updated", "balance_proof_uploaded", "balance_confirmed",
                 "balance_declined"):
        assert kind in KIND_LABELS
    assert whatsapp.EVENT_TYPES["order_modified"] == "order_updated"
    assert len(whatsapp.TYPES) == 9 and "order_updated" in KIND_LABELS


@pytest.mark.parametrize("locale", ["en", "zh_Hant_HK"])
def test_order_updated_email_for_an_unpaid_order(store, make_order, locale):
    order = make_order(payment="fps", quantity=2, locale=locale)
    modify_order(order.id, keep(order, shipping_method_id=_sf().id, shipping_fee_cents=4500),
                 expected_version=1, actor=STAFF)
    rendered = render_email(_message(order.id, "order_updated"))
    saved = fresh(order.id)
    if locale == "en":
        assert rendered.subject == (f"{order.number} Order updated, new total HK$301.00 — "
                                    "Cookie Lab")
        words = ["What changed", "Shipping Local delivery HK$30.00 → SF Express (auto waybill) "
                 "HK$45.00", "Total HK$286.00 → HK$301.00", "How to pay", "Upload payment proof"]
    else:
        assert rendered.subject == f"{order.number} 訂單已更新，新總額 HK$301.00 — Cookie Lab"
        words = ["更改內容", "運費 本地送貨 HK$30.00 → 順豐速運（自動運單） HK$45.00",
                 "總額 HK$286.00 → HK$301.00"]
    for body in (rendered.text, rendered.html):
        for word in words:
            assert word in body, word
        assert "HK$301.00" in body and saved.lines[0].product_name in body
        assert f"{PUBLIC}/shop/o/{order.public_token}" in body
        assert "Balance due" not in body and "尚欠餘額" not in body


@pytest.mark.parametrize("locale", ["en", "zh_Hant_HK"])
def test_order_updated_email_with_a_balance_due(store, make_order, locale):
    order = _paid(make_order, locale=locale)
    modify_order(order.id, keep(order, lines=(("line", order.lines[0].id, 3),)),
                 expected_version=1, actor=STAFF)
    rendered = render_email(_message(order.id, "order_updated"))
    due, button = ("Balance due", "Pay the balance") if locale == "en" else ("尚欠餘額", "支付餘額")
    for body in (rendered.text, rendered.html):
        assert due in body and button in body and "HK$128.00" in body
        assert "How to pay" not in body and "Upload payment proof" not in body
    assert f'href="{PUBLIC}/shop/o/{order.public_token}"' in rendered.html


def test_order_updated_email_with_a_credit_and_escaped_names(store, make_order, make_variant):
    bad = make_variant(name="<img src=x onerror=alert(1)>", variant="", stock=5)
    order = _paid(make_order)
    modify_order(order.id, keep(order, lines=(("line", order.lines[0].id, 0),
                                              ("variant", bad.id, 1))),
                 expected_version=1, actor=STAFF)
    rendered = render_email(_message(order.id, "order_updated"))
    assert "Credit owed to you" in rendered.html and "HK$128.00" in rendered.html
    assert "<img src=x" not in rendered.html and "&lt;img src=x" in rendered.html
    assert "+1 <img src=x onerror=alert(1)> (HK$128.00)" in rendered.text


def test_content_is_rendered_at_send_time(store, make_order):
    order = _paid(make_order)
    modify_order(order.id, keep(order, lines=(("line", order.lines[0].id, 3),)),
                 expected_version=1, actor=STAFF)
    message = _message(order.id, "order_updated")
    balance.mark_balance_received(order.id, actor=STAFF)  # paid before the mail left
    rendered = render_email(message)
    assert "Balance due" not in rendered.text and "nothing more to pay" in rendered.text


@pytest.mark.parametrize("locale", ["en", "zh_Hant_HK"])
def test_balance_emails(store, make_order, locale):
    order = _paid(make_order, locale=locale)
    modify_order(order.id, keep(order, lines=(("line", order.lines[0].id, 3),)),
                 expected_version=1, actor=STAFF)
    payment = balance.upload_balance_proof(order.id, path="b.png", sha256="b" * 64)
    to_shop = render_email(_message(order.id, "balance_proof_uploaded", "merchant"))
    assert to_shop.subject == f"{order.number} Balance proof to check — Cookie Lab"  # store: en
    assert "HK$128.00" in to_shop.text and f"{PUBLIC}/orders/{order.number}" in to_shop.text
    balance.decline_balance_payment(payment.id, "金額不符 <b>", actor=STAFF)
    declined = render_email(_message(order.id, "balance_declined"))
    assert "金額不符 &lt;b&gt;" in declined.html and "金額不符 <b>" in declined.text
    payment = balance.upload_balance_proof(order.id, path="c.png", sha256="c" * 64)
    balance.confirm_balance_payment(payment.id, actor=STAFF)
    confirmed = render_email(_message(order.id, "balance_confirmed"))
    if locale == "en":
        assert declined.subject.startswith(f"{order.number} Balance payment not accepted")
        assert "We received your balance payment of HK$128.00" in confirmed.text
    else:
        assert declined.subject.startswith(f"{order.number} 餘額付款未被接納")
        assert "餘額付款 HK$128.00" in confirmed.text


# ------------------------------------------------------------------ WhatsApp


@pytest.mark.parametrize("locale,language", [("en", "en"), ("zh_Hant_HK", "zh_HK")])
def test_whatsapp_order_updated_parameters(store, make_order, locale, language):
    wa_type = whatsapp.TYPES["order_updated"]
    assert wa_type.params == ("customer_name", "store_name", "order_number", "total",
                              "amount_due", "order_link")
    definition = whatsapp.template_definition("order_updated", language)
    assert definition["name"] == "shopdesk_order_updated"
    assert [p["param_name"] for p in definition["components"][0]["example"][
        "body_text_named_params"]] == list(wa_type.params)
    unpaid = make_order(payment="fps", quantity=2, locale=locale)
    modify_order(unpaid.id, keep(unpaid, discount_cents=1000), expected_version=1, actor=STAFF)
    message = OutboxMessage(kind="order_updated", order_id=unpaid.id, channel="whatsapp")
    built = whatsapp.build_message(message, fresh(unpaid.id))
    assert built.language == language
    assert built.params["total"] == built.params["amount_due"] == "HK$276.00"
    paid = _paid(make_order, locale=locale)
    modify_order(paid.id, keep(paid, lines=(("line", paid.lines[0].id, 3),)),
                 expected_version=1, actor=STAFF)
    built = whatsapp.build_message(message, fresh(paid.id))
    assert (built.params["total"], built.params["amount_due"]) == ("HK$414.00", "HK$128.00")
    assert paid.number in built.text() and all(built.params.values())


def test_whatsapp_row_written_for_a_modification_only_when_active(app, store, make_order):
    from domain.notify import whatsapp_config

    order = make_order(payment="fps")
    modify_order(order.id, keep(order, discount_cents=100), expected_version=1, actor=STAFF)
    [event] = events_of(order.id, "order_modified")
    assert [m.channel for m in db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.event_id == event.id))] == ["email"]
    # switched on (the sandbox's credentials; nothing is called when writing)
    app.config["WHATSAPP_SANDBOX_SERVER"] = True
    whatsapp_config.use_sandbox()
    whatsapp_config.activate()
    db.session.commit()
    modify_order(order.id, keep(fresh(order.id), discount_cents=200), expected_version=2,
                 actor=STAFF)
    event = events_of(order.id, "order_modified")[-1]
    rows = db.session.scalars(select(OutboxMessage).where(OutboxMessage.event_id == event.id)
                              .order_by(OutboxMessage.channel)).all()
    assert [(m.channel, m.kind, m.recipient) for m in rows] == [
        ("email", "order_updated", "tai.man@example.hk"),
        ("whatsapp", "order_updated", "+85291234567")]
