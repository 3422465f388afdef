"""Every page of the desk and the store, rendered in Traditional Chinese, shows no
English sentence (issue 8). What may stay in Latin letters: names, codes and
values the merchant or customer typed (taken from the database), e-mail
addresses and links, and a short allow-list of brand and method names."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy import String, select

from domain.db import db
from domain.models import Order
from domain.orders import confirm_payment, reject_order, ship_order
from domain.store import get_settings

pytest_plugins = ["jobs_fixtures"]

# Brand, method and format names a Hong Kong reader sees in Latin letters anyway.
ALLOWED = {"FPS", "PayMe", "Octopus", "Alipay", "Tap", "Go", "Shopdesk", "HK", "SKU",
           "PDF", "JPEG", "JPG", "PNG", "HEIC", "MB", "KB", "Excel", "xlsx", "CSV", "WhatsApp",
           "Email", "HKD", "OK", "Visa", "Mastercard", "English", "AM", "PM", "ID",
           "App", "Store", "Google", "Apple", "Pay",
           "API", "Ctrl",  # an order source read as a code; a key name on the keyboard
           "SMTP",  # the mail protocol, named where the owner is told how to send mail
           "HKT", "WebP", "EAN", "UPC", "GTIN",
           # Meta's own product and screen names, as the merchant finds them in Meta's dashboard
           "Meta", "Business", "Cloud", "Webhook", "Callback", "URL"}  # the time zone's abbreviation; image and barcode formats
VISIBLE_ATTRS = ("placeholder", "title", "aria-label", "alt")
WORD = re.compile(r"[A-Za-z][A-Za-z'’]*")
EMAIL_OR_URL = re.compile(r"\S+@\S+|https?://\S+|/[\w/.-]+")
CODE = re.compile(r"\b(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]+\b")  # SD12001, T-0001, 4890000000001
ENV_VAR = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")  # SMTP_HOST: a setting's name, typed as is


class _Text(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        # Text marked lang="en" inside the page is English on purpose (the English wording
        # of a WhatsApp template the merchant registers with Meta, beside the Chinese one).
        # The page's own <html lang> is not such a mark: an English page is checked whole.
        self._english: list[str] = []

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        # ... and so is <code>: identifiers typed as they are (a template's name, its parameters).
        marked_english = tag != "html" and (values.get("lang") or "").lower().startswith("en")
        if self._english or tag == "code" or marked_english:
            self._english.append(tag)
        if tag in ("script", "style", "template"):
            self._skip += 1
        for name in VISIBLE_ATTRS:
            if values.get(name):
                self.parts.append(values[name])
        if tag == "input" and values.get("type") in ("submit", "button") and values.get("value"):
            self.parts.append(values["value"])
        if tag == "meta" and values.get("name") == "description":
            self.parts.append(values.get("content", ""))

    def handle_endtag(self, tag):
        if tag in ("script", "style", "template") and self._skip:
            self._skip -= 1
        if self._english and self._english[-1] == tag:
            self._english.pop()

    def handle_data(self, data):
        if not self._skip and not self._english:
            self.parts.append(data)


def _data_values() -> set[str]:
    """Every word the merchant or customers typed (names, methods, products, notes)."""
    words: set[str] = set()
    for table in db.metadata.sorted_tables:
        columns = [c for c in table.columns if isinstance(c.type, String) or
                   c.type.__class__.__name__ == "Text"]
        if not columns:
            continue
        for row in db.session.execute(select(*columns)).all():
            for value in row:
                if isinstance(value, str):
                    words.update(WORD.findall(value))
    return words


def _default_words() -> set[str]:
    """Words of the built-in method names and instructions: Shopdesk wrote them, so
    they are translated on display (a merchant's own renamed methods are data)."""
    from domain.store import BUILTIN_PAYMENT_METHODS, DEFAULT_SHIPPING_METHODS

    texts = [t for row in BUILTIN_PAYMENT_METHODS for t in (row[1], row[3])]
    texts += [row[0] for row in DEFAULT_SHIPPING_METHODS]
    return {w for t in texts for w in WORD.findall(t)} - ALLOWED


def english_left(html: str, allowed: set[str]) -> list[str]:
    parser = _Text()
    parser.feed(html)
    found = []
    for part in parser.parts:
        text = ENV_VAR.sub(" ", CODE.sub(" ", EMAIL_OR_URL.sub(" ", part)))
        for word in WORD.findall(text):
            if word not in allowed and len(word) > 1:
                found.append(word)
    return found


@pytest.fixture
def zh_store(app):
    settings = get_settings()
    settings.language = "zh_Hant_HK"
    db.session.commit()
    return settings


@pytest.fixture
def orders_in_every_status(app, zh_store, make_order, owner, redis_conn):
    from domain.actors import Actor

    staff = Actor.staff(owner) if hasattr(Actor, "staff") else owner
    pending = make_order(name="陳大文")
    processing = make_order(name="李小龍", payment="fps")
    confirm_payment(processing.id, actor=staff)
    completed = make_order(name="黃家駒")
    confirm_payment(completed.id, actor=staff)
    ship_order(completed.id, actor=staff, tracking_code="SF1234567890")
    canceled = make_order(name="張學友")
    reject_order(canceled.id, actor=staff, reason="客人取消")
    db.session.rollback()
    return [db.session.get(Order, o.id) for o in (pending, processing, completed, canceled)]


def _assert_chinese(response, allowed, where):
    assert response.status_code in (200, 403, 404, 422), (where, response.status_code)
    left = english_left(response.get_data(as_text=True), allowed)
    assert not left, f"English on {where}: {sorted(set(left))[:30]}"


DESK_PAGES = ["/orders", "/orders?list=unpaid", "/orders?status=pending_payment",
              "/orders?status=completed", "/orders?q=%E9%99%B3", "/review/", "/drafts/",
              "/drafts/new", "/account", "/settings/store", "/settings/payments",
              "/settings/shipping", "/settings/staff", "/settings/backups", "/settings/mail",
              "/settings/mail?status=failed", "/alerts/", "/orders/NOPE404",
              "/products/", "/products/?archived=1", "/products/?q=%E6%9B%B2", "/products/new",
              "/products/?low_stock=1", "/products/import", "/settings/whatsapp",
              "/settings/whatsapp/billing"]


def test_every_desk_page_reads_in_chinese(owner_client, orders_in_every_status):
    allowed = ALLOWED | (_data_values() - _default_words())
    pages = DESK_PAGES + [f"/orders/{o.number}" for o in orders_in_every_status]
    product_id = orders_in_every_status[0].lines[0].product_id  # with holds in its ledger
    pages += [f"/products/{product_id}", f"/products/{product_id}/edit"]
    # Their emails delivered (kept as copies), so the pages show messages and previews.
    from domain.models import OutboxMessage
    from domain.notify.delivery import deliver_due
    from domain.notify.transport import MailSettings

    deliver_due(MailSettings(), Path(owner_client.app.config["MAIL_FOLDER"]))
    message = db.session.query(OutboxMessage).filter(OutboxMessage.order_id.is_not(None)).first()
    number = db.session.get(Order, message.order_id).number
    pages += [f"/settings/mail/{message.id}", f"/orders/{number}/messages/{message.id}"]
    for url in pages:
        _assert_chinese(owner_client.get(url), allowed, url)
        if url.startswith("/orders") and "NOPE" not in url:
            _assert_chinese(owner_client.get(url, htmx=True), allowed, url + " (htmx)")


def test_every_store_page_reads_in_chinese(app, client, orders_in_every_status, make_variant):
    headers = {"Accept-Language": "zh-HK,zh;q=0.9,en;q=0.5"}
    make_variant(name="曲奇禮盒", variant="抹茶", stock=0)
    allowed = ALLOWED | (_data_values() - _default_words())
    for url in ["/shop/", "/shop/cart", "/login", "/shop/o/not-a-real-token"] + [
            f"/shop/o/{o.public_token}" for o in orders_in_every_status]:
        _assert_chinese(client.get(url, headers=headers), allowed, url)


def test_the_check_finds_english(app):
    assert english_left("<p>訂單 <b>Pending payment</b></p>", ALLOWED) == ["Pending", "payment"]
    assert english_left('<input placeholder="Search orders">', ALLOWED) == ["Search", "orders"]
    assert english_left("<p>SD12001 · owner@shop.test · 轉數快 FPS</p>", ALLOWED) == []

