"""The desk's bell (SPEC §2): every order lifecycle event, per staff member.

Rows are written in the action's transaction (one per active staff member,
except whoever did it: their own actions are not news to them). The live
toast and badges read the same rows: jobs/outbox.py publishes a wake-up on
Redis after the commit, and each open desk page asks for rows newer than the
last one it saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from domain import order_counts
from domain.db import db, insert_ignoring_duplicates, write_transaction
from domain.i18n import N_
from domain.models import DeskNotification, Order, User, utcnow
from domain.notify.kinds import DESK_EVENTS, TOAST_EVENTS

PUBLISH_KEY = "desk_alert"
LIST_LIMIT = 30
# A page that (re)connects late must not pop up a pile of old news: only rows this
# recent become toasts, at most this many per update; the bell keeps all of them.
TOAST_MAX_AGE = timedelta(minutes=10)
TOAST_LIMIT = 3

# The bell's line for each event, in words (translated where shown).
EVENT_LABELS = {
    "order_placed": N_("New order"),
    "proof_uploaded": N_("Payment proof uploaded"),
    "payment_confirmed": N_("Payment confirmed"),
    "proof_declined": N_("Payment proof declined"),
    "order_shipped": N_("Order shipped"),
    "ready_for_pickup": N_("Ready for pickup"),
    "pickup_completed": N_("Picked up"),
    "order_rejected": N_("Order rejected"),
    "order_expired": N_("Order expired"),
    "payment_reminder_due": N_("Payment reminder due"),
    "balance_proof_uploaded": N_("Balance proof uploaded"),
    "whatsapp_cap_reached": N_("WhatsApp monthly cap reached: messages are not being sent"),
}
CAP_ALERT = "whatsapp_cap_reached"


_ACTIVE_USERS = select(User.id).where(User.active.is_(True))  # built once: every action asks


def write_for_events(events, now: datetime) -> int:
    events = [e for e in events if e.type in DESK_EVENTS]
    if not events:
        return 0
    users = list(db.session.scalars(_ACTIVE_USERS))
    rows = [{"user_id": user_id, "order_id": e.order_id, "event_id": e.event_id,
             "kind": e.type, "created_at": now}
            for e in events for user_id in users
            if not (e.actor.type == "staff" and e.actor.id == user_id)]
    if rows:
        # A replayed event adds nothing: (user, event) is unique.
        db.session.execute(insert_ignoring_duplicates(DeskNotification, "user_id", "event_id"),
                           rows)
        db.session.info[PUBLISH_KEY] = True
    return len(rows)


def write_cap_alert(order_id: int, event_id: int, now: datetime, month_start: datetime) -> int:
    """Tell the owners, in the bell, that the WhatsApp monthly cap stopped a message:
    once a month (none since ``month_start``, UTC), attached to the order event
    that says which message was not sent. Inside the caller's transaction."""
    if db.session.scalar(select(DeskNotification.id)
                         .where(DeskNotification.kind == CAP_ALERT,
                                DeskNotification.created_at >= month_start).limit(1)) is not None:
        return 0
    owners = list(db.session.scalars(select(User.id).where(User.active.is_(True),
                                                           User.role == "owner")))
    if not owners:
        return 0
    db.session.execute(insert_ignoring_duplicates(DeskNotification, "user_id", "event_id"),
                       [{"user_id": user_id, "order_id": order_id, "event_id": event_id,
                         "kind": CAP_ALERT, "created_at": now} for user_id in owners])
    db.session.info[PUBLISH_KEY] = True
    return len(owners)


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
    """Opening an order reads its notifications. Checked with a read first: most
    order views have none unread, and a write would take the database's write lock."""
    unread = (DeskNotification.user_id == user_id, DeskNotification.order_id == order_id,
              DeskNotification.read_at.is_(None))
    if db.session.scalar(select(DeskNotification.id).where(*unread).limit(1)) is None:
        return 0
    now = now or utcnow()
    with write_transaction():
        result = db.session.execute(
            update(DeskNotification).where(*unread)
            .values(read_at=now).execution_options(synchronize_session=False))
    return result.rowcount


def mark_read_upto(user_id: int, upto_id: int, *, now: datetime | None = None) -> int:
    """"Mark all as read" for what the staff member saw: rows up to ``upto_id``.

    A notification that arrived after the list was drawn stays unread.
    """
    now = now or utcnow()
    with write_transaction():
        result = db.session.execute(
            update(DeskNotification)
            .where(DeskNotification.user_id == user_id, DeskNotification.read_at.is_(None),
                   DeskNotification.id <= upto_id)
            .values(read_at=now).execution_options(synchronize_session=False))
    return result.rowcount


def open_notification(user_id: int, notification_id: int, *,
                      now: datetime | None = None) -> Order | None:
    """Open one bell entry: it and the rest of its order's entries are read.

    None when the entry is not this user's (or does not exist): callers answer 404,
    the same for both, so ids of other people's entries reveal nothing.
    """
    row = db.session.execute(
        select(DeskNotification.order_id)
        .where(DeskNotification.id == notification_id, DeskNotification.user_id == user_id)
    ).first()
    if row is None:
        return None
    mark_order_read(user_id, row.order_id, now=now)
    return db.session.get(Order, row.order_id)


# ------------------------------------------------------------------ the live desk


@dataclass(frozen=True)
class DeskCounts:
    """The numbers the desk's nav shows, for one staff member."""

    new_orders: int  # unread "new order" entries: orders this person has not opened yet
    to_confirm: int  # orders waiting for their payment proof to be confirmed (everyone's)
    unread: int  # unread bell entries of any kind
    todo: int = 0  # the To do view: proofs to confirm and paid orders not yet shipped

    @property
    def signature(self) -> str:
        """A short token a page sends back, so an unchanged desk gets no update."""
        return f"{self.new_orders}.{self.to_confirm}.{self.unread}.{self.todo}"


def payments_to_confirm() -> int:
    """Orders in pending_confirmation: the review queue's, from the kept counts."""
    return order_counts.to_confirm_count()


def counts(user_id: int) -> DeskCounts:
    return counts_and_latest(user_id)[0]


def counts_and_latest(user_id: int) -> tuple[DeskCounts, int]:
    """The desk's counts and its newest entry's id (every desk page's nav and bell).
    The three numbers of the user's notifications come in one statement, each its own
    subquery on its index; the To do and to-confirm numbers are the status tabs' own
    (domain.order_counts)."""
    mine = DeskNotification.user_id == user_id
    unread = DeskNotification.read_at.is_(None)
    new_orders, unread_n, latest = db.session.execute(select(
        select(func.count()).select_from(DeskNotification)
        .where(mine, unread, DeskNotification.kind == "order_placed").scalar_subquery(),
        select(func.count()).select_from(DeskNotification).where(mine, unread).scalar_subquery(),
        select(func.max(DeskNotification.id)).where(mine).scalar_subquery())).one()
    kept = order_counts.all_counts()
    todo = sum(kept.get(("placed", s), 0) for s in order_counts.TODO_STATUSES)
    to_confirm = kept.get(("placed", "pending_confirmation"), 0)
    return DeskCounts(new_orders=new_orders or 0, to_confirm=to_confirm, unread=unread_n or 0,
                      todo=todo), latest or 0


@dataclass(frozen=True)
class DeskUpdate:
    """What changed for one open desk page since it last heard."""

    latest_id: int  # the newest entry now: the page's next "after"
    counts: DeskCounts
    recent: list  # the bell's list: (DeskNotification, Order), newest first
    new: list  # of those, the ones newer than the page's "after"
    toasts: list  # of those, the ones to pop up, oldest first

    @property
    def has_news(self) -> bool:
        return bool(self.new)


def toasts_from(pairs, *, now: datetime | None = None) -> list:
    """The entries that pop up: new orders and proofs, recent ones only, oldest first."""
    now = now or utcnow()
    recent = [(n, o) for n, o in pairs
              if n.kind in TOAST_EVENTS and n.created_at >= now - TOAST_MAX_AGE]
    return list(reversed(recent[:TOAST_LIMIT]))


def update_since(user_id: int, after_id: int, signature: str = "", *,
                 now: datetime | None = None) -> DeskUpdate | None:
    """The desk's news for a page that has seen entries up to ``after_id`` and shows
    the counts ``signature``; None when nothing changed (no new entry, same counts).

    Read by the event stream on each wake-up and by the polling fallback: both ask
    the database, so a wake-up lost on Redis only delays the news to the next check.
    """
    recent = notifications(user_id)
    new = [(n, o) for n, o in recent if n.id > after_id]
    now_counts = counts(user_id)
    if not new and now_counts.signature == signature:
        return None
    latest = new[0][0].id if new else max(after_id, 0)
    return DeskUpdate(latest_id=latest, counts=now_counts, recent=recent, new=new,
                      toasts=toasts_from(new, now=now))
