"""Payment review: the proof queue, staff access to proof files, deadline extensions."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user, login_required

from blueprints.i18n import translate_error
from blueprints.orders.forms import ConfirmForm, ReasonForm, first_error
from blueprints.rendering import is_htmx, render
from blueprints.review.forms import ExtendDeadlineForm
from blueprints.storefront.proof_files import proof_response
from domain import orders as actions
from domain.actors import Actor
from domain.deadlines import extend_deadline as extend_deadline_action
from domain.errors import DomainError
from domain.proofs import pdf_preview_ready, proof_missing, review_queue, review_queue_count
from jobs.deadlines import schedule_deadline_jobs

bp = Blueprint("review", __name__, url_prefix="/review")
bp.add_app_template_global(proof_missing, "proof_missing")
# Draws a PDF proof's first page if it was stored before previews existed (then kept).
bp.add_app_template_global(pdf_preview_ready, "pdf_preview_ready")


@bp.before_request
@login_required
def require_login():
    """Every review page needs a signed-in staff member."""


def _order_or_404(number: str):
    order = actions.get_order_by_number(number) if len(number) <= 20 else None
    if order is None or order.kind != "placed":
        abort(404)
    return order


def _queue_page(notice: str = "", error: bool = False, status: int = 200):
    orders, reused = review_queue()
    html = render("review/queue.html", block="queue", orders=orders, reused=reused,
                  confirm_form=ConfirmForm(), reason_form=ReasonForm(), notice=notice,
                  notice_error=error)
    return html, status


@bp.get("/")
def queue():
    """Every order waiting for its payment proof to be confirmed, oldest first."""
    return _queue_page()


def _queue_action(number: str, form, action, success):
    """``success(number)`` is the translated sentence for a done action."""
    order = _order_or_404(number)
    if not form.validate_on_submit():
        message, error = first_error(form), True
    else:
        try:
            action(order, form)
            message, error = success(order.number), False
        except DomainError as exc:
            message, error = translate_error(exc), True
    if is_htmx():  # the card becomes its result, in place; the count follows
        html = render("review/queue.html", block=["queue_result", "queue_oob"],
                      number=order.number, notice=message, notice_error=error,
                      count=review_queue_count())
        return html, 422 if error else 200
    flash(message, "error" if error else "success")
    return redirect(url_for("review.queue"))


@bp.post("/<number>/confirm")
def confirm(number: str):
    """Confirm the payment from the queue: the order moves to Processing."""
    return _queue_action(number, ConfirmForm(),
                         lambda o, f: actions.confirm_payment(o.id, actor=Actor.staff(current_user)),
                         lambda number: _("Payment confirmed for %(number)s.", number=number))


@bp.post("/<number>/decline")
def decline(number: str):
    """Decline the proof with a reason: the order goes back to Pending payment."""
    return _queue_action(number, ReasonForm(),
                         lambda o, f: schedule_deadline_jobs(actions.decline_proof(
                             o.id, f.reason.data, actor=Actor.staff(current_user))),
                         lambda number: _("Proof declined for %(number)s; the customer is asked "
                                          "to pay again.", number=number))


@bp.get("/proofs/<number>")
def proof_file(number: str):
    """The order's payment proof, for staff."""
    return proof_response(_order_or_404(number))


@bp.get("/proofs/<number>/thumbnail")
def proof_thumbnail(number: str):
    """A small preview of the order's proof image (a PDF's first page), for staff."""
    return proof_response(_order_or_404(number), thumbnail=True)


@bp.post("/<number>/extend-deadline")
def extend_deadline(number: str):
    """Give the customer more days to pay an unpaid order."""
    order = _order_or_404(number)
    form = ExtendDeadlineForm()
    if not form.validate_on_submit():
        flash(first_error(form), "error")
    else:
        try:
            order = extend_deadline_action(order.id, form.days.data, actor=Actor.staff(current_user))
        except DomainError as exc:
            flash(translate_error(exc), "error")
        else:
            schedule_deadline_jobs(order)
            flash(ngettext("Deadline of %(number)s extended by %(num)d day.",
                           "Deadline of %(number)s extended by %(num)d days.", form.days.data,
                           number=order.number), "success")
    return redirect(url_for("orders.detail", number=order.number))
