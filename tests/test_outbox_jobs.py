"""Outbox delivery on real workers: the after-commit hook queues one job (the
NX key), a burst worker delivers, nothing is queued for a rolled-back action,
rows written while Redis was down wait for the sweep, stuck sends become
"unknown" and are never resent (also when a real worker is SIGKILLed in the
middle of a send), failed rows come back at their retry time, and the desk
alert is published on Redis pub/sub.

Real components throughout: the session's embedded Redis, RQ's SimpleWorker
in burst mode (jobs_fixtures), ShopdeskWorker processes as ``flask worker``
runs them, aiosmtpd on loopback (smtp_fixtures), this test's SQLite file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import psutil
import pytest
from rq.registry import FinishedJobRegistry, ScheduledJobRegistry
from sqlalchemy import select, update

from domain.db import db, write_transaction
from domain.models import OutboxMessage, utcnow
from domain.notify import delivery, outbox
from domain.orders import add_note
from domain.store import get_settings
from jobs import outbox as outbox_jobs
from jobs import queue as job_queue
from jobs.deadlines import enqueue_sweep

pytest_plugins = ["jobs_fixtures", "smtp_fixtures"]

ROOT = Path(__file__).resolve().parents[1]
SHOP = "orders@cookielab.hk"
CUSTOMER = "tai.man@example.hk"


@pytest.fixture
def shop(app):
    settings = get_settings()
    settings.name = "曲奇實驗室 Cookie Lab"
    settings.notification_email = SHOP
    db.session.commit()
    return settings


@pytest.fixture
def dispatch(app, redis_conn, shop):
    """Commits queue delivery and publish alerts, as in production."""
    app.config["NOTIFY_DISPATCH"] = True
    yield redis_conn
    app.config["NOTIFY_DISPATCH"] = False


def use_smtp(app, server) -> None:
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=str(server.port), SMTP_SECURITY="none",
                      MAIL_FROM=SHOP, SMTP_TIMEOUT="5")


def rows() -> list[OutboxMessage]:
    db.session.rollback()
    db.session.expire_all()
    return list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def statuses() -> dict[str, str]:
    return {m.recipient if m.audience == "customer" else f"{m.recipient}#{m.order_id}": m.status
            for m in rows()}


def queued_jobs() -> list[str]:
    return [job.func_name for job in job_queue.get_queue().get_jobs()]


def finished_deliveries() -> int:
    registry = FinishedJobRegistry(queue=job_queue.get_queue())
    return sum(1 for job_id in registry.get_job_ids()
               if job_queue.get_queue().fetch_job(job_id).func_name
               == "jobs.outbox.deliver_outbox_job")


def never_twice(server) -> Counter:
    counts = Counter(r.message_id for r in server.handler.delivered)
    assert counts and all(n == 1 for n in counts.values()), counts
    return counts


def wait_for(predicate, timeout: float, what: str, poll: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"not within {timeout} s: {what}")


def as_if_minutes_passed(minutes: int) -> None:
    """Move the clocks of every claimed row back, as if ``minutes`` had gone by."""
    shift = timedelta(minutes=minutes)
    with write_transaction():
        # (SQLite keeps datetimes as text: the arithmetic is done here, row by row.)
        for row in db.session.execute(
                select(OutboxMessage.id, OutboxMessage.next_attempt_at, OutboxMessage.claimed_at)
                .where(OutboxMessage.status == "sending")).all():
            db.session.execute(
                update(OutboxMessage).where(OutboxMessage.id == row.id)
                .values(next_attempt_at=row.next_attempt_at - shift,
                        claimed_at=row.claimed_at - shift if row.claimed_at else None)
                .execution_options(synchronize_session=False))


# ------------------------------------------------------------------ queued after commit


def test_placing_an_order_queues_delivery_and_a_burst_worker_delivers_both(
        app, dispatch, make_order, run_worker):
    order = make_order(email=CUSTOMER)
    # one job, queued by the commit; nothing sent yet
    assert queued_jobs() == ["jobs.outbox.deliver_outbox_job"]
    assert {m.status for m in rows()} == {"pending"}

    assert run_worker()
    messages = rows()
    assert sorted((m.audience, m.recipient, m.status) for m in messages) == [
        ("customer", CUSTOMER, "sent"), ("merchant", SHOP, "sent")]
    # copy-only mode: the .eml copy is the delivery, one per row, named by its id
    folder = Path(app.config["MAIL_FOLDER"])
    assert sorted(p.name for p in folder.glob("*.eml")) == sorted(f"{m.id}.eml" for m in messages)
    for message in messages:
        assert Path(message.copy_path) == folder / f"{message.id}.eml"
        mime = message_from_bytes(Path(message.copy_path).read_bytes(), policy=policy.default)
        assert mime["To"] == message.recipient and order.number in mime["Subject"]
        assert mime["Message-ID"].startswith(f"<outbox-{message.id}.")
        assert message.sent_at is not None and message.subject == mime["Subject"]


def test_a_rolled_back_action_queues_nothing(app, dispatch, make_variant, make_order, owner):
    variant = make_variant()
    pubsub = dispatch.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(outbox_jobs.ALERTS_CHANNEL)
    with pytest.raises(RuntimeError), write_transaction():
        make_order(items=[(variant.id, 1)], email=CUSTOMER)  # its write joins this one
        raise RuntimeError("the action fails after placing")
    assert rows() == []
    assert queued_jobs() == [] and not dispatch.exists(outbox_jobs.QUEUED_KEY)
    assert pubsub.get_message(timeout=0.5) is None
    pubsub.close()


def test_many_commits_in_a_row_queue_one_job_not_one_per_commit(app, dispatch, make_order,
                                                                 run_worker):
    for i in range(20):
        make_order(email=f"customer{i}@example.hk")
    assert queued_jobs() == ["jobs.outbox.deliver_outbox_job"]  # the NX key held the rest back
    assert dispatch.ttl(outbox_jobs.QUEUED_KEY) > 0
    assert run_worker()
    assert Counter(statuses().values()) == {"sent": 40}
    assert finished_deliveries() <= 2  # the job, and one its full first batch called in
    # the job cleared the key as it started: the next commit gets a job of its own
    assert not dispatch.exists(outbox_jobs.QUEUED_KEY)
    make_order(email="late@example.hk")
    assert queued_jobs() == ["jobs.outbox.deliver_outbox_job"]
    assert run_worker()
    assert Counter(statuses().values()) == {"sent": 42}


def test_a_backlog_bigger_than_a_batch_lets_another_worker_join(app, redis_conn, shop,
                                                                make_order, run_worker,
                                                                monkeypatch):
    monkeypatch.setattr(delivery, "CLAIM_BATCH", 2)
    for i in range(3):
        make_order(email=f"customer{i}@example.hk")  # 6 rows waiting (dispatch off)
    assert outbox_jobs.queue_delivery(force=True)  # as the sweep does
    # While the job runs a full claim queues one more job (NX), for an idle worker.
    assert run_worker()
    assert Counter(statuses().values()) == {"sent": 6}
    assert finished_deliveries() == 2  # the first job and the one it called in (found nothing)


def test_a_job_stops_claiming_after_its_time_and_queues_its_successor(
        app, redis_conn, shop, make_order, run_worker, monkeypatch):
    monkeypatch.setattr(delivery, "CLAIM_BATCH", 2)
    monkeypatch.setattr(outbox_jobs, "JOB_MAX_SECONDS", 0)
    for i in range(3):
        make_order(email=f"customer{i}@example.hk")
    outbox_jobs.queue_delivery(force=True)
    assert run_worker()
    assert Counter(statuses().values()) == {"sent": 6}
    assert finished_deliveries() >= 3  # one batch per job, each queueing the next


# ------------------------------------------------------------------ Redis down, stuck rows, retries


def test_rows_written_while_redis_is_down_wait_for_the_sweep(app, dispatch, make_order,
                                                             run_worker):
    # given Redis unreachable at commit time (a closed port)
    app.extensions.pop(job_queue._EXTENSION, None)
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    try:
        order = make_order(email=CUSTOMER)  # placing still works
    finally:
        app.config["REDIS_URL"] = ""
        app.extensions[job_queue._EXTENSION] = dispatch
    assert {m.status for m in rows()} == {"pending"} and len(rows()) == 2
    assert queued_jobs() == []  # the job was lost with Redis
    # when a worker's sweep runs, it queues their delivery, and the worker delivers
    enqueue_sweep()
    assert run_worker()
    assert {(m.order_id, m.status) for m in rows()} == {(order.id, "sent")}


def test_stuck_sends_become_unknown_via_the_sweep_and_are_never_resent(
        app, redis_conn, shop, make_order, run_worker, smtp_server):
    server = smtp_server()
    use_smtp(app, server)
    make_order(email=CUSTOMER)
    # a worker claimed both rows, began sending the first (stamped), then died
    ids, token = outbox.claim_due()
    began, not_begun = ids
    assert outbox.record_rendered(began, token, subject="SD1", copy_path=None)
    as_if_minutes_passed(10)

    enqueue_sweep()
    assert run_worker()
    by_id = {m.id: m for m in rows()}
    assert by_id[began].status == "unknown" and by_id[began].last_error == outbox.STUCK_ERROR
    # the row whose send never began was surely not sent: back in the queue, delivered
    assert by_id[not_begun].status == "sent" and by_id[not_begun].attempts == 1
    assert [r.rcpt_tos for r in server.handler.delivered] == [[by_id[not_begun].recipient]]
    # later sweeps and deliveries never touch the unknown one
    for _ in range(2):
        enqueue_sweep()
        run_worker()
        outbox_jobs.queue_delivery(force=True)
        run_worker()
    assert fresh_status(began) == "unknown"
    assert len(server.handler.received) == 1


def fresh_status(message_id: int) -> str:
    db.session.rollback()
    return db.session.scalar(select(OutboxMessage.status).where(OutboxMessage.id == message_id))


def test_a_failed_row_is_retried_by_the_job_scheduled_for_its_retry_time(
        app, dispatch, make_order, run_worker, smtp_server, monkeypatch):
    monkeypatch.setattr(outbox, "RETRY_BASE_SECONDS", 1)
    server = smtp_server()
    use_smtp(app, server)
    server.rule(CUSTOMER, stage="RCPT", reply="421 4.7.0 Try again later")
    make_order(email=CUSTOMER)
    run_worker()
    customer = next(m for m in rows() if m.recipient == CUSTOMER)
    assert (customer.status, customer.attempts) == ("failed", 1)
    # the job scheduled a delivery for the retry time
    registry = ScheduledJobRegistry(queue=job_queue.get_queue())
    at = customer.next_attempt_at.replace(tzinfo=UTC)
    job_id = f"outbox-retry-{int(at.timestamp())}"
    assert registry.get_job_ids() == [job_id]
    assert abs(registry.get_scheduled_time(job_id) - at) < timedelta(seconds=1)
    assert queued_jobs() == []

    server.heal()
    wait_for(lambda: datetime.now(UTC) > at + timedelta(milliseconds=200), 5, "retry time")
    assert run_worker(with_scheduler=True)  # its scheduler queues the due job, the worker runs it
    assert Counter(statuses().values()) == {"sent": 2}
    customer = next(m for m in rows() if m.recipient == CUSTOMER)
    assert customer.attempts == 2 and customer.last_error == ""
    never_twice(server)


def test_a_failed_row_whose_scheduled_job_was_lost_is_retried_by_the_sweep(
        app, dispatch, make_order, run_worker, smtp_server, monkeypatch):
    monkeypatch.setattr(outbox, "RETRY_BASE_SECONDS", 1)
    server = smtp_server()
    use_smtp(app, server)
    server.rule(CUSTOMER, stage="DATA", reply="451 4.3.0 Local problem")
    make_order(email=CUSTOMER)
    run_worker()
    assert statuses()[CUSTOMER] == "failed"
    dispatch.delete(ScheduledJobRegistry(queue=job_queue.get_queue()).key)  # lost
    server.heal()
    due = next(m for m in rows() if m.recipient == CUSTOMER).next_attempt_at
    wait_for(lambda: utcnow() > due + timedelta(milliseconds=200), 5, "retry time")
    enqueue_sweep()
    assert run_worker(with_scheduler=False)
    assert statuses()[CUSTOMER] == "sent"
    # the refused try reached the server once with its content; one copy was accepted
    assert len(server.handler.received) == 3 and len(server.handler.delivered) == 2
    never_twice(server)


# ------------------------------------------------------------------ the desk alert


def test_the_desk_alert_is_published_after_a_commit_that_wrote_bell_rows(
        app, dispatch, make_order, owner, staff):
    pubsub = dispatch.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(outbox_jobs.ALERTS_CHANNEL)
    try:
        order = make_order(email=CUSTOMER)  # placed by the customer: news to both staff
        message = wait_for(lambda: pubsub.get_message(timeout=0.2), 5, "the desk alert")
        assert message["channel"].decode() == outbox_jobs.ALERTS_CHANNEL
        assert json.loads(message["data"]) == {"kind": "desk"}
        # a note writes no bell row, so nothing is published
        from domain.actors import Actor

        add_note(order.id, "Gift wrap, please", actor=Actor.staff(owner))
        assert pubsub.get_message(timeout=0.5) is None
    finally:
        pubsub.close()


# ------------------------------------------------------------------ delivery in a batch


def test_after_three_failed_sends_in_a_row_the_rest_of_the_batch_is_handed_back(
        app, shop, make_order):
    from smtp_fixtures import free_port

    for i in range(3):
        make_order(email=f"customer{i}@example.hk")  # 6 rows
    settings = outbox_settings(port=free_port())  # nothing listens there
    t0 = utcnow()
    counts = delivery.deliver_due(settings, Path(app.config["MAIL_FOLDER"]), now=lambda: t0)
    assert counts["failed"] == 3 and counts["handed_back"] == 3 and counts["sent"] == 0
    by_status = Counter((m.status, m.attempts) for m in rows())
    # the three tried count an attempt; the three untried wait, their claim not counted
    assert by_status == {("failed", 1): 3, ("pending", 0): 3}
    waiting = [m for m in rows() if m.status == "pending"]
    assert {m.next_attempt_at for m in waiting} == {t0 + outbox.retry_delay(1)}
    assert {m.claim_token for m in waiting} == {None}


def outbox_settings(**overrides):
    from domain.notify.transport import MailSettings

    values = dict(host="127.0.0.1", port=25, security="none", sender=SHOP, timeout=2.0)
    values.update(overrides)
    return MailSettings(**values)


def test_a_batch_costs_a_commit_per_group_of_sends_and_no_query_per_render(
        app, shop, make_order, monkeypatch):
    from sqlalchemy import event

    monkeypatch.setattr(delivery, "STAMP_GROUP", 4)
    for i in range(6):
        make_order(email=f"customer{i}@example.hk")
    db.session.remove()
    statements: list[str] = []

    def count(conn, cursor, statement, params, context, executemany):
        statements.append(" ".join(statement.split()[:2]))

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        counts = delivery.deliver_due(outbox_settings(host=""), Path(app.config["MAIL_FOLDER"]))
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert counts["sent"] == 12
    kinds = Counter(statements)
    # one write transaction per group of 4 (its stamps and the previous group's
    # "sent"), one for the claim, one for the last "sent", one for the empty claim
    assert kinds["BEGIN IMMEDIATE"] == 3 + 3
    # reads do not grow with the batch: the rows, orders, lines, methods, events, settings
    reads = sum(n for k, n in kinds.items() if k.startswith("SELECT"))
    assert reads <= 12, kinds
    assert Counter(statuses().values()) == {"sent": 12}


def test_the_group_stamp_and_sent_record_touch_only_rows_still_ours(app, shop, make_order):
    make_order(email=CUSTOMER)
    make_order(email="other@example.hk")
    ids, token = outbox.claim_due()
    taken_back, *mine = ids
    with write_transaction():  # the sweep took one back; another worker claimed it
        db.session.execute(update(OutboxMessage).where(OutboxMessage.id == taken_back)
                           .values(claim_token="someone-else")
                           .execution_options(synchronize_session=False))
    items = [delivery._Rendered(i, f"subject {i}", None, Path(f"/tmp/{i}.eml")) for i in ids]
    now = utcnow()
    with write_transaction():
        stamped = delivery._record_rendered_many(token, items, now)
        delivery._record_sent_many(token, [(i, now) for i in ids])
    assert stamped == set(mine)
    by_id = {m.id: m for m in rows()}
    for message_id in mine:
        assert (by_id[message_id].status, by_id[message_id].subject) == \
            ("sent", f"subject {message_id}")
        assert by_id[message_id].claimed_at == now == by_id[message_id].sent_at
        assert by_id[message_id].copy_path == f"/tmp/{message_id}.eml"
    other = by_id[taken_back]
    assert (other.status, other.subject, other.claimed_at, other.sent_at) == \
        ("sending", "", None, None)


def test_a_slow_group_is_stamped_again_before_its_later_sends(app, shop, make_order,
                                                              smtp_server, monkeypatch):
    monkeypatch.setattr(delivery, "RESTAMP_AFTER_SECONDS", 0.3)
    server = smtp_server()
    slow = "slow@example.hk"
    server.rule(slow, stage="RCPT", delay=0.5)
    make_order(email=slow)
    make_order(email=CUSTOMER)  # shop, slow, shop, customer: one group
    stamps = []
    original = delivery._record_rendered_many

    def spy(token, items, now):
        stamps.append([item.message_id for item in items])
        return original(token, items, now)

    monkeypatch.setattr(delivery, "_record_rendered_many", spy)
    counts = delivery.deliver_due(outbox_settings(port=server.port),
                                  Path(app.config["MAIL_FOLDER"]))
    assert counts["sent"] == 4
    ids = [m.id for m in rows()]
    assert stamps == [ids, ids[2:]]  # after the slow send, the other two stamped afresh
    never_twice(server)


# ------------------------------------------------------------------ real worker processes

WORKER = """
import json, sys
from app import create_app
from jobs.worker import run_worker
run_worker(create_app(json.loads(sys.argv[1])), sweep=False)
"""


@pytest.fixture
def start_worker(app, redis_conn, db_path, tmp_path):
    """Start a ShopdeskWorker process (as ``flask worker --no-sweep`` runs it, with this
    test's folders); every process it left is killed at the end, by pid."""
    socket_path = redis_conn.connection_pool.connection_kwargs["path"]
    started: list[psutil.Process] = []

    def start(**config) -> subprocess.Popen:
        config = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{db_path}", "SECRET_KEY": "test-secret",
                  "REDIS_URL": f"unix://{socket_path}", "MAIL_FOLDER": app.config["MAIL_FOLDER"],
                  "UPLOAD_FOLDER": app.config["UPLOAD_FOLDER"],
                  "GENERATED_FOLDER": app.config["GENERATED_FOLDER"], **config}
        log = open(tmp_path / f"worker-{len(started)}.log", "wb")  # noqa: SIM115
        env = {k: v for k, v in os.environ.items() if k != "SHOPDESK_EXIT_WITH_PARENT"}
        worker = subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(config)], cwd=ROOT,
                                  env={**env, "PYTHONUNBUFFERED": "1"}, stdout=log,
                                  stderr=subprocess.STDOUT)
        started.append(psutil.Process(worker.pid))
        from rq import Worker

        wait_for(lambda: worker.poll() is None and any(
            w.pid == worker.pid and w.get_state() == "idle" for w in Worker.all(connection=redis_conn)),
            60, "the worker is up")
        return worker

    start.started = started
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


def smtp_config(server) -> dict:
    return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(server.port), "SMTP_SECURITY": "none",
            "MAIL_FROM": SHOP, "SMTP_TIMEOUT": "20"}


@pytest.mark.slow
def test_a_forking_worker_delivers_orders_placed_in_a_row_exactly_once(
        app, dispatch, make_variant, make_order, start_worker, smtp_server):
    server = smtp_server()
    start_worker(**smtp_config(server))
    start_worker(**smtp_config(server))  # two, as a server with two cores would run
    variant = make_variant(stock=1000)
    orders = 30
    for i in range(orders):
        make_order(items=[(variant.id, 1)], email=f"customer{i}@example.hk")
    wait_for(lambda: len(server.handler.delivered) >= 2 * orders, 60, "every message arrived")
    wait_for(lambda: Counter(statuses().values()) == {"sent": 2 * orders}, 10, "all sent")
    counts = never_twice(server)
    assert len(counts) == 2 * orders
    # a handful of delivery jobs, not one per commit
    jobs = finished_deliveries()
    assert 1 <= jobs <= orders // 2, jobs


@pytest.mark.slow
def test_a_worker_killed_mid_send_never_sends_twice(app, redis_conn, shop, make_order,
                                                    start_worker, smtp_server, run_worker):
    server = smtp_server()
    first = "first@example.hk"
    server.rule(first, hang=True)  # takes the whole message, then never answers
    make_order(email=first)
    for i in range(delivery.STAMP_GROUP // 2 + 2):
        make_order(email=f"customer{i}@example.hk")
    # dispatch off: the rows wait (shop, first, shop, customer0, ...), one batch
    ids = [m.id for m in rows()]
    group, beyond = ids[:delivery.STAMP_GROUP], ids[delivery.STAMP_GROUP:]
    assert beyond
    worker = start_worker(**smtp_config(server))
    outbox_jobs.queue_delivery(force=True)

    # when the server holds the reply to the second email of the group...
    wait_for(lambda: any(r.rcpt_tos == [first] for r in server.handler.received), 60,
             "the send is in flight")
    # ...the worker and its work horse are killed, as by the OOM killer
    tree = [psutil.Process(worker.pid), *psutil.Process(worker.pid).children(recursive=True)]
    assert len(tree) >= 2  # the worker and the horse doing the send (and its scheduler)
    for process in tree:
        process.send_signal(signal.SIGKILL)
    psutil.wait_procs(tree, timeout=10)
    server.handler.released.set()  # let the server finish with the dead connection

    state = {m.id: m for m in rows()}
    assert {state[i].status for i in ids} == {"sending"}
    # the group was stamped, subjects and copies recorded, before its first send
    for message_id in group:
        assert state[message_id].claimed_at is not None and state[message_id].subject
        assert Path(state[message_id].copy_path).is_file()
    # rows beyond the group were claimed, never begun
    assert {state[i].claimed_at for i in beyond} == {None}

    # then, once STUCK_AFTER has passed, the sweep of a new worker settles them
    as_if_minutes_passed(int(outbox.STUCK_AFTER.total_seconds() // 60) + 1)
    server.heal()
    use_smtp(app, server)
    enqueue_sweep()
    assert run_worker()
    final = {m.id: m for m in rows()}
    # the stamped group: the outcome is unknown (the first was sent, the second was in
    # flight, the rest never left): shown to staff, never resent on its own
    assert {final[i].status for i in group} == {"unknown"}
    assert {final[i].last_error for i in group} == {outbox.STUCK_ERROR}
    # the rows never begun were surely not sent: delivered now
    assert {final[i].status for i in beyond} == {"sent"}
    for _ in range(2):
        enqueue_sweep()
        run_worker()
    assert {fresh_status(i) for i in group} == {"unknown"}
    # nothing reached the server twice
    received = Counter(int(r.message_id.split("-")[1].split(".")[0])
                       for r in server.handler.received)
    assert set(received.values()) == {1}, received
    assert sorted(received) == sorted(group[:2] + beyond)
