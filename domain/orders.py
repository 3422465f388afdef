"""Order lifecycle actions (SPEC §1, §3, §6).

Each action is one write transaction: guard first, a DomainError on refusal,
stock moved atomically, exactly one history event written. An order's status
changes only here (and in the set-based twin domain.bulk_ship); it gets its first
one where it is made (domain.checkout._new_order, domain.drafts). Transitions are
guarded UPDATEs; the rowcount decides who wins a race, so a concurrent loser
changes nothing.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, insert, select, update

from domain import search_text
from domain.actors import SYSTEM, Actor
from domain.checkout import (  # noqa: F401  (re-exported, see below)
    MAX_LINES,
    MAX_QUANTITY,
    NOTE_MAX,
    PHONE_RE,
    PRICE_CHANGED,
    Checkout,
    CustomerDetails,
    _build_lines,
    _enabled,
    _lines_summary,
    _new_order,
    _recheck_for_sale,
    _refresh_customer,
    check_expected_total,
    compute_totals,
    order_number_for,
    payment_deadline,
)
from domain.db import db, write_transaction
from domain.errors import InvalidTransition, NotFound, ValidationError
from domain.i18n import L_, N_, Label
from domain.inventory import hold_stock, restock, restock_orders
from domain.models import (
    Order,
    OrderEvent,
    OrderLine,
    PaymentMethod,
    ShippingMethod,
    utcnow,
)
from domain.money import format_money
from domain.notify import outbox
from domain.refusals import (  # noqa: F401  (re-exported, see below)
    HINTED_REFUSALS,
    REFUSALS,
    TransitionRefused,
    _refuse,
)
from domain.status import (
    TRANSITIONS,
    DeliveryStatus,
    OrderStatus,
    can_record_refund,
    can_set_tracking_code,
)
from domain.store import clean_text, get_settings

# Checkout's inputs and pieces live in domain.checkout, the refusals' sentences in
# domain.refusals; both are re-exported, so ``from domain.orders import Checkout`` and
# the like keep working. place_order looks its helpers up in this module, so a patch
# of ``domain.orders._build_lines`` (tests/test_checkout_recheck.py) still applies.

TRACKING_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-_/. ]{0,63}$")


# ---------------------------------------------------------------- helpers


def _now(now: datetime | None) -> datetime:
    return now or utcnow()


# Built once, values given when run: most actions write one event, under the write lock.
_INSERT_EVENT = insert(OrderEvent).returning(OrderEvent.id)


def _event(order_id: int, type_: str, actor: Actor, details: dict[str, Any],
           now: datetime) -> int:
    """Write one history event (a plain INSERT: no ORM flush on the hot path), and
    the messages it causes (the outbox, in this same transaction). Its id."""
    event_id = db.session.execute(_INSERT_EVENT, {
        "order_id": order_id, "type": type_, "actor_type": actor.type, "actor_id": actor.id,
        "actor_label": actor.label, "created_at": now, "details": details}).scalar_one()
    if type_ == "order_placed" and details.get("to_status") == OrderStatus.PROCESSING:
        # Placed already paid (an online method): the books say the total was paid.
        # Here because both ways of placing (checkout, a draft's link) end in this event.
        db.session.execute(update(Order).where(Order.id == order_id, Order.paid_cents == 0)
                           .values(paid_cents=Order.total_cents)
                           .execution_options(synchronize_session=False))
    outbox.write_for_events([outbox.WrittenEvent(order_id, event_id, type_, actor)], now)
    return event_id


def _locked_order(order_id: int) -> Order:
    """The order row, locked for the rest of the transaction on PostgreSQL."""
    order = db.session.scalar(
        select(Order).where(Order.id == order_id).with_for_update()
        .execution_options(populate_existing=True)
    )
    if order is None:
        raise NotFound("Order not found.")
    return order


def _locked_state(order_id: int):
    """Just the columns a transition guard and its refusal need, row-locked on PostgreSQL."""
    state = db.session.execute(
        select(Order.number, Order.status, Order.delivery_status, Order.shipping_kind)
        .where(Order.id == order_id).with_for_update()).first()
    if state is None:
        raise NotFound("Order not found.")
    return state


def _transition(order_id: int, action: str, *, actor: Actor, now: datetime,
                event_type: str, details: dict[str, Any] | None = None,
                values: dict[str, Any] | None = None, where=(),
                after_update=None) -> None:
    """Move the order along one edge of TRANSITIONS, or raise InvalidTransition.

    Runs inside the caller's write transaction. The UPDATE carries the guard,
    so when two requests race only one sees rowcount 1.
    """
    sources, target, deliveries, kinds = TRANSITIONS[action]
    state = _locked_state(order_id)
    conditions = [Order.id == order_id, Order.kind == "placed",
                  Order.status.in_([s.value for s in sources]), *where]
    if deliveries is not None:
        conditions.append(Order.delivery_status.in_([d.value for d in deliveries]))
    if kinds is not None:
        conditions.append(Order.shipping_kind.in_(kinds))
    result = db.session.execute(
        update(Order).where(*conditions)
        .values(status=target.value, updated_at=now, **(values or {}))
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise _refuse(state, action)
    # Side effects of winning (restock) run only here, after the guard said yes.
    extra = after_update() if after_update else {}
    _event(order_id, event_type, actor,
           {"from_status": state.status, "to_status": target.value, **(details or {}), **extra},
           now)


def _restock_order(order_id: int, actor: Actor | None = None) -> list[dict[str, Any]]:
    lines = db.session.execute(
        select(OrderLine.variant_id, OrderLine.quantity, OrderLine.product_name,
               OrderLine.variant_name)
        .where(OrderLine.order_id == order_id, OrderLine.variant_id.is_not(None))
    ).all()
    order = db.session.execute(select(Order.id, Order.number).where(Order.id == order_id)).first()
    restock(((line.variant_id, line.quantity) for line in lines), order=order, actor=actor)
    return [{"variant_id": line.variant_id, "quantity": line.quantity,
             "name": line.product_name, "variant": line.variant_name} for line in lines]


def get_order(order_id: int) -> Order:
    order = db.session.get(Order, order_id)
    if order is None:
        raise NotFound("Order not found.")
    return order


def get_order_by_number(number: str) -> Order | None:
    return db.session.scalar(select(Order).where(Order.number == number))


_BY_TOKEN = select(Order).where(Order.public_token == bindparam("token"))  # built once


def get_order_by_token(token: str) -> Order | None:
    if not token or len(token) > 64:
        return None
    return db.session.scalar(_BY_TOKEN, {"token": token})


# ---------------------------------------------------------------- actions


def place_order(checkout: Checkout, *, source: str = "online_store",
                actor: Actor | None = None, now: datetime | None = None) -> Order:
    """Create a placed order and hold its stock.

    A manual payment method gives Pending payment (with a deadline when the
    store sets one); an online method has already been charged by the
    gateway, so the order starts in Processing.
    """
    now = _now(now)
    # Read first, outside the write lock (on SQLite one writer at a time, so every
    # millisecond inside is a millisecond every other checkout waits): the methods,
    # the customer's details, the variants' names and prices, the settings. Inside,
    # the guards are asked again in one statement and stock is held by the guarded
    # UPDATE, so nothing that changed meanwhile gets through.
    payment = _enabled(PaymentMethod, checkout.payment_method_id)
    shipping = _enabled(ShippingMethod, checkout.shipping_method_id)
    customer = checkout.customer.cleaned(need_address=shipping.kind != "pickup")
    lines = _build_lines(checkout.items)
    get_settings()  # held for the request: the order number's prefix, the deadline
    with write_transaction(keep_loaded=True):
        _recheck_for_sale(payment.id, shipping.id, [ln.variant_id for ln in lines])
        placed = _new_order(lines, customer, payment, shipping, checkout, source, now)
        actor = actor or Actor.customer(customer.name)
        _event(placed.id, "order_placed", actor, {
            "to_status": placed.status, "source": source, "total_cents": placed.total_cents,
            "payment_method": payment.name, "payment_kind": payment.kind,
            "shipping_method": shipping.name, "lines": _lines_summary(lines),
            "payment_reference": checkout.payment_reference,
            "payment_deadline_at": placed.payment_deadline_at.isoformat()
            if placed.payment_deadline_at else None,
            **checkout.details,
        }, now)
        # The row locks last, after the order's search text: on PostgreSQL the customer's
        # UPDATE and the guarded stock UPDATE lock their rows until the commit, and every
        # other checkout of that customer or item waits for it. A refusal rolls back the
        # order, its event and its messages too.
        search_text.refresh_pending(db.session())
        _refresh_customer(placed.customer)
        hold_stock(((ln.variant_id, ln.quantity) for ln in lines), order=placed, actor=actor)
    return get_order(placed.id)  # loaded after the write lock is let go


def upload_proof(order_id: int, *, path: str, sha256: str, actor: Actor | None = None,
                 now: datetime | None = None) -> tuple[Order, str | None]:
    """Record a payment proof; returns (order, path of the proof it replaced)."""
    now = _now(now)
    with write_transaction():
        order = _locked_order(order_id)
        replaced = order.proof_path
        _transition(order_id, "upload_proof", actor=actor or Actor.customer(order.customer_name),
                    now=now, event_type="proof_uploaded",
                    details={"replaced": bool(replaced), "sha256": sha256},
                    values={"proof_path": path, "proof_sha256": sha256, "proof_uploaded_at": now,
                            # the proof stands for the whole total (domain/balance.py)
                            "paid_cents": Order.total_cents})
    return get_order(order_id), replaced


def confirm_payment(order_id: int, *, actor: Actor, now: datetime | None = None) -> Order:
    """Staff saw the money (proof, or cash): the order moves to Processing."""
    now = _now(now)
    with write_transaction():
        # From Pending payment (cash, no proof) the total is paid now; from Payment
        # pending confirmation the proof already counted it (SET reads the old status).
        _transition(order_id, "confirm_payment", actor=actor, now=now,
                    event_type="payment_confirmed",
                    values={"paid_cents": case(
                        (Order.status == OrderStatus.PENDING_PAYMENT.value, Order.total_cents),
                        else_=Order.paid_cents)})
    return get_order(order_id)


def decline_proof(order_id: int, reason: str, *, actor: Actor,
                  now: datetime | None = None) -> Order:
    """The proof does not show the payment: back to Pending payment, with a reason.

    The customer gets a fresh payment deadline from now: the old one may have
    passed while the proof waited, and expiring a minute after a decline would
    give them no chance to pay.
    """
    reason = clean_text(reason, L_("Reason"), max_len=500, required=True)
    now = _now(now)
    with write_transaction():
        method_id = db.session.scalar(select(Order.payment_method_id).where(Order.id == order_id))
        method = db.session.get(PaymentMethod, method_id) if method_id else None
        deadline, reminder = payment_deadline(method, now) if method else (None, None)
        _transition(order_id, "decline_proof", actor=actor, now=now,
                    event_type="proof_declined",
                    values={"payment_deadline_at": deadline, "reminder_at": reminder,
                            "paid_cents": 0},
                    details={"reason": reason, "payment_deadline_at":
                             deadline.isoformat() if deadline else None})
    return get_order(order_id)


def ship_order(order_id: int, *, actor: Actor, tracking_code: str | None = None,
               now: datetime | None = None) -> Order:
    """Confirm shipment: Completed, delivery status Shipped, optional tracking code."""
    now = _now(now)
    values: dict[str, Any] = {"delivery_status": DeliveryStatus.SHIPPED.value}
    details: dict[str, Any] = {"delivery_status": DeliveryStatus.SHIPPED.value}
    with write_transaction():
        order = _locked_order(order_id)
        code = _clean_tracking(tracking_code) if tracking_code else None
        if code is not None and code != order.tracking_code:
            if order.tracking_code_by_carrier:
                raise ValidationError("This tracking code comes from the carrier and cannot be changed.")
            values["tracking_code"] = code
            details.update(tracking_code=code, old_tracking_code=order.tracking_code)
        details.setdefault("tracking_code", order.tracking_code)
        _transition(order_id, "ship_order", actor=actor, now=now,
                           event_type="order_shipped", details=details, values=values)
    return get_order(order_id)


def mark_ready_for_pickup(order_id: int, *, actor: Actor, now: datetime | None = None) -> Order:
    now = _now(now)
    with write_transaction():
        _transition(order_id, "mark_ready_for_pickup", actor=actor, now=now,
                           event_type="ready_for_pickup",
                           values={"delivery_status": DeliveryStatus.READY_FOR_PICKUP.value},
                           details={"delivery_status": DeliveryStatus.READY_FOR_PICKUP.value})
    return get_order(order_id)


def complete_pickup(order_id: int, *, actor: Actor, now: datetime | None = None) -> Order:
    now = _now(now)
    with write_transaction():
        _transition(order_id, "complete_pickup", actor=actor, now=now,
                           event_type="pickup_completed",
                           values={"delivery_status": DeliveryStatus.PICKED_UP.value},
                           details={"delivery_status": DeliveryStatus.PICKED_UP.value})
    return get_order(order_id)


def reject_order(order_id: int, reason: str, *, actor: Actor,
                 now: datetime | None = None) -> Order:
    """Cancel before shipment with a reason; every line is restocked once.

    No money moves: refunds happen outside Shopdesk (see record_refund_note).
    """
    reason = clean_text(reason, L_("Reason"), max_len=500, required=True)
    now = _now(now)

    def restock_once():  # only the winner of the guarded UPDATE restocks
        return {"restocked": _restock_order(order_id, actor)}

    with write_transaction():
        _transition(order_id, "reject_order", actor=actor, now=now,
                            event_type="order_rejected",
                            values={"cancel_reason": reason},
                            details={"reason": reason}, after_update=restock_once)
    return get_order(order_id)


# Stored as the cancel reason (data); a message id, so it reads translated where shown.
EXPIRY_REASON = N_("Payment deadline passed")


def expire_order(order_id: int, *, now: datetime | None = None) -> None:
    """Cancel an order still in Pending payment at its deadline, and restock it."""
    now = _now(now)
    with write_transaction():
        if not _expire_batch([order_id], now):
            raise _refuse(_locked_state(order_id), "expire_order")


def expire_orders(order_ids: list[int], *, now: datetime | None = None) -> list[int]:
    """Expire every order of ``order_ids`` that is still due; returns the ids expired.

    The set-based twin of expire_order for the sweep: the same guard, restock
    and event, in one transaction and a handful of statements per batch.
    Orders paid or canceled meanwhile are simply not in the result.
    """
    now = _now(now)
    with write_transaction():
        return _expire_batch(order_ids, now)


def _expire_batch(order_ids: list[int], now: datetime) -> list[int]:
    sources, target, _deliveries, _kinds = TRANSITIONS["expire_order"]
    # The guarded UPDATE decides: RETURNING names exactly the orders this call
    # canceled, so each is restocked once however many sweeps and jobs race.
    expired = list(db.session.scalars(
        update(Order)
        .where(Order.id.in_(order_ids), Order.kind == "placed",
               Order.status.in_([s.value for s in sources]),
               Order.payment_deadline_at.is_not(None), Order.payment_deadline_at <= now)
        .values(status=target.value, updated_at=now, cancel_reason=EXPIRY_REASON)
        .returning(Order.id)
        .execution_options(synchronize_session=False)))
    if not expired:
        return []
    lines = db.session.execute(
        select(OrderLine.order_id, OrderLine.variant_id, OrderLine.quantity,
               OrderLine.product_name, OrderLine.variant_name, Order.number)
        .join(Order, Order.id == OrderLine.order_id)
        .where(OrderLine.order_id.in_(expired), OrderLine.variant_id.is_not(None))).all()
    # Merged per variant, in id order; one ledger row per order and variant.
    restock_orders((line.order_id, line.number, line.variant_id, line.quantity) for line in lines)
    restocked: dict[int, list] = {order_id: [] for order_id in expired}
    for line in lines:
        restocked[line.order_id].append({"variant_id": line.variant_id, "quantity": line.quantity,
                                         "name": line.product_name, "variant": line.variant_name})
    written = db.session.execute(insert(OrderEvent).returning(OrderEvent.id, OrderEvent.order_id), [
        {"order_id": order_id, "type": "order_expired", "actor_type": SYSTEM.type,
         "actor_id": SYSTEM.id, "actor_label": SYSTEM.label, "created_at": now,
         "details": {"from_status": OrderStatus.PENDING_PAYMENT.value,
                     "to_status": target.value, "reason": EXPIRY_REASON,
                     "restocked": restocked[order_id]}}
        for order_id in expired]).all()
    outbox.write_for_events([outbox.WrittenEvent(row.order_id, row.id, "order_expired", SYSTEM)
                             for row in written], now)
    return expired


def _clean_tracking(code: str | None) -> str:
    code = (code or "").strip()
    if code and not TRACKING_RE.match(code):
        raise ValidationError(
            "Tracking code may use letters, digits, spaces and - _ / . (at most 64 characters).")
    return code


def set_tracking_code(order_id: int, code: str, *, actor: Actor,
                      now: datetime | None = None) -> Order:
    """Edit the tracking code; refused once completed/canceled or when the carrier set it."""
    code = _clean_tracking(code)
    now = _now(now)
    with write_transaction():
        order = _locked_order(order_id)
        if not can_set_tracking_code(order):
            if order.tracking_code_by_carrier:
                raise InvalidTransition("This tracking code comes from the carrier and cannot be edited.")
            if order.kind == "placed" and order.shipping_kind == "pickup":
                raise InvalidTransition(
                    "Order %(number)s is collected in the shop: it has no tracking code.",
                    number=order.number)
            label = Label(order.status_info.label) if order.status_info else L_("a draft")
            raise InvalidTransition(
                "Order %(number)s is %(status)s: its tracking code can no longer change.",
                number=order.number, status=label)
        old = order.tracking_code
        if old == code:
            return order
        result = db.session.execute(
            update(Order).where(Order.id == order_id, Order.status == order.status,
                                Order.tracking_code_by_carrier.is_(False),
                                Order.shipping_kind != "pickup")
            .values(tracking_code=code, updated_at=now)
            .execution_options(synchronize_session=False))
        if result.rowcount != 1:
            raise InvalidTransition("The order changed meanwhile; reload and try again.")
        _event(order_id, "tracking_code_set", actor, {"old": old, "new": code}, now)
        db.session.expire(order)
    return order


def add_note(order_id: int, text: str, *, actor: Actor, now: datetime | None = None) -> None:
    """Internal note, visible to staff only."""
    text = clean_text(text, L_("Note"), max_len=2000, required=True)
    now = _now(now)
    with write_transaction():
        _locked_order(order_id)
        _event(order_id, "note_added", actor, {"text": text}, now)


# How an order's payment method takes money (Order.payment_kind), as shown.
PAYMENT_KINDS = {"manual": N_("manual"), "online": N_("online")}

# Stored in the refund event as written here (message ids: translated where shown).
REFUND_METHODS = (N_("Original payment method"), N_("FPS"), N_("Bank transfer"), N_("PayMe"),
                  N_("Cash"), N_("Store credit"), N_("Other"))


def record_refund_note(order_id: int, *, amount_cents: int, method: str, reference: str = "",
                       actor: Actor, now: datetime | None = None) -> None:
    """Record, for the books, a refund made outside Shopdesk. No money moves."""
    if method not in REFUND_METHODS:
        raise ValidationError("Choose how the refund was made.")
    reference = clean_text(reference, L_("Reference"), max_len=120)
    now = _now(now)
    with write_transaction():
        order = _locked_order(order_id)
        if amount_cents <= 0:
            raise ValidationError("Refund amount must be more than zero.")
        # Only money received can be refunded (issue 16): confirm the payment first if it
        # arrived outside Shopdesk. The cap is what was paid less the refunds noted.
        if not can_record_refund(order):
            raise InvalidTransition(
                "No payment was received for order %(number)s, so there is nothing to refund.",
                number=order.number)
        refundable = max(0, order.paid_cents - (order.refunded_cents or 0))
        if amount_cents > refundable:
            raise ValidationError(
                "Refund amount cannot exceed %(amount)s: what the customer paid, less the "
                "refunds already noted.",
                amount=format_money(refundable, get_settings().currency))
        result = db.session.execute(
            update(Order).where(Order.id == order_id,
                                Order.refunded_cents == (order.refunded_cents or 0))
            .values(refunded_cents=Order.refunded_cents + amount_cents)
            .execution_options(synchronize_session=False))
        if result.rowcount != 1:  # another note landed first: its cap must be re-read
            raise InvalidTransition("The order changed meanwhile; reload and try again.")
        _event(order_id, "refund_noted", actor,
               {"amount_cents": amount_cents, "method": method, "reference": reference}, now)
        db.session.expire(order)


def order_history(order_id: int) -> list[OrderEvent]:
    return list(db.session.scalars(select(OrderEvent).where(OrderEvent.order_id == order_id)
                                   .order_by(OrderEvent.created_at.desc(), OrderEvent.id.desc())))
