"""What placing an order writes, now that checkout writes with plain statements (issue 14):
the customer record found again and refreshed, the number written with the row, the
lines, the search text and the counts as before."""

from __future__ import annotations

from sqlalchemy import event, func, select

from domain.db import db
from domain.models import Customer, Order, OrderLine, Variant
from domain.search import OrderQuery
from domain.store import get_settings


def customers() -> list[Customer]:
    db.session.expire_all()
    return list(db.session.scalars(select(Customer).order_by(Customer.id)))


def test_a_returning_phone_is_the_same_customer_with_fresher_details(make_order):
    first = make_order(name="陳大文", phone="9123 4567", email="tai.man@example.hk",
                       address="旺角彌敦道 1 號")
    second = make_order(name="陳小文", phone="9123 4567", email="", address="",
                        shipping="pickup")
    [customer] = customers()
    assert first.customer_id == second.customer_id == customer.id
    # The new name is kept; a blank email or address does not wipe the old one.
    assert (customer.name, customer.phone, customer.email, customer.address) == (
        "陳小文", "9123 4567", "tai.man@example.hk", "旺角彌敦道 1 號")


def test_without_a_phone_the_email_finds_the_customer(make_order):
    first = make_order(phone="", email="siu.ming@example.hk", address="沙田 2 號")
    second = make_order(name="Siu Ming", phone="", email="siu.ming@example.hk",
                        address="大圍 3 號")
    [customer] = customers()
    assert first.customer_id == second.customer_id == customer.id
    assert (customer.name, customer.address) == ("Siu Ming", "大圍 3 號")


def test_another_phone_and_email_is_another_customer(make_order):
    make_order(phone="9123 4567", email="a@example.hk")
    make_order(phone="6123 4567", email="b@example.hk")
    assert [c.phone for c in customers()] == ["9123 4567", "6123 4567"]


def test_hostile_text_is_stored_as_typed(make_order):
    name = "<script>alert(1)</script>'; DROP TABLE customer; --"
    order = make_order(name=name, phone="", email="x@example.hk", address="%s %(x)s ?")
    [customer] = customers()
    assert customer.name == order.customer_name == name
    assert customer.address == order.shipping_address == "%s %(x)s ?"


def test_the_number_is_written_with_the_row_and_found_at_once(app, make_order):
    updates: list[str] = []

    def watch(_conn, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("UPDATE ORDERS"):
            updates.append(statement)

    event.listen(db.engine, "before_cursor_execute", watch)
    try:
        order = make_order(name="黃美玲", phone="9876 5432", quantity=2)
    finally:
        event.remove(db.engine, "before_cursor_execute", watch)
    # On SQLite the id is known under the write lock: no second write of the row
    # (which would index it for search a second time).
    assert updates == []
    assert order.number == f"{get_settings().order_prefix}{10000 + order.id}"
    assert [(ln.quantity, ln.order_id) for ln in order.lines] == [(2, order.id)]
    assert db.session.get(Variant, order.lines[0].variant_id).stock == 8
    for q in (order.number, "黃美玲", "98765432"):
        found = select(Order.id).where(*OrderQuery(q=q).where_clauses())
        assert list(db.session.scalars(found)) == [order.id], q


def test_ids_follow_on_after_the_last_order(make_order):
    orders = [make_order() for _ in range(3)]
    assert [o.id for o in orders] == list(range(orders[0].id, orders[0].id + 3))
    assert len({o.number for o in orders}) == 3
    assert db.session.scalar(select(func.count(OrderLine.id))) == 3
    assert db.session.scalar(select(func.max(Order.id))) == orders[-1].id
