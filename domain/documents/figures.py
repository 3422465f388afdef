"""What a paper says about an order's money and contents, decided here once so the
templates only print (no totals or payment rules in a template)."""

from __future__ import annotations

from dataclasses import dataclass

from domain.models import Order


@dataclass(frozen=True)
class PaymentState:
    paid: bool
    due_cents: int  # 0 when paid


def payment_state(order: Order) -> PaymentState:
    """An invoice says "Paid" once the money paid (or proved) covers the total, else
    the amount still due. Refunds do not reopen a balance: they are money going back
    (issue 12's modify keeps paid_cents and total_cents in step)."""
    paid = int(order.paid_cents or 0)
    total = int(order.total_cents or 0)
    if paid >= total:
        return PaymentState(True, 0)
    return PaymentState(False, total - paid)
