"""Checkout throughput (issue 14): the store journey against gunicorn, C clients at once.

    .venv/bin/python -m bench.checkout --clients 50 --seconds 30
    .venv/bin/python -m bench.checkout --clients 50 --seconds 30 --db postgres
    .venv/bin/python -m bench.checkout --clients 50 --seconds 30 --db both

For each database (SQLite in WAL mode in a temporary directory, or a fresh
PostgreSQL database on 127.0.0.1:5432, dropped at the end) it migrates with
the app's migrations, seeds a small store (bench/_checkout_setup.py), starts
gunicorn with deploy/'s settings (bench/_checkout_server.py), then runs:

1. a sequential pass, one client, per-step p50 (the issue's baseline);
2. C clients at once for S seconds (bench/_checkout_client.py): orders per
   second, p50/p95/p99 per step, the server's CPU milliseconds per placed order
   (gunicorn master, workers and the embedded Redis, user + system), 5xx,
   "database is locked" (gunicorn log and response bodies) and oversold units
   (stock below zero, units sold past the opening stock, ledger sums).

It ends with one JSON line. Prints figures, asserts nothing; it stops by itself
(S seconds and --max-requests) and always stops gunicorn.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._checkout_client import LOCKED, STEPS, Stats, run_clients  # noqa: E402
from bench._checkout_server import THREADS, WORKERS, Server  # noqa: E402
from bench._checkout_setup import app_env, check_books, create_database, migrate_and_seed  # noqa: E402


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return round(ordered[rank], 1)


def step_table(stats: Stats) -> dict:
    return {step: {"n": len(stats.times[step]), "p50": percentile(stats.times[step], 50),
                   "p95": percentile(stats.times[step], 95),
                   "p99": percentile(stats.times[step], 99)} for step in STEPS}


def measured(server: Server, clients: int, seconds: float, max_requests: int,
             low_ids: list[int]) -> dict:
    cpu_before = server.cpu_by_kind()
    stats, wall = run_clients(server.base, clients, seconds, max_requests, low_ids)
    cpu_after = server.cpu_by_kind()
    split = {kind: cpu_after[kind] - cpu_before[kind] for kind in cpu_after}
    cpu = sum(split.values())
    return {"clients": clients, "seconds": round(wall, 2), "orders": stats.orders,
            "orders_per_s": round(stats.orders / wall, 1) if wall else 0.0,
            "cpu_ms_per_order": round(cpu * 1000 / stats.orders, 1) if stats.orders else None,
            "server_cpu_s": round(cpu, 2),
            "redis_cpu_ms_per_order": round(split["redis"] * 1000 / stats.orders, 1)
            if stats.orders else None, "refused": stats.refused, "errors": stats.errors,
            "requests": sum(stats.status.values()),
            "http_5xx": sum(n for code, n in stats.status.items() if code >= 500),
            "locked_in_bodies": stats.locked, "steps": step_table(stats)}


def run_one(kind: str, args) -> dict:
    with tempfile.TemporaryDirectory(prefix="shopdesk-bench-checkout-") as tmp:
        workdir = Path(tmp)
        bench_db = create_database(kind, workdir)
        server = None
        try:
            migrate_and_seed(bench_db, workdir)
            server = Server(app_env(bench_db, workdir), workdir, workers=args.workers,
                            threads=args.threads)
            server.start()
            # Warm every worker (imports, first templates) before anything is timed.
            run_clients(server.base, args.workers * 2, 2, 200, [])
            sequential = measured(server, 1, args.sequential_seconds, args.max_requests, [])
            concurrent = measured(server, args.clients, args.seconds, args.max_requests,
                                  bench_db.low_ids)
            locked_log = server.log_count(LOCKED)
            server.stop()
            if args.log:  # the server's log, kept for a look at any error
                Path(args.log).write_bytes(server.log_path.read_bytes())
            books = check_books(bench_db, workdir)
        finally:
            if server is not None:
                server.stop()
            bench_db.drop()
    concurrent["locked"] = locked_log + concurrent.pop("locked_in_bodies")
    return {"db": kind, "workers": args.workers, "threads": args.threads, "sequential": sequential,
            "concurrent": concurrent, "books": books}


def report(result: dict) -> None:
    seq, con, books = result["sequential"], result["concurrent"], result["books"]
    print(f"\n== {result['db']}: gunicorn gthread {result['workers']} workers x {result['threads']} threads ==")
    print("sequential, 1 client, p50 ms: " + ", ".join(
        f"{step} {seq['steps'][step]['p50']}" for step in STEPS)
        + f"; {seq['orders']} orders, {seq['cpu_ms_per_order']} ms server CPU per order "
        f"({seq['redis_cpu_ms_per_order']} of it Redis)")
    print(f"{con['clients']} clients, {con['seconds']} s: {con['orders']} orders, "
          f"{con['orders_per_s']} orders/s, {con['cpu_ms_per_order']} ms server CPU per order "
          f"({con['redis_cpu_ms_per_order']} of it Redis), "
          f"{con['requests']} requests, {con['refused']} refused (sold out), "
          f"{con['errors']} client errors")
    print(f"{'step':<9}{'n':>7}{'p50':>9}{'p95':>9}{'p99':>9}  (ms)")
    for step in STEPS:
        row = con["steps"][step]
        print(f"{step:<9}{row['n']:>7}{row['p50']:>9}{row['p95']:>9}{row['p99']:>9}")
    print(f"5xx: {con['http_5xx']}  database is locked: {con['locked']}  "
          f"oversold units: {books['oversold_units']}  negative stock: "
          f"{books['negative_stock_variants']}  ledger mismatches: {books['ledger_mismatches']}  "
          f"scarce units sold: {books['low_stock_units_sold']}/{books['low_stock_units_offered']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("--workers", type=int, default=WORKERS, choices=(2, 3, 4),
                        help="gunicorn workers (deploy/ runs 3)")
    parser.add_argument("--threads", type=int, default=THREADS, choices=range(1, 33),
                        metavar="1-32", help=f"threads per worker (deploy/ runs {THREADS})")
    parser.add_argument("--sequential-seconds", type=float, default=5)
    parser.add_argument("--max-requests", type=int, default=100_000,
                        help="stop each phase after this many requests")
    parser.add_argument("--log", help="copy gunicorn's log (and the app's stderr) here")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0 or args.max_requests < 1:
        parser.error("--clients, --seconds and --max-requests must be positive")
    kinds = ("sqlite", "postgres") if args.db == "both" else (args.db,)
    results = []
    for kind in kinds:
        results.append(run_one(kind, args))
        report(results[-1])
    print(json.dumps({"bench": "checkout", "results": results}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
