"""Races settled by the database: real threads, a real SQLite file, 100 rounds each.

Each round places an unpaid order whose deadline has just passed, then two
threads (each with its own app context, so its own session and connection)
start at the same barrier: the expiry against a proof upload, or the expiry
against a staff confirmation. Exactly one must win, the loser must get a
clear message, and stock must come back at most once.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from io import BytesIO
from pathlib import Path

import pytest
from sqlalchemy import func, select

from domain.actors import Actor
from domain.db import db
from domain.deadlines import expire_if_due
from domain.errors import DomainError
from domain.models import Order, OrderEvent, Variant
from domain.orders import confirm_payment
from domain.proofs import submit_proof

pytest_plugins = ["jobs_fixtures"]

ROUNDS = 100
STAFF = Actor("staff", 1, "Race tester")


def race(app, first, second):
    """Run both callables at the same instant in two threads; return their outcomes."""
    barrier = threading.Barrier(2)
    outcomes = [None, None]

    def run(index, action):
        with app.app_context():
            barrier.wait()
            try:
                outcomes[index] = ("ok", action())
            except DomainError as exc:
                outcomes[index] = ("refused", str(exc))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate((first, second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return outcomes


def counts(order_id):
    db.session.rollback()
    rows = db.session.execute(select(OrderEvent.type, func.count()).where(
        OrderEvent.order_id == order_id).group_by(OrderEvent.type)).all()
    return dict(rows)


@pytest.mark.slow
def test_expiry_against_proof_upload(app, place_unpaid, make_variant, samples):
    variant = make_variant(stock=ROUNDS * 2 + 10)
    png = samples.image_bytes("PNG")
    upload_root = Path(app.config["UPLOAD_FOLDER"])
    expected_stock = variant.stock
    wins = {"expire": 0, "upload": 0}
    for _ in range(ROUNDS):
        order, _ = place_unpaid(placed_ago=timedelta(days=2, seconds=1), deadline_days=2,
                                variant=variant, quantity=2)
        expected_stock -= 2
        order_id = order.id  # plain int: threads must not touch this session's objects
        expire, upload = race(app, lambda order_id=order_id: expire_if_due(order_id),
                              lambda order_id=order_id: submit_proof(order_id, BytesIO(png)).status)
        events = counts(order_id)
        status = db.session.get(Order, order_id).status
        if expire == ("ok", "expired"):
            # expiry won: the upload was refused with a message, its file removed
            assert upload[0] == "refused" and "was canceled" in upload[1], upload
            assert status == "canceled" and events.get("proof_uploaded") is None
            expected_stock += 2
            wins["expire"] += 1
        else:
            # upload won: the expiry did nothing
            assert upload[0] == "ok" and expire == ("ok", "skipped: order is Payment pending "
                                                          "confirmation"), (expire, upload)
            assert status == "pending_confirmation" and events.get("order_expired") is None
            wins["upload"] += 1
        assert events.get("order_expired", 0) + events.get("proof_uploaded", 0) == 1
        assert db.session.get(Variant, variant.id).stock == expected_stock
    # files on disk: exactly one proof (+ thumbnail) per upload that won
    files = [p for p in upload_root.rglob("*") if p.is_file()]
    assert len(files) == 2 * wins["upload"]
    assert db.session.scalar(select(func.count(Order.id)).where(
        Order.proof_path.is_not(None))) == wins["upload"]
    print(f"expiry vs upload over {ROUNDS} rounds: {wins}")


@pytest.mark.slow
def test_expiry_against_confirmation(app, place_unpaid, make_variant):
    variant = make_variant(stock=ROUNDS * 3 + 10)
    expected_stock = variant.stock
    wins = {"expire": 0, "confirm": 0}
    for _ in range(ROUNDS):
        order, _ = place_unpaid(placed_ago=timedelta(days=2, seconds=1), deadline_days=2,
                                variant=variant, quantity=3)
        expected_stock -= 3
        order_id = order.id
        expire, confirm = race(app, lambda order_id=order_id: expire_if_due(order_id),
                               lambda order_id=order_id: confirm_payment(order_id, actor=STAFF).status)
        events = counts(order_id)
        status = db.session.get(Order, order_id).status
        if expire == ("ok", "expired"):
            assert confirm[0] == "refused" and "cannot be confirmed as paid" in confirm[1]
            assert status == "canceled"
            expected_stock += 3
            wins["expire"] += 1
        else:
            assert confirm[0] == "ok" and expire == ("ok", "skipped: order is Processing")
            assert status == "processing"
            wins["confirm"] += 1
        assert events.get("order_expired", 0) + events.get("payment_confirmed", 0) == 1
        assert db.session.get(Variant, variant.id).stock == expected_stock
    print(f"expiry vs confirm over {ROUNDS} rounds: {wins}")


@pytest.mark.slow
def test_scheduled_job_against_sweep(app, place_unpaid, make_variant):
    """The job at the deadline and the sweep both fire: one expiry, one restock."""
    from domain.deadlines import sweep_overdue

    variant = make_variant(stock=ROUNDS + 10)
    expected = variant.stock
    for _ in range(ROUNDS // 2):
        order, _ = place_unpaid(placed_ago=timedelta(days=2, seconds=1), deadline_days=2,
                                variant=variant, quantity=1)
        order_id = order.id
        job, sweep = race(app, lambda order_id=order_id: expire_if_due(order_id), lambda: sweep_overdue())
        assert job[0] == "ok" and sweep[0] == "ok"
        assert (job[1] == "expired") != (sweep[1] == 1), (job, sweep)
        assert counts(order_id).get("order_expired") == 1
        assert db.session.get(Variant, variant.id).stock == expected
