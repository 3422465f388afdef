"""Checkout (SPEC §1, §10): what is handed in to place an order, and the pieces of placing it.

The inputs (``Checkout``, ``CustomerDetails``) and their checks, the order's lines,
totals and payment deadline, the customer record and the new Order row. Drafts and
payments use them too; ``domain.orders.place_order`` puts them together in one write
transaction with the stock hold and the history event. This module sits below
``domain.orders`` and never imports it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import contains_eager

from domain.db import db, utcnow
from domain.errors import ValidationError
from domain.i18n import L_, N_, clean_locale
from domain.models import (
    Customer,
    Order,
    OrderLine,
    PaymentMethod,
    Product,
    ShippingMethod,
    Variant,
)
from domain.money import MAX_CENTS
from domain.phones import store_e164
from domain.status import OrderStatus
from domain.store import clean_email, clean_text, get_settings

MAX_LINES = 100
NOTE_MAX = 500  # the customer's note for the shop
MAX_QUANTITY = 999
PHONE_RE = re.compile(r"^\+?[0-9][0-9 \-]{5,19}$")


# ---------------------------------------------------------------- inputs


@dataclass
class CustomerDetails:
    name: str
    phone: str = ""
    email: str = ""
    address: str = ""

    def cleaned(self, *, need_address: bool) -> CustomerDetails:
        name = clean_text(self.name, L_("Name"), max_len=120, required=True)
        phone = clean_text(self.phone, L_("Phone"), max_len=40)
        if phone and not PHONE_RE.match(phone):
            raise ValidationError("Phone must be digits, like 9123 4567 or +852 9123 4567.")
        email = clean_email(self.email)
        if not phone and not email:
            raise ValidationError("Give a phone number or an email so the shop can reach you.")
        address = clean_text(self.address, L_("Address"), max_len=500, required=need_address)
        return CustomerDetails(name, phone, email, address)


@dataclass
class Checkout:
    customer: CustomerDetails
    items: list[tuple[int, int]]  # (variant_id, quantity)
    payment_method_id: int
    shipping_method_id: int
    discount_cents: int = 0
    shipping_fee_cents: int | None = None  # None: the shipping method's fee
    extra_charge_cents: int = 0
    payment_reference: str = ""  # gateway charge id for online methods
    # What the gateway authorized: placing refuses if the order would cost anything else.
    expected_total_cents: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    locale: str | None = None  # the customer's language at checkout (domain.i18n.LOCALES)
    note: str = ""  # the customer's note for the shop


# ---------------------------------------------------------------- helpers


def order_number_for(order_id: int, prefix: str) -> str:
    """Readable, unique order number: prefix + a number that grows with the id."""
    return f"{prefix}{10000 + order_id}"


def compute_totals(subtotal: int, discount: int, shipping_fee: int, extra: int) -> int:
    for value, name in ((discount, L_("Discount")), (shipping_fee, L_("Shipping fee")),
                        (extra, L_("Extra charge"))):
        if value < 0 or value > MAX_CENTS:
            raise ValidationError("%(field)s must be between 0 and a sensible amount.",
                                  field=name)
    if discount > subtotal:
        raise ValidationError("Discount cannot be more than the items' subtotal.")
    return subtotal - discount + shipping_fee + extra


PRICE_CHANGED = N_("The price changed while you were checking out, so nothing was charged. "
                 "Please check the new total and confirm again.")


def check_expected_total(total: int, expected: int | None) -> None:
    """Refuse to place an order whose total differs from what the gateway authorized."""
    if expected is not None and total != expected:
        raise ValidationError("The price changed while you were checking out, so nothing was "
                              "charged. Please check the new total and confirm again.")


def payment_deadline(method: PaymentMethod, placed_at: datetime) -> tuple[datetime | None, datetime | None]:
    """(deadline, reminder time) for an order placed now with this method."""
    if not method.is_manual:
        return None, None
    settings = get_settings()
    days = method.deadline_days if method.deadline_days is not None else settings.payment_deadline_days
    if not days:
        return None, None
    deadline = placed_at + timedelta(days=days)
    reminder = None
    if settings.reminder_lead_hours:
        reminder = max(placed_at, deadline - timedelta(hours=settings.reminder_lead_hours))
    return deadline, reminder


# The variants an order (or a cart) may have, with their products (the line keeps the
# product's name): one statement, no lazy load per line; built once, so its cache key is too.
SELLABLE_VARIANTS = (select(Variant).join(Variant.product)
                      .where(Variant.id.in_(bindparam("ids", expanding=True)), Product.active,
                             Variant.active).options(contains_eager(Variant.product)))


def _build_lines(items: list[tuple[int, int]]) -> list[OrderLine]:
    if not items:
        raise ValidationError("The order has no items.")
    if len(items) > MAX_LINES:
        raise ValidationError("An order can have at most %(max)s lines.", max=MAX_LINES)
    wanted: dict[int, int] = {}
    for variant_id, qty in items:
        if not isinstance(qty, int) or not 1 <= qty <= MAX_QUANTITY:
            raise ValidationError("Quantities must be between 1 and %(max)s.", max=MAX_QUANTITY)
        wanted[int(variant_id)] = wanted.get(int(variant_id), 0) + qty
    rows = {v.id: v for v in db.session.scalars(SELLABLE_VARIANTS, {"ids": list(wanted)})}
    lines = []
    for variant_id, qty in wanted.items():
        variant = rows.get(variant_id)
        if variant is None:
            raise ValidationError("One of the items is no longer for sale.")
        if qty > MAX_QUANTITY:  # checked after merging: two lines of 500 are 1000 of one item
            raise ValidationError("An order can have at most %(max)d of %(item)s.",
                                  max=MAX_QUANTITY, item=variant.display_name)
        lines.append(OrderLine(
            variant_id=variant.id, product_id=variant.product_id,
            product_name=variant.product.name, variant_name=variant.name, sku=variant.sku,
            barcode=variant.barcode, unit_price_cents=variant.price_cents, quantity=qty))
    return lines


# The customer record's statements, built once (their cache keys too): checkout runs
# them under the write lock, where every millisecond is one every other checkout waits.
_CUSTOMER_BY_PHONE = (select(Customer.id, Customer.name, Customer.phone, Customer.email,
                             Customer.address)
                      .where(Customer.phone == bindparam("key")).limit(1))
_CUSTOMER_BY_EMAIL = (select(Customer.id, Customer.name, Customer.phone, Customer.email,
                             Customer.address)
                      .where(Customer.email == bindparam("key")).limit(1))
_NEW_CUSTOMER = insert(Customer).returning(Customer.id)
_UPDATE_CUSTOMER = (update(Customer).where(Customer.id == bindparam("customer_id"))
                    .values({column: bindparam(f"new_{column}")
                             for column in ("name", "phone", "email", "address")}))


@dataclass(frozen=True)
class CustomerMatch:
    """The customer record an order belongs to, and the details to write to it
    (None when they are already so)."""

    id: int
    fresh: dict[str, str] | None = None


def _find_customer(details: CustomerDetails) -> CustomerMatch:
    """Find the customer by phone or email, else create one. Plain statements, not the
    ORM's flush (a third of the time): a Customer object already loaded in this session
    is not refreshed by them."""
    session = db.session
    found = session.execute(_CUSTOMER_BY_PHONE, {"key": details.phone}).first() \
        if details.phone else None
    if found is None and details.email:
        found = session.execute(_CUSTOMER_BY_EMAIL, {"key": details.email}).first()
    if found is None:
        return CustomerMatch(session.execute(_NEW_CUSTOMER, {
            "name": details.name, "phone": details.phone, "email": details.email,
            "address": details.address, "created_at": utcnow()}).scalar_one())
    fresh = {"name": details.name, "phone": details.phone or found.phone,
             "email": details.email or found.email,
             "address": details.address or found.address}
    unchanged = fresh == {"name": found.name, "phone": found.phone, "email": found.email,
                          "address": found.address}
    return CustomerMatch(found.id, None if unchanged else fresh)


def _refresh_customer(match: CustomerMatch) -> None:
    """Write the customer's new details. On PostgreSQL the UPDATE locks their row until
    the commit, so checkout runs it last: two checkouts of one customer (or a shared shop
    phone) would otherwise each wait through the whole of the other."""
    if match.fresh:
        db.session.execute(_UPDATE_CUSTOMER, {
            "customer_id": match.id, **{f"new_{k}": v for k, v in match.fresh.items()}})


def _customer_id(details: CustomerDetails) -> int:
    """Find or create the customer and refresh their details now."""
    match = _find_customer(details)
    _refresh_customer(match)
    return match.id


def _enabled(model, method_id, what: str | None = None):
    """The enabled method, or a refusal naming its kind (``what`` is only a
    reminder for the reader of the call; the message follows the model)."""
    method = db.session.get(model, method_id) if method_id else None
    if method is None or not method.enabled:
        if model is PaymentMethod:
            raise ValidationError("Choose an available payment method.")
        raise ValidationError("Choose an available shipping method.")
    return method


def _lines_summary(lines: list[OrderLine]) -> list[dict[str, Any]]:
    return [{"name": ln.product_name, "variant": ln.variant_name, "sku": ln.sku,
             "quantity": ln.quantity, "unit_price_cents": ln.unit_price_cents}
            for ln in lines]


# Checkout's guards, asked again under the write lock in one statement: the payment
# and shipping methods still enabled, and how many of the order's variants are still
# for sale. Built once: SQLAlchemy keeps its cache key with the statement.
_STILL_FOR_SALE = select(
    select(PaymentMethod.enabled).where(PaymentMethod.id == bindparam("payment"))
    .scalar_subquery(),
    select(ShippingMethod.enabled).where(ShippingMethod.id == bindparam("shipping"))
    .scalar_subquery(),
    select(func.count(Variant.id)).join(Product, Product.id == Variant.product_id)
    .where(Variant.id.in_(bindparam("variants", expanding=True)), Variant.active,
           Product.active).scalar_subquery())


def _recheck_for_sale(payment_id: int, shipping_id: int, variant_ids: list[int]) -> None:
    """The refusals of _enabled and _build_lines, for what changed since they read."""
    payment_on, shipping_on, for_sale = db.session.execute(_STILL_FOR_SALE, {
        "payment": payment_id, "shipping": shipping_id, "variants": variant_ids}).one()
    if not payment_on:
        raise ValidationError("Choose an available payment method.")
    if not shipping_on:
        raise ValidationError("Choose an available shipping method.")
    if for_sale != len(variant_ids):
        raise ValidationError("One of the items is no longer for sale.")


@dataclass(frozen=True)
class NewOrder:
    """What the stock ledger and the history need of an order just written (the Order
    object itself is loaded after the write transaction, outside the write lock)."""

    id: int
    number: str
    status: str
    total_cents: int
    payment_deadline_at: datetime | None
    customer: CustomerMatch  # its details are written last (_refresh_customer)


# Built once, values given at execution: building an INSERT of 30 values cost more
# than running it.
_INSERT_ORDER = insert(Order)
_INSERT_ORDER_RETURNING = insert(Order).returning(Order.id)
# The id SQLite gives a new row of a table without AUTOINCREMENT: one more than the
# largest (an id freed at the top is used again, as SQLite itself would).
_NEXT_ORDER_ID = select(func.coalesce(func.max(Order.id), 0) + 1)
_INSERT_LINES = insert(OrderLine)
_SET_NUMBER = (update(Order).where(Order.id == bindparam("order_id"))
               .values(number=bindparam("number")))


def _new_order(lines, customer: CustomerDetails, payment: PaymentMethod,
               shipping: ShippingMethod, checkout: Checkout, source: str,
               now: datetime) -> NewOrder:
    """Insert the order and its lines: plain INSERTs (the ORM's unit of work took 2.5 ms
    of the 7 the write lock was held). The count and search triggers see them as any."""
    subtotal = sum(ln.line_total_cents for ln in lines)
    fee = shipping.fee_cents if checkout.shipping_fee_cents is None else checkout.shipping_fee_cents
    total = compute_totals(subtotal, checkout.discount_cents, fee, checkout.extra_charge_cents)
    check_expected_total(total, checkout.expected_total_cents)
    deadline, reminder = payment_deadline(payment, now)
    status = (OrderStatus.PENDING_PAYMENT if payment.is_manual else OrderStatus.PROCESSING).value
    session = db.session
    match = _find_customer(customer)
    values = dict(
        kind="placed", source=source, status=status,
        customer_id=match.id, customer_name=customer.name,
        customer_phone=customer.phone, customer_phone_e164=store_e164(customer.phone),
        customer_email=customer.email, shipping_address=customer.address,
        payment_method_id=payment.id, payment_method_name=payment.name,
        payment_kind=payment.kind, shipping_method_id=shipping.id,
        shipping_method_name=shipping.name, shipping_kind=shipping.kind,
        subtotal_cents=subtotal, discount_cents=checkout.discount_cents,
        shipping_fee_cents=fee, extra_charge_cents=checkout.extra_charge_cents,
        total_cents=total, payment_deadline_at=deadline, reminder_at=reminder,
        placed_at=now, created_at=now, updated_at=now,
        locale=clean_locale(checkout.locale),
        customer_note=clean_text(checkout.note, L_("Note for the shop"), max_len=NOTE_MAX),
    )
    prefix = get_settings().order_prefix
    if session.get_bind().dialect.name == "sqlite":
        # Under SQLite's write lock the id the row would get is known before: written
        # with its number at once, the order is indexed for search once, not again
        # for an UPDATE of its number.
        order_id = session.execute(_NEXT_ORDER_ID).scalar_one()
        number = order_number_for(order_id, prefix)
        session.execute(_INSERT_ORDER, {**values, "id": order_id, "number": number})
    else:  # PostgreSQL's sequence gives the id; its search queue is cheap to touch
        order_id = session.execute(_INSERT_ORDER_RETURNING, values).scalar_one()
        number = order_number_for(order_id, prefix)
        session.execute(_SET_NUMBER, {"order_id": order_id, "number": number})
    session.execute(_INSERT_LINES, [{
        "order_id": order_id, "variant_id": ln.variant_id, "product_id": ln.product_id,
        "product_name": ln.product_name, "variant_name": ln.variant_name, "sku": ln.sku,
        "barcode": ln.barcode, "unit_price_cents": ln.unit_price_cents,
        "quantity": ln.quantity} for ln in lines])
    return NewOrder(order_id, number, status, total, deadline, match)
