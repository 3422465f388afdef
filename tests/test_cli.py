"""CLI commands run through Flask's CLI runner against the real database."""

from __future__ import annotations

from sqlalchemy import func, select

from domain.db import db
from domain.models import Customer, Order, OrderEvent, User, Variant
from domain.status import OrderStatus


def test_create_user(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["create-user", "--email", "Boss@Shop.HK", "--password",
                                 "a-long-password", "--role", "owner"])
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(User).where(User.email == "boss@shop.hk"))
    assert user.role == "owner" and user.password_hash.startswith("$argon2")


def test_create_user_refuses_bad_input(app):
    runner = app.test_cli_runner()
    short = runner.invoke(args=["create-user", "--email", "a@b.hk", "--password", "short"])
    assert short.exit_code != 0 and "at least 10" in short.output
    bad_role = runner.invoke(args=["create-user", "--email", "a@b.hk", "--password",
                                   "long-enough-pw", "--role", "admin"])
    assert bad_role.exit_code != 0
    runner.invoke(args=["create-user", "--email", "a@b.hk", "--password", "long-enough-pw"])
    dup = runner.invoke(args=["create-user", "--email", "A@b.hk", "--password", "long-enough-pw"])
    assert dup.exit_code != 0 and "already exists" in dup.output
    assert db.session.scalar(select(func.count(User.id))) == 1


def test_seed_demo_is_realistic_and_deterministic(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["seed-demo", "--orders", "600", "--seed", "7"])
    assert result.exit_code == 0, result.output
    assert "Demo login: owner@example.com" in result.output
    db.session.rollback()
    assert db.session.scalar(select(func.count(Order.id))) == 600
    statuses = set(db.session.scalars(select(Order.status).distinct()))
    assert {s.value for s in OrderStatus} <= statuses
    assert None in statuses  # unpaid drafts
    sources = set(db.session.scalars(select(Order.source).distinct()))
    assert sources == {"online_store", "on_behalf", "live_stream", "api"}
    names = db.session.scalars(select(Customer.name)).all()
    assert any("\u4e00" <= n[0] <= "\u9fff" for n in names)
    assert any(n.isascii() for n in names)
    assert all(len(p.replace(" ", "")) == 8 for p in db.session.scalars(select(Customer.phone)))
    assert db.session.scalar(select(func.count(Variant.id))) > 30
    assert db.session.scalar(select(func.count(OrderEvent.id))) > 600
    # totals are consistent with the lines
    order = db.session.scalar(select(Order).where(Order.kind == "placed").limit(1))
    assert order.subtotal_cents == sum(ln.line_total_cents for ln in order.lines)
    assert order.total_cents == (order.subtotal_cents - order.discount_cents
                                 + order.shipping_fee_cents + order.extra_charge_cents)
    first_numbers = db.session.scalars(select(Order.customer_name).order_by(Order.id).limit(20)).all()

    # the same seed gives the same store
    db.session.execute(OrderEvent.__table__.delete())
    from domain.models import OrderLine
    db.session.execute(OrderLine.__table__.delete())
    db.session.execute(Order.__table__.delete())
    db.session.execute(Customer.__table__.delete())
    db.session.commit()
    runner.invoke(args=["seed-demo", "--orders", "600", "--seed", "7"])
    db.session.rollback()
    again = db.session.scalars(select(Order.customer_name).order_by(Order.id).limit(20)).all()
    assert again == first_numbers


def test_seed_demo_if_empty_leaves_existing_orders(app, make_order):
    make_order()
    result = app.test_cli_runner().invoke(args=["seed-demo", "--orders", "50", "--if-empty"])
    assert result.exit_code == 0 and "left as it is" in result.output
    db.session.rollback()
    assert db.session.scalar(select(func.count(Order.id))) == 1
