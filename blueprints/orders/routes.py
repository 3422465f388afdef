"""Order desk: the orders list and the order page, one route per action."""

from __future__ import annotations

import tempfile
from urllib.parse import parse_qsl, urlencode, urlsplit

from flask import (
    Blueprint,
    abort,
    after_this_request,
    current_app,
    flash,
    redirect,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.datastructures import MultiDict
from werkzeug.routing import BuildError

from blueprints.i18n import translate_error
from blueprints.mail.routes import STATUS_TITLES, html_part_response, message_or_404, preview_page
from blueprints.orders.forms import (
    ConfirmForm,
    NoteForm,
    ReasonForm,
    RefundNoteForm,
    RetryMessageForm,
    ShipForm,
    TrackingForm,
    first_error,
)
from blueprints.orders.rows import list_rows, tracking_view
from blueprints.rendering import is_htmx, render
from domain import list_view, saved_views, setup_checklist
from domain import orders as actions
from domain import search as search_rules
from domain.actors import Actor
from domain.errors import DomainError
from domain.exports import SYNC_LIMIT, export_filename, export_orders, matching_ids
from domain.i18n import N_
from domain.money import parse_money
from domain.notify import alerts, outbox, resend
from domain.notify.kinds import KIND_LABELS, status_email_kind
from domain.notify.transport import MailSettings
from domain.proofs import reused_proof_order_numbers
from domain.search import SOURCES, TODO, OrderQuery
from domain.status import OrderStatus, available_actions
from domain.store import (
    all_products,
    enabled_payment_methods,
    enabled_shipping_methods,
    product_names,
)
from jobs.deadlines import schedule_deadline_jobs

bp = Blueprint("orders", __name__)


# The tracking cell of the list's rows, for the order page's _tracking.html too.
bp.add_app_template_global(tracking_view, "tracking_view")


@bp.before_request
@login_required
def require_login():
    """Every page of the desk needs a signed-in staff member."""


def _order_or_404(number: str):
    order = actions.get_order_by_number(number) if len(number) <= 20 else None
    if order is None:
        abort(404)
    return order


def _actor() -> Actor:
    return Actor.staff(current_user)


@bp.get("/")
def home():
    """The desk opens on the day's work: the To do tab of the orders list."""
    return redirect(url_for("orders.index", status=TODO))


def _args(url: str) -> list[tuple[str, str]]:
    return sorted(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def _same_url(url: str, other: str) -> bool:
    """Same path and the same arguments (in any order)."""
    return urlsplit(url).path == urlsplit(other).path and _args(url) == _args(other)


def _history_headers(canonical: str) -> dict[str, str]:
    """How an htmx list request updates the address bar: always to the canonical URL
    (no empty fields), and as a new history entry only when the list changed. The
    same search sent again (Enter, Apply) replaces the entry instead of adding one."""
    current = request.headers.get("HX-Current-URL", "")
    if current and _same_url(current, canonical):
        return {"HX-Replace-Url": canonical}
    return {"HX-Push-Url": canonical}


@bp.get("/orders")
def index():
    """Orders list: Paid/Unpaid lists, status tabs with counts, one page of rows."""
    query = OrderQuery.from_args(request.args, per_page=current_app.config["ORDERS_PER_PAGE"])
    canonical = url_for("orders.index", **query.to_args())
    if not is_htmx() and not query.errors and sorted(request.args.items(multi=True)) != _args(canonical):
        # A plain GET form sends every field, empty or not: show the tidy address.
        # (Not when an argument was refused: the page explains why instead.)
        return redirect(canonical)
    page, counts = query.page_with_tab_counts()
    # The filter panel, which lists every method and product, is outside the htmx
    # fragment: a fragment only needs the names of those it filters by (for their chips).
    payment_methods = enabled_payment_methods() \
        if not is_htmx() or query.payment_method_ids else []
    shipping_methods = enabled_shipping_methods() \
        if not is_htmx() or query.shipping_method_ids else []
    products = [] if is_htmx() else all_products()
    names = product_names(query.product_ids) if is_htmx() else {p.id: p.name for p in products}
    presets = list_view.date_presets(list_view.store_today())
    context = dict(query=query, page=page, counts=counts, count_cap=search_rules.COUNT_CAP,
                   presets=presets, active_preset=list_view.active_preset(query, presets),
                   chips=list_view.filter_chips(
                       query, payment_names={m.id: m.name for m in payment_methods},
                       shipping_names={m.id: m.name for m in shipping_methods},
                       product_names=names),
                   rows=list_rows(page.items, list_view.items_summaries(
                       [o.id for o in page.items])),
                   # the Paid/Unpaid switch is outside the htmx fragment
                   list_counts=None if is_htmx() else query.list_counts(),
                   statuses=list(OrderStatus),
                   payment_methods=payment_methods,
                   shipping_methods=shipping_methods, sources=SOURCES,
                   products=products,
                   views=saved_views.list_views(current_user.id),
                   query_string=urlencode(query.to_args(page=1), doseq=True),
                   export_form=ConfirmForm(), oob=is_htmx(),
                   # Outside the swapped blocks: only a whole page reads them.
                   setup=None if is_htmx() else _setup_card())
    html = render("orders/list.html", block=["tabs", "results"], **context)
    # Back must show the list as it is now, never a copy kept by the browser; and the
    # same URL answers a fragment or a page depending on HX-Request.
    headers = {"Cache-Control": "no-store", "Vary": "HX-Request"}
    if is_htmx():
        headers.update(_history_headers(canonical))
    return html, headers


def _step_url(step) -> str:
    """Where a step is done; its fallback page while that page is not built."""
    try:
        return url_for(step.endpoint)
    except BuildError:
        return url_for(step.fallback_endpoint or "orders.index")


def _setup_card():
    """The setup checklist while the store is not ready (None once it is), each step
    with its link. Staff see one line (settings are the owner's), so their page
    does not list steps they cannot do."""
    checklist = setup_checklist.checklist()
    if checklist.ready:
        return None
    links = {step.key: _step_url(step) for step in checklist.steps} \
        if current_user.is_owner else {}
    return {"checklist": checklist, "links": links}


# ------------------------------------------------------------------ export


def _selected_ids(form) -> list[int]:
    """The ids the merchant ticked, or every order matching the query they were looking at.
    The scope is the value of the button they pressed ("Export selected" / "Export all")."""
    scope = form.get("scope", "selected")
    if scope not in ("selected", "matching"):
        raise DomainError("Choose “Export selected” or “Export all”.")
    if scope == "matching":
        return matching_ids(OrderQuery.from_args(form))
    raw = form.getlist("ids")
    if len(raw) > 10_000 or not all(v.isdigit() and len(v) <= 9 for v in raw):
        raise DomainError("The selection is not valid; reload the page and select again.")
    ids = list(dict.fromkeys(int(v) for v in raw))
    if not ids:
        raise DomainError("Select at least one order to export, or use “Export all”.")
    return ids


@bp.post("/orders/export")
def export():
    """Excel export of the selected or matching orders: direct when small, else a job."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    back = url_for("orders.index", **OrderQuery.from_args(request.form).to_args())
    try:
        ids = _selected_ids(request.form)
    except DomainError as exc:
        flash(translate_error(exc), "error")
        return redirect(back)
    if not ids:
        flash(_("No orders match; nothing to export."), "error")
        return redirect(back)
    if len(ids) > SYNC_LIMIT:
        from jobs.exports import export_orders_job
        from jobs.queue import enqueue_job

        job = enqueue_job("export_orders", export_orders_job, order_ids=ids,
                          user_id=current_user.id, total=len(ids))
        return redirect(url_for("background.progress", job_id=job.id))
    handle = tempfile.NamedTemporaryFile(suffix=".xlsx", delete=False)
    handle.close()
    # Headers and labels in the exporting staff member's language (this request's).
    export_orders(ids, handle.name, translate=_)

    @after_this_request
    def remove_file(response):
        import os

        try:
            os.unlink(handle.name)
        except OSError:
            pass
        return response

    return send_file(handle.name, as_attachment=True, download_name=export_filename(),
                     mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


# ------------------------------------------------------------------ saved views


@bp.post("/orders/views")
def save_view():
    """Save the current search, filters and tab under a name."""
    query_string = request.form.get("query_string", "")
    try:
        if not ConfirmForm().validate_on_submit():
            raise DomainError("The form expired; reload and try again.")
        view = saved_views.save_view(current_user.id, request.form.get("name", ""), query_string)
    except DomainError as exc:
        flash(translate_error(exc), "error")
        args = OrderQuery.from_args(MultiDict(parse_qsl(query_string))).to_args()
        return redirect(url_for("orders.index", **args))
    flash(_("Saved view “%(name)s”.", name=view.name), "success")
    return redirect(url_for("orders.index") + ("?" + view.query_string if view.query_string else ""))


@bp.post("/orders/views/<int:view_id>/delete")
def delete_view(view_id: int):
    """Delete one of my saved views."""
    if ConfirmForm().validate_on_submit():
        try:
            saved_views.delete_view(current_user.id, view_id)
            flash(_("Saved view deleted."), "success")
        except DomainError as exc:
            flash(translate_error(exc), "error")
    return redirect(url_for("orders.index"))


def _timeline(order_id: int, history) -> list[tuple]:
    """The history, newest first, each event with the messages it caused (oldest first).
    A message whose event is not in the history stands alone at its own time."""
    messages = outbox.order_messages(order_id)
    by_event: dict[int | None, list] = {}
    for message in reversed(messages):
        by_event.setdefault(message.event_id, []).append(message)
    known = {ev.id for ev in history}
    entries = [(ev, by_event.get(ev.id, [])) for ev in history]
    alone = [(None, [m]) for m in messages if m.event_id not in known]
    if alone:
        entries += alone
        entries.sort(key=lambda e: e[0].created_at if e[0] is not None else e[1][0].created_at,
                     reverse=True)  # stable: same-time entries keep their order
    return entries


def _order_context(order, **extra) -> dict:
    history = actions.order_history(order.id)
    timeline = _timeline(order.id, history)
    context = dict(order=order, actions=available_actions(order), history=history,
                timeline=timeline, message_count=sum(len(m) for _ev, m in timeline),
                ship_form=ShipForm(), reason_form=ReasonForm(), confirm_form=ConfirmForm(),
                note_form=NoteForm(), refund_form=RefundNoteForm(), retry_form=RetryMessageForm(),
                reused_proof=reused_proof_order_numbers(order),
                payment_kinds=actions.PAYMENT_KINDS,
                refund_methods=actions.REFUND_METHODS,
                resends_left=resend.resends_left(order), max_resends=resend.MAX_RESENDS,
                resend_kind=status_email_kind(order) if order.kind == "placed" else None,
                kind_labels=KIND_LABELS, status_labels=STATUS_TITLES,
                smtp_enabled=MailSettings.from_config(current_app.config).smtp_enabled)
    context.update(extra)  # e.g. a refused form, bound to what was typed
    return context


@bp.get("/orders/<number>")
def detail(number: str):
    """Order page: items, totals, customer, shipping, payment, history, allowed actions."""
    order = _order_or_404(number)
    alerts.mark_order_read(current_user.id, order.id)  # opening it reads its bell entries
    return render("orders/detail.html", block="order_body", **_order_context(order))


@bp.get("/orders/<number>/neighbours")
def neighbours(number: str):
    """Previous and next order in the list the merchant came from, whose arguments come
    along (app.js keeps the last list's address in the tab's sessionStorage: no cookie,
    which would also keep the list out of the back/forward cache)."""
    order = _order_or_404(number)
    query = OrderQuery.from_args(request.args)
    around = (list_view.Neighbours(None, None) if query.errors or order.is_draft
              else list_view.neighbours(query, order))
    return render("orders/_neighbours.html", block=None, around=around), {"Cache-Control": "no-store"}


def _done(order, message: str, *, error: bool = False, failed: str = "", form=None):
    """After an action: htmx gets the order body again with the message, others a redirect.

    A refusal answers with the page itself (422), its form still holding what was typed
    and open, the reason beside it: ``failed`` names the form ("note", "refund", ...)."""
    if error and failed:
        order = actions.get_order(order.id)
        extra = {f"{FAILED_FORMS[failed]}": form, "open_form": failed}
        body = render("orders/detail.html", block="order_body",
                      **_order_context(order, message=message, message_error=True, **extra))
        return body, 422
    if is_htmx():
        order = actions.get_order(order.id)
        body = render("orders/detail.html", block="order_body",
                      **_order_context(order, message=message, message_error=error))
        return body, (422 if error else 200)
    flash(message, "error" if error else "success")
    return redirect(url_for("orders.detail", number=order.number))


# A form that can be refused with what was typed in it -> its name in the page context.
FAILED_FORMS = {"note": "note_form", "refund": "refund_form", "reject": "reason_form",
                "decline": "reason_form", "ship": "ship_form"}


def _run(number: str, form, action, success: str, *, name: str = ""):
    """Validate ``form``, call the domain ``action`` and report the outcome.
    ``success`` is a message id (marked N_) with an optional %(number)s; ``name`` (a key
    of FAILED_FORMS) brings a refused form back with its typed values."""
    order = _order_or_404(number)
    if not form.validate_on_submit():
        return _done(order, first_error(form), error=True, failed=name, form=form)
    try:
        action(order, form)
    except DomainError as exc:
        return _done(order, translate_error(exc), error=True, failed=name, form=form)
    return _done(order, _(success, number=order.number))


@bp.post("/orders/<number>/confirm-payment")
def confirm_payment(number: str):
    """Confirm the payment: the order moves to Processing."""
    return _run(number, ConfirmForm(), lambda o, f: actions.confirm_payment(o.id, actor=_actor()),
                N_("Payment confirmed for %(number)s."))


@bp.post("/orders/<number>/decline-proof")
def decline_proof(number: str):
    """Decline the payment proof with a reason: back to Pending payment."""
    return _run(number, ReasonForm(),
                # a decline starts a fresh payment deadline: schedule its expiry
                lambda o, f: schedule_deadline_jobs(
                    actions.decline_proof(o.id, f.reason.data, actor=_actor())),
                N_("Proof declined for %(number)s; the customer is asked to pay again."),
                name="decline")


@bp.post("/orders/<number>/ship")
def ship(number: str):
    """Confirm shipment, optionally with the tracking code."""
    return _run(number, ShipForm(),
                lambda o, f: actions.ship_order(o.id, actor=_actor(),
                                                tracking_code=f.tracking_code.data),
                N_("%(number)s is shipped and completed."), name="ship")


@bp.post("/orders/<number>/ready-for-pickup")
def ready_for_pickup(number: str):
    """Tell the customer the order waits for them in the shop."""
    return _run(number, ConfirmForm(),
                lambda o, f: actions.mark_ready_for_pickup(o.id, actor=_actor()),
                N_("%(number)s is ready for pickup."))


@bp.post("/orders/<number>/complete-pickup")
def complete_pickup(number: str):
    """The customer collected the order: it is completed."""
    return _run(number, ConfirmForm(),
                lambda o, f: actions.complete_pickup(o.id, actor=_actor()),
                N_("%(number)s was picked up and is completed."))


@bp.post("/orders/<number>/reject")
def reject(number: str):
    """Reject (cancel) the order with a reason; its stock returns at once."""
    return _run(number, ReasonForm(),
                lambda o, f: actions.reject_order(o.id, f.reason.data, actor=_actor()),
                N_("%(number)s was rejected and its stock returned. No refund was made."),
                name="reject")


@bp.post("/orders/<number>/notes")
def add_note(number: str):
    """Add an internal note to the history."""
    return _run(number, NoteForm(),
                lambda o, f: actions.add_note(o.id, f.text.data, actor=_actor()),
                N_("Note added."), name="note")


@bp.post("/orders/<number>/refund-notes")
def add_refund_note(number: str):
    """Record a refund made outside Shopdesk, for the books."""
    def record(order, form):
        actions.record_refund_note(order.id, amount_cents=parse_money(form.amount.data),
                                   method=form.method.data,
                                   reference=form.reference.data or "", actor=_actor())
    return _run(number, RefundNoteForm(), record, N_("Refund note recorded."), name="refund")


# ------------------------------------------------------------------ messages


def _order_message_or_404(order, message_id):
    """One of this order's messages; another order's message id is a 404 like a missing one."""
    if isinstance(message_id, str):
        message_id = int(message_id) if message_id.isascii() and message_id.isdigit() \
            and len(message_id) <= 10 else 0
    message = message_or_404(message_id)
    if message.order_id != order.id:
        abort(404)
    return message


@bp.post("/orders/<number>/resend-email")
def resend_email(number: str):
    """Send the customer the email for the order's current status again (at most 5 times)."""
    order = _order_or_404(number)
    if not ConfirmForm().validate_on_submit():
        return _done(order, _("The form is not valid."), error=True)
    try:
        order = resend.resend_email(order.id, actor=_actor())
    except DomainError as exc:
        return _done(order, translate_error(exc), error=True)
    return _done(order, _("Email resent to %(recipient)s (%(count)s of %(max)s).",
                          recipient=order.customer_email, count=order.email_resends,
                          max=resend.MAX_RESENDS))


@bp.post("/orders/<number>/messages/retry")
def retry_message(number: str):
    """Try a failed, dead or unknown message again. An unknown one may already have
    arrived: the staff member must say they know that."""
    order = _order_or_404(number)
    form = RetryMessageForm()
    if not form.validate_on_submit():
        return _done(order, first_error(form), error=True)
    message = _order_message_or_404(order, form.message_id.data or "")
    recipient = message.recipient
    if message.status == "unknown" and not form.may_have_arrived.data:
        return _done(order, _("This message may already have arrived. Tick “%(check)s” to "
                              "send it again anyway.", check=form.may_have_arrived.label.text),
                     error=True)
    try:
        outbox.retry_by_hand(message.id, actor=_actor())
    except DomainError as exc:
        return _done(order, translate_error(exc), error=True)
    return _done(order, _("The message to %(recipient)s will be sent again.",
                          recipient=recipient))


@bp.get("/orders/<number>/messages/<int:message_id>")
def message(number: str, message_id: int):
    """The rendered copy of one of the order's messages."""
    order = _order_or_404(number)
    msg = _order_message_or_404(order, message_id)
    return preview_page(msg, order=order,
                        html_url=url_for("orders.message_html", number=order.number,
                                         message_id=msg.id),
                        back_url=url_for("orders.detail", number=order.number),
                        back_label=_("Order %(number)s", number=order.number))


@bp.get("/orders/<number>/messages/<int:message_id>/html")
def message_html(number: str, message_id: int):
    """The HTML part alone, for the preview's sandboxed frame."""
    order = _order_or_404(number)
    return html_part_response(_order_message_or_404(order, message_id))


# ------------------------------------------------------------------ tracking code

def _tracking_fragment(order, *, editing=False, error="", form=None, status=200, saved="",
                       shipped_status=""):
    context = request.values.get("context", "page")
    html = render("orders/_tracking.html", block=None, order=order, editing=editing,
                  error=error, form=form or TrackingForm(tracking_code=order.tracking_code),
                  context="list" if context == "list" else "page",
                  can_edit=actions.can_set_tracking_code(order),
                  can_ship="ship_order" in available_actions(order),
                  saved=saved, shipped_status=shipped_status)
    return html, status


@bp.get("/orders/<number>/tracking")
def tracking(number: str):
    """The tracking code cell (used to cancel an edit)."""
    order = _order_or_404(number)
    if not is_htmx():
        return redirect(url_for("orders.detail", number=number))
    return _tracking_fragment(order)


@bp.get("/orders/<number>/tracking/edit")
def edit_tracking(number: str):
    """The inline editor for the tracking code, or why it cannot be edited."""
    order = _order_or_404(number)
    if not is_htmx():
        return redirect(url_for("orders.detail", number=number) + "#tracking")
    if not actions.can_set_tracking_code(order):
        if order.tracking_code_by_carrier:
            reason = _("Set by the carrier; it cannot be edited.")
        elif order.shipping_kind == "pickup":
            reason = _("Collected in the shop: no tracking code.")
        else:
            reason = _("%(status)s orders keep their tracking code.",
                       status=_(order.status_info.label) if order.status_info else _("Draft"))
        return _tracking_fragment(order, error=reason)
    return _tracking_fragment(order, editing=True)


@bp.post("/orders/<number>/tracking")
def save_tracking(number: str):
    """Save the tracking code typed inline (or in the order page's form)."""
    order = _order_or_404(number)
    form = TrackingForm()
    and_ship = request.form.get("and_ship") == "1"  # "Save & ship": one step, one action
    try:
        if not form.validate_on_submit():
            problem = first_error(form)
        elif and_ship:
            order = actions.ship_order(order.id, actor=_actor(),
                                       tracking_code=form.tracking_code.data or None)
            problem = None
        else:
            order = actions.set_tracking_code(order.id, form.tracking_code.data or "",
                                              actor=_actor())
            problem = None
    except DomainError as exc:
        problem = translate_error(exc)
    if problem is not None:
        if not is_htmx():
            flash(problem, "error")
            return redirect(url_for("orders.detail", number=number))
        editable = actions.can_set_tracking_code(actions.get_order(order.id))
        return _tracking_fragment(actions.get_order(order.id), editing=editable,
                                  error=problem, form=form, status=422)
    if and_ship:
        message = _("Shipment confirmed for %(number)s.", number=order.number)
        if not is_htmx():
            flash(message, "success")
            return redirect(url_for("orders.detail", number=number))
        if request.values.get("context") != "list":  # the order page: its next step changed
            return "", 200, {"HX-Refresh": "true"}
        return _tracking_fragment(order, saved=message, shipped_status=True)
    if not is_htmx():
        flash(_("Tracking code saved."), "success")
        return redirect(url_for("orders.detail", number=number))
    return _tracking_fragment(order, saved=_("Saved"))

# Export to email adds its route to this blueprint (kept in its own module).
from blueprints.orders import export_email  # noqa: E402,F401
