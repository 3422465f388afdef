"""Payment proofs: recognise, clean, store privately, attach to the order (SPEC §1, §10).

Accepted: JPEG, PNG, HEIC (photos) and PDF, up to 10 MB, recognised by their
content, never by file name or Content-Type. Images are decoded with Pillow
(HEIC through pillow-heif), size-checked against decompression bombs, rotated
upright, and re-encoded from bare pixels, so EXIF (GPS), ICC, text chunks and
anything appended to the file are gone. HEIC becomes JPEG so every browser can
show it. PDFs are checked for a sane structure and stored as they are (never
rendered) and served only as downloads.

Files live under ``UPLOAD_FOLDER/proofs/`` with random names. Nothing is kept
when a file is refused or when the order refuses the proof.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import warnings
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

from flask import current_app
from PIL import Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener
from sqlalchemy import func, select

from domain.actors import Actor
from domain.db import db
from domain.errors import DomainError, InvalidTransition, ValidationError
from domain.i18n import N_
from domain.models import Order, OrderEvent
from domain.orders import EXPIRY_REASON, get_order, upload_proof
from domain.status import OrderStatus

register_heif_opener()

MAX_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a 48 MP phone photo is 8064 x 6048 = 48.8 M; screenshots are far less
Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # above 2x this Pillow refuses to even open
THUMB_SIZE = (360, 360)

ACCEPTED = N_("Upload a photo or screenshot (JPEG, PNG or HEIC) or a PDF.")
# Also what the order page says when the request itself is over the app's limit
# (a message id: fill in ``mb=MAX_MB`` after translating it).
TOO_LARGE = N_("The file is larger than %(mb)d MB.")
MAX_MB = MAX_BYTES // (1024 * 1024)
HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
# Active content: a receipt needs none of it, and refusing it costs nothing.
PDF_ACTIVE = re.compile(rb"/(?:JavaScript|JS|Launch|EmbeddedFiles?|RichMedia|XFA)(?![A-Za-z])")
PDF_OBJECT = re.compile(rb"\d+\s+\d+\s+obj\b")


@dataclass(frozen=True)
class CleanFile:
    kind: str  # jpeg | png | pdf
    data: bytes
    sha256: str  # of the image's pixels (or the PDF's bytes): same picture, same hash
    thumbnail: bytes | None = None

    @property
    def extension(self) -> str:
        return {"jpeg": "jpg", "png": "png", "pdf": "pdf"}[self.kind]


# ------------------------------------------------------------------ recognising


def read_limited(stream: BinaryIO, limit: int = MAX_BYTES) -> bytes:
    """Read the upload, refusing it as soon as it passes ``limit`` bytes."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise ValidationError("The file is larger than %(mb)d MB.", mb=limit // (1024 * 1024))
    if not data:
        raise ValidationError("The file is empty.")
    return data


def sniff(data: bytes) -> str | None:
    """jpeg | png | heif | pdf from the first bytes, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        return "heif"
    if data.startswith(b"%PDF-"):
        return "pdf"
    return None


def _clean_image(data: bytes, kind: str) -> CleanFile:
    formats = {"jpeg": ["JPEG"], "png": ["PNG"], "heif": ["HEIF"]}[kind]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(BytesIO(data), formats=formats) as opened:
                width, height = opened.size
                if width * height > MAX_PIXELS or width < 1 or height < 1:
                    raise Image.DecompressionBombError("too many pixels")
                opened.load()
                image = ImageOps.exif_transpose(opened)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValidationError("The image is too large (%(max)d megapixels at most).",
                              max=MAX_PIXELS // 1_000_000) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ValidationError("The image could not be read; it may be damaged. Upload a photo "
                              "or screenshot (JPEG, PNG or HEIC) or a PDF.") from exc

    keeps_alpha = kind == "png" and (image.mode in ("RGBA", "LA", "PA")
                                     or "transparency" in image.info)
    mode = "L" if image.mode == "L" else ("RGBA" if keeps_alpha else "RGB")
    try:
        if image.mode != mode:
            image = image.convert(mode)
        pixels = image.tobytes()
    except (OSError, ValueError) as exc:
        raise ValidationError("The image could not be read; it may be damaged. Upload a photo "
                              "or screenshot (JPEG, PNG or HEIC) or a PDF.") from exc
    # A new image from bare pixels carries no metadata at all.
    bare = Image.frombytes(mode, image.size, pixels)
    digest = hashlib.sha256(f"{mode}:{bare.width}x{bare.height}:".encode() + pixels).hexdigest()

    out = BytesIO()
    out_kind = "png" if kind == "png" else "jpeg"
    if out_kind == "png":
        bare.save(out, format="PNG", compress_level=6)
    else:
        bare.save(out, format="JPEG", quality=90, optimize=True)

    thumb = bare.convert("RGBA") if keeps_alpha else bare.convert("RGB")
    thumb.thumbnail(THUMB_SIZE)
    if thumb.mode == "RGBA":
        flat = Image.new("RGB", thumb.size, "white")
        flat.paste(thumb, mask=thumb.getchannel("A"))
        thumb = flat
    thumb_out = BytesIO()
    thumb.save(thumb_out, format="JPEG", quality=80)
    return CleanFile(out_kind, out.getvalue(), digest, thumb_out.getvalue())


def _check_pdf(data: bytes) -> CleanFile:
    if not re.match(rb"%PDF-[12]\.\d", data):
        raise ValidationError("The PDF is not valid. Upload a photo or screenshot (JPEG, PNG or "
                              "HEIC) or a PDF.")
    if b"%%EOF" not in data[-2048:] or not PDF_OBJECT.search(data) or \
            not (b"xref" in data or b"/XRef" in data):
        raise ValidationError("The PDF is incomplete or damaged. Upload a photo or screenshot "
                              "(JPEG, PNG or HEIC) or a PDF.")
    if PDF_ACTIVE.search(data):
        raise ValidationError("PDFs with scripts, actions or attached files are not accepted. "
                              "Upload a screenshot or a plain PDF receipt.")
    return CleanFile("pdf", data, hashlib.sha256(data).hexdigest())


def clean_upload(data: bytes) -> CleanFile:
    """The file as Shopdesk will keep it, or ValidationError saying why not."""
    kind = sniff(data)
    if kind is None:
        raise ValidationError("This file type is not accepted. Upload a photo or screenshot "
                              "(JPEG, PNG or HEIC) or a PDF.")
    if kind == "pdf":
        return _check_pdf(data)
    return _clean_image(data, kind)


class DeadlinePassed(InvalidTransition):
    """The proof came after the payment deadline had canceled the order."""


def canceled_for_late_payment(order: Order) -> bool:
    """Canceled because its payment deadline passed (not by the shop)."""
    return order.status == OrderStatus.CANCELED and order.cancel_reason == EXPIRY_REASON


# ------------------------------------------------------------------ storing


def upload_root() -> Path:
    return Path(current_app.config["UPLOAD_FOLDER"])


def thumbnail_path(proof_path: str | None) -> str | None:
    if not proof_path or proof_path.endswith(".pdf"):
        return None
    return proof_path.rsplit(".", 1)[0] + ".thumb.jpg"


def resolve(relative: str | None) -> Path | None:
    """Absolute path of a stored file, or None if it escapes the upload folder."""
    if not relative:
        return None
    root = upload_root().resolve()
    path = (root / relative).resolve()
    return path if path.is_relative_to(root / "proofs") and path.is_file() else None


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def store(clean: CleanFile) -> str:
    """Write the file (and its thumbnail) under a random name; returns its relative path."""
    name = secrets.token_hex(16)
    relative = f"proofs/{name[:2]}/{name}.{clean.extension}"
    path = upload_root() / relative
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write(path, clean.data)
    if clean.thumbnail:
        _write(upload_root() / thumbnail_path(relative), clean.thumbnail)
    return relative


def delete_stored(relative: str | None) -> None:
    for rel in (relative, thumbnail_path(relative)):
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


def proof_download(order: Order, *, thumbnail: bool = False) -> tuple[Path, str, str, bool]:
    """(path, content type, download name, inline?) of the order's proof."""
    relative = thumbnail_path(order.proof_path) if thumbnail else order.proof_path
    path = resolve(relative)
    if path is None:
        raise DomainError("This order has no payment proof.")
    suffix = path.suffix.lower()
    content_type = {".jpg": "image/jpeg", ".png": "image/png", ".pdf": "application/pdf"}[suffix]
    name = f"payment-proof-{order.number}{'-thumb' if thumbnail else ''}{suffix}"
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
