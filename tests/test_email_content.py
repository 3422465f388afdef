"""What customers and the merchant read (issue 9, SPEC §2): the email of each
message kind, rendered at send time from the order as it is then, in the
order's language, as HTML plus plain text.

Real domain actions write the outbox rows; the rows are rendered by the real
renderer, turned into MIME by the real transport and parsed back with the
``email`` package; links are followed with the real app.
"""

from __future__ import annotations

import email
import re
from datetime import timedelta
from email import policy
from io import BytesIO
from urllib.parse import urlsplit

import pytest
from flask_babel import force_locale, gettext
from PIL import Image
from sqlalchemy import select

from blueprints.i18n import deadline as deadline_text
from domain import orders, proofs
from domain.actors import Actor
from domain.db import db
from domain.deadlines import remind_if_due
from domain.models import Order, OutboxMessage, StoreSettings, User
from domain.notify import delivery
from domain.notify.email import display_width, message_locale, render_email, sender_for
from domain.notify.resend import resend_email
from domain.notify.transport import MailSettings, build_mime
from domain.store import set_store_logo

LOCALES = ["en", "zh_Hant_HK"]
PUBLIC = "https://shop.cookielab.hk"
HOSTILE = "<script>alert(1)</script>"

# The words each locale must show (real translations, not message ids).
WORDS = {
    "en": {
        "pending": "Pending payment", "confirming": "Payment pending confirmation",
        "processing": "Processing", "completed": "Completed", "canceled": "Canceled",
        "instructions": "Cookie Lab Ltd",  # FPS account name (tests/conftest.py)
        "subtotal": "Subtotal", "discount": "Discount", "shipping": "Shipping (Local delivery)",
        "extra": "Extra charge", "total": "Total", "shipped": "Shipped",
        "placed_subject": "{n} Order received — Cookie Lab",
        "confirmed_subject": "{n} Payment confirmed — Cookie Lab",
        "declined_subject": "{n} Payment proof not accepted — Cookie Lab",
        "shipped_subject": "{n} Shipped — Cookie Lab",
        "ready_subject": "{n} Ready for pickup — Cookie Lab",
        "picked_subject": "{n} Picked up — Cookie Lab",
        "rejected_subject": "{n} Order canceled — Cookie Lab",
        "expired_subject": "{n} Canceled: payment deadline passed — Cookie Lab",
        "reminder_subject": "{n} Payment reminder — Cookie Lab",
        "due_subject": "{n} Awaiting your payment — Cookie Lab",
        "received_subject": "{n} Payment proof received — Cookie Lab",
        "processing_subject": "{n} Being prepared — Cookie Lab",
        "expired_sentence": "The payment deadline passed before the shop received your payment.",
        "upload_button": "Upload payment proof", "view_button": "View your order",
        "tracking": "Tracking code",
    },
    "zh_Hant_HK": {
        "pending": "待付款", "confirming": "付款待確認", "processing": "處理中",
        "completed": "已完成", "canceled": "已取消",
        "instructions": "Cookie Lab Ltd",
        "subtotal": "小計", "discount": "折扣", "shipping": "運費（本地送貨）",
        "extra": "附加費用", "total": "總計", "shipped": "已發貨",
        "placed_subject": "{n} 已收到訂單 — Cookie Lab",
        "confirmed_subject": "{n} 已確認付款 — Cookie Lab",
        "declined_subject": "{n} 付款證明未獲接納 — Cookie Lab",
        "shipped_subject": "{n} 已寄出 — Cookie Lab",
        "ready_subject": "{n} 可以取貨 — Cookie Lab",
        "picked_subject": "{n} 已取貨 — Cookie Lab",
        "rejected_subject": "{n} 訂單已取消 — Cookie Lab",
        "expired_subject": "{n} 已取消：已過付款期限 — Cookie Lab",
        "reminder_subject": "{n} 付款提醒 — Cookie Lab",
        "due_subject": "{n} 等待付款 — Cookie Lab",
        "received_subject": "{n} 已收到付款證明 — Cookie Lab",
        "processing_subject": "{n} 準備中 — Cookie Lab",
        "expired_sentence": "商店在付款期限前未收到你的付款。",
        "upload_button": "上載付款證明", "view_button": "查看你的訂單",
        "tracking": "追蹤編號",
    },
}


# ------------------------------------------------------------------ set-up


@pytest.fixture
def store(app):
    app.config["PUBLIC_URL"] = PUBLIC
    settings = db.session.get(StoreSettings, 1)
    settings.name = "Cookie Lab"
    settings.email = "hello@cookielab.hk"
    settings.notification_email = "orders@cookielab.hk"
    settings.address = "旺角花園街 2 號\n地下 A 舖"
    settings.phone = "2345 6789"
    settings.payment_deadline_days = 3
    settings.reminder_lead_hours = 24
    settings.language = "en"
    db.session.commit()
    return settings


@pytest.fixture
def shop_order(store, make_order, make_variant):
    """An order with two lines, a discount and an extra charge, in a given language."""

    def make(locale="en", **overrides):
        box = make_variant(name="曲奇禮盒", variant="原味 12 件裝", price_cents=12800)
        tin = make_variant(name="Matcha butter tin", variant="", price_cents=9850)
        values = dict(items=[(box.id, 2), (tin.id, 1)], locale=locale, discount_cents=2000,
                      extra_charge_cents=500)
        values.update(overrides)
        return make_order(**values)

    return make


def latest(order_id: int, kind: str | None = None, audience: str = "customer") -> OutboxMessage:
    query = select(OutboxMessage).where(OutboxMessage.order_id == order_id,
                                        OutboxMessage.audience == audience)
    if kind:
        query = query.where(OutboxMessage.kind == kind)
    message = db.session.scalars(query.order_by(OutboxMessage.id.desc())).first()
    assert message is not None, f"no {audience} {kind} message for order {order_id}"
    return message


def parsed(message: OutboxMessage):
    """Render, build the real MIME message, and read it back as a mail client would."""
    rendered = render_email(message)
    sender, name, reply_to = sender_for(MailSettings())
    raw = build_mime(message, rendered, sender=sender, sender_name=name,
                     reply_to=reply_to).as_bytes()
    mime = email.message_from_bytes(raw, policy=policy.default)
    text = mime.get_body(("plain",)).get_content()
    html = mime.get_body(("html",)).get_content()
    return mime, rendered, text, html


def link_in(text: str, prefix: str) -> str:
    match = re.search(re.escape(prefix) + r"[^\s\"<>]*", text)
    assert match, f"no link starting {prefix} in:\n{text}"
    return match.group(0)


def order_url(order: Order) -> str:
    return f"{PUBLIC}/shop/o/{order.public_token}"


def png(colour="#c2410c", size=(300, 120)) -> BytesIO:
    out = BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    out.seek(0)
    return out


def hkd(cents: int) -> str:
    return f"HK${cents / 100:,.2f}"


def assert_items_and_totals(text: str, html: str, order: Order, locale: str) -> None:
    """Every line (name, variant, unit price × quantity, line total) and every total."""
    with force_locale(locale):
        shipping = gettext("Shipping (%(method)s)", method=gettext(order.shipping_method_name))
        labels = [gettext("Subtotal"), gettext("Total"), shipping]
        if order.discount_cents:
            labels.append(gettext("Discount"))
        if order.extra_charge_cents:
            labels.append(gettext("Extra charge"))
    for body in (text, html):
        for line in order.lines:
            assert line.product_name in body and line.variant_name in body
            assert f"{hkd(line.unit_price_cents)} × {line.quantity}" in body
            assert hkd(line.line_total_cents) in body
        for cents in (order.subtotal_cents, order.shipping_fee_cents, order.total_cents):
            assert hkd(cents) in body
        if order.discount_cents:
            assert f"−{hkd(order.discount_cents)}" in body
        if order.extra_charge_cents:
            assert hkd(order.extra_charge_cents) in body
        for label in labels:
            assert label in body, label


def check(message: OutboxMessage, locale: str, subject_key: str | None = None):
    """What every customer email must say about its order, as the order is now:
    number, items, totals, status in words, how to pay and the deadline only while
    payment is due, the tracking code only once shipped, the secret link."""
    mime, rendered, text, html = parsed(message)
    order = db.session.get(Order, message.order_id)
    words = WORDS[locale]
    if subject_key:
        assert mime["Subject"] == words[subject_key].format(n=order.number)
    assert_items_and_totals(text, html, order, locale)
    status = {"pending_payment": "pending", "pending_confirmation": "confirming",
              "processing": "processing", "completed": "completed",
              "canceled": "canceled"}[order.status]
    with force_locale(locale):
        due = deadline_text(order.payment_deadline_at) if order.payment_deadline_at else None
    shipped = order.delivery_status == "shipped"
    for body in (text, html):
        assert order.number in body and words[status] in body
        assert order_url(order) in body
        if order.status == "pending_payment":
            assert words["instructions"] in body and words["upload_button"] in body
            assert due and due in body
        else:
            assert words["instructions"] not in body and words["upload_button"] not in body
            assert due is None or due not in body
        if order.tracking_code:
            assert (order.tracking_code in body) == shipped
    return mime, text, html


# ------------------------------------------------------------------ customer: placed


@pytest.mark.parametrize("locale", LOCALES)
def test_order_placed_email_has_everything_needed_to_pay(locale, shop_order, client):
    order = shop_order(locale)
    mime, text, html = check(latest(order.id, "order_placed"), locale, "placed_subject")
    assert mime["To"] == "tai.man@example.hk"
    if locale == "zh_Hant_HK":
        assert "Pay by FPS" not in text and "Thank you" not in text
        assert "HKT" in text and "多謝你的訂單" in html
    else:
        assert "HKT" in text and "Thank you for your order" in html
    # The link is the customer's secret page of this very order, where they can upload.
    page = client.get(urlsplit(link_in(text, f"{PUBLIC}/shop/o/")).path)
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert order.number in body and 'name="proof"' in body


def test_order_placed_paid_online_has_no_payment_instructions(store, make_order):
    order = make_order(payment="credit_card", locale="en")
    _mime, text, html = check(latest(order.id, "order_placed"), "en", "placed_subject")
    for body in (text, html):
        assert "Credit Card" in body and "View your order" in body
        assert "How to pay" not in body and "Please pay by" not in body


# ------------------------------------------------------------------ customer: each change


@pytest.mark.parametrize("locale", LOCALES)
def test_payment_confirmed_then_shipped_shows_tracking_only_once_shipped(
        locale, shop_order, owner):
    words = WORDS[locale]
    actor = Actor.staff(owner)
    order = shop_order(locale)
    orders.confirm_payment(order.id, actor=actor)
    orders.set_tracking_code(order.id, "SF1234567890", actor=actor)

    confirmed = latest(order.id, "payment_confirmed")
    _m, text, html = check(confirmed, locale, "confirmed_subject")
    assert "SF1234567890" not in text + html  # set, but not shipped yet

    orders.ship_order(order.id, actor=actor)
    _m, text, html = check(latest(order.id, "order_shipped"), locale, "shipped_subject")
    for body in (text, html):
        assert "SF1234567890" in body and words["tracking"] in body
        assert words["shipped"] in body
    # Sent late, the confirmation reads the order as it is then: shipped, with its code.
    _m, text, html = check(confirmed, locale, "confirmed_subject")
    assert "SF1234567890" in text and words["completed"] in html


@pytest.mark.parametrize("locale", LOCALES)
def test_declined_proof_gives_the_reason_and_asks_again(locale, shop_order, owner, client):
    order = shop_order(locale)
    proofs.submit_proof(order.id, png(), actor=Actor.customer("陳大文"))
    reason = "Amount <b>does not match</b> 金額不符"
    orders.decline_proof(order.id, reason, actor=Actor.staff(owner))

    _m, text, html = check(latest(order.id, "proof_declined"), locale, "declined_subject")
    assert reason in text
    assert "Amount &lt;b&gt;does not match&lt;/b&gt; 金額不符" in html and "<b>does" not in html
    page = client.get(urlsplit(link_in(text, f"{PUBLIC}/shop/o/")).path)
    assert page.status_code == 200 and 'name="proof"' in page.get_data(as_text=True)

    # A reminder after the decline repeats why.
    remind_if_due(order.id, now=db.session.get(Order, order.id).reminder_at)
    _m, text, html = check(latest(order.id, "payment_reminder"), locale, "reminder_subject")
    assert reason in text


@pytest.mark.parametrize("locale", LOCALES)
def test_pickup_ready_then_picked_up(locale, shop_order, owner):
    actor = Actor.staff(owner)
    order = shop_order(locale, shipping="pickup", address="")
    orders.confirm_payment(order.id, actor=actor)
    orders.mark_ready_for_pickup(order.id, actor=actor)

    _m, text, html = check(latest(order.id, "ready_for_pickup"), locale, "ready_subject")
    for body in (text, html):
        assert "旺角花園街 2 號" in body and "2345 6789" in body  # where to go

    orders.complete_pickup(order.id, actor=actor)
    check(latest(order.id, "pickup_completed"), locale, "picked_subject")


@pytest.mark.parametrize("locale", LOCALES)
def test_rejected_order_shows_the_reason_escaped(locale, shop_order, owner):
    order = shop_order(locale)
    reason = f"Sold out {HOSTILE} 已售罄"
    orders.reject_order(order.id, reason, actor=Actor.staff(owner))

    _m, text, html = check(latest(order.id, "order_rejected"), locale, "rejected_subject")
    assert reason in text
    assert "Sold out &lt;script&gt;alert(1)&lt;/script&gt; 已售罄" in html
    assert "<script" not in html.lower()


@pytest.mark.parametrize("locale", LOCALES)
def test_expired_order_says_why_in_a_fixed_sentence(locale, shop_order):
    words = WORDS[locale]
    order = shop_order(locale)
    orders.expire_order(order.id, now=order.payment_deadline_at + timedelta(minutes=1))

    _m, text, html = check(latest(order.id, "order_expired"), locale, "expired_subject")
    for body in (text, html):
        assert words["expired_sentence"] in body
    if locale == "zh_Hant_HK":
        assert "Payment deadline passed" not in text + html


@pytest.mark.parametrize("locale", LOCALES)
def test_payment_reminder_while_due_and_after_payment(locale, shop_order, owner):
    order = shop_order(locale)
    assert remind_if_due(order.id, now=order.reminder_at)
    reminder = latest(order.id, "payment_reminder")
    check(reminder, locale, "reminder_subject")

    # Paid before the reminder left: it must not ask for money the shop already has.
    orders.confirm_payment(order.id, actor=Actor.staff(owner))
    check(reminder, locale, "processing_subject")


@pytest.mark.parametrize("locale", LOCALES)
def test_resend_sends_the_email_for_the_current_status(locale, shop_order, owner):
    actor = Actor.staff(owner)
    order = shop_order(locale)

    resend_email(order.id, actor=actor)
    message = latest(order.id)
    assert message.kind == "payment_due" and message.params == {"resend": 1}
    check(message, locale, "due_subject")

    proofs.submit_proof(order.id, png(), actor=Actor.customer("陳大文"))
    resend_email(order.id, actor=actor)
    check(latest(order.id), locale, "received_subject")

    orders.confirm_payment(order.id, actor=actor)
    resend_email(order.id, actor=actor)
    _m, text, html = check(latest(order.id), locale, "processing_subject")
    with force_locale(locale):
        note = gettext("The shop sent this email again; it shows your order as it is now.")
    assert note in text and note in html


# ------------------------------------------------------------------ the merchant


def test_new_order_email_to_the_store_links_to_the_desk(shop_order, owner_client):
    order = shop_order("zh_Hant_HK", name=HOSTILE)  # the customer reads Chinese ...
    message = latest(order.id, "new_order", audience="merchant")
    assert message.recipient == "orders@cookielab.hk"
    mime, _r, text, html = parsed(message)

    # ... the store reads its own language.
    assert mime["Subject"] == f"New order {order.number}: {HOSTILE}, HK$369.50 — Cookie Lab"
    assert "Someone placed an order at your store" in text
    assert_items_and_totals(text, html, db.session.get(Order, order.id), "en")
    for body in (text, html):
        assert "FPS" in body and "Pending payment" in body and "tai.man@example.hk" in body
        assert f"{PUBLIC}/orders/{order.number}" in body
    assert HOSTILE in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script" not in html.lower()
    page = owner_client.get(urlsplit(link_in(text, f"{PUBLIC}/orders/")).path)
    assert page.status_code == 200 and order.number in page.get_data(as_text=True)


def test_merchant_email_in_the_stores_language(store, shop_order):
    store.language = "zh_Hant_HK"
    db.session.commit()
    order = shop_order("en")
    _mime, _r, text, _html = parsed(latest(order.id, "new_order", audience="merchant"))
    assert "有人在你的商店落了訂單" in text
    _mime, _r, text, _html = parsed(latest(order.id, "order_placed"))
    assert "Thank you for your order" in text  # the customer still reads English


def test_proof_uploaded_email_links_to_the_order_and_the_queue(shop_order, owner_client, owner):
    order = shop_order("en")
    other = shop_order("en")
    proofs.submit_proof(other.id, png(), actor=Actor.customer("陳大文"))
    proofs.submit_proof(order.id, png(), actor=Actor.customer("陳大文"))  # the same picture
    message = latest(order.id, "proof_uploaded", audience="merchant")
    mime, _r, text, html = parsed(message)
    assert mime["Subject"] == f"{order.number} Payment proof to check — Cookie Lab"
    for body in (text, html):
        assert "Payment pending confirmation" in body
        assert f"{PUBLIC}/orders/{order.number}" in body and f"{PUBLIC}/review/" in body
        assert other.number in body  # the same file on another order: worth a look
    page = owner_client.get(urlsplit(link_in(text, f"{PUBLIC}/review/")).path)
    assert page.status_code == 200 and order.number in page.get_data(as_text=True)

    orders.confirm_payment(order.id, actor=Actor.staff(owner))
    _m, _r, text, _html = parsed(message)  # sent late: already handled, says so
    assert "already been handled" in text and "Processing" in text


def test_what_customers_typed_is_escaped_in_html(shop_order, make_variant):
    evil = make_variant(name=f"Cookie {HOSTILE}", variant='"><img src=x>', price_cents=100)
    order = shop_order("en", name=HOSTILE, address=f"Flat 1\n{HOSTILE}",
                       items=[(evil.id, 1)], discount_cents=0, extra_charge_cents=0)
    for message in (latest(order.id, "order_placed"),
                    latest(order.id, "new_order", audience="merchant")):
        _mime, rendered, text, html = parsed(message)
        assert "<script" not in html.lower() and "<img src=x" not in html
        assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3  # name, address, item
        assert "&#34;&gt;&lt;img src=x&gt;" in html or "&quot;&gt;&lt;img src=x&gt;" in html
        assert HOSTILE in text  # plain text is plain: shown as typed


# ------------------------------------------------------------------ language, links, MIME


def test_language_of_each_reader(store, shop_order, app):
    order = shop_order(None)  # an order without a language: the store's
    message = latest(order.id, "order_placed")
    assert message_locale(message, db.session.get(Order, order.id)) == "en"
    store.language = "zh_Hant_HK"
    db.session.commit()
    _mime, _r, text, _html = parsed(message)
    assert "多謝你的訂單" in text

    user = User(email="amy@cookielab.hk", name="Amy", password_hash="x", role="staff",
                locale="en")
    db.session.add(user)
    db.session.commit()
    staff_message = OutboxMessage(event_key="export:1", recipient=user.email, audience="staff",
                                  kind="export_ready", user_id=user.id)
    assert message_locale(staff_message) == "en"
    user.locale = None
    assert message_locale(staff_message) == "zh_Hant_HK"


def test_chinese_survives_mime_both_parts(shop_order):
    order = shop_order("zh_Hant_HK", name="陳大文", address="九龍旺角彌敦道 1 號 3 樓")
    message = latest(order.id, "order_placed")
    mime, rendered, text, html = parsed(message)
    assert mime["Subject"] == f"{order.number} 已收到訂單 — Cookie Lab"
    assert mime.get_body(("plain",)).get_content_charset() == "utf-8"
    for body in (text, html):
        assert "陳大文" in body and "九龍旺角彌敦道 1 號 3 樓" in body and "曲奇禮盒" in body
        assert "方便商店核對你的付款" in body and "轉數快識別碼" in body
    assert text == rendered.text and html.strip() == rendered.html.strip()
    assert '<html lang="zh-Hant-HK"' in html


def test_plain_text_is_wrapped_and_writes_the_link_out(shop_order):
    for locale in LOCALES:
        order = shop_order(locale)
        _m, _r, text, _html = parsed(latest(order.id, "order_placed"))
        assert f"\n{order_url(order)}\n" in text  # on a line of its own, whole
        for line in text.splitlines():
            assert display_width(line) <= 72 or line.startswith("http"), line
        assert "<" not in text.replace(HOSTILE, "")  # no HTML in the text part


def test_logo_is_an_inline_part_referenced_by_cid(shop_order):
    order = shop_order("en")
    mime, rendered, _text, html = parsed(latest(order.id, "order_placed"))
    assert not rendered.inline_images and "cid:" not in html
    assert not [p for p in mime.walk() if p.get_content_maintype() == "image"]
    assert "Cookie Lab" in html  # the name stands in for the missing logo

    set_store_logo(png(size=(800, 200)))
    mime, rendered, _text, html = parsed(latest(order.id, "order_placed"))
    images = [p for p in mime.walk() if p.get_content_maintype() == "image"]
    assert len(images) == 1 and images[0].get_content_type() == "image/png"
    cid = images[0]["Content-ID"].strip("<>")
    assert f'src="cid:{cid}"' in html and 'alt="Cookie Lab"' in html
    shown = Image.open(BytesIO(images[0].get_content()))
    assert shown.size[0] <= 440  # reduced for the header (twice the shown size), not 800
    assert "http" not in re.search(r'<img[^>]+>', html).group(0)  # nothing fetched remotely


def test_sender_and_reply_to(app, store):
    assert sender_for(MailSettings(sender="mailer@send.cookielab.hk")) == (
        "mailer@send.cookielab.hk", "Cookie Lab", "hello@cookielab.hk")
    assert sender_for(MailSettings()) == ("hello@cookielab.hk", "Cookie Lab", "")
    store.email = ""
    db.session.commit()
    assert sender_for(MailSettings()) == ("no-reply@shop.cookielab.hk", "Cookie Lab", "")
    app.config["PUBLIC_URL"] = "http://127.0.0.1:5000"
    assert sender_for(MailSettings())[0] == "shopdesk@localhost"


def test_delivered_copy_is_the_rendered_email(app, shop_order, tmp_path):
    """Through the real delivery (no SMTP: the .eml copy is the delivery)."""
    order = shop_order("zh_Hant_HK")
    counts = delivery.deliver_due(MailSettings(), tmp_path / "mail")
    assert counts["sent"] == 2 and counts["failed"] == 0
    message = latest(order.id, "order_placed")
    db.session.refresh(message)
    assert message.status == "sent" and message.subject == f"{order.number} 已收到訂單 — Cookie Lab"
    mime = email.message_from_bytes((tmp_path / "mail" / f"{message.id}.eml").read_bytes(),
                                    policy=policy.default)
    assert mime["Subject"] == message.subject and mime["Reply-To"] is None
    assert order_url(order) in mime.get_body(("plain",)).get_content()
    assert "多謝你的訂單" in mime.get_body(("html",)).get_content()


def test_export_ready_goes_to_its_own_renderer(app, monkeypatch):
    import domain.notify.export_mail as export_mail
    from domain.notify.transport import RenderedEmail

    seen = []
    monkeypatch.setattr(export_mail, "render_export_email",
                        lambda message: seen.append(message) or RenderedEmail("s", "t", "<p>h</p>"))
    message = OutboxMessage(event_key="export:9", recipient="amy@cookielab.hk",
                            audience="staff", kind="export_ready")
    assert render_email(message).subject == "s" and seen == [message]


def test_a_prefetched_batch_renders_without_queries(shop_order, owner):
    """delivery.py loads a batch's orders and lines, plus what email.prefetch names;
    rendering then reads nothing more (a decline's reason comes from its prefetched
    event). Left out: the store's proof email (is this file on another order too?)
    and older emails of a declined order (one query finds the latest reason)."""
    from sqlalchemy import event
    from sqlalchemy.orm import selectinload

    from domain.notify import email as email_content

    first, second, third = shop_order("en"), shop_order("zh_Hant_HK"), shop_order("en")
    orders.confirm_payment(second.id, actor=Actor.staff(owner))
    proofs.submit_proof(third.id, png(), actor=Actor.customer("陳大文"))
    orders.decline_proof(third.id, "Blurry", actor=Actor.staff(owner))
    number, third_id = first.number, third.id
    db.session.expunge_all()
    messages = [m for m in db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
                if m.order_id != third_id or m.kind == "proof_declined"]
    assert {m.kind for m in messages} == {"new_order", "order_placed", "payment_confirmed",
                                          "proof_declined"}
    loaded = [db.session.get(StoreSettings, 1), *messages, *email_content.prefetch(messages),
              *db.session.scalars(select(Order).options(selectinload(Order.lines)))]
    statements = []
    engine = db.engine

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        rendered = [render_email(m) for m in messages]
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert statements == [] and loaded
    assert f"{number} Order received — Cookie Lab" in [r.subject for r in rendered]
    assert any("Blurry" in r.text for r in rendered)
