"""Readers and writers shared by the outbox tests (plain functions; the
fixtures are in outbox_fixtures.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from domain.db import db, write_transaction
from domain.errors import ResendLimit
from domain.models import DeskNotification, OrderEvent, OutboxMessage, utcnow
from domain.notify import outbox, resend

SHOP = "orders@cookielab.hk"
CUSTOMER = "tai.man@example.hk"
ROOT = Path(__file__).resolve().parents[1]


def messages(order_id=None):
    db.session.rollback()
    query = select(OutboxMessage).order_by(OutboxMessage.id)
    if order_id is not None:
        query = query.where(OutboxMessage.order_id == order_id)
    return list(db.session.scalars(query))


def summary(rows):
    return sorted((m.audience, m.kind, m.recipient) for m in rows)


def last_event(order_id, type_):
    db.session.rollback()
    return db.session.scalar(select(OrderEvent).where(OrderEvent.order_id == order_id,
                                                      OrderEvent.type == type_)
                             .order_by(OrderEvent.id.desc()))


def bell_count(order_id=None):
    db.session.rollback()
    query = select(func.count()).select_from(DeskNotification)
    if order_id is not None:
        query = query.where(DeskNotification.order_id == order_id)
    return db.session.scalar(query)


def new_rows(order_id, before_ids):
    return [m for m in messages(order_id) if m.id not in before_ids]


def queue(n, *, now=None):
    """n pending staff messages (no order needed), due at ``now``."""
    now = now or utcnow()
    with write_transaction():
        return outbox.write_messages([
            outbox.message_row(event_key=f"test:{i}:{time.monotonic_ns()}",
                               recipient=f"r{i}@example.hk", audience="staff",
                               kind="export_ready", now=now) for i in range(n)])


def fresh_row(message_id):
    db.session.rollback()
    db.session.expire_all()
    return db.session.get(OutboxMessage, message_id)


def resend_race(app, order_id, actor, workers=2):
    barrier = threading.Barrier(workers)
    outcomes = [None] * workers

    def run(i):
        with app.app_context():
            try:
                barrier.wait()
                resend.resend_email(order_id, actor=actor)
                outcomes[i] = "ok"
            except ResendLimit:
                outcomes[i] = "limit"
            except Exception as exc:  # reported by the assertion
                outcomes[i] = repr(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return outcomes


def shop_app():
    from flask import current_app

    return current_app._get_current_object()


def app_request():
    from flask import current_app

    return current_app.test_request_context("/")


def pg_admin():
    import os

    import psycopg

    url = os.environ.get("SHOPDESK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        return url, psycopg.connect(url, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"No PostgreSQL at {url}: {exc}")


def pg_order(email=CUSTOMER):
    import uuid

    from domain.models import PaymentMethod, Product, ShippingMethod, Variant
    from domain.orders import Checkout, CustomerDetails, place_order

    product = Product(name="曲奇禮盒")
    db.session.add(product)
    db.session.flush()
    variant = Variant(product_id=product.id, name="原味", sku=f"PG-{uuid.uuid4().hex[:8]}",
                      barcode=uuid.uuid4().hex[:13], price_cents=1000, stock=None)
    db.session.add(variant)
    db.session.commit()
    return place_order(Checkout(
        customer=CustomerDetails(name="陳大文", phone="9123 4567", email=email, address="旺角"),
        items=[(variant.id, 1)],
        payment_method_id=db.session.query(PaymentMethod).filter_by(code="fps").one().id,
        shipping_method_id=db.session.query(ShippingMethod).filter_by(kind="delivery")
        .first().id))


