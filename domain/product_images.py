"""One optional image per product, shown in the store and beside order lines (SPEC §11).

PNG, JPEG or WebP up to 5 MB, recognised by content (domain/images.py), decoded
and re-encoded from bare pixels, so no EXIF/GPS, colour profile or appended
bytes survive. The picture is shrunk to 1200 px on its longest side, with a
160 px thumbnail beside it. Files live under ``UPLOAD_FOLDER/products/`` with
random names (so they can be cached forever): ``<32 hex>.jpg`` or ``.png`` and
``<32 hex>.thumb.jpg``. ``Product.image_path`` holds ``products/<name>``.

A refused file changes nothing: it is checked before anything is written, and
the old picture is removed only after the new one is recorded.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from flask import current_app
from PIL import Image
from sqlalchemy import select

from domain.actors import Actor
from domain.db import db, write_transaction
from domain.errors import NotFound, ValidationError
from domain.images import (
    UnreadableImage,
    bare_pixels,
    decode_image,
    encode,
    flat_jpeg_thumbnail,
    read_limited,
    sniff,
    write_new_file,
)
from domain.models import Product

MAX_BYTES = 5 * 1024 * 1024
MAX_SIDE = 1200
THUMB_SIDE = 160
KINDS = ("jpeg", "png", "webp")
FOLDER = "products"
# What the media route will serve: exactly the names this module writes.
NAME = re.compile(r"[0-9a-f]{32}(?:\.thumb)?\.(?:jpg|png)")
CONTENT_TYPES = {".jpg": "image/jpeg", ".png": "image/png"}



@dataclass(frozen=True)
class ProductPicture:
    kind: str  # jpeg | png
    data: bytes
    thumbnail: bytes
    width: int
    height: int

    @property
    def extension(self) -> str:
        return "png" if self.kind == "png" else "jpg"


def clean_product_image(data: bytes) -> ProductPicture:
    """The picture as the store will show it, or ValidationError saying why not."""
    kind = sniff(data)
    if kind not in KINDS:
        # HTML, SVG (script inside an image), GIF, PDF, HEIC...: refused by content.
        raise ValidationError("This file is not a PNG, JPEG or WebP image. Upload a PNG, "
                              "JPEG or WebP image, up to 5 MB.")
    try:
        bare, _digest = bare_pixels(decode_image(data, kind), kind)
    except UnreadableImage as exc:
        raise ValidationError("The image could not be read; it may be damaged. Upload a PNG, "
                              "JPEG or WebP image.") from exc
    if max(bare.size) > MAX_SIDE:
        bare.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    # Transparency (a cut-out on no background) needs PNG; everything else is a photo.
    out_kind = "png" if bare.mode in ("RGBA", "LA") else "jpeg"
    return ProductPicture(out_kind, encode(bare, out_kind),
                          flat_jpeg_thumbnail(bare, (THUMB_SIDE, THUMB_SIDE), quality=85),
                          bare.width, bare.height)


# ------------------------------------------------------------------ files


def _root() -> Path:
    return Path(current_app.config["UPLOAD_FOLDER"]) / FOLDER


def thumbnail_name(name: str) -> str:
    """``<hex>.thumb.jpg`` for ``<hex>.jpg|png`` (names only, no folder)."""
    return name.rsplit(".", 1)[0].removesuffix(".thumb") + ".thumb.jpg"


def _name_of(image_path: str | None) -> str | None:
    """The bare file name of a recorded ``products/<name>``, if it is one of ours."""
    if not image_path:
        return None
    folder, _, name = image_path.partition("/")
    return name if folder == FOLDER and NAME.fullmatch(name) else None


def media_file(name: str) -> tuple[Path, str] | None:
    """(absolute path, content type) of a stored picture or thumbnail, or None.

    Only names of the exact stored pattern are looked up, so ``../``, dot files
    and other folders can never be reached.
    """
    if not NAME.fullmatch(name or ""):
        return None
    path = _root() / name
    if not path.is_file():
        return None
    return path, CONTENT_TYPES[path.suffix]


def image_names(product: Product | None) -> tuple[str, str] | None:
    """(picture, thumbnail) names when the product has an image whose files exist.

    A file gone from disk (restored backup, manual clean-up) reads as no image,
    so pages show the placeholder rather than a broken picture.
    """
    name = _name_of(product.image_path if product is not None else None)
    if name is None:
        return None
    thumb = thumbnail_name(name)
    if media_file(name) is None or media_file(thumb) is None:
        return None
    return name, thumb


def thumbnails_for(product_ids) -> dict[int, str]:
    """{product id: thumbnail name} for those of ``product_ids`` with an image on disk.

    One query for all of them (an order's lines), then a file check each.
    """
    ids = {pid for pid in product_ids if pid}
    if not ids:
        return {}
    rows = db.session.execute(select(Product.id, Product.image_path).where(
        Product.id.in_(ids), Product.image_path.is_not(None)))
    found = {}
    for pid, image_path in rows:
        name = _name_of(image_path)
        if name and media_file(thumbnail_name(name)) is not None:
            found[pid] = thumbnail_name(name)
    return found


def _write(path: Path, data: bytes) -> None:
    write_new_file(path, data, 0o644)


def _delete(image_path: str | None) -> None:
    name = _name_of(image_path)
    if name is None:
        return
    for each in (name, thumbnail_name(name)):
        (_root() / each).unlink(missing_ok=True)


# ------------------------------------------------------------------ actions


def set_product_image(product_id: int, stream: BinaryIO, actor: Actor | None = None) -> Product:
    """Check, clean and store an uploaded picture as the product's image.

    Replaces (and deletes) any previous image. Refusals raise ValidationError
    (or NotFound) and leave the product and the disk as they were.
    """
    if db.session.get(Product, product_id) is None:
        raise NotFound("This product does not exist.")
    picture = clean_product_image(read_limited(stream, MAX_BYTES))
    name = f"{secrets.token_hex(16)}.{picture.extension}"
    root = _root()
    root.mkdir(parents=True, exist_ok=True)
    _write(root / name, picture.data)
    _write(root / thumbnail_name(name), picture.thumbnail)
    relative = f"{FOLDER}/{name}"
    try:
        with write_transaction() as session:
            product = session.get(Product, product_id)
            if product is None:
                raise NotFound("This product does not exist.")
            old, product.image_path = product.image_path, relative
    except BaseException:
        _delete(relative)
        raise
    if old != relative:
        _delete(old)
    return product


def remove_product_image(product_id: int, actor: Actor | None = None) -> Product:
    """Take the product's image away (the store shows the placeholder)."""
    with write_transaction() as session:
        product = session.get(Product, product_id)
        if product is None:
            raise NotFound("This product does not exist.")
        old, product.image_path = product.image_path, None
    _delete(old)
    return product
