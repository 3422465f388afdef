"""A product's image: upload (re-encoded like proofs), remove. Served by blueprints/media.py.

htmx posts get the widget (templates/products/_image.html) back to swap in
place; plain form posts are redirected to the product's edit page with a flash.
"""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from werkzeug.exceptions import RequestEntityTooLarge

from blueprints.i18n import translate_error
from blueprints.products.routes import bp
from blueprints.rendering import is_htmx
from domain import product_images
from domain.actors import Actor
from domain.db import db
from domain.errors import DomainError, NotFound
from domain.models import Product


class ProductImageForm(FlaskForm):
    image = FileField(_l("Product image"), validators=[FileRequired(_l("Choose an image."))])


class RemoveImageForm(FlaskForm):
    """Only the CSRF token."""


def _product_or_404(product_id: int) -> Product:
    product = db.session.get(Product, product_id)
    if product is None:
        abort(404)
    return product


def _outcome(product_id: int, *, message: str = "", error: str = "", status: int = 200):
    """htmx: the widget again with the message; otherwise back to the edit page."""
    if is_htmx():
        db.session.expire_all()
        product = _product_or_404(product_id)
        html = render_template("products/_image.html", product=product, image_message=message,
                               image_error=error)
        return html, (422 if error else status)
    flash(error or message, "error" if error else "success")
    return redirect(url_for("products.edit", product_id=product_id) + "#product-image")


@bp.post("/<int:product_id>/image")
def upload_image(product_id: int):
    """Store a new image for the product (replacing the old one)."""
    _product_or_404(product_id)
    form = ProductImageForm()
    if not form.validate_on_submit():
        errors = [e for field_errors in form.errors.values() for e in field_errors]
        return _outcome(product_id, error=str(errors[0]) if errors else _("Choose an image."))
    try:
        product_images.set_product_image(product_id, form.image.data.stream,
                                         actor=Actor.staff(current_user))
    except NotFound:
        abort(404)
    except DomainError as exc:
        return _outcome(product_id, error=translate_error(exc))
    return _outcome(product_id, message=_("Image saved."))


@bp.post("/<int:product_id>/image/remove")
def remove_image(product_id: int):
    """Take the product's image away."""
    _product_or_404(product_id)
    if not RemoveImageForm().validate_on_submit():
        abort(400)
    try:
        product_images.remove_product_image(product_id, actor=Actor.staff(current_user))
    except NotFound:
        abort(404)
    return _outcome(product_id, message=_("Image removed."))


@bp.errorhandler(RequestEntityTooLarge)
def image_too_large(exc: RequestEntityTooLarge):
    """An image past the request limit gets the widget's own message, not a bare 413.

    Werkzeug refuses such a request from its Content-Length before reading the body.
    Other products routes (the import) keep the app's 413 page.
    """
    product_id = (request.view_args or {}).get("product_id")
    if request.endpoint != "products.upload_image" or product_id is None:
        handler = current_app.error_handler_spec.get(None, {}).get(413, {}).get(
            RequestEntityTooLarge)
        return handler(exc) if handler else exc
    return _outcome(product_id, error=_("The file is larger than %(mb)d MB.",
                                        mb=product_images.MAX_BYTES // (1024 * 1024)))
