"""Jobs against a Redis server over TCP (REDIS_URL), not only the embedded one.

Uses the Redis on loopback (``SHOPDESK_TEST_REDIS`` overrides); skipped when none answers.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
import redis
from sqlalchemy import select

from domain.db import db
from domain.models import Job, Order, Variant, utcnow
from jobs import queue as job_queue

URL = os.environ.get("SHOPDESK_TEST_REDIS", "redis://127.0.0.1:6379/15")


@pytest.fixture
def server_redis(app):
    conn = redis.Redis.from_url(URL, socket_connect_timeout=2)
    try:
        conn.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.skip(f"No Redis server at {URL}: {exc}")
    conn.flushdb()
    app.config["REDIS_URL"] = URL
    app.extensions.pop(job_queue._EXTENSION, None)
    job_queue.use_app(app)
    yield conn
    app.extensions.pop(job_queue._EXTENSION, None)
    conn.flushdb()


def _burst(conn):
    from rq import SimpleWorker

    return SimpleWorker([job_queue.get_queue()], connection=conn).work(
        burst=True, with_scheduler=True, logging_level="WARNING")


def test_export_job_on_a_redis_server(app, server_redis, make_order):
    from jobs.exports import export_orders_job

    orders = [make_order(name=f"客人{i}") for i in range(3)]
    job = job_queue.enqueue_job("export_orders", export_orders_job,
                                order_ids=[o.id for o in orders], total=3)
    assert isinstance(job_queue.get_redis().connection_pool.connection_kwargs.get("port"), int)
    assert _burst(server_redis)
    db.session.rollback()  # a fresh snapshot: the worker wrote in its own transactions
    done = db.session.get(Job, job.id)
    assert (done.status, done.progress) == ("done", 3) and done.result_path.endswith(".xlsx")


def test_sweep_job_on_a_redis_server(app, server_redis, make_variant, make_order):
    from jobs.deadlines import sweep_job

    variant = make_variant(stock=4)
    order = make_order(items=[(variant.id, 3)])
    db.session.query(Order).filter_by(id=order.id).update(
        {"payment_deadline_at": utcnow() - timedelta(minutes=1)})
    db.session.commit()
    job_queue.get_queue().enqueue(sweep_job)
    assert _burst(server_redis)
    db.session.rollback()  # a fresh snapshot: the worker wrote in its own transactions
    assert db.session.scalar(select(Order.status).where(Order.id == order.id)) == "canceled"
    assert db.session.get(Variant, variant.id).stock == 4
