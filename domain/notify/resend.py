"""Resend email (SPEC §2): the customer email for the order's current status, at
most MAX_RESENDS times per order.

The limit is kept by a guarded UPDATE of ``orders.email_resends`` (``... WHERE
email_resends < 5``): two staff pressing at the same moment cannot pass it,
because only one UPDATE can move the count from 4 to 5.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from domain.actors import Actor
from domain.db import db, write_transaction
from domain.errors import ResendLimit, ValidationError
from domain.models import Order, utcnow
from domain.notify import outbox
from domain.notify.kinds import CUSTOMER, status_email_kind
from domain.orders import _event, _locked_order

MAX_RESENDS = 5


def resends_left(order: Order) -> int:
    return max(0, MAX_RESENDS - (order.email_resends or 0))


def resend_email(order_id: int, *, actor: Actor, now: datetime | None = None) -> Order:
    """Queue the current-status email again; a history event records it."""
    now = now or utcnow()
    with write_transaction():
        order = _locked_order(order_id)
        if order.kind != "placed":
            raise ValidationError("A draft has no order email to resend.")
        if not order.customer_email:
            raise ValidationError("Order %(number)s has no customer email to send to.",
                                  number=order.number)
        result = db.session.execute(
            update(Order).where(Order.id == order_id, Order.email_resends < MAX_RESENDS)
            .values(email_resends=Order.email_resends + 1)
            .execution_options(synchronize_session=False))
        if result.rowcount != 1:
            raise ResendLimit(
                "Order %(number)s has already been resent %(max)s times, the limit for one "
                "order, so it cannot be resent again.", number=order.number, max=MAX_RESENDS)
        count = db.session.scalar(select(Order.email_resends).where(Order.id == order_id))
        kind = status_email_kind(order)
        event_id = _event(order_id, "email_resent", actor,
                          {"count": count, "kind": kind, "recipient": order.customer_email}, now)
        outbox.write_messages([outbox.message_row(
            event_key=outbox.event_key(event_id), recipient=order.customer_email, audience=CUSTOMER,
            kind=kind, now=now, order_id=order_id, event_id=event_id,
            params={"resend": count})])
        db.session.expire(order)
    return db.session.get(Order, order_id)
