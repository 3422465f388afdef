"""Order statuses, their colours, and the transition table of SPEC §1 as data."""

from __future__ import annotations

from enum import StrEnum

from domain.i18n import N_


class OrderStatus(StrEnum):
    # Created with a manual payment method; stock held; waiting for proof.
    PENDING_PAYMENT = "pending_payment"
    # Proof uploaded; a person must look at it and confirm.
    PENDING_CONFIRMATION = "pending_confirmation"
    # Paid; the merchant prepares and ships.
    PROCESSING = "processing"
    # Shipped or picked up; can no longer change.
    COMPLETED = "completed"
    # Rejected by the merchant or expired; final.
    CANCELED = "canceled"

    @property
    def label(self) -> str:
        return STATUS_LABELS[self]

    @property
    def colour(self) -> str:
        return STATUS_COLOURS[self]


STATUS_LABELS = {
    # Message ids: translated where shown ({{ _(order.status_info.label) }}).
    OrderStatus.PENDING_PAYMENT: N_("Pending payment"),
    OrderStatus.PENDING_CONFIRMATION: N_("Payment pending confirmation"),
    OrderStatus.PROCESSING: N_("Processing"),
    OrderStatus.COMPLETED: N_("Completed"),
    OrderStatus.CANCELED: N_("Canceled"),
}

STATUS_COLOURS = {
    OrderStatus.PENDING_PAYMENT: "red",
    OrderStatus.PENDING_CONFIRMATION: "red",
    OrderStatus.PROCESSING: "red",
    OrderStatus.COMPLETED: "green",
    OrderStatus.CANCELED: "grey",
}

# "Red" statuses: before shipment, the order can still be rejected or modified.
OPEN_STATUSES = frozenset(s for s, c in STATUS_COLOURS.items() if c == "red")


class DeliveryStatus(StrEnum):
    UNFULFILLED = "unfulfilled"
    READY_FOR_PICKUP = "ready_for_pickup"
    SHIPPED = "shipped"
    PICKED_UP = "picked_up"
    RETURNED = "returned"

    @property
    def label(self) -> str:
        return DELIVERY_LABELS[self]


# Message ids, translated where shown (an explicit table: a label computed from
# the value could not be extracted for translation).
DELIVERY_LABELS = {
    DeliveryStatus.UNFULFILLED: N_("Unfulfilled"),
    DeliveryStatus.READY_FOR_PICKUP: N_("Ready for pickup"),
    DeliveryStatus.SHIPPED: N_("Shipped"),
    DeliveryStatus.PICKED_UP: N_("Picked up"),
    DeliveryStatus.RETURNED: N_("Returned"),
}


# action -> (statuses it may start from, status it leads to,
#            delivery statuses it may start from or None for any,
#            shipping kinds it applies to or None for any)
TRANSITIONS: dict[str, tuple[frozenset[OrderStatus], OrderStatus, frozenset | None, frozenset | None]] = {
    "upload_proof": (
        frozenset({OrderStatus.PENDING_PAYMENT, OrderStatus.PENDING_CONFIRMATION}),
        OrderStatus.PENDING_CONFIRMATION, None, None,
    ),
    "confirm_payment": (
        frozenset({OrderStatus.PENDING_CONFIRMATION, OrderStatus.PENDING_PAYMENT}),
        OrderStatus.PROCESSING, None, None,
    ),
    "decline_proof": (
        frozenset({OrderStatus.PENDING_CONFIRMATION}),
        OrderStatus.PENDING_PAYMENT, None, None,
    ),
    "ship_order": (
        frozenset({OrderStatus.PROCESSING}), OrderStatus.COMPLETED,
        frozenset({DeliveryStatus.UNFULFILLED}), frozenset({"delivery", "logistics"}),
    ),
    "mark_ready_for_pickup": (
        frozenset({OrderStatus.PROCESSING}), OrderStatus.PROCESSING,
        frozenset({DeliveryStatus.UNFULFILLED}), frozenset({"pickup"}),
    ),
    "complete_pickup": (
        frozenset({OrderStatus.PROCESSING}), OrderStatus.COMPLETED,
        frozenset({DeliveryStatus.READY_FOR_PICKUP}), frozenset({"pickup"}),
    ),
    "reject_order": (OPEN_STATUSES, OrderStatus.CANCELED, None, None),
    "expire_order": (
        frozenset({OrderStatus.PENDING_PAYMENT}), OrderStatus.CANCELED, None, None,
    ),
}

# Editing the tracking code is not a transition but has the same kind of guard.
TRACKING_EDITABLE = frozenset(
    {OrderStatus.PENDING_PAYMENT, OrderStatus.PENDING_CONFIRMATION, OrderStatus.PROCESSING}
)


def allowed(action: str, status: str | None, delivery_status: str | None = None,
            shipping_kind: str | None = None) -> bool:
    """True when ``action`` may run on an order in this state."""
    sources, _to, deliveries, kinds = TRANSITIONS[action]
    if status not in sources:
        return False
    if deliveries is not None and delivery_status not in deliveries:
        return False
    return kinds is None or shipping_kind in kinds


def _predicate(action):
    def can(order) -> bool:
        if order.kind != "placed":
            return False
        return allowed(action, order.status, order.delivery_status, order.shipping_kind)

    can.__name__ = f"can_{action}"
    can.__doc__ = f"May ``{action}`` run on this order now?"
    return can


can_upload_proof = _predicate("upload_proof")
can_confirm_payment = _predicate("confirm_payment")
can_decline_proof = _predicate("decline_proof")
can_ship_order = _predicate("ship_order")
can_mark_ready_for_pickup = _predicate("mark_ready_for_pickup")
can_complete_pickup = _predicate("complete_pickup")
can_reject_order = _predicate("reject_order")
can_expire_order = _predicate("expire_order")


def tracking_refusal(order) -> str | None:
    """Why this order's tracking code cannot be typed (a message id, shown as the
    locked cell's tooltip), or None when it can. One answer for the list, the order
    page and can_set_tracking_code."""
    if order.tracking_code_by_carrier:
        return N_("Set by the carrier")
    if order.shipping_kind == "pickup":
        # Collected in the shop: there is no parcel to track.
        return N_("Collected in the shop: no tracking code.")
    if order.kind != "placed" or order.status not in TRACKING_EDITABLE:
        return N_("Cannot change in this status")
    return None


def can_set_tracking_code(order) -> bool:
    return tracking_refusal(order) is None


def can_record_refund(order) -> bool:
    """A refund note needs money received: the books say something was paid."""
    return order.kind == "placed" and (order.paid_cents or 0) > 0


def can_modify_order(order) -> bool:
    return order.kind == "placed" and order.status in OPEN_STATUSES


def available_actions(order) -> set[str]:
    """Names of the actions the order page may offer for this order."""
    return {name for name, _ in _CHECKS if _(order)}


_CHECKS = [
    ("confirm_payment", can_confirm_payment),
    ("decline_proof", can_decline_proof),
    ("ship_order", can_ship_order),
    ("mark_ready_for_pickup", can_mark_ready_for_pickup),
    ("complete_pickup", can_complete_pickup),
    ("reject_order", can_reject_order),
    ("set_tracking_code", can_set_tracking_code),
]


def is_awaiting_payment(order) -> bool:
    """Placed with a manual method and no proof yet: the customer still has to pay."""
    return order.kind == "placed" and order.status == OrderStatus.PENDING_PAYMENT


def can_extend_deadline(order) -> bool:
    return is_awaiting_payment(order) and order.payment_deadline_at is not None
