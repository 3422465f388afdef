"""A checkout that explains itself (issue 13): how to pay and the deadline before
placing, the card field only for online methods, totals from the domain's quote
when the shipping changes, every time with its zone, and on the order page
"Email me this link" (the resend limit of 5) and "Add to WhatsApp"."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from domain.db import db
from domain.models import Order, OrderEvent, OutboxMessage, PaymentMethod, ShippingMethod, utcnow
from domain.orders import payment_deadline
from domain.store import get_settings

pytest_plugins = ["jobs_fixtures"]

ZH = {"Accept-Language": "zh-HK,zh;q=0.9"}
EN = {"Accept-Language": "en-GB,en;q=0.9"}


@pytest.fixture
def shopper(app):
    from conftest import Client

    client = Client(app)
    client._token = client.token_from(client.get("/shop/").get_data(as_text=True))
    return client


@pytest.fixture
def three_days(app):
    get_settings().payment_deadline_days = 3
    db.session.commit()


def mid(model, **where) -> int:
    return db.session.scalar(select(model.id).filter_by(**where).limit(1))


def text(response) -> str:
    return response.get_data(as_text=True)


def add(shopper, variant, quantity=1):
    response = shopper.post("/shop/cart/add", {"variant_id": variant.id, "quantity": quantity})
    assert response.status_code == 302


def panel(shopper, htmx=True, **args):
    query = "&".join(f"{k}={v}" for k, v in args.items())
    return shopper.get(f"/shop/cart/panel?{query}", htmx=htmx)


def outbox_count(order_id) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count(OutboxMessage.id))
                             .where(OutboxMessage.order_id == order_id))


# ------------------------------------------------------------------ the deadline filter


def test_deadline_reads_date_time_and_zone_abbreviation(app):
    from blueprints.i18n import deadline

    with app.test_request_context("/shop/"):
        assert deadline(datetime(2026, 11, 30, 15, 59)) == "2026-11-30 23:59 HKT"
        get_settings().timezone = "Europe/London"
        assert deadline(datetime(2026, 7, 1, 11, 0)) == "2026-07-01 12:00 BST"
        assert deadline(datetime(2026, 12, 1, 11, 0)) == "2026-12-01 11:00 GMT"
        get_settings().timezone = "Asia/Kolkata"
        assert deadline(datetime(2026, 12, 1, 0, 0)).endswith(" IST")
        get_settings().timezone = "Asia/Singapore"  # zoneinfo says "+08": shown as UTC+8
        assert deadline(datetime(2026, 12, 1, 0, 0)) == "2026-12-01 08:00 UTC+8"
        get_settings().timezone = "Asia/Kathmandu"
        assert deadline(datetime(2026, 12, 1, 0, 0)) == "2026-12-01 05:45 UTC+5:45"
        assert deadline(None) == ""
        db.session.rollback()


def test_order_page_times_carry_the_zone_in_both_languages(app, shopper, make_order):
    order = make_order()
    db.session.execute(update(Order).where(Order.id == order.id).values(
        payment_deadline_at=datetime(2026, 11, 30, 15, 59), locale="zh_Hant_HK"))
    db.session.commit()
    for headers in (ZH, EN):
        html = text(shopper.get(f"/shop/o/{order.public_token}", headers=headers))
        assert re.search(r'data-testid="deadline">2026-11-30 23:59 HKT<', html)
        assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d HKT", html.split('class="muted"')[1])


# ------------------------------------------------------------------ before placing


def test_cart_explains_the_chosen_method_before_placing(shopper, make_variant, three_days):
    add(shopper, make_variant(price_cents=12800))
    first = text(shopper.get("/shop/cart"))
    assert 'data-testid="choose-pay"' in first and "pay-before" not in first
    assert 'name="card_number"' not in first
    fps = db.session.get(PaymentMethod, mid(PaymentMethod, code="fps"))
    # FPS chosen (the htmx fragment's URL, whole page without htmx): explained with
    # the deadline the domain would give an order placed now.
    html = text(panel(shopper, htmx=False, payment_method=fps.id))
    expected, _ = payment_deadline(fps, utcnow())
    local = expected.replace(tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo("Asia/Hong_Kong"))
    match = re.search(r'data-testid="deadline-before">([^<]+)<', html)
    assert match and match.group(1) == f"{local:%Y-%m-%d %H:%M} HKT"
    assert "Pay within 3 days: by" in html
    assert 'data-testid="pay-before"' in html and "How to pay with FPS" in html
    assert "order number as the payment reference" in html
    assert f'value="{fps.id}" data-kind="manual" required\n             checked' in html
    # a manual method: no card field, no test banner
    assert 'name="card_number"' not in html and 'data-testid="test-banner"' not in html
    assert re.search(r'data-testid="checkout-total">HK\$158\.00<', html)  # 128 + 30 delivery


def test_deadline_reads_in_chinese_with_hkt(shopper, make_variant, three_days):
    add(shopper, make_variant())
    html = text(shopper.get(f"/shop/cart/panel?payment_method={mid(PaymentMethod, code='fps')}",
                            headers=ZH, htmx=True))
    assert re.search(r'data-testid="deadline-before">\d{4}-\d\d-\d\d \d\d:\d\d HKT<', html)
    assert "Pay within" not in html and "付款" in html


def test_panel_fragment_for_an_online_method_has_the_card_field(shopper, make_variant):
    add(shopper, make_variant())
    response = panel(shopper, payment_method=mid(PaymentMethod, code="credit_card"))
    html = text(response)
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="checkout-live"')  # the fragment only
    assert "<html" not in html and 'id="checkout-form"' not in html
    assert 'name="card_number"' in html and 'data-testid="test-banner"' in html
    assert 'data-testid="pay-before"' not in html and "deadline-before" not in html


def test_panel_fragment_for_a_manual_method_has_no_card_field(shopper, make_variant, three_days):
    add(shopper, make_variant())
    html = text(panel(shopper, payment_method=mid(PaymentMethod, code="bank_transfer")))
    assert "How to pay with Bank Transfer" in html and "deadline-before" in html
    assert 'name="card_number"' not in html and "test-banner" not in html


def test_panel_without_htmx_is_the_whole_cart_page_with_the_choice(shopper, make_variant):
    add(shopper, make_variant(price_cents=12800))
    cc = mid(PaymentMethod, code="credit_card")
    sf = mid(ShippingMethod, kind="logistics")
    response = panel(shopper, htmx=False, payment_method=cc, shipping_method=sf)
    html = text(response)
    assert response.status_code == 200
    assert "<html" in html and 'id="checkout-form"' in html
    assert re.search(rf'value="{sf}" required checked', html)
    assert 'name="card_number"' in html
    assert re.search(r'data-testid="checkout-total">HK\$168\.00<', html)  # 128 + 40 SF


def test_shipping_change_updates_the_total_from_the_quote(shopper, make_variant):
    add(shopper, make_variant(price_cents=12800), quantity=2)
    fps = mid(PaymentMethod, code="fps")
    totals = {}
    for kind in ("delivery", "pickup", "logistics"):
        html = text(panel(shopper, payment_method=fps, shipping_method=mid(ShippingMethod, kind=kind)))
        totals[kind] = re.search(r'data-testid="checkout-total">([^<]+)<', html).group(1)
    assert totals == {"delivery": "HK$286.00", "pickup": "HK$256.00", "logistics": "HK$296.00"}


@pytest.mark.parametrize("args, status, message", [
    ({"payment_method": "abc"}, 400, "That choice is not valid."),
    ({"payment_method": "-1"}, 400, "That choice is not valid."),
    ({"payment_method": "1" * 40}, 400, "That choice is not valid."),
    ({"payment_method": "99999"}, 404, "That payment method is not available."),
    ({"shipping_method": "99999"}, 404, "That shipping method is not available."),
    ({"shipping_method": "%3Cscript%3E"}, 400, "That choice is not valid."),
])
def test_hostile_panel_requests_get_a_message_not_a_500(shopper, make_variant, args, status,
                                                        message):
    add(shopper, make_variant())
    for htmx in (True, False):
        response = panel(shopper, htmx=htmx, **args)
        assert response.status_code == status
        assert message in text(response)
        assert "<script>" not in text(response)


def test_a_disabled_method_is_not_available_in_the_panel(shopper, make_variant):
    add(shopper, make_variant())
    payme = db.session.get(PaymentMethod, mid(PaymentMethod, code="payme"))
    payme.enabled = False
    db.session.commit()
    response = panel(shopper, payment_method=payme.id)
    assert response.status_code == 404
    assert "That payment method is not available." in text(response)
    disabled = db.session.get(ShippingMethod, mid(ShippingMethod, kind="pickup"))
    disabled.enabled = False
    db.session.commit()
    assert panel(shopper, shipping_method=disabled.id).status_code == 404


def test_no_js_update_button_keeps_what_was_typed_and_places_nothing(shopper, make_variant):
    add(shopper, make_variant(price_cents=12800))
    response = shopper.post("/shop/checkout", {
        "update": "1", "name": "陳大文", "phone": "9123 4567",
        "payment_method": mid(PaymentMethod, code="alipay"),
        "shipping_method": mid(ShippingMethod, kind="pickup")})
    html = text(response)
    assert response.status_code == 200
    assert 'value="陳大文"' in html and 'name="card_number"' in html
    assert re.search(r'data-testid="checkout-total">HK\$128\.00<', html)
    assert db.session.scalar(select(func.count(Order.id))) == 0


def test_placed_order_page_shows_how_to_pay_again(shopper, make_variant, three_days, redis_conn):
    add(shopper, make_variant(price_cents=12800))
    response = shopper.post("/shop/checkout", {
        "name": "陳大文", "phone": "9123 4567", "email": "tai.man@example.hk",
        "address": "旺角", "payment_method": mid(PaymentMethod, code="fps"),
        "shipping_method": mid(ShippingMethod, kind="delivery")})
    assert response.status_code == 302
    db.session.rollback()
    order = db.session.scalar(select(Order).order_by(Order.id.desc()).limit(1))
    html = text(shopper.get(urlsplit(response.headers["Location"]).path))
    assert 'data-testid="pay-after"' in html
    assert re.search(r'data-testid="amount-due">HK\$158\.00<', html)
    pay = html.split('data-testid="pay-after"')[1].split("</section>")[0]
    assert order.number in pay  # the suggested reference
    assert re.search(r'data-testid="deadline">\d{4}-\d\d-\d\d 23:59 HKT<|data-testid="deadline">'
                     r'[^<]+ HKT<', html)


# ------------------------------------------------------------------ keep the link


def test_whatsapp_link_shares_the_secret_link_in_the_orders_language(app, shopper, make_order):
    order = make_order()
    db.session.execute(update(Order).where(Order.id == order.id).values(locale="zh_Hant_HK"))
    db.session.commit()
    html = text(shopper.get(f"/shop/o/{order.public_token}", headers=EN))
    link = re.search(r'<a class="btn wide btn-whatsapp" href="([^"]+)" target="_blank" '
                     r'rel="noopener"', html)
    assert link, "no WhatsApp link"
    url = link.group(1).replace("&amp;", "&")
    assert url.startswith("https://wa.me/?text=")
    message = parse_qs(urlsplit(url).query)["text"][0]
    assert order.number in message and get_settings().name in message
    assert f"/shop/o/{order.public_token}" in unquote(message)
    assert re.search(r"[\u4e00-\u9fff]", message.replace(get_settings().name, ""))


def test_email_me_this_link_writes_one_outbox_row_and_the_sixth_is_refused(
        shopper, make_order):
    order = make_order(email="tai.man@example.hk")
    url = f"/shop/o/{order.public_token}"
    before = outbox_count(order.id)
    response = shopper.post(f"{url}/email-link")
    assert response.status_code == 302
    assert outbox_count(order.id) == before + 1
    row = db.session.scalars(select(OutboxMessage).where(OutboxMessage.order_id == order.id)
                             .order_by(OutboxMessage.id.desc())).first()
    assert row.recipient == "tai.man@example.hk" and row.audience == "customer"
    event = db.session.scalars(select(OrderEvent).where(OrderEvent.order_id == order.id,
                                                        OrderEvent.type == "email_resent")).one()
    assert event.actor_type == "customer"
    page = text(shopper.get(url))
    assert "We emailed this page&#39;s link to tai.man@example.hk. You can ask 4 more times." in page
    assert "4 emails left for this order" in page
    for _ in range(4):
        assert shopper.post(f"{url}/email-link").status_code == 302
    assert outbox_count(order.id) == before + 5
    refused = shopper.post(f"{url}/email-link")
    assert refused.status_code == 429
    assert "already been emailed 5 times" in text(refused)
    assert outbox_count(order.id) == before + 5
    assert 'data-testid="no-resends"' in text(shopper.get(url))


def test_email_link_needs_csrf_and_the_right_token(shopper, make_order, owner_client):
    order = make_order()
    before = outbox_count(order.id)
    assert shopper.post(f"/shop/o/{order.public_token}/email-link", csrf=False).status_code == 400
    assert shopper.post(f"/shop/o/{order.public_token}x/email-link").status_code == 404
    assert shopper.post("/shop/o/nope/email-link").status_code == 404
    assert shopper.post(f"/shop/o/{'a' * 200}/email-link").status_code == 404
    assert outbox_count(order.id) == before


def test_email_link_for_a_draft_token_is_404(shopper, owner_client, make_variant):
    from domain.orders import Order as OrderModel

    draft = OrderModel(kind="draft", customer_name="陳大文", customer_email="x@example.hk")
    db.session.add(draft)
    db.session.commit()
    assert shopper.post(f"/shop/o/{draft.public_token}/email-link").status_code == 404
    assert outbox_count(draft.id) == 0


def test_no_email_no_button_but_whatsapp(shopper, make_order):
    order = make_order(email="")
    html = text(shopper.get(f"/shop/o/{order.public_token}"))
    assert "Email me this link" not in html and 'data-testid="whatsapp"' in html
    refused = shopper.post(f"/shop/o/{order.public_token}/email-link")
    assert refused.status_code == 422 and "no customer email" in text(refused)


def test_not_awaiting_payment_hides_the_instructions(shopper, make_order):
    order = make_order(payment="credit_card")
    html = text(shopper.get(f"/shop/o/{order.public_token}"))
    assert 'data-testid="pay-after"' not in html
    assert timedelta  # imported for readability of deadlines above
