"""Desk → Products: the list, create and edit with variants, archive, stock
adjustments and the ledger (SPEC §11). Rules live in domain/catalog.py and
domain/inventory.py; these views only read forms and render."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from blueprints.i18n import translate_error
from blueprints.products.forms import AdjustForm, ConfirmForm, ProductForm, to_inputs, variant_rows
from blueprints.rendering import is_htmx, render
from domain import catalog, inventory
from domain.actors import Actor
from domain.db import db
from domain.errors import DomainError, NotFound
from domain.money import cents_to_input

bp = Blueprint("products", __name__, url_prefix="/products")
PER_PAGE = 50
LEDGER_LIMIT = 200


@bp.before_request
@login_required
def require_login():
    """Every products page needs a signed-in staff member."""


def _actor() -> Actor:
    return Actor.staff(current_user)


def _product_or_404(product_id: int):
    try:
        return catalog.get_product(product_id)
    except NotFound:
        abort(404)


# ------------------------------------------------------------------ list


@bp.get("/")
def index():
    """The products list: search (name, variant, SKU, barcode; CJK and full-width
    folded like the orders search), archived only with the toggle, 50 a page."""
    q = request.args.get("q", "")[:100].strip()
    archived = request.args.get("archived") == "1"
    low_only = request.args.get("low_stock") == "1"
    page_no = request.args.get("page", "1")
    page_no = int(page_no) if page_no.isdigit() and len(page_no) <= 6 else 1
    page = catalog.search_products(q, include_archived=archived, limit=PER_PAGE,
                                   offset=(page_no - 1) * PER_PAGE, low_stock_only=low_only)
    args = {k: v for k, v in (("q", q), ("archived", "1" if archived else ""),
                              ("low_stock", "1" if low_only else "")) if v}
    context = dict(q=q, archived=archived, low_only=low_only, page=page, page_no=page_no,
                   args=args,
                   low_stock=catalog.low_stock_count())
    headers = {"Cache-Control": "no-store", "Vary": "HX-Request"}
    if is_htmx():
        headers["HX-Push-Url"] = url_for("products.index", **args, **(
            {"page": page_no} if page_no > 1 else {}))
    return render("products/list.html", block="results", **context), headers


# ------------------------------------------------------------------ create / edit


def _rows_from(product) -> list[dict]:
    rows = []
    for i, v in enumerate(v for v in product.variants if v.active):
        rows.append(dict(index=i, id=v.id, name=v.name, sku=v.sku, barcode=v.barcode,
                         price=cents_to_input(v.price_cents),
                         stock="" if v.stock is None else str(v.stock),
                         low_stock_threshold="" if v.low_stock_threshold is None
                         else str(v.low_stock_threshold)))
    return rows


def _editor(product, form, rows, *, errors=None, summary="", status=200):
    tracked = {v.id: v.stock for v in product.variants if v.stock is not None} if product else {}
    for row in rows:
        row["tracked"] = row.get("id") in tracked
    next_index = max((r["index"] for r in rows), default=-1) + 1
    html = render("products/edit.html", block="editor", product=product, form=form, rows=rows,
                  errors=errors or {}, summary=summary, next_index=next_index,
                  confirm=ConfirmForm())
    return html, status


def _save(product):
    form = ProductForm()
    rows = variant_rows(request.form)
    if not form.validate_on_submit():  # only CSRF can fail here: the rules are the domain's
        abort(400)
    try:
        saved = catalog.save_product(product.id if product else None, name=form.name.data,
                                     description=form.description.data or "",
                                     variants=to_inputs(rows), actor=_actor())
    except catalog.ProductInvalid as exc:
        # The domain names rows by position; the page by the index it rendered.
        errors = {}
        for key, err in exc.errors.items():
            parts = key.split("-")
            if len(parts) == 3 and parts[1].isdigit() and int(parts[1]) < len(rows):
                key = f"variants-{rows[int(parts[1])]['index']}-{parts[2]}"
            errors[key] = translate_error(err)
        db.session.rollback()
        return _editor(product, form, rows, errors=errors, summary=translate_error(exc),
                       status=422)
    except NotFound:
        abort(404)
    except DomainError as exc:
        db.session.rollback()
        return _editor(product, form, rows, summary=translate_error(exc), status=422)
    flash(_("Product saved."), "success")
    target = url_for("products.detail", product_id=saved.id)
    if is_htmx():
        return "", 204, {"HX-Redirect": target}
    return redirect(target)


@bp.get("/new")
def new():
    form = ProductForm(formdata=None)
    return _editor(None, form, [dict(index=0, id=None, name="", sku="", barcode="", price="",
                                     stock="", low_stock_threshold="")])


@bp.post("/new")
def create():
    return _save(None)


@bp.get("/<int:product_id>/edit")
def edit(product_id: int):
    product = _product_or_404(product_id)
    form = ProductForm(formdata=None, obj=product)
    return _editor(product, form, _rows_from(product))


@bp.post("/<int:product_id>/edit")
def update(product_id: int):
    return _save(_product_or_404(product_id))


# ------------------------------------------------------------------ product page


def _detail(product, *, blocks="content", forms=None, errors=None, status=200, variant_id=None):
    # Removed variants that still hold units stay visible, so the count can be cleared.
    variants = [v for v in product.variants if v.active or v.stock]
    row = next((v for v in product.variants if v.id == variant_id), None)
    names = {v.id: v.name or product.name for v in product.variants}
    html = render("products/detail.html", block=blocks, product=product, variants=variants,
                  names=names, moves=inventory.ledger([v.id for v in product.variants],
                                                      LEDGER_LIMIT),
                  reasons=inventory.REASONS, forms=forms or {}, errors=errors or {},
                  confirm=ConfirmForm(), oob=is_htmx(), v=row)
    return html, status


@bp.get("/<int:product_id>")
def detail(product_id: int):
    return _detail(_product_or_404(product_id))


@bp.post("/<int:product_id>/variants/<int:variant_id>/adjust")
def adjust(product_id: int, variant_id: int):
    """"+12 received" / "-1 damaged": one ledger row. htmx swaps the variant's row
    and the ledger; without script, a redirect back to the page."""
    product = _product_or_404(product_id)
    if variant_id not in {v.id for v in product.variants}:
        abort(404)
    form = AdjustForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        inventory.adjust_stock(variant_id, form.delta.data or "", note=form.note.data or "",
                               actor=_actor())
    except NotFound:
        abort(404)
    except DomainError as exc:
        db.session.rollback()
        product = _product_or_404(product_id)
        return _detail(product, blocks="variant_row" if is_htmx() else "content",
                       forms={variant_id: form}, errors={variant_id: translate_error(exc)},
                       status=422, variant_id=variant_id)
    db.session.expire_all()
    product = _product_or_404(product_id)
    if is_htmx():
        return _detail(product, blocks=["variant_row", "ledger"], variant_id=variant_id)
    flash(_("Stock updated."), "success")
    return redirect(url_for("products.detail", product_id=product_id))


def _archive(product_id: int, archived: bool):
    _product_or_404(product_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    if archived:
        catalog.archive_product(product_id)
        flash(_("Product archived: it is no longer sold."), "success")
    else:
        catalog.unarchive_product(product_id)
        flash(_("Product is for sale again."), "success")
    target = url_for("products.detail", product_id=product_id)
    if is_htmx():
        return "", 204, {"HX-Redirect": target}
    return redirect(target)


@bp.post("/<int:product_id>/archive")
def archive(product_id: int):
    return _archive(product_id, True)


@bp.post("/<int:product_id>/unarchive")
def unarchive(product_id: int):
    return _archive(product_id, False)


# Routes of the other product pages register on the same blueprint.
from blueprints.products import images, imports  # noqa: E402,F401
