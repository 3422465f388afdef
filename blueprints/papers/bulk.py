"""Papers in bulk from the orders list's selection, and carrier shipments (issue 11):
routes on the papers blueprint.

The bulk bar's "Print…" buttons and "Create shipments" are buttons of the list's
bulk form (templates/orders/_bulk_papers.html): the ticked ids, or scope=matching with
the query. Each queues one tracked job and answers with its progress component (htmx)
or redirects to the progress page. "Create shipment" on the order page queues the same
job for one order; its card polls until the job is done, then the order body reloads
with the locked code.
"""

from __future__ import annotations

import logging

from flask import abort, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from jinja2_fragments.flask import render_block
from markupsafe import Markup

from blueprints.i18n import translate_error
from blueprints.orders.forms import ConfirmForm
from blueprints.papers.routes import bp
from blueprints.rendering import is_htmx
from domain import shipments
from domain.documents import KINDS
from domain.errors import DomainError, ValidationError
from domain.exports import matching_ids
from domain.models import Order
from domain.orders import get_order_by_number
from domain.search import OrderQuery
from jobs.queue import enqueue_job, get_job

log = logging.getLogger(__name__)

MAX_BULK = 5000  # orders per job: an evening's work many times over


@bp.app_context_processor
def shipment_helpers():
    """The order page's Shipping card reads the carrier state through this."""
    return {"shipment_card": shipments.shipment_card,
            "default_weight_kg": shipments.DEFAULT_WEIGHT_GRAMS / 1000}


def _bulk_ids(form) -> list[int]:
    """The ticked ids, or every order the list's query matches (scope=matching)."""
    scope = form.get("scope", "selected")
    if scope not in ("selected", "matching"):
        raise ValidationError("The selection is not valid; reload the page and select again.")
    if scope == "matching":
        ids = matching_ids(OrderQuery.from_args(form))
    else:
        raw = form.getlist("ids")
        if len(raw) > MAX_BULK or not all(v.isdigit() and len(v) <= 9 for v in raw):
            raise ValidationError("The selection is not valid; reload the page and select again.")
        ids = list(dict.fromkeys(int(v) for v in raw))
    if not ids:
        raise ValidationError("Select at least one order first.")
    if len(ids) > MAX_BULK:
        raise ValidationError("At most %(max)s orders at once; narrow the search.", max=MAX_BULK)
    return ids


def _answer_job(job, back: str):
    """htmx: the job's self-polling progress in the bulk bar; else its progress page."""
    if is_htmx():
        # The export's progress component, as the progress page renders it.
        job_html = Markup(render_block("background/progress.html", "job", job=job,
                                       expired=False, expires_at=None))
        return render_template("papers/_bulk_status.html", job_html=job_html, message="",
                               error=False)
    return redirect(url_for("background.progress", job_id=job.id))


def _answer_error(message: str, back: str):
    if is_htmx():
        # 422 still swaps (the page's htmx-config): the refusal shows where the click was.
        return render_template("papers/_bulk_status.html", job_html=None, message=message,
                               error=True), 422
    flash(message, "error")
    return redirect(back)


def _queue(kind: str, func, *args, total: int, **kwargs):
    try:
        return enqueue_job(kind, func, *args, user_id=current_user.id, total=total, **kwargs)
    except Exception:  # Redis down: enqueue_job marked the row failed
        log.exception("Could not queue %s", kind)
        raise DomainError("The job could not be started because the job queue is not "
                          "reachable. Try again in a minute.") from None


@bp.post("/bulk/print")
def bulk_print():
    """One merged PDF of invoices, packing lists, labels or a pick list (?kind=), as a job."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    kind = request.args.get("kind", "")
    if kind not in KINDS:
        abort(404)
    back = url_for("orders.index", **OrderQuery.from_args(request.form).to_args())
    from jobs.papers import papers_job

    try:
        ids = _bulk_ids(request.form)
        job = _queue("papers", papers_job, kind, order_ids=ids, total=len(ids))
    except DomainError as exc:
        return _answer_error(translate_error(exc), back)
    return _answer_job(job, back)


@bp.post("/bulk/shipments")
def bulk_shipments():
    """Book the selected logistics orders with the carrier, as a job (others skipped)."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    back = url_for("orders.index", **OrderQuery.from_args(request.form).to_args())
    from jobs.shipments import create_shipments_job

    try:
        ids = _bulk_ids(request.form)
        job = _queue("create_shipments", create_shipments_job, ids, total=len(ids))
    except DomainError as exc:
        return _answer_error(translate_error(exc), back)
    return _answer_job(job, back)


# ------------------------------------------------------------------ one order


def _order_or_404(number: str) -> Order:
    order = get_order_by_number(number) if len(number) <= 20 else None
    if order is None:
        abort(404)
    return order


def _card(order: Order, *, job=None, error: str = "", status: int = 200):
    html = render_template("papers/_shipment_card.html", order=order, job=job, error=error)
    return html, status


@bp.post("/orders/<number>/shipment")
def create_shipment(number: str):
    """"Create shipment" on the order page: book it with the carrier in a job."""
    order = _order_or_404(number)
    back = url_for("orders.detail", number=order.number)
    form = ConfirmForm()
    try:
        if not form.validate_on_submit():
            raise ValidationError("The form expired; reload and try again.")
        weight = shipments.weight_from_input(request.form.get("weight"),
                                             request.form.get("unit", "kg"))
        refusal = shipments.shipment_refusal(order)
        if refusal is not None:
            raise refusal
        from jobs.shipments import create_shipments_job

        job = _queue("create_shipments", create_shipments_job, [order.id],
                     weight_grams=weight, total=1)
    except DomainError as exc:
        if is_htmx():
            return _card(order, error=translate_error(exc), status=422)
        flash(translate_error(exc), "error")
        return redirect(back)
    if is_htmx():
        return _card(order, job=job)
    flash(_("Creating the shipment with the carrier in the background."), "success")
    return redirect(url_for("background.progress", job_id=job.id))


@bp.get("/orders/<number>/shipment")
def shipment_status(number: str):
    """The Shipping card while its job runs; once done, the whole order body again."""
    order = _order_or_404(number)
    if not is_htmx():
        return redirect(url_for("orders.detail", number=order.number))
    job = get_job(request.args.get("job", ""))
    if job is not None and (job.kind != "create_shipments" or (
            job.user_id != current_user.id and not current_user.is_owner)):
        job = None  # another's job, or not a shipment job: no hint it exists
    if job is not None and job.status in ("pending", "running"):
        return _card(order, job=job)
    if job is not None and job.status == "failed":
        return _card(order, error=_("The job failed: %(error)s", error=job.error))
    # Done: the order body again, so the tracking cell, the label and the history agree.
    from blueprints.orders.routes import _order_context

    skipped = (job.result or {}).get("skipped") if job is not None else None
    message = skipped[0]["reason"] if skipped else ""
    body = render_block("orders/detail.html", "order_body",
                        **_order_context(order, message=message, message_error=bool(message)))
    response = make_response(body)
    response.headers["HX-Retarget"] = "#order-body"
    response.headers["HX-Reswap"] = "outerHTML"
    return response
