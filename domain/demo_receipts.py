"""Demo payment receipts: a plausible bank-app screenshot of a transfer (issue 7).

``seed-demo`` gives every demo order that waits for confirmation one of these,
stored exactly like a customer's upload, so the review queue shows real
images that the merchant can check against the order (amount, date, reference
= order number).

Drawing is split for speed: what is the same on every receipt of one bank
(status bar, header, tick, title, labels, footer) is drawn once and cached;
each receipt only adds its own amount, time, payer, reference and transaction
number. Fonts come from fontconfig, preferring a Traditional Chinese (HK) font
so the labels are bilingual as in Hong Kong banking apps; without one the
receipt is English only. Every receipt says at the bottom that it is demo
data, so nobody mistakes it for a real payment.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from io import BytesIO
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from domain.proofs import THUMB_SIZE, CleanFile

SIZE = (600, 900)
# Fictional banks: a demo must not imitate a real bank's app.
BANKS = [("Harbour Bank", "海港銀行", (0, 94, 130)),
         ("Lion Rock Bank", "獅子山銀行", (168, 32, 48)),
         ("Pearl Delta Bank", "珠江銀行", (22, 112, 74)),
         ("Victoria Commercial Bank", "維多利亞商業銀行", (38, 58, 138))]
# (title, Chinese title, prefix of the transaction number) by payment method code.
TITLES = {"fps": ("FPS transfer successful", "轉數快轉賬成功", "FRN"),
          "bank_transfer": ("Transfer successful", "轉賬成功", "TRF"),
          "payme": ("Payment sent", "付款成功", "PM")}
OTHER_TITLE = ("Payment successful", "付款成功", "TXN")
ROWS = [("To", "收款人"), ("From", "付款人"), ("Date", "日期"), ("Reference", "參考編號"),
        ("Transaction no.", "交易編號")]
AMOUNT_TOP = 400
AMOUNT_BOX = (0, AMOUNT_TOP - 6, SIZE[0], AMOUNT_TOP + 72)  # only the amount is drawn here
ROW_TOP, ROW_STEP = 508, 60
INK, GREY, RULE, GREEN = (28, 32, 38), (112, 118, 128), (226, 229, 233), (26, 150, 84)
CJK_FONT_DIRS = [Path("/usr/share/fonts/opentype/noto")]


@dataclass(frozen=True)
class Receipt:
    method_code: str  # fps | bank_transfer | payme | anything else
    method_name: str
    payee: str  # the store's name
    payer: str
    amount: str  # already formatted, e.g. "HK$ 1,234.00"
    paid_at: datetime  # in the store's time zone
    reference: str  # the order number
    seed: str  # makes bank and transaction number the same on every run


# ------------------------------------------------------------------ fonts


def _fc_list(pattern: str) -> list[tuple[str, int, str, str]]:
    try:
        out = subprocess.run(["fc-list", pattern, "-f", "%{file}|%{index}|%{family}|%{style}\n"],
                             capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) == 4 and parts[1].isdigit():
            found.append((parts[0], int(parts[1]), parts[2], parts[3]))
    return found


def _pick(fonts, bold: bool) -> tuple[str, int] | None:
    def score(font):
        _file, _index, family, style = font
        return ("Mono" not in family, " HK" in family, " TC" in family, "Sans" in family,
                ("Bold" in style) == bold, "Regular" in style or "Bold" in style)

    return max(fonts, key=score)[:2] if fonts else None


@lru_cache(maxsize=1)
def font_files() -> tuple[tuple[str, int] | None, tuple[str, int] | None, bool]:
    """(regular, bold, covers Chinese): font files found on this machine."""
    cjk = _fc_list(":lang=zh-hk")
    if not cjk:  # no fontconfig: look where Debian's fonts-noto-cjk puts them
        for folder in CJK_FONT_DIRS:
            for weight in ("Regular", "Bold"):
                path = folder / f"NotoSansCJK-{weight}.ttc"
                if path.is_file():
                    cjk.append((str(path), 4, "Noto Sans CJK HK", weight))
    if cjk:
        return _pick(cjk, False), _pick(cjk, True), True
    latin = [f for f in _fc_list(":lang=en") if f[0].endswith((".ttf", ".otf", ".ttc"))]
    return _pick(latin, False), _pick(latin, True), False


@lru_cache(maxsize=32)
def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    regular, heavy, _cjk = font_files()
    chosen = heavy if bold else regular
    if chosen:
        try:
            return ImageFont.truetype(chosen[0], size, index=chosen[1])
        except OSError:
            pass
    return ImageFont.load_default(size)


def _bilingual(english: str, chinese: str) -> str:
    return f"{english} {chinese}" if font_files()[2] else english


# ------------------------------------------------------------------ drawing


def _centre(draw: ImageDraw.ImageDraw, y: int, text: str, font, fill) -> None:
    width = draw.textlength(text, font=font)
    draw.text(((SIZE[0] - width) / 2, y), text, font=font, fill=fill)


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: float) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


@lru_cache(maxsize=64)
def _template(bank: int, method_code: str, method_name: str, payee: str) -> Image.Image:
    """Everything on the receipt that does not depend on the order."""
    image = Image.new("RGB", SIZE, (244, 245, 247))
    draw = ImageDraw.Draw(image)
    if method_code in ("fps", "bank_transfer"):
        name_en, name_zh, colour = BANKS[bank]
    else:  # a wallet or the store's own method: its name, in no real brand's colours
        name_en, name_zh, colour = method_name, "付款收據", (52, 64, 84)
    title, title_zh, _prefix = TITLES.get(method_code, OTHER_TITLE)
    # Phone status bar and the bank's header.
    draw.rectangle((0, 0, SIZE[0], 140), fill=colour)
    draw.rounded_rectangle((528, 14, 566, 30), radius=4, outline="white", width=2)
    draw.rectangle((532, 18, 556, 26), fill="white")
    draw.rectangle((567, 19, 570, 25), fill="white")
    draw.text((30, 62), _fit(draw, name_en, _font(30, bold=True), 540), font=_font(30, bold=True),
              fill="white")
    if font_files()[2]:
        draw.text((30, 100), name_zh, font=_font(20), fill=(230, 236, 240))
    # The card with the result.
    draw.rounded_rectangle((20, 160, 580, 796), radius=18, fill="white")
    draw.ellipse((252, 186, 348, 282), fill=GREEN)
    draw.line([(276, 236), (293, 253), (325, 218)], fill="white", width=9, joint="curve")
    _centre(draw, 300, title, _font(30, bold=True), INK)
    if font_files()[2]:
        _centre(draw, 342, title_zh, _font(22), GREY)
    else:
        _centre(draw, 342, method_name, _font(22), GREY)
    draw.line((50, 490, 550, 490), fill=RULE, width=2)
    label_font = _font(19)
    for i, (english, chinese) in enumerate(ROWS):
        y = ROW_TOP + i * ROW_STEP
        draw.text((50, y + 3), _bilingual(english, chinese), font=label_font, fill=GREY)
        if i:
            draw.line((50, y - 14, 550, y - 14), fill=RULE, width=1)
    _right(draw, ROW_TOP, payee)
    # "Done" button and the honest footer.
    draw.rounded_rectangle((50, 814, 550, 860), radius=23, outline=colour, width=2)
    _centre(draw, 823, _bilingual("Done", "完成"), _font(22, bold=True), colour)
    _centre(draw, 874, "Demo receipt generated by Shopdesk · not a real payment", _font(13), GREY)
    return image


def _right(draw: ImageDraw.ImageDraw, y: int, text: str, *, bold: bool = False) -> None:
    font = _font(21, bold=bold)
    text = _fit(draw, text, font, 300)
    draw.text((550 - draw.textlength(text, font=font), y), text, font=font, fill=INK)


def _payer(name: str) -> str:
    """Banks show the payer's name; without a Chinese font only a Latin one can be drawn."""
    if font_files()[2] or name.isascii():
        return name
    return "—"


def render(receipt: Receipt) -> Image.Image:
    """The receipt as a phone screenshot of the bank app."""
    rng = random.Random(receipt.seed)
    bank = rng.randrange(len(BANKS))
    prefix = TITLES.get(receipt.method_code, OTHER_TITLE)[2]
    transaction = f"{prefix}{receipt.paid_at:%Y%m%d}{rng.randrange(10**8, 10**9)}"
    image = _template(bank, receipt.method_code, receipt.method_name, receipt.payee).copy()
    draw = ImageDraw.Draw(image)
    draw.text((30, 12), f"{receipt.paid_at:%H:%M}", font=_font(18, bold=True), fill="white")
    _centre(draw, AMOUNT_TOP, receipt.amount, _font(50, bold=True), INK)
    for i, value in enumerate((_payer(receipt.payer), f"{receipt.paid_at:%Y-%m-%d %H:%M}",
                               receipt.reference, transaction), start=1):
        _right(draw, ROW_TOP + i * ROW_STEP, value, bold=i == 3)
    return image


def receipt_file(receipt: Receipt) -> CleanFile:
    """The receipt as the upload pipeline would keep it: a JPEG without metadata, its
    thumbnail, and the hash of its pixels.

    Built directly rather than through ``proofs.clean_upload``, which would decode
    and re-encode each image (about seven times slower); the hash is the one that
    function gives for this file (the demo tests check that), so the reused-proof
    check treats demo receipts like uploads.
    """
    image = render(receipt)
    out = BytesIO()
    image.save(out, format="JPEG", quality=85)
    data = out.getvalue()
    with Image.open(BytesIO(data), formats=["JPEG"]) as decoded:
        pixels = decoded.convert("RGB").tobytes()
        width, height = decoded.size
    digest = hashlib.sha256(f"RGB:{width}x{height}:".encode() + pixels).hexdigest()
    image.thumbnail(THUMB_SIZE, reducing_gap=2.0)  # box-reduce first: 4x faster, looks the same
    thumb = BytesIO()
    image.save(thumb, format="JPEG", quality=80)
    return CleanFile("jpeg", data, digest, thumb.getvalue())
