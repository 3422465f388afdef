"""place_order reads the methods and variants before the write lock (issue 14: less time
inside it) and asks again inside, in one statement. Here the merchant changes something
in between, from another connection: the checkout is refused with the same words as
before the read, and nothing of the order is left: no order, no stock held, no ledger
row, no message waiting."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import func, select

from domain import orders as actions
from domain.db import db
from domain.errors import ValidationError
from domain.models import Order, PaymentMethod, ShippingMethod, StockMove, Variant
from domain.models_notify import OutboxMessage
from domain.orders import Checkout, CustomerDetails

CHANGES = {
    "payment method disabled": ("UPDATE payment_method SET enabled = 0 WHERE id = :payment",
                                "Choose an available payment method."),
    "shipping method disabled": ("UPDATE shipping_method SET enabled = 0 WHERE id = :shipping",
                                 "Choose an available shipping method."),
    "variant retired": ("UPDATE variant SET active = 0 WHERE id = :variant",
                        "One of the items is no longer for sale."),
    "product archived": ("UPDATE product SET active = 0 WHERE id = :product",
                         "One of the items is no longer for sale."),
}


def _snapshot(variant_id: int) -> tuple:
    db.session.rollback()  # a fresh read, after the other connection's commit
    return (db.session.scalar(select(func.count(Order.id))),
            db.session.scalar(select(Variant.stock).where(Variant.id == variant_id)),
            db.session.scalar(select(func.count(StockMove.id))),
            db.session.scalar(select(func.count(OutboxMessage.id))))


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_change_between_the_read_and_the_write_refuses_the_order(
        app, db_path, make_variant, monkeypatch, change):
    variant = make_variant(stock=5)
    other = make_variant(stock=5)
    payment_id = db.session.scalar(select(PaymentMethod.id).where(PaymentMethod.code == "fps"))
    shipping_id = db.session.scalar(select(ShippingMethod.id)
                                    .where(ShippingMethod.kind == "delivery"))
    sql, message = CHANGES[change]
    params = {"payment": payment_id, "shipping": shipping_id, "variant": variant.id,
              "product": variant.product_id}
    before = _snapshot(variant.id)

    real_build_lines = actions._build_lines

    def build_lines_then_the_merchant_changes_something(items):
        lines = real_build_lines(items)  # the read outside the lock has passed
        with sqlite3.connect(db_path) as merchant:  # another process, committed
            merchant.execute(sql, params)
        return lines

    monkeypatch.setattr(actions, "_build_lines", build_lines_then_the_merchant_changes_something)
    with pytest.raises(ValidationError) as refused:
        actions.place_order(Checkout(
            customer=CustomerDetails(name="陳大文", phone="9123 4567", email="tai.man@example.hk",
                                     address="旺角彌敦道 1 號"),
            items=[(variant.id, 2), (other.id, 1)],
            payment_method_id=payment_id, shipping_method_id=shipping_id))
    assert str(refused.value) == message
    assert _snapshot(variant.id) == before  # no order, no stock held, no ledger, no message


def test_without_a_change_the_same_checkout_places_the_order(app, make_variant):
    """The control: the same checkout with nothing changed in between is placed."""
    variant = make_variant(stock=5)
    before = _snapshot(variant.id)
    order = actions.place_order(Checkout(
        customer=CustomerDetails(name="陳大文", phone="9123 4567", email="tai.man@example.hk",
                                 address="旺角彌敦道 1 號"),
        items=[(variant.id, 2)],
        payment_method_id=db.session.scalar(
            select(PaymentMethod.id).where(PaymentMethod.code == "fps")),
        shipping_method_id=db.session.scalar(
            select(ShippingMethod.id).where(ShippingMethod.kind == "delivery"))))
    after = _snapshot(variant.id)
    assert order.number and after[0] == before[0] + 1 and after[1] == before[1] - 2
    assert after[2] > before[2] and after[3] > before[3]
