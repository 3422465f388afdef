"""Modify order (issue 12): the editor on the order page, its live totals, saving.

The editor opens in the order page's #modify-slot (htmx GET; without JavaScript the
same URL is a page of its own). As the merchant types, the form posts to ``preview``,
which answers the totals and diff computed by domain.modify.preview; adding and
removing items posts to ``refresh``, which answers the whole editor. Nothing is saved
until "Save changes" (``save``), which carries the version the editor was opened at.
Whether the order may be modified at all is domain.modify.modify_refusal's answer."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from blueprints.i18n import translate_error
from blueprints.modify.forms import ModifyForm
from blueprints.modify.state import (
    apply_op,
    display_rows,
    initial_fields,
    initial_state,
    modify_input,
    read_state,
)
from blueprints.orders.routes import _done, _order_or_404
from blueprints.rendering import is_htmx, render
from domain import modify
from domain.actors import Actor
from domain.catalog import sellable_variants
from domain.db import db
from domain.errors import DomainError
from domain.models import ShippingMethod
from domain.store import enabled_shipping_methods

bp = Blueprint("modify", __name__, url_prefix="/orders")

SEARCH_RESULTS = 8
EDITOR = "modify/editor.html"


@bp.before_request
@login_required
def require_login():
    """Desk pages: staff only."""


# ------------------------------------------------------------------ template helpers
# Globals, so the order page's partials (owned here, included by orders/detail.html)
# and the customer page can ask the domain without their views passing anything.


@bp.app_template_global()
def modify_refusal_text(order) -> str | None:
    """Why this order cannot be modified now, in the reader's language (None: it can)."""
    refusal = modify.modify_refusal(order)
    return _(refusal) if refusal else None


@bp.app_template_global()
def modify_plan_refused(order) -> bool:
    """The refusal is the plan's (the button explains the plan instead of editing)."""
    return modify.modify_refusal(order) == modify.PLAN_REQUIRED


@bp.app_template_global()
def order_changes(details) -> list[str]:
    """An order_modified event's diff lines in the reader's language."""
    return modify.describe_changes(details or {})


# ------------------------------------------------------------------ the editor


def _placed_or_404(number: str):
    order = _order_or_404(number)
    if order.kind != "placed":
        abort(404)
    return order


def _shipping_choices(order) -> list[tuple[int, str]]:
    """The enabled methods, plus the order's own if it was switched off since."""
    methods = enabled_shipping_methods()
    if order.shipping_method_id and order.shipping_method_id not in {m.id for m in methods}:
        own = db.session.get(ShippingMethod, order.shipping_method_id)
        if own is not None:
            methods.append(own)
    return [(m.id, _(m.name)) for m in methods]


def _method_fees(order) -> dict[int, int]:
    ids = {m for m, _label in _shipping_choices(order)}
    return {m.id: m.fee_cents for m in db.session.query(ShippingMethod)
            .filter(ShippingMethod.id.in_(ids))}


def _form(order, *, posted: bool) -> ModifyForm:
    form = ModifyForm() if posted else ModifyForm(formdata=None, data=initial_fields(order))
    form.shipping_method.choices = _shipping_choices(order)
    return form


def _preview(order, state, form):
    """(preview or None, the reasons the input could not be previewed)."""
    data, errors = modify_input(state, form, order)
    if data is None:
        return None, errors
    try:
        return modify.preview(order.id, data), []
    except DomainError as exc:
        return None, [translate_error(exc)]


def _search(q: str):
    q = (q or "").strip()[:100]
    return q, sellable_variants(q, limit=SEARCH_RESULTS)


def _context(order, form, state, preview, errors, *, error="", q="", results=None,
             searched=False, stale=False):
    # Someone saved since this editor opened: say so beside the totals, with a reload link.
    stale = stale or (preview is not None and form.version.data != preview.version)
    return dict(order=order, form=form, rows=display_rows(state, order, preview),
                preview=preview, errors=errors, error=error, stale=stale,
                fees=_method_fees(order), q=q, results=results or [], searched=searched,
                refusal=modify_refusal_text(order), plan_refused=modify_plan_refused(order),
                is_owner=current_user.is_owner)


def _editor(order, form, state, *, error="", q="", results=None, searched=False, status=200,
            block="editor", stale=False):
    preview, errors = _preview(order, state, form)
    context = _context(order, form, state, preview, errors, error=error, q=q,
                       results=results, searched=searched, stale=stale)
    if block == "totals":
        return render(EDITOR, block=["totals", "line_totals"], oob=True, **context), status
    return render(EDITOR, block=block, **context), status


@bp.get("/<number>/modify")
def editor(number: str):
    """The editor with the order's lines, shipping and money (or why it cannot open)."""
    order = _placed_or_404(number)
    if modify.modify_refusal(order) is not None:
        context = dict(order=order, refusal=modify_refusal_text(order),
                       plan_refused=modify_plan_refused(order), is_owner=current_user.is_owner)
        return render(EDITOR, block="editor", **context), 200
    return _editor(order, _form(order, posted=False), initial_state(order))


@bp.get("/<number>/modify/close")
def close(number: str):
    """Cancel: the slot empties; nothing was saved."""
    order = _placed_or_404(number)
    if not is_htmx():
        return redirect(url_for("orders.detail", number=order.number))
    return ""  # the slot's content: nothing


@bp.get("/<number>/modify/search")
def search(number: str):
    """Products matching a name, SKU or barcode, each variant with an "Add" button."""
    order = _placed_or_404(number)
    q, results = _search(request.args.get("q", ""))
    if not is_htmx():
        return redirect(url_for("modify.editor", number=order.number))
    return render(EDITOR, block="search_results", order=order, q=q, results=results,
                  searched=bool(q))


def _posted(number: str):
    order = _placed_or_404(number)
    form = _form(order, posted=True)
    form.validate_on_submit()  # errors are collected with the lines' (state.modify_input)
    if "csrf_token" in form.errors:
        abort(400)
    return order, form, read_state(request.form, order)


@bp.post("/<number>/modify/preview")
def preview(number: str):
    """The totals, the diff and the money after the change, as typed (nothing saved)."""
    order, form, state = _posted(number)
    if modify.modify_refusal(order) is not None:
        return _refused(order)
    return _editor(order, form, state, block="totals" if is_htmx() else "editor")


@bp.post("/<number>/modify/refresh")
def refresh(number: str):
    """Add a product, remove or restore a line, or search: the editor drawn again."""
    order, form, state = _posted(number)
    if modify.modify_refusal(order) is not None:
        return _refused(order)
    op = request.form.get("op", "refresh")
    apply_op(state, op, order)
    q, results = _search(request.form.get("q", "")) if op == "search" else ("", [])
    return _editor(order, form, state, q=q, results=results, searched=op == "search")


def _refused(order):
    """Refused (plan, status) whatever was posted: say why; nothing changes."""
    html = render(EDITOR, block="editor", order=order, refusal=modify_refusal_text(order),
                  plan_refused=modify_plan_refused(order), is_owner=current_user.is_owner)
    return html, 422, {"HX-Retarget": "#modify-editor", "HX-Reswap": "outerHTML"}


@bp.post("/<number>/modify")
def save(number: str):
    """Save the change: one domain action; a stale version or any refusal keeps the
    editor open with what was typed."""
    order, form, state = _posted(number)
    if modify.modify_refusal(order) is not None:
        return _refused(order)
    data, errors = modify_input(state, form, order)
    if data is None:
        return _save_failed(order, form, state, errors[0] if errors else _("The form is not valid."))
    try:
        order = modify.modify_order(order.id, data, expected_version=form.version.data,
                                    actor=Actor.staff(current_user))
    except modify.StaleOrder as exc:
        return _save_failed(order, form, state, translate_error(exc), stale=True)
    except DomainError as exc:
        return _save_failed(order, form, state, translate_error(exc))
    return _done(order, _("Order %(number)s was changed; the customer is told.",
                          number=order.number))


def _save_failed(order, form, state, message: str, *, stale=False):
    # A stale save says so once, in the totals' banner with its reload link.
    html, _status = _editor(order, form, state, error="" if stale else message, stale=stale)
    headers = {}
    if is_htmx():  # the form targets #order-body for success; a refusal stays in the editor
        headers = {"HX-Retarget": "#modify-editor", "HX-Reswap": "outerHTML"}
    if stale:
        headers["X-Shopdesk-Stale"] = "1"
    return html, (409 if stale and not is_htmx() else 422), headers


# Balance payments (confirm, decline, mark received, the proof file) live in their
# own module on this blueprint.
from blueprints.modify import balance  # noqa: E402,F401
