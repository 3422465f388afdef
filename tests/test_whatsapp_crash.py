"""WhatsApp delivery on real workers: the delivery job sends both channels, a 429's
retry comes from the job scheduled at its Retry-After, the sweep queues due WhatsApp
rows, and a forking worker SIGKILLed between the API call and its commit leaves the
row "sending" -> "unknown" at the sweep, with the fake API having received it exactly
once (also after more sweeps).

Real components: the session's embedded Redis and RQ's SimpleWorker (jobs_fixtures),
a ShopdeskWorker process as ``flask worker`` runs it, the fake Cloud API on loopback
(whatsapp_fixtures), this test's SQLite file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select, update

from domain.db import db, write_transaction
from domain.models import OutboxMessage, WhatsAppCharge, WhatsAppStatus
from domain.notify import outbox, whatsapp_config
from domain.notify import whatsapp_delivery as wd
from jobs import outbox as outbox_jobs
from jobs import queue as job_queue
from jobs.deadlines import enqueue_sweep

pytest_plugins = ["outbox_fixtures", "jobs_fixtures", "whatsapp_fixtures"]

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def wa(app, shop, whatsapp_api):
    app.config.update(WHATSAPP_SANDBOX_SERVER=True, PUBLIC_URL=whatsapp_api.base_url)
    whatsapp_config.use_sandbox()
    whatsapp_config.activate()

    def sink(body, headers):  # what the webhook route does with a verified body
        with app.app_context():
            try:
                wd.record_status_updates(json.loads(body))
            finally:
                db.session.remove()
        return 200

    whatsapp_api.on_webhook = sink
    return whatsapp_api


@pytest.fixture
def dispatch(app, redis_conn):
    app.config["NOTIFY_DISPATCH"] = True
    yield redis_conn
    app.config["NOTIFY_DISPATCH"] = False


def rows(channel=None) -> list[OutboxMessage]:
    db.session.rollback()
    db.session.expire_all()
    query = select(OutboxMessage).order_by(OutboxMessage.id)
    if channel:
        query = query.where(OutboxMessage.channel == channel)
    return list(db.session.scalars(query))


def charges() -> list[WhatsAppCharge]:
    db.session.rollback()
    return list(db.session.scalars(select(WhatsAppCharge)))


def wait_for(predicate, timeout: float, what: str, poll: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"not within {timeout} s: {what}")


def shift_claims_back(minutes: int) -> None:
    """As if ``minutes`` had passed since every row "sending" was claimed and stamped."""
    shift = timedelta(minutes=minutes)
    with write_transaction():
        for row in db.session.execute(
                select(OutboxMessage.id, OutboxMessage.next_attempt_at, OutboxMessage.claimed_at)
                .where(OutboxMessage.status == "sending")).all():
            db.session.execute(
                update(OutboxMessage).where(OutboxMessage.id == row.id)
                .values(next_attempt_at=row.next_attempt_at - shift,
                        claimed_at=row.claimed_at - shift if row.claimed_at else None)
                .execution_options(synchronize_session=False))


# ------------------------------------------------------------------ the job and the sweep


def test_the_delivery_job_sends_the_email_and_the_whatsapp_message(app, wa, dispatch,
                                                                   make_order, run_worker):
    order = make_order()
    assert [j.func_name for j in job_queue.get_queue().get_jobs()] == [
        "jobs.outbox.deliver_outbox_job"]
    assert run_worker()
    state = {(m.channel, m.audience): m.status for m in rows() if m.order_id == order.id}
    assert state == {("email", "customer"): "sent", ("email", "merchant"): "sent",
                     ("whatsapp", "customer"): "sent"}
    assert len(wa.sends) == 1
    # its webhooks arrive on their own: sent, delivered, read
    wa.wait_webhooks(3, timeout=10)
    wait_for(lambda: rows("whatsapp")[0].delivery_status == "read", 5, "read")


def test_a_rate_limited_message_is_retried_by_the_job_scheduled_at_its_retry_after(
        app, wa, dispatch, make_order, run_worker):
    make_order(phone="6123 0429")
    assert run_worker()
    [row] = rows("whatsapp")
    assert row.status == "failed" and len(wa.sends) == 1
    registry = ScheduledJobRegistry(queue=job_queue.get_queue())
    [job_id] = registry.get_job_ids()
    assert job_id.startswith("outbox-retry-")
    assert run_worker() is False or len(wa.sends) == 1  # not due yet: nothing sent
    assert len(wa.sends) == 1
    time.sleep(2.2)  # the fake's Retry-After: 2
    assert run_worker()
    assert len(wa.sends) == 2
    assert rows("whatsapp")[0].attempts == 2


def test_the_sweep_queues_due_whatsapp_rows_written_without_a_job(app, wa, redis_conn,
                                                                 make_order, run_worker):
    make_order(email="")  # dispatch off: the store's email and the WhatsApp row, no job
    assert sorted(m.channel for m in rows()) == ["email", "whatsapp"]
    assert job_queue.get_queue().get_jobs() == []
    assert outbox_jobs.sweep()["outbox_due"] == 2  # both channels count
    assert run_worker()
    assert [m.status for m in rows()] == ["sent", "sent"]
    assert len(wa.sends) == 1


# ------------------------------------------------------------------ a real worker killed

WORKER = """
import json, sys
from app import create_app
from jobs.worker import run_worker
run_worker(create_app(json.loads(sys.argv[1])), sweep=False)
"""


@pytest.fixture
def worker_process(app, redis_conn, db_path, tmp_path):
    """One ShopdeskWorker process on this test's database and Redis; it and every
    process it started are killed at the end, by pid."""
    socket_path = redis_conn.connection_pool.connection_kwargs["path"]
    started: list[psutil.Process] = []

    def start(**config) -> subprocess.Popen:
        config = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{db_path}", "SECRET_KEY": "test-secret",
                  "REDIS_URL": f"unix://{socket_path}", "MAIL_FOLDER": app.config["MAIL_FOLDER"],
                  "UPLOAD_FOLDER": app.config["UPLOAD_FOLDER"],
                  "GENERATED_FOLDER": app.config["GENERATED_FOLDER"], **config}
        log = open(tmp_path / f"worker-{len(started)}.log", "wb")  # noqa: SIM115
        env = {k: v for k, v in os.environ.items() if k != "SHOPDESK_EXIT_WITH_PARENT"}
        process = subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(config)], cwd=ROOT,
                                   env={**env, "PYTHONUNBUFFERED": "1"}, stdout=log,
                                   stderr=subprocess.STDOUT)
        started.append(psutil.Process(process.pid))
        from rq import Worker

        wait_for(lambda: process.poll() is None and any(
            w.pid == process.pid and w.get_state() == "idle"
            for w in Worker.all(connection=redis_conn)), 60, "the worker is up")
        return process

    yield start
    everyone = []
    for process in started:
        try:
            everyone += [process, *process.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    for process in everyone:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(everyone, timeout=10)


@pytest.mark.slow
def test_a_worker_killed_between_the_api_call_and_the_commit_never_sends_twice(
        app, wa, redis_conn, make_order, worker_process, run_worker):
    make_order()
    [row] = rows("whatsapp")
    wa.hold()  # the API takes the message, then holds its answer
    worker = worker_process(PUBLIC_URL=wa.base_url, WHATSAPP_SANDBOX_SERVER=True)
    outbox_jobs.queue_delivery(force=True)
    assert wa.wait_held(1, timeout=60), "the send is in flight"
    assert len(wa.sent) == 1
    # the worker and its work horse are killed, as by the OOM killer
    tree = [psutil.Process(worker.pid), *psutil.Process(worker.pid).children(recursive=True)]
    assert len(tree) >= 2
    for process in tree:
        process.send_signal(signal.SIGKILL)
    psutil.wait_procs(tree, timeout=10)
    wa.release()  # the fake answers a dead connection; its webhooks still come
    wa.wait_webhooks(3, timeout=10)

    [left] = rows("whatsapp")
    assert left.status == "sending" and left.claimed_at is not None
    assert left.params["template"] == "shopdesk_order_confirmation"
    assert left.provider_id is None  # the answer never reached the database
    assert [c.state for c in charges()] == ["reserved"]  # held against the cap, not billed
    # the webhooks of the lost message are kept, though no row knows its id yet
    db.session.rollback()
    assert {s.provider_message_id for s in db.session.scalars(select(WhatsAppStatus))} == {
        wa.sent[0]}

    # once STUCK_AFTER has passed, the sweep (on another worker) settles it
    shift_claims_back(int(outbox.STUCK_AFTER.total_seconds() // 60) + 1)
    enqueue_sweep()
    assert run_worker()
    [final] = rows("whatsapp")
    assert (final.status, final.last_error) == ("unknown", outbox.STUCK_ERROR)
    for _ in range(2):
        enqueue_sweep()
        run_worker()
    assert rows("whatsapp")[0].status == "unknown"
    assert len(wa.sends) == 1 and len(wa.sent) == 1  # exactly once
    assert [c.state for c in charges()] == ["reserved"]
