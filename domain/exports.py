"""Orders -> .xlsx, streamed (SPEC §7).

openpyxl's write-only mode writes rows straight to temporary files, and
orders are read in chunks of plain rows (no ORM objects), so memory stays
flat however many orders are exported.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from copy import copy
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font, PatternFill
from sqlalchemy import select

from domain.db import db
from domain.i18n import N_
from domain.models import Order, OrderEvent, OrderLine
from domain.money import CURRENCY_SYMBOLS
from domain.search import SOURCES, OrderQuery
from domain.status import DeliveryStatus, OrderStatus
from domain.store import get_settings

CHUNK = 1000
SYNC_LIMIT = 1000  # larger exports run as a background job
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
FILLS = {"red": "FDECEC", "green": "E6F5EC", "grey": "EEF0F3"}
FONT_COLOURS = {"red": "D93A3A", "green": "1F8A4C", "grey": "6B7280"}

# (header, width). Headers, sheet names and labels in cells are message ids: the
# caller passes ``translate`` for the exporting staff member's language.
ORDER_COLUMNS = [
    (N_("Order number"), 14), (N_("Date"), 17), (N_("Status"), 26), (N_("Customer name"), 22),
    (N_("Phone"), 14), (N_("Email"), 28), (N_("Address"), 40), (N_("Payment method"), 16),
    (N_("Shipping method"), 22), (N_("Delivery status"), 16), (N_("Tracking code"), 18),
    (N_("Subtotal"), 13), (N_("Discount"), 12), (N_("Shipping fee"), 12),
    (N_("Extra charge"), 12), (N_("Total"), 13), (N_("Source"), 13), (N_("Notes"), 40),
]
ITEM_COLUMNS = [(N_("Order number"), 14), (N_("Product"), 30), (N_("Variant"), 16),
                (N_("SKU"), 16), (N_("Barcode"), 16), (N_("Quantity"), 10),
                (N_("Unit price"), 13), (N_("Line total"), 13)]
ORDERS_SHEET, ITEMS_SHEET = N_("Orders"), N_("Items")
DRAFT_STATUS = N_("Draft (unpaid)")


def _identity(text: str) -> str:
    return text


def matching_ids(query: OrderQuery) -> list[int]:
    """Every order id the query matches, in list order (ints: 100k ids is under 1 MB)."""
    return list(db.session.scalars(query.order_ids()))


def export_filename(now: datetime | None = None) -> str:
    """orders-YYYYmmdd-HHMMSS.xlsx, in the store's time zone."""
    now = now or datetime.now(ZoneInfo("UTC"))
    return f"orders-{now.astimezone(ZoneInfo(get_settings().timezone)):%Y%m%d-%H%M%S}.xlsx"


class _Sheet:
    """A write-only sheet with a bold frozen header and set column widths."""

    def __init__(self, workbook: Workbook, title: str, columns, money_format: str,
                 translate: Callable[[str], str]):
        self.ws = workbook.create_sheet(title)
        self.money_format = money_format
        for index, (_header, width) in enumerate(columns):
            self.ws.column_dimensions[_letter(index)].width = width
        self.ws.freeze_panes = "A2"
        bold = Font(bold=True)
        header = []
        for title_, _width in columns:
            cell = WriteOnlyCell(self.ws, value=translate(title_))
            cell.font = bold
            header.append(cell)
        self.ws.append(header)

        # Styles resolved once and copied onto each cell: resolving a number
        # format per cell costs more than writing it.
        self._money_style = self._style_of(money_format)
        self._date_style = self._style_of("yyyy-mm-dd hh:mm")

    def _style_of(self, number_format: str):
        proto = WriteOnlyCell(self.ws, value=0)
        proto.number_format = number_format
        return proto._style

    def text(self, value):
        value = value if value is not None else ""
        if not value.startswith(FORMULA_PREFIXES):
            return value
        # Would be read as a formula (= + - @, or a leading tab/CR): force a text cell.
        cell = WriteOnlyCell(self.ws, value=value)
        cell.data_type = "s"
        return cell

    def money(self, cents: int) -> WriteOnlyCell:
        cell = WriteOnlyCell(self.ws, value=cents / 100)
        cell._style = copy(self._money_style)
        return cell

    def date(self, value: datetime | None) -> WriteOnlyCell:
        cell = WriteOnlyCell(self.ws, value=value)
        cell._style = copy(self._date_style)
        return cell

    def number(self, value: int) -> int:
        return value


def _status_style(sheet: _Sheet, status: OrderStatus):
    """The status colour travels into the export as the cell's fill and font."""
    proto = WriteOnlyCell(sheet.ws, value="")
    proto.fill = PatternFill("solid", fgColor=FILLS[status.colour])
    proto.font = Font(color=FONT_COLOURS[status.colour], bold=True)
    return proto._style


class _Labels:
    """``translate`` with a memo: a label is translated once per export, not per row."""

    def __init__(self, translate: Callable[[str], str]):
        self.translate = translate
        self.seen: dict[str, str] = {}

    def __call__(self, msgid: str) -> str:
        text = self.seen.get(msgid)
        if text is None:
            text = self.seen[msgid] = self.translate(msgid)
        return text

    def method(self, name: str | None) -> str | None:
        """A method's name: a built-in default reads translated, a merchant's own as typed."""
        return self(name) if name else name


def _sheet_title(text: str) -> str:
    return "".join(ch for ch in text if ch not in "[]:*?/\\")[:31] or "Sheet"


def _letter(index: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(index + 1)


def _chunks(ids: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def export_orders(order_ids: Sequence[int], path: str | Path, *,
                  progress: Callable[[int, int], None] | None = None,
                  translate: Callable[[str], str] = _identity) -> int:
    """Write the orders (in the given order) to ``path``; returns how many were written.

    ``translate`` turns a message id into the reader's language (flask_babel's
    gettext under the exporter's locale); headers, sheet names, status, delivery
    and source labels and Shopdesk's built-in method names go through it. The
    merchant's and customers' own text does not (it has no message id)."""
    settings = get_settings()
    zone, utc = ZoneInfo(settings.timezone), ZoneInfo("UTC")
    symbol = CURRENCY_SYMBOLS.get(settings.currency, settings.currency)
    money_format = f'"{symbol}" #,##0.00;-"{symbol}" #,##0.00'
    workbook = Workbook(write_only=True)
    # Sheet titles: at most 31 characters, none of []:*?/\ (Excel's rules).
    orders_sheet = _Sheet(workbook, _sheet_title(translate(ORDERS_SHEET)), ORDER_COLUMNS,
                          money_format, translate)
    items_sheet = _Sheet(workbook, _sheet_title(translate(ITEMS_SHEET)), ITEM_COLUMNS,
                         money_format, translate)
    labels = _Labels(translate)
    status_cells = {s.value: _status_style(orders_sheet, s) for s in OrderStatus}
    total = len(order_ids)
    written = 0
    for chunk in _chunks(order_ids, CHUNK):
        rows = {r.id: r for r in db.session.execute(select(
            Order.id, Order.number, Order.kind, Order.status, Order.placed_at, Order.created_at,
            Order.customer_name, Order.customer_phone, Order.customer_email,
            Order.shipping_address, Order.payment_method_name, Order.shipping_method_name,
            Order.delivery_status, Order.tracking_code, Order.subtotal_cents,
            Order.discount_cents, Order.shipping_fee_cents, Order.extra_charge_cents,
            Order.total_cents, Order.source).where(Order.id.in_(chunk)))}
        lines = defaultdict(list)
        for line in db.session.execute(select(
                OrderLine.order_id, OrderLine.product_name, OrderLine.variant_name,
                OrderLine.sku, OrderLine.barcode, OrderLine.quantity,
                OrderLine.unit_price_cents).where(OrderLine.order_id.in_(chunk))
                .order_by(OrderLine.id)):
            lines[line.order_id].append(line)
        notes = defaultdict(list)
        for event in db.session.execute(select(OrderEvent.order_id, OrderEvent.details).where(
                OrderEvent.order_id.in_(chunk), OrderEvent.type == "note_added")
                .order_by(OrderEvent.id)):
            notes[event.order_id].append(str((event.details or {}).get("text", "")))
        for order_id in chunk:
            row = rows.get(order_id)
            if row is None:  # deleted since the selection was made
                continue
            s = orders_sheet
            when = row.placed_at or row.created_at
            local = (when.replace(tzinfo=utc, microsecond=0).astimezone(zone).replace(tzinfo=None)
                     if when else None)
            if row.status:
                status_cell = WriteOnlyCell(s.ws, value=labels(OrderStatus(row.status).label))
                status_cell._style = copy(status_cells[row.status])
            else:
                status_cell = labels(DRAFT_STATUS)
            s.ws.append([
                s.text(row.number), s.date(local), status_cell, s.text(row.customer_name),
                s.text(row.customer_phone), s.text(row.customer_email),
                s.text(row.shipping_address), s.text(labels.method(row.payment_method_name)),
                s.text(labels.method(row.shipping_method_name)),
                s.text(labels(DeliveryStatus(row.delivery_status).label)), s.text(row.tracking_code),
                s.money(row.subtotal_cents), s.money(row.discount_cents),
                s.money(row.shipping_fee_cents), s.money(row.extra_charge_cents),
                s.money(row.total_cents),
                s.text(labels(SOURCES[row.source]) if row.source in SOURCES else row.source),
                s.text("\n".join(notes.get(order_id, []))),
            ])
            i = items_sheet
            for line in lines.get(order_id, []):
                i.ws.append([
                    i.text(row.number), i.text(line.product_name), i.text(line.variant_name),
                    i.text(line.sku), i.text(line.barcode), i.number(line.quantity),
                    i.money(line.unit_price_cents), i.money(line.unit_price_cents * line.quantity),
                ])
            written += 1
        db.session.expunge_all()
        if progress:
            progress(written, total)
    workbook.save(str(path))
    return written
