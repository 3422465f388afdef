"""How long the deadline sweep takes to expire and restock N overdue orders.

    .venv/bin/python bench/expiry.py --orders 10000

Builds a fresh SQLite file (real migrations) in a temp folder, inserts N unpaid
orders whose deadline has passed (2 lines each over 20 variants), then runs
``sweep_overdue`` once, exactly as the worker's sweep job does. As a baseline
in the same run it then inserts N more and expires them one by one with
``expire_order`` (what a per-order scheduled job does). Prints figures; the
last line is one JSON object. Goal on a 2-core machine: 10,000 in <= 10 s.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def insert_overdue(n: int, variants, first_id: int) -> tuple[list[int], dict[int, int]]:
    """N overdue unpaid orders; returns their ids and the units they hold per variant."""
    from sqlalchemy import insert

    from domain.db import db
    from domain.models import Order, OrderLine, utcnow

    now = utcnow()
    placed, deadline = now - timedelta(days=3), now - timedelta(minutes=5)
    ids = list(range(first_id, first_id + n))
    db.session.execute(insert(Order), [dict(
        id=i, number=f"B{100000 + i}", kind="placed", status="pending_payment",
        source="online_store", public_token=f"bench-{i:08d}", customer_name=f"客戶 {i}",
        customer_phone="9123 4567", payment_method_name="FPS", payment_kind="manual",
        shipping_method_name="Local delivery", subtotal_cents=2001, total_cents=2001,
        payment_deadline_at=deadline, placed_at=placed, created_at=placed, updated_at=placed,
        delivery_status="unfulfilled", shipping_kind="delivery") for i in ids])
    lines, held = [], {}
    for i in ids:
        for k in (0, 1):
            v = variants[(i + k * 7) % len(variants)]
            lines.append(dict(order_id=i, variant_id=v.id, product_id=v.product_id,
                              product_name=f"商品 {v.id}", variant_name="標準", sku=v.sku,
                              unit_price_cents=v.price_cents, quantity=1 + k))
            held[v.id] = held.get(v.id, 0) + 1 + k
    db.session.execute(insert(OrderLine), lines)
    db.session.commit()
    return ids, held


def check(variants, held_total) -> tuple[int, int, bool]:
    from sqlalchemy import func, select

    from domain.db import db
    from domain.models import Order, OrderEvent, Variant

    db.session.rollback()
    left = db.session.scalar(select(func.count(Order.id)).where(Order.status == "pending_payment"))
    events = db.session.scalar(select(func.count(OrderEvent.id)).where(
        OrderEvent.type == "order_expired"))
    ok = all(db.session.get(Variant, v.id).stock == held_total.get(v.id, 0) for v in variants)
    return left, events, ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=None, help="sweep batch size")
    parser.add_argument("--no-baseline", action="store_true", help="skip the one-by-one run")
    args = parser.parse_args()

    from flask_migrate import upgrade

    from app import create_app
    from domain.db import db
    from domain.deadlines import SWEEP_BATCH, sweep_overdue
    from domain.models import Product, Variant
    from domain.orders import expire_order
    from domain.store import ensure_store_defaults

    folder = Path(tempfile.mkdtemp(prefix="shopdesk-bench-"))
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'bench.db'}",
                      "SECRET_KEY": "bench", "UPLOAD_FOLDER": str(folder / "uploads")})
    n, batch = args.orders, args.batch or SWEEP_BATCH
    with app.app_context():
        upgrade()
        ensure_store_defaults()
        variants = []
        for i in range(20):
            product = Product(name=f"商品 {i}")
            db.session.add(product)
            db.session.flush()
            variant = Variant(product_id=product.id, name="標準", sku=f"B-{i}",
                              price_cents=1000 + i, stock=0)
            db.session.add(variant)
            variants.append(variant)
        db.session.commit()
        # Plain values: the sweep empties the session between batches.
        variants = [SimpleNamespace(id=v.id, product_id=v.product_id, sku=v.sku,
                                    price_cents=v.price_cents) for v in variants]

        started = time.perf_counter()
        _ids, held = insert_overdue(n, variants, 1)
        setup_s = time.perf_counter() - started
        print(f"set-up: {n:,} overdue orders, {2 * n:,} lines in {setup_s:.1f}s", flush=True)

        started = time.perf_counter()
        expired = sweep_overdue(batch_size=batch)
        sweep_s = time.perf_counter() - started
        left, events, stock_ok = check(variants, held)
        print(f"sweep: expired {expired:,} orders in {sweep_s:.2f}s ({expired / sweep_s:,.0f} orders/s); "
              f"still pending: {left}; expiry events: {events:,}; stock fully restored: {stock_ok}")
        figures = {"orders": n, "expired": expired, "sweep_seconds": round(sweep_s, 3),
                   "orders_per_second": round(expired / sweep_s, 1), "batch_size": batch,
                   "still_pending": left, "expiry_events": events, "stock_restored": stock_ok,
                   "setup_seconds": round(setup_s, 2)}

        if not args.no_baseline:
            ids, held_more = insert_overdue(n, variants, n + 1)
            started = time.perf_counter()
            for order_id in ids:
                expire_order(order_id)
            one_s = time.perf_counter() - started
            total_held = {k: held.get(k, 0) + held_more.get(k, 0) for k in set(held) | set(held_more)}
            _left, _events, ok = check(variants, total_held)
            print(f"baseline, one expire_order per order: {n:,} in {one_s:.2f}s "
                  f"({n / one_s:,.0f} orders/s); stock restored: {ok}; "
                  f"sweep is {one_s / sweep_s:.1f}x faster")
            figures.update(one_by_one_seconds=round(one_s, 3),
                           sweep_speedup=round(one_s / sweep_s, 1))
        print(f"goal: 10,000 in <= 10 s -> {'met' if n >= 10_000 and sweep_s <= 10 else 'see figures'}")
        print(json.dumps(figures))
        db.session.remove()
        db.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
