"""Payment proofs: recognise, clean, store privately, attach to the order (SPEC §1, §10).

Accepted: JPEG, PNG, HEIC (photos) and PDF, up to 10 MB, recognised by their
content, never by file name or Content-Type. Images are decoded with Pillow
(HEIC through pillow-heif), size-checked against decompression bombs, rotated
upright, and re-encoded from bare pixels, so EXIF (GPS), ICC, text chunks and
anything appended to the file are gone. HEIC becomes JPEG so every browser can
show it. PDFs are checked for a sane structure and stored as they are, and
served only as downloads; beside each one its first page is kept as a PNG
(``<name>.page1.png``, drawn by pdfium on upload, or on first request for PDFs
stored before previews existed) so the desk can read the amount at a glance.

Files live under ``UPLOAD_FOLDER/proofs/`` with random names. Nothing is kept
when a file is refused or when the order refuses the proof.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import BinaryIO

from flask import current_app
from sqlalchemy import func, select

from domain.actors import Actor
from domain.db import db
from domain.errors import DomainError, InvalidTransition

# Recognising and re-encoding moved down into domain/images.py (a leaf shared with
# product images and the logo); re-exported here for the existing callers.
from domain.images import (  # noqa: F401
    ACCEPTED,
    HEIF_BRANDS,
    MAX_BYTES,
    MAX_MB,
    MAX_PIXELS,
    PDF_ACTIVE,
    PDF_OBJECT,
    THUMB_SIZE,
    TOO_LARGE,
    CleanFile,
    _check_pdf,
    _clean_image,
    clean_upload,
    pdf_first_page_png,
    read_limited,
    sniff,
    write_new_file,
)
from domain.models import Order, OrderEvent
from domain.orders import EXPIRY_REASON, get_order, upload_proof
from domain.status import OrderStatus


class DeadlinePassed(InvalidTransition):
    """The proof came after the payment deadline had canceled the order."""


def canceled_for_late_payment(order: Order) -> bool:
    """Canceled because its payment deadline passed (not by the shop)."""
    return order.status == OrderStatus.CANCELED and order.cancel_reason == EXPIRY_REASON


# ------------------------------------------------------------------ storing


def upload_root() -> Path:
    return Path(current_app.config["UPLOAD_FOLDER"])


def thumbnail_path(proof_path: str | None) -> str | None:
    """A photo's small JPEG (always written with it: a backup misses it if it is gone)."""
    if not proof_path or proof_path.endswith(".pdf"):
        return None
    return proof_path.rsplit(".", 1)[0] + ".thumb.jpg"


def pdf_preview_path(proof_path: str | None) -> str | None:
    """A PDF's first page as PNG, beside it. Not listed by ``thumbnail_path``: it can
    always be drawn again from the PDF, so a backup without it misses nothing."""
    if not proof_path or not proof_path.endswith(".pdf"):
        return None
    return proof_path.removesuffix(".pdf") + ".page1.png"


def resolve(relative: str | None) -> Path | None:
    """Absolute path of a stored file, or None if it escapes the upload folder."""
    if not relative:
        return None
    root = upload_root().resolve()
    path = (root / relative).resolve()
    return path if path.is_relative_to(root / "proofs") and path.is_file() else None


def _write(path: Path, data: bytes) -> None:
    write_new_file(path, data, 0o600)


def store(clean: CleanFile) -> str:
    """Write the file (and its thumbnail) under a random name; returns its relative path."""
    name = secrets.token_hex(16)
    relative = f"proofs/{name[:2]}/{name}.{clean.extension}"
    path = upload_root() / relative
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write(path, clean.data)
    if clean.thumbnail:
        _write(upload_root() / (thumbnail_path(relative) or pdf_preview_path(relative)),
               clean.thumbnail)
    return relative


def delete_stored(relative: str | None) -> None:
    for rel in (relative, thumbnail_path(relative), pdf_preview_path(relative)):
        path = resolve(rel)
        if path is not None:
            path.unlink(missing_ok=True)


def submit_proof(order_id: int, stream: BinaryIO, *, actor: Actor | None = None) -> Order:
    """Check, clean and store an uploaded proof, then record it on the order.

    Refusals (file or order state) raise a DomainError and leave no file behind.
    Re-uploading while the proof awaits confirmation replaces the old file.
    """
    clean = clean_upload(read_limited(stream))
    relative = store(clean)
    try:
        order, replaced = upload_proof(order_id, path=relative, sha256=clean.sha256, actor=actor)
    except InvalidTransition as exc:
        delete_stored(relative)
        # Lost the race to the deadline (the page was open, the order expired while
        # the file was on its way): say so, not just that this status takes no proof.
        late = get_order(order_id)
        if canceled_for_late_payment(late):
            raise DeadlinePassed(
                "The payment deadline passed before your file arrived, so order %(number)s "
                "was canceled and the file was not kept.", number=late.number) from exc
        raise
    except BaseException:
        delete_stored(relative)
        raise
    if replaced and replaced != relative:
        delete_stored(replaced)
    return order


# ------------------------------------------------------------------ reading


def proof_missing(order: Order) -> bool:
    """The order records a proof whose file is gone (a restore without uploads, a disk
    cleaned by hand): the desk shows a placeholder saying so, never a broken image."""
    return bool(order.proof_path) and resolve(order.proof_path) is None


def pdf_preview(proof_path: str | None) -> Path | None:
    """The stored first-page PNG of a PDF proof, drawn and kept now if it is not there
    yet (PDFs uploaded before previews existed, or restored without them); None for a
    photo, a missing file, or a PDF pdfium cannot draw (the page then offers the PDF)."""
    relative = pdf_preview_path(proof_path)
    if relative is None:
        return None
    if (found := resolve(relative)) is not None:
        return found
    source = resolve(proof_path)
    if source is None:
        return None
    try:
        png = pdf_first_page_png(source.read_bytes())
    except OSError:
        return None
    if png is None:
        return None
    target = source.with_name(Path(relative).name)
    # Two requests may draw the same legacy PDF at once: each writes its own ".part"
    # (skipped by backups) and renames it into place; the same bytes win either way.
    tmp = target.with_name(f"{target.name}.{secrets.token_hex(4)}.part")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(png)
        os.replace(tmp, target)
    except OSError:
        tmp.unlink(missing_ok=True)
        return None
    return resolve(relative)


def pdf_preview_ready(order) -> bool:
    """Whether the desk can show this PDF proof's first page (drawing it if needed)."""
    return pdf_preview(order.proof_path) is not None


def proof_download(order: Order, *, thumbnail: bool = False) -> tuple[Path, str, str, bool]:
    """(path, content type, download name, inline?) of the order's proof.

    The "thumbnail" of a PDF is its first page as PNG (large enough to read an amount);
    none when pdfium cannot draw it (DomainError, like a missing file)."""
    if thumbnail and order.proof_path and order.proof_path.endswith(".pdf"):
        path, label = pdf_preview(order.proof_path), "-page1"
    else:
        relative = thumbnail_path(order.proof_path) if thumbnail else order.proof_path
        path, label = resolve(relative), "-thumb" if thumbnail else ""
    if path is None:
        raise DomainError("This order has no payment proof.")
    suffix = path.suffix.lower()
    content_type = {".jpg": "image/jpeg", ".png": "image/png", ".pdf": "application/pdf"}[suffix]
    name = f"payment-proof-{order.number}{label}{suffix}"
    return path, content_type, name, suffix != ".pdf"


def customer_messages(order: Order) -> dict[str, str]:
    """What the customer should read about their proof: the latest decline reason."""
    event = db.session.scalar(
        select(OrderEvent).where(OrderEvent.order_id == order.id,
                                 OrderEvent.type.in_(("proof_declined", "proof_uploaded")))
        .order_by(OrderEvent.id.desc()).limit(1))
    if event is not None and event.type == "proof_declined" and \
            order.status == "pending_payment":
        return {"declined_reason": event.details.get("reason", "")}
    if canceled_for_late_payment(order):  # the page then says what to do next
        return {"deadline_passed": "yes"}
    return {}


def reused_proof_order_numbers(order: Order) -> list[str]:
    """Numbers of other orders whose proof is the same picture (or the same PDF)."""
    if not order.proof_sha256:
        return []
    return list(db.session.scalars(
        select(Order.number).where(Order.proof_sha256 == order.proof_sha256,
                                   Order.id != order.id).order_by(Order.id)))


def reused_hashes(hashes: list[str]) -> set[str]:
    """Which of these proof hashes appear on more than one order."""
    if not hashes:
        return set()
    rows = db.session.execute(
        select(Order.proof_sha256).where(Order.proof_sha256.in_(set(hashes)))
        .group_by(Order.proof_sha256).having(func.count(Order.id) > 1))
    return {row[0] for row in rows}


def review_queue(limit: int = 500) -> tuple[list[Order], set[str]]:
    """Orders waiting for proof confirmation, oldest proof first, and the reused hashes."""
    orders = list(db.session.scalars(
        select(Order).where(Order.kind == "placed", Order.status == "pending_confirmation")
        .order_by(Order.proof_uploaded_at.asc(), Order.id.asc()).limit(limit)))
    return orders, reused_hashes([o.proof_sha256 for o in orders if o.proof_sha256])


def review_queue_count() -> int:
    """How many orders wait for proof confirmation."""
    return db.session.scalar(select(func.count(Order.id)).where(
        Order.kind == "placed", Order.status == "pending_confirmation")) or 0
