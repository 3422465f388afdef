"""The balance after a modification, on the order page's Payment card: the customer's
proof for a balance due (shown to staff, confirmed or declined), and "Mark balance
received" for money that arrived another way. The payment id travels in the form; one
that is not this order's is a 404 like a missing one."""

from __future__ import annotations

from types import SimpleNamespace

from flask import abort, request
from flask_babel import gettext as _
from flask_login import current_user

from blueprints.i18n import translate_error
from blueprints.modify.forms import BalanceDeclineForm
from blueprints.modify.routes import _placed_or_404, bp
from blueprints.orders.forms import ConfirmForm, first_error
from blueprints.orders.routes import _done
from blueprints.storefront.proof_files import proof_response
from domain import balance
from domain.actors import Actor
from domain.db import db
from domain.errors import DomainError
from domain.models import BalancePayment


@bp.app_template_global()
def order_balance(order):
    """The order's balance state (kind "none" | "due" | "credit", cents)."""
    return balance.balance_state(order)


@bp.app_template_global()
def pending_balance_proof(order):
    """The customer's balance proof waiting for staff, or None."""
    return balance.pending_balance_payment(order)


@bp.app_template_global()
def balance_decline_form():
    return BalanceDeclineForm()


def _payment_or_404(order, raw) -> BalancePayment:
    raw = str(raw or "")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9):
        abort(404)
    payment = db.session.get(BalancePayment, int(raw))
    if payment is None or payment.order_id != order.id:
        abort(404)
    return payment


def _run(number: str, form, action, success: str):
    order = _placed_or_404(number)
    if not form.validate_on_submit():
        return _done(order, first_error(form), error=True)
    try:
        action(order, form)
    except DomainError as exc:
        return _done(order, translate_error(exc), error=True)
    return _done(order, success)


@bp.post("/<number>/balance/confirm")
def confirm_balance(number: str):
    """Confirm the customer's proof for the balance due."""
    order = _placed_or_404(number)
    payment = _payment_or_404(order, request.form.get("payment_id"))
    return _run(number, ConfirmForm(),
                lambda o, f: balance.confirm_balance_payment(payment.id,
                                                             actor=Actor.staff(current_user)),
                _("Balance payment confirmed for %(number)s.", number=order.number))


@bp.post("/<number>/balance/decline")
def decline_balance(number: str):
    """Decline the balance proof with a reason; the balance is due again."""
    order = _placed_or_404(number)
    payment = _payment_or_404(order, request.form.get("payment_id"))
    return _run(number, BalanceDeclineForm(),
                lambda o, f: balance.decline_balance_payment(payment.id, f.reason.data,
                                                             actor=Actor.staff(current_user)),
                _("Balance proof declined for %(number)s; the customer is asked to pay again.",
                  number=order.number))


@bp.post("/<number>/balance/received")
def balance_received(number: str):
    """The balance arrived another way (cash, a transfer seen in the bank)."""
    return _run(number, ConfirmForm(),
                lambda o, f: balance.mark_balance_received(o.id, actor=Actor.staff(current_user)),
                _("Balance marked as received."))


def _proof(number: str, payment_id: int, *, thumbnail: bool):
    order = _placed_or_404(number)
    payment = _payment_or_404(order, payment_id)
    # The same checks and headers as the order's own proof (the file must lie under
    # the upload folder's proofs/; served with nosniff and a sandboxing CSP).
    return proof_response(SimpleNamespace(proof_path=payment.proof_path,
                                          number=f"{order.number}-balance"),
                          thumbnail=thumbnail)


@bp.get("/<number>/balance/<int:payment_id>/proof")
def balance_proof_file(number: str, payment_id: int):
    """The customer's proof for the balance, for staff."""
    return _proof(number, payment_id, thumbnail=False)


@bp.get("/<number>/balance/<int:payment_id>/proof/thumbnail")
def balance_proof_thumbnail(number: str, payment_id: int):
    """A small preview of the balance proof image, for staff."""
    return _proof(number, payment_id, thumbnail=True)
