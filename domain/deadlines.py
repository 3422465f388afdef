"""The payment deadline (SPEC §1): expiry, the catch-up sweep, reminders, extensions.

Every change here is a guarded UPDATE inside a write transaction, so a job
scheduled for the deadline, the periodic sweep, a proof upload and a staff
confirmation can all run at the same instant: the database lets exactly one
of them change the order, and stock comes back at most once (only
``expire_order``'s winner restocks).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import exists, select, update

from domain.actors import Actor
from domain.db import db, write_transaction
from domain.errors import InvalidTransition, ValidationError
from domain.i18n import L_, Label
from domain.models import Order, OrderEvent
from domain.orders import _event, _locked_order, _now, expire_order, expire_orders, get_order
from domain.status import OrderStatus
from domain.store import get_settings

PENDING = OrderStatus.PENDING_PAYMENT.value
SWEEP_BATCH = 500
MAX_EXTENSION_DAYS = 60
REMINDER_EVENT = "payment_reminder_due"


def expire_if_due(order_id: int, *, now: datetime | None = None) -> str:
    """Expire the order if it is still unpaid at its deadline; say what happened.

    Safe to run any number of times: once the order has moved on (paid, proof
    uploaded, expired by someone else, deadline extended) it does nothing.
    """
    now = _now(now)
    try:
        expire_order(order_id, now=now)
    except InvalidTransition:
        order = get_order(order_id)
        db.session.refresh(order)
        if order.status != PENDING:
            return f"skipped: order is {order.status_info.label if order.status_info else 'a draft'}"
        return "skipped: deadline not reached"
    return "expired"


def overdue_order_ids(now: datetime, *, after_id: int = 0, limit: int = SWEEP_BATCH) -> list[int]:
    return list(db.session.scalars(
        select(Order.id).where(Order.kind == "placed", Order.status == PENDING,
                               Order.payment_deadline_at.is_not(None),
                               Order.payment_deadline_at <= now, Order.id > after_id)
        .order_by(Order.id).limit(limit)))


def sweep_overdue(*, now: datetime | None = None, batch_size: int = SWEEP_BATCH) -> int:
    """Expire every order past its deadline that is still unpaid; returns how many.

    Catches what the per-order scheduled jobs missed (Redis down at placement,
    worker stopped, scheduler late). Orders are expired in batches, each batch
    one write transaction through ``expire_orders``: the same guard, event and
    restock as a single expiry, set-based.
    """
    now = _now(now)
    expired = 0
    last_id = 0
    while True:
        ids = overdue_order_ids(now, after_id=last_id, limit=batch_size)
        if not ids:
            return expired
        expired += len(expire_orders(ids, now=now))
        db.session.expunge_all()  # keep the identity map small across batches
        last_id = ids[-1]


def remind_if_due(order_id: int, *, now: datetime | None = None) -> bool:
    """Write the reminder event once, when the order is unpaid at its reminder time.

    ``reminder_at`` is cleared by the same guarded UPDATE that decides who
    writes the event, so a job and the sweep running together write it once.
    """
    now = _now(now)
    with write_transaction():
        order = _locked_order(order_id)
        result = db.session.execute(
            update(Order).where(Order.id == order_id, Order.kind == "placed",
                                Order.status == PENDING, Order.reminder_at.is_not(None),
                                Order.reminder_at <= now)
            .values(reminder_at=None).execution_options(synchronize_session=False))
        if result.rowcount != 1:
            return False
        _event(order_id, REMINDER_EVENT, Actor("system", None, "Shopdesk"), {
            "payment_deadline_at": order.payment_deadline_at.isoformat()
            if order.payment_deadline_at else None,
            "lead_hours": get_settings().reminder_lead_hours,
        }, now)
        db.session.expire(order)
    return True


def write_due_reminders(*, now: datetime | None = None) -> int:
    """Write every reminder that is due (the sweep's second half); returns how many."""
    now = _now(now)
    ids = list(db.session.scalars(
        select(Order.id).where(Order.kind == "placed", Order.status == PENDING,
                               Order.reminder_at.is_not(None), Order.reminder_at <= now)
        .order_by(Order.id)))
    return sum(1 for order_id in ids if remind_if_due(order_id, now=now))


def _reminded(order_id: int):
    return exists().where(OrderEvent.order_id == order_id, OrderEvent.type == REMINDER_EVENT)


def extend_deadline(order_id: int, days: int, *, actor: Actor,
                    now: datetime | None = None) -> Order:
    """Move an unpaid order's deadline ``days`` later (from now if it already passed).

    The reminder is rescheduled only if none was written yet: the customer is
    reminded once per order.
    """
    if not isinstance(days, int) or not 1 <= days <= MAX_EXTENSION_DAYS:
        raise ValidationError("Extend by 1 to %(max)s days.", max=MAX_EXTENSION_DAYS)
    now = _now(now)
    with write_transaction():
        order = _locked_order(order_id)
        old = order.payment_deadline_at
        if order.kind != "placed" or order.status != PENDING:
            # The status is a label: translated before it goes into the sentence.
            label = Label(order.status_info.label) if order.status_info else L_("a draft")
            raise InvalidTransition(
                "Order %(number)s is %(status)s: only unpaid orders have a deadline to extend.",
                number=order.number, status=label)
        if old is None:
            raise InvalidTransition("Order %(number)s has no payment deadline.",
                                    number=order.number)
        new = max(old, now) + timedelta(days=days)
        reminder = None
        lead = get_settings().reminder_lead_hours
        if lead and not db.session.scalar(select(_reminded(order_id))):
            reminder = max(now, new - timedelta(hours=lead))
        result = db.session.execute(
            update(Order).where(Order.id == order_id, Order.kind == "placed",
                                Order.status == PENDING, Order.payment_deadline_at == old)
            .values(payment_deadline_at=new, reminder_at=reminder, updated_at=now)
            .execution_options(synchronize_session=False))
        if result.rowcount != 1:
            raise InvalidTransition(
                "Order %(number)s changed meanwhile (it may have expired); reload and check.",
                number=order.number)
        _event(order_id, "deadline_extended", actor, {
            "old_deadline": old.isoformat(), "new_deadline": new.isoformat(), "days": days}, now)
        db.session.expire(order)
    return get_order(order_id)
