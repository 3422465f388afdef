"""Excel export read back with openpyxl: sheets, real dates and numbers, no formulas."""

from __future__ import annotations

from datetime import datetime

from openpyxl import load_workbook

from domain.actors import Actor
from domain.exports import export_orders, matching_ids
from domain.orders import add_note, set_tracking_code
from domain.search import OrderQuery


def test_workbook_shape_types_and_formula_safety(app, tmp_path, make_variant, make_order):
    # given an order whose customer typed formula-looking text
    a = make_variant(name="曲奇禮盒", variant="原味", price_cents=12800, stock=5)
    b = make_variant(name="=HYPERLINK(\"http://x\")", variant="@evil", price_cents=500, stock=5)
    order = make_order(name="=1+1", address="-2+3 旺角", items=[(a.id, 2), (b.id, 1)])
    staff = Actor("staff", 1, "T")
    set_tracking_code(order.id, "SF123", actor=staff)
    add_note(order.id, "+852 call first", actor=staff)
    second = make_order(name="陳大文", payment="credit_card")
    path = tmp_path / "out.xlsx"

    # when
    written = export_orders([order.id, second.id], path)

    # then
    assert written == 2
    wb = load_workbook(path)
    assert wb.sheetnames == ["Orders", "Items"]
    orders, items = wb["Orders"], wb["Items"]
    header = [c.value for c in orders[1]]
    assert header[:3] == ["Order number", "Date", "Status"] and header[-1] == "Notes"
    assert orders.freeze_panes == "A2" and items.freeze_panes == "A2"
    row = {h: c for h, c in zip(header, orders[2], strict=True)}
    assert row["Order number"].value == order.number
    assert isinstance(row["Date"].value, datetime) and row["Date"].is_date
    # shown in Hong Kong time: UTC+8
    assert row["Date"].value.microsecond == 0
    delta = row["Date"].value - order.placed_at.replace(microsecond=0)
    assert round(delta.total_seconds() / 3600) == 8
    assert row["Customer name"].value == "=1+1" and row["Customer name"].data_type == "s"
    assert row["Address"].value == "-2+3 旺角" and row["Address"].data_type == "s"
    assert row["Notes"].value == "+852 call first" and row["Notes"].data_type == "s"
    assert row["Total"].value == order.total_cents / 100
    assert row["Total"].data_type == "n" and "HK$" in row["Total"].number_format
    assert row["Status"].value == "Pending payment"
    assert row["Status"].fill.fgColor.rgb.endswith("FDECEC")  # the status colour travels
    assert row["Tracking code"].value == "SF123"
    assert orders.cell(3, 4).value == "陳大文"
    lines = [[c.value for c in r] for r in items.iter_rows(min_row=2)]
    assert [ln[1] for ln in lines[:2]] == ["曲奇禮盒", '=HYPERLINK("http://x")']
    assert lines[0][5] == 2 and lines[0][6] == 128.0 and lines[0][7] == 256.0
    assert items.cell(3, 2).data_type == "s" and items.cell(3, 3).value == "@evil"
    # no cell anywhere holds a formula
    for sheet in (orders, items):
        for r in sheet.iter_rows():
            assert all(c.data_type != "f" for c in r)


def test_matching_ids_follow_the_query(app, make_order):
    pending = make_order(name="Amy")
    paid = make_order(name="Ben", payment="credit_card")
    assert matching_ids(OrderQuery(status="processing")) == [paid.id]
    assert set(matching_ids(OrderQuery())) == {pending.id, paid.id}
    assert matching_ids(OrderQuery()) == [paid.id, pending.id]  # newest first, as listed


def test_progress_is_reported(app, tmp_path, make_variant, make_order):
    v = make_variant(stock=None)
    ids = [make_order(items=[(v.id, 1)]).id for _ in range(3)]
    seen = []
    export_orders(ids, tmp_path / "p.xlsx", progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (3, 3)
