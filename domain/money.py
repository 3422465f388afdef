"""Money as integer cents: parsing user input and formatting for display."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from domain.errors import ValidationError
from domain.i18n import L_, Label

CURRENCY_SYMBOLS = {"HKD": "HK$", "USD": "US$", "TWD": "NT$", "SGD": "S$", "MOP": "MOP$",
                    "CNY": "¥", "EUR": "€", "GBP": "£", "JPY": "¥"}
AMOUNT = L_("Amount")  # the default field name in parse_money's refusals
MAX_CENTS = 10**11  # one billion in the store currency: anything above is a typo

_AMOUNT = re.compile(r"^\d{1,12}(\.\d{1,2})?$")


def format_money(cents: int | None, currency: str = "HKD") -> str:
    """12345 -> 'HK$123.45'; negative amounts keep the sign in front.

    Pages format money through Babel in the reader's locale (blueprints/i18n.py
    ``money``); this is the same shape for text made outside a request."""
    if cents is None:
        return ""
    symbol = CURRENCY_SYMBOLS.get(currency, currency)
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(int(cents)), 100)
    return f"{sign}{symbol}{whole:,}.{frac:02d}"


def parse_money(text: str | None, *, field: Label | str = AMOUNT,
                allow_blank: bool = False) -> int:
    """'1,234.5' -> 123450. Refuses negatives, letters and more than 2 decimals.

    ``field`` names the field in the refusal; pass a label (``L_("Discount")``)
    so it is translated with the sentence."""
    field = field if isinstance(field, Label) else Label(field)
    raw = (text or "").strip().replace(",", "")
    for symbol in sorted(CURRENCY_SYMBOLS.values(), key=len, reverse=True):
        if raw.upper().startswith(symbol.upper()):
            raw = raw[len(symbol):].strip()
            break
    if not raw:
        if allow_blank:
            return 0
        raise ValidationError("%(field)s is required.", field=field)
    if not _AMOUNT.match(raw):
        raise ValidationError("%(field)s must be a positive amount like 120 or 99.50.",
                              field=field)
    try:
        cents = int((Decimal(raw) * 100).to_integral_exact())
    except InvalidOperation as exc:  # pragma: no cover - regex already guards
        raise ValidationError("%(field)s is not a valid amount.", field=field) from exc
    if cents > MAX_CENTS:
        raise ValidationError("%(field)s is too large.", field=field)
    return cents


def cents_to_input(cents: int | None) -> str:
    """Cents as the plain text a form field shows: 12050 -> '120.50'."""
    if cents is None:
        return ""
    whole, frac = divmod(int(cents), 100)
    return f"{whole}.{frac:02d}"
