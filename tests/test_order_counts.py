"""The kept order counts (issue 14): the status tabs, To do and the nav badges read
order_count, which triggers on `orders` keep in the same transaction as each change.
These tests change orders every way the domain does and compare the kept counts with
a real count after each step; then they break the counts and repair them, and race
transitions against the recount."""

from __future__ import annotations

import random
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text, update

from domain import order_counts
from domain.actors import Actor
from domain.db import db, write_transaction
from domain.errors import DomainError
from domain.models import Order, OrderCount
from domain.orders import (
    confirm_payment,
    decline_proof,
    expire_orders,
    reject_order,
    ship_order,
    upload_proof,
)

pytest_plugins = ["outbox_fixtures"]  # pg_app: a fresh PostgreSQL database, real migrations

STAFF = Actor("staff", 1, "Counter")


def true_counts() -> dict[tuple[str, str], int]:
    status = func.coalesce(Order.status, "")
    return {(k, s): n for k, s, n in db.session.execute(
        select(Order.kind, status, func.count()).group_by(Order.kind, status))}


def kept_counts() -> dict[tuple[str, str], int]:
    db.session.rollback()  # a fresh read, not this session's snapshot
    return {key: n for key, n in order_counts.all_counts().items() if n}


def assert_in_step():
    assert kept_counts() == true_counts()
    assert order_counts.recount(repair=False) == []


def test_every_transition_keeps_the_counts(app, make_order):
    assert kept_counts() == {}
    orders = [make_order() for _ in range(6)]
    assert kept_counts() == {("placed", "pending_payment"): 6}
    ids = [o.id for o in orders]
    upload_proof(ids[0], path="a.png", sha256="a" * 64)
    upload_proof(ids[1], path="b.png", sha256="b" * 64)
    assert_in_step()
    assert order_counts.status_counts()["pending_confirmation"] == 2
    confirm_payment(ids[0], actor=STAFF)
    decline_proof(ids[1], "Wrong amount", actor=STAFF)
    assert_in_step()
    ship_order(ids[0], actor=STAFF, tracking_code="SF1234567890")
    reject_order(ids[2], "Out of stock", actor=STAFF)
    assert_in_step()
    placed_at = db.session.get(Order, ids[3]).placed_at
    with write_transaction() as session:  # a deadline in the past, for the sweep
        session.execute(update(Order).where(Order.id == ids[3]).values(
            payment_deadline_at=placed_at + timedelta(hours=1)))
        session.execute(update(Order).where(Order.id == ids[4]).values(
            payment_deadline_at=placed_at + timedelta(days=60)))
    assert expire_orders([ids[3], ids[4]], now=placed_at + timedelta(days=30)) == [ids[3]]
    assert_in_step()
    # shipped: 0; declined back to pending payment: 1; rejected: 2; expired: 3; 4, 5 untouched
    assert order_counts.status_counts() == {
        "pending_payment": 3, "pending_confirmation": 0, "processing": 0, "completed": 1,
        "canceled": 2, "": 6, "todo": 0}
    assert order_counts.list_counts() == {"paid": 6, "unpaid": 0}


def test_drafts_count_as_unpaid_and_move_when_placed_or_deleted(app, make_variant):
    from domain.drafts import DraftInput, checkout_draft, create_draft, delete_draft
    from domain.models import PaymentMethod, ShippingMethod
    from domain.orders import CustomerDetails

    variant = make_variant(stock=5)
    shipping = db.session.scalar(select(ShippingMethod.id).where(ShippingMethod.kind == "delivery"))
    fps = db.session.scalar(select(PaymentMethod.id).where(PaymentMethod.code == "fps"))

    def draft():
        return create_draft(DraftInput(
            customer=CustomerDetails(name="陳大文", phone="9123 4567", email="a@example.hk",
                                     address="旺角"),
            items=[(variant.id, 1)], shipping_method_id=shipping), actor=STAFF)

    first, second = draft(), draft()
    assert order_counts.list_counts() == {"paid": 0, "unpaid": 2}
    assert_in_step()
    checkout_draft(first.id, fps)
    delete_draft(second.id, actor=STAFF)
    assert order_counts.list_counts() == {"paid": 1, "unpaid": 0}
    assert order_counts.status_counts()["pending_payment"] == 1
    assert_in_step()


def test_a_rolled_back_change_leaves_the_counts(app, make_order):
    order = make_order()
    before = kept_counts()
    with pytest.raises(RuntimeError):
        with write_transaction() as session:
            session.execute(update(Order).where(Order.id == order.id).values(status="completed"))
            assert order_counts.all_counts()[("placed", "completed")] == 1  # inside: moved
            raise RuntimeError("the action failed after its UPDATE")
    assert kept_counts() == before == true_counts()
    # A refused transition (shipping an unpaid order) changes nothing either.
    with pytest.raises(DomainError):
        ship_order(order.id, actor=STAFF)
    assert kept_counts() == before


def test_the_list_tabs_and_the_nav_read_the_kept_counts(owner_client, make_order):
    for _ in range(3):
        make_order()
    with write_transaction() as session:  # a drifted table, to see who reads it
        session.execute(update(OrderCount).values(n=41))
    page = owner_client.get("/orders?status=pending_payment").get_data(as_text=True)
    assert ">41<" in page.replace(" ", "")  # the tab shows the kept count
    drifts = order_counts.recount()
    assert [(d.kind, d.status, d.kept, d.counted) for d in drifts] == [
        ("placed", "pending_payment", 41, 3)]
    page = owner_client.get("/orders?status=pending_payment").get_data(as_text=True)
    assert ">3<" in page.replace(" ", "") and ">41<" not in page.replace(" ", "")
    # A filtered list counts for real: the kept counts hold no filters.
    filtered = owner_client.get("/orders?q=陳大文", headers={"HX-Request": "true"})
    assert filtered.status_code == 200


def test_the_recount_command_checks_and_repairs(app, make_order):
    make_order()
    make_order()
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["recount-orders", "--check"])
    assert ok.exit_code == 0 and "match" in ok.output
    with write_transaction() as session:
        session.execute(text("DELETE FROM order_count"))
    checked = runner.invoke(args=["recount-orders", "--check"])
    assert checked.exit_code == 1 and "Drift: placed/pending_payment: kept 0, counted 2" \
        in checked.output
    assert kept_counts() == {}  # --check changed nothing
    repaired = runner.invoke(args=["recount-orders"])
    assert repaired.exit_code == 0 and "Repaired" in repaired.output
    assert_in_step()


def _race_transitions_against_recount(app, order_ids, rounds_per_thread=25):
    """Two threads move orders through their statuses while a third recounts."""
    stop = threading.Event()
    errors: list[BaseException] = []
    repaired: list = []

    def mover(ids, seed):
        rng = random.Random(seed)
        with app.app_context():
            try:
                for _ in range(rounds_per_thread):
                    order_id = rng.choice(ids)
                    action = rng.choice(["upload", "confirm", "decline", "ship", "reject"])
                    try:
                        if action == "upload":
                            upload_proof(order_id, path=f"{order_id}.png", sha256="c" * 64)
                        elif action == "confirm":
                            confirm_payment(order_id, actor=STAFF)
                        elif action == "decline":
                            decline_proof(order_id, "Blurred", actor=STAFF)
                        elif action == "ship":
                            ship_order(order_id, actor=STAFF)
                        else:
                            reject_order(order_id, "Changed mind", actor=STAFF)
                    except DomainError:
                        pass  # refused in this status: fine, it changed nothing
            except BaseException as exc:  # noqa: BLE001 (reported below)
                errors.append(exc)
            finally:
                db.session.remove()

    def recounter():
        with app.app_context():
            try:
                while not stop.is_set():
                    repaired.extend(order_counts.recount())
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
            finally:
                db.session.remove()

    half = len(order_ids) // 2
    movers = [threading.Thread(target=mover, args=(order_ids[:half], 1)),
              threading.Thread(target=mover, args=(order_ids[half:], 2))]
    checker = threading.Thread(target=recounter)
    checker.start()
    for t in movers:
        t.start()
    for t in movers:
        t.join(120)
    stop.set()
    checker.join(60)
    assert not errors, errors
    # The recount ran beside every transition and never found a count out of step
    # (it would have "repaired" it): the triggers and the recount agree throughout.
    assert repaired == []


def test_transitions_racing_the_recount_on_sqlite(app, make_order):
    ids = [make_order(stock=50).id for _ in range(12)]
    _race_transitions_against_recount(app, ids)
    assert_in_step()


def test_transitions_racing_the_recount_on_postgresql(pg_app):
    """The same race on PostgreSQL: row locks and READ COMMITTED instead of one writer
    (the recount locks the count table; the triggers bump rows in a fixed order)."""
    from test_modify_domain_helpers import new_variant, place

    with pg_app.app_context():
        variant = new_variant(stock=500)
        ids = [place([(variant, 1)]) for _ in range(12)]
        db.session.remove()
        _race_transitions_against_recount(pg_app, ids)
        assert_in_step()
        db.session.remove()


def test_on_postgresql_a_change_locks_its_count_row_only_at_commit(pg_app):
    """Deferred count triggers (issue 14): while one transaction has changed an order
    and not committed, another can still bump the same count row (before, it waited
    for the first to end: PostgreSQL checkouts ran one at a time). The counts are
    exact once it commits, and untouched when it rolls back."""
    from test_modify_domain_helpers import new_variant, place

    with pg_app.app_context():
        variant = new_variant(stock=50)
        first, second = place([(variant, 1)]), place([(variant, 1)])
        db.session.remove()
        before = kept_counts()
        engine = db.engine
        for outcome in ("rollback", "commit"):
            with engine.connect() as slow, engine.connect() as other:
                slow.execute(text("UPDATE orders SET status = 'processing' WHERE id = :id"),
                             {"id": first})
                other.execute(text("SET lock_timeout = '2s'"))
                # Blocked (and refused after 2 s) if the slow transaction held the row.
                other.execute(text("UPDATE orders SET status = 'processing' WHERE id = :id"),
                              {"id": second})
                other.commit()
                getattr(slow, outcome)()
            expected = dict(before)
            moved = 1 if outcome == "rollback" else 2
            expected[("placed", "pending_payment")] = before[("placed", "pending_payment")] - moved
            expected[("placed", "processing")] = before.get(("placed", "processing"), 0) + moved
            assert {k: v for k, v in expected.items() if v} == kept_counts() == true_counts()
            if outcome == "rollback":
                with engine.begin() as conn:  # put the second back for the next round
                    conn.execute(text("UPDATE orders SET status = 'pending_payment' "
                                      "WHERE id = :id"), {"id": second})
                assert kept_counts() == before
        db.session.remove()
