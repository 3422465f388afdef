"""bench/checkout.py runs end to end: gunicorn on loopback, two customers, SQLite.

A behaviour test of the bench, not a timed one: it checks the JSON line's shape,
that orders were placed through the whole journey, that nothing was oversold or
answered 5xx, and that the bench left no gunicorn behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
STEPS = {"store", "add", "cart", "checkout", "order"}


def _gunicorns_under(pid: int) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"])
            if "bench._checkout_wsgi:app" in " ".join(p.info["cmdline"] or [])
            and p.pid != pid]


def test_bench_runs_the_journey_and_reports_clean_books():
    before = {p.pid for p in _gunicorns_under(0)}
    done = subprocess.run(
        [sys.executable, "-m", "bench.checkout", "--clients", "2", "--seconds", "3",
         "--sequential-seconds", "1", "--workers", "2", "--threads", "4"],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    report = json.loads(last)
    assert report["bench"] == "checkout"
    (result,) = report["results"]
    assert result["db"] == "sqlite" and result["workers"] == 2 and result["threads"] == 4
    for phase in ("sequential", "concurrent"):
        figures = result[phase]
        assert set(figures["steps"]) == STEPS
        for row in figures["steps"].values():
            assert set(row) == {"n", "p50", "p95", "p99"}
            assert row["p50"] <= row["p95"] <= row["p99"]
        assert figures["orders"] > 0, figures
        # Each placed order's page is read, but the clock may stop a client in between.
        seen = figures["steps"]["order"]["n"]
        assert figures["orders"] - figures["clients"] <= seen <= figures["orders"]
        assert figures["cpu_ms_per_order"] > 0
        assert figures["http_5xx"] == 0 and figures["errors"] == 0
    concurrent = result["concurrent"]
    assert concurrent["clients"] == 2 and concurrent["locked"] == 0
    assert concurrent["orders_per_s"] > 0
    books = result["books"]
    assert books["oversold_units"] == 0 and books["negative_stock_variants"] == 0
    assert books["ledger_mismatches"] == 0 and books["stock_drift_variants"] == 0
    # The orders the clients saw placed are in the database (plus the warm-up's).
    assert books["orders_in_db"] >= result["sequential"]["orders"] + concurrent["orders"]
    # The human-readable table came first, and gunicorn is gone.
    assert "server CPU per order" in done.stdout
    assert {p.pid for p in _gunicorns_under(0)} <= before
