"""Races settled by the database: real threads against a real SQLite file."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from domain import orders as actions
from domain.actors import Actor
from domain.db import db
from domain.errors import InsufficientStock, InvalidTransition
from domain.models import Order, OrderEvent, PaymentMethod, ShippingMethod, Variant
from domain.orders import Checkout, CustomerDetails


def run_threads(app, count, work):
    """Run ``work(i)`` in ``count`` threads, released together; collect outcomes."""
    barrier = threading.Barrier(count)
    outcomes: list = [None] * count

    def body(i):
        with app.app_context():
            barrier.wait()
            try:
                outcomes[i] = ("ok", work(i))
            except Exception as exc:  # collected and asserted on by the caller
                outcomes[i] = ("error", exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return outcomes


def test_fifty_buyers_for_last_five_units(app, make_variant, db_path):
    # given a real SQLite file, not :memory:
    assert db_path.endswith(".db")
    variant_id = make_variant(stock=5).id
    pay = db.session.scalar(select(PaymentMethod.id).where(PaymentMethod.code == "fps"))
    ship = db.session.scalar(select(ShippingMethod.id).where(ShippingMethod.kind == "delivery"))
    db.session.remove()

    def buy(i):
        return actions.place_order(Checkout(
            customer=CustomerDetails(name=f"買家{i}", phone=f"9000 {i:04d}", address="HK"),
            items=[(variant_id, 1)], payment_method_id=pay, shipping_method_id=ship)).id

    # when
    outcomes = run_threads(app, 50, buy)

    # then
    wins = [o for o in outcomes if o[0] == "ok"]
    losses = [o for o in outcomes if o[0] == "error"]
    assert len(wins) == 5, outcomes[:2]
    assert len(losses) == 45
    assert all(isinstance(exc, InsufficientStock) for _, exc in losses), losses[:3]
    assert db.session.get(Variant, variant_id).stock == 0
    assert db.session.scalar(select(func.count(Order.id))) == 5


def test_twenty_rejections_restock_once(app, make_variant, make_order):
    # given
    variant_id = make_variant(stock=10).id
    order_id = make_order(items=[(variant_id, 4)]).id
    db.session.remove()
    staff = Actor("staff", 1, "Tester")

    # when
    outcomes = run_threads(app, 20, lambda i: actions.reject_order(order_id, f"reason {i}",
                                                                    actor=staff).id)

    # then
    assert sum(1 for o in outcomes if o[0] == "ok") == 1
    assert all(isinstance(o[1], InvalidTransition) for o in outcomes if o[0] == "error")
    assert db.session.get(Variant, variant_id).stock == 10
    rejected = db.session.scalar(select(func.count(OrderEvent.id)).where(
        OrderEvent.order_id == order_id, OrderEvent.type == "order_rejected"))
    assert rejected == 1


def test_ship_and_reject_race_has_one_winner(app, make_variant, make_order):
    variant_id = make_variant(stock=3).id
    order_id = make_order(items=[(variant_id, 3)], payment="credit_card").id
    db.session.remove()
    staff = Actor("staff", 1, "Tester")

    def work(i):
        if i % 2:
            return actions.ship_order(order_id, actor=staff).status
        return actions.reject_order(order_id, "race", actor=staff).status

    outcomes = run_threads(app, 10, work)
    assert sum(1 for o in outcomes if o[0] == "ok") == 1
    final = db.session.get(Order, order_id)
    expected_stock = 3 if final.status == "canceled" else 0
    assert db.session.get(Variant, variant_id).stock == expected_stock
