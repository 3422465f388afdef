"""Unpaid orders built on behalf of a customer: list, builder, link, delete."""

from __future__ import annotations

import re

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from blueprints.drafts.forms import MAX_LINES, DeleteForm, DraftForm
from blueprints.i18n import translate_error
from blueprints.orders.forms import first_error
from blueprints.rendering import is_htmx, render
from domain import draft_link
from domain import drafts as actions
from domain.actors import Actor
from domain.catalog import sellable_variants
from domain.customers import details_from_order, lookup_customers
from domain.db import db
from domain.errors import DomainError, NotFound
from domain.i18n import L_
from domain.models import Variant
from domain.money import cents_to_input, parse_money
from domain.orders import MAX_QUANTITY, CustomerDetails, get_order
from domain.store import enabled_shipping_methods

bp = Blueprint("drafts", __name__, url_prefix="/drafts")


@bp.before_request
@login_required
def require_login():
    """Drafts are back-office pages."""


@bp.app_template_global("send_links")
def send_links(draft, link):
    """The draft's checkout link as WhatsApp and email links (domain.draft_link)."""
    return draft_link.send_links(draft, link)


SEARCH_RESULTS = 8
BUILDER = "drafts/builder.html"
OP = re.compile(r"(add|remove|customer):([0-9]{1,9})|clear_fee|refresh")


def _prepare(form: DraftForm) -> DraftForm:
    form.shipping_method.choices = [(m.id, _(m.name)) for m in enabled_shipping_methods()]
    return form


def _rows(form: DraftForm) -> list[dict]:
    """The lines to show: those with an item, and any wrong one (its error beside it).
    Names and prices are looked up for display only; what is for sale is the domain's
    to say when the draft is previewed or saved."""
    ids = [e.form.variant_id.data for e in form.lines if e.form.variant_id.data]
    variants = {v.id: v for v in db.session.scalars(select(Variant).where(Variant.id.in_(ids)))} \
        if ids else {}
    rows = []
    for entry in form.lines:
        vid = entry.form.variant_id.data
        if not vid and not entry.form.error_messages:
            continue
        variant = variants.get(vid) if vid else None
        sellable = variant is not None and variant.active and variant.product.active
        rows.append({"entry": entry, "variant": variant if sellable else None, "vid": vid})
    return rows


def _lenient_input(form: DraftForm) -> tuple[actions.DraftInput | None, str]:
    """What the form holds so far, for the live total: (input, why not)."""
    items = []
    for e in form.lines:
        vid, qty = e.form.variant_id.data, e.form.quantity.data
        if vid and isinstance(qty, int) and 1 <= qty <= MAX_QUANTITY:
            items.append((vid, qty))
        elif vid or e.form.error_messages:
            return None, _("Correct the item lines to see the total.")
    try:
        return _input(form, items=items), ""
    except DomainError as exc:
        return None, translate_error(exc)


def _totals(form: DraftForm):
    """(domain.drafts.preview_totals of the form, or the sentence saying why not)."""
    if not form.shipping_method.data:
        return None, _("Choose a shipping method.")
    data, why = _lenient_input(form)
    if data is None:
        return None, why
    try:
        return actions.preview_totals(data), ""
    except DomainError as exc:
        return None, translate_error(exc)


def _method_fees() -> dict[int, int]:
    return {m.id: m.fee_cents for m in enabled_shipping_methods()}


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


def _input(form: DraftForm, items=None) -> actions.DraftInput:
    # validate() refused chosen items without a quantity: no default of 1 here
    if items is None:
        items = [(e.form.variant_id.data, e.form.quantity.data) for e in form.lines
                 if e.form.variant_id.data]
    fee = form.shipping_fee.data.strip() if form.shipping_fee.data else ""
    return actions.DraftInput(
        customer=CustomerDetails(form.customer_name.data or "", form.phone.data or "",
                                 form.email.data or "", form.address.data or ""),
        items=items, shipping_method_id=form.shipping_method.data,
        shipping_fee_cents=parse_money(fee, field=L_("Shipping fee")) if fee else None,
        discount_cents=parse_money(form.discount.data, field=L_("Discount"), allow_blank=True))


def _context(form: DraftForm, draft=None, *, error: str = "", picked: bool = False) -> dict:
    q = (form.q.data or "").strip()[:100]
    lookup = (form.lookup.data or "").strip()[:100]
    totals, totals_error = _totals(form)
    return dict(form=form, draft=draft, error=error, delete_form=DeleteForm(), rows=_rows(form),
                totals=totals, totals_error=totals_error, fees=_method_fees(), q=q,
                results=sellable_variants(q, limit=SEARCH_RESULTS), lookup=lookup,
                customers=[] if picked else lookup_customers(lookup), picked=picked)


def _page(form: DraftForm, draft=None, *, error: str = "", status: int = 200, picked=False):
    html = render(BUILDER, block="builder", **_context(_prepare(form), draft, error=error,
                                                        picked=picked))
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


def _posted_form() -> DraftForm:
    """The builder's form as posted (CSRF checked: a refresh changes nothing, but
    every POST carries the token)."""
    form = _prepare(DraftForm())
    form.validate()
    if "csrf_token" in form.errors:
        abort(400)
    return form


def _with_op(form_data: MultiDict, op: str) -> tuple[MultiDict, bool]:
    """The posted fields after ``op``: add an item (one more if it is there), remove a
    line, fill in a past customer, or clear a typed fee. (fields, customer picked)"""
    data = MultiDict(form_data)
    match = OP.fullmatch(op or "")
    if match is None:
        return data, False
    lines = []
    for i in range(MAX_LINES):
        if f"lines-{i}-variant_id" not in data and f"lines-{i}-quantity" not in data:
            continue
        lines.append([data.pop(f"lines-{i}-variant_id", ""), data.pop(f"lines-{i}-quantity", "")])
    picked = False
    verb, target = match[1], match[2]
    if verb == "add":
        for line in lines:
            if line[0].strip() == target:
                qty = line[1].strip()
                if qty.isdigit() and int(qty) < MAX_QUANTITY:
                    line[1] = str(int(qty) + 1)
                break
        else:
            if len(lines) < MAX_LINES:
                lines.append([target, "1"])
    elif verb == "remove" and int(target) < len(lines):
        del lines[int(target)]
    elif verb == "customer":
        details = details_from_order(int(target))
        if details is not None:
            for name, value in (("customer_name", details.name), ("phone", details.phone),
                                ("email", details.email), ("address", details.address)):
                data[name] = value
            data["lookup"] = ""
            picked = True
    elif op == "clear_fee":
        data["shipping_fee"] = ""
    for i, (vid, qty) in enumerate(lines):
        data[f"lines-{i}-variant_id"], data[f"lines-{i}-quantity"] = vid, qty
    return data, picked


@bp.get("/")
def index():
    """Every draft not yet confirmed by its customer, newest first."""
    return render("drafts/list.html", drafts=actions.list_drafts(), delete_form=DeleteForm())


@bp.get("/new")
def new():
    """An empty draft builder (``q`` / ``lookup``: a search already typed)."""
    form = DraftForm(formdata=None, data={"q": request.args.get("q", "")[:100],
                                          "lookup": request.args.get("lookup", "")[:100]})
    methods = enabled_shipping_methods()
    form.shipping_method.data = methods[0].id if methods else None  # what the select shows
    return _page(form)


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
        # Blank unless the merchant typed a fee: blank follows the chosen method.
        "shipping_fee": "" if data.shipping_fee_cents is None
        else cents_to_input(data.shipping_fee_cents),
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


@bp.get("/search")
def search():
    """Items on sale matching a name, SKU or barcode, each with "Add" (htmx: the
    results only; without JavaScript the builder's refresh answers the search)."""
    q = request.args.get("q", "").strip()[:100]
    if not is_htmx():
        return redirect(url_for("drafts.new", q=q))
    return render(BUILDER, block="search_results", q=q,
                  results=sellable_variants(q, limit=SEARCH_RESULTS))


@bp.get("/customers")
def customers():
    """Past customers matching a name, phone or email, each with "Use"."""
    lookup = request.args.get("lookup", "").strip()[:100]
    if not is_htmx():
        return redirect(url_for("drafts.new", lookup=lookup))
    return render(BUILDER, block="customer_results", lookup=lookup,
                  customers=lookup_customers(lookup))


@bp.post("/preview")
def preview():
    """The running total of the form as typed (domain.drafts.preview_totals); nothing
    is saved."""
    form = _posted_form()
    totals, totals_error = _totals(form)
    if not is_htmx():
        return _page(form)
    return render(BUILDER, block=["totals", "line_totals"], oob=True, form=form, totals=totals,
                  totals_error=totals_error, fees=_method_fees(), rows=_rows(form))


@bp.post("/new/refresh")
@bp.post("/<int:order_id>/refresh")
def refresh(order_id: int | None = None):
    """Add, remove, search, look up or pick a customer: the builder drawn again with
    everything as typed (the no-JavaScript path too). Nothing is saved."""
    draft = _draft_or_redirect(order_id) if order_id is not None else None
    _posted_form()  # CSRF
    data, picked = _with_op(request.form, request.form.get("op", "refresh"))
    return _page(_prepare(DraftForm(formdata=data)), draft, picked=picked)


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
