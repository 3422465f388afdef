"""Unpaid orders built on behalf of a customer: list, builder, link, delete."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user, login_required

from blueprints.drafts.forms import BLANK_LINES, DeleteForm, DraftForm
from blueprints.i18n import money, translate_error
from blueprints.orders.forms import first_error
from blueprints.rendering import render
from domain import drafts as actions
from domain.actors import Actor
from domain.errors import DomainError, NotFound
from domain.i18n import L_
from domain.money import cents_to_input, parse_money
from domain.orders import CustomerDetails, get_order
from domain.payments import sellable_catalog
from domain.store import enabled_shipping_methods

bp = Blueprint("drafts", __name__, url_prefix="/drafts")


@bp.before_request
@login_required
def require_login():
    """Drafts are back-office pages."""


def _variant_choices() -> list[tuple[int, str]]:
    choices = [(0, _("— choose an item —"))]
    for product in sellable_catalog():
        for v in product.variants:
            stock = (_("unlimited") if v.stock is None
                     else ngettext("%(num)d in stock", "%(num)d in stock", v.stock))
            # A list of values, not a sentence: the same in every language.
            choices.append((v.id, " · ".join((v.display_name, money(v.price_cents), stock))))
    return choices


def _prepare(form: DraftForm) -> DraftForm:
    choices = _variant_choices()
    for entry in form.lines:
        entry.form.variant_id.choices = choices
    form.shipping_method.choices = [
        (m.id, _("%(method)s (%(fee)s)", method=_(m.name), fee=cents_to_input(m.fee_cents)))
        for m in enabled_shipping_methods()]
    return form


def _with_blank_lines(form: DraftForm) -> DraftForm:
    while sum(1 for e in form.lines if not e.form.variant_id.data) < BLANK_LINES:
        form.lines.append_entry()
    return _prepare(form)


LINES_NEED_CORRECTION = _l("Some item lines need a correction: see the messages next to them.")


def _form_error(form: DraftForm) -> str:
    """One sentence for the top of the page; line errors are shown on their lines."""
    if any(entry.form.errors for entry in form.lines):
        return str(LINES_NEED_CORRECTION)
    return first_error(form)


def _mark_lines(form: DraftForm, exc: actions.LineQuantityError) -> None:
    """Put a domain refusal about one item next to each line of that item."""
    for entry in form.lines:
        if entry.form.variant_id.data == exc.variant_id:
            entry.form.quantity.errors = [*entry.form.quantity.errors, translate_error(exc)]


def _input(form: DraftForm) -> actions.DraftInput:
    # validate() refused chosen items without a quantity: no default of 1 here
    items = [(e.form.variant_id.data, e.form.quantity.data) for e in form.lines
             if e.form.variant_id.data]
    fee = form.shipping_fee.data.strip() if form.shipping_fee.data else ""
    return actions.DraftInput(
        customer=CustomerDetails(form.customer_name.data or "", form.phone.data or "",
                                 form.email.data or "", form.address.data or ""),
        items=items, shipping_method_id=form.shipping_method.data,
        shipping_fee_cents=parse_money(fee, field=L_("Shipping fee")) if fee else None,
        discount_cents=parse_money(form.discount.data, field=L_("Discount"), allow_blank=True))


def _page(form: DraftForm, draft=None, *, error: str = "", status: int = 200):
    html = render("drafts/builder.html", form=_with_blank_lines(form), draft=draft, error=error,
                  delete_form=DeleteForm())
    return html, status


def _draft_or_redirect(order_id: int):
    """The draft, or (once the customer checked out) a redirect to the placed order."""
    try:
        order = get_order(order_id)
    except NotFound:
        abort(404)
    if not order.is_draft:
        abort(redirect(url_for("orders.detail", number=order.number)))
    return order


@bp.get("/")
def index():
    """Every draft not yet confirmed by its customer, newest first."""
    return render("drafts/list.html", drafts=actions.list_drafts(), delete_form=DeleteForm())


@bp.get("/new")
def new():
    """An empty draft builder."""
    return _page(DraftForm())


@bp.post("/new")
def create():
    """Save a new draft."""
    form = _prepare(DraftForm())
    if not form.validate_on_submit():
        return _page(form, error=_form_error(form), status=422)
    try:
        draft = actions.create_draft(_input(form), actor=Actor.staff(current_user))
    except actions.LineQuantityError as exc:
        _mark_lines(form, exc)
        return _page(form, error=str(LINES_NEED_CORRECTION), status=422)
    except DomainError as exc:
        return _page(form, error=translate_error(exc), status=422)
    flash(_("Draft %(number)s saved. Copy its link and send it to the customer.",
            number=draft.number), "success")
    return redirect(url_for("drafts.edit", order_id=draft.id))


@bp.get("/<int:order_id>")
def edit(order_id: int):
    """The builder for an existing draft, with its checkout link."""
    draft = _draft_or_redirect(order_id)
    data = actions.draft_input_from(draft)
    form = DraftForm(data={
        "customer_name": draft.customer_name, "phone": draft.customer_phone,
        "email": draft.customer_email, "address": draft.shipping_address,
        "lines": [{"variant_id": vid, "quantity": qty} for vid, qty in data.items],
        "shipping_method": draft.shipping_method_id,
        "shipping_fee": cents_to_input(draft.shipping_fee_cents),
        "discount": cents_to_input(draft.discount_cents) if draft.discount_cents else ""})
    return _page(form, draft)


@bp.post("/<int:order_id>")
def update(order_id: int):
    """Save changes to a draft (refused once the customer has confirmed it)."""
    draft = _draft_or_redirect(order_id)
    form = _prepare(DraftForm())
    if not form.validate_on_submit():
        return _page(form, draft, error=_form_error(form), status=422)
    try:
        draft = actions.update_draft(order_id, _input(form), actor=Actor.staff(current_user))
    except actions.LineQuantityError as exc:
        _mark_lines(form, exc)
        return _page(form, draft, error=str(LINES_NEED_CORRECTION), status=422)
    except DomainError as exc:
        return _page(form, draft, error=translate_error(exc), status=422)
    flash(_("Draft %(number)s saved.", number=draft.number), "success")
    return redirect(url_for("drafts.edit", order_id=order_id))


@bp.post("/<int:order_id>/delete")
def delete(order_id: int):
    """Delete a draft for good."""
    form = DeleteForm()
    if not form.validate_on_submit():
        flash(first_error(form), "error")
        return redirect(url_for("drafts.index"))
    try:
        number = actions.delete_draft(order_id, actor=Actor.staff(current_user))
    except DomainError as exc:
        flash(translate_error(exc), "error")
    else:
        flash(_("Draft %(number)s deleted.", number=number), "success")
    return redirect(url_for("drafts.index"))
