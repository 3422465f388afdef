"""The outbox (DESIGN principle 12): messages written in the action's transaction,
delivered later by a job, at most once per (event, channel, recipient).

Writing: ``write_for_events`` is called by the one place that writes order
events (domain.orders._event and the expiry batch), inside the action's write
transaction, so a rolled-back action leaves no message. The unique key
(event_key, channel, recipient) and INSERT ... ON CONFLICT DO NOTHING make a
second write for the same event a no-op.

Delivering (domain/notify/delivery.py): rows are claimed by a guarded UPDATE
(status pending/failed -> sending, with a claim token), so two workers never
send the same row. Right before its send a row is stamped ``claimed_at``
(``record_rendered``); from then on a worker that dies leaves a row whose
mail may or may not have left, which the sweep marks "unknown", shown to
staff and never resent on its own. A row claimed but never stamped (its
worker died, or is still busy with the rows before it in its batch) was
surely not sent: the sweep puts it back in the queue.

Ids of rows written in a transaction are kept in ``session.info`` so that,
after the commit, jobs/outbox.py can queue their delivery at once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, update

from domain.actors import Actor
from domain.db import db, insert_ignoring_duplicates, write_transaction
from domain.errors import InvalidTransition, NotFound
from domain.i18n import N_, Label
from domain.models import Order, OrderEvent, OutboxMessage, utcnow
from domain.notify import alerts
from domain.notify.kinds import (
    CUSTOMER,
    EVENT_MESSAGES,
    NO_MOBILE,
    STATUS_LABELS,
    WHATSAPP_NOT_SENT,
)
from domain.store import get_settings

EMAIL = "email"
WHATSAPP = "whatsapp"
CHANNELS = (EMAIL, WHATSAPP)
MAX_RETRY_AFTER_SECONDS = 3600  # a server's Retry-After is honoured up to an hour
MAX_ATTEMPTS = 6  # the first try and 5 retries: 30 s, 1, 2, 4, 8 min apart
RETRY_BASE_SECONDS = 30
# A row "sending" with no sign of life for this long belonged to a worker that died.
# Each send stamps claimed_at first and an SMTP exchange times out well before this.
STUCK_AFTER = timedelta(minutes=5)
RETRYABLE = ("pending", "failed")
# Stored as the row's error (data); a message id, so it reads translated where shown.
STUCK_ERROR = N_("The worker stopped while sending this message, so Shopdesk cannot tell "
                 "whether it left. It was not sent again.")
# "skipped": a WhatsApp message not sent (the channel or its type switched off, the
# monthly cap reached) can be sent by hand once that changed.
RETRIABLE_BY_HAND = ("failed", "dead", "unknown", "skipped")
NEW_IDS_KEY = "outbox_new_ids"


@dataclass(frozen=True)
class WrittenEvent:
    """An order event just written, as the outbox and the bell need it."""

    order_id: int
    event_id: int
    type: str
    actor: Actor


# ------------------------------------------------------------------ writing


def _insert_ignoring_duplicates(rows: list[dict[str, Any]]) -> list[int]:
    """INSERT the rows, skipping any whose (event_key, channel, recipient) exists; new ids."""
    if not rows:
        return []
    statement = (insert_ignoring_duplicates(OutboxMessage, "event_key", "channel", "recipient")
                 .returning(OutboxMessage.id))
    ids = [row.id for row in db.session.execute(statement, rows)]
    db.session.info.setdefault(NEW_IDS_KEY, []).extend(ids)
    return ids


def message_row(*, event_key: str, recipient: str, audience: str, kind: str,
                now: datetime, order_id: int | None = None, event_id: int | None = None,
                user_id: int | None = None, channel: str = EMAIL,
                params: dict[str, Any] | None = None) -> dict[str, Any]:
    return dict(event_key=event_key, channel=channel, recipient=recipient, audience=audience,
                kind=kind, order_id=order_id, event_id=event_id, user_id=user_id,
                status="pending", attempts=0, next_attempt_at=now, last_error="", subject="",
                params=params or {}, created_at=now)


def event_key(event_id: int, audience: str = CUSTOMER) -> str:
    """The key of an order event's message to one audience: "event:<id>" for the
    customer, "event:<id>:<audience>" otherwise, so a merchant who orders from
    their own store with their notification address gets both emails (the
    unique key would otherwise keep only the first)."""
    return f"event:{event_id}" if audience == CUSTOMER else f"event:{event_id}:{audience}"


def write_messages(rows: list[dict[str, Any]]) -> list[int]:
    """Write message rows (from ``message_row``) in the caller's transaction."""
    return _insert_ignoring_duplicates(rows)


# Built once (with its cache key): it runs in nearly every action's transaction.
_ORDER_EMAILS = (select(Order.id, Order.customer_email)
                 .where(Order.id.in_(bindparam("ids", expanding=True))))


def write_for_events(events: list[WrittenEvent], now: datetime) -> list[int]:
    """The messages and bell entries the given order events cause (EVENT_MESSAGES).

    Runs inside the action's transaction. A customer without an email gets no
    email (WhatsApp is a channel of its own); a store without a notification
    address gets no merchant email, only the desk's bell.
    """
    events = [e for e in events if e.type in EVENT_MESSAGES]
    if not events:
        return []
    emails = dict(db.session.execute(_ORDER_EMAILS,
                                     {"ids": list({e.order_id for e in events})}).all())
    merchant = (get_settings().notification_email or "").strip()
    rows = []
    for e in events:
        for audience, kind in EVENT_MESSAGES[e.type]:
            recipient = (emails.get(e.order_id) or "").strip() if audience == CUSTOMER else merchant
            if recipient:
                rows.append(message_row(event_key=event_key(e.event_id, audience),
                                        recipient=recipient, audience=audience, kind=kind,
                                        now=now, order_id=e.order_id, event_id=e.event_id))
    rows += _whatsapp_rows(events, now)
    ids = _insert_ignoring_duplicates(rows)
    alerts.write_for_events(events, now)
    return ids


def _whatsapp_rows(events: list[WrittenEvent], now: datetime) -> list[dict[str, Any]]:
    """The customer's WhatsApp message per event of whatsapp.EVENT_TYPES, while the
    channel is active and the type switched on (the config read once per call).

    Same event key as the customer's email, another channel: a second write of
    the event is a no-op. No valid mobile number: no row, and an order event
    "whatsapp_not_sent" says so (it has no messages of its own, so writing it
    through orders._event comes back here and stops at the first line).
    """
    from domain.notify import whatsapp, whatsapp_config  # W1's modules import the models

    events = [e for e in events if e.type in whatsapp.EVENT_TYPES]
    if not events or not whatsapp_config.is_active():
        return []
    disabled = set(whatsapp_config.get_config().disabled_types or ())
    events = [e for e in events if whatsapp.EVENT_TYPES[e.type] not in disabled]
    if not events:
        return []
    # populate_existing: the action may have changed its orders with plain UPDATEs.
    orders = {o.id: o for o in db.session.scalars(
        select(Order).where(Order.id.in_({e.order_id for e in events}))
        .execution_options(populate_existing=True))}
    rows, unreachable = [], []
    for e in events:
        type_code = whatsapp.EVENT_TYPES[e.type]
        order = orders.get(e.order_id)
        recipient = whatsapp.recipient_for(order) if order is not None else None
        if not recipient:
            unreachable.append((e, type_code))
            continue
        rows.append(message_row(event_key=event_key(e.event_id), recipient=recipient,
                                audience=CUSTOMER, kind=type_code, now=now, channel=WHATSAPP,
                                order_id=e.order_id, event_id=e.event_id))
    if unreachable:
        _write_not_sent(unreachable, now)
    return rows


def _write_not_sent(unreachable: list[tuple[WrittenEvent, str]], now: datetime) -> None:
    """One "whatsapp_not_sent" event per event whose customer has no mobile number,
    unless the same event was written before (a replay writes nothing twice)."""
    from domain.actors import SYSTEM
    from domain.orders import _event  # orders sits above the outbox

    seen = {(order_id, (details or {}).get("event_id")) for order_id, details in
            db.session.execute(
                select(OrderEvent.order_id, OrderEvent.details)
                .where(OrderEvent.order_id.in_({e.order_id for e, _t in unreachable}),
                       OrderEvent.type == WHATSAPP_NOT_SENT)).all()}
    for e, type_code in unreachable:
        if (e.order_id, e.event_id) in seen:
            continue
        _event(e.order_id, WHATSAPP_NOT_SENT, SYSTEM,
               {"reason": NO_MOBILE, "type": type_code, "event_id": e.event_id}, now)


def take_new_ids(session) -> list[int]:
    """Ids written in the transaction just committed (after-commit hook), once."""
    return session.info.pop(NEW_IDS_KEY, [])


def forget_new_ids(session) -> None:
    session.info.pop(NEW_IDS_KEY, None)


# ------------------------------------------------------------------ delivering


def claim_due(*, channel: str = EMAIL, limit: int = 50,
              now: datetime | None = None) -> tuple[list[int], str]:
    """Claim up to ``limit`` due rows for this worker: (ids, claim token).

    The UPDATE re-checks the status, so when two workers pick the same ids
    each row goes to exactly one of them. While a row is "sending",
    ``next_attempt_at`` holds when it was claimed and ``claimed_at`` stays
    empty until its send begins (``record_rendered``): see ``give_up_stuck``.
    """
    now = now or utcnow()
    token = secrets.token_hex(8)
    with write_transaction():
        query = (select(OutboxMessage.id)
                 .where(OutboxMessage.channel == channel,
                        OutboxMessage.status.in_(RETRYABLE),
                        OutboxMessage.next_attempt_at <= now)
                 .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id).limit(limit))
        if db.session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        ids = list(db.session.scalars(query))
        if not ids:
            return [], token
        claimed = list(db.session.scalars(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.status.in_(RETRYABLE))
            .values(status="sending", claimed_at=None, next_attempt_at=now,
                    claim_token=token, attempts=OutboxMessage.attempts + 1)
            .returning(OutboxMessage.id)
            .execution_options(synchronize_session=False)))
    return sorted(claimed), token


def _guarded(message_id: int, token: str, now: datetime | None = None, **values) -> bool:
    with write_transaction():
        result = db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.status == "sending",
                   OutboxMessage.claim_token == token)
            .values(**values).execution_options(synchronize_session=False))
    return result.rowcount == 1


def record_rendered(message_id: int, token: str, *, subject: str, copy_path: str | None,
                    now: datetime | None = None) -> bool:
    """Right before the send: record what is sent, stamp when the send began, and
    check the row is still ours (False: the sweep took it back, so it must not
    be sent)."""
    return _guarded(message_id, token, subject=subject[:300], copy_path=copy_path,
                    claimed_at=now or utcnow())


def record_sent(message_id: int, token: str, *, now: datetime | None = None) -> bool:
    return _guarded(message_id, token, status="sent", sent_at=now or utcnow(), last_error="")


def retry_delay(attempts: int) -> timedelta:
    """Exponential back-off after the ``attempts``-th failed try."""
    return timedelta(seconds=RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1))


def record_skipped(message_id: int, token: str, *, reason: str,
                   now: datetime | None = None) -> bool:
    """A message deliberately not sent (WhatsApp: switched off, or the monthly cap):
    status "skipped" with the reason (a message id, translated where shown); never
    sent on its own. False when the row is no longer this worker's."""
    return _guarded(message_id, token, status="skipped", last_error=reason[:2000])


def record_failure(message_id: int, token: str, *, error: str, outcome: str,
                   now: datetime | None = None, retry_after: float | None = None) -> str:
    """Record a failed try; returns the row's new status ("skipped" when the row
    is no longer this worker's, so nothing was recorded).

    ``outcome``: "retry" (nothing was delivered: try again later, until the
    last attempt), "permanent" (the server refused for good: dead), or
    "unknown" (the message may have been delivered: never resent on its own).
    ``retry_after``: the server said when to come back (seconds; a 429's
    Retry-After), used instead of the back-off.
    """
    now = now or utcnow()
    with write_transaction():
        # Read under the same write lock and claim guard as the UPDATE below.
        attempts = db.session.scalar(
            select(OutboxMessage.attempts)
            .where(OutboxMessage.id == message_id, OutboxMessage.status == "sending",
                   OutboxMessage.claim_token == token))
        if attempts is None:
            return "skipped"
        if outcome == "unknown":
            status, values = "unknown", {}
        elif outcome == "permanent" or attempts >= MAX_ATTEMPTS:
            status, values = "dead", {}
        else:
            delay = retry_delay(attempts)
            if retry_after is not None:
                delay = timedelta(seconds=min(max(float(retry_after), 1.0),
                                              MAX_RETRY_AFTER_SECONDS))
            status, values = "failed", {"next_attempt_at": now + delay}
        _guarded(message_id, token, status=status, last_error=error[:2000], **values)
    return status


def give_up_stuck(*, now: datetime | None = None) -> int:
    """Rows left "sending" by a worker that died; returns how many were changed.

    A row whose send had begun (``claimed_at`` stamped) may have left: outcome
    unknown, shown to staff, never resent on its own. A row claimed longer ago
    than STUCK_AFTER whose send never began was surely not sent: back to the
    queue, its claim not counted as an attempt.
    """
    now = now or utcnow()
    cutoff = now - STUCK_AFTER
    with write_transaction():
        unknown = db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.status == "sending", OutboxMessage.claimed_at.is_not(None),
                   OutboxMessage.claimed_at < cutoff)
            .values(status="unknown", last_error=STUCK_ERROR)
            .execution_options(synchronize_session=False)).rowcount
        released = db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.status == "sending", OutboxMessage.claimed_at.is_(None),
                   OutboxMessage.next_attempt_at < cutoff)
            .values(status="pending", claim_token=None, next_attempt_at=now,
                    attempts=OutboxMessage.attempts - 1)
            .execution_options(synchronize_session=False)).rowcount
    return unknown + released


def due_count(*, channel: str = EMAIL, now: datetime | None = None) -> int:
    now = now or utcnow()
    return db.session.scalar(
        select(func.count()).select_from(OutboxMessage)
        .where(OutboxMessage.channel == channel, OutboxMessage.status.in_(RETRYABLE),
               OutboxMessage.next_attempt_at <= now)) or 0


def next_retry_at(*, channel: str = EMAIL) -> datetime | None:
    return db.session.scalar(
        select(func.min(OutboxMessage.next_attempt_at))
        .where(OutboxMessage.channel == channel, OutboxMessage.status == "failed"))


def oldest_pending_created_at() -> datetime | None:
    """When the oldest message not yet delivered was written (/healthz)."""
    return db.session.scalar(select(func.min(OutboxMessage.created_at))
                             .where(OutboxMessage.status.in_(("pending", "failed", "sending"))))


# ------------------------------------------------------------------ staff


def get_message(message_id: int) -> OutboxMessage:
    message = db.session.get(OutboxMessage, message_id)
    if message is None:
        raise NotFound("Message not found.")
    return message


def order_messages(order_id: int) -> list[OutboxMessage]:
    """Every message of an order, newest first (the order's timeline)."""
    return list(db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.order_id == order_id)
        .order_by(OutboxMessage.id.desc())))


def retry_by_hand(message_id: int, *, actor: Actor, now: datetime | None = None) -> OutboxMessage:
    """Staff ask for another try of a failed, dead or unknown message.

    The row goes back to pending with a fresh set of retries; the order's
    history records who asked.
    """
    from domain.orders import _event  # orders sits above the outbox

    now = now or utcnow()
    with write_transaction():
        message = get_message(message_id)
        result = db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id,
                   OutboxMessage.status.in_(RETRIABLE_BY_HAND))
            .values(status="pending", attempts=0, next_attempt_at=now, claim_token=None,
                    claimed_at=None)
            .execution_options(synchronize_session=False))
        if result.rowcount != 1:
            raise InvalidTransition(
                "This message is %(status)s: only a failed message or one whose outcome is "
                "unknown can be sent again.", status=Label(STATUS_LABELS[message.status]))
        if message.order_id is not None:
            _event(message.order_id, "message_retried", actor,
                   {"message_id": message.id, "kind": message.kind, "channel": message.channel,
                    "recipient": message.recipient}, now)
        db.session.info.setdefault(NEW_IDS_KEY, []).append(message.id)
        db.session.expire(message)
    return get_message(message_id)
