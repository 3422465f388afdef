"""The desk's bell (SPEC §2): every order lifecycle event, per staff member.

Rows are written in the action's transaction (one per active staff member,
except whoever did it: their own actions are not news to them). The live
toast and badges read the same rows: jobs/outbox.py publishes a wake-up on
Redis after the commit, and each open desk page asks for rows newer than the
last one it saw.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, insert, select, update

from domain.db import db, write_transaction
from domain.models import DeskNotification, Order, User, utcnow
from domain.notify.kinds import DESK_EVENTS

PUBLISH_KEY = "desk_alert"
LIST_LIMIT = 30


def write_for_events(events, now: datetime) -> int:
    events = [e for e in events if e.type in DESK_EVENTS]
    if not events:
        return 0
    users = list(db.session.scalars(select(User.id).where(User.active.is_(True))))
    rows = [{"user_id": user_id, "order_id": e.order_id, "event_id": e.event_id,
             "kind": e.type, "created_at": now}
            for e in events for user_id in users
            if not (e.actor.type == "staff" and e.actor.id == user_id)]
    if rows:
        db.session.execute(insert(DeskNotification), rows)
        db.session.info[PUBLISH_KEY] = True
    return len(rows)


def take_publish_flag(session) -> bool:
    return bool(session.info.pop(PUBLISH_KEY, False))


def unread_count(user_id: int) -> int:
    return db.session.scalar(
        select(func.count()).select_from(DeskNotification)
        .where(DeskNotification.user_id == user_id, DeskNotification.read_at.is_(None))) or 0


def latest_id(user_id: int) -> int:
    return db.session.scalar(select(func.max(DeskNotification.id))
                             .where(DeskNotification.user_id == user_id)) or 0


def notifications(user_id: int, *, after_id: int = 0, limit: int = LIST_LIMIT):
    """(notification, order) pairs for the bell, newest first; ``after_id`` for live updates."""
    query = (select(DeskNotification, Order)
             .join(Order, Order.id == DeskNotification.order_id)
             .where(DeskNotification.user_id == user_id, DeskNotification.id > after_id)
             .order_by(DeskNotification.id.desc()).limit(limit))
    return list(db.session.execute(query).tuples())


def mark_read(user_id: int, ids: list[int] | None = None, *, now: datetime | None = None) -> int:
    """Mark the given notifications (all when ``ids`` is None) of this user read."""
    now = now or utcnow()
    conditions = [DeskNotification.user_id == user_id, DeskNotification.read_at.is_(None)]
    if ids is not None:
        if not ids:
            return 0
        conditions.append(DeskNotification.id.in_(ids))
    with write_transaction():
        result = db.session.execute(update(DeskNotification).where(*conditions)
                                    .values(read_at=now)
                                    .execution_options(synchronize_session=False))
    return result.rowcount


def mark_order_read(user_id: int, order_id: int, *, now: datetime | None = None) -> int:
    """Opening an order reads its notifications."""
    now = now or utcnow()
    with write_transaction():
        result = db.session.execute(
            update(DeskNotification)
            .where(DeskNotification.user_id == user_id, DeskNotification.order_id == order_id,
                   DeskNotification.read_at.is_(None))
            .values(read_at=now).execution_options(synchronize_session=False))
    return result.rowcount
