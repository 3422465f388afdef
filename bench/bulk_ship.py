"""How long 5,000 parcels take to get their tracking codes from one file and ship.

    .venv/bin/python bench/bulk_ship.py --orders 5000

Builds a fresh SQLite file (real migrations) in a temp folder, inserts N paid
delivery orders (Processing, each with a customer email), writes a tracking
workbook (.xlsx: order number, tracking code, ship now = yes), previews it, then
runs the real import job (jobs.bulk_ship.tracking_import_job through
jobs.queue.run_tracked_job, as the worker does; no Redis needed to call it) that
sets every code and ships every order, outbox rows included. It then checks
every order was shipped exactly once (one order_shipped event and one customer
outbox row each), applies the same file again (must change nothing), and as the
baseline in the same run ships N more orders one by one with
``domain.orders.ship_order`` (one transaction per order). Prints figures; the last
line is one JSON object. Goal on a 2-core machine: N = 5,000 in <= 20 s.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def seed(n: int, first_id: int, shipping_id: int, variant) -> list[int]:
    """N paid delivery orders waiting to ship; returns their ids."""
    from sqlalchemy import insert

    from domain.db import db
    from domain.models import Order, OrderLine, utcnow

    now = utcnow()
    ids = list(range(first_id, first_id + n))
    db.session.execute(insert(Order), [dict(
        id=i, number=f"B{100000 + i}", kind="placed", status="processing",
        source="online_store", public_token=f"bench-{i:08d}", customer_name=f"客戶 {i}",
        customer_phone="9123 4567", customer_email=f"c{i}@example.hk",
        shipping_address="旺角彌敦道 1 號", payment_method_name="Credit Card",
        payment_kind="online", shipping_method_id=shipping_id,
        shipping_method_name="Local delivery", shipping_kind="delivery", subtotal_cents=12800,
        total_cents=12800, paid_cents=12800, placed_at=now, created_at=now, updated_at=now,
        delivery_status="unfulfilled") for i in ids])
    db.session.execute(insert(OrderLine), [dict(
        order_id=i, variant_id=variant.id, product_id=variant.product_id,
        product_name="抹茶曲奇禮盒", variant_name="原味", sku=variant.sku,
        unit_price_cents=12800, quantity=1) for i in ids])
    db.session.commit()
    return ids


def write_workbook(path: Path, ids: list[int]) -> None:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("Orders")
    sheet.append(["Order number", "Tracking code", "Ship now"])
    for i in ids:
        sheet.append([f"B{100000 + i}", f"SF{7000000000 + i}", "yes"])
    book.save(str(path))


def exactly_once(ids: list[int]) -> dict[str, int]:
    """How many of ``ids`` have exactly one shipped event and one customer message,
    and the largest count any order has (1 when nothing was shipped twice)."""
    from sqlalchemy import func, select

    from domain.db import db
    from domain.models import Order, OrderEvent, OutboxMessage

    db.session.rollback()
    events = dict(db.session.execute(
        select(OrderEvent.order_id, func.count()).where(
            OrderEvent.type == "order_shipped", OrderEvent.order_id.in_(ids))
        .group_by(OrderEvent.order_id)).all())
    messages = dict(db.session.execute(
        select(OutboxMessage.order_id, func.count()).where(
            OutboxMessage.kind == "order_shipped", OutboxMessage.audience == "customer",
            OutboxMessage.order_id.in_(ids)).group_by(OutboxMessage.order_id)).all())
    completed = db.session.scalar(select(func.count(Order.id)).where(
        Order.id.in_(ids), Order.status == "completed", Order.delivery_status == "shipped",
        Order.tracking_code != ""))
    return {"completed": completed,
            "one_event": sum(1 for i in ids if events.get(i) == 1),
            "one_message": sum(1 for i in ids if messages.get(i) == 1),
            "max_events": max(events.values(), default=0),
            "max_messages": max(messages.values(), default=0)}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--baseline-orders", type=int, default=None,
                        help="orders shipped one by one for the baseline (default: --orders)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the one-by-one run")
    args = parser.parse_args()

    from flask_migrate import upgrade

    from app import create_app
    from domain import tracking_import
    from domain.actors import Actor
    from domain.bulk_ship import BATCH
    from domain.db import db
    from domain.models import Job, Product, ShippingMethod, Variant, utcnow
    from domain.orders import ship_order
    from domain.store import ensure_store_defaults
    from jobs import queue
    from jobs.bulk_ship import kept_folder, tracking_import_job

    folder = Path(tempfile.mkdtemp(prefix="shopdesk-bench-"))
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'bench.db'}",
                      "SECRET_KEY": "bench", "UPLOAD_FOLDER": str(folder / "uploads"),
                      "GENERATED_FOLDER": str(folder / "generated"), "NOTIFY_DISPATCH": False})
    queue.use_app(app)
    n = args.orders
    with app.app_context():
        upgrade()
        ensure_store_defaults()
        shipping_id = db.session.query(ShippingMethod).filter_by(kind="delivery").first().id
        product = Product(name="抹茶曲奇禮盒")
        db.session.add(product)
        db.session.flush()
        variant = Variant(product_id=product.id, name="原味", sku="B-1", price_cents=12800,
                          stock=None)
        db.session.add(variant)
        db.session.commit()

        started = time.perf_counter()
        ids = seed(n, 1, shipping_id, variant)
        token = "bench" + "x" * 27
        book = kept_folder() / f"{token}.bin"
        write_workbook(book, ids)
        setup_s = time.perf_counter() - started
        print(f"set-up: {n:,} processing delivery orders and a {book.stat().st_size / 1024:,.0f} KB "
              f"tracking workbook in {setup_s:.1f}s", flush=True)

        # Preview: what the page does on upload (parse + plan every row; writes nothing).
        started = time.perf_counter()
        preview = tracking_import.preview(tracking_import.parse(book.read_bytes(), "codes.xlsx"))
        preview_s = time.perf_counter() - started
        print(f"preview: {len(preview.rows):,} rows in {preview_s:.2f}s "
              f"({len(preview.rows) / preview_s:,.0f} rows/s); "
              f"set code and ship: {preview.counts['set_ship']:,}, invalid: {preview.counts['error']}",
              flush=True)

        # The job, exactly as the worker runs it (its Job row goes running -> done).
        job_id = "bench-job-1"
        db.session.add(Job(id=job_id, kind="tracking_import", status="pending", total=n,
                           params={}, created_at=utcnow()))
        db.session.commit()
        stamps: list[float] = []
        real_progress = queue.set_progress

        def timed_progress(job, done, total=None):
            stamps.append(time.perf_counter())
            real_progress(job, done, total)

        import jobs.bulk_ship as bulk_job
        bulk_job.set_progress = timed_progress  # batch timings; the same call underneath
        keep = book.read_bytes()
        started = time.perf_counter()
        stamps.append(started)
        queue.run_tracked_job(job_id, tracking_import_job, token, "codes.xlsx", False)
        job_s = time.perf_counter() - started
        bulk_job.set_progress = real_progress
        db.session.rollback()
        job = db.session.get(Job, job_id)
        batches = [b - a for a, b in zip(stamps[1:], stamps[2:], strict=False)]  # after the parse
        once = exactly_once(ids)
        print(f"import + ship job: {job.result['done']:,} orders in {job_s:.2f}s "
              f"({n / job_s:,.0f} orders/s), status {job.status}, skipped {len(job.result['skipped'])}; "
              f"batches of {BATCH}: p50 {pct(batches, .5) * 1000:.0f} ms, "
              f"p95 {pct(batches, .95) * 1000:.0f} ms "
              f"({pct(batches, .5) * 1000 / BATCH:.2f} ms per order)", flush=True)
        print(f"exactly once: completed {once['completed']:,}/{n:,}, one shipped event "
              f"{once['one_event']:,}, one customer message {once['one_message']:,}, "
              f"max events per order {once['max_events']}, max messages {once['max_messages']}")

        # The same file again: nothing changes.
        book.write_bytes(keep)
        db.session.add(Job(id="bench-job-2", kind="tracking_import", status="pending", total=n,
                           params={}, created_at=utcnow()))
        db.session.commit()
        started = time.perf_counter()
        queue.run_tracked_job("bench-job-2", tracking_import_job, token, "codes.xlsx", False)
        again_s = time.perf_counter() - started
        db.session.rollback()
        again = db.session.get(Job, "bench-job-2").result
        twice = exactly_once(ids)
        idempotent = again["done"] == 0 and twice == once
        print(f"same file again: changed {again['done']}, unchanged {again['unchanged']:,} in "
              f"{again_s:.2f}s; still exactly once: {idempotent}")

        figures = {"orders": n, "setup_seconds": round(setup_s, 2),
                   "preview_seconds": round(preview_s, 3),
                   "preview_rows_per_second": round(len(preview.rows) / preview_s, 1),
                   "job_seconds": round(job_s, 3), "orders_per_second": round(n / job_s, 1),
                   "batch_size": BATCH,
                   "batch_p50_ms": round(pct(batches, .5) * 1000, 1),
                   "batch_p95_ms": round(pct(batches, .95) * 1000, 1),
                   "shipped": job.result["done"], "skipped": len(job.result["skipped"]),
                   **{f"check_{k}": v for k, v in once.items()},
                   "exactly_once": once["one_event"] == once["one_message"] == n
                   and once["completed"] == n,
                   "reimport_changed": again["done"], "idempotent": idempotent}

        if not args.no_baseline:
            m = args.baseline_orders or n
            more = seed(m, n + 1, shipping_id, variant)
            actor = Actor("staff", None, "Bench")
            each = []
            started = time.perf_counter()
            for order_id in more:
                t = time.perf_counter()
                ship_order(order_id, actor=actor, tracking_code=f"SF{7000000000 + order_id}")
                each.append(time.perf_counter() - t)
                db.session.expire_all()
            one_s = time.perf_counter() - started
            base = exactly_once(more)
            per_order_job = job_s / n
            print(f"baseline, one ship_order per order: {m:,} in {one_s:.2f}s ({m / one_s:,.0f} "
                  f"orders/s); p50 {pct(each, .5) * 1000:.2f} ms, p95 {pct(each, .95) * 1000:.2f} ms "
                  f"per order; exactly once: {base['one_event'] == base['one_message'] == m}; "
                  f"the batched job is {(one_s / m) / per_order_job:.1f}x faster per order "
                  f"(import and parse included)")
            figures.update(baseline_orders=m, baseline_seconds=round(one_s, 3),
                           baseline_p50_ms=round(pct(each, .5) * 1000, 2),
                           baseline_p95_ms=round(pct(each, .95) * 1000, 2),
                           baseline_mean_ms=round(statistics.fmean(each) * 1000, 2),
                           speedup=round((one_s / m) / per_order_job, 1))
        figures["peak_rss_mb"] = round(peak_rss_mb(), 1)
        print(f"peak RSS: {figures['peak_rss_mb']:,.0f} MB")
        met = n >= 5000 and job_s <= 20 and figures["exactly_once"] and idempotent
        print(f"goal: 5,000 in <= 20 s, each shipped exactly once -> "
              f"{'met' if met else 'see figures'}")
        print(json.dumps(figures))
        db.session.remove()
        db.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
