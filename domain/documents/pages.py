"""What each paper prints, read from the order's stored values (never recomputed):
one plain context per page, for templates/documents/*.html, in the current language
(rendering.py enters the order's language around each call).

Everything here is text for the template to print; the template escapes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from babel.numbers import format_currency
from flask_babel import get_locale, get_translations

from domain.documents.codes import code128_value, qr_value
from domain.documents.figures import payment_state
from domain.documents.picklist import pick_rows
from domain.i18n import DEFAULT_LOCALE, bound_translations
from domain.models import Order, Shipment, StoreSettings
from domain.status import STATUS_LABELS, OrderStatus


def gettext(msgid: str, **variables) -> str:
    """Translate in the current language (the bound translations when rendering)."""
    translations = bound_translations() or get_translations()
    text = translations.ugettext(msgid)
    return text % variables if variables else text


def stored_text(text: str | None) -> str:
    """A stored name that may be a built-in message id ("FPS", "Local delivery"):
    translated when it is one, else as typed. No % formatting: it is user text."""
    return (bound_translations() or get_translations()).ugettext(text) if text else ""


def _locale() -> str:
    return str(get_locale() or DEFAULT_LOCALE)


@lru_cache(maxsize=8192)
def _money(cents: int, currency: str, locale: str) -> str:
    # Cached: the same prices come back on every invoice of a bulk run.
    return format_currency(Decimal(cents) / 100, currency, currency_digits=True, locale=locale)


def money(cents: int | None, currency: str) -> str:
    return _money(int(cents or 0), currency, _locale())


def local_date(value: datetime | None, zone: str) -> str:
    """The day in the store's time zone, as the desk writes it (2026-11-30)."""
    if value is None:
        return ""
    aware = value if value.tzinfo else value.replace(tzinfo=ZoneInfo("UTC"))
    return aware.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class StoreHead:
    """The store as a paper's header prints it."""

    name: str
    address: str
    phone: str
    email: str
    logo: str | None  # an absolute path the link callback allows, or None
    invoice_note: str
    currency: str
    timezone: str


def store_head(settings: StoreSettings, logo: str | None) -> StoreHead:
    return StoreHead(name=settings.name or "", address=settings.address or "",
                     phone=settings.phone or "", email=settings.email or "", logo=logo,
                     invoice_note=getattr(settings, "invoice_note", "") or "",
                     currency=settings.currency or "HKD",
                     timezone=settings.timezone or "Asia/Hong_Kong")


def _status_label(order: Order) -> str:
    if not order.status:
        return gettext("Draft")
    return gettext(STATUS_LABELS[OrderStatus(order.status)])


def _lines(order: Order, currency: str, *, prices: bool) -> list[dict[str, Any]]:
    rows = []
    for line in order.lines:
        row = {"product": line.product_name, "variant": line.variant_name or "",
               "sku": line.sku or "", "quantity": line.quantity}
        if prices:
            row["unit_price"] = money(line.unit_price_cents, currency)
            row["line_total"] = money(line.line_total_cents, currency)
        rows.append(row)
    return rows


def order_page(order: Order, store: StoreHead, *, prices: bool) -> dict[str, Any]:
    """The invoice (prices=True) or the packing list (prices=False) of one order."""
    page: dict[str, Any] = {
        "number": order.number or "",
        "barcode": code128_value(order.number),
        "date": local_date(order.placed_at or order.created_at, store.timezone),
        "status": _status_label(order),
        "payment_method": stored_text(order.payment_method_name),
        "shipping_method": stored_text(order.shipping_method_name),
        "customer_name": order.customer_name or "",
        "customer_phone": order.customer_phone or "",
        "customer_email": order.customer_email or "",
        "address": order.shipping_address or "",
        "pickup": order.shipping_kind == "pickup",
        "tracking_code": order.tracking_code or "",
        "lines": _lines(order, store.currency, prices=prices),
        "item_count": sum(line.quantity for line in order.lines),
        "customer_note": order.customer_note or "",
    }
    if prices:
        c = store.currency
        state = payment_state(order)
        page.update({
            "subtotal": money(order.subtotal_cents, c),
            "discount": money(-order.discount_cents, c) if order.discount_cents else "",
            "shipping_fee": money(order.shipping_fee_cents, c),
            "extra_charge": money(order.extra_charge_cents, c) if order.extra_charge_cents else "",
            "extra_charge_label": order.extra_charge_label or gettext("Extra charge"),
            "total": money(order.total_cents, c),
            "paid": state.paid,
            "amount_due": money(state.due_cents, c),
        })
    return page


def label_page(order: Order, shipment: Shipment, store: StoreHead) -> dict[str, Any]:
    """A 100 × 150 mm shipping label from what the carrier returned (Shipment.label),
    the store and the order standing in for anything the carrier left out."""
    data = shipment.label if isinstance(shipment.label, dict) else {}

    def text(key: str, fallback: str = "") -> str:
        value = data.get(key)
        return str(value) if value not in (None, "") else fallback

    code = shipment.tracking_code or order.tracking_code or ""
    weight = shipment.weight_grams or data.get("weight_grams") or 0
    try:
        weight_text = f"{int(weight) / 1000:.2f} kg" if int(weight) > 0 else ""
    except (TypeError, ValueError):
        weight_text = ""
    return {
        "number": order.number or "",
        "number_barcode": code128_value(order.number),
        "carrier": text("carrier", shipment.carrier),
        "service": text("service"),
        "route": text("route"),
        "test": bool(data.get("test")),
        "sender": text("sender", store.name),
        "sender_phone": text("sender_phone", store.phone),
        "sender_address": text("sender_address", store.address),
        "recipient": text("recipient", order.customer_name or ""),
        "phone": text("phone", order.customer_phone or ""),
        "address": text("address", order.shipping_address or ""),
        "tracking_code": code,
        "tracking_barcode": code128_value(code),
        "qr": qr_value(text("qr", code)),
        "weight": weight_text,
        "item_count": sum(line.quantity for line in order.lines),
    }


def pick_list_page(orders: list[Order], store: StoreHead, now: datetime) -> dict[str, Any]:
    rows = pick_rows(orders)
    return {
        "rows": rows,
        "order_count": len(orders),
        "unit_count": sum(row.quantity for row in rows),
        "date": local_date(now, store.timezone),
        "numbers": [o.number or "" for o in orders],
    }
