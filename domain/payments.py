"""Taking an order's payment at checkout: quotes, the gateway adapter, placing.

Online methods (SPEC §1) are charged by a payment gateway at checkout, so the
order starts in Processing. Gateways sit behind ``PaymentGateway``; the one
that ships is ``TestGateway``, clearly labelled, which moves no money. The
flow is authorize → place the order (stock held) → capture; if placing fails
(say the last unit just sold) the authorization is voided, so the customer
is never charged for an order that does not exist.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import contains_eager

from domain import payment_details
from domain.actors import Actor
from domain.checkout import MAX_QUANTITY, SELLABLE_VARIANTS, Checkout, compute_totals
from domain.db import db
from domain.errors import DomainError, InsufficientStock, ValidationError
from domain.i18n import N_
from domain.models import PaymentMethod, Product, ShippingMethod, Variant
from domain.orders import Order, place_order
from domain.store import get_settings


class PaymentDeclined(DomainError):
    pass


@dataclass(frozen=True)
class Charge:
    id: str
    amount_cents: int
    currency: str
    status: str  # authorized | captured | voided


class PaymentGateway(Protocol):
    code: str
    label: str
    is_test: bool

    def authorize(self, amount_cents: int, currency: str, *, reference: str,
                  card_number: str = "") -> Charge: ...

    def capture(self, charge: Charge) -> Charge: ...

    def void(self, charge: Charge) -> Charge: ...


class TestGateway:
    """A gateway that moves no money. Card 4000 0000 0000 0002 is declined;
    any other number (or none) is approved."""

    code = "test"
    label = N_("Test gateway — no real money is charged")
    is_test = True
    DECLINED_CARD = "4000000000000002"

    def authorize(self, amount_cents: int, currency: str, *, reference: str,
                  card_number: str = "") -> Charge:
        digits = re.sub(r"[\s-]", "", card_number or "")
        if digits and not digits.isdigit():
            raise ValidationError("Card number must be digits.")
        if digits == self.DECLINED_CARD:
            raise PaymentDeclined("The payment was declined by the card issuer (test card). "
                                  "Nothing was charged; try another card or method.")
        return Charge(f"test_{secrets.token_hex(8)}", amount_cents, currency, "authorized")

    def capture(self, charge: Charge) -> Charge:
        return dataclasses.replace(charge, status="captured")

    def void(self, charge: Charge) -> Charge:
        return dataclasses.replace(charge, status="voided")


GATEWAYS = {"test": TestGateway}


def get_gateway() -> PaymentGateway:
    code = current_app.config.get("PAYMENT_GATEWAY", "test")
    try:
        return GATEWAYS[code]()
    except KeyError as exc:  # a misconfiguration, not a customer error
        raise RuntimeError(f"Unknown PAYMENT_GATEWAY {code!r}") from exc


# ------------------------------------------------------------------ quotes


@dataclass
class QuoteLine:
    variant: Variant
    quantity: int

    @property
    def line_total_cents(self) -> int:
        return self.variant.price_cents * self.quantity

    @property
    def short_by(self) -> int:
        """How many units are missing from stock right now (0 when enough)."""
        stock = self.variant.stock
        return 0 if stock is None else max(0, self.quantity - stock)


@dataclass
class Quote:
    lines: list[QuoteLine]
    subtotal_cents: int
    shipping_fee_cents: int
    total_cents: int


def sellable_variants(ids) -> dict[int, Variant]:
    """Variants still for sale: neither removed from sale nor of an archived product
    (with their product in the same row: the cart shows its name)."""
    return {v.id: v for v in db.session.scalars(SELLABLE_VARIANTS, {"ids": list(ids)})}


# Built once, with its cache key: the shop's busiest page runs it on every visit.
_CATALOG = (select(Product).join(Product.variants).where(Product.active, Variant.active)
            .options(contains_eager(Product.variants))
            .order_by(Product.name, Product.id, Variant.id))


def sellable_catalog() -> list[Product]:
    """Active products with their variants still for sale, for the shop's product list
    (a product whose every variant was removed from sale is left out).

    One joined query fills each product's ``variants`` with only those for sale: half
    the time of a second query with loader criteria, on the store's busiest page."""
    return list(db.session.scalars(_CATALOG).unique())


def quote_items(items: dict[int, int], shipping_method_id: int | None = None) -> Quote:
    """Current prices for a cart (variant id -> quantity); unsellable items are left out."""
    variants = sellable_variants(items)
    lines = [QuoteLine(variants[vid], qty) for vid, qty in items.items() if vid in variants]
    subtotal = sum(line.line_total_cents for line in lines)
    shipping = db.session.get(ShippingMethod, shipping_method_id) if shipping_method_id else None
    fee = shipping.fee_cents if shipping and shipping.enabled else 0
    return Quote(lines, subtotal, fee, subtotal + fee)


def check_can_add(variant_id: int, quantity: int) -> Variant:
    """Refuse adding to a cart what is not for sale or not in stock."""
    if not 1 <= quantity <= MAX_QUANTITY:
        raise ValidationError("Quantity must be between 1 and %(max)s.", max=MAX_QUANTITY)
    variant = sellable_variants([variant_id]).get(variant_id)
    if variant is None:
        raise ValidationError("That item is no longer for sale.")
    if variant.stock is not None and variant.stock < quantity:
        raise InsufficientStock(variant.display_name, quantity, variant.stock)
    return variant


def payment_instructions(order: Order) -> str:
    """The manual method's instructions as the merchant wrote them today: a custom
    method's whole text, a built-in's optional extra note (its typed details are in
    ``payment_info``)."""
    method = db.session.get(PaymentMethod, order.payment_method_id) \
        if order.payment_method_id else None
    return method.instructions if method is not None and method.is_manual else ""


@dataclass(frozen=True)
class PaymentInfo:
    """Everything a customer needs to pay a manual method, for the order page and
    the emails: the typed details, the merchant's note, the amount and the
    reference to write on the transfer (the order number)."""

    method: PaymentMethod
    details: list[payment_details.Detail]
    note: str
    amount_cents: int
    currency: str
    reference: str

    @property
    def link(self) -> str:
        """The PayMe link, if any: pages show it as a button."""
        return next((d.value for d in self.details if d.kind == "link"), "")


def payment_info(order: Order) -> PaymentInfo | None:
    """How to pay ``order`` (its method as the merchant set it up today), or None
    when it has no manual method."""
    method = db.session.get(PaymentMethod, order.payment_method_id) \
        if order.payment_method_id else None
    if method is None or not method.is_manual:
        return None
    return PaymentInfo(method=method, details=payment_details.details(method),
                       note=(method.instructions or "").strip(),
                       amount_cents=order.total_cents, currency=get_settings().currency,
                       reference=order.number or "")


# ------------------------------------------------------------------ placing


def place_checkout(checkout: Checkout, *, source: str = "online_store",
                   actor: Actor | None = None, card_number: str = "",
                   gateway: PaymentGateway | None = None) -> Order:
    """Place the order; for an online method, charge it through the gateway first."""
    method = db.session.get(PaymentMethod, checkout.payment_method_id) \
        if checkout.payment_method_id else None
    if method is None or not method.enabled:
        raise ValidationError("Choose an available payment method.")
    if method.is_manual:
        return place_order(checkout, source=source, actor=actor)
    quote = quote_items(dict(checkout.items), checkout.shipping_method_id)
    fee = quote.shipping_fee_cents if checkout.shipping_fee_cents is None \
        else checkout.shipping_fee_cents
    amount = compute_totals(quote.subtotal_cents, checkout.discount_cents, fee,
                            checkout.extra_charge_cents)
    return charge_and_place(
        amount, reference=checkout.customer.name, card_number=card_number, gateway=gateway,
        place=lambda charge, details: place_order(dataclasses.replace(
            checkout, payment_reference=charge.id, expected_total_cents=amount,
            details={**checkout.details, **details}), source=source, actor=actor))


def charge_and_place(amount_cents: int, *, reference: str, card_number: str,
                     place: Callable[[Charge, dict], Order],
                     gateway: PaymentGateway | None = None) -> Order:
    """Authorize ``amount_cents``, place the order, then capture; void if placing fails.

    ``place(charge, details)`` must refuse (raise) when the order would not
    cost exactly ``amount_cents``, so the customer pays what the order says.
    """
    gateway = gateway or get_gateway()
    charge = gateway.authorize(amount_cents, get_settings().currency, reference=reference,
                               card_number=card_number)
    try:
        order = place(charge, {"gateway": gateway.code, "gateway_test_mode": gateway.is_test})
    except BaseException:
        gateway.void(charge)
        raise
    gateway.capture(charge)
    return order
