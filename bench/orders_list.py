"""Benchmark the orders list at scale (issue 4). Prints figures, asserts nothing.

    .venv/bin/python -m bench.orders_list --orders 100000 --runs 30
    .venv/bin/python bench/orders_list.py ...          (the same)

Builds a fresh SQLite database in a temporary directory from the real
migrations, seeds it with the demo store, signs in an owner with the Flask
test client and times ``GET /orders`` as htmx asks for it (``HX-Request:
true``: the tabs and results fragment, rendered server side) for each class
of query. For the text searches it also times, in the same run:

* ``indexed``: the SQL the list view runs (OrderQuery count, tab counts and
  one page), through the search index;
* ``naive``: the same three queries written the naive way, LIKE '%q%' over
  orders LEFT JOIN order_line on the same columns.

Every class is also timed with the count cap lifted (``exact``: every match
counted, as the list did before domain.search.COUNT_CAP), so the cap's gain is
read in the same run. Unfiltered classes use the kept counts either way.

The issue 7 classes (full-width, "#SD-", "+852", simplified, spaced name,
variant) are searches the index folds to the stored form; the naive LIKE
reads text as stored, so its row count is lower there (often 0). Text search
on PostgreSQL: bench/search_postgres.py.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import distinct, func, or_, select

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SIGNED_IN = "owner@bench.test"
PASSWORD = "bench password 123"


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return ordered[rank]


def summary(times: list[float]) -> dict:
    return {"p50": round(percentile(times, 50), 2), "p95": round(percentile(times, 95), 2),
            "mean": round(statistics.fmean(times), 2)}


def timed(fn, runs: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return times


# ------------------------------------------------------------------ naive search


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def naive_queries(q: str):
    """Count, tab counts and one page, by LIKE over orders LEFT JOIN order_line."""
    from domain.db import db
    from domain.models import Order, OrderLine

    pattern = _like(q)
    columns = (Order.number, Order.customer_name, Order.customer_phone, Order.customer_email,
               OrderLine.product_name, OrderLine.variant_name, OrderLine.sku, OrderLine.barcode)
    where = (Order.kind == "placed", or_(*(c.ilike(pattern, escape="\\") for c in columns)))

    def joined(*cols):
        return select(*cols).select_from(Order).outerjoin(
            OrderLine, OrderLine.order_id == Order.id).where(*where)

    def run():
        session = db.session
        total = session.scalar(joined(func.count(distinct(Order.id))))
        session.execute(joined(Order.status, func.count(distinct(Order.id)))
                        .group_by(Order.status)).all()
        page = session.scalars(select(Order).where(Order.id.in_(joined(Order.id)))
                               .order_by(Order.placed_at.desc(), Order.id.desc()).limit(50)).all()
        db.session.remove()
        return total, len(page)

    return run


def indexed_queries(q: str):
    """What the list view asks the database for, through domain.search."""
    from domain.db import db
    from domain.search import OrderQuery

    def run():
        page, _counts = OrderQuery(q=q).page_with_tab_counts()
        total, items = page.total, len(page.items)
        db.session.remove()
        return total, items

    return run


# ------------------------------------------------------------------ set-up


def open_app(path: Path):
    from app import create_app

    workdir = path.parent
    return create_app({"SECRET_KEY": "bench", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}",
                       "WTF_CSRF_ENABLED": False, "UPLOAD_FOLDER": str(workdir / "uploads"),
                       "GENERATED_FOLDER": str(workdir / "generated")})


def build(orders: int, workdir: Path):
    from flask_migrate import upgrade

    from domain.accounts import create_user
    from domain.demo import seed_demo
    from domain.store import ensure_store_defaults

    path = workdir / "bench.db"
    app = open_app(path)
    with app.app_context():
        upgrade()
        ensure_store_defaults()
        started = time.perf_counter()
        seed_demo(orders, seed=1)
        seed_seconds = time.perf_counter() - started
        create_user(email=SIGNED_IN, password=PASSWORD, role="owner", name="Bench Owner")
    return app, path, seed_seconds


def _full_width(text: str) -> str:
    """ASCII letters and digits as their full-width forms ("SD1" -> "ＳＤ１")."""
    return "".join(chr(ord(ch) + 0xFEE0) if ch.isascii() and ch.isalnum() else ch for ch in text)


def pick_cases(orders: int) -> list[dict]:
    """Query classes with values taken from the seeded data."""
    from domain.db import db
    from domain.models import Order, OrderLine, PaymentMethod
    from domain.status import OrderStatus
    from domain.store import get_settings

    session = db.session
    middle = session.scalar(select(Order).where(Order.kind == "placed")
                            .order_by(Order.id).offset(max(0, orders // 2)).limit(1))
    barcode = session.scalar(select(OrderLine.barcode).where(OrderLine.order_id == middle.id)
                             .order_by(OrderLine.id).limit(1))
    payment_id = session.scalar(select(PaymentMethod.id).where(PaymentMethod.code == "fps")) \
        or session.scalar(select(PaymentMethod.id).order_by(PaymentMethod.id))
    latest = session.scalar(select(func.max(Order.placed_at)))
    from zoneinfo import ZoneInfo
    today = latest.replace(tzinfo=ZoneInfo("UTC")).astimezone(
        ZoneInfo(get_settings().timezone)).date()
    date_from, date_to = today - timedelta(days=90), today - timedelta(days=60)

    cases = [{"name": "no_filter", "url": "/orders"}]
    for status in OrderStatus:
        cases.append({"name": f"status_{status.value}", "url": f"/orders?status={status.value}"})
    texts = [("name_zh_2char", "大文"), ("name_en", "Kelvin"),
             ("phone_last4", middle.customer_phone[-4:]),
             ("phone_digits", "".join(ch for ch in middle.customer_phone if ch.isdigit())),
             ("barcode_full", barcode), ("barcode_partial", barcode[-6:]),
             ("product_zh", "曲奇禮盒"), ("product_en", "denim"),
             ("number", middle.number), ("number_no_prefix", middle.number.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")),
             # issue 7: the forms people type
             ("number_hash_dash", "#" + middle.number[:2] + "-" + middle.number[2:]),
             ("fullwidth_number", _full_width(middle.number)),
             ("fullwidth_phone4", _full_width(middle.customer_phone[-4:])),
             ("phone_country_code", "+852 " + middle.customer_phone),
             ("name_simplified", "陈大文"), ("name_spaced", "陳 大文"),
             ("variant_zh", "抹茶"), ("product_variant", "曲奇禮盒 抹茶"),
             ("short_1char", "陳"), ("sku", "SKU-001-3")]
    from urllib.parse import urlencode

    for name, q in texts:
        cases.append({"name": name, "url": "/orders?" + urlencode({"q": q}), "q": q})
    cases.append({"name": "dates_payment_status", "url": "/orders?" + urlencode({
        "from": date_from.isoformat(), "to": date_to.isoformat(), "payment": payment_id,
        "status": "completed"})})
    cases.append({"name": "page_50", "url": "/orders?page=50"})
    placed = session.scalar(select(func.count()).select_from(Order).where(Order.kind == "placed"))
    cases.append({"name": "last_page", "url": f"/orders?page={max(1, -(-placed // 50))}"})
    # Page 51 reached from page 50's Next link: the cursor (keyset) way.
    page_50_last = session.scalar(select(Order.id).where(Order.kind == "placed")
                                  .order_by(Order.placed_at.desc(), Order.id.desc())
                                  .offset(50 * 50 - 1).limit(1))
    cases.append({"name": "page_51_by_next", "url": f"/orders?page=51&after={page_50_last}"})
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--naive-runs", type=int, default=5,
                        help="runs of the naive queries (they are slow; 0 skips them)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="a folder for the database: built there once, reused after "
                             "(a million orders take ~15 minutes to seed)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="shopdesk-bench-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        if args.keep and (workdir / "bench.db").exists():
            from flask_migrate import upgrade

            path, seed_seconds = workdir / "bench.db", 0.0
            app = open_app(path)
            with app.app_context():
                upgrade()  # a database kept from before a migration
        else:
            app, path, seed_seconds = build(args.orders, workdir)
        print(f"seeded {args.orders} orders in {seed_seconds:.1f}s; "
              f"database {path.stat().st_size / 1e6:.0f} MB", flush=True)
        with app.app_context():
            cases = pick_cases(args.orders)
        # No app context is left pushed: each request gets its own, and with
        # it a fresh session, as in production.
        client = app.test_client()
        response = client.post("/login", data={"email": SIGNED_IN, "password": PASSWORD})
        if response.status_code != 302:
            print("login failed", response.status_code, file=sys.stderr)
            return 1

        from domain.db import db

        def fragment(url):
            def get():
                response = client.get(url, headers={"HX-Request": "true"})
                assert response.status_code == 200, (url, response.status_code)
            return get

        from domain import search

        def uncapped(url):
            """The same request with every match counted: the list before capped counts
            (domain.search.COUNT_CAP), the baseline for the "exact" columns."""
            get = fragment(url)

            def run():
                cap, search.COUNT_CAP = search.COUNT_CAP, 10**15
                try:
                    get()
                finally:
                    search.COUNT_CAP = cap
            return run

        results = {}
        print(f"{'class':24} {'view p50':>9} {'view p95':>9} {'exact p95':>9}"
              f" {'idx p50':>8} {'idx p95':>8}"
              f" {'naive p50':>10} {'naive p95':>10} {'ratio':>7} {'rows':>7}")
        for case in cases:
            figures = {"url": case["url"], "view": summary(timed(fragment(case["url"]),
                                                                 args.runs)),
                       "exact": summary(timed(uncapped(case["url"]), args.runs))}
            line = (f"{case['name']:24} {figures['view']['p50']:9.2f} "
                    f"{figures['view']['p95']:9.2f} {figures['exact']['p95']:9.2f}")
            if "q" in case and not args.naive_runs:  # the index alone (a million orders)
                with app.app_context():
                    indexed = indexed_queries(case["q"])
                    figures["rows"], _ = indexed()
                    figures["indexed"] = summary(timed(indexed, args.runs))
                line += (f" {figures['indexed']['p50']:8.2f} {figures['indexed']['p95']:8.2f}"
                         f" {'':10} {'':10} {'':7} {figures['rows']:7d}")
            elif "q" in case:
                with app.app_context():
                    indexed = indexed_queries(case["q"])
                    naive = naive_queries(case["q"])
                    figures["rows"], _ = indexed()
                    figures["naive_rows"], _ = naive()
                    figures["indexed"] = summary(timed(indexed, args.runs))
                    figures["naive"] = summary(timed(naive, args.naive_runs, warmup=1))
                figures["speedup"] = round(figures["naive"]["p50"] / figures["indexed"]["p50"], 1)
                figures["speedup_vs_view"] = round(
                    figures["naive"]["p50"] / figures["view"]["p50"], 1)
                line += (f" {figures['indexed']['p50']:8.2f} {figures['indexed']['p95']:8.2f}"
                         f" {figures['naive']['p50']:10.2f} {figures['naive']['p95']:10.2f}"
                         f" {figures['speedup']:6.1f}x {figures['rows']:7d}")
            print(line, flush=True)
            results[case["name"]] = figures

        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS {peak_rss_mb:.0f} MB")
        with app.app_context():
            db.engine.dispose()
        print(json.dumps({"orders": args.orders, "runs": args.runs, "naive_runs": args.naive_runs,
                          "seed_seconds": round(seed_seconds, 1),
                          "db_mb": round(path.stat().st_size / 1e6, 1),
                          "peak_rss_mb": round(peak_rss_mb, 1), "classes": results},
                         ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
