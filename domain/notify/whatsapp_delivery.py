"""Deliver due WhatsApp rows of the outbox, and record what the Cloud API's webhooks say.

Called by the delivery job (jobs/outbox.py) with one client for the run.

Per claimed row (outbox.claim_due(channel="whatsapp"), the guarded claim the
email uses), one after the other:

1. at send time the channel must still be active and the type switched on,
   else the row is "skipped" with the reason (deactivating stops at once);
2. the template message is built from the order as it is now;
3. ONE write transaction reserves the price against the monthly cap
   (billing.reserve: atomic, so concurrent workers never pass the cap by even
   one message) and stamps the row ``claimed_at``, BEFORE the API call. The cap
   reached: "skipped", an order event says so, the owners' bell once a month;
4. the API call;
5. accepted: ONE transaction records the row sent with the API's message id,
   turns the reservation into a billed ledger row (billing.accept) and applies
   any webhook status that arrived before this commit. Refused (400, or retries
   used up): the reservation is released, the row dead. Worth retrying (429,
   5xx): released, retried later (a 429's Retry-After honoured). Outcome lost (a
   timeout after the request left): "unknown", the reservation kept (the API may
   have taken it), never resent on its own.

A worker killed between the API call and step 5 leaves the row "sending" with
``claimed_at`` stamped: the sweep (outbox.give_up_stuck) makes it "unknown".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text, update

from domain.db import db, insert_ignoring_duplicates, write_transaction
from domain.i18n import N_
from domain.models import Order, OutboxMessage, WhatsAppStatus, utcnow
from domain.notify import alerts, billing, outbox
from domain.notify.kinds import WHATSAPP_NOT_SENT

log = logging.getLogger(__name__)

WHATSAPP = outbox.WHATSAPP
CLAIM_BATCH = 10  # each row is one API call of up to the client's timeout
FAILURE_STREAK = 3  # retryable failures in a row: hand the rest of the batch back
OUTCOMES = ("sent", "failed", "dead", "unknown", "skipped")
# Reasons stored in last_error (message ids: translated where shown).
OFF_REASON = N_("WhatsApp is switched off")
TYPE_OFF_REASON = N_("this message type is switched off")
CAP_REASON = N_("monthly cap reached")
# Webhook statuses: how far a message got. "failed" beats sent/delivered, "read" beats all.
RANK = {"sent": 1, "delivered": 2, "read": 3}
DELIVERY_STATUSES = ("sent", "delivered", "read", "failed")


class _NotOurs(Exception):
    """The sweep took the row back between the claim and the stamp: do not send it."""


@dataclass
class _Run:
    client: Any
    now: Callable[[], datetime]
    own_client: bool = False
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    streak: int = 0
    hand_back_after: float | None = None  # set: stop and hand the batch back, due then

    def get_client(self):
        if self.client is None:
            from domain.notify import whatsapp

            self.client = whatsapp.client_from_config()
            self.own_client = True
        return self.client

    def close(self) -> None:
        if self.own_client and hasattr(self.client, "close"):
            try:
                self.client.close()
            except Exception:  # closing is best effort
                log.warning("Could not close the WhatsApp client", exc_info=True)


def _clock(now) -> Callable[[], datetime]:
    if callable(now):
        return now
    if now is not None:
        return lambda: now
    return utcnow


def deliver_whatsapp_due(client=None, *, limit: int | None = None, now=None,
                         max_seconds: float | None = None) -> dict[str, int]:
    """Deliver every WhatsApp message due now (at most ``limit``); counts per outcome.

    ``client``: a whatsapp.CloudAPIClient (None: one from the saved config, made at
    the first row that needs it and closed at the end). ``now``: a datetime or a
    callable giving one (tests). ``max_seconds``: claim no new batch after this
    long; the counts then carry ``"more": 1`` (the job queues a successor).
    """
    run = _Run(client, _clock(now))
    started = time.monotonic()
    done = 0
    try:
        while limit is None or done < limit:
            if max_seconds is not None and done and time.monotonic() - started >= max_seconds:
                run.counts["more"] = 1
                break
            size = CLAIM_BATCH if limit is None else min(CLAIM_BATCH, limit - done)
            ids, token = outbox.claim_due(channel=WHATSAPP, limit=size, now=run.now())
            if not ids:
                break
            for position, message_id in enumerate(ids):
                if run.streak >= FAILURE_STREAK or run.hand_back_after is not None:
                    _hand_back(run, token, ids[position:])
                    break
                _deliver_one(run, message_id, token)
            done += len(ids)
            if run.streak >= FAILURE_STREAK or run.hand_back_after is not None:
                break
    finally:
        run.close()
    return run.counts


def _off_reason(kind: str) -> str | None:
    from domain.notify import whatsapp_config

    if not whatsapp_config.is_active():
        return OFF_REASON
    if not whatsapp_config.is_type_enabled(kind):
        return TYPE_OFF_REASON
    return None


def _deliver_one(run: _Run, message_id: int, token: str) -> None:
    from domain.notify import whatsapp

    db.session.expire_all()  # the config and the row as they are now, not as first read
    message = db.session.get(OutboxMessage, message_id)
    if message is None or message.status != "sending" or message.claim_token != token:
        run.counts["skipped"] += 1
        return
    kind, order_id, recipient = message.kind, message.order_id, message.recipient
    reason = _off_reason(kind)
    if reason is not None:
        with write_transaction():
            billing.release(message_id)  # a hold left by an earlier try whose outcome was lost
            outbox.record_skipped(message_id, token, reason=reason, now=run.now())
        run.counts["skipped"] += 1
        return
    order = db.session.get(Order, order_id) if order_id is not None else None
    try:
        if order is None:
            raise LookupError("the order no longer exists")
        template = whatsapp.build_message(message, order)
    except Exception as exc:  # a bug or a vanished order: retried, then dead
        log.exception("Could not build WhatsApp message %s", message_id)
        _record(run, message_id, token, f"Could not build the message: {exc}"[:2000], "retry")
        return
    try:
        client = run.get_client()
    except whatsapp.WhatsAppError as error:  # credentials missing or unreadable: not sent
        _failed(run, message_id, token, error)
        return
    sent_as = {"template": template.name, "language": template.language,
               "params": dict(template.params)}
    now = run.now()
    try:
        with write_transaction():
            billing.release(message_id)  # an old hold (an unknown outcome sent by hand again)
            if not billing.reserve(message_id, order_id, kind, now):
                _skip_for_cap(message_id, token, order_id, kind, now)
                run.counts["skipped"] += 1
                return
            stamped = db.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message_id, OutboxMessage.status == "sending",
                       OutboxMessage.claim_token == token)
                .values(claimed_at=now, params=sent_as)
                .execution_options(synchronize_session=False)).rowcount
            if stamped != 1:
                raise _NotOurs
    except _NotOurs:
        run.counts["skipped"] += 1
        return
    try:
        wamid = client.send_template(recipient, template)
    except whatsapp.WhatsAppError as error:
        _failed(run, message_id, token, error)
        return
    except Exception as exc:  # the request may have left: never resend on our own
        log.exception("WhatsApp send of message %s ended unexpectedly", message_id)
        _record(run, message_id, token, f"The send ended unexpectedly: {exc}"[:2000], "unknown")
        return
    _record_sent(run, message_id, token, wamid)


def _skip_for_cap(message_id: int, token: str, order_id: int | None, kind: str,
                  now: datetime) -> None:
    """Inside the reserve's transaction: the row skipped, the order's history and the
    owners' bell (once a month) told."""
    if not outbox.record_skipped(message_id, token, reason=CAP_REASON, now=now):
        raise _NotOurs
    if order_id is None:
        return
    from domain.actors import SYSTEM
    from domain.orders import _event  # orders sits above the outbox

    event_id = _event(order_id, WHATSAPP_NOT_SENT, SYSTEM,
                      {"reason": CAP_REASON, "type": kind, "message_id": message_id}, now)
    start, _end = billing.month_bounds(*billing.local_month(now))
    alerts.write_cap_alert(order_id, event_id, now, start)


def _record_sent(run: _Run, message_id: int, token: str, wamid: str) -> None:
    """ONE transaction: the row sent with its wamid, the charge billed, early statuses applied."""
    now = run.now()
    wamid = (wamid or "")[:128]
    with write_transaction():
        _lock_wamids([wamid])
        # The message left: record it even if the sweep meanwhile called it "unknown".
        db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.claim_token == token,
                   OutboxMessage.status.in_(("sending", "unknown")))
            .values(status="sent", sent_at=now, last_error="", provider_id=wamid or None)
            .execution_options(synchronize_session=False))
        billing.accept(message_id, wamid, now)
        if wamid:
            _apply_statuses([wamid])
    run.streak = 0
    run.counts["sent"] += 1


def _describe(error) -> str:
    describe = getattr(error, "describe", None)
    if callable(describe):
        return str(describe())[:2000]
    parts = [str(part) for part in (getattr(error, "code", None), getattr(error, "title", None))
             if part not in (None, "")]
    detail = getattr(error, "detail", None) or ""
    text_ = " ".join(parts)
    if detail and detail != text_:
        text_ = f"{text_}: {detail}" if text_ else str(detail)
    return (text_ or str(error) or type(error).__name__)[:2000]


def _failed(run: _Run, message_id: int, token: str, error) -> None:
    outcome = getattr(error, "outcome", "retry")
    if outcome not in ("retry", "permanent", "unknown"):
        outcome = "unknown"
    retry_after = getattr(error, "retry_after", None)
    _record(run, message_id, token, _describe(error), outcome, retry_after=retry_after)
    if outcome == "retry":
        run.streak += 1
        if retry_after is not None:  # rate limited: the next sends would be refused too
            run.hand_back_after = float(retry_after)
    else:
        run.streak = 0


def _record(run: _Run, message_id: int, token: str, error: str, outcome: str,
            retry_after: float | None = None) -> None:
    with write_transaction():
        if outcome != "unknown":  # surely not sent: the hold goes back
            billing.release(message_id)
        status = outbox.record_failure(message_id, token, error=error, outcome=outcome,
                                       now=run.now(), retry_after=retry_after)
    run.counts[status if status in run.counts else "skipped"] += 1


def _hand_back(run: _Run, token: str, ids: list[int]) -> None:
    """The batch's untried rows back to the queue (surely not sent), their claim not
    counted as an attempt, due after the server's Retry-After or the first back-off."""
    from datetime import timedelta

    now = run.now()
    delay = (timedelta(seconds=max(run.hand_back_after, 1.0)) if run.hand_back_after is not None
             else outbox.retry_delay(1))
    with write_transaction():
        released = db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.claim_token == token,
                   OutboxMessage.status == "sending", OutboxMessage.claimed_at.is_(None))
            .values(status="pending", claim_token=None, attempts=OutboxMessage.attempts - 1,
                    next_attempt_at=now + delay)
            .execution_options(synchronize_session=False)).rowcount
    run.counts["handed_back"] = run.counts.get("handed_back", 0) + released


# ------------------------------------------------------------------ webhooks


def _lock_wamids(wamids) -> None:
    """On PostgreSQL, serialise a send's commit and a webhook for the same message id
    (each then sees the other's commit); SQLite's single writer does that already."""
    if db.session.get_bind().dialect.name != "postgresql":
        return
    for wamid in sorted(set(wamids)):
        db.session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:w))"), {"w": wamid})


def _timestamp(value) -> datetime | None:
    try:
        seconds = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    if not 0 < seconds < 32503680000:  # before the year 3000
        return None
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


def _items(value) -> list:
    return value if isinstance(value, list) else []


def _parse_statuses(payload, now: datetime) -> list[dict[str, Any]]:
    """The statuses of a webhook body (entry[].changes[].value.statuses[]); anything
    malformed is left out."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    if not isinstance(payload, dict):
        return []
    for entry in _items(payload.get("entry")):
        for change in _items(entry.get("changes") if isinstance(entry, dict) else None):
            value = change.get("value") if isinstance(change, dict) else None
            for status in _items(value.get("statuses") if isinstance(value, dict) else None):
                if not isinstance(status, dict):
                    continue
                wamid, state = status.get("id"), status.get("status")
                if not (isinstance(wamid, str) and 0 < len(wamid) <= 128 and wamid.isprintable()
                        and state in DELIVERY_STATUSES):
                    continue
                code, title = "", ""
                errors = [e for e in _items(status.get("errors")) if isinstance(e, dict)]
                if errors:
                    code = str(errors[0].get("code") or "")[:20]
                    title = str(errors[0].get("title") or errors[0].get("message") or "")[:500]
                rows.setdefault((wamid, state), {
                    "provider_message_id": wamid, "status": state,
                    "occurred_at": _timestamp(status.get("timestamp")),
                    "error_code": code, "error_title": title, "received_at": now})
    return list(rows.values())


def record_status_updates(payload: dict, *, now: datetime | None = None) -> int:
    """Record a webhook body's delivery statuses; returns how many were new.

    Each status is kept (a duplicate is ignored), also for a message id not known
    yet (its send has not committed: applied then, see _record_sent), and the
    matching outbox row shows the furthest one reached. Idempotent, any order.
    """
    now = now or utcnow()
    rows = _parse_statuses(payload, now)
    if not rows:
        return 0
    wamids = sorted({row["provider_message_id"] for row in rows})
    with write_transaction():
        _lock_wamids(wamids)
        new = db.session.execute(
            insert_ignoring_duplicates(WhatsAppStatus, "provider_message_id", "status")
            .returning(WhatsAppStatus.id), rows).all()
        _apply_statuses(wamids)
    return len(new)


def _apply_statuses(wamids: list[str]) -> int:
    """Set each message's delivery result from every status stored for it (so the
    order of arrival does not matter); returns how many rows changed."""
    stored: dict[str, dict[str, WhatsAppStatus]] = {}
    for status in db.session.scalars(select(WhatsAppStatus)
                                     .where(WhatsAppStatus.provider_message_id.in_(wamids))):
        stored.setdefault(status.provider_message_id, {})[status.status] = status
    changed = 0
    for wamid, by_status in stored.items():
        if "read" in by_status:
            best, error = by_status["read"], ""
        elif "failed" in by_status:
            best = by_status["failed"]
            error = " ".join(p for p in (best.error_code, best.error_title) if p)
        else:
            best = max(by_status.values(), key=lambda s: RANK[s.status])
            error = ""
        changed += db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.provider_id == wamid, OutboxMessage.channel == WHATSAPP)
            .values(delivery_status=best.status, delivery_error=error,
                    delivery_at=best.occurred_at or best.received_at)
            .execution_options(synchronize_session=False)).rowcount
    return changed


def message_statuses(wamid: str) -> list[WhatsAppStatus]:
    """Every status stored for one message id, in order of arrival (the timeline)."""
    return list(db.session.scalars(select(WhatsAppStatus)
                                   .where(WhatsAppStatus.provider_message_id == wamid)
                                   .order_by(WhatsAppStatus.id)))
