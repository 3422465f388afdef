"""WhatsApp billing (domain/notify/billing.py): price, ledger, cap, statement, .xlsx.

Real SQLite file; the cap race runs 20 threads each in its own app context and write
transaction, and again on the local PostgreSQL when one answers.
"""

from __future__ import annotations

import io
import threading
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from domain.db import db, write_transaction
from domain.errors import ValidationError
from domain.models import OutboxMessage, WhatsAppCharge, WhatsAppConfig, WhatsAppPrice, utcnow
from domain.notify import billing

NOV_NOW = datetime(2026, 11, 20, 4, 0)  # 12:00 HKT


def _config(cap_cents=None):
    row = db.session.get(WhatsAppConfig, 1)
    if row is None:
        row = WhatsAppConfig(id=1)
        db.session.add(row)
    row.monthly_cap_cents = cap_cents
    db.session.commit()


def _message(order_id=None, kind="order_confirmation", status="sent", delivery_status="",
             delivery_error=""):
    row = OutboxMessage(event_key=f"wa:{db.session.scalar(select(func.count(OutboxMessage.id)))}",
                        channel="whatsapp", recipient="+85291234567", audience="customer",
                        kind=kind, order_id=order_id, status=status,
                        delivery_status=delivery_status, delivery_error=delivery_error)
    db.session.add(row)
    db.session.commit()
    return row.id


def _send(kind="order_confirmation", at=NOV_NOW, order_id=None, **kw):
    """Reserve and accept one message at ``at``; its outbox id."""
    mid = _message(order_id, kind, **kw)
    with write_transaction():
        assert billing.reserve(mid, order_id, kind, at)
    with write_transaction():
        billing.accept(mid, f"wamid.{mid}", at)
    return mid


# ------------------------------------------------------------------ price


def test_seeded_price_is_hkd_15_cents(app):
    assert billing.price_at(NOV_NOW) == (15, "HKD")


def test_price_change_applies_from_its_date_and_never_rewrites_rows(app):
    before = _send(at=datetime(2026, 11, 10, 2, 0))
    billing.set_price("0.20", date(2026, 11, 21), actor=None, now=NOV_NOW)
    # The new price starts at midnight HKT on the 21st = 16:00 UTC on the 20th.
    assert billing.price_at(datetime(2026, 11, 20, 15, 59)) == (15, "HKD")
    assert billing.price_at(datetime(2026, 11, 20, 16, 0)) == (20, "HKD")
    after = _send(at=datetime(2026, 11, 22, 2, 0))
    prices = dict(db.session.execute(select(WhatsAppCharge.outbox_message_id,
                                            WhatsAppCharge.price_cents)).all())
    assert prices == {before: 15, after: 20}
    bill = billing.statement(2026, 11, now=NOV_NOW)
    assert bill.total_cents == 35 and bill.total_count == 2


@pytest.mark.parametrize("text", ["0", "0.00", "-1", "abc", "100.01", "=1+1", "", "0.001",
                                  "9" * 40, "1\x00"])
def test_bad_prices_are_refused(app, text):
    with pytest.raises(ValidationError):
        billing.set_price(text, date(2026, 12, 1), now=NOV_NOW)
    assert db.session.scalar(select(func.count(WhatsAppPrice.id))) == 1


def test_price_cannot_start_in_the_past(app):
    with pytest.raises(ValidationError):
        billing.set_price("0.20", date(2026, 11, 19), now=NOV_NOW)
    with pytest.raises(ValidationError):
        billing.set_price("0.20", "not a date", now=NOV_NOW)
    billing.set_price("HK$0.25", "2026-11-20", now=NOV_NOW)  # today is fine
    assert billing.price_at(NOV_NOW + timedelta(minutes=1)) == (25, "HKD")


# ------------------------------------------------------------------ ledger


def test_only_accepted_rows_are_billed(app):
    _config(None)
    billed = _send()
    released = _message()
    held = _message()
    with write_transaction():
        assert billing.reserve(released, None, "order_confirmation", NOV_NOW)
        assert billing.reserve(held, None, "shipping_status", NOV_NOW)
    billing.release(released)
    assert db.session.scalar(select(func.count(WhatsAppCharge.id))) == 2  # billed + held
    billing.release(billed)  # an accepted row is never released
    bill = billing.statement(2026, 11, now=NOV_NOW)
    assert (bill.total_count, bill.total_cents) == (1, 15)
    assert billing.month_to_date_cents(NOV_NOW) == 15
    assert [m.charge_id for m in billing.statement_messages(2026, 11)] == [
        db.session.scalar(select(WhatsAppCharge.id).where(
            WhatsAppCharge.outbox_message_id == billed))]


def test_second_reserve_is_a_noop_and_accept_is_idempotent(app):
    _config(15)  # room for exactly one message
    mid = _message()
    assert billing.reserve(mid, None, "order_confirmation", NOV_NOW)
    assert billing.reserve(mid, None, "order_confirmation", NOV_NOW)  # same message: True
    billing.accept(mid, "wamid.1", NOV_NOW)
    billing.accept(mid, "wamid.1", NOV_NOW + timedelta(hours=1))
    row = db.session.scalars(select(WhatsAppCharge)).one()
    assert (row.state, row.accepted_at, row.provider_message_id) == ("accepted", NOV_NOW, "wamid.1")
    assert not billing.reserve(_message(), None, "order_confirmation", NOV_NOW)  # cap full


def test_cap_counts_reservations_and_releasing_frees_room(app):
    _config(30)
    a, b, c = _message(), _message(), _message()
    assert billing.reserve(a, None, "order_confirmation", NOV_NOW)
    assert billing.reserve(b, None, "order_confirmation", NOV_NOW)
    assert not billing.reserve(c, None, "order_confirmation", NOV_NOW)
    billing.release(b)
    assert billing.reserve(c, None, "order_confirmation", NOV_NOW)
    # Next month starts afresh.
    assert billing.reserve(_message(), None, "order_confirmation", datetime(2026, 12, 5))


def test_month_boundary_in_store_time_zone(app):
    assert billing.month_bounds(2026, 12) == (datetime(2026, 11, 30, 16, 0),
                                              datetime(2026, 12, 31, 16, 0))
    nov = _send(at=datetime(2026, 11, 30, 15, 59))  # 23:59 HKT on 30 Nov
    dec = _send(at=datetime(2026, 11, 30, 16, 0))   # 00:00 HKT on 1 Dec
    assert billing.local_month(datetime(2026, 11, 30, 15, 59)) == (2026, 11)
    assert billing.local_month(datetime(2026, 11, 30, 16, 0)) == (2026, 12)
    assert billing.statement(2026, 11).total_count == 1
    assert billing.statement(2026, 12).total_count == 1
    ids = {m.charge_id for m in billing.statement_messages(2026, 12)}
    assert ids == {db.session.scalar(select(WhatsAppCharge.id).where(
        WhatsAppCharge.outbox_message_id == dec))}
    assert nov != dec
    # The cap counts December's spending only, from 00:00 HKT.
    _config(15)
    assert not billing.reserve(_message(), None, "order_confirmation", datetime(2026, 12, 2))
    assert billing.reserve(_message(), None, "order_confirmation", datetime(2026, 11, 30, 15, 0)) \
        is False  # November already holds 15


def test_statement_totals_per_type_in_type_order(app, make_order):
    order = make_order()
    for kind, n in (("shipping_status", 2), ("order_confirmation", 3), ("zz_other", 1)):
        for _ in range(n):
            _send(kind=kind, order_id=order.id)
    bill = billing.statement(2026, 11, now=NOV_NOW)
    by_kind = {line.kind: (line.count, line.cents) for line in bill.lines}
    assert by_kind["order_confirmation"] == (3, 45)
    assert by_kind["shipping_status"] == (2, 30)
    assert by_kind["zz_other"] == (1, 15)
    assert (bill.total_count, bill.total_cents, bill.currency) == (6, 90, "HKD")
    assert bill.to_date
    assert not billing.statement(2026, 10, now=NOV_NOW).to_date
    kinds = [line.kind for line in bill.lines]
    try:
        from domain.notify.whatsapp import TYPES
    except ImportError:
        assert kinds == sorted(kinds)
    else:
        assert kinds[:len(TYPES)] == list(TYPES) and kinds[-1] == "zz_other"
    messages = billing.statement_messages(2026, 11, limit=4, offset=0)
    assert len(messages) == 4 and {m.order_number for m in messages} == {order.number}
    assert len(billing.statement_messages(2026, 11, limit=4, offset=4)) == 2


def test_statement_messages_carry_the_delivery_result(app):
    _send(delivery_status="read")
    _send(delivery_status="failed", delivery_error="131047 Re-engagement message")
    results = {(m.result, m.delivery_error) for m in billing.statement_messages(2026, 11)}
    assert results == {("Read", ""), ("Failed", "131047 Re-engagement message")}


@pytest.mark.parametrize("value", ["2026-13", "abc", "9999-01", "1999-12", "2026-1",
                                   "2026-11" * 100, "2026-00", "２０２６-11", "2026-11\x00", "2026-11-01"])
def test_parse_month_refuses(app, value):
    with pytest.raises(ValidationError):
        billing.parse_month(value, NOV_NOW)


def test_parse_month(app):
    assert billing.parse_month("", NOV_NOW) == (2026, 11)
    assert billing.parse_month("2026-02", NOV_NOW) == (2026, 2)
    assert billing.shift_month(2026, 12, 1) == (2027, 1)
    assert billing.shift_month(2026, 1, -1) == (2025, 12)


def test_xlsx_opens_and_matches(app, make_order):
    from openpyxl import load_workbook

    order = make_order()
    _send(order_id=order.id)
    _send(kind="shipping_status", order_id=order.id, delivery_status="delivered")
    _send(kind="=HYPERLINK(\"x\")", delivery_error="@SUM(A1)")  # hostile text stays text
    data = billing.statement_xlsx(2026, 11, now=NOV_NOW)
    book = load_workbook(io.BytesIO(data), read_only=True)
    assert book.sheetnames == ["Summary", "Messages"]
    summary = [r for r in book["Summary"].iter_rows(values_only=True)]
    assert summary[0][:2] == ("Month", "2026-11 (to date)")
    total = summary[-1]
    assert total[0] == "Total" and total[1] == 3 and total[2] == pytest.approx(0.45)
    bill = billing.statement(2026, 11, now=NOV_NOW)
    assert len(summary) == 4 + len(bill.lines) + 1
    messages = list(book["Messages"].iter_rows(values_only=True))
    assert messages[0][:5] == ("Time", "Order number", "Message type", "Cost", "Delivery result")
    assert len(messages) == 4
    assert {r[1] for r in messages[1:]} == {order.number, None}  # empty cells read as None
    cells = [c for r in messages[1:] for c in r if isinstance(c, str)]
    assert "'=HYPERLINK(\"x\")" in cells and "'@SUM(A1)" in cells
    assert not any(c.startswith(("=", "@", "+")) for c in cells)
    assert messages[1][0] == datetime(2026, 11, 20, 12, 0)  # local time


def test_xlsx_headers_in_the_readers_language(app):
    from flask_babel import force_locale, gettext
    from openpyxl import load_workbook

    _send()
    with force_locale("zh_Hant_HK"):
        data = billing.statement_xlsx(2026, 11, translate=gettext, now=NOV_NOW)
    book = load_workbook(io.BytesIO(data), read_only=True)
    assert "Summary" not in book.sheetnames and len(book.sheetnames) == 2


# ------------------------------------------------------------------ the cap under a race


def _race(app, cap, price, n=20):
    """n threads each reserve one message in their own app context and write transaction."""
    with app.app_context():
        _config(cap)
        ids = [_message() for _ in range(n)]
        db.session.remove()
    barrier = threading.Barrier(n)
    results, errors = [], []

    def worker(mid):
        try:
            with app.app_context():
                barrier.wait()
                with write_transaction():
                    results.append(billing.reserve(mid, None, "order_confirmation", NOV_NOW))
                db.session.remove()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(mid,)) for mid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    with app.app_context():
        held = db.session.scalar(select(func.coalesce(func.sum(WhatsAppCharge.price_cents), 0)))
        count = db.session.scalar(select(func.count(WhatsAppCharge.id)))
        db.session.remove()
    return results, held, count


def test_cap_holds_under_20_concurrent_reservations(app):
    results, held, count = _race(app, cap=100, price=15)
    assert results.count(True) == 100 // 15 == count
    assert held == 90 <= 100


# PostgreSQL: the same race against the local server (tests/test_postgres.py's way in).
pg = pytest.importorskip("test_postgres", reason="tests/test_postgres.py not importable")
pg_app = pg.pg_app


def test_cap_holds_under_20_concurrent_reservations_on_postgres(pg_app):
    app = pg_app
    # pg_app is module scoped and shared: start from an empty ledger.
    db.session.execute(WhatsAppCharge.__table__.delete())
    db.session.commit()
    db.session.remove()
    results, held, count = _race(app, cap=100, price=15)
    assert results.count(True) == 6 == count
    assert held == 90


# ------------------------------------------------------------------ sealed history


def test_statement_reuses_sealed_history_and_sees_every_new_row(app):
    """The statement aggregates only what came since its last run plus the open
    window; accept() into the sealed past drops the copy, so totals stay right."""
    from sqlalchemy import event

    _send(at=datetime(2026, 11, 3, 1, 0))
    assert billing.statement(2026, 11).total_count == 1  # seals November (it is past)
    ranges = []

    @event.listens_for(db.engine, "before_cursor_execute")
    def watch(conn, cursor, statement, params, context, executemany):
        if "GROUP BY whatsapp_charge.kind" in statement:
            ranges.append(params)

    try:
        assert billing.statement(2026, 11).total_count == 1
        assert ranges == []  # a month over for SEAL is read from the sealed copy alone
        _send(at=datetime(2026, 11, 4, 1, 0))  # accepted "in the past" (a back-fill)
        assert billing.statement(2026, 11).total_count == 2
        assert billing.statement(2026, 11, cache=False).total_count == 2
    finally:
        event.remove(db.engine, "before_cursor_execute", watch)
    # The current month: a row accepted now falls in the open window, always read.
    now = utcnow()
    year, month = billing.local_month(now)
    before = billing.statement(year, month).total_count
    _send(at=now)
    ranges.clear()
    event.listen(db.engine, "before_cursor_execute", watch)
    try:
        assert billing.statement(year, month).total_count == before + 1
    finally:
        event.remove(db.engine, "before_cursor_execute", watch)
    assert 1 <= len(ranges) <= 2  # since the last statement, and the open window
    low = min(v for params in ranges for v in (params if isinstance(params, tuple)
                                                 else params.values())
              if isinstance(v, str) and v[:4].isdigit())
    assert low >= str(now - billing.SEAL - timedelta(seconds=5))  # not from the 1st
