"""Tracking import (issue 12): reading hostile files, and the preview's row by row plan
for every reason a row is refused. The apply and the jobs are in test_bulk_ship*.py."""

from __future__ import annotations

import io
import zipfile

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select, update

from domain import tracking_import as ti
from domain.actors import Actor
from domain.db import db
from domain.drafts import DraftInput, create_draft
from domain.errors import ValidationError
from domain.models import Order, OrderEvent, ShippingMethod
from domain.orders import CustomerDetails, confirm_payment, reject_order, ship_order

STAFF = Actor("staff", None, "Test")


def xlsx(rows, *, formula_cell=None) -> bytes:
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    if formula_cell:
        sheet[formula_cell] = "=HYPERLINK(\"http://evil\",\"x\")"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def csv_bytes(text: str, encoding="utf-8") -> bytes:
    return text.encode(encoding)


# ------------------------------------------------------------------ parsing


def test_reads_csv_with_english_headers(app):
    data = ti.parse(csv_bytes("Order number,Tracking code\nSD10001,SF123\n"), "t.csv")
    assert [(r.order_number, r.code, r.ship) for r in data.rows] == [("SD10001", "SF123", None)]
    assert data.rows[0].number == 2 and not data.has_ship_column


def test_reads_utf8_bom_and_chinese_headers_and_ship_now(app):
    text = "\ufeff訂單編號,追蹤編號,立即發貨\nSD1,A1,是\nSD2,A2,否\nSD3,A3,\n"
    data = ti.parse(text.encode("utf-8"), "t.csv")
    assert [(r.order_number, r.ship) for r in data.rows] == [("SD1", True), ("SD2", False),
                                                             ("SD3", False)]
    assert data.has_ship_column


def test_reads_big5_csv(app):
    data = ti.parse("訂單編號,運單號\nSD1,順豐 123\n".encode("cp950"), "t.csv")
    assert data.rows[0].code == "順豐 123"


def test_reads_xlsx_with_numeric_cells(app):
    data = ti.parse(xlsx([["order number", "Tracking Code"], [10001, 1234567890123]]), "t.xlsx")
    assert (data.rows[0].order_number, data.rows[0].code) == ("10001", "1234567890123")


@pytest.mark.parametrize("data,name,message", [
    (b"a,b\n", "t.txt", "Upload a .csv or .xlsx"),
    (b"", "t.csv", "The file is empty"),
    (b"PK\x03\x04junk", "t.csv", "Excel workbook, not a CSV"),
    (b"order number,tracking code\n", "t.xlsx", "not an Excel .xlsx"),
    (b"PK\x03\x04not really a zip", "t.xlsx", "could not be read"),
    (b"\x00\x01\x02binary", "t.csv", "not readable CSV"),
    (b"SD1,SF1\nSD2,SF2\n", "t.csv", "The first row must be the header"),
    (b"Tracking code,Order\n", "t.csv", None),  # header only: fine, no rows
    (b"order number,order,tracking code\nSD1,SD1,X\n", "t.csv", "appears twice"),
    (b"\n\n\n", "t.csv", "The file is empty"),
])
def test_hostile_files_are_refused_with_a_reason(app, data, name, message):
    if message is None:
        assert ti.parse(data, name).rows == []
        return
    with pytest.raises(ValidationError) as refused:
        ti.parse(data, name)
    assert message in str(refused.value)


def test_too_big_file_is_refused(app):
    with pytest.raises(ValidationError, match="larger than 5 MB"):
        ti.parse(b"order number,tracking code\n" + b"x" * (5 * 1024 * 1024), "t.csv")


def test_hundred_thousand_rows_are_refused_without_reading_them_all(app):
    body = "order number,tracking code\n" + "".join(f"S{i},C{i}\n" for i in range(100_000))
    with pytest.raises(ValidationError, match="more than 20,000 rows"):
        ti.parse(body.encode(), "t.csv")


def test_zip_bomb_workbook_is_refused(app):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"0" * (70 * 1024 * 1024))
    with pytest.raises(ValidationError, match="too large once opened"):
        ti.parse(out.getvalue(), "t.xlsx")


def test_formulas_are_never_evaluated_and_refuse_their_row(app, make_order):
    order = make_order(payment="credit_card")
    data = ti.parse(xlsx([["Order number", "Tracking code"], [order.number, "ok1"],
                          ["SD2", "x"]], formula_cell="B3"), "t.xlsx")
    assert data.rows[1].problem is not None and "formula" in str(data.rows[1].problem)
    csv_data = ti.parse(f"Order number,Tracking code\n{order.number},=1+1\n".encode(), "t.csv")
    plan = ti.preview(csv_data).rows[0]
    assert plan.action == ti.ERROR and "formula" in str(plan.error)


def test_unreadable_ship_now_refuses_the_row(app):
    data = ti.parse(b"order number,tracking code,ship now\nSD1,X1,maybe\n", "t.csv")
    assert "Ship now must be yes or no" in str(data.rows[0].problem)


# ------------------------------------------------------------------ preview


@pytest.fixture
def orders(app, make_order, make_variant):
    """One order in each state a row can meet."""
    o = {}
    o["processing"] = make_order(payment="credit_card")
    o["coded"] = make_order(payment="credit_card")
    db.session.execute(update(Order).where(Order.id == o["coded"].id).values(tracking_code="HAS1"))
    o["pending"] = make_order(payment="fps")
    o["completed"] = ship_order(make_order(payment="credit_card").id, actor=STAFF,
                                tracking_code="DONE1")
    o["canceled"] = reject_order(make_order(payment="fps").id, "no stock", actor=STAFF)
    o["pickup"] = make_order(payment="credit_card", shipping="pickup", address="")
    o["carrier"] = make_order(payment="credit_card", shipping="logistics")
    db.session.execute(update(Order).where(Order.id == o["carrier"].id).values(
        tracking_code="CARRIER1", tracking_code_by_carrier=True))
    ship = db.session.scalar(select(ShippingMethod).where(ShippingMethod.kind == "delivery"))
    o["draft"] = create_draft(DraftInput(CustomerDetails("草稿客", phone="9123 4567", address="旺角"),
                                         [(make_variant().id, 1)], ship.id), actor=STAFF)
    db.session.commit()
    return o


def plan_of(rows_csv: str, **kw):
    data = ti.parse(("Order number,Tracking code,Ship now\n" + rows_csv).encode(), "t.csv")
    return ti.preview(data, **kw)


def test_preview_classifies_every_row(app, orders):
    o = orders
    preview = plan_of("\n".join([
        f"{o['processing'].number},SF1,no",     # 2 set
        f"{o['coded'].number},HAS1,",           # 3 unchanged: same code
        f"{o['pending'].number},SF3,yes",       # 4 can't ship: pending payment
        f"{o['completed'].number},OTHER,",      # 5 completed: code frozen
        f"{o['completed'].number},DONE1,",      # 6 duplicate row
        f"{o['canceled'].number},SF6,no",       # 7 canceled: frozen
        f"{o['pickup'].number},,yes",           # 8 pickup can't ship
        f"{o['carrier'].number},MINE,no",       # 9 carrier's code locked
        "NOPE999,SF9,no",                       # 10 unknown order
        f"{o['draft'].number},SF10,no",         # 11 a draft
        f"{o['coded'].number.lower()}x,bad code!,no",  # 12 unknown order (checked before the code)
        ",SF12,no",                             # 13 no order number
    ]) + "\n")
    by_row = {p.number: p for p in preview.rows}
    assert by_row[2].action == ti.SET and by_row[2].old_code == ""
    assert by_row[3].action == ti.UNCHANGED
    assert by_row[4].action == ti.ERROR and "Pending payment: it cannot be shipped" in str(by_row[4].error)
    assert "Completed: its tracking code can no longer change" in str(by_row[5].error)
    assert "is also on row 5" in str(by_row[6].error)
    assert "Canceled: its tracking code can no longer change" in str(by_row[7].error)
    assert "Pickup orders are completed" in str(by_row[8].error)
    assert "comes from the carrier" in str(by_row[9].error)
    assert "No order NOPE999" in str(by_row[10].error)
    assert "a draft" in str(by_row[11].error)
    assert "No order" in str(by_row[12].error)
    assert "no order number" in str(by_row[13].error)
    assert preview.counts[ti.ERROR] == 10 and preview.has_changes
    # the preview wrote nothing
    assert db.session.scalar(select(func.count(OrderEvent.id)).where(
        OrderEvent.type.in_(["tracking_code_set", "order_shipped"]))) == 1  # the fixture's ship


def test_malformed_code_on_a_real_order(app, orders):
    plan = plan_of(f"{orders['processing'].number},bad code!,no\n").rows[0]
    assert plan.action == ti.ERROR and "Tracking code may use letters" in str(plan.error)
    long = plan_of(f"{orders['processing'].number},{'A' * 65},no\n").rows[0]
    assert long.action == ti.ERROR


def test_ship_now_kinds(app, orders):
    o = orders
    preview = plan_of(f"{o['processing'].number},SF1,yes\n{o['coded'].number},,yes\n"
                      f"{o['carrier'].number},CARRIER1,yes\n{o['completed'].number},DONE1,yes\n")
    actions = [p.action for p in preview.rows]
    # set+ship; ship keeping its code; a carrier order ships with its own code;
    # already shipped with this code: unchanged (the same file applied again)
    assert actions == [ti.SET_SHIP, ti.SHIP, ti.SHIP, ti.UNCHANGED]


def test_ship_all_ships_rows_with_a_code_and_no_ship_value(app, orders):
    data = ti.parse(f"order number,tracking code\n{orders['processing'].number},SF1\n"
                    f"{orders['coded'].number},\n".encode(), "t.csv")
    assert [p.action for p in ti.preview(data, ship_all=True).rows] == [ti.SET_SHIP, ti.UNCHANGED]
    assert [p.action for p in ti.preview(data).rows] == [ti.SET, ti.UNCHANGED]


def test_confirmed_payment_then_set(app, orders):
    confirm_payment(orders["pending"].id, actor=STAFF)
    assert plan_of(f"{orders['pending'].number},SF3,yes\n").rows[0].action == ti.SET_SHIP
