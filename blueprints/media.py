"""Public media: product images shown in the store (no sign-in: customers see them).

Only names of the stored pattern (domain/product_images.py NAME) are looked up, so
no path from the URL ever reaches the file system. Names are random and a new
upload gets a new name, so answers may be cached for a year.
"""

from __future__ import annotations

from flask import Blueprint, abort, send_file, url_for

from domain import product_images

bp = Blueprint("media", __name__, url_prefix="/media")
ONE_YEAR = 365 * 24 * 3600


@bp.get("/products/<name>")
def product_image(name: str):
    """A product's picture or thumbnail, by its random name."""
    found = product_images.media_file(name)
    if found is None:
        abort(404)
    path, content_type = found
    response = send_file(path, mimetype=content_type, max_age=ONE_YEAR, conditional=True,
                         etag=True)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.cache_control.public = True
    response.cache_control.immutable = True
    return response


# Pages only know the product (the storefront and order views are not ours to
# change): these globals answer "which picture, if any" with the files checked,
# so a picture gone from disk shows the placeholder rather than a broken image.
@bp.app_template_global()
def product_image_urls(product) -> dict[str, str] | None:
    """{"image": url, "thumb": url} for the product's image, or None."""
    names = product_images.image_names(product)
    if names is None:
        return None
    return {"image": url_for("media.product_image", name=names[0]),
            "thumb": url_for("media.product_image", name=names[1])}


@bp.app_template_global()
def line_thumbnails(lines) -> dict[int, str]:
    """{product id: thumbnail url} for order lines whose product has an image (one query)."""
    names = product_images.thumbnails_for(line.product_id for line in lines)
    return {pid: url_for("media.product_image", name=name) for pid, name in names.items()}
