"""Excel export benchmark: seconds and peak RSS for N orders (not a test).

Seeds a fresh SQLite store with seed-demo, then exports the newest 10,000 and
all N orders, each in its own process so peak RSS belongs to that export
alone. As a baseline in the same run it also exports 10,000 orders with a
regular (not write-only) openpyxl workbook, which keeps every cell in memory.

    .venv/bin/python bench/export.py --orders 100000

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _app(db_file: str):
    from app import create_app

    return create_app({"SECRET_KEY": "bench", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{db_file}"})


def seed(db_file: str, orders: int) -> float:
    from flask_migrate import upgrade

    from domain.demo import seed_demo

    app = _app(db_file)
    with app.app_context():
        upgrade()
        started = time.perf_counter()
        seed_demo(orders, seed=1)
        return time.perf_counter() - started


def child(db_file: str, count: int, mode: str, out: str) -> dict:
    """One export in this process; prints its figures as JSON."""
    app = _app(db_file)
    with app.app_context():
        from sqlalchemy import select

        from domain.db import db
        from domain.exports import export_orders
        from domain.models import Order

        ids = list(db.session.scalars(select(Order.id).order_by(Order.placed_at.desc(), Order.id.desc())
                                      .limit(count)))
        rss_before = _current_rss_mb()
        started = time.perf_counter()
        if mode == "streaming":
            export_orders(ids, out)
        else:
            _regular_export(ids, out)
        seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"orders": len(ids), "mode": mode, "seconds": round(seconds, 2),
            "peak_rss_mb": round(peak, 1), "rss_before_mb": round(rss_before, 1),
            "rows_per_s": round(len(ids) / seconds), "file_mb": round(os.path.getsize(out) / 2**20, 1)}


def _current_rss_mb() -> float:
    """Resident memory now (not the peak so far), from /proc."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _regular_export(ids, out):
    """Baseline: the same rows through a normal in-memory workbook."""
    from openpyxl import Workbook
    from sqlalchemy import select

    from domain.db import db
    from domain.models import Order, OrderLine

    wb = Workbook()
    orders, items = wb.active, wb.create_sheet("Items")
    orders.title = "Orders"
    for start in range(0, len(ids), 1000):
        chunk = ids[start:start + 1000]
        for row in db.session.execute(select(Order).where(Order.id.in_(chunk))).scalars():
            orders.append([row.number, row.placed_at, row.status, row.customer_name,
                           row.customer_phone, row.customer_email, row.shipping_address,
                           row.payment_method_name, row.shipping_method_name, row.delivery_status,
                           row.tracking_code, row.subtotal_cents / 100, row.discount_cents / 100,
                           row.shipping_fee_cents / 100, row.extra_charge_cents / 100,
                           row.total_cents / 100, row.source, ""])
        for line in db.session.execute(select(OrderLine).where(OrderLine.order_id.in_(chunk))).scalars():
            items.append([line.order_id, line.product_name, line.variant_name, line.sku,
                          line.barcode, line.quantity, line.unit_price_cents / 100,
                          line.line_total_cents / 100])
        db.session.expunge_all()
    wb.save(out)


def run_child(db_file: str, count: int, mode: str, folder: str) -> dict:
    out = os.path.join(folder, f"{mode}-{count}.xlsx")
    result = subprocess.run([sys.executable, __file__, "--child", "--db", db_file,
                             "--count", str(count), "--mode", mode, "--out", out],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="streaming", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.db, args.count, args.mode, args.out)))
        return
    with tempfile.TemporaryDirectory() as folder:
        db_file = os.path.join(folder, "bench.db")
        print(f"seeding {args.orders:,} orders …", flush=True)
        seeded = seed(db_file, args.orders)
        print(f"seeded in {seeded:.1f}s", flush=True)
        small = min(10_000, args.orders)
        results = {"orders": args.orders, "seed_seconds": round(seeded, 1), "runs": []}
        for count, mode in ((small, "streaming"), (args.orders, "streaming"), (small, "regular")):
            figures = run_child(db_file, count, mode, folder)
            results["runs"].append(figures)
            print(f"{mode:>9} export of {figures['orders']:>7,} orders: {figures['seconds']:6.2f}s "
                  f"({figures['rows_per_s']:,} orders/s), peak RSS {figures['peak_rss_mb']} MB "
                  f"(resident before export {figures['rss_before_mb']} MB), file {figures['file_mb']} MB",
                  flush=True)
        s_small, s_big, regular = results["runs"]
        results["rss_growth_mb_small_to_full"] = round(s_big["peak_rss_mb"] - s_small["peak_rss_mb"], 1)
        results["regular_vs_streaming_rss_at_small"] = round(regular["peak_rss_mb"] / s_small["peak_rss_mb"], 2)
        print(f"RSS growth {small:,} -> {args.orders:,}: {results['rss_growth_mb_small_to_full']} MB; "
              f"regular workbook uses {results['regular_vs_streaming_rss_at_small']}x the memory at {small:,}")
        print(json.dumps(results))


if __name__ == "__main__":
    main()
