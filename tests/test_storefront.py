"""The customer side end to end through the test client, and the merchant's review queue."""

from __future__ import annotations

from datetime import timedelta
from io import BytesIO

import pytest
from rq.registry import ScheduledJobRegistry
from sqlalchemy import func, select

from domain.db import db
from domain.models import Order, OrderEvent, PaymentMethod, ShippingMethod, Variant, utcnow
from domain.store import get_settings
from jobs import queue as job_queue

pytest_plugins = ["jobs_fixtures"]


@pytest.fixture
def shopper(app):
    """An anonymous browser on the shop, sending the shop's CSRF token."""
    from conftest import Client

    client = Client(app)
    client._token = client.token_from(client.get("/shop/").get_data(as_text=True))
    return client


def method(model, **where):
    return db.session.query(model).filter_by(**where).first()


def stock_of(variant_id):
    db.session.rollback()
    return db.session.get(Variant, variant_id).stock


def latest_order() -> Order:
    db.session.rollback()
    return db.session.scalar(select(Order).order_by(Order.id.desc()).limit(1))


def checkout(shopper, *, payment="fps", shipping="delivery", card="", **fields):
    data = {"name": "陳大文", "phone": "9123 4567", "email": "", "address": "旺角彌敦道 1 號",
            "shipping_method": method(ShippingMethod, kind=shipping).id,
            "payment_method": method(PaymentMethod, code=payment).id, "card_number": card}
    data.update(fields)
    return shopper.post("/shop/checkout", data)


def test_product_list_shows_variants_prices_and_stock(shopper, make_variant):
    make_variant(name="曲奇禮盒", variant="抹茶", price_cents=12850, stock=3)
    make_variant(name="Tote bag", variant="Black", stock=0)
    html = shopper.get("/shop/").get_data(as_text=True)
    assert "曲奇禮盒" in html and "抹茶" in html and "HK$128.50" in html
    assert "Only 3 left" in html and "Sold out" in html


def test_manual_checkout_upload_confirm_ship(app, shopper, owner_client, make_variant, redis_conn,
                                             samples):
    # given a 2-day payment deadline and an item with 5 in stock
    get_settings().payment_deadline_days = 2
    db.session.commit()
    variant = make_variant(stock=5, price_cents=10000)
    # when the customer adds two to the cart and checks out with FPS
    assert shopper.post("/shop/cart/add", {"variant_id": variant.id, "quantity": 2}).status_code == 302
    cart = shopper.get("/shop/cart").get_data(as_text=True)
    assert "HK$200.00" in cart
    response = checkout(shopper)
    order = latest_order()
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/shop/o/{order.public_token}")
    # then the order waits for payment with its stock held, deadline set and expiry scheduled
    assert (order.status, order.source, order.total_cents) == ("pending_payment", "online_store",
                                                               23000)
    assert stock_of(variant.id) == 3
    assert order.payment_deadline_at is not None
    assert f"expire-{order.id}-" in " ".join(ScheduledJobRegistry(queue=job_queue.get_queue())
                                              .get_job_ids())
    page = shopper.get(f"/shop/o/{order.public_token}")
    html = page.get_data(as_text=True)
    assert page.headers["Referrer-Policy"] == "no-referrer"
    # the typed FPS details (tests/conftest.py) and the reference to write on the transfer
    assert "1234567" in html and "Cookie Lab Ltd" in html and "Please pay by" in html
    assert f'data-copy="{order.number}"' in html
    # the cart was emptied
    assert "Your cart is empty" in shopper.get("/shop/cart").get_data(as_text=True)
    # when the customer uploads a proof
    up = shopper.post(f"/shop/o/{order.public_token}/proof",
                      {"proof": (BytesIO(samples.image_bytes("PNG")), "fps.png", "image/png")},
                      content_type="multipart/form-data")
    assert up.status_code == 302
    assert latest_order().status == "pending_confirmation"
    # and staff confirm it, then ship it
    assert owner_client.post(f"/orders/{order.number}/confirm-payment").status_code == 302
    assert latest_order().status == "processing"
    assert owner_client.post(f"/orders/{order.number}/ship",
                             {"tracking_code": "SF123456"}).status_code == 302
    order = latest_order()
    assert (order.status, order.delivery_status) == ("completed", "shipped")
    assert "SF123456" in shopper.get(f"/shop/o/{order.public_token}").get_data(as_text=True)
    assert stock_of(variant.id) == 3


def test_test_gateway_checkout_is_processing_at_once(shopper, make_variant):
    variant = make_variant(stock=2)
    shopper.post("/shop/cart/add", {"variant_id": variant.id, "quantity": 1})
    # The banner shows once an online method is chosen (the checkout's panel).
    card = db.session.scalar(select(PaymentMethod.id).where(PaymentMethod.code == "credit_card"))
    cart = shopper.get(f"/shop/cart/panel?payment_method={card}", htmx=True).get_data(as_text=True)
    assert "Test gateway — no real money is charged" in cart
    assert checkout(shopper, payment="credit_card", card="4242 4242 4242 4242").status_code == 302
    order = latest_order()
    assert (order.status, order.payment_kind, order.payment_deadline_at) == (
        "processing", "online", None)
    placed = db.session.scalar(select(OrderEvent).where(OrderEvent.order_id == order.id))
    assert placed.details["payment_reference"].startswith("test_")
    assert placed.details["gateway_test_mode"] is True
    assert stock_of(variant.id) == 1


def test_declined_card_places_nothing_and_keeps_the_cart(shopper, make_variant):
    variant = make_variant(stock=2)
    shopper.post("/shop/cart/add", {"variant_id": variant.id, "quantity": 1})
    response = checkout(shopper, payment="credit_card", card="4000 0000 0000 0002")
    assert response.status_code == 422
    assert "declined" in response.get_data(as_text=True)
    assert latest_order() is None and stock_of(variant.id) == 2
    assert "Update" in shopper.get("/shop/cart").get_data(as_text=True)  # cart kept


def test_insufficient_stock_names_the_item_and_keeps_the_cart(shopper, make_variant):
    variant = make_variant(name="限量月餅", variant="雙黃", stock=3)
    shopper.post("/shop/cart/add", {"variant_id": variant.id, "quantity": 3})
    # someone else buys two meanwhile
    db.session.get(Variant, variant.id).stock = 1
    db.session.commit()
    response = checkout(shopper)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Not enough stock for 限量月餅 (雙黃): only 1 left, 3 requested." in html
    assert latest_order() is None and stock_of(variant.id) == 1
    assert 'value="3"' in shopper.get("/shop/cart").get_data(as_text=True)


def test_adding_more_than_in_stock_is_refused(shopper, make_variant):
    variant = make_variant(stock=1)
    shopper.post("/shop/cart/add", {"variant_id": variant.id, "quantity": 1})
    shopper.post("/shop/cart/add", {"variant_id": variant.id, "quantity": 1})
    html = shopper.get("/shop/").get_data(as_text=True)
    assert "only 1 left, 2 requested" in html


def test_checkout_validation_messages_change_nothing(shopper, make_variant):
    variant = make_variant(stock=2)
    shopper.post("/shop/cart/add", {"variant_id": variant.id, "quantity": 1})
    for fields, message in [({"name": ""}, "Give your name."),
                            ({"phone": "call me"}, "Phone must be digits"),
                            ({"phone": "", "email": ""}, "Give a phone number or an email"),
                            ({"address": ""}, "Address is required."),
                            ({"name": "<script>alert(1)</script>", "phone": "x"}, "Phone must")]:
        response = checkout(shopper, **fields)
        assert response.status_code == 422 and message in response.get_data(as_text=True)
        assert "<script>alert(1)</script>" not in response.get_data(as_text=True)
    assert latest_order() is None and stock_of(variant.id) == 2
    # pickup needs no address
    assert checkout(shopper, shipping="pickup", address="").status_code == 302


def test_empty_cart_cannot_check_out(shopper):
    response = checkout(shopper)
    assert response.status_code == 422 and "Your cart is empty" in response.get_data(as_text=True)


def test_checkout_without_csrf_is_refused(shopper, make_variant):
    variant = make_variant(stock=2)
    response = shopper.post("/shop/cart/add", {"variant_id": variant.id, "quantity": 1},
                            csrf=False)
    assert response.status_code == 400


def test_secret_links_reach_only_their_own_order(client, make_order):
    order = make_order()
    assert client.get(f"/shop/o/{order.public_token}").status_code == 200
    tail = "zz" if not order.public_token.endswith("zz") else "yy"
    assert client.get(f"/shop/o/{order.public_token[:-2]}{tail}").status_code == 404
    assert client.get("/shop/o/" + "A" * 200).status_code == 404
    assert client.get(f"/shop/o/{order.number}").status_code == 404
    html = client.get(f"/shop/o/{order.public_token}").get_data(as_text=True)
    assert "Sign out" not in html  # no staff chrome for customers


def test_declined_proof_reason_is_shown_to_the_customer(client, make_order, owner_client):
    from domain.actors import Actor
    from domain.orders import decline_proof, upload_proof

    order = make_order()
    upload_proof(order.id, path="proofs/none.png", sha256="1" * 64)
    decline_proof(order.id, "金額不符 <b>amount</b>", actor=Actor("staff", 1, "T"))
    html = client.get(f"/shop/o/{order.public_token}").get_data(as_text=True)
    assert "金額不符 &lt;b&gt;amount&lt;/b&gt;" in html


# ------------------------------------------------------------------ review queue


def _with_proof(make_order, shopper_app, png: bytes, when):
    from domain.proofs import submit_proof

    order = make_order()
    order = submit_proof(order.id, BytesIO(png))
    db.session.execute(Order.__table__.update().where(Order.id == order.id)
                       .values(proof_uploaded_at=when))
    db.session.commit()
    return order


def test_review_queue_oldest_first_flags_reused_proofs(app, owner_client, make_order, samples):
    now = utcnow()
    red = samples.image_bytes("PNG", colour="red")
    newer = _with_proof(make_order, app, red, now - timedelta(hours=1))
    older = _with_proof(make_order, app, samples.image_bytes("PNG", colour="blue"),
                        now - timedelta(hours=5))
    reused = _with_proof(make_order, app, red, now)
    make_order()  # no proof: not in the queue
    html = owner_client.get("/review/").get_data(as_text=True)
    positions = [html.index(f'data-testid="queue-{o.number}"') for o in (older, newer, reused)]
    assert positions == sorted(positions)
    assert html.count("already used on another order") == 2
    assert "3 waiting" in html


def test_confirm_and_decline_from_the_queue(app, owner_client, make_order, samples):
    from domain.proofs import submit_proof

    a = submit_proof(make_order().id, BytesIO(samples.image_bytes()))
    b = submit_proof(make_order().id, BytesIO(samples.image_bytes("JPEG")))
    response = owner_client.post(f"/review/{a.number}/confirm", htmx=True)
    assert response.status_code == 200 and f"Payment confirmed for {a.number}" in response.get_data(
        as_text=True)
    assert owner_client.post(f"/review/{b.number}/decline", {"reason": ""}).status_code == 302
    db.session.rollback()
    assert db.session.get(Order, b.id).status == "pending_confirmation"  # no reason: refused
    owner_client.post(f"/review/{b.number}/decline", {"reason": "Blurry"})
    db.session.rollback()
    assert [db.session.get(Order, o.id).status for o in (a, b)] == ["processing", "pending_payment"]
    # confirming twice: the second gets a clear message, nothing changes
    again = owner_client.post(f"/review/{a.number}/confirm", htmx=True)
    assert again.status_code == 422 and "cannot be confirmed" in again.get_data(as_text=True)


def test_queue_confirm_answers_htmx_with_the_card_result_and_the_count(app, owner_client,
                                                                       make_order, samples):
    from domain.proofs import submit_proof

    a, b = (submit_proof(make_order().id, BytesIO(samples.image_bytes())) for _ in range(2))
    html = owner_client.post(f"/review/{a.number}/confirm", htmx=True).get_data(as_text=True)
    # the confirmed card's replacement, in place (not the whole queue with a notice on top)
    assert html.lstrip().startswith(f'<li class="queue-item queue-result" id="queue-result-{a.number}"')
    assert f"Payment confirmed for {a.number}." in html and 'id="queue"' not in html
    assert f'data-testid="queue-{b.number}"' not in html
    # out of band: the count
    assert '<p class="muted" id="queue-count" hx-swap-oob="true">1 waiting' in html
    # the last one: nothing more to review; an error is said in place too
    owner_client.post(f"/review/{b.number}/confirm", htmx=True)
    again = owner_client.post(f"/review/{b.number}/confirm", htmx=True)
    text = again.get_data(as_text=True)
    assert again.status_code == 422 and 'class="flash flash-error"' in text
    assert "Nothing more to review." in text
    # a reload shows the queue as it is now
    page = owner_client.get("/review/").get_data(as_text=True)
    assert "Nothing to review" in page and 'id="queue-result-' not in page


def test_review_pages_need_login(client, make_order):
    order = make_order()
    assert client.get("/review/").status_code == 302
    assert client.get(f"/review/proofs/{order.number}").status_code == 302


def test_staff_extend_the_deadline(app, owner_client, make_order, redis_conn):
    get_settings().payment_deadline_days = 1
    db.session.commit()
    order = make_order()
    before = order.payment_deadline_at
    response = owner_client.post(f"/review/{order.number}/extend-deadline", {"days": 2})
    assert response.status_code == 302
    db.session.rollback()
    order = db.session.get(Order, order.id)
    assert order.payment_deadline_at == before + timedelta(days=2)
    assert db.session.scalar(select(func.count(OrderEvent.id)).where(
        OrderEvent.order_id == order.id, OrderEvent.type == "deadline_extended")) == 1
    # refused with a message for bad input, or when the order has moved on
    owner_client.post(f"/review/{order.number}/extend-deadline", {"days": 99})
    db.session.rollback()
    assert db.session.get(Order, order.id).payment_deadline_at == before + timedelta(days=2)
