"""Barcodes on the papers: Code128 for order numbers and tracking codes, a QR code on
the label. Both are drawn by ReportLab's own widgets through xhtml2pdf's
<pdf:barcode> tag (templates/documents/_codes.html): vector bars, nothing fetched.

A value a symbology cannot encode is left out here (the template then prints only
the text), rather than handed to ReportLab, which would log and draw nothing.
"""

from __future__ import annotations

CODE128_MAX = 48  # longer codes are too wide to scan across a 100 mm label
QR_MAX = 300


def code128_value(value: str | None) -> str | None:
    """``value`` if Code128 can carry it (printable ASCII), else None."""
    text = (value or "").strip()
    if not text or len(text) > CODE128_MAX:
        return None
    if not all(32 <= ord(ch) < 127 for ch in text):
        return None
    return text


def qr_value(value: str | None) -> str | None:
    """``value`` if it fits a label's QR code (no control characters), else None."""
    text = (value or "").strip()
    if not text or len(text) > QR_MAX:
        return None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        return None
    return text
