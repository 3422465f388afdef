"""Products import/export (domain/catalog_io.py): parse, preview, apply, export."""

from __future__ import annotations

import io

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from domain import catalog_io as cio
from domain import catalog_parse
from domain.actors import Actor
from domain.db import db
from domain.errors import ValidationError
from domain.inventory import reconcile
from domain.models import Product, StockMove, Variant

ACTOR = Actor("staff", 1, "Olivia Owner")
HEADER = "product,variant,sku,barcode,price,stock,low_stock,description,archived\n"


def csv_file(*lines: str, header: str = HEADER) -> cio.ImportFile:
    return cio.parse((header + "\n".join(lines) + "\n").encode(), "products.csv")


def xlsx_bytes(rows) -> bytes:
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def by_number(preview):
    return {row.number: row for row in preview.rows}


def errors_of(row) -> str:
    return " | ".join(str(e) for e in row.errors)


def moves() -> int:
    return db.session.scalar(select(func.count()).select_from(StockMove))


@pytest.fixture
def catalogue(app):
    """A small store: two products, one archived, with tricky text."""
    cookies = Product(name="曲奇禮盒", description="=not a formula, just text")
    tea = Product(name="Oolong tea", description="", active=False)
    db.session.add_all([cookies, tea])
    db.session.flush()
    db.session.add_all([
        Variant(product_id=cookies.id, name="原味", sku="CK-001", barcode="4006381333931",
                price_cents=12800, stock=10, low_stock_threshold=3),
        Variant(product_id=cookies.id, name="朱古力", sku="CK-002", barcode="",
                price_cents=13850, stock=None),
        Variant(product_id=tea.id, name="", sku="TEA-1", barcode="96385074",
                price_cents=9950, stock=0),
    ])
    db.session.commit()


# ------------------------------------------------------------------ round trip


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_export_reimports_unchanged(catalogue, fmt):
    data = cio.export_csv() if fmt == "csv" else cio.export_xlsx()
    parsed = cio.parse(data, f"export.{fmt}")
    assert [r.values["sku"] for r in parsed.rows] == ["TEA-1", "CK-001", "CK-002"]
    preview = cio.preview(parsed)
    assert [(r.action, r.errors) for r in preview.rows] == [("unchanged", [])] * 3
    before = moves()
    cio.apply(parsed, ACTOR)
    assert moves() == before and reconcile() == []


def test_export_escapes_formula_text(catalogue):
    text = cio.export_csv().decode("utf-8-sig")
    assert text.startswith("product,variant,sku")
    assert "'=not a formula" in text
    assert "unlimited" in text and ",yes" in text
    sheet = load_workbook(io.BytesIO(cio.export_xlsx())).active
    cells = {c.value for row in sheet.iter_rows() for c in row}
    assert "'=not a formula, just text" in cells
    assert all(c.data_type != "f" for row in sheet.iter_rows() for c in row)
    barcode = [row[3].value for row in sheet.iter_rows(min_row=2)]
    assert "96385074" in barcode  # text, not a number


def test_legacy_barcode_round_trips(app, make_variant):
    make_variant()  # the factory's barcodes have no valid check digit
    preview = cio.preview(cio.parse(cio.export_csv(), "x.csv"))
    assert [r.action for r in preview.rows] == ["unchanged"]


def test_export_filename_is_dated(app):
    from datetime import UTC, datetime

    name = cio.export_filename("csv", datetime(2026, 11, 30, 20, 0, tzinfo=UTC))
    assert name == "products-20261201-0400.csv"  # Hong Kong time


# ------------------------------------------------------------------ apply


def test_create_update_and_idempotent(catalogue):
    parsed = csv_file(
        "曲奇禮盒,原味,ck-001,4006381333931,130.00,12,3,=not a formula,no",  # formula: refused
    )
    assert by_number(cio.preview(parsed))[2].action == "error"
    parsed = csv_file(
        '曲奇禮盒,原味,ck-001,4006381333931,130.00,12,3,"\'=not a formula, just text",no',
        "Green tea,100g,GT-100,,88,5,,Fresh,no",
        "Green tea,200g,GT-200,,150,unlimited,,,no",
    )
    preview = cio.preview(parsed)
    rows = by_number(preview)
    assert [rows[n].action for n in (2, 3, 4)] == ["update", "create", "add"], \
        [errors_of(r) for r in preview.rows]
    assert rows[2].changes == ["price", "stock"]
    assert db.session.get(Variant, 1).price_cents == 12800  # preview wrote nothing

    before = moves()
    result = cio.apply(parsed, ACTOR)
    assert result.counts["update"] == 1 and result.counts["create"] == 1
    ck = db.session.scalar(select(Variant).where(Variant.sku == "CK-001"))
    assert (ck.price_cents, ck.stock) == (13000, 12)
    import_moves = db.session.scalars(select(StockMove).where(StockMove.id > 0)
                                      .where(StockMove.reason == "import")).all()
    assert {(m.variant_id, m.delta) for m in import_moves} == {
        (ck.id, 2), (db.session.scalar(select(Variant.id).where(Variant.sku == "GT-100")), 5)}
    assert all(m.actor_label == "Olivia Owner" for m in import_moves)
    assert any(m.note == "products.csv" for m in import_moves)
    green = db.session.scalar(select(Product).where(Product.name == "Green tea"))
    assert [v.sku for v in green.variants] == ["GT-100", "GT-200"]
    assert green.description == "Fresh" and green.variants[1].stock is None
    assert moves() == before + 2

    # The same file again: nothing to do, no ledger rows.
    again = cio.apply(parsed, ACTOR)
    assert {r.action for r in again.rows} == {"unchanged"}
    assert moves() == before + 2
    assert reconcile() == []


def test_archive_rename_and_unlimited(catalogue):
    parsed = csv_file("Oolong tea (loose),,TEA-1,96385074,99.50,,,,no",
                      '曲奇禮盒,原味,CK-001,4006381333931,128,10,3,"\'=not a formula, just text",yes')
    preview = cio.preview(parsed)
    rows = by_number(preview)
    assert rows[2].changes == ["stock", "product", "archived"]
    assert rows[3].changes == ["archived"]
    cio.apply(parsed, ACTOR)
    tea = db.session.scalar(select(Variant).where(Variant.sku == "TEA-1"))
    assert tea.product.name == "Oolong tea (loose)" and tea.product.active
    assert tea.stock is None
    cookies = db.session.scalar(select(Product).where(Product.name == "曲奇禮盒"))
    assert not cookies.active and cookies.archived_at is not None
    assert reconcile() == []


def test_apply_refuses_file_with_errors(catalogue):
    parsed = csv_file("New,,NEW-1,,10,5,,,no", "Bad,,NEW-2,,-3,5,,,no")
    with pytest.raises(ValidationError, match="1 row has an error"):
        cio.apply(parsed, ACTOR)
    assert db.session.scalar(select(Variant).where(Variant.sku == "NEW-1")) is None


def test_barcode_swap_within_file(catalogue):
    parsed = csv_file("曲奇禮盒,原味,CK-001,,128,10,3,,no",
                      "曲奇禮盒,朱古力,CK-002,4006381333931,138.50,,,,no")
    preview = cio.preview(parsed)
    assert not preview.has_errors, [errors_of(r) for r in preview.rows]
    cio.apply(parsed, ACTOR)
    assert db.session.scalar(select(Variant.barcode).where(Variant.sku == "CK-002")) == \
        "4006381333931"


# ------------------------------------------------------------------ malformed rows


def test_malformed_rows_each_say_why(catalogue):
    long_name = "長" * 10_000
    parsed = csv_file(
        "A,,A-1,4006381333932,10,1,,,no",            # 2 bad check digit
        "A,,A-2,,10,1,,,no",                          # 3 fine
        "A,,a-2,,10,1,,,no",                          # 4 duplicate SKU (case-insensitive)
        "B,,B-1,,10,-5,,,no",                         # 5 negative stock
        "=HYPERLINK(\"http://x\"),,B-2,,10,1,,,no",   # 6 formula
        f"{long_name},,B-3,,10,1,,,no",               # 7 10,000-char name
        "C,,C-1,,12.345,1,,,no",                      # 8 price format
        "C,,C-2,96385074,10,1,,,no",                  # 9 barcode of TEA-1 in the store
        "C,,C-3,4006381333931,10,1,,,no",             # 10 barcode of CK-001
        "D,,D-1,50123452,10,1,,,no",                  # 11 fine (valid EAN-8)
        "D,,D-2,50123452,10,1,,,no",                  # 12 same barcode as row 11
        "D,,D-3,,10,1,,,maybe",                       # 13 archived not yes/no
        "D,,D-4,,10,1,,Other text,no",                # 14 description differs from row 11
        ",,D-5,,10,1,,,no",                           # 15 new SKU without product
        "E,,E 1,,10,1,,,no",                          # 16 bad SKU
        "E,,E-2,,,1,,,no",                            # 17 missing price
    )
    rows = by_number(cio.preview(parsed))
    expect = {2: "check digit", 4: "also on row 3", 5: "0 or more", 6: "formula",
              7: "at most 200", 8: "positive amount", 9: "used by SKU TEA-1",
              10: "used by SKU CK-001", 12: "SKU D-1 on row 11", 13: "yes or no",
              14: "differs from row 11", 15: "Product name is required", 16: "SKU may hold",
              17: "Price is required"}
    for number, text in expect.items():
        assert rows[number].action == "error", number
        assert text in errors_of(rows[number]), (number, errors_of(rows[number]))
    assert rows[3].action == "create" and rows[11].action == "create"
    assert rows[11].errors == []


def test_xlsx_formula_cells_are_refused_not_evaluated(app):
    data = xlsx_bytes([list(cio.COLUMNS),
                       ["Tea", "", "T-1", "", "=1+1", 5, None, "", "no"],
                       ["Tea", "", "T-2", "", 12.5, None, None, "'=kept as text", "no"],
                       ["Tea", "", "T-3", "", 12, "unlimited", 2, "=SUM(A1:A2)", "no"]])
    rows = by_number(cio.preview(cio.parse(data, "p.xlsx")))
    assert rows[2].action == "error" and "formula" in errors_of(rows[2])
    assert rows[3].action == "create" and rows[3].clean["description"] == "=kept as text"
    assert rows[3].clean["price"] == 1250
    assert rows[4].action == "error" and "formula" in errors_of(rows[4])


def test_chinese_headers_and_big5(app):
    text = "產品,款式,SKU,條碼,價格,庫存,低庫存,描述,已封存\n烏龍茶,罐裝,OL-1,,45,不限,,香港製造,否\n"
    for encoding in ("utf-8", "utf-8-sig", "cp950"):
        parsed = cio.parse(text.encode(encoding), "茶.csv")
        rows = cio.preview(parsed).rows
        assert rows[0].action == "create", errors_of(rows[0])
        assert rows[0].clean["product"] == "烏龍茶" and rows[0].clean["stock"] is None


def test_optional_columns_leave_fields_alone(catalogue):
    parsed = cio.parse(b"sku,product,price\nCK-001,,128\n", "prices.csv")
    row = cio.preview(parsed).rows[0]
    assert row.action == "unchanged", errors_of(row)
    assert row.clean["product"] == "曲奇禮盒"


@pytest.mark.parametrize("data,name,message", [
    (b"", "p.csv", "empty"),
    (b"\n\n", "p.csv", "empty"),
    (b"a,b\n", "p.txt", ".csv or .xlsx"),
    (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\xff\xff", "p.csv", "not readable CSV"),
    (bytes(range(256)) * 4, "p.csv", "not readable CSV"),
    (b"PK\x03\x04garbage", "p.csv", "Excel workbook"),
    (b"PK\x03\x04garbage", "p.xlsx", "could not be read"),
    (b"product,sku,price\n", "p.xlsx", "not an Excel"),
    (b"name,code\nx,y\n", "p.csv", "missing: product, sku, price"),
    (b"sku,price\nA-1,10\n", "p.csv", "missing: product"),
    (b"product,sku,price,SKU\n", "p.csv", "appears twice"),
    (b"x" * (5 * 1024 * 1024 + 1), "p.csv", "larger than 5 MB"),
])
def test_refused_files(app, data, name, message):
    with pytest.raises(ValidationError, match=message):
        cio.parse(data, name)


def test_row_limit(app):
    data = HEADER + "".join(f"P,,S-{n},,1,,,,no\n" for n in range(5001))
    with pytest.raises(ValidationError, match="more than 5000 rows"):
        cio.parse(data.encode(), "big.csv")


def test_zip_bomb_refused(app, monkeypatch):
    monkeypatch.setattr(catalog_parse, "MAX_UNZIPPED", 1000)  # where the reader checks it
    data = xlsx_bytes([list(cio.COLUMNS)] + [["x" * 50, "", f"S-{n}", "", 1] for n in range(50)])
    with pytest.raises(ValidationError, match="too large once opened"):
        cio.parse(data, "p.xlsx")


def test_a_full_size_file_is_quick(app):
    """5,000 rows: one preview and one apply, then a second apply with nothing to do."""
    import time

    data = HEADER + "".join(f"Product {n // 3},v{n % 3},S-{n:05d},,{n % 90 + 10},{n % 7},2,,no\n"
                            for n in range(5000))
    parsed = cio.parse(data.encode(), "big.csv")
    start = time.monotonic()
    result = cio.apply(parsed, ACTOR)
    assert result.counts["create"] == 1667 and not result.has_errors
    again = cio.preview(parsed)
    assert again.counts["unchanged"] == 5000
    assert time.monotonic() - start < 40  # ~10 s here: one opening ledger INSERT per new variant
    assert reconcile() == []
