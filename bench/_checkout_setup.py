"""bench/checkout.py's database: build a fresh one, seed the store, check the books after.

The database is built from the app's own migrations (``flask --app app db upgrade``
with DATABASE_URL set, as deploy/ does), then seeded through the domain: the
store's defaults, FPS and bank transfer with their details, and a few products
(Chinese and English names, HKD) through the product editor's action, so each
variant's opening stock is in the ledger. A few variants hold only a handful of
units so that clients fight over the last ones.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("SHOPDESK_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_DB_PREFIX = "shopdesk_bench_checkout"
LOW_STOCK = 5
PLENTY = 1_000_000

# (product, description, [(variant, price in cents, stock)])
PRODUCTS = [
    ("手工曲奇禮盒", "牛油曲奇，每盒 12 件", [("原味", 16800, LOW_STOCK), ("朱古力", 17800, PLENTY)]),
    ("Matcha cookies 抹茶曲奇", "Uji matcha, tin of 20", [("Tin of 20", 9850, LOW_STOCK)]),
    ("Egg rolls 蛋卷", "", [("Classic 原味", 8800, PLENTY), ("Sesame 芝麻", 9200, PLENTY)]),
    ("杏仁餅", "澳門風味", [("", 6800, PLENTY)]),
    ("Pineapple cakes 鳳梨酥", "Box of 10", [("Box of 10", 12800, LOW_STOCK),
                                          ("Box of 20", 23800, PLENTY)]),
]


@dataclass
class BenchDB:
    kind: str  # "sqlite" | "postgres"
    url: str  # SQLAlchemy URL the app is given (DATABASE_URL)
    pg_name: str = ""
    initial: dict[int, int] = field(default_factory=dict)  # variant id -> opening stock
    low_ids: list[int] = field(default_factory=list)

    def drop(self) -> None:
        if self.kind == "postgres" and self.pg_name:
            _pg_admin(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


def create_database(kind: str, workdir: Path) -> BenchDB:
    if kind == "sqlite":
        return BenchDB("sqlite", f"sqlite:///{workdir / 'bench.db'}")
    # A unique name under the fixed prefix: two runs at once never share one.
    name = f"{PG_DB_PREFIX}_{uuid.uuid4().hex[:8]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return BenchDB("postgres", f"{base}/{name}", pg_name=name)


def app_env(bench_db: BenchDB, workdir: Path) -> dict[str, str]:
    """The environment gunicorn and the migration run with: a throwaway instance."""
    env = dict(os.environ)
    env.pop("REDIS_URL", None)  # the embedded Redis in the temp dir, never a shared one
    env.update(DATABASE_URL=bench_db.url, SECRET_KEY="bench-checkout-" + "k" * 32,
               SHOPDESK_ENV="development", PYTHONPATH=str(ROOT))
    return env


def bench_app(bench_db: BenchDB, workdir: Path):
    from app import create_app

    instance = workdir / "instance"
    return create_app({"SECRET_KEY": "bench", "SQLALCHEMY_DATABASE_URI": bench_db.url,
                       "UPLOAD_FOLDER": str(instance / "uploads"),
                       "GENERATED_FOLDER": str(instance / "generated"),
                       "MAIL_FOLDER": str(instance / "mail"), "NOTIFY_DISPATCH": False})


def migrate_and_seed(bench_db: BenchDB, workdir: Path) -> None:
    flask = Path(sys.executable).with_name("flask")
    subprocess.run([str(flask), "--app", "app", "db", "upgrade"], cwd=ROOT, check=True,
                   env=app_env(bench_db, workdir), stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)
    from domain.actors import SYSTEM
    from domain.catalog import VariantInput, save_product
    from domain.db import db
    from domain.demo import DEMO_PAYMENT_DETAILS
    from domain.models import PaymentMethod
    from domain.store import ensure_store_defaults

    app = bench_app(bench_db, workdir)
    with app.app_context():
        ensure_store_defaults()
        for code in ("fps", "bank_transfer"):
            method = db.session.query(PaymentMethod).filter_by(code=code).one()
            for key, value in DEMO_PAYMENT_DETAILS[code].items():
                setattr(method, key, value)
            method.enabled = True
        db.session.commit()
        for pos, (name, description, variants) in enumerate(PRODUCTS):
            product = save_product(None, name=name, description=description, actor=SYSTEM,
                                   variants=[VariantInput(id=None, name=v, sku=f"BENCH-{pos}-{i}",
                                                          price=f"{cents / 100:.2f}", stock=stock)
                                             for i, (v, cents, stock) in enumerate(variants)])
            for variant in product.variants:
                bench_db.initial[variant.id] = variant.stock
                if variant.stock == LOW_STOCK:
                    bench_db.low_ids.append(variant.id)
        db.session.remove()
        db.engine.dispose()


def check_books(bench_db: BenchDB, workdir: Path) -> dict:
    """After the run: negative stock, units sold past the opening stock, ledger mismatches."""
    from sqlalchemy import func, select

    from domain.db import db
    from domain.inventory import reconcile
    from domain.models import Order, OrderLine, Variant

    app = bench_app(bench_db, workdir)
    with app.app_context():
        stock = dict(db.session.execute(select(Variant.id, Variant.stock)).all())
        sold = dict(db.session.execute(
            select(OrderLine.variant_id, func.sum(OrderLine.quantity))
            .join(Order, Order.id == OrderLine.order_id).where(Order.kind == "placed")
            .group_by(OrderLine.variant_id)).all())
        orders = db.session.scalar(select(func.count(Order.id)).where(Order.kind == "placed"))
        mismatches = reconcile()
        db.session.remove()
        db.engine.dispose()
    oversold = sum(max(0, int(sold.get(vid, 0)) - opening)
                   for vid, opening in bench_db.initial.items())
    oversold += sum(-s for s in stock.values() if s is not None and s < 0)
    # Stock left plus units sold must be the opening stock (nothing cancels during the run).
    drift = sum(1 for vid, opening in bench_db.initial.items()
                if (stock.get(vid) or 0) + int(sold.get(vid, 0)) != opening)
    low_sold = sum(int(sold.get(vid, 0)) for vid in bench_db.low_ids)
    return {"orders_in_db": orders, "oversold_units": oversold,
            "negative_stock_variants": sum(1 for s in stock.values() if s is not None and s < 0),
            "ledger_mismatches": len(mismatches), "stock_drift_variants": drift,
            "low_stock_units_sold": low_sold,
            "low_stock_units_offered": LOW_STOCK * len(bench_db.low_ids)}
