"""The store journey in process (Flask's test client), for finding where a request's
time goes: SQL statements per step, CPU ms per journey, and optionally a cProfile.

    .venv/bin/python -m bench._checkout_profile --journeys 200
    .venv/bin/python -m bench._checkout_profile --journeys 200 --profile 40
    .venv/bin/python -m bench._checkout_profile --db postgres

The same five steps as bench/_checkout_client.py (store page, add, cart, checkout
with a manual method, the order page), the same seeded store, the app as the
bench's gunicorn runs it (with its embedded Redis). CPU is this process's (the
client side of the test client is included, a few percent); statements are
counted at the cursor, so a lazy load or a repeated get shows.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench._checkout_client import CHECKOUT_FORM_RE, CSRF_RE, MANUAL_RE, SHIPPING_RE, STEPS
from bench._checkout_setup import create_database, migrate_and_seed

ADD_RE = r'<input type="hidden" name="variant_id" value="(\d+)">'


def make_app(url: str, workdir: Path):
    from app import create_app

    instance = workdir / "instance"
    return create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench-" + "k" * 32,
                       "UPLOAD_FOLDER": str(instance / "uploads"),
                       "GENERATED_FOLDER": str(instance / "generated"),
                       "MAIL_FOLDER": str(instance / "mail"),
                       "REDIS_EMBEDDED_DB": str(instance / "redis.db")})


class Counted:
    """Statements per step, counted where the driver is called; and each step's CPU
    (its median is steadier than the total on a shared machine)."""

    def __init__(self, engine):
        from sqlalchemy import event

        self.cpu: dict[str, list[float]] = {}
        self._started = 0.0
        self.step, self.counts = "", Counter()
        self.sql: dict[str, Counter] = {}
        event.listen(engine, "before_cursor_execute", self._on)

    def begin(self, step: str) -> None:
        self.end()
        self.step, self._started = step, time.process_time()

    def end(self) -> None:
        if self.step:
            self.cpu.setdefault(self.step, []).append(time.process_time() - self._started)
        self.step = ""

    def _on(self, _conn, _cursor, statement, *_args):
        self.counts[self.step] += 1
        self.sql.setdefault(self.step, Counter())[" ".join(statement.split())[:160]] += 1


def journey(client, counted: Counted, rng: random.Random, ok: Counter) -> None:
    import re

    counted.begin("store")
    page = client.get("/shop/").get_data(as_text=True)
    token = CSRF_RE.search(page).group(1)
    variant = rng.choice(re.findall(ADD_RE, page))
    counted.begin("add")
    client.post("/shop/cart/add", data={"csrf_token": token, "variant_id": variant,
                                        "quantity": "1"})
    counted.begin("cart")
    cart = client.get("/shop/cart").get_data(as_text=True)
    form = CHECKOUT_FORM_RE.search(cart)
    if form is None:
        counted.end()
        ok["refused"] += 1
        return
    form = form.group(0)
    counted.begin("checkout")
    placed = client.post("/shop/checkout", data={
        "csrf_token": CSRF_RE.search(form).group(1), "name": "陳大文", "phone": "9123 4567",
        "email": "", "address": "九龍旺角彌敦道 1 號", "note": "",
        "payment_method": rng.choice(MANUAL_RE.findall(form)),
        "shipping_method": rng.choice(SHIPPING_RE.findall(form))})
    if placed.status_code != 302:
        counted.end()
        ok[f"checkout {placed.status_code}"] += 1
        return
    counted.begin("order")
    assert client.get(placed.headers["Location"]).status_code == 200
    counted.end()
    ok["orders"] += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journeys", type=int, default=200)
    parser.add_argument("--profile", type=int, default=0, help="print the top N of a cProfile")
    parser.add_argument("--sort", default="cumulative")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--sql", action="store_true", help="print each step's statements")
    parser.add_argument("--dump", type=Path, default=None,
                        help="with --profile: also write the raw profile here (for pstats)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="shopdesk-bench-profile-") as tmp:
        workdir = Path(tmp)
        bench_db = create_database(args.db, workdir)
        try:
            migrate_and_seed(bench_db, workdir)
            app = make_app(bench_db.url, workdir)
            with app.app_context():
                from domain.db import db

                counted = Counted(db.engine)
            rng, ok = random.Random(1), Counter()
            client = app.test_client()
            for _ in range(10):  # warm: imports, templates, caches
                journey(client, counted, rng, ok)
            counted.counts.clear()
            counted.sql.clear()
            counted.cpu.clear()
            ok.clear()
            profiler = cProfile.Profile() if args.profile else None
            cpu = time.process_time()
            if profiler:
                profiler.enable()
            for _ in range(args.journeys):
                if rng.random() < 0.2:  # some customers come back with a new cookie jar
                    client = app.test_client()
                journey(client, counted, rng, ok)
            if profiler:
                profiler.disable()
            cpu = time.process_time() - cpu
            with app.app_context():
                db.engine.dispose()
        finally:
            bench_db.drop()
    n = args.journeys
    print(f"{args.db}: {n} journeys, {dict(ok)}; {cpu * 1000 / n:.1f} ms CPU per journey"
          + (" (profiled)" if profiler else ""))
    print("statements per journey: " + ", ".join(
        f"{s} {counted.counts[s] / n:.1f}" for s in STEPS)
        + f"; total {sum(counted.counts.values()) / n:.1f}")
    print("CPU ms per step, median: " + ", ".join(
        f"{s} {statistics.median(counted.cpu.get(s, [0])) * 1000:.2f}" for s in STEPS)
        + f"; sum {sum(statistics.median(counted.cpu.get(s, [0])) for s in STEPS) * 1000:.1f}")
    if args.sql:
        for step in STEPS:
            print(f"-- {step}")
            for sql, count in counted.sql.get(step, Counter()).most_common():
                print(f"{count / n:6.2f}  {sql}")
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.profile)
        if args.dump:
            profiler.dump_stats(args.dump)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
