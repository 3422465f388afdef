"""Printing papers leaves a history event on each order (issue 11): "Invoice printed",
so the list can answer the evening's question, which orders were not printed yet.

One event type for every paper, the paper's kind in its details. Printing changes
nothing else on the order and sends no message, so the events are one INSERT for a
whole bulk run rather than an action per order.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import insert, select

from domain.actors import Actor
from domain.db import db, write_transaction
from domain.documents import KINDS, PRINTED_EVENT
from domain.models import Order, OrderEvent, utcnow

_CHUNK = 500


def record_printed(kind: str, order_ids: Iterable[int], *, actor: Actor,
                   now: datetime | None = None) -> int:
    """One ``papers_printed`` event ({"kind": kind}) on each existing order of
    ``order_ids`` (repeats once); how many were written."""
    if kind not in KINDS:
        raise ValueError(f"Unknown paper kind {kind!r}")
    now = now or utcnow()
    wanted = list(dict.fromkeys(int(i) for i in order_ids))
    written = 0
    with write_transaction() as session:
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start:start + _CHUNK]
            existing = set(session.scalars(select(Order.id).where(Order.id.in_(chunk))))
            rows = [dict(order_id=oid, type=PRINTED_EVENT, actor_type=actor.type,
                         actor_id=actor.id, actor_label=actor.label, created_at=now,
                         details={"kind": kind}) for oid in chunk if oid in existing]
            if rows:
                session.execute(insert(OrderEvent), rows)
                written += len(rows)
    return written


def printed_kinds(order_id: int) -> set[str]:
    """The papers printed for an order so far."""
    details = db.session.scalars(select(OrderEvent.details).where(
        OrderEvent.order_id == order_id, OrderEvent.type == PRINTED_EVENT))
    return {d.get("kind") for d in details if isinstance(d, dict)}
