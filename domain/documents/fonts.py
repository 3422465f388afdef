"""The papers' font: Noto Sans HK, one face for Latin and Chinese text alike.

xhtml2pdf draws with ReportLab, which embeds only TrueType outlines (Debian's Noto
CJK files are CFF and cannot be used). ``make setup`` copies the TrueType files of
the npm package @expo-google-fonts/noto-sans-hk (package.json) into
static/vendor/fonts/, which is never committed.

Registering a 7 MB CJK face parses the whole file (about 70 ms a weight), so it is
done once per process, lazily, and a forked worker inherits it. The face is added
to xhtml2pdf's table of known families, so documents name it in their CSS and no
@font-face has to be fetched (and allowed past the link callback) on every render.
ReportLab embeds only the glyphs a document uses (a subset).
"""

from __future__ import annotations

import threading
from pathlib import Path

FAMILY = "NotoSansHK"
REGULAR = "NotoSansHK"
BOLD = "NotoSansHK-Bold"

_ROOT = Path(__file__).resolve().parents[2]
# Where `make setup` puts the files, then the npm package itself (a checkout that ran
# `npm install` but not the copy step).
_CANDIDATES = (
    (_ROOT / "static/vendor/fonts/NotoSansHK-Regular.ttf",
     _ROOT / "static/vendor/fonts/NotoSansHK-Bold.ttf"),
    (_ROOT / "node_modules/@expo-google-fonts/noto-sans-hk/400Regular/NotoSansHK_400Regular.ttf",
     _ROOT / "node_modules/@expo-google-fonts/noto-sans-hk/700Bold/NotoSansHK_700Bold.ttf"),
)

_lock = threading.Lock()
_registered = False


class FontMissing(RuntimeError):
    """The CJK font was not installed: run `make setup`."""


def font_files() -> tuple[Path, Path]:
    """(regular, bold) TrueType files, or FontMissing saying how to install them."""
    for regular, bold in _CANDIDATES:
        if regular.is_file() and bold.is_file():
            return regular, bold
    raise FontMissing("The papers' CJK font (Noto Sans HK) is not installed: run `make setup`, "
                      f"which copies it from npm into {_CANDIDATES[0][0].parent}.")


def ensure_fonts() -> str:
    """Register the face with ReportLab and xhtml2pdf once per process; returns the
    CSS family name to use."""
    global _registered
    if _registered:
        return FAMILY
    with _lock:
        if _registered:
            return FAMILY
        from reportlab.lib.fonts import addMapping
        from reportlab.pdfbase import pdfmetrics
        from reportlab.pdfbase.ttfonts import TTFont
        from xhtml2pdf import default

        regular, bold = font_files()
        known = set(pdfmetrics.getRegisteredFontNames())
        if REGULAR not in known:
            pdfmetrics.registerFont(TTFont(REGULAR, str(regular)))
        if BOLD not in known:
            pdfmetrics.registerFont(TTFont(BOLD, str(bold)))
        # <b>, <th> and font-weight: bold pick the bold file; there is no italic face,
        # so italic text stays upright rather than falling back to Helvetica.
        for is_bold in (0, 1):
            for is_italic in (0, 1):
                addMapping(REGULAR, is_bold, is_italic, BOLD if is_bold else REGULAR)
        # Every xhtml2pdf document starts from a copy of this table.
        default.DEFAULT_FONT[FAMILY.lower()] = REGULAR
        default.DEFAULT_FONT[BOLD.lower()] = BOLD
        _registered = True
    return FAMILY
