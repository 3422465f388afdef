"""Sending a draft's checkout link by WhatsApp or email, in the customer's language."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, unquote, urlsplit

from sqlalchemy import update

from domain import drafts
from domain.actors import Actor
from domain.db import db
from domain.draft_link import send_links
from domain.models import Order, ShippingMethod
from domain.orders import CustomerDetails

STAFF = Actor("staff", 1, "Tester")


def make_draft(make_variant, *, name="李小姐", phone="6123 4567", email="li@example.hk",
               locale=None):
    variant = make_variant(price_cents=12800)
    ship = db.session.query(ShippingMethod).filter_by(kind="delivery").first()
    draft = drafts.create_draft(drafts.DraftInput(
        customer=CustomerDetails(name, phone, email, "沙田"), items=[(variant.id, 2)],
        shipping_method_id=ship.id, shipping_fee_cents=None, discount_cents=0), actor=STAFF)
    if locale:
        db.session.execute(update(Order).where(Order.id == draft.id).values(locale=locale))
        db.session.commit()
    db.session.expire_all()
    return db.session.get(Order, draft.id)


def test_links_carry_the_message_in_the_customers_language(app, make_variant):
    link = "https://shop.example/shop/d/abc"
    english = send_links(make_draft(make_variant, locale="en"), link)
    parts = urlsplit(english.whatsapp)
    assert parts.netloc == "wa.me" and parts.path == "/85261234567"
    text = parse_qs(parts.query)["text"][0]
    assert text == english.text and text.startswith("Hi 李小姐,") and text.endswith(link)
    assert "HK$" in text
    mail = urlsplit(english.email)
    assert mail.scheme == "mailto" and unquote(mail.path) == "li@example.hk"
    assert parse_qs(mail.query)["subject"] == ["Your order from My Shop"]
    assert parse_qs(mail.query)["body"][0] == text

    chinese = send_links(make_draft(make_variant, locale="zh_Hant_HK"), link)
    zh = parse_qs(urlsplit(chinese.whatsapp).query)["text"][0]
    assert zh.startswith("你好，李小姐！") and "請打開連結" in zh and zh.endswith(link)
    assert parse_qs(urlsplit(chinese.email).query)["subject"] == ["你在My Shop的訂單"]


def test_no_number_or_address_means_no_link(app, make_variant):
    no_phone = send_links(make_draft(make_variant, phone=""), "https://x/y")
    assert no_phone.whatsapp is None and no_phone.email and no_phone.text
    no_email = send_links(make_draft(make_variant, email=""), "https://x/y")
    assert no_email.email is None and no_email.whatsapp


def test_a_crafted_address_cannot_add_mail_headers(app, make_variant):
    draft = make_draft(make_variant)
    # The builder refuses such an address; data from before its checks must not work either.
    db.session.execute(update(Order).where(Order.id == draft.id)
                       .values(customer_email="a@b.hk?bcc=evil@x.com"))
    db.session.commit()
    db.session.expire_all()
    assert send_links(db.session.get(Order, draft.id), "https://x/y").email is None


def test_the_builder_offers_whatsapp_and_email(owner_client, make_variant):
    draft = make_draft(make_variant, name="<b>Amy</b>")
    body = owner_client.get(f"/drafts/{draft.id}").get_data(as_text=True)
    wa = re.search(r'<a class="btn" id="send-whatsapp" href="([^"]+)"', body)
    assert wa and html.unescape(wa.group(1)).startswith("https://wa.me/85261234567?text=")
    assert 'id="send-email" href="mailto:li@example.hk?subject=' in body
    assert "<b>Amy</b>" not in body
