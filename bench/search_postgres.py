"""Time text searches on an existing PostgreSQL database (issue 7). Prints figures.

    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/shopdesk_bench \\
        .venv/bin/python bench/search_postgres.py --runs 30

Seed the database first with the real migrations and seeder:

    DATABASE_URL=... .venv/bin/flask --app app db upgrade
    DATABASE_URL=... .venv/bin/flask --app app seed-demo --orders 100000

For each search it times what the list view asks for (tab counts and one
page, ``OrderQuery.page_with_tab_counts``) and prints p50/p95 and rows. The
one- and two-character searches are the ones pg_trgm cannot index.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SEARCHES = ["陳", "文", "9", "Am", "大文", "45", "Kelvin", "曲奇禮盒", "denim", "抹茶", "陈大文",
            "+852 9123 4567", "ＳＤ６１１３７", "no-such-thing"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("q", nargs="*", help="searches (default: a fixed set)")
    args = parser.parse_args(argv)
    from app import create_app
    from domain.db import db
    from domain.search import OrderQuery

    app = create_app({"SQLALCHEMY_DATABASE_URI": os.environ["DATABASE_URL"],
                      "SECRET_KEY": "bench"})
    print(f"{'search':18} {'p50 ms':>8} {'p95 ms':>8} {'rows':>7}")
    with app.app_context():
        for q in args.q or SEARCHES:
            times = []
            for run in range(args.runs + 2):
                started = time.perf_counter()
                page, _counts = OrderQuery(q=q).page_with_tab_counts()
                elapsed = (time.perf_counter() - started) * 1000
                db.session.remove()
                if run >= 2:
                    times.append(elapsed)
            times.sort()
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            print(f"{q:18} {statistics.median(times):8.2f} {p95:8.2f} {page.total:7d}",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
