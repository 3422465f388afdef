"""Unpaid orders built on behalf of a customer (SPEC §1 "Unpaid" list).

The merchant builds a draft (customer, items, shipping method and fee,
discount); it holds no stock and can be edited or deleted freely. Its secret
link lets the customer choose a payment method and confirm: the draft becomes
a placed order (source "on_behalf") and its stock is held at that moment.

The draft → placed change is one guarded ``UPDATE ... WHERE kind = 'draft'``
in the same transaction as the stock hold: two customers (or two tabs)
confirming one link at once give one order, and the loser's hold is rolled
back. Edits and deletes carry the same guard, so a draft cannot change under
a customer who just confirmed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update

from domain.actors import Actor
from domain.checkout import (
    MAX_QUANTITY,
    CustomerDetails,
    _build_lines,
    _customer_id,
    _enabled,
    _lines_summary,
    check_expected_total,
    compute_totals,
    order_number_for,
    payment_deadline,
)
from domain.db import db, write_transaction
from domain.errors import InvalidTransition, ValidationError
from domain.i18n import L_, N_, clean_locale
from domain.inventory import hold_stock
from domain.models import Order, OrderLine, PaymentMethod, ShippingMethod, Variant
from domain.orders import _event, _locked_order, _now, get_order
from domain.payments import PaymentGateway, charge_and_place
from domain.phones import store_e164
from domain.status import OrderStatus
from domain.store import get_settings

ALREADY_PLACED = N_("This order was already confirmed; it can no longer change here.")


class AlreadyPlaced(InvalidTransition):
    """The customer confirmed the draft first: it can no longer change here."""

    def __init__(self):
        super().__init__(ALREADY_PLACED)


class LineQuantityError(ValidationError):
    """The lines of one item add up past the cap; ``variant_id`` says which lines."""

    def __init__(self, item: str, quantity: int, variant_id: int):
        super().__init__(N_("The lines of %(item)s add up to %(quantity)d; an order can have "
                            "at most %(max)d of one item."),
                         item=item, quantity=quantity, max=MAX_QUANTITY)
        self.variant_id = variant_id


@dataclass
class DraftInput:
    customer: CustomerDetails
    items: list[tuple[int, int]]  # (variant_id, quantity)
    shipping_method_id: int
    shipping_fee_cents: int | None = None  # None: the shipping method's fee
    discount_cents: int = 0


def _merged_items(items: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """One (variant, quantity) per item, in first-seen order: the builder may list an
    item on two lines, and the order holds one line of their sum. The cap applies to
    that sum (two lines of 500 are 1000 of one item, not two allowed 500s)."""
    merged: dict[int, int] = {}
    for variant_id, qty in items:
        if not isinstance(qty, int) or not 1 <= qty <= MAX_QUANTITY:
            raise ValidationError("Quantities must be between 1 and %(max)d.", max=MAX_QUANTITY)
        merged[int(variant_id)] = merged.get(int(variant_id), 0) + qty
    for variant_id, qty in merged.items():
        if qty > MAX_QUANTITY:
            variant = db.session.get(Variant, variant_id)
            name = variant.display_name if variant is not None else L_("this item")
            raise LineQuantityError(name, qty, variant_id)
    return list(merged.items())


@dataclass(frozen=True)
class DraftTotals:
    """The money of a draft as the builder shows it (live, before saving)."""

    subtotal_cents: int
    discount_cents: int
    shipping_fee_cents: int
    method_fee_cents: int  # what the chosen method charges
    fee_overridden: bool  # the merchant typed the fee
    shipping_method_name: str
    total_cents: int
    line_totals: dict[int, int]  # variant id -> that item's total


def _money(data: DraftInput, *, allow_empty: bool = False):
    """(shipping, lines, totals): one computation for saving and for the preview."""
    shipping = _enabled(ShippingMethod, data.shipping_method_id, "shipping method")
    items = _merged_items(data.items)
    lines = _build_lines(items) if items or not allow_empty else []
    subtotal = sum(line.line_total_cents for line in lines)
    fee = shipping.fee_cents if data.shipping_fee_cents is None else data.shipping_fee_cents
    total = compute_totals(subtotal, data.discount_cents, fee, 0)
    return shipping, lines, DraftTotals(
        subtotal_cents=subtotal, discount_cents=data.discount_cents, shipping_fee_cents=fee,
        method_fee_cents=shipping.fee_cents,
        fee_overridden=data.shipping_fee_cents is not None,
        shipping_method_name=shipping.name, total_cents=total,
        line_totals={line.variant_id: line.line_total_cents for line in lines})


def preview_totals(data: DraftInput) -> DraftTotals:
    """The draft's totals as saving would compute them (nothing is written). The
    customer is not checked, and no items is a subtotal of 0, not a refusal."""
    _shipping, _lines, totals = _money(data, allow_empty=True)
    return totals


def _prepared(data: DraftInput):
    shipping, lines, totals = _money(data)
    customer = data.customer.cleaned(need_address=shipping.kind != "pickup")
    subtotal, fee, total = totals.subtotal_cents, totals.shipping_fee_cents, totals.total_cents
    return shipping, customer, lines, dict(
        customer_name=customer.name, customer_phone=customer.phone,
        customer_phone_e164=store_e164(customer.phone),
        customer_email=customer.email, shipping_address=customer.address,
        shipping_method_id=shipping.id, shipping_method_name=shipping.name,
        shipping_kind=shipping.kind, subtotal_cents=subtotal,
        discount_cents=data.discount_cents, shipping_fee_cents=fee, extra_charge_cents=0,
        total_cents=total)


def create_draft(data: DraftInput, *, actor: Actor, now: datetime | None = None) -> Order:
    """A new draft; no stock moves."""
    now = _now(now)
    with write_transaction():
        _shipping, _customer, lines, values = _prepared(data)
        draft = Order(kind="draft", status=None, source="on_behalf", created_at=now,
                      updated_at=now, lines=lines, **values)
        db.session.add(draft)
        db.session.flush()
        draft.number = order_number_for(draft.id, get_settings().order_prefix)
        _event(draft.id, "draft_created", actor, {
            "total_cents": draft.total_cents, "lines": _lines_summary(lines)}, now)
    return get_order(draft.id)


def update_draft(order_id: int, data: DraftInput, *, actor: Actor,
                 now: datetime | None = None) -> Order:
    """Replace the draft's customer, items, shipping and discount."""
    now = _now(now)
    with write_transaction():
        _locked_order(order_id)
        _shipping, _customer, lines, values = _prepared(data)
        result = db.session.execute(
            update(Order).where(Order.id == order_id, Order.kind == "draft")
            .values(updated_at=now, **values).execution_options(synchronize_session=False))
        if result.rowcount != 1:
            raise AlreadyPlaced()
        db.session.execute(delete(OrderLine).where(OrderLine.order_id == order_id))
        for line in lines:
            line.order_id = order_id
            db.session.add(line)
        _event(order_id, "draft_updated", actor, {
            "total_cents": values["total_cents"], "lines": _lines_summary(lines)}, now)
    db.session.expire_all()
    return get_order(order_id)


def delete_draft(order_id: int, *, actor: Actor) -> str:
    """Delete a draft for good (its lines and history go with it); returns its number."""
    with write_transaction():
        draft = _locked_order(order_id)
        number = draft.number
        result = db.session.execute(
            delete(Order).where(Order.id == order_id, Order.kind == "draft")
            .execution_options(synchronize_session=False))
        if result.rowcount != 1:
            raise AlreadyPlaced()
        # Forget the deleted rows (not the whole session: the signed-in user stays).
        db.session.expunge(draft)
    return number


def _place(order_id: int, method: PaymentMethod, *, payment_reference: str,
           details: dict, now: datetime, expected_total_cents: int | None = None,
           locale: str | None = None) -> Order:
    with write_transaction():
        draft = _locked_order(order_id)
        if draft.kind != "draft":
            raise AlreadyPlaced()
        lines = list(draft.lines)
        hold_stock(((line.variant_id, line.quantity) for line in lines if line.variant_id),
                   order=draft, actor=Actor.customer(draft.customer_name))
        customer_id = _customer_id(CustomerDetails(
            draft.customer_name, draft.customer_phone, draft.customer_email,
            draft.shipping_address))
        deadline, reminder = payment_deadline(method, now)
        status = OrderStatus.PENDING_PAYMENT if method.is_manual else OrderStatus.PROCESSING
        subtotal = sum(line.line_total_cents for line in lines)
        total = compute_totals(subtotal, draft.discount_cents, draft.shipping_fee_cents,
                               draft.extra_charge_cents)
        check_expected_total(total, expected_total_cents)  # edited since the charge?
        result = db.session.execute(
            update(Order).where(Order.id == order_id, Order.kind == "draft").values(
                kind="placed", status=status.value, source="on_behalf", customer_id=customer_id,
                payment_method_id=method.id, payment_method_name=method.name,
                payment_kind=method.kind, subtotal_cents=subtotal, total_cents=total,
                payment_deadline_at=deadline, reminder_at=reminder, placed_at=now,
                updated_at=now, locale=clean_locale(locale))
            .execution_options(synchronize_session=False))
        if result.rowcount != 1:  # someone confirmed it first: our stock hold rolls back
            raise AlreadyPlaced()
        _event(order_id, "order_placed", Actor.customer(draft.customer_name), {
            "to_status": status.value, "source": "on_behalf", "total_cents": total,
            "payment_method": method.name, "payment_kind": method.kind,
            "shipping_method": draft.shipping_method_name, "lines": _lines_summary(lines),
            "payment_reference": payment_reference,
            "payment_deadline_at": deadline.isoformat() if deadline else None, **details,
        }, now)
        db.session.expire(draft)
    return get_order(order_id)


def checkout_draft(order_id: int, payment_method_id: int, *, card_number: str = "",
                   gateway: PaymentGateway | None = None, now: datetime | None = None,
                   locale: str | None = None) -> Order:
    """The customer confirms the draft with a payment method: it becomes a placed order."""
    now = _now(now)
    draft = get_order(order_id)
    if draft.kind != "draft":
        raise AlreadyPlaced()
    method = _enabled(PaymentMethod, payment_method_id, "payment method")
    if method.is_manual:
        return _place(order_id, method, payment_reference="", details={}, now=now,
                      locale=locale)
    return charge_and_place(
        draft.total_cents, reference=draft.number or "", card_number=card_number,
        gateway=gateway,
        place=lambda charge, details: _place(order_id, method, payment_reference=charge.id,
                                             details=details, now=now,
                                             expected_total_cents=draft.total_cents,
                                             locale=locale))


def list_drafts(limit: int = 200) -> list[Order]:
    return list(db.session.scalars(select(Order).where(Order.kind == "draft")
                                   .order_by(Order.updated_at.desc(), Order.id.desc())
                                   .limit(limit)))


def fee_override(order: Order) -> int | None:
    """The draft's shipping fee when the merchant typed one, else None (the fee follows
    the method). A draft stores only the fee it charges, so a fee equal to its method's
    is read as following it: re-saving a draft must not freeze the old method's fee
    (switching SF Express to store pickup once still charged HK$40)."""
    method = db.session.get(ShippingMethod, order.shipping_method_id) \
        if order.shipping_method_id else None
    if method is not None and order.shipping_fee_cents == method.fee_cents:
        return None
    return order.shipping_fee_cents


def draft_input_from(order: Order) -> DraftInput:
    """The input that rebuilds this draft (the builder's starting values)."""
    return DraftInput(
        customer=CustomerDetails(order.customer_name, order.customer_phone,
                                 order.customer_email, order.shipping_address),
        items=[(line.variant_id, line.quantity) for line in order.lines if line.variant_id],
        shipping_method_id=order.shipping_method_id or 0,
        shipping_fee_cents=fee_override(order), discount_cents=order.discount_cents)
