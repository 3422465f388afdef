"""Each list filter alone and combined with search and tabs, and the URL round trip."""

from __future__ import annotations

from datetime import date, timedelta

from werkzeug.datastructures import MultiDict

from domain.db import db
from domain.models import Order, ShippingMethod
from domain.search import MAX_PAGE, OrderQuery


def ids(query: OrderQuery) -> set[int]:
    return set(db.session.scalars(query.order_ids()))


def test_each_filter_alone_and_combined(app, make_variant, make_order):
    cookies = make_variant(name="曲奇禮盒", stock=None)
    shirt = make_variant(name="Cotton T-Shirt", variant="L", stock=None)
    a = make_order(name="陳大文", items=[(cookies.id, 1)], payment="fps")
    b = make_order(name="Amy Wong", items=[(shirt.id, 2)], payment="credit_card",
                   shipping="pickup", address="")
    c = make_order(name="李嘉欣", items=[(cookies.id, 1), (shirt.id, 1)], payment="credit_card")
    pickup = db.session.query(ShippingMethod).filter_by(kind="pickup").one()
    # an older order, placed 40 days ago in the store's time zone
    old = make_order(name="陳志強", items=[(shirt.id, 1)])
    db.session.query(Order).filter_by(id=old.id).update(
        {"placed_at": old.placed_at - timedelta(days=40), "source": "live_stream"})
    db.session.commit()

    assert ids(OrderQuery(product_ids=(cookies.product_id,))) == {a.id, c.id}
    assert ids(OrderQuery(product_ids=(cookies.product_id, shirt.product_id))) == {a.id, b.id, c.id, old.id}
    assert ids(OrderQuery(shipping_method_ids=(pickup.id,))) == {b.id}
    assert ids(OrderQuery(payment_method_ids=(b.payment_method_id,))) == {b.id, c.id}
    assert ids(OrderQuery(sources=("live_stream",))) == {old.id}
    assert ids(OrderQuery(delivery_statuses=("unfulfilled",))) == {a.id, b.id, c.id, old.id}
    today = date.today()
    assert ids(OrderQuery(date_from=today - timedelta(days=45), date_to=today - timedelta(days=35))) == {old.id}
    assert old.id not in ids(OrderQuery(date_from=today - timedelta(days=2)))
    # combined: search + product + status
    assert ids(OrderQuery(q="陳", product_ids=(shirt.product_id,))) == {old.id}
    assert ids(OrderQuery(q="陳", status="processing")) == set()
    assert ids(OrderQuery(product_ids=(shirt.product_id,), status="processing")) == {b.id, c.id}
    counts = OrderQuery(product_ids=(shirt.product_id,)).tab_counts()
    assert counts == {**{k: 0 for k in counts}, "": 3, "processing": 2, "pending_payment": 1,
                      "todo": 2}


def test_url_round_trip():
    args = MultiDict([("status", "processing"), ("q", "陳大文"), ("from", "2026-01-01"),
                      ("to", "2026-02-01"), ("payment", "3"), ("payment", "1"),
                      ("shipping", "2"), ("delivery", "shipped"), ("source", "api"),
                      ("product", "7"), ("page", "3")])
    query = OrderQuery.from_args(args)
    assert not query.errors
    again = OrderQuery.from_args(MultiDict([(k, v) for k, vs in query.to_args().items()
                                            for v in (vs if isinstance(vs, list) else [vs])]))
    assert again == query
    assert query.payment_method_ids == (1, 3)  # sorted, deduplicated


def test_hostile_arguments_are_reported_not_obeyed():
    query = OrderQuery.from_args(MultiDict([
        ("status", "completed' OR 1=1"), ("payment", "1;DROP"), ("from", "2026-13-45"),
        ("source", "<script>"), ("delivery", "lost"), ("product", "-1"), ("page", "9" * 50),
        ("q", "x" * 500)]))
    assert query.status == "" and query.payment_method_ids == () and query.date_from is None
    assert query.sources == () and query.delivery_statuses == () and query.product_ids == ()
    assert query.page == MAX_PAGE and len(query.q) == 100
    assert len(query.errors) >= 6
