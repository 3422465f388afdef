"""Shared set-up for the modify-order domain tests (SQLite and PostgreSQL); no tests here."""

from __future__ import annotations

from sqlalchemy import func, select

from domain.actors import Actor
from domain.db import db
from domain.inventory import reconcile
from domain.models import Order, OrderEvent, StockMove, Variant
from domain.modify import ModifyInput
from domain.store import get_settings

STAFF = Actor("staff", 1, "Modifier")


def set_plan(plan: str) -> None:
    settings = get_settings()
    settings.plan = plan
    db.session.add(settings)
    db.session.commit()


def fresh(order_id: int) -> Order:
    db.session.rollback()
    db.session.expire_all()
    return db.session.get(Order, order_id)


def stock_of(variant_id: int) -> int | None:
    db.session.expire_all()
    return db.session.get(Variant, variant_id).stock


def ledger_sum(variant_id: int) -> int:
    return db.session.scalar(select(func.coalesce(func.sum(StockMove.delta), 0))
                             .where(StockMove.variant_id == variant_id))


def books_balance() -> bool:
    db.session.expire_all()
    return reconcile() == []


def events_of(order_id: int, type_: str | None = None) -> list[OrderEvent]:
    query = select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.id)
    if type_:
        query = query.where(OrderEvent.type == type_)
    return list(db.session.scalars(query))


def keep(order: Order, **changes) -> ModifyInput:
    """The order as it is (each line kept), with some fields changed."""
    values = dict(lines=tuple(("line", ln.id, ln.quantity) for ln in order.lines),
                  shipping_method_id=order.shipping_method_id, shipping_fee_cents=None,
                  discount_cents=order.discount_cents,
                  extra_charge_cents=order.extra_charge_cents,
                  extra_charge_label=order.extra_charge_label)
    values.update(changes)
    return ModifyInput(**values)


# ------------------------------------------------------------------ for SQLite and PostgreSQL


def new_variant(stock: int | None = 10, name: str = "曲奇禮盒", price_cents: int = 12800) -> int:
    import uuid

    from domain.models import Product

    product = Product(name=name)
    db.session.add(product)
    db.session.flush()
    variant = Variant(product_id=product.id, name="", sku=f"M-{uuid.uuid4().hex[:10]}",
                      barcode="", price_cents=price_cents, stock=stock)
    db.session.add(variant)
    db.session.commit()
    return variant.id


def place(items, payment: str = "fps") -> int:
    from domain.models import PaymentMethod, ShippingMethod
    from domain.orders import Checkout, CustomerDetails, place_order

    pay = db.session.scalar(select(PaymentMethod.id).where(PaymentMethod.code == payment))
    ship = db.session.scalar(select(ShippingMethod.id).where(ShippingMethod.kind == "delivery"))
    order = place_order(Checkout(
        customer=CustomerDetails(name="陳大文", phone="9123 4567", email="tai.man@example.hk",
                                 address="旺角彌敦道 1 號"),
        items=list(items), payment_method_id=pay, shipping_method_id=ship))
    return order.id


def race(app, first, second):
    """Run both callables at the same instant in two threads (each its own app context,
    session and connection); their outcomes as ("ok", value) or ("refused", exception)."""
    import threading

    from domain.errors import DomainError

    barrier = threading.Barrier(2)
    outcomes = [None, None]

    def run(index, action):
        with app.app_context():
            barrier.wait()
            try:
                outcomes[index] = ("ok", action())
            except DomainError as exc:
                outcomes[index] = ("refused", exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate((first, second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return outcomes


def stock_deltas_scenario() -> None:
    """Add, remove, increase, decrease and a swap; stock and ledger exact after each."""
    from domain.modify import modify_order

    a, b, c = new_variant(10), new_variant(5), new_variant(3)
    order_id = place([(a, 2), (b, 1)])
    lines = {ln.variant_id: ln.id for ln in fresh(order_id).lines}
    steps = [
        ((("line", lines[a], 5), ("line", lines[b], 1), ("variant", c, 2)), (5, 4, 1)),
        ((("line", lines[a], 1), ("line", lines[b], 0)), (9, 5, 3)),
    ]
    version = 1
    for wanted, expected in steps:
        modify_order(order_id, ModifyInput(wanted, None, None), expected_version=version,
                     actor=STAFF)
        version += 1
        assert (stock_of(a), stock_of(b), stock_of(c)) == expected
    # the swap: a (×1) out, c (×3, the last three) in
    modify_order(order_id, ModifyInput((("line", lines[a], 0), ("variant", c, 3)), None, None),
                 expected_version=version, actor=STAFF)
    assert (stock_of(a), stock_of(b), stock_of(c)) == (10, 5, 0)
    for v in (a, b, c):
        assert ledger_sum(v) == stock_of(v)
    assert books_balance()


def two_staff_scenario(app) -> None:
    """Two staff save against the same version: one wins, the other is told to reload,
    and stock is what the winner's lines say."""
    from domain.modify import StaleOrder, modify_order

    a = new_variant(10)
    order_id = place([(a, 2)])
    line = fresh(order_id).lines[0].id
    outcomes = race(app,
                    lambda: modify_order(order_id, ModifyInput((("line", line, 5),), None, None),
                                         expected_version=1, actor=STAFF).version,
                    lambda: modify_order(order_id, ModifyInput((("line", line, 1),), None, None),
                                         expected_version=1, actor=STAFF).version)
    kinds = sorted(kind for kind, _v in outcomes)
    assert kinds == ["ok", "refused"], outcomes
    [loser] = [v for kind, v in outcomes if kind == "refused"]
    assert isinstance(loser, StaleOrder)
    order = fresh(order_id)
    assert order.version == 2 and len(events_of(order_id, "order_modified")) == 1
    assert stock_of(a) == 10 - order.lines[0].quantity and books_balance()


def expiry_scenario(app) -> None:
    """Modify against expiry of an unpaid order past its deadline: whichever wins,
    the order ends canceled with every unit back, once."""
    from datetime import timedelta

    from sqlalchemy import update

    from domain.models import utcnow
    from domain.modify import modify_order
    from domain.orders import expire_order

    a, b = new_variant(10), new_variant(10)
    order_id = place([(a, 2)])
    db.session.execute(update(Order).where(Order.id == order_id)
                       .values(payment_deadline_at=utcnow() - timedelta(minutes=1)))
    db.session.commit()
    line = fresh(order_id).lines[0].id
    outcomes = race(app,
                    lambda: modify_order(order_id, ModifyInput(
                        (("line", line, 4), ("variant", b, 3)), None, None),
                        expected_version=1, actor=STAFF).version,
                    lambda: expire_order(order_id))
    order = fresh(order_id)
    assert order.status == "canceled", outcomes
    assert outcomes[1][0] == "ok"  # the expiry always happens, before or after the change
    modified = outcomes[0][0] == "ok"
    assert len(events_of(order_id, "order_modified")) == (1 if modified else 0)
    assert len(events_of(order_id, "order_expired")) == 1
    assert (stock_of(a), stock_of(b)) == (10, 10) and books_balance()


def confirm_scenario(app) -> None:
    """Modify against a cash confirmation: either order, the books agree with it —
    confirmed first: the old total is paid and the difference is a balance due;
    modified first: the new total is paid."""
    from domain.balance import balance_state
    from domain.modify import modify_order
    from domain.orders import confirm_payment

    a = new_variant(10)
    order_id = place([(a, 2)])
    old_total = fresh(order_id).total_cents
    line = fresh(order_id).lines[0].id
    outcomes = race(app,
                    lambda: modify_order(order_id, ModifyInput((("line", line, 3),), None, None),
                                         expected_version=1, actor=STAFF).total_cents,
                    lambda: confirm_payment(order_id, actor=STAFF).status)
    assert [kind for kind, _v in outcomes] == ["ok", "ok"], outcomes
    order = fresh(order_id)
    assert order.status == "processing" and order.total_cents == old_total + 12800
    [modified] = events_of(order_id, "order_modified")
    [confirmed] = events_of(order_id, "payment_confirmed")
    if modified.id < confirmed.id:
        assert order.paid_cents == order.total_cents and balance_state(order).kind == "none"
    else:
        assert order.paid_cents == old_total
        assert (balance_state(order).kind, balance_state(order).cents) == ("due", 12800)
    assert stock_of(a) == 7 and books_balance()


def double_confirm_scenario(app) -> None:
    """Two staff confirm the same balance payment at once: it counts once."""
    from domain.balance import confirm_balance_payment, upload_balance_proof
    from domain.modify import modify_order
    from domain.orders import confirm_payment

    a = new_variant(10)
    order_id = place([(a, 2)])
    confirm_payment(order_id, actor=STAFF)
    line = fresh(order_id).lines[0].id
    modify_order(order_id, ModifyInput((("line", line, 3),), None, None), expected_version=1,
                 actor=STAFF)
    payment_id = upload_balance_proof(order_id, path="b.png", sha256="b" * 64).id
    outcomes = race(app, lambda: confirm_balance_payment(payment_id, actor=STAFF).status,
                    lambda: confirm_balance_payment(payment_id, actor=STAFF).status)
    assert sorted(kind for kind, _v in outcomes) == ["ok", "refused"], outcomes
    order = fresh(order_id)
    assert order.paid_cents == order.total_cents
    assert len(events_of(order_id, "balance_payment_confirmed")) == 1
