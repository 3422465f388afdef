"""Papers (issue 11): invoice, packing list, label and pick list PDFs, one order
or in bulk, and carrier shipments for logistics-automation orders."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, render_template
from flask_babel import gettext
from flask_login import current_user, login_required
from sqlalchemy.exc import SQLAlchemyError

from domain import documents
from domain import orders as actions
from domain.actors import Actor

log = logging.getLogger(__name__)

bp = Blueprint("papers", __name__, url_prefix="/papers")

# URL slug -> (paper kind, file name stem)
_SINGLE = {
    "invoice": ("invoice", "invoice"),
    "packing-list": ("packing_list", "packing-list"),
    "label": ("label", "label"),
}


@bp.before_request
@login_required
def require_login():
    """Desk pages: staff only."""


@bp.app_template_global("label_refusal")
def label_refusal(order):
    """Why the order has no shipping label yet (a message id), or None: the order
    page's Label button (templates/orders/_papers_buttons.html)."""
    return documents.label_refusal(order)


def pdf_response(pdf: bytes, filename: str) -> Response:
    """A PDF shown in the browser's viewer, never kept in a cache (it holds a
    customer's name and address)."""
    response = Response(pdf, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _order_or_404(number: str):
    order = actions.get_order_by_number(number) if 0 < len(number) <= 20 else None
    if order is None or not order.number:
        abort(404)
    return order


def _file_stem(number: str) -> str:
    # Order numbers are prefix letters and digits; anything else is dropped so the
    # header cannot be broken by a quote.
    return "".join(ch for ch in number if ch.isascii() and (ch.isalnum() or ch in "-_"))


@bp.get("/orders/<number>/<any(invoice, 'packing-list', label):paper>.pdf")
def single(number: str, paper: str):
    """One order's invoice, packing list or shipping label, inline, in its language."""
    order = _order_or_404(number)
    kind, stem = _SINGLE[paper]
    if kind == "label":
        refusal = documents.label_refusal(order)
        if refusal is not None:
            return render_template("error.html", code=409, title=gettext("No shipping label"),
                                   message=gettext(refusal)), 409
    pdf = documents.render_pdf(kind, [order.id])
    try:
        documents.record_printed(kind, [order.id], actor=Actor.staff(current_user))
    except SQLAlchemyError:  # a busy database must not cost the merchant the paper
        log.exception("Could not record that %s of %s was printed", kind, order.number)
    return pdf_response(pdf, f"{stem}-{_file_stem(order.number)}.pdf")
