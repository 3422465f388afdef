"""The catalogue out to a spreadsheet (SPEC §11): CSV and .xlsx, one row per variant
on sale, archived products included, in the columns domain/catalog_io.py reads back.

Text a spreadsheet would run as a formula (starting with = + - @) is written with
one leading apostrophe; the import removes exactly that escape, so an exported
file re-imports unchanged.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select

from domain import catalog_rules as rules
from domain.db import db
from domain.models import Product, Variant
from domain.money import cents_to_input
from domain.store import get_settings

COLUMNS = ("product", "variant", "sku", "barcode", "price", "stock", "low_stock",
           "description", "archived")
ESCAPABLE = tuple(rules.FORMULA_START) + ("'",)


def _escape(text: str) -> str:
    """Text a spreadsheet would run as a formula gets one leading apostrophe."""
    return "'" + text if text.startswith(ESCAPABLE) else text


def export_rows():
    """Every product (archived too) and its variants on sale, by product name then variant id."""
    query = (select(Product.name, Product.description, Product.active, Variant.name.label("variant"),
                    Variant.sku, Variant.barcode, Variant.price_cents, Variant.stock,
                    Variant.low_stock_threshold)
             .join(Variant, Variant.product_id == Product.id)
             .where(Variant.active.is_(True))
             .order_by(Product.name, Product.id, Variant.id))
    for r in db.session.execute(query):
        yield {"product": r.name, "variant": r.variant, "sku": r.sku, "barcode": r.barcode,
               "price": r.price_cents, "stock": r.stock, "low_stock": r.low_stock_threshold,
               "description": r.description or "", "archived": not r.active}


def _text_cells(row: dict) -> list[str]:
    return [_escape(row["product"]), _escape(row["variant"]), _escape(row["sku"]),
            _escape(row["barcode"]), cents_to_input(row["price"]),
            "unlimited" if row["stock"] is None else str(row["stock"]),
            "" if row["low_stock"] is None else str(row["low_stock"]),
            _escape(row["description"]), "yes" if row["archived"] else "no"]


def export_csv() -> bytes:
    """UTF-8 with a BOM, so Excel reads the Chinese right."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in export_rows():
        writer.writerow(_text_cells(row))
    return out.getvalue().encode("utf-8-sig")


def export_xlsx() -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    book = Workbook(write_only=True)
    sheet = book.create_sheet("Products")
    for letter, width in zip("ABCDEFGHI", (30, 16, 16, 16, 10, 10, 10, 40, 9), strict=True):
        sheet.column_dimensions[letter].width = width
    sheet.freeze_panes = "A2"
    header = []
    for name in COLUMNS:
        cell = WriteOnlyCell(sheet, value=name)
        cell.font = Font(bold=True)
        header.append(cell)
    sheet.append(header)

    def text(value: str) -> WriteOnlyCell:
        cell = WriteOnlyCell(sheet, value=_escape(value))
        cell.data_type = "s"  # barcodes keep leading zeros; nothing is read as a formula
        return cell

    for row in export_rows():
        price = WriteOnlyCell(sheet, value=Decimal(row["price"]) / 100)
        price.number_format = "0.00"
        sheet.append([text(row["product"]), text(row["variant"]), text(row["sku"]),
                      text(row["barcode"]), price,
                      "unlimited" if row["stock"] is None else row["stock"],
                      row["low_stock"], text(row["description"]),
                      "yes" if row["archived"] else "no"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def export_filename(ext: str, now: datetime | None = None) -> str:
    """products-YYYYmmdd-HHMM.<ext>, in the store's time zone."""
    now = now or datetime.now(ZoneInfo("UTC"))
    local = now.astimezone(ZoneInfo(get_settings().timezone))
    return f"products-{local:%Y%m%d-%H%M}.{ext}"
