"""Which order event tells whom, by which message kind (SPEC §1 table, §2).

A leaf: the outbox, the desk's bell and the email templates all read it.
"""

from __future__ import annotations

from domain.i18n import N_

CUSTOMER = "customer"
MERCHANT = "merchant"
STAFF = "staff"

# order event type -> the messages it causes, as (audience, message kind).
EVENT_MESSAGES: dict[str, tuple[tuple[str, str], ...]] = {
    "order_placed": ((MERCHANT, "new_order"), (CUSTOMER, "order_placed")),
    "proof_uploaded": ((MERCHANT, "proof_uploaded"),),
    "payment_confirmed": ((CUSTOMER, "payment_confirmed"),),
    "proof_declined": ((CUSTOMER, "proof_declined"),),
    "order_shipped": ((CUSTOMER, "order_shipped"),),
    "ready_for_pickup": ((CUSTOMER, "ready_for_pickup"),),
    "pickup_completed": ((CUSTOMER, "pickup_completed"),),
    "order_rejected": ((CUSTOMER, "order_rejected"),),
    "order_expired": ((CUSTOMER, "order_expired"),),
    "payment_reminder_due": ((CUSTOMER, "payment_reminder"),),
    # Modify order and the money after it (domain/modify.py, domain/balance.py).
    "order_modified": ((CUSTOMER, "order_updated"),),
    "balance_proof_uploaded": ((MERCHANT, "balance_proof_uploaded"),),
    "balance_payment_confirmed": ((CUSTOMER, "balance_confirmed"),),
    "balance_received": ((CUSTOMER, "balance_confirmed"),),
    "balance_proof_declined": ((CUSTOMER, "balance_declined"),),
}

# The order event written instead of a WhatsApp message (details: type, the WhatsApp
# type code; reason: "no_mobile" when the customer has no valid mobile number, else a
# stored message id such as "monthly cap reached", read translated). It causes no
# message of its own.
WHATSAPP_NOT_SENT = "whatsapp_not_sent"
NO_MOBILE = "no_mobile"

# Order events that reach the desk's bell: the lifecycle, not notes or edits (a
# modification is staff's own edit; a balance proof is new work for them).
DESK_EVENTS = frozenset(EVENT_MESSAGES) - {"order_modified", "balance_payment_confirmed",
                                           "balance_received", "balance_proof_declined"}
# Of those, the ones that pop up as a live toast (new work for the merchant).
TOAST_EVENTS = frozenset({"order_placed", "proof_uploaded", "balance_proof_uploaded"})

# Message kinds as staff read them in the timeline and on the Mail page.
KIND_LABELS = {
    "new_order": N_("New order (to the store)"),
    "proof_uploaded": N_("Payment proof uploaded (to the store)"),
    "order_placed": N_("Order received"),
    "payment_confirmed": N_("Payment confirmed"),
    "proof_declined": N_("Payment proof declined"),
    "order_shipped": N_("Order shipped"),
    "ready_for_pickup": N_("Ready for pickup"),
    "pickup_completed": N_("Picked up"),
    "order_rejected": N_("Order canceled"),
    "order_expired": N_("Order expired"),
    "payment_reminder": N_("Payment reminder"),
    "payment_due": N_("Awaiting payment"),
    "proof_received": N_("Payment proof received"),
    "order_processing": N_("Order being prepared"),
    "export_ready": N_("Excel export"),
    "order_updated": N_("Order updated"),
    "balance_proof_uploaded": N_("Balance proof uploaded (to the store)"),
    "balance_confirmed": N_("Balance payment received"),
    "balance_declined": N_("Balance proof declined"),
    # WhatsApp (channel "whatsapp": the kind is the type code of domain.notify.whatsapp;
    # "pickup_completed" and "payment_reminder" read as above)
    "order_confirmation": N_("Order confirmation"),
    "shipping_status": N_("Shipping status"),
    "pickup_notification": N_("Pickup notification"),
    "order_cancellation": N_("Order cancellation"),
    "payment_received": N_("Payment received"),
    "expired_order": N_("Expired order"),
}

# Message statuses as staff read them.
STATUS_LABELS = {
    "pending": N_("queued"),
    "sending": N_("sending"),
    "sent": N_("sent"),
    "failed": N_("failed, will retry"),
    "dead": N_("failed for good"),
    "unknown": N_("outcome unknown"),
    "skipped": N_("skipped"),  # WhatsApp: not sent on purpose, the reason in last_error
}

# What the WhatsApp Cloud API's webhooks said of a message the API accepted
# (OutboxMessage.delivery_status; "" while nothing was reported).
DELIVERY_STATUS_LABELS = {
    "sent": N_("sent to WhatsApp"),
    "delivered": N_("delivered"),
    "read": N_("read"),
    "failed": N_("not delivered"),
}

# Channels as staff read them.
CHANNEL_LABELS = {
    "email": N_("Email"),
    "whatsapp": N_("WhatsApp"),
}


def status_email_kind(order) -> str:
    """The customer email that describes the order as it is now ("Resend email")."""
    status = order.status
    if status == "pending_payment":
        return "payment_due"
    if status == "pending_confirmation":
        return "proof_received"
    if status == "processing":
        if order.delivery_status == "ready_for_pickup":
            return "ready_for_pickup"
        return "order_processing"
    if status == "completed":
        return "pickup_completed" if order.delivery_status == "picked_up" else "order_shipped"
    if status == "canceled":
        return "order_expired" if order.cancel_reason == "Payment deadline passed" else "order_rejected"
    return "order_placed"
