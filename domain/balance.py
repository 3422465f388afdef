"""Money after a modification (issue 12): the balance a paid order's customer still
owes, or the credit the merchant owes them, and the balance payments that settle it.

No money moves through Shopdesk; these are the books. ``Order.paid_cents`` is what
the customer paid or sent a proof for (domain/orders.py keeps it: the total when the
order leaves Pending payment, 0 again when its proof is declined), plus the balance
payments confirmed here; ``Order.refunded_cents`` the refund notes.

- ``BalanceState(kind, cents)``: kind "none", "due" or "credit".
- ``balance_state(order) -> BalanceState``; ``balance_after(order, total)`` for a
  total not saved yet (the editor's preview).
- ``upload_balance_proof(order_id, *, path, sha256, actor=None, now=None) -> BalancePayment``
  (the customer's proof for the balance due, from their secret order page).
- ``confirm_balance_payment(payment_id, *, actor, now=None)``,
  ``decline_balance_payment(payment_id, reason, *, actor, now=None)``.
- ``mark_balance_received(order_id, *, actor, now=None)`` (the merchant saw the money).
- ``pending_balance_payment(order)``, ``balance_payments(order)``.
- A credit is settled with ``domain.orders.record_refund_note``, which raises
  ``Order.refunded_cents``.

Every action is one write transaction whose guarded UPDATEs decide races: a payment
is decided once (``WHERE status = 'pending'``), and an order's paid amount moves only
from the value the decision was made on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from domain.actors import Actor
from domain.db import db, write_transaction
from domain.errors import InvalidTransition, NotFound
from domain.i18n import L_, N_
from domain.models import BalancePayment, Order
from domain.orders import _event, _locked_order, _now
from domain.status import OrderStatus
from domain.store import clean_text

# Statuses in which the customer's money is on the books: a balance or credit can exist.
PAID_STATUSES = frozenset({OrderStatus.PENDING_CONFIRMATION, OrderStatus.PROCESSING,
                           OrderStatus.COMPLETED})

NO_BALANCE_DUE = N_("This order has no balance to pay.")
PROOF_PENDING = N_("A proof for the balance is already waiting for the shop to check it.")
ALREADY_DECIDED = N_("This balance payment was already handled.")
ORDER_CHANGED = N_("The order changed meanwhile; reload and try again.")


class BalanceRefused(InvalidTransition):
    """One of the refusals above (message ids marked N_)."""

    def __init__(self, msgid: str):
        super().__init__(msgid)


@dataclass(frozen=True)
class BalanceState:
    kind: str  # "none" | "due" (the customer owes cents) | "credit" (the shop owes cents)
    cents: int = 0

    @property
    def due(self) -> bool:
        return self.kind == "due"

    @property
    def credit(self) -> bool:
        return self.kind == "credit"


NONE = BalanceState("none", 0)


def _state(status: str | None, total: int, paid: int, refunded: int) -> BalanceState:
    # An unpaid order (Pending payment) simply owes its total: no balance. A canceled
    # one is settled by refund notes alone.
    if status not in PAID_STATUSES or paid <= 0:
        return NONE
    if total > paid:
        return BalanceState("due", total - paid)
    if paid - refunded > total:
        return BalanceState("credit", paid - refunded - total)
    return NONE


def balance_state(order: Order) -> BalanceState:
    """What is owed on this order now, one way or the other."""
    if order.kind != "placed":
        return NONE
    return _state(order.status, order.total_cents or 0, order.paid_cents or 0,
                  order.refunded_cents or 0)


def balance_after(order: Order, total_cents: int) -> BalanceState:
    """The balance if the order's total became ``total_cents`` (a modification's preview)."""
    if order.kind != "placed":
        return NONE
    return _state(order.status, total_cents, order.paid_cents or 0, order.refunded_cents or 0)


def pending_balance_payment(order: Order) -> BalancePayment | None:
    """The customer's balance proof waiting for the shop, if any."""
    return db.session.scalar(
        select(BalancePayment).where(BalancePayment.order_id == order.id,
                                     BalancePayment.status == "pending")
        .order_by(BalancePayment.id.desc()).limit(1))


def balance_payments(order: Order) -> list[BalancePayment]:
    """Every balance payment of the order, newest first."""
    return list(db.session.scalars(
        select(BalancePayment).where(BalancePayment.order_id == order.id)
        .order_by(BalancePayment.id.desc())))


def declined_reason(order: Order) -> str:
    """Why the shop declined the customer's latest balance proof ("" if it did not),
    while no newer one waits: the customer page asks for a new one and says why."""
    latest = db.session.scalar(select(BalancePayment).where(BalancePayment.order_id == order.id)
                               .order_by(BalancePayment.id.desc()).limit(1))
    return latest.reason if latest is not None and latest.status == "declined" else ""


def _guard_paid(order: Order, now: datetime, add: int = 0) -> None:
    """Move paid_cents by ``add`` from the value just read, or refuse: the guarded
    UPDATE is what makes two decisions on one order queue instead of both counting."""
    result = db.session.execute(
        update(Order).where(Order.id == order.id, Order.paid_cents == (order.paid_cents or 0),
                            Order.total_cents == order.total_cents,
                            Order.status == order.status)
        .values(paid_cents=Order.paid_cents + add, updated_at=now)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        raise BalanceRefused(ORDER_CHANGED)


def _locked_payment(payment_id: int) -> tuple[BalancePayment, Order]:
    payment = db.session.get(BalancePayment, payment_id, populate_existing=True)
    if payment is None:
        raise NotFound("Balance payment not found.")
    order = _locked_order(payment.order_id)
    db.session.refresh(payment)
    return payment, order


def _decide(payment: BalancePayment, status: str, actor: Actor, now: datetime,
            reason: str = "") -> None:
    result = db.session.execute(
        update(BalancePayment)
        .where(BalancePayment.id == payment.id, BalancePayment.status == "pending")
        .values(status=status, decided_at=now, decided_by=actor.label, reason=reason)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        raise BalanceRefused(ALREADY_DECIDED)


def _balance_to_pay(order: Order) -> BalanceState:
    """The balance due now, or refuse: nothing is due, or a proof for it already waits."""
    state = balance_state(order)
    if not state.due:
        raise BalanceRefused(NO_BALANCE_DUE)
    if pending_balance_payment(order) is not None:
        raise BalanceRefused(PROOF_PENDING)
    return state


def upload_balance_proof(order_id: int, *, path: str, sha256: str, actor: Actor | None = None,
                         now: datetime | None = None) -> BalancePayment:
    """The customer's proof for the balance due: a pending balance payment of the
    amount due now, for the shop to confirm or decline (the merchant is told)."""
    now = _now(now)
    with write_transaction():
        order = _locked_order(order_id)
        state = _balance_to_pay(order)
        _guard_paid(order, now)
        payment = BalancePayment(order_id=order_id, amount_cents=state.cents, status="pending",
                                 proof_path=path, proof_sha256=sha256, created_at=now)
        db.session.add(payment)
        db.session.flush()
        _event(order_id, "balance_proof_uploaded", actor or Actor.customer(order.customer_name),
               {"payment_id": payment.id, "amount_cents": state.cents, "sha256": sha256}, now)
        payment_id = payment.id
    return db.session.get(BalancePayment, payment_id)


def confirm_balance_payment(payment_id: int, *, actor: Actor,
                            now: datetime | None = None) -> BalancePayment:
    """The shop saw the balance arrive: the payment counts towards the order."""
    now = _now(now)
    with write_transaction():
        payment, order = _locked_payment(payment_id)
        _decide(payment, "confirmed", actor, now)
        _guard_paid(order, now, add=payment.amount_cents)
        _event(order.id, "balance_payment_confirmed", actor,
               {"payment_id": payment.id, "amount_cents": payment.amount_cents,
                "paid_cents": (order.paid_cents or 0) + payment.amount_cents}, now)
    db.session.expire_all()
    return db.session.get(BalancePayment, payment_id)


def decline_balance_payment(payment_id: int, reason: str, *, actor: Actor,
                            now: datetime | None = None) -> BalancePayment:
    """The proof does not show the balance: declined with a reason (the customer is
    told and can upload another)."""
    reason = clean_text(reason, L_("Reason"), max_len=500, required=True)
    now = _now(now)
    with write_transaction():
        payment, order = _locked_payment(payment_id)
        _decide(payment, "declined", actor, now, reason)
        _event(order.id, "balance_proof_declined", actor,
               {"payment_id": payment.id, "amount_cents": payment.amount_cents,
                "reason": reason}, now)
    db.session.expire_all()
    return db.session.get(BalancePayment, payment_id)


def mark_balance_received(order_id: int, *, actor: Actor,
                          now: datetime | None = None) -> BalancePayment:
    """The merchant received the balance without a proof (cash at pickup, a transfer
    they saw): a confirmed balance payment of the amount due."""
    now = _now(now)
    with write_transaction():
        order = _locked_order(order_id)
        # With a proof waiting, confirm or decline it instead: counting both would pay twice.
        state = _balance_to_pay(order)
        _guard_paid(order, now, add=state.cents)
        payment = BalancePayment(order_id=order_id, amount_cents=state.cents,
                                 status="confirmed", created_at=now, decided_at=now,
                                 decided_by=actor.label)
        db.session.add(payment)
        db.session.flush()
        _event(order_id, "balance_received", actor,
               {"payment_id": payment.id, "amount_cents": state.cents,
                "paid_cents": (order.paid_cents or 0) + state.cents}, now)
        payment_id = payment.id
    db.session.expire_all()
    return db.session.get(BalancePayment, payment_id)
