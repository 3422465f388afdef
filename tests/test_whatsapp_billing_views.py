"""Settings → WhatsApp → Billing: the statement page and its .xlsx download."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest

from domain.db import db, write_transaction
from domain.models import OutboxMessage, utcnow
from domain.notify import billing


def _send(order_id=None, kind="order_confirmation", at=None, delivery_status="", error="",
          n=[0]):  # noqa: B006 - a counter for unique event keys
    n[0] += 1
    at = at or utcnow() - timedelta(minutes=1)
    row = OutboxMessage(event_key=f"wa-view:{n[0]}", channel="whatsapp", recipient="+85291234567",
                        audience="customer", kind=kind, order_id=order_id, status="sent",
                        delivery_status=delivery_status, delivery_error=error)
    db.session.add(row)
    db.session.commit()
    with write_transaction():
        assert billing.reserve(row.id, order_id, kind, at)
        billing.accept(row.id, f"wamid.{row.id}", at)
    return row.id


def test_anonymous_goes_to_login(client):
    response = client.get("/settings/whatsapp/billing")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    response = client.get("/settings/whatsapp/billing.xlsx")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_staff_gets_403(staff_client):
    assert staff_client.get("/settings/whatsapp/billing").status_code == 403
    assert staff_client.get("/settings/whatsapp/billing.xlsx").status_code == 403


@pytest.mark.parametrize("htmx", [False, True])
def test_owner_sees_the_current_month_to_date(owner_client, make_order, htmx):
    order = make_order()
    _send(order.id)
    _send(order.id, kind="shipping_status", delivery_status="read")
    _send(order.id, kind="order_cancellation", delivery_status="failed",
          error="<script>alert(1)</script>")
    response = owner_client.get("/settings/whatsapp/billing", htmx=htmx)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert ('id="to-date"' in html) and "to date" in html
    assert 'id="statement-total"' in html and "HK$0.45" in html
    assert html.count("data-charge=") == 3
    assert order.number in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "Download .xlsx" in html and "billing.xlsx?month=" in html
    assert ("<html" in html) is (not htmx)  # htmx gets the statement block only


def test_past_month_has_no_to_date_and_links_between_months(owner_client):
    year, month = billing.local_month()
    prev_year, prev_month = billing.shift_month(year, month, -1)
    start, _end = billing.month_bounds(prev_year, prev_month)
    _send(at=start)  # the first instant of last month, in the store's time zone
    key = f"{prev_year}-{prev_month:02d}"
    html = owner_client.get(f"/settings/whatsapp/billing?month={key}").get_data(as_text=True)
    assert 'id="to-date"' not in html and html.count("data-charge=") == 1
    current = f"{year}-{month:02d}"
    assert f"month={current}" in html  # next month link
    # The current month has no "next month" link (a month that has not started).
    html = owner_client.get(f"/settings/whatsapp/billing?month={current}").get_data(as_text=True)
    nxt = billing.shift_month(year, month, 1)
    assert f"month={nxt[0]}-{nxt[1]:02d}" not in html
    assert html.count("data-charge=") == 0 and 'id="no-messages"' in html


BAD_MONTHS = ["2026-13", "abc", "9999-01", "1999-01", "2026-11" * 200, "<b>x</b>", "2026-00",
              "-1", "２０２６-11", "2026-11\x00"]


@pytest.mark.parametrize("htmx", [False, True])
def test_bad_months_get_a_clear_message(owner_client, htmx):
    for value in BAD_MONTHS:
        response = owner_client.get("/settings/whatsapp/billing",
                                    query_string={"month": value}, htmx=htmx)
        assert response.status_code == 400, value
        html = response.get_data(as_text=True)
        assert 'id="month-error"' in html and "<b>x</b>" not in html
        assert 'id="statement-total"' in html  # the current month is shown instead
        xlsx = owner_client.get("/settings/whatsapp/billing.xlsx", query_string={"month": value})
        assert xlsx.status_code == 400 and xlsx.mimetype == "text/plain"
    html = owner_client.get("/settings/whatsapp/billing?month=2026-13").get_data(as_text=True)
    assert "months run from 01 to 12" in html


def test_bad_page_numbers_fall_back(owner_client):
    _send()
    for page in ("0", "-3", "abc", "9" * 50, "99999"):
        response = owner_client.get(f"/settings/whatsapp/billing?page={page}")
        assert response.status_code == 200
        assert response.get_data(as_text=True).count("data-charge=") == 1


def test_messages_paginated_100_a_page(owner_client):
    at = utcnow() - timedelta(minutes=5)
    for i in range(101):
        _send(at=at + timedelta(seconds=i))
    first = owner_client.get("/settings/whatsapp/billing").get_data(as_text=True)
    assert first.count("data-charge=") == 100 and "page=2" in first
    second = owner_client.get("/settings/whatsapp/billing?page=2").get_data(as_text=True)
    assert second.count("data-charge=") == 1


def test_xlsx_download(owner_client, make_order):
    from openpyxl import load_workbook

    order = make_order()
    _send(order.id)
    year, month = billing.local_month()
    response = owner_client.get(f"/settings/whatsapp/billing.xlsx?month={year}-{month:02d}")
    assert response.status_code == 200
    assert response.mimetype.endswith("spreadsheetml.sheet")
    assert f"whatsapp-statement-{year}-{month:02d}.xlsx" in response.headers["Content-Disposition"]
    book = load_workbook(io.BytesIO(response.data), read_only=True)
    rows = list(book["Messages"].iter_rows(values_only=True))
    assert len(rows) == 2 and rows[1][1] == order.number


def test_page_in_chinese(owner_client):
    _send()
    owner_client.post("/account/language", {"locale": "zh_Hant_HK"})
    html = owner_client.get("/settings/whatsapp/billing").get_data(as_text=True)
    assert "WhatsApp billing" not in html and "Download .xlsx" not in html
    assert "年" in html  # the month title, "2026年11月"
