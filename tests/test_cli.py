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


def test_init_store_makes_an_empty_store_with_its_owner(app):
    """`make run DEMO=0`: an owner and the defaults, nothing else; run twice, nothing more."""
    from domain.inventory import reconcile
    from domain.models import Product

    runner = app.test_cli_runner()
    args = ["init-store", "--owner-email", "owner@example.com", "--owner-password",
            "shopdesk-demo"]
    first = runner.invoke(args=args)
    assert first.exit_code == 0, first.output
    assert "Owner login: owner@example.com" in first.output
    again = runner.invoke(args=args)
    assert again.exit_code == 0 and "Owner login" not in again.output
    db.session.rollback()
    assert [u.role for u in db.session.scalars(select(User))] == ["owner"]
    assert db.session.scalar(select(func.count(Product.id))) == 0
    assert db.session.scalar(select(func.count(Order.id))) == 0
    assert reconcile() == []


def test_init_store_refuses_a_weak_owner_password(app):
    result = app.test_cli_runner().invoke(args=["init-store", "--owner-email", "a@b.hk",
                                                "--owner-password", "short"])
    assert result.exit_code != 0 and "at least 10" in result.output
    db.session.rollback()
    assert db.session.scalar(select(func.count(User.id))) == 0


def test_a_fresh_store_takes_no_manual_payment_until_its_details_are_filled(tmp_path):
    """ensure_store_defaults on a new database: FPS, bank transfer and PayMe start off."""
    from flask_migrate import upgrade

    from app import create_app
    from domain.models import PaymentMethod
    from domain.store import ensure_store_defaults

    fresh = create_app({"TESTING": True, "SECRET_KEY": "x",
                        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'fresh.db'}"})
    with fresh.app_context():
        upgrade()
        ensure_store_defaults()
        enabled = {m.code: m.enabled for m in db.session.scalars(select(PaymentMethod))}
        db.session.remove()
        db.engine.dispose()
    assert enabled["fps"] is enabled["bank_transfer"] is enabled["payme"] is False
    assert enabled["credit_card"] is True
