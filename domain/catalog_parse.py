"""Reading a products spreadsheet (SPEC §11): a CSV (UTF-8 or Big5) or .xlsx upload,
within size and row limits, into rows keyed by column (English or Chinese headers).
Nothing is evaluated: openpyxl reads a formula as its text, and domain/catalog_io.py
refuses it unless it is the export's escaped form."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from domain.catalog_export import ESCAPABLE
from domain.errors import ValidationError

_NUMBER = re.compile(r"^[-+]?\d+(\.\d+)?$")  # a number is never a formula
MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 5000
MAX_UNZIPPED = 60 * 1024 * 1024  # an .xlsx that inflates past this is a zip bomb, not a catalogue
MAX_COLUMNS = 40

REQUIRED = ("product", "sku", "price")
# Header names accepted for each column (compared case-insensitively, spaces and
# hyphens read as "_"): the export's English names and the Chinese a merchant types.
HEADER_ALIASES = {
    "product": ("product", "product_name", "產品", "產品名稱", "商品", "商品名稱", "名稱"),
    "variant": ("variant", "款式", "規格", "選項"),
    "sku": ("sku", "貨號", "產品編號"),
    "barcode": ("barcode", "條碼", "條形碼"),
    "price": ("price", "價格", "單價", "售價"),
    "stock": ("stock", "庫存", "存貨"),
    "low_stock": ("low_stock", "low_stock_threshold", "低庫存", "低庫存提示", "低存貨", "庫存警示"),
    "description": ("description", "描述", "說明", "產品描述"),
    "archived": ("archived", "已封存", "封存", "已存檔"),
}


def header_name(column: str, locale: str) -> str:
    """The column's header as a reader of ``locale`` would type it (both are accepted)."""
    aliases = HEADER_ALIASES[column]
    if locale != "en":
        for alias in aliases:
            if not alias.isascii():
                return alias
    return aliases[0]


_HEADER_INDEX = {alias.casefold(): column for column, aliases in HEADER_ALIASES.items()
                 for alias in aliases}

@dataclass
class Row:
    number: int  # the spreadsheet's row number (the header is row 1)
    values: dict[str, str]  # column -> cell text, the export's escape removed
    formulas: set[str] = field(default_factory=set)  # columns holding formula-looking text


@dataclass
class ImportFile:
    filename: str
    columns: list[str]
    rows: list[Row]
    ignored: list[str] = field(default_factory=list)  # header names not understood


# ------------------------------------------------------------------ parse


def parse(data: bytes, filename: str) -> ImportFile:
    """Read an upload into rows, or raise ValidationError saying why the file is refused."""
    table, name = read_table(data, filename)
    return _rows_from(table, name)


def read_table(data: bytes, filename: str):
    """An uploaded .csv or .xlsx as its table of cells, and its name; or ValidationError
    saying why the file is refused (type, empty, size, encoding, zip bomb). Shared by the
    products import and the tracking import (domain/tracking_import.py)."""
    name = (filename or "").strip()
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext not in ("csv", "xlsx"):
        raise ValidationError("Upload a .csv or .xlsx file (Excel: Save As → CSV UTF-8 or "
                              "Excel Workbook).")
    if not data:
        raise ValidationError("The file is empty.")
    if len(data) > MAX_BYTES:
        raise ValidationError("The file is larger than %(mb)s MB; split it into smaller files.",
                              mb=MAX_BYTES // (1024 * 1024))
    return (_csv_table(data) if ext == "csv" else _xlsx_table(data)), name


def _csv_table(data: bytes):
    if data.startswith(b"PK\x03\x04"):
        raise ValidationError("This is an Excel workbook, not a CSV file: upload it with the "
                              ".xlsx name.")
    if b"\x00" in data:
        raise ValidationError("This file is not readable CSV text. Save it as “CSV UTF-8”.")
    text = None
    # UTF-8 (with or without Excel's BOM) first; Big5 (cp950) is what older Excel
    # in Hong Kong writes for “CSV”.
    for encoding in ("utf-8-sig", "cp950"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    if text is None or any(ord(ch) < 32 and ch not in "\t\r\n" for ch in text):
        raise ValidationError("This file is not readable CSV text. Save it as “CSV UTF-8”.")
    try:
        for number, cells in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
            yield number, [(cell, False) for cell in cells[:MAX_COLUMNS]]
    except csv.Error as exc:
        raise ValidationError("This CSV file is malformed: %(error)s", error=str(exc)) from exc


def _xlsx_table(data: bytes):
    from openpyxl import load_workbook

    if not data.startswith(b"PK\x03\x04"):
        raise ValidationError("This is not an Excel .xlsx workbook.")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if sum(info.file_size for info in archive.infolist()) > MAX_UNZIPPED:
                raise ValidationError("This workbook is too large once opened; split it into "
                                      "smaller files.")
        # data_only=False: a formula is read as its text, never as a cached result.
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except ValidationError:
        raise
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        raise ValidationError("This Excel file could not be read. Open it in Excel and save it "
                              "again as .xlsx.") from exc
    try:
        sheet = book.worksheets[0]
        for number, cells in enumerate(sheet.iter_rows(max_col=MAX_COLUMNS), start=1):
            yield number, [(_xlsx_value(cell.value), getattr(cell, "data_type", "") == "f")
                           for cell in cells]
    except ValidationError:
        raise
    except Exception as exc:
        raise ValidationError("This Excel file could not be read. Open it in Excel and save it "
                              "again as .xlsx.") from exc
    finally:
        book.close()


def _xlsx_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return format(Decimal(repr(value)).normalize(), "f")
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


def _header(cells: list[str]) -> tuple[list[str | None], list[str]]:
    columns, ignored, seen = [], [], set()
    for raw in cells:
        key = re.sub(r"[\s\-]+", "_", raw.strip().lstrip("\ufeff")).casefold()
        column = _HEADER_INDEX.get(key)
        if column in seen:
            raise ValidationError("The column %(name)s appears twice in the header row.",
                                  name=raw.strip())
        if column:
            seen.add(column)
        elif raw.strip():
            ignored.append(raw.strip())
        columns.append(column)
    missing = [name for name in REQUIRED if name not in seen]
    if missing:
        raise ValidationError("The first row must be the header, with at least the columns "
                              "product, sku and price (missing: %(missing)s).",
                              missing=", ".join(missing))
    return columns, ignored


def _rows_from(table, filename: str) -> ImportFile:
    header = None
    rows: list[Row] = []
    ignored: list[str] = []
    for number, cells in table:
        if not any(str(text).strip() for text, _ in cells):
            continue
        if header is None:
            header, ignored = _header([text for text, _ in cells])
            continue
        if len(rows) >= MAX_ROWS:
            raise ValidationError("The file has more than %(max)s rows; split it into smaller "
                                  "files.", max=MAX_ROWS)
        row = Row(number, {})
        for column, (text, is_formula) in zip(header, cells, strict=False):
            if column is None:
                continue
            text = str(text)
            if text.startswith("'") and text[1:2] and text[1:].startswith(ESCAPABLE):
                text = text[1:]  # the export's escape: exactly one apostrophe
            elif is_formula or (text.startswith(ESCAPABLE[:4]) and not _NUMBER.match(text)):
                row.formulas.add(column)
            row.values[column] = text
        for column in header:
            if column:
                row.values.setdefault(column, "")
        rows.append(row)
    if header is None:
        raise ValidationError("The file is empty.")
    return ImportFile(filename, [c for c in header if c], rows, ignored)
