"""Carrier shipments for logistics-automation orders (SPEC §3; issue 11).

``create_shipment`` books the parcel with the carrier (domain.documents.carriers) and
stores its tracking code on the order, locked: once ``tracking_code_by_carrier`` is
set, domain.orders refuses any other code (inline edit, crafted POST, shipping with
another code). The label then prints from the Shipment row.

The carrier is called outside any database transaction (it may take seconds), so a
booking is done in three steps:

1. **claim**: in one write transaction, guard the order and insert its Shipment row
   with an empty tracking code. ``shipment.order_id`` is unique, so of two requests at
   once exactly one claims; the other is told a booking is under way.
2. **book**: call the carrier with the order number as its reference.
3. **store**: in one write transaction, fill the claim in with the code and label,
   set the order's code (locked) and write the "shipment_created" event. A carrier
   refusal instead removes the claim and writes "shipment_failed" with the error: the
   order is otherwise unchanged.

A crash between 2 and 3 leaves the claim without a code: the order page shows that a
booking did not finish. After ``CLAIM_STALE`` it may be tried again; carriers treat the
reference as an idempotency key, so the retry gets the same parcel, not a second one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from domain.actors import Actor
from domain.db import db, write_transaction
from domain.documents.carriers import CarrierError, Parcel, get_carrier
from domain.errors import DomainError, InvalidTransition, NotFound, ValidationError
from domain.i18n import L_, N_, Label
from domain.models import Order, OrderEvent, Shipment, utcnow
from domain.orders import _event, _locked_order
from domain.status import OrderStatus
from domain.store import get_settings

DEFAULT_WEIGHT_GRAMS = 1000
MAX_WEIGHT_GRAMS = 100_000  # what the form accepts; the carrier has its own limit
# A claim older than this with no code is a booking that never finished (a crash).
CLAIM_STALE = timedelta(minutes=5)

# Only paid orders being prepared are booked: a courier booked for an order still
# waiting for its money, or already shipped or canceled, is a parcel nobody sends.
BOOKABLE_STATUSES = frozenset({OrderStatus.PROCESSING})

NOT_LOGISTICS = N_("Order %(number)s does not ship by logistics automation: "
                   "it has no carrier shipment.")
DRAFT = N_("This order is still an unpaid draft: it cannot be shipped with the carrier.")
WRONG_STATUS = N_("Order %(number)s is %(status)s: a shipment is created once it is paid "
                  "and before it ships.")
ALREADY = N_("Order %(number)s already has a shipment with the carrier: %(code)s.")
UNDER_WAY = N_("A shipment for order %(number)s is being created right now.")


class ShipmentRefused(InvalidTransition):
    """Why an order cannot get a carrier shipment now (one of the ids above)."""

    def __init__(self, msgid: str, **params):
        super().__init__(msgid, **params)


# ---------------------------------------------------------------- reading


def shipment_for(order_id: int) -> Shipment | None:
    """The order's booked shipment (with a tracking code), if any."""
    return db.session.scalar(select(Shipment).where(Shipment.order_id == order_id,
                                                    Shipment.tracking_code != ""))


def pending_claim(order_id: int) -> Shipment | None:
    """A booking under way, or one that never finished (no tracking code yet)."""
    return db.session.scalar(select(Shipment).where(Shipment.order_id == order_id,
                                                    Shipment.tracking_code == ""))


def last_failure(order_id: int) -> OrderEvent | None:
    """The latest "shipment_failed" event, unless a shipment was created after it."""
    event = db.session.scalar(
        select(OrderEvent).where(OrderEvent.order_id == order_id,
                                 OrderEvent.type.in_(("shipment_failed", "shipment_created")))
        .order_by(OrderEvent.created_at.desc(), OrderEvent.id.desc()).limit(1))
    return event if event is not None and event.type == "shipment_failed" else None


def shipment_refusal(order: Order, *, now: datetime | None = None) -> DomainError | None:
    """None when a shipment may be created for the order now, else the refusal."""
    if order.kind != "placed":
        return ShipmentRefused(DRAFT)
    if order.shipping_kind != "logistics":
        return ShipmentRefused(NOT_LOGISTICS, number=order.number)
    if order.status not in BOOKABLE_STATUSES or order.delivery_status != "unfulfilled":
        status = Label(OrderStatus(order.status).label) if order.status else L_("a draft")
        return ShipmentRefused(WRONG_STATUS, number=order.number, status=status)
    row = db.session.scalar(select(Shipment).where(Shipment.order_id == order.id))
    if row is not None and row.tracking_code:
        return ShipmentRefused(ALREADY, number=order.number, code=row.tracking_code)
    if row is not None and not _stale(row, now or utcnow()):
        return ShipmentRefused(UNDER_WAY, number=order.number)
    return None


def _stale(claim: Shipment, now: datetime) -> bool:
    return claim.created_at is not None and claim.created_at <= now - CLAIM_STALE


@dataclass
class ShipmentCard:
    """What the order page's Shipping card shows about the carrier."""

    shipment: Shipment | None  # booked
    claim: Shipment | None  # under way, or never finished
    claim_stale: bool
    failure: OrderEvent | None  # the last refusal by the carrier, since the last booking
    refusal: DomainError | None  # why "Create shipment" is not offered, or None
    carrier_label: str

    @property
    def failure_error(self) -> CarrierError | None:
        """The last failure as the carrier said it (a message id with its parameters)."""
        if self.failure is None:
            return None
        details = self.failure.details or {}
        return CarrierError(str(details.get("reason") or ""), **(details.get("params") or {}))


def shipment_card(order: Order, *, now: datetime | None = None) -> ShipmentCard | None:
    """The card's state for a logistics order, None for any other order."""
    if order.kind != "placed" or order.shipping_kind != "logistics":
        return None
    now = now or utcnow()
    shipment = shipment_for(order.id)
    claim = None if shipment else pending_claim(order.id)
    return ShipmentCard(shipment=shipment, claim=claim,
                        claim_stale=bool(claim and _stale(claim, now)),
                        failure=None if shipment else last_failure(order.id),
                        refusal=shipment_refusal(order, now=now),
                        carrier_label=get_carrier().label)


# ---------------------------------------------------------------- the action


def clean_weight(weight_grams: Any) -> int:
    if weight_grams is None or weight_grams == "":
        return DEFAULT_WEIGHT_GRAMS
    try:
        grams = int(weight_grams)
    except (TypeError, ValueError):
        raise ValidationError("Weight must be a whole number of grams.") from None
    if isinstance(weight_grams, bool) or not 1 <= grams <= MAX_WEIGHT_GRAMS:
        raise ValidationError("Weight must be between 1 g and 100 kg.")
    return grams


def weight_from_input(value: str | None, unit: str | None) -> int | None:
    """Grams from the form's number and unit ("g" or "kg"); None when left empty."""
    text = (value or "").strip().replace(",", ".")
    if not text:
        return None
    if unit not in ("g", "kg") or len(text) > 12:
        raise ValidationError("Weight must be between 1 g and 100 kg.")
    try:
        number = float(text)
    except ValueError:
        raise ValidationError("Weight must be a number, like 1.2 (kg) or 800 (g).") from None
    if number != number or number in (float("inf"), float("-inf")):  # nan, inf
        raise ValidationError("Weight must be a number, like 1.2 (kg) or 800 (g).")
    grams = round(number * 1000) if unit == "kg" else round(number)
    return clean_weight(grams)


def _fresh_order(order_id: int) -> Order:
    order = db.session.scalar(select(Order).where(Order.id == order_id)
                              .execution_options(populate_existing=True))
    if order is None:
        raise NotFound("Order not found.")
    return order


def _claim(order_id: int, carrier_code: str, weight: int, now: datetime) -> tuple[Order, int]:
    """Step 1: guard the order and claim it (the Shipment row, no code yet)."""
    try:
        with write_transaction() as session:
            order = _locked_order(order_id)
            refusal = shipment_refusal(order, now=now)
            if refusal is not None:
                raise refusal
            old = session.scalar(select(Shipment).where(Shipment.order_id == order_id))
            if old is not None:
                # A stale claim (a crash mid-booking): taken over by a guarded UPDATE, so
                # of two retries at once one wins. The carrier gets the same reference.
                taken = session.execute(
                    update(Shipment).where(Shipment.id == old.id, Shipment.tracking_code == "",
                                           Shipment.created_at == old.created_at)
                    .values(created_at=now, weight_grams=weight, carrier=carrier_code)
                    .execution_options(synchronize_session=False))
                if taken.rowcount != 1:
                    raise ShipmentRefused(UNDER_WAY, number=order.number)
                claim_id = old.id
            else:
                claim = Shipment(order_id=order_id, carrier=carrier_code, tracking_code="",
                                 weight_grams=weight, label={}, created_at=now)
                session.add(claim)
                session.flush()
                claim_id = claim.id
    except IntegrityError:
        # The unique order_id: another request claimed it between our read and insert.
        raise ShipmentRefused(UNDER_WAY, number=_fresh_order(order_id).number) from None
    return order, claim_id


def create_shipment(order_id: int, *, actor: Actor, weight_grams: int | None = None,
                    now: datetime | None = None) -> Shipment:
    """Book the order's parcel with the carrier and lock its tracking code.

    Raises ShipmentRefused when the order cannot be booked (not logistics, wrong
    status, booked already or under way), ValidationError for a bad weight, and the
    CarrierError when the carrier refuses (recorded as a "shipment_failed" event).
    """
    weight = clean_weight(weight_grams)
    now = now or utcnow()
    carrier = get_carrier()
    order, claim_id = _claim(order_id, carrier.code, weight, now)
    settings = get_settings()
    parcel = Parcel(reference=order.number, recipient_name=order.customer_name,
                    phone=order.customer_phone, address=order.shipping_address,
                    weight_grams=weight, sender_name=settings.name,
                    sender_phone=settings.phone, sender_address=settings.address)
    db.session.rollback()  # no read snapshot held while the carrier works
    try:
        booking = carrier.create_shipment(parcel)  # step 2: outside any transaction
    except CarrierError as exc:
        with write_transaction() as session:
            session.execute(delete(Shipment).where(Shipment.id == claim_id,
                                                   Shipment.tracking_code == ""))
            _event(order_id, "shipment_failed", actor, {
                "carrier": carrier.code, "reason": exc.msgid, "params": _plain(exc.params),
                "retryable": exc.retryable, "weight_grams": weight}, now)
        raise
    # Any other exception leaves the claim: whether the carrier booked is unknown, and
    # the order page says so (see the module docstring).
    return _store(order_id, claim_id, carrier.code, weight, booking, actor, now)


def _store(order_id, claim_id, carrier_code, weight, booking, actor, now) -> Shipment:
    """Step 3: the code and label on the claim, the order's code locked, the event."""
    with write_transaction() as session:
        order = _locked_order(order_id)
        filled = session.execute(
            update(Shipment).where(Shipment.id == claim_id, Shipment.tracking_code == "")
            .values(tracking_code=booking.tracking_code, label=booking.label,
                    carrier=carrier_code, weight_grams=weight)
            .execution_options(synchronize_session=False))
        if filled.rowcount != 1:  # cannot happen while only this module writes shipments
            raise RuntimeError(f"Shipment claim {claim_id} vanished during booking")
        old_code = order.tracking_code
        # The parcel exists at the carrier whatever happened meanwhile, so the shipment
        # is always kept; the order takes its code only while it is still open.
        locked = session.execute(
            update(Order).where(Order.id == order_id, Order.status.in_(
                [s.value for s in BOOKABLE_STATUSES]))
            .values(tracking_code=booking.tracking_code, tracking_code_by_carrier=True,
                    updated_at=now)
            .execution_options(synchronize_session=False)).rowcount == 1
        _event(order_id, "shipment_created", actor, {
            "carrier": carrier_code, "tracking_code": booking.tracking_code,
            "weight_grams": weight, "old_tracking_code": old_code,
            **({} if locked else {"order_status": order.status, "code_not_set": True})}, now)
    return db.session.get(Shipment, claim_id)


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """Refusal parameters as JSON can keep them."""
    return {k: (v if isinstance(v, int | float | bool) else str(v)) for k, v in params.items()}
