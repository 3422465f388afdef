"""Uploaded files recognised by their content and re-encoded: a leaf every area may use.

Nothing here trusts a file name or a Content-Type. Images are decoded with
Pillow (HEIC through pillow-heif), size-checked against decompression bombs,
rotated upright and re-encoded from bare pixels, so EXIF (GPS), ICC, text
chunks and anything appended to the file (an HTML "polyglot" tail) are gone.
PDFs are only checked for a sane structure (payment proofs keep them as they
are and serve them as downloads); their first page is drawn to a PNG with
pdfium (``pdf_first_page_png``) so the desk can read the amount without
opening the file.

Payment proofs (domain/proofs.py), the store logo (domain/store.py) and
product images (domain/product_images.py) all come through here.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import warnings
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

import pypdfium2 as pdfium
from PIL import Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

from domain.errors import ValidationError
from domain.i18n import N_

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

# The first page of a PDF proof, drawn large enough to read an amount at a glance
# (a photo proof is shown at up to ~1400 px too). PDF points are 1/72 in.
PDF_PREVIEW_LONG_SIDE = 1400  # px; the pixel count is therefore at most 1400 x 1400
PDF_PREVIEW_MAX_SCALE = 4.0  # a tiny till slip (200 pt) is not blown up past 288 dpi
# The PDF spec's own ceiling for a page is 14 400 pt (200 in); anything larger, or a
# sliver narrower than 1 pt, is no receipt: refuse it rather than ask pdfium to draw it.
PDF_MAX_PAGE_POINTS = 14_400.0
PDF_MAX_ASPECT = 40.0  # a long thermal receipt is ~10:1; 40:1 leaves room, a 1 x 14400 sliver does not
# pdfium is one C library with global state and is not thread-safe: a threaded server
# (gunicorn --threads, the dev server) must not render two PDFs at the same time.
_PDFIUM_LOCK = threading.Lock()

PROOF_KINDS = frozenset({"jpeg", "png", "heif", "pdf"})
PILLOW_FORMATS = {"jpeg": ["JPEG"], "png": ["PNG"], "heif": ["HEIF"], "webp": ["WEBP"]}



class UnreadableImage(Exception):
    """Pillow could not decode the file. Not a refusal message of its own: each
    caller turns it into a ValidationError saying which files it takes."""


@dataclass(frozen=True)
class CleanFile:
    kind: str  # jpeg | png | pdf
    data: bytes
    sha256: str  # of the image's pixels (or the PDF's bytes): same picture, same hash
    # A photo's small JPEG; for a PDF, its first page as PNG (None if it can't be drawn).
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
    """jpeg | png | webp | heif | pdf from the first bytes, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        return "heif"
    if data.startswith(b"%PDF-"):
        return "pdf"
    return None


def decode_image(data: bytes, kind: str) -> Image.Image:
    """The decoded, upright picture: ValidationError for a decompression bomb,
    UnreadableImage for a damaged file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(BytesIO(data), formats=PILLOW_FORMATS[kind]) as opened:
                width, height = opened.size
                if width * height > MAX_PIXELS or width < 1 or height < 1:
                    raise Image.DecompressionBombError("too many pixels")
                opened.load()
                return ImageOps.exif_transpose(opened)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValidationError("The image is too large (%(max)d megapixels at most).",
                              max=MAX_PIXELS // 1_000_000) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UnreadableImage(str(exc)) from exc


def bare_pixels(image: Image.Image, kind: str) -> tuple[Image.Image, str]:
    """A new image made from the pixels alone (no metadata at all) and their hash.

    Transparency is kept for PNG and WebP (product cut-outs); everything else is RGB or L.
    """
    keeps_alpha = kind in ("png", "webp") and (image.mode in ("RGBA", "LA", "PA")
                                               or "transparency" in image.info)
    mode = "L" if image.mode == "L" else ("RGBA" if keeps_alpha else "RGB")
    try:
        if image.mode != mode:
            image = image.convert(mode)
        pixels = image.tobytes()
    except (OSError, ValueError) as exc:
        raise UnreadableImage(str(exc)) from exc
    bare = Image.frombytes(mode, image.size, pixels)
    digest = hashlib.sha256(f"{mode}:{bare.width}x{bare.height}:".encode() + pixels).hexdigest()
    return bare, digest


def encode(image: Image.Image, kind: str) -> bytes:
    """PNG (lossless, keeps alpha) or JPEG bytes of ``image``."""
    out = BytesIO()
    if kind == "png":
        image.save(out, format="PNG", compress_level=6)
    else:
        image.convert("L" if image.mode == "L" else "RGB").save(
            out, format="JPEG", quality=90, optimize=True)
    return out.getvalue()


def flat_jpeg_thumbnail(image: Image.Image, box: tuple[int, int], quality: int = 80) -> bytes:
    """A JPEG no larger than ``box``, transparency flattened onto white."""
    thumb = image.convert("RGBA") if image.mode in ("RGBA", "LA", "PA") else image.convert("RGB")
    thumb.thumbnail(box)
    if thumb.mode == "RGBA":
        flat = Image.new("RGB", thumb.size, "white")
        flat.paste(thumb, mask=thumb.getchannel("A"))
        thumb = flat
    out = BytesIO()
    thumb.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def _clean_image(data: bytes, kind: str) -> CleanFile:
    try:
        bare, digest = bare_pixels(decode_image(data, kind), kind)
    except UnreadableImage as exc:
        raise ValidationError("The image could not be read; it may be damaged. Upload a photo "
                              "or screenshot (JPEG, PNG or HEIC) or a PDF.") from exc
    out_kind = "png" if kind == "png" else "jpeg"
    return CleanFile(out_kind, encode(bare, out_kind), digest, flat_jpeg_thumbnail(bare, THUMB_SIZE))


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
    # Drawn now, in the same flow as the check, so the desk never waits for it; a PDF
    # pdfium cannot draw is still a valid proof (the desk then offers the PDF itself).
    return CleanFile("pdf", data, hashlib.sha256(data).hexdigest(), pdf_first_page_png(data))


def pdf_first_page_png(data: bytes) -> bytes | None:
    """The first page of a PDF as PNG bytes (long side ``PDF_PREVIEW_LONG_SIDE``), or
    None when it cannot be drawn: damaged, encrypted, no pages, or an absurd page size.

    Callers show "Preview unavailable — open the PDF" for None, never a broken image.

    Why this is safe to run on a customer's upload, in the web process:
    - pdfium reads only the bytes given here: it has no network stack and is handed
      no file path, so a PDF cannot make it fetch a URL or open a local file; no
      JavaScript runs (we never call ``init_forms``, so there is no form/XFA
      environment) and ``clean_upload`` already refused PDFs with actions or scripts.
    - Only page 1 is loaded; other pages are never parsed beyond the page tree.
    - A timeout cannot be enforced in-process: pdfium is C code that a Python timer or
      signal cannot interrupt mid-call (and a subprocess per preview would cost more
      than the render). The work is bounded by size instead: the file is at
      most ``MAX_BYTES`` (checked before), the page must be at most
      ``PDF_MAX_PAGE_POINTS`` on a side and not an absurd sliver, and the bitmap is
      capped at ``PDF_PREVIEW_LONG_SIDE`` px on its long side whatever the page says.
    """
    if not data.startswith(b"%PDF-"):
        return None
    with _PDFIUM_LOCK:
        pdf = None
        try:
            pdf = pdfium.PdfDocument(data)
            if len(pdf) < 1:
                return None
            page = pdf[0]
            width, height = page.get_size()  # points, after crop box and /Rotate
            long_side, short_side = max(width, height), min(width, height)
            if not (1.0 <= short_side and long_side <= PDF_MAX_PAGE_POINTS) or \
                    long_side / short_side > PDF_MAX_ASPECT:
                return None
            scale = min(PDF_PREVIEW_LONG_SIDE / long_side, PDF_PREVIEW_MAX_SCALE)
            bitmap = page.render(scale=scale, may_draw_forms=False, draw_annots=True,
                                 fill_color=(255, 255, 255, 255), limit_image_cache=True)
            # to_pil() may share the bitmap's buffer: copy the pixels out (as RGB)
            # before the document and its bitmap are freed.
            image = bitmap.to_pil().convert("RGB")
        except (pdfium.PdfiumError, OSError, ValueError, TypeError, MemoryError):
            return None
        finally:
            if pdf is not None:
                pdf.close()
    if image.width < 1 or image.height < 1 or \
            max(image.size) > PDF_PREVIEW_LONG_SIDE + 1:  # rounding; never a bigger bitmap
        return None
    return encode(image, "png")


def clean_upload(data: bytes) -> CleanFile:
    """A payment proof as Shopdesk will keep it, or ValidationError saying why not."""
    kind = sniff(data)
    if kind not in PROOF_KINDS:
        raise ValidationError("This file type is not accepted. Upload a photo or screenshot "
                              "(JPEG, PNG or HEIC) or a PDF.")
    if kind == "pdf":
        return _check_pdf(data)
    return _clean_image(data, kind)


def write_new_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write a stored upload whole or not at all: a ".part" file created exclusively
    (never over another), then renamed into place."""
    tmp = path.with_name(path.name + ".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
