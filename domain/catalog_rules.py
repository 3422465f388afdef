"""The rules one product or variant field must follow, shared by the product
editor (domain/catalog.py) and the import (domain/catalog_io.py).

Each ``clean_*`` takes what a person typed (or a spreadsheet cell) and returns
the stored value, or raises ValidationError naming the field. Uniqueness of
SKU and barcode across the store is checked by ``find_clashes`` (and enforced
by unique indexes: a race between two saves ends in one refusal, not two
variants with one barcode).
"""

from __future__ import annotations

import re

from sqlalchemy import func, select

from domain.db import db
from domain.errors import ValidationError
from domain.i18n import L_
from domain.inventory import MAX_STOCK
from domain.models import Variant
from domain.money import parse_money

NAME_MAX = 200
VARIANT_NAME_MAX = 120
DESCRIPTION_MAX = 5000
SKU_MAX = 64
BARCODE_MAX = 64
SKU_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
# Spreadsheet programs run a cell that starts with one of these as a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def clean_line(value, field, *, max_len: int, required: bool = False) -> str:
    """One line of text: stripped, no control characters, at most ``max_len``."""
    text = "" if value is None else str(value).strip()
    if required and not text:
        raise ValidationError("%(field)s is required.", field=field)
    if len(text) > max_len:
        raise ValidationError("%(field)s must be at most %(max)s characters.", field=field,
                              max=max_len)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise ValidationError("%(field)s contains invalid characters.", field=field)
    return text


def clean_product_name(value) -> str:
    name = clean_line(value, L_("Product name"), max_len=NAME_MAX, required=True)
    if name.startswith(FORMULA_START[:4]):
        raise ValidationError("%(field)s must not start with =, +, - or @.",
                              field=L_("Product name"))
    return name


def clean_variant_name(value) -> str:
    name = clean_line(value, L_("Variant"), max_len=VARIANT_NAME_MAX)
    if name.startswith(FORMULA_START[:4]):
        raise ValidationError("%(field)s must not start with =, +, - or @.", field=L_("Variant"))
    return name


def clean_description(value) -> str:
    text = "" if value is None else str(value).strip()
    if len(text) > DESCRIPTION_MAX:
        raise ValidationError("%(field)s must be at most %(max)s characters.",
                              field=L_("Description"), max=DESCRIPTION_MAX)
    if any(ord(ch) < 32 and ch not in "\n\r\t" for ch in text):
        raise ValidationError("%(field)s contains invalid characters.", field=L_("Description"))
    return text


def clean_sku(value) -> str:
    """Letters, digits and . _ / -, starting with a letter or digit; stored upper-case
    so "b-001" and "B-001" are one SKU."""
    sku = clean_line(value, L_("SKU"), max_len=SKU_MAX, required=True).upper()
    if not SKU_RE.match(sku):
        raise ValidationError("SKU may hold only letters, digits and . _ / -, and must start "
                              "with a letter or digit.")
    return sku


def gtin_check_digit_ok(digits: str) -> bool:
    """The GS1 check digit of an EAN-8, UPC-A (12), EAN-13 or GTIN-14 code."""
    body, check = digits[:-1], int(digits[-1])
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


def clean_barcode(value) -> str:
    """Empty, or a barcode. A numeric one of 8, 12, 13 or 14 digits must carry a
    valid check digit (EAN-8, UPC-A, EAN-13, GTIN-14); other codes (Code 128 labels
    of the shop's own) are letters, digits and - . / only."""
    code = clean_line(value, L_("Barcode"), max_len=BARCODE_MAX).replace(" ", "")
    if not code:
        return ""
    if code.isdigit() and code.isascii():
        if len(code) not in (8, 12, 13, 14):
            raise ValidationError("A numeric barcode must have 8, 12, 13 or 14 digits "
                                  "(EAN-8, UPC-A, EAN-13 or GTIN-14).")
        if not gtin_check_digit_ok(code):
            raise ValidationError("Barcode %(code)s has a wrong check digit: check the last "
                                  "digit against the label.", code=code)
        return code
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9./-]*", code):
        raise ValidationError("Barcode may hold only letters, digits and - . /")
    return code.upper()


def clean_price(value) -> int:
    return parse_money(None if value is None else str(value), field=L_("Price"))


def clean_stock_field(value) -> int | None:
    """Blank or "unlimited" (any case, 無限) means unlimited; else 0 … MAX_STOCK."""
    text = "" if value is None else str(value).strip()
    if text.lower() in ("", "unlimited", "無限", "无限"):
        return None
    if not re.fullmatch(r"\d{1,9}", text):
        raise ValidationError("Stock must be a whole number of 0 or more, or empty for "
                              "unlimited.")
    number = int(text)
    if number > MAX_STOCK:
        raise ValidationError("Stock must be between 0 and %(max)s.", max=MAX_STOCK)
    return number


def clean_threshold(value) -> int | None:
    """The low-stock warning level: empty for none, else 0 … MAX_STOCK."""
    text = "" if value is None else str(value).strip()
    if not text:
        return None
    if not re.fullmatch(r"\d{1,9}", text) or int(text) > MAX_STOCK:
        raise ValidationError("Low-stock level must be a whole number of 0 or more, or empty "
                              "for no warning.")
    return int(text)


def find_clashes(skus: dict[str, int | None], barcodes: dict[str, int | None]) -> None:
    """Refuse a SKU or barcode another variant already has. Maps each value to the
    id of the variant that may keep it (None for a new variant)."""
    if skus:
        for variant_id, sku in db.session.execute(
                select(Variant.id, Variant.sku).where(func.upper(Variant.sku).in_(list(skus)))):
            if skus.get(sku.upper()) != variant_id:
                raise ValidationError("SKU %(sku)s is already used by another item.", sku=sku)
    wanted = {code: vid for code, vid in barcodes.items() if code}
    if wanted:
        for variant_id, code in db.session.execute(
                select(Variant.id, Variant.barcode).where(Variant.barcode.in_(list(wanted)))):
            if wanted.get(code) != variant_id:
                raise ValidationError("Barcode %(code)s is already used by another item.",
                                      code=code)
