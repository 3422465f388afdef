"""The customer's language on the store pages (issue 8): the browser's first guess,
the switcher that overrides it (kept in the session), the order that keeps the
language it was placed in, money and deadlines through Babel, and domain refusals
in the reader's language. Hostile switches change nothing."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from sqlalchemy import select, update

from domain.db import db
from domain.models import Order, PaymentMethod, ShippingMethod, Variant

pytest_plugins = ["jobs_fixtures"]

ZH = {"Accept-Language": "zh-HK,zh;q=0.9,en;q=0.5"}
EN = {"Accept-Language": "en-GB,en;q=0.9"}


def shop_client(app, headers=None):
    """A fresh anonymous browser holding the shop's CSRF token (sent with every POST)."""
    from conftest import Client

    client = Client(app)
    page = client.get("/shop/", headers=headers or {})
    client._token = client.token_from(page.get_data(as_text=True))
    return client


def text(response) -> str:
    return response.get_data(as_text=True)


def method_id(model, **where) -> int:
    return db.session.scalar(select(model.id).filter_by(**where).limit(1))


def checkout(client, headers, **fields):
    data = {"name": "陳大文", "phone": "9123 4567", "email": "", "address": "旺角彌敦道 1 號",
            "shipping_method": method_id(ShippingMethod, kind="delivery"),
            "payment_method": method_id(PaymentMethod, code="fps"), "card_number": ""}
    data.update(fields)
    return client.post("/shop/checkout", data, headers=headers)


def latest_order() -> Order:
    db.session.rollback()
    return db.session.scalar(select(Order).order_by(Order.id.desc()).limit(1))


@pytest.fixture
def deadline_days(app):
    """Unpaid orders get a payment deadline (two days)."""
    from domain.store import get_settings

    get_settings().payment_deadline_days = 2
    db.session.commit()


def same_spaces(value: str) -> str:
    """Babel and the translation use no-break spaces (U+00A0, U+202F) so a date never
    parts from its time at a line end; compare them as plain spaces."""
    return re.sub(r"\s", " ", value)


def choose(client, locale, next_url="/shop/", **kw):
    return client.post("/language", {"locale": locale, "next": next_url}, **kw)


# ------------------------------------------------------------------ who reads which language


def test_accept_language_zh_hk_gives_chinese_store_pages(app, make_variant):
    make_variant(name="曲奇禮盒", variant="抹茶", stock=3)
    client = shop_client(app, ZH)
    index = text(client.get("/shop/", headers=ZH))
    assert "加入購物車" in index and "只剩 3 件" in index and "Add to cart" not in index
    cart = text(client.get("/shop/cart", headers=ZH))
    assert "你的購物車" in cart and "Your cart" not in cart
    # the same pages in English for an English browser
    english = text(shop_client(app, EN).get("/shop/", headers=EN))
    assert "Add to cart" in english and "Only 3 left" in english and "加入購物車" not in english


def test_the_switcher_is_a_plain_form_on_every_store_page(app, make_order):
    client = shop_client(app, ZH)
    order = make_order(locale="zh_Hant_HK")
    for url in ["/shop/", "/shop/cart", f"/shop/o/{order.public_token}"]:
        html = text(client.get(url, headers=ZH))
        form = re.search(r'<form class="lang-switch" method="post" action="/language".*?</form>',
                         html, re.S)
        assert form, url
        form = form.group(0)
        assert 'name="csrf_token"' in form and f'name="next" value="{url}"' in form
        assert 'name="locale" value="en"' in form and 'name="locale" value="zh_Hant_HK"' in form
        # the language being read is marked, each name is in its own language
        assert re.search(r'value="zh_Hant_HK" lang="zh-Hant-HK"\s+aria-current="true">繁體中文',
                         form)
        assert "<script" not in form and "onclick" not in form


def test_the_switcher_sets_the_session_and_wins_over_accept_language(app, make_variant):
    make_variant(stock=5)
    client = shop_client(app, ZH)
    assert "加入購物車" in text(client.get("/shop/", headers=ZH))
    response = choose(client, "en", "/shop/cart?x=1", headers=ZH)
    assert response.status_code == 302 and response.headers["Location"] == "/shop/cart?x=1"
    with client.http.session_transaction() as session:
        assert session["shop_locale"] == "en"
    # the browser still asks for Chinese: the customer's choice wins
    page = text(client.get("/shop/", headers=ZH))
    assert "Add to cart" in page and "加入購物車" not in page
    assert re.search(r'value="en" lang="en"\s+aria-current="true">English', page)
    # and back again
    choose(client, "zh_Hant_HK", headers=EN)
    assert "加入購物車" in text(client.get("/shop/", headers=EN))


def test_a_switch_never_redirects_off_the_site(app):
    client = shop_client(app, ZH)
    for target in ["https://evil.example/", "//evil.example/x", "javascript:alert(1)", ""]:
        response = choose(client, "en", target)
        assert response.status_code == 302 and response.headers["Location"] == "/shop/", target


@pytest.mark.parametrize("locale", ["fr", "xx_YY", "", "<script>", "ja-JP", "x" * 300])
def test_an_invalid_locale_is_refused_and_changes_nothing(app, make_variant, locale):
    make_variant(stock=5)
    client = shop_client(app, ZH)
    choose(client, "zh_Hant_HK")
    response = choose(client, locale, headers=EN)
    assert response.status_code == 400
    with client.http.session_transaction() as session:
        assert session["shop_locale"] == "zh_Hant_HK"
    assert "加入購物車" in text(client.get("/shop/", headers=EN))


def test_a_switch_without_csrf_is_refused_and_changes_nothing(app, make_variant):
    make_variant(stock=5)
    client = shop_client(app, ZH)
    response = choose(client, "en", csrf=False, headers=ZH)
    assert response.status_code == 400
    with client.http.session_transaction() as session:
        assert "shop_locale" not in session
    assert "加入購物車" in text(client.get("/shop/", headers=ZH))
    # a token from another session is no better
    other = shop_client(app, ZH)
    response = client.post("/language", {"locale": "en", "next": "/shop/",
                                         "csrf_token": other._token}, csrf=False, headers=ZH)
    assert response.status_code == 400
    assert "加入購物車" in text(client.get("/shop/", headers=ZH))


# ------------------------------------------------------------------ the order keeps its language


def test_an_order_placed_in_chinese_reads_in_chinese_for_an_english_browser(
        app, make_variant, redis_conn, deadline_days):
    variant = make_variant(stock=5)
    client = shop_client(app, ZH)
    client.post("/shop/cart/add", {"variant_id": variant.id, "quantity": 1}, headers=ZH)
    response = checkout(client, ZH)
    assert response.status_code == 302
    order = latest_order()
    assert order.locale == "zh_Hant_HK"
    # the thank-you flash is in the order's language on the order page
    first = text(client.get(response.headers["Location"], headers=ZH))
    assert "你已成功落單" in first and "付款方法" in first
    # later, from another browser that prefers English and never chose a language
    stranger = shop_client(app, EN)
    html = text(stranger.get(f"/shop/o/{order.public_token}", headers=EN))
    assert f"訂單 {order.number}" in html and "請於" in html and "上載付款證明" in html
    assert "Please pay by" not in html and "Upload proof" not in html
    # a customer who chose English in the store reads English
    stranger_en = shop_client(app, EN)
    choose(stranger_en, "en")
    html = text(stranger_en.get(f"/shop/o/{order.public_token}", headers=ZH))
    assert "Please pay by" in html and "請於" not in html


def test_an_order_placed_in_english_reads_in_english_for_a_chinese_browser(
        app, make_variant, redis_conn, deadline_days):
    variant = make_variant(stock=5)
    client = shop_client(app, EN)
    client.post("/shop/cart/add", {"variant_id": variant.id, "quantity": 1}, headers=EN)
    assert checkout(client, EN).status_code == 302
    order = latest_order()
    assert order.locale == "en"
    html = text(shop_client(app, ZH).get(f"/shop/o/{order.public_token}", headers=ZH))
    assert "Please pay by" in html and "請於" not in html


def test_a_refusal_on_the_order_page_reads_in_the_orders_language(app, make_order):
    from io import BytesIO

    order = make_order()
    db.session.execute(update(Order).where(Order.id == order.id).values(locale="zh_Hant_HK"))
    db.session.commit()
    client = shop_client(app, EN)
    response = client.post(f"/shop/o/{order.public_token}/proof",
                           {"proof": (BytesIO(b"not an image at all"), "x.png")},
                           headers=EN, content_type="multipart/form-data")
    html = text(response)
    assert response.status_code == 422
    assert "不接受這種檔案類型" in html and "not accepted" not in html


# ------------------------------------------------------------------ formatting


def test_money_reads_hk_dollars_in_both_languages(app, make_variant):
    make_variant(price_cents=123450, stock=5)
    for headers in (ZH, EN):
        assert "HK$1,234.50" in text(shop_client(app, headers).get("/shop/", headers=headers))


def test_the_payment_deadline_names_the_time_zone_in_both_languages(app, make_order):
    order = make_order()
    # 2026-11-30 15:59 UTC is 23:59 in Hong Kong
    db.session.execute(update(Order).where(Order.id == order.id).values(
        payment_deadline_at=datetime(2026, 11, 30, 15, 59), locale=None))
    db.session.commit()
    url = f"/shop/o/{order.public_token}"
    zh = shop_client(app, ZH)
    choose(zh, "zh_Hant_HK")
    deadline = re.search(r'data-testid="deadline">([^<]+)<', text(zh.get(url))).group(1)
    assert same_spaces(deadline) == "2026-11-30 23:59 HKT"
    en = shop_client(app, EN)
    choose(en, "en")
    deadline = re.search(r'data-testid="deadline">([^<]+)<', text(en.get(url))).group(1)
    assert same_spaces(deadline) == "2026-11-30 23:59 HKT"


# ------------------------------------------------------------------ refusals


def test_insufficient_stock_reads_in_chinese_on_the_cart_page(app, make_variant, redis_conn):
    variant = make_variant(name="曲奇禮盒", variant="抹茶", stock=3)
    client = shop_client(app, ZH)
    client.post("/shop/cart/add", {"variant_id": variant.id, "quantity": 3}, headers=ZH)
    # someone else bought two meanwhile
    db.session.execute(update(Variant).where(Variant.id == variant.id).values(stock=1))
    db.session.commit()
    response = checkout(client, ZH)
    html = text(response)
    assert response.status_code == 422
    assert "曲奇禮盒 (抹茶) 庫存不足：只剩 1 件，你要求 3 件。" in html
    assert "Not enough stock" not in html
    assert latest_order() is None  # nothing was placed
    # changing the quantity past the stock is refused in Chinese too (a flash on the cart)
    response = client.post("/shop/cart/set", {"variant_id": variant.id, "quantity": 2}, headers=ZH)
    assert response.status_code == 302
    cart = text(client.get("/shop/cart", headers=ZH))
    assert "庫存不足：只剩 1 件，你要求 2 件。" in cart
