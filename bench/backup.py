"""Backup and restore benchmark: seconds and sizes for an N-order store (not a test).

Seeds a temporary instance with `flask seed-demo --orders N` (its own database
and uploads folder, so the demo receipts land in the temp folder, not in
instance/), then times `create_backup` and `restore_backup` into a second
fresh instance. Baseline in the same run: the bare database copy (SQLite's
backup API, or plain `pg_dump -Fc`), so the archive's extra cost shows.
With --postgres (default when a server answers) the same on PostgreSQL.

    .venv/bin/python bench/backup.py --orders 100000

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN = os.environ.get("SHOPDESK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _app(url: str, folder: Path):
    from app import create_app

    folder.mkdir(parents=True, exist_ok=True)
    return create_app({"SECRET_KEY": "bench", "SQLALCHEMY_DATABASE_URI": url,
                       "UPLOAD_FOLDER": str(folder / "uploads"),
                       "GENERATED_FOLDER": str(folder / "generated"),
                       "BACKUP_FOLDER": str(folder / "backups")})


def _migrate(app) -> None:
    from flask_migrate import upgrade

    from domain.db import db

    with app.app_context():
        upgrade()
        db.session.remove()
        db.engine.dispose()


def _seed(app, orders: int) -> float:
    """`flask seed-demo --orders N` through the app's own CLI."""
    _migrate(app)
    started = time.perf_counter()
    result = app.test_cli_runner().invoke(args=["seed-demo", "--orders", str(orders)])
    if result.exit_code != 0:
        raise SystemExit(f"seed-demo failed: {result.output}{result.exception!r}")
    return time.perf_counter() - started


def _round_trip(source, target, baseline) -> dict:
    from domain.backup import create_backup, restore_backup
    from domain.db import db

    with source.app_context():
        started = time.perf_counter()
        baseline()
        baseline_seconds = time.perf_counter() - started
        result = create_backup()
        db.session.remove()
        db.engine.dispose()
    manifest = result.manifest
    with target.app_context():
        report = restore_backup(result.path)
        db.session.remove()
        db.engine.dispose()
    assert report.counts == manifest["tables"]
    return {"orders": manifest["tables"].get("orders"),
            "backup_seconds": round(result.seconds, 2),
            "restore_seconds": round(report.seconds, 2),
            "baseline_db_copy_seconds": round(baseline_seconds, 2),
            "archive_mb": round(result.path.stat().st_size / 2**20, 1),
            "files": len(manifest["files"]) - 1,
            "uploads_mb": round(sum(f["size"] for f in manifest["files"][1:]) / 2**20, 1)}


def sqlite_run(orders: int, folder: Path) -> dict:
    source = _app(f"sqlite:///{folder / 'a' / 'shop.db'}", folder / "a")
    seeded = _seed(source, orders)
    print(f"sqlite: seeded {orders:,} orders in {seeded:.1f}s", flush=True)
    target = _app(f"sqlite:///{folder / 'b' / 'shop.db'}", folder / "b")
    _migrate(target)

    def baseline():  # the bare online copy of the database file, nothing else
        src = sqlite3.connect(folder / "a" / "shop.db")
        dst = sqlite3.connect(folder / "baseline.db")
        src.backup(dst)
        src.close()
        dst.close()

    figures = _round_trip(source, target, baseline)
    figures["db_mb"] = round((folder / "a" / "shop.db").stat().st_size / 2**20, 1)
    figures["seed_seconds"] = round(seeded, 1)
    return figures


def postgres_run(orders: int, folder: Path) -> dict | None:
    import psycopg

    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        print(f"postgresql: skipped ({exc})")
        return None
    names = [f"shopdesk_bench_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        for name in names:
            admin.execute(f'CREATE DATABASE "{name}"')
        source = _app(f"{base}/{names[0]}", folder / "pa")
        seeded = _seed(source, orders)
        print(f"postgresql: seeded {orders:,} orders in {seeded:.1f}s", flush=True)
        target = _app(f"{base}/{names[1]}", folder / "pb")
        _migrate(target)
        plain = f"{PG_ADMIN.rsplit('/', 1)[0]}/{names[0]}"

        def baseline():  # plain pg_dump -Fc of the same database
            subprocess.run(["pg_dump", "--format=custom", f"--file={folder / 'plain.dump'}",
                            "--dbname", plain], check=True)

        figures = _round_trip(source, target, baseline)
        figures["seed_seconds"] = round(seeded, 1)
        return figures
    finally:
        for name in names:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _print(label: str, f: dict) -> None:
    print(f"{label}: backup {f['backup_seconds']:.2f}s (bare database copy "
          f"{f['baseline_db_copy_seconds']:.2f}s), restore {f['restore_seconds']:.2f}s; "
          f"archive {f['archive_mb']} MB with {f['files']:,} upload files "
          f"({f['uploads_mb']} MB), {f['orders']:,} orders", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    results = {"orders": args.orders}
    folder = Path(tempfile.mkdtemp(prefix="shopdesk-bench-backup-"))
    try:
        results["sqlite"] = sqlite_run(args.orders, folder)
        _print("sqlite", results["sqlite"])
        if not args.no_postgres:
            results["postgresql"] = postgres_run(args.orders, folder)
            if results["postgresql"]:
                _print("postgresql", results["postgresql"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
