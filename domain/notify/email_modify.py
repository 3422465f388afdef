"""The words and facts of the emails about a modified order and its balance (issue 12),
merged into domain/notify/email.py's tables:

* ``order_updated`` (customer): what changed (the order_modified event's diff, in the
  order's language), then the order as it is now, and what that means for money:
  the amount to pay while unpaid, the balance due with a button to the order page,
  or the credit the shop owes.
* ``balance_confirmed`` / ``balance_declined`` (customer): the shop decided on a
  balance payment (the decline with its reason).
* ``balance_proof_uploaded`` (merchant): a proof for a balance to check.
"""

from __future__ import annotations

from collections.abc import Callable

from domain.i18n import N_

SUBJECTS = {
    "order_updated": N_("%(number)s Order updated, new total %(total)s — %(store)s"),
    "balance_confirmed": N_("%(number)s Balance payment received — %(store)s"),
    "balance_declined": N_("%(number)s Balance payment not accepted — %(store)s"),
    "balance_proof_uploaded": N_("%(number)s Balance proof to check — %(store)s"),
}
HEADINGS = {
    "order_updated": N_("Your order was updated"),
    "balance_confirmed": N_("Balance payment received"),
    "balance_declined": N_("We could not confirm your balance payment"),
    "balance_proof_uploaded": N_("A balance proof to check"),
}
# Parameters as email.py's INTROS, plus amount (the balance payment's).
INTROS = {
    "order_updated": N_("%(store)s updated your order %(number)s. Here is what changed:"),
    "balance_confirmed": N_("We received your balance payment of %(amount)s for order "
                            "%(number)s. Thank you!"),
    "balance_declined": N_("The shop checked your proof for the balance of order %(number)s "
                           "and could not confirm the payment."),
    "balance_proof_uploaded": N_("%(name)s uploaded a proof for the balance of %(amount)s on "
                                 "order %(number)s. Check that the money arrived, then "
                                 "confirm or decline it."),
}
MERCHANT_KINDS = frozenset({"balance_proof_uploaded"})
# Kinds whose email reads its order event (the diff, the amount, a decline's reason).
EVENT_KINDS = frozenset(SUBJECTS)


def context(order, kind: str, details: dict, money: Callable[[int], str]) -> dict:
    """What the templates read for these kinds (and safe defaults for every other)."""
    from domain.balance import balance_state, pending_balance_payment
    from domain.modify import describe_changes

    state = balance_state(order)
    amount = details.get("amount_cents") if kind in EVENT_KINDS else None
    return dict(
        changes=describe_changes(details) if kind == "order_updated" else [],
        balance=state,
        balance_text=money(state.cents) if state.cents else "",
        balance_pending=state.due and pending_balance_payment(order) is not None,
        balance_reason=(details.get("reason") or "") if kind == "balance_declined" else "",
        amount_text=money(amount) if amount else "",
    )
