"""Deliver due outbox rows: claim, render at send time, store the copy, send, record.

Called by the delivery job (jobs/outbox.py) with the app's mail settings.

Per batch of claimed rows (one guarded UPDATE, outbox.claim_due):

1. the rows and what their emails show (orders and lines, payment methods,
   events) are read in a few queries, and the emails rendered one after the
   other with no commit in between (a commit expires every loaded object,
   and each render would read its order again: the N+1 that made delivery
   slow);
2. then, per group of STAMP_GROUP rows, one write transaction stamps the
   rows right before their sends (outbox.record_rendered for each: still
   ours? record subject and copy, stamp ``claimed_at``) and records the
   group sent before them as "sent";
3. the sends go over one SMTP connection kept for the whole job.

The guarantees: every row is stamped, durably, before its mail is handed
over, and a stamped row left "sending" (its worker killed) becomes "unknown"
at the sweep and is never resent: at most the killed worker's current group
(STAMP_GROUP rows), some of them perhaps not sent at all. Rows claimed but
not yet stamped were surely not sent and go back to the queue.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from pathlib import Path

from sqlalchemy import case, select, update
from sqlalchemy.orm import selectinload

from domain.db import db, write_transaction
from domain.models import Order, OrderEvent, OutboxMessage, PaymentMethod, utcnow
from domain.notify import outbox
from domain.notify.transport import (
    DeliveryFailed,
    MailSettings,
    build_mime,
    open_transport,
    store_copy,
)
from domain.store import get_settings

log = logging.getLogger(__name__)

# Rows claimed at a time. Small enough that the first send of a batch does not
# wait long for the renders before it and a second worker finds rows to take.
CLAIM_BATCH = 25
# Render at most this much mail ahead of the sends: a batch of exports with
# big attachments is not all held in memory (the rest is read afresh later).
RENDER_AHEAD_BYTES = 16 * 1024 * 1024
# After this many sends in a row failed for a reason worth retrying (server
# down, 421, timeouts), the rest of the batch is handed back untried and the
# job ends: the next sends would most likely fail the same way, each burning
# one of the message's attempts (and, with timeouts, the job's time).
FAILURE_STREAK = 3
# Rows stamped in one commit right before their sends. One commit per message
# kept delivery behind a stream of 25 orders a second (each stamp waited for
# the write lock behind the web's own transactions: p50 4 s from commit to
# the SMTP server, against 0.35 s with groups of 10; bench/outbox.py). The
# price: a worker killed mid-group leaves up to this many rows "unknown".
STAMP_GROUP = 10
# A group whose sends take longer than this (a slow server) is stamped again,
# far inside outbox.STUCK_AFTER.
RESTAMP_AFTER_SECONDS = 60
OUTCOMES = ("sent", "failed", "dead", "unknown", "skipped")


@dataclass
class _Rendered:
    message_id: int
    subject: str
    mime: Message
    copy: Path


@dataclass
class _Run:
    """One deliver_due call: the open transport, counts, and sends not yet recorded."""

    transport: object
    settings: MailSettings
    mail_folder: Path
    now: Callable[[], datetime]
    render: Callable
    sender: tuple[str, str, str] = ("", "", "")
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    unrecorded: list[tuple[int, datetime]] = field(default_factory=list)  # sent, not yet "sent"
    token: str = ""
    streak: int = 0  # sends failed in a row, worth retrying
    stop: bool = False

    def record_sends(self) -> None:
        """Mark the messages sent so far as sent (inside the caller's transaction)."""
        if self.unrecorded:
            _record_sent_many(self.token, self.unrecorded)
        self.unrecorded.clear()


def deliver_due(settings: MailSettings, mail_folder: Path, *, limit: int | None = None,
                now: Callable[[], datetime] = utcnow, batch_size: int | None = None,
                max_seconds: float | None = None,
                on_full_batch: Callable[[], object] | None = None) -> dict[str, int]:
    """Deliver every email due now (at most ``limit``); counts per outcome.

    ``max_seconds``: claim no new batch after this long (the caller queues a
    follow-up, so a job never runs into its timeout mid-send); the counts
    then carry ``"more": 1``. ``on_full_batch`` is called whenever a claim
    came back full, meaning more rows are waiting (the job uses it to let an
    idle worker join in).
    """
    from domain.notify.email import render_email

    batch_size = batch_size or CLAIM_BATCH
    run = _Run(open_transport(settings), settings, mail_folder, now, render_email)
    started = time.monotonic()
    done = 0
    try:
        while limit is None or done < limit:
            size = batch_size if limit is None else min(batch_size, limit - done)
            ids, run.token = outbox.claim_due(limit=size, now=now())
            if not ids:
                break
            if len(ids) == size and on_full_batch is not None:
                on_full_batch()
            _deliver_batch(run, ids)
            done += len(ids)
            db.session.expunge_all()  # keep the identity map small across batches
            if run.stop:
                break
            if max_seconds is not None and time.monotonic() - started >= max_seconds:
                run.counts["more"] = 1
                break
    finally:
        try:
            if run.unrecorded:  # an exception between a send and its record
                with write_transaction():
                    run.record_sends()
        finally:
            run.transport.close()
    return run.counts


def _deliver_batch(run: _Run, ids: list[int]) -> None:
    from domain.notify.email import sender_for

    waiting = ids
    while waiting:
        messages = list(db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.id.in_(waiting))
            .order_by(OutboxMessage.id)))
        loaded = _prefetch(messages)
        run.sender = sender_for(run.settings)
        rendered, failures, waiting = _render_ahead(run, messages)
        # Done reading: an empty session makes each of the commits below cheap
        # (a commit expires every object the session holds).
        del loaded, messages
        db.session.expunge_all()
        for message_id, error in failures:
            _record_failure(run, message_id, error, "retry")
        for start in range(0, len(rendered), STAMP_GROUP):
            if run.streak >= FAILURE_STREAK:
                _hand_back(run)
                return
            unsent = _send_group(run, rendered[start:start + STAMP_GROUP])
            if unsent:
                _hand_back(run, unsent)
                return
    with write_transaction():
        run.record_sends()


def _prefetch(messages: list[OutboxMessage]) -> list:
    """Load what the renderer reads, for the whole batch, into the session;
    returns the loaded objects, which the caller keeps alive while rendering
    (the session's identity map holds objects weakly: rows nobody refers to
    would be dropped and read again, one query each).

    ``db.session.get`` and ``order.lines`` then find the orders, their lines,
    payment methods and the messages' events already loaded. The email module
    may define ``prefetch(messages)`` returning whatever else it reads,
    loaded the same way.
    """
    from domain.notify import email

    loaded: list = [get_settings(), *messages]
    order_ids = {m.order_id for m in messages if m.order_id is not None}
    if order_ids:
        orders = db.session.scalars(select(Order).where(Order.id.in_(order_ids))
                                    .options(selectinload(Order.lines))).all()
        method_ids = {o.payment_method_id for o in orders if o.payment_method_id}
        loaded += orders
        loaded += db.session.scalars(select(PaymentMethod)
                                     .where(PaymentMethod.id.in_(method_ids))).all()
    event_ids = {m.event_id for m in messages if m.event_id is not None}
    if event_ids:
        loaded += db.session.scalars(select(OrderEvent).where(OrderEvent.id.in_(event_ids))).all()
    hook = getattr(email, "prefetch", None)
    if hook is not None:
        loaded += list(hook(messages) or ())
    return loaded


def _render_ahead(run: _Run, messages: list[OutboxMessage]):
    """Render ``messages`` in order, up to RENDER_AHEAD_BYTES: (rendered,
    [(id, error)], ids of the messages left for later). No commit happens here."""
    rendered, failures, size = [], [], 0
    sender, sender_name, reply_to = run.sender
    for position, message in enumerate(messages):
        if rendered and size >= RENDER_AHEAD_BYTES:
            return rendered, failures, [m.id for m in messages[position:]]
        try:
            content = run.render(message)
            mime = build_mime(message, content, sender=sender, sender_name=sender_name,
                              reply_to=reply_to)
            copy = store_copy(run.mail_folder, message, mime)
        except Exception as exc:  # a rendering bug or a vanished order: retried, then dead
            log.exception("Could not render outbox message %s", message.id)
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            failures.append((message.id, f"Could not render: {detail}"))
            continue
        rendered.append(_Rendered(message.id, content.subject, mime, copy))
        size += _size(content)
    return rendered, failures, []


def _size(content) -> int:
    return (len(content.text) + len(content.html)
            + sum(len(data) for _cid, data, _subtype in content.inline_images)
            + sum(len(data) for _name, data, _main, _sub in content.attachments))


def _stamp(run: _Run, items: list[_Rendered]) -> list[_Rendered]:
    """One commit: the sends so far recorded "sent", ``items`` stamped as being
    sent; returns those still ours (the others the sweep took back: never sent)."""
    with write_transaction():
        run.record_sends()
        mine = _record_rendered_many(run.token, items, run.now())
    ours = [item for item in items if item.message_id in mine]
    run.counts["skipped"] += len(items) - len(ours)
    return ours


# The batch forms of outbox.record_rendered and outbox.record_sent, with the same
# guard (still "sending" under this claim token): one UPDATE for a group instead
# of one per row (0.96 -> 0.21 ms a message). Each is a single statement, so on
# PostgreSQL too a row the sweep takes back in between is simply not matched.


def _ours(token: str, ids: list[int]):
    return (OutboxMessage.id.in_(ids), OutboxMessage.status == "sending",
            OutboxMessage.claim_token == token)


def _record_rendered_many(token: str, items: list[_Rendered], now: datetime) -> set[int]:
    """outbox.record_rendered for each item; the ids that were still ours."""
    ids = [item.message_id for item in items]
    return set(db.session.scalars(
        update(OutboxMessage).where(*_ours(token, ids))
        .values(claimed_at=now,
                subject=case({i.message_id: i.subject[:300] for i in items},
                             value=OutboxMessage.id),
                copy_path=case({i.message_id: str(i.copy) for i in items},
                               value=OutboxMessage.id))
        .returning(OutboxMessage.id).execution_options(synchronize_session=False)))


def _record_sent_many(token: str, sent: list[tuple[int, datetime]]) -> None:
    """outbox.record_sent for each (id, sent at)."""
    db.session.execute(
        update(OutboxMessage).where(*_ours(token, [message_id for message_id, _at in sent]))
        .values(status="sent", last_error="",
                sent_at=case(dict(sent), value=OutboxMessage.id))
        .execution_options(synchronize_session=False))


def _send_group(run: _Run, group: list[_Rendered]) -> list[int]:
    """Stamp the group's rows, then send them; returns the ids stamped but not
    sent (a failure streak stopped the sends)."""
    waiting = _stamp(run, group)
    stamped_at, tried = time.monotonic(), 0
    while waiting:
        if run.streak >= FAILURE_STREAK:
            return [item.message_id for item in waiting]
        if tried and time.monotonic() - stamped_at > RESTAMP_AFTER_SECONDS:
            # A slow server: stamp the rest again, so that none is sent after the
            # sweep could have taken it for stuck (outbox.STUCK_AFTER).
            waiting = _stamp(run, waiting)
            stamped_at, tried = time.monotonic(), 0
            continue
        item = waiting.pop(0)
        tried += 1
        try:
            run.transport.send(item.mime)
        except DeliveryFailed as failure:
            run.streak = run.streak + 1 if failure.outcome == "retry" else 0
            _record_failure(run, item.message_id, failure.detail, failure.outcome)
            continue
        run.streak = 0
        run.unrecorded.append((item.message_id, run.now()))
        run.counts["sent"] += 1
    return []


def _record_failure(run: _Run, message_id: int, error: str, outcome: str) -> None:
    with write_transaction():
        run.record_sends()
        status = outbox.record_failure(message_id, run.token, error=error, outcome=outcome,
                                       now=run.now())
    run.counts[status if status in run.counts else "skipped"] += 1


def _hand_back(run: _Run, stamped_unsent: list[int] = ()) -> None:
    """Give the batch's untried rows back (this worker knows they were not sent),
    due again after the first retry delay, their claim not counted as an
    attempt; then stop the job."""
    now = run.now()
    untried = ((OutboxMessage.claimed_at.is_(None) | OutboxMessage.id.in_(stamped_unsent))
               if stamped_unsent else OutboxMessage.claimed_at.is_(None))
    with write_transaction():
        run.record_sends()
        released = db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.claim_token == run.token, OutboxMessage.status == "sending",
                   untried)
            .values(status="pending", claim_token=None, claimed_at=None,
                    attempts=OutboxMessage.attempts - 1,
                    next_attempt_at=now + outbox.retry_delay(1))
            .execution_options(synchronize_session=False)).rowcount
    log.warning("%s sends in a row failed; %s messages handed back for later",
                run.streak, released)
    run.counts["handed_back"] = run.counts.get("handed_back", 0) + released
    run.stop = True
