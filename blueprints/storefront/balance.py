"""The customer's side of a balance due after a modification (issue 12): their order
page shows the balance with the payment details, and takes a proof for it through the
same checks as the first proof (domain/proofs.py: sniffed, re-encoded, stored under a
random name). Only the order's own secret link reaches it."""

from __future__ import annotations

from flask import flash, redirect, url_for
from flask_babel import gettext as _

from blueprints.i18n import translate_error
from blueprints.modify.forms import BalanceProofForm
from blueprints.storefront.forms import first_error
from blueprints.storefront.routes import _by_token, _order_page, bp
from domain import balance, proofs
from domain.actors import Actor
from domain.errors import DomainError
from domain.orders import get_order


@bp.app_template_global()
def declined_balance_reason(order) -> str:
    """The template's name for domain.balance.declined_reason."""
    return balance.declined_reason(order)


def _store_and_record(order, stream):
    """Check and store the file, then record it; a refusal leaves no file behind."""
    clean = proofs.clean_upload(proofs.read_limited(stream))
    relative = proofs.store(clean)
    try:
        return balance.upload_balance_proof(order.id, path=relative, sha256=clean.sha256,
                                            actor=Actor.customer(order.customer_name))
    except BaseException:
        proofs.delete_stored(relative)
        raise


@bp.post("/o/<token>/balance-proof")
def upload_balance_proof(token: str):
    """Upload the proof for the balance due after the shop changed the order."""
    found = _by_token(token, kind="placed")
    form = BalanceProofForm()
    if not form.validate_on_submit():
        return _order_page(found, error=first_error(form), status=422)
    try:
        _store_and_record(found, form.proof.data.stream)
    except DomainError as exc:
        return _order_page(get_order(found.id), error=translate_error(exc), status=422)
    flash(_("Thank you! We received your proof for the balance; the shop will confirm it soon."),
          "success")
    return redirect(url_for("storefront.order", token=token) + "#balance")
