"""Delivering from the outbox, on a real SQLite file (and PostgreSQL when one
answers): two workers (threads or processes) never claim the same row, a
wrong claim token changes nothing, failures back off exponentially and end
dead, a send whose worker died becomes "unknown" and is never claimed again,
and staff can retry by hand only what failed."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from outbox_helpers import ROOT, app_request, fresh_row, last_event, messages, queue
from sqlalchemy import func, select

from domain.db import db
from domain.errors import InvalidTransition, NotFound
from domain.models import OrderEvent, utcnow
from domain.notify import outbox

pytest_plugins = ["outbox_fixtures"]

# ------------------------------------------------------------------ claiming


def test_two_claims_never_share_a_row(app):
    ids = queue(5)
    first, token1 = outbox.claim_due(limit=3)
    second, token2 = outbox.claim_due(limit=3)
    third, _ = outbox.claim_due(limit=3)
    assert len(first) == 3 and len(second) == 2 and third == []
    assert sorted(first + second) == sorted(ids) and token1 != token2
    for message_id in first:
        row = fresh_row(message_id)
        assert (row.status, row.claim_token, row.attempts) == ("sending", token1, 1)
        assert row.claimed_at is None  # the send has not begun


def test_claims_from_two_threads_never_share_a_row(app):
    ids = queue(120)
    db.session.remove()
    barrier = threading.Barrier(2)
    got: list[list[int]] = [[], []]
    errors = []

    def claim(index):
        with app.app_context():
            try:
                barrier.wait()
                while True:
                    claimed, _token = outbox.claim_due(limit=4)
                    if not claimed:
                        break
                    got[index].extend(claimed)
            except Exception as exc:  # reported below
                errors.append(repr(exc))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert not set(got[0]) & set(got[1])
    assert sorted(got[0] + got[1]) == sorted(ids)


CLAIMER = r"""
import json, sys, time
from pathlib import Path
from app import create_app
from domain.db import db
from domain.notify import outbox
app = create_app({"TESTING": True, "SECRET_KEY": "x", "NOTIFY_DISPATCH": False,
                  "SQLALCHEMY_DATABASE_URI": "sqlite:///" + sys.argv[1]})
with app.app_context():
    db.session.execute(db.text("select 1"))
    db.session.rollback()
    Path(sys.argv[3]).touch()
    while not Path(sys.argv[2]).exists():
        time.sleep(0.005)
    got = []
    while True:
        ids, _ = outbox.claim_due(limit=2)
        if not ids:
            break
        got.extend(ids)
        # Let the other process in between claims: on a loaded machine one
        # process could otherwise drain the queue before the other wakes,
        # and the test would not have raced at all.
        time.sleep(0.002)
print(json.dumps(got))
"""


def test_claims_from_two_processes_never_share_a_row(app, db_path, tmp_path):
    ids = queue(300)
    db.session.remove()
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(2)]
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, db_path, str(go), str(ready[i])],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
             for i in range(2)]
    deadline = time.monotonic() + 60
    while not all(r.exists() for r in ready):  # both started: now let them race
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.01)
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert not set(results[0]) & set(results[1])
    assert sorted(results[0] + results[1]) == sorted(ids)
    assert results[0] and results[1], "both processes should have claimed rows"


def test_a_wrong_token_changes_nothing(app):
    (message_id,) = queue(1)
    _ids, token = outbox.claim_due()
    before = fresh_row(message_id)
    snapshot = (before.status, before.subject, before.attempts, before.last_error,
                before.next_attempt_at, before.claimed_at)
    assert outbox.record_rendered(message_id, "not-mine", subject="S", copy_path="/x") is False
    assert outbox.record_sent(message_id, "not-mine") is False
    for outcome in ("retry", "permanent", "unknown"):
        assert outbox.record_failure(message_id, "not-mine", error="boom",
                                     outcome=outcome) == "skipped"
    after = fresh_row(message_id)
    assert (after.status, after.subject, after.attempts, after.last_error,
            after.next_attempt_at, after.claimed_at) == snapshot
    assert outbox.record_rendered(message_id, token, subject="S", copy_path="/x") is True
    assert outbox.record_sent(message_id, token) is True
    assert fresh_row(message_id).status == "sent"
    assert outbox.record_sent(message_id, token) is False  # no longer "sending"


def test_a_send_begun_and_never_recorded_becomes_unknown_and_is_never_claimed(app):
    t0 = utcnow()
    begun, waiting = queue(2, now=t0)
    ids, token = outbox.claim_due(now=t0)
    assert ids == [begun, waiting]
    assert outbox.record_rendered(begun, token, subject="S", copy_path="/x", now=t0)
    # The worker dies here. Within five minutes nothing is touched.
    assert outbox.give_up_stuck(now=t0 + timedelta(minutes=4)) == 0
    assert fresh_row(begun).status == "sending"
    assert outbox.give_up_stuck(now=t0 + timedelta(minutes=6)) == 2
    row = fresh_row(begun)
    assert (row.status, row.last_error) == ("unknown", outbox.STUCK_ERROR)
    # The one whose send never began was surely not sent: back in the queue,
    # its claim not counted, and the dead worker's token no longer works.
    row = fresh_row(waiting)
    assert (row.status, row.attempts, row.claim_token) == ("pending", 0, None)
    assert outbox.record_rendered(waiting, token, subject="S", copy_path="/x") is False
    later = t0 + timedelta(hours=1)
    assert outbox.claim_due(now=later)[0] == [waiting]
    assert outbox.claim_due(now=later + timedelta(days=1))[0] == []
    assert outbox.due_count(now=later) == 0
    assert fresh_row(begun).status == "unknown"


def test_retries_back_off_exponentially_then_die(app):
    t0 = utcnow()
    (message_id,) = queue(1, now=t0)
    now = t0
    delays = []
    for attempt in range(1, outbox.MAX_ATTEMPTS + 1):
        ids, token = outbox.claim_due(now=now)
        assert ids == [message_id], attempt
        assert fresh_row(message_id).attempts == attempt
        status = outbox.record_failure(message_id, token, error=f"SMTP 421: busy {attempt}",
                                       outcome="retry", now=now)
        row = fresh_row(message_id)
        if attempt < outbox.MAX_ATTEMPTS:
            assert status == row.status == "failed"
            delays.append(row.next_attempt_at - now)
            # Not due a second before its time, due at it.
            assert outbox.claim_due(now=row.next_attempt_at - timedelta(seconds=1))[0] == []
            now = row.next_attempt_at
        else:
            assert status == row.status == "dead"
        assert row.last_error == f"SMTP 421: busy {attempt}"
    assert delays == [timedelta(seconds=30 * 2 ** i) for i in range(outbox.MAX_ATTEMPTS - 1)]
    assert outbox.claim_due(now=now + timedelta(days=30))[0] == []


@pytest.mark.parametrize("outcome,status", [("permanent", "dead"), ("unknown", "unknown")])
def test_a_permanent_or_unknown_outcome_ends_at_once(app, outcome, status):
    (message_id,) = queue(1)
    _ids, token = outbox.claim_due()
    assert outbox.record_failure(message_id, token, error="SMTP 550: no such user",
                                 outcome=outcome) == status
    assert fresh_row(message_id).status == status
    assert outbox.claim_due(now=utcnow() + timedelta(days=1))[0] == []


def test_retry_by_hand(shop, make_order, staff_actor):
    order = make_order()
    message = messages(order.id)[0]
    # Queued, sending and sent messages cannot be retried by hand.
    with pytest.raises(InvalidTransition, match="This message is queued: only a failed"):
        outbox.retry_by_hand(message.id, actor=staff_actor)
    ids, token = outbox.claim_due()
    with pytest.raises(InvalidTransition, match="is sending"):
        outbox.retry_by_hand(message.id, actor=staff_actor)
    for outcome, status in (("retry", "failed"), ("permanent", "dead"), ("unknown", "unknown")):
        if fresh_row(message.id).status != "sending":
            ids, token = outbox.claim_due(now=utcnow() + timedelta(hours=1))
        assert message.id in ids
        assert outbox.record_failure(message.id, token, error="x", outcome=outcome) == status
        retried = outbox.retry_by_hand(message.id, actor=staff_actor)
        assert (retried.status, retried.attempts, retried.claim_token) == ("pending", 0, None)
        event = last_event(order.id, "message_retried")
        assert event.actor_id == staff_actor.id
        assert event.details == {"message_id": message.id, "kind": message.kind,
                                 "channel": "email", "recipient": message.recipient}
        ids, token = outbox.claim_due(now=utcnow() + timedelta(hours=1))
    assert outbox.record_rendered(message.id, token, subject="S", copy_path="/x")
    assert outbox.record_sent(message.id, token)
    with pytest.raises(InvalidTransition, match="is sent"):
        outbox.retry_by_hand(message.id, actor=staff_actor)
    assert db.session.scalar(select(func.count()).select_from(OrderEvent).where(
        OrderEvent.type == "message_retried")) == 3
    with pytest.raises(NotFound):
        outbox.retry_by_hand(999999, actor=staff_actor)


def test_retry_by_hand_refusal_reads_in_chinese(shop, make_order, staff_actor):
    from flask_babel import force_locale, gettext

    from blueprints.i18n import translate_error

    order = make_order()
    message = messages(order.id)[0]
    with pytest.raises(InvalidTransition) as refused:
        outbox.retry_by_hand(message.id, actor=staff_actor)
    with app_request(), force_locale("zh_Hant_HK"):
        text = translate_error(refused.value)
        assert gettext("queued") in text and "only a failed" not in text, text


# ------------------------------------------------------------------ PostgreSQL


def test_claims_from_two_threads_on_postgres(pg_app):
    with pg_app.app_context():
        ids = queue(120)
        db.session.remove()
    barrier = threading.Barrier(2)
    got: list[list[int]] = [[], []]
    errors = []

    def claim(index):
        with pg_app.app_context():
            try:
                barrier.wait()
                while True:
                    claimed, _token = outbox.claim_due(limit=4)
                    if not claimed:
                        break
                    got[index].extend(claimed)
            except Exception as exc:  # reported below
                errors.append(repr(exc))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert not set(got[0]) & set(got[1])
    assert set(ids) <= set(got[0] + got[1])


