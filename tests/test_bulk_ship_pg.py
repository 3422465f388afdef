"""Bulk ship and the tracking file on PostgreSQL (issue 12): the batched guarded UPDATE
(CASE for the codes, RETURNING) runs there too, and two bulk runs racing over the same
orders ship each exactly once. Skipped when no PostgreSQL answers (see test_postgres)."""

from __future__ import annotations

import threading

from test_postgres import _checkout, _variant, pg_app  # noqa: F401  (the module's fixture)

from domain.actors import Actor

STAFF = Actor("staff", 1, "T")


def _counts(ids):
    from sqlalchemy import func, select

    from domain.db import db
    from domain.models import OrderEvent, OutboxMessage

    db.session.rollback()
    events = dict(db.session.execute(select(OrderEvent.order_id, func.count()).where(
        OrderEvent.type == "order_shipped", OrderEvent.order_id.in_(ids))
        .group_by(OrderEvent.order_id)).all())
    messages = dict(db.session.execute(select(OutboxMessage.order_id, func.count()).where(
        OutboxMessage.kind == "order_shipped", OutboxMessage.order_id.in_(ids))
        .group_by(OutboxMessage.order_id)).all())
    return events, messages


def _paid_orders(n):
    from domain.orders import place_order

    vid = _variant(stock=None)
    orders = []
    for i in range(n):
        checkout = _checkout(vid, name=f"客{i}", payment="credit_card")
        checkout.customer.email = f"c{i}@example.hk"
        orders.append(place_order(checkout))
    return orders


def test_tracking_file_applies_on_postgres(pg_app):  # noqa: F811
    from domain import bulk_ship
    from domain import tracking_import as ti
    from domain.db import db
    from domain.models import Order

    a, b = _paid_orders(2)
    data = ti.parse(f"Order number,Tracking code,Ship now\n{a.number},SF1,yes\n"
                    f"{b.number},SF2,no\n".encode(), "t.csv")
    result = bulk_ship.apply_tracking(data, actor=STAFF)
    assert result.done == 2 and not result.skipped
    db.session.expire_all()
    assert (db.session.get(Order, a.id).status, db.session.get(Order, a.id).tracking_code,
            db.session.get(Order, b.id).tracking_code) == ("completed", "SF1", "SF2")
    assert bulk_ship.apply_tracking(data, actor=STAFF).done == 0  # idempotent


def test_two_bulk_runs_racing_ship_each_order_once_on_postgres(pg_app):  # noqa: F811
    from domain import bulk_ship
    from domain.db import db

    ids = [o.id for o in _paid_orders(30)]
    db.session.remove()
    barrier = threading.Barrier(2)
    done = [None, None]

    def run(i):
        with pg_app.app_context():
            barrier.wait()
            try:
                done[i] = bulk_ship.ship_orders(ids, actor=STAFF, batch_size=7).done
            except Exception as exc:  # reported by the assertion below
                done[i] = repr(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(done) == 30, done
    events, messages = _counts(ids)
    assert set(events.values()) == {1} and len(events) == 30
    assert set(messages.values()) == {1} and len(messages) == 30
