"""The balance after a modification, through the views: the desk's Payment card and
totals, the customer's page with the payment details and the balance proof upload
(own link only, files checked), staff confirming, declining or marking it received,
and a credit owed pointing at the refund note."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from domain import orders as actions
from domain.actors import Actor
from domain.db import db
from domain.models import BalancePayment, Order, StoreSettings
from domain.modify import ModifyInput, modify_order


def png_bytes(colour=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (60, 40), colour).save(buffer, "PNG")
    return buffer.getvalue()


def fresh(order_id: int) -> Order:
    db.session.expire_all()
    return db.session.get(Order, order_id)


@pytest.fixture
def paid_then_changed(app, owner, make_order):
    """A paid order (staff confirmed) whose quantity then went from 1 to ``qty``."""
    db.session.get(StoreSettings, 1).plan = "advanced"
    db.session.commit()

    def make(qty=2):
        order = make_order(quantity=1)
        actions.confirm_payment(order.id, actor=Actor.staff(owner))
        order = fresh(order.id)
        line = order.lines[0]
        modify_order(order.id, ModifyInput(lines=(("line", line.id, qty),),
                                           shipping_method_id=order.shipping_method_id,
                                           shipping_fee_cents=None),
                     expected_version=order.version, actor=Actor.staff(owner))
        return fresh(order.id)
    return make


def customer_client(app):
    from tests.conftest import Client

    return Client(app)


def customer_csrf(client, order) -> str:
    return client.token_from(client.get(f"/shop/o/{order.public_token}").get_data(as_text=True))


def post_customer(client, order, data=None, token=None, with_csrf=True, name="proof.png"):
    fields = {"proof": (io.BytesIO(data if data is not None else png_bytes()), name)}
    if with_csrf:
        fields["csrf_token"] = customer_csrf(client, order)
    return client.http.post(f"/shop/o/{token or order.public_token}/balance-proof", data=fields,
                            content_type="multipart/form-data")


def test_desk_shows_the_balance_due(owner_client, paid_then_changed):
    order = paid_then_changed(qty=2)
    html = owner_client.get(f"/orders/{order.number}").get_data(as_text=True)
    assert 'data-testid="balance-due"' in html and 'data-testid="totals-balance-due"' in html
    assert 'data-testid="order-paid"' in html
    assert 'data-testid="balance-received-open"' in html
    assert "No proof for the balance yet." in html


def test_customer_pays_the_balance_by_proof_and_staff_confirms(app, owner_client,
                                                                paid_then_changed):
    order = paid_then_changed(qty=2)
    customer = customer_client(app)
    page = customer.get(f"/shop/o/{order.public_token}").get_data(as_text=True)
    assert 'data-testid="customer-balance-due"' in page
    assert 'data-testid="balance-proof-upload"' in page
    assert "pd-amount" in page  # the payment details with the balance as the amount
    response = post_customer(customer, order)
    assert response.status_code == 302, response.get_data(as_text=True)
    payment = db.session.query(BalancePayment).filter_by(order_id=order.id).one()
    assert payment.status == "pending" and payment.proof_path
    page = customer.get(f"/shop/o/{order.public_token}").get_data(as_text=True)
    assert 'data-testid="balance-proof-waiting"' in page
    # the desk sees the proof, served safely, and confirms it
    html = owner_client.get(f"/orders/{order.number}").get_data(as_text=True)
    assert 'data-testid="balance-proof"' in html
    image = owner_client.get(f"/orders/{order.number}/balance/{payment.id}/proof")
    assert image.status_code == 200 and image.mimetype == "image/png"
    assert image.headers["X-Content-Type-Options"] == "nosniff"
    assert owner_client.get(f"/orders/{order.number}/balance/{payment.id}/proof/thumbnail") \
        .status_code == 200
    done = owner_client.post(f"/orders/{order.number}/balance/confirm",
                             {"payment_id": str(payment.id)}, htmx=True)
    text = done.get_data(as_text=True)
    assert done.status_code == 200 and 'data-testid="balance-due"' not in text
    assert "Balance payment confirmed" in text
    db.session.expire_all()
    assert db.session.get(BalancePayment, payment.id).status == "confirmed"


def test_balance_proof_for_another_order_is_404(app, owner_client, paid_then_changed):
    order, other = paid_then_changed(qty=2), paid_then_changed(qty=3)
    customer = customer_client(app)
    assert post_customer(customer, order).status_code == 302
    payment = db.session.query(BalancePayment).filter_by(order_id=order.id).one()
    assert owner_client.get(f"/orders/{other.number}/balance/{payment.id}/proof").status_code == 404
    response = owner_client.post(f"/orders/{other.number}/balance/confirm",
                                 {"payment_id": str(payment.id)})
    assert response.status_code == 404
    for bad in ("abc", "-1", "9" * 30, ""):
        assert owner_client.post(f"/orders/{order.number}/balance/confirm",
                                 {"payment_id": bad}).status_code == 404
    db.session.expire_all()
    assert db.session.get(BalancePayment, payment.id).status == "pending"


def test_staff_declines_with_a_reason_the_customer_reads(app, owner_client, paid_then_changed):
    order = paid_then_changed(qty=2)
    customer = customer_client(app)
    post_customer(customer, order)
    payment = db.session.query(BalancePayment).filter_by(order_id=order.id).one()
    missing = owner_client.post(f"/orders/{order.number}/balance/decline",
                                {"payment_id": str(payment.id)}, htmx=True)
    assert missing.status_code == 422
    response = owner_client.post(f"/orders/{order.number}/balance/decline",
                                 {"payment_id": str(payment.id), "reason": "金額不符"}, htmx=True)
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "金額不符" in text and "Balance proof declined" in text
    page = customer.get(f"/shop/o/{order.public_token}").get_data(as_text=True)
    assert "金額不符" in page and 'data-testid="balance-proof-upload"' in page


def test_mark_balance_received(owner_client, paid_then_changed):
    order = paid_then_changed(qty=2)
    response = owner_client.post(f"/orders/{order.number}/balance/received", {}, htmx=True)
    text = response.get_data(as_text=True)
    assert response.status_code == 200 and 'data-testid="balance-due"' not in text
    assert "Balance marked received" in text  # the history entry


def test_wrong_token_and_guessed_ids_are_404(app, paid_then_changed):
    order = paid_then_changed(qty=2)
    customer = customer_client(app)
    assert post_customer(customer, order, token="x" * 43).status_code == 404
    assert post_customer(customer, order, token=str(order.id)).status_code == 404
    assert db.session.query(BalancePayment).count() == 0


def test_bad_files_are_refused_and_nothing_kept(app, paid_then_changed):
    order = paid_then_changed(qty=2)
    customer = customer_client(app)
    for data, name in ((b"<html><script>alert(1)</script>", "x.png"), (b"", "empty.jpg"),
                       (b"%PDF-1.4 broken", "x.pdf")):
        response = post_customer(customer, order, data=data, name=name)
        assert response.status_code == 422
    assert db.session.query(BalancePayment).count() == 0


def test_balance_upload_needs_csrf(app, paid_then_changed):
    order = paid_then_changed(qty=2)
    customer = customer_client(app)
    assert post_customer(customer, order, with_csrf=False).status_code == 400
    assert db.session.query(BalancePayment).count() == 0


def test_no_balance_upload_when_nothing_is_due(app, make_order):
    order = make_order()
    customer = customer_client(app)
    page = customer.get(f"/shop/o/{order.public_token}").get_data(as_text=True)
    assert 'data-testid="customer-balance"' not in page
    response = post_customer(customer, order)
    assert response.status_code == 422
    assert db.session.query(BalancePayment).count() == 0


def test_credit_owed_points_to_the_refund_note(app, owner_client, owner, paid_then_changed):
    order = paid_then_changed(qty=3)
    # back to 1 with a discount: less than the customer paid for the first box
    line = order.lines[0]
    modify_order(order.id, ModifyInput(lines=(("line", line.id, 1),), shipping_method_id=(
        order.shipping_method_id), shipping_fee_cents=None, discount_cents=5000),
        expected_version=order.version, actor=Actor.staff(owner))
    html = owner_client.get(f"/orders/{order.number}").get_data(as_text=True)
    assert 'data-testid="balance-credit"' in html and 'href="#refund-note"' in html
    page = customer_client(app).get(f"/shop/o/{order.public_token}").get_data(as_text=True)
    assert 'data-testid="customer-credit"' in page


def test_desk_and_customer_read_the_balance_in_chinese(app, staff, staff_client,
                                                       paid_then_changed):
    from domain.models import User

    db.session.get(User, staff.id).locale = "zh_Hant_HK"
    db.session.commit()
    order = paid_then_changed(qty=2)
    html = staff_client.get(f"/orders/{order.number}").get_data(as_text=True)
    assert "尚欠餘額" in html and "修改訂單" in html and "標示已收到餘額" in html
    assert "Balance due" not in html and "Mark balance received" not in html
    assert "數量 1 → 2" in html  # the diff, in the history (zh: 曲奇禮盒 (原味) 數量 1 → 2)
    db.session.get(Order, order.id).locale = "zh_Hant_HK"
    db.session.commit()
    page = customer_client(app).get(f"/shop/o/{order.public_token}").get_data(as_text=True)
    assert "尚需支付的餘額" in page and "上載餘額付款證明" in page
