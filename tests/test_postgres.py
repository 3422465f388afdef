"""The same domain on PostgreSQL: migrations, actions, the last-units race, search.

Runs against the PostgreSQL server on loopback (``SHOPDESK_TEST_PG`` overrides
the admin URL); skipped when none answers.
"""

from __future__ import annotations

import os
import threading
import uuid

import pytest
from conftest import fill_payment_details

ADMIN_URL = os.environ.get("SHOPDESK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _admin():
    import psycopg

    try:
        return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"No PostgreSQL at {ADMIN_URL}: {exc}")


@pytest.fixture(scope="module")
def pg_app():
    from flask_migrate import upgrade

    from app import create_app
    from domain.db import db
    from domain.store import ensure_store_defaults

    name = f"shopdesk_test_{uuid.uuid4().hex[:10]}"
    admin = _admin()
    admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    app = create_app({"TESTING": True, "SECRET_KEY": "pg", "SQLALCHEMY_DATABASE_URI": url})
    try:
        with app.app_context():
            upgrade()
            ensure_store_defaults()
            fill_payment_details()
            yield app
            db.session.remove()
            db.engine.dispose()
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _variant(stock, name="曲奇禮盒", barcode=None):
    from domain.db import db
    from domain.models import Product, Variant

    product = Product(name=name)
    db.session.add(product)
    db.session.flush()
    variant = Variant(product_id=product.id, name="原味", sku=f"PG-{uuid.uuid4().hex[:8]}",
                      barcode=barcode or uuid.uuid4().hex[:13], price_cents=1000, stock=stock)
    db.session.add(variant)
    db.session.commit()
    return variant.id


def _checkout(variant_id, name="陳大文", phone="9123 4567", qty=1, payment="fps"):
    from domain.db import db
    from domain.models import PaymentMethod, ShippingMethod
    from domain.orders import Checkout, CustomerDetails

    return Checkout(
        customer=CustomerDetails(name=name, phone=phone, address="旺角"),
        items=[(variant_id, qty)],
        payment_method_id=db.session.query(PaymentMethod).filter_by(code=payment).one().id,
        shipping_method_id=db.session.query(ShippingMethod).filter_by(kind="delivery").first().id)


def test_actions_and_restock_on_postgres(pg_app):
    from domain import orders as actions
    from domain.actors import Actor
    from domain.db import db
    from domain.errors import InvalidTransition
    from domain.models import Variant

    vid = _variant(stock=3)
    order = actions.place_order(_checkout(vid, qty=2))
    assert db.session.get(Variant, vid).stock == 1
    staff = Actor("staff", 1, "T")
    actions.reject_order(order.id, "no", actor=staff)
    with pytest.raises(InvalidTransition):
        actions.reject_order(order.id, "again", actor=staff)
    db.session.expire_all()
    assert db.session.get(Variant, vid).stock == 3


def test_checkout_takes_the_stock_row_lock_last_on_postgres(pg_app):
    """The customer's UPDATE and the guarded stock UPDATE lock their rows until the
    commit, so they come after every other write of the checkout (the order, its event
    and its search text): other checkouts of the same customer or item wait only for
    the commit. And a refusal still leaves nothing behind."""
    from sqlalchemy import event, func, select

    from domain.db import db
    from domain.errors import InsufficientStock
    from domain.models import Order, OrderEvent, Variant
    from domain.orders import place_order

    vid = _variant(stock=1, name="限量月餅")
    place_order(_checkout(_variant(stock=5), name="陳大文", phone="9333 4444"))
    writes: list[str] = []

    def watch(_conn, _cursor, statement, *_args):
        first = statement.lstrip().split(None, 3)
        if first and first[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            writes.append(" ".join(first[:3]).upper())

    event.listen(db.engine, "before_cursor_execute", watch)
    try:
        # A returning customer under a new name: their record's UPDATE is a row lock too.
        order = place_order(_checkout(vid, qty=1, name="陳小文", phone="9333 4444"))
    finally:
        event.remove(db.engine, "before_cursor_execute", watch)
    stock_update = next(i for i, w in enumerate(writes) if w.startswith("UPDATE VARIANT"))
    assert "INSERT INTO ORDER_SEARCH_DOC" in writes[:stock_update - 1], writes
    # Just before it the customer's refresh; after it the ledger row, and the commit's
    # look at the (now empty) search queue.
    assert writes[stock_update - 1] == "UPDATE CUSTOMER SET", writes
    assert writes[stock_update:] == ["UPDATE VARIANT SET", "INSERT INTO STOCK_MOVE",
                                     "DELETE FROM ORDER_SEARCH_STALE"], writes
    assert db.session.get(Variant, vid).stock == 0 and order.number

    before = db.session.scalar(select(func.count(Order.id)))
    with pytest.raises(InsufficientStock):
        place_order(_checkout(vid, qty=1, name="遲來的人", phone="9000 9999"))
    db.session.rollback()
    assert db.session.scalar(select(func.count(Order.id))) == before
    assert db.session.scalar(select(func.count(OrderEvent.id))
                             .where(OrderEvent.order_id > order.id)) == 0


def test_fifty_buyers_last_five_units_on_postgres(pg_app):
    from domain.db import db
    from domain.errors import InsufficientStock
    from domain.models import Variant
    from domain.orders import place_order

    vid = _variant(stock=5)
    checkouts = [_checkout(vid, name=f"買家{i}", phone=f"9000 {i:04d}") for i in range(50)]
    db.session.remove()
    barrier = threading.Barrier(50)
    results = [None] * 50

    def buy(i):
        with pg_app.app_context():
            barrier.wait()
            try:
                place_order(checkouts[i])
                results[i] = "ok"
            except InsufficientStock:
                results[i] = "sold out"
            except Exception as exc:  # reported by the assertion below
                results[i] = repr(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=buy, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results.count("ok") == 5, results
    assert results.count("sold out") == 45, results
    assert db.session.get(Variant, vid).stock == 0


def test_search_on_postgres(pg_app):
    from domain.orders import place_order
    from domain.search import OrderQuery

    vid = _variant(stock=None, name="手工朱古力 Dark Chocolate", barcode="4891234567890")
    order = place_order(_checkout(vid, name="黃嘉欣 Karen", phone="6123 9876"))
    for q in ("嘉欣", "karen", "9876", "61239876", "4567890", "朱古力", "chocolate",
              order.number, order.number[2:], order.number.lower()):
        ids = {o.id for o in OrderQuery(q=q).page_results().items}
        assert order.id in ids, q
    assert OrderQuery(q="no-such-thing-zz").count() == 0


def test_search_reads_typed_forms_on_postgres(pg_app):
    """Issue 7 on PostgreSQL: full-width, country code, simplified, variant, short searches."""
    from sqlalchemy import text

    from domain.db import db
    from domain.orders import place_order
    from domain.search import OrderQuery
    from domain.search_index import _postgres_match, needles

    vid = _variant(stock=None, name="蛋卷禮盒", barcode="4897654321098")
    order = place_order(_checkout(vid, name="鄭 美玲", phone="9757 1288"))
    assert order.customer_phone_e164 == "+85297571288"
    for q in ("郑美玲", "鄭美玲", "美玲", "+852 9757 1288", "85297571288", "(852) 9757 1288",
              "９７５７１２８８", "原味", "蛋卷礼盒 原味", "#" + order.number, order.number[2:],
              "郑", "玲", "88"):
        ids = {o.id for o in OrderQuery(q=q).page_results().items}
        assert order.id in ids, q
    db.session.execute(text("SET LOCAL enable_seqscan = off"))
    for q in ("郑", "88"):
        sql = str(_postgres_match(needles(q)).compile(db.engine,
                                                      compile_kwargs={"literal_binds": True}))
        plan = "\n".join(db.session.scalars(text("EXPLAIN " + sql)))
        assert "ix_order_search_doc_grams" in plan, plan
    db.session.rollback()
