"""The transition table's refusals, in words (SPEC §1): one whole sentence per action,
and the same with a second sentence saying what to do instead.

A leaf below ``domain.orders`` and its set-based twins (``domain.bulk_ship``,
``domain.tracking_import``), which refuse with the same sentences.
"""

from __future__ import annotations

from domain.errors import InvalidTransition
from domain.i18n import L_, N_, Label
from domain.status import OrderStatus

# Refusals, one complete sentence per action, each a message id translated as a
# whole; %(number)s is the order number, %(status)s its status label.
REFUSALS = {
    "upload_proof": N_("Order %(number)s is %(status)s: it cannot be given a payment proof."),
    "confirm_payment": N_("Order %(number)s is %(status)s: it cannot be confirmed as paid."),
    "decline_proof": N_("Order %(number)s is %(status)s: its payment proof cannot be declined."),
    "ship_order": N_("Order %(number)s is %(status)s: it cannot be shipped."),
    "mark_ready_for_pickup": N_(
        "Order %(number)s is %(status)s: it cannot be marked ready for pickup."),
    "complete_pickup": N_("Order %(number)s is %(status)s: it cannot be marked picked up."),
    "reject_order": N_("Order %(number)s is %(status)s: it cannot be rejected."),
    "expire_order": N_("Order %(number)s is %(status)s: it cannot be expired."),
}
# The same refusals with a second sentence saying what to do instead: whole
# messages too, so a translation can join the two sentences its own way.
HINTED_REFUSALS = {
    ("ship_order", "pickup"): N_(
        "Order %(number)s is %(status)s: it cannot be shipped. "
        "Pickup orders are completed with Ready for pickup, then Picked up."),
    ("mark_ready_for_pickup", "not_pickup"): N_(
        "Order %(number)s is %(status)s: it cannot be marked ready for pickup. "
        "Only pickup orders are collected in store."),
    ("complete_pickup", "not_pickup"): N_(
        "Order %(number)s is %(status)s: it cannot be marked picked up. "
        "Only pickup orders are collected in store."),
    ("expire_order", "not_due"): N_(
        "Order %(number)s is %(status)s: it cannot be expired. "
        "Its payment deadline has not passed."),
    ("complete_pickup", "not_ready"): N_(
        "Order %(number)s is %(status)s: it cannot be marked picked up. "
        "Mark it ready for pickup first."),
}


class TransitionRefused(InvalidTransition):
    """A refusal of the transition table: one of REFUSALS / HINTED_REFUSALS (message
    ids marked above), with the order number and its status label."""

    def __init__(self, msgid: str, *, number: str, status: Label):
        super().__init__(msgid, number=number, status=status)


def _refuse(order, action: str) -> InvalidTransition:
    """The refusal, in words, for an Order or a _locked_state row: the action's
    sentence, then (when it helps) a second sentence saying what to do instead."""
    # The status is a label: translated before it goes into the sentence.
    status = Label(OrderStatus(order.status).label) if order.status else L_("a draft")
    hint = None
    if action == "ship_order" and order.shipping_kind == "pickup":
        hint = "pickup"
    elif action in ("mark_ready_for_pickup", "complete_pickup") and order.shipping_kind != "pickup":
        hint = "not_pickup"
    elif action == "expire_order" and order.status == OrderStatus.PENDING_PAYMENT:
        hint = "not_due"
    elif action == "complete_pickup" and order.status == OrderStatus.PROCESSING:
        hint = "not_ready"
    msgid = HINTED_REFUSALS[(action, hint)] if hint else REFUSALS[action]
    return TransitionRefused(msgid, number=order.number, status=status)
