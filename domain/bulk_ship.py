"""Many orders at once (issue 12): "Confirm shipment" on a selection, and a tracking
file applied (domain/tracking_import.py plans it).

The set-based twin of ``domain.orders.ship_order`` and ``set_tracking_code``, as
``expire_orders`` is of ``expire_order``: per batch one write transaction, one
guarded UPDATE carrying exactly the guard of TRANSITIONS["ship_order"] (RETURNING
names the orders this call moved, so a race or a second run ships nobody twice),
one history event per order with ship_order's details, and the outbox rows those
events cause (outbox.write_for_events), all in that transaction. An order the guard
refuses is reported with ship_order's own refusal and nothing about it changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, insert, or_, select, update

from domain import tracking_import as ti
from domain.actors import Actor
from domain.db import db, write_transaction
from domain.errors import DomainError, InvalidTransition, NotFound
from domain.models import Order, OrderEvent, utcnow
from domain.notify import outbox
from domain.refusals import _refuse
from domain.status import TRACKING_EDITABLE, TRANSITIONS, DeliveryStatus, can_ship_order

BATCH = 500


@dataclass
class BulkResult:
    done: int = 0  # orders changed (shipped, or given their code)
    shipped: list[int] = field(default_factory=list)
    coded: list[int] = field(default_factory=list)  # tracking code set, not shipped
    skipped: list[tuple[str | None, DomainError]] = field(default_factory=list)
    unchanged: int = 0

    def add(self, other: BulkResult) -> None:
        self.done += other.done
        self.shipped += other.shipped
        self.coded += other.coded
        self.skipped += other.skipped
        self.unchanged += other.unchanged


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _events(rows: list[dict[str, Any]], type_: str, actor: Actor, now: datetime) -> None:
    """One history event per (order id, details), and the messages they cause."""
    if not rows:
        return
    written = db.session.execute(insert(OrderEvent).returning(OrderEvent.id, OrderEvent.order_id), [
        {"order_id": row["order_id"], "type": type_, "actor_type": actor.type,
         "actor_id": actor.id, "actor_label": actor.label, "created_at": now,
         "details": row["details"]} for row in rows]).all()
    outbox.write_for_events([outbox.WrittenEvent(w.order_id, w.id, type_, actor)
                             for w in written], now)


def _ship(states: list, codes: dict[int, str], actor: Actor, now: datetime) -> list[int]:
    """Ship these orders (rows of tracking_import.STATE_COLUMNS) in the caller's
    transaction, giving those in ``codes`` their new code; returns the ids shipped."""
    if not states:
        return []
    sources, target, deliveries, kinds = TRANSITIONS["ship_order"]
    ids = [s.id for s in states]
    values: dict[str, Any] = {"status": target.value, "updated_at": now,
                              "delivery_status": DeliveryStatus.SHIPPED.value}
    guard = [Order.id.in_(ids), Order.kind == "placed",
             Order.status.in_([s.value for s in sources]),
             Order.delivery_status.in_([d.value for d in deliveries]),
             Order.shipping_kind.in_(kinds)]
    if codes:
        values["tracking_code"] = case(codes, value=Order.id, else_=Order.tracking_code)
        # ship_order's rule: a carrier's code is never replaced.
        guard.append(or_(Order.id.not_in(list(codes)), Order.tracking_code_by_carrier.is_(False)))
    shipped = set(db.session.scalars(
        update(Order).where(and_(*guard)).values(**values).returning(Order.id)
        .execution_options(synchronize_session=False)))
    rows = []
    for state in states:
        if state.id not in shipped:
            continue
        details = {"from_status": state.status, "to_status": target.value,
                   "delivery_status": DeliveryStatus.SHIPPED.value}
        if state.id in codes:
            details.update(tracking_code=codes[state.id], old_tracking_code=state.tracking_code)
        else:
            details["tracking_code"] = state.tracking_code
        rows.append({"order_id": state.id, "details": details})
    _events(rows, "order_shipped", actor, now)
    return [s.id for s in states if s.id in shipped]


def _set_codes(states: list, codes: dict[int, str], actor: Actor, now: datetime) -> list[int]:
    """set_tracking_code for many orders: the same guard, one event each."""
    if not codes:
        return []
    done = set(db.session.scalars(
        update(Order).where(Order.id.in_(list(codes)), Order.kind == "placed",
                            Order.status.in_([s.value for s in TRACKING_EDITABLE]),
                            Order.tracking_code_by_carrier.is_(False))
        .values(tracking_code=case(codes, value=Order.id), updated_at=now)
        .returning(Order.id).execution_options(synchronize_session=False)))
    _events([{"order_id": s.id, "details": {"old": s.tracking_code, "new": codes[s.id]}}
             for s in states if s.id in done], "tracking_code_set", actor, now)
    return [s.id for s in states if s.id in done]


def _lost(state) -> DomainError:
    """Why the guarded UPDATE did not take an order it was planned for (it changed
    between planning and writing: on PostgreSQL another transaction may have won)."""
    return InvalidTransition("The order changed meanwhile; reload and try again.")


# ------------------------------------------------------------------ confirm shipment


def ship_orders(order_ids: list[int], *, actor: Actor, now: datetime | None = None,
                progress: Callable[[int, int], None] | None = None,
                batch_size: int = BATCH) -> BulkResult:
    """Confirm shipment of every order in ``order_ids`` that may ship; the others are
    skipped with ship_order's refusal (wrong status, pickup, already shipped, draft,
    not found) and left exactly as they were."""
    ids = list(dict.fromkeys(int(i) for i in order_ids))
    result = BulkResult()
    for chunk in _chunks(ids, batch_size):
        with write_transaction():
            now_ = now or utcnow()
            states = {row.id: row for row in db.session.execute(
                select(*ti.STATE_COLUMNS).where(Order.id.in_(chunk)).with_for_update())}
            ready = []
            for order_id in chunk:
                state = states.get(order_id)
                if state is None:
                    result.skipped.append((None, NotFound("Order not found.")))
                elif not can_ship_order(state):
                    result.skipped.append((state.number, _refuse(state, "ship_order")))
                else:
                    ready.append(state)
            shipped = _ship(ready, {}, actor, now_)
            taken = set(shipped)
            result.skipped += [(s.number, _lost(s)) for s in ready if s.id not in taken]
            result.shipped += shipped
            result.done += len(shipped)
        if progress:
            progress(min(len(ids), (len(result.shipped) + len(result.skipped))), len(ids))
    return result


# ------------------------------------------------------------------ tracking file


def apply_tracking(data: ti.TrackingFile, *, actor: Actor, ship_all: bool = False,
                   now: datetime | None = None,
                   progress: Callable[[int, int], None] | None = None,
                   batch_size: int = BATCH) -> BulkResult:
    """Apply a tracking file: each batch of rows is planned again under the write
    lock (tracking_import.classify, as the preview did) and written in one
    transaction. Invalid rows are skipped with their reason; rows that change
    nothing (the same code already there, already shipped) write nothing, so
    applying the same file twice changes nothing the second time."""
    rows = data.rows
    result = BulkResult()
    seen: dict[str, int] = {}
    handled = 0
    for chunk in _chunks(rows, batch_size):
        with write_transaction():
            now_ = now or utcnow()
            states = ti.order_states((r.order_number for r in chunk), lock=True)
            plans = ti.plan_rows(chunk, states, ship_all=ship_all, seen=seen)
            by_id = {s.id: s for s in states.values()}
            ships, codes, sets = [], {}, {}
            for plan in plans:
                if plan.action == ti.ERROR:
                    result.skipped.append((plan.order_number or None, plan.error))
                elif plan.action == ti.UNCHANGED:
                    result.unchanged += 1
                elif plan.action in ti.SHIPS:
                    ships.append(by_id[plan.order_id])
                    if plan.action == ti.SET_SHIP:
                        codes[plan.order_id] = plan.code
                else:
                    sets[plan.order_id] = plan.code
            shipped = set(_ship(ships, codes, actor, now_))
            coded = set(_set_codes([by_id[i] for i in sets], sets, actor, now_))
            for state in ships:
                if state.id not in shipped:
                    result.skipped.append((state.number, _lost(state)))
            for order_id in sets:
                if order_id not in coded:
                    result.skipped.append((by_id[order_id].number, _lost(by_id[order_id])))
            result.shipped += [s.id for s in ships if s.id in shipped]
            result.coded += [i for i in sets if i in coded]
            result.done += len(shipped) + len(coded)
        handled += len(chunk)
        if progress:
            progress(handled, len(rows))
    return result
