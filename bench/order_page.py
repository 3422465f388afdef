"""Benchmark the order page (issue 14): an order with 20 lines and 30 history events,
in a database of N orders. Prints p50/p95 of the whole page and of its htmx history
block, the SQL statements it runs, and peak RSS; ends with a JSON line.

    .venv/bin/python -m bench.order_page --keep /tmp/b1m --orders 1000000 --runs 50

It reuses a database kept by ``bench/orders_list.py --keep DIR`` (or builds one), and
as its baseline times the same page for a small order (1 line, 3 events) in the same
run: the big order should cost little more than the small one, at any table size.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
from pathlib import Path

from sqlalchemy import event, select

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.orders_list import PASSWORD, SIGNED_IN, build, open_app, summary, timed  # noqa: E402


def make_big_order(lines: int = 20, events: int = 30) -> str:
    """Place an order of ``lines`` different variants through the domain, then give it
    history: proof, confirmation, notes. Returns its number."""
    from domain.actors import Actor
    from domain.db import db
    from domain.models import PaymentMethod, ShippingMethod, Variant
    from domain.orders import (
        Checkout,
        CustomerDetails,
        add_note,
        confirm_payment,
        place_order,
        upload_proof,
    )

    staff = Actor("staff", 1, "Bench")
    variants = list(db.session.scalars(select(Variant.id).where(
        (Variant.stock.is_(None)) | (Variant.stock > 100)).order_by(Variant.id).limit(lines)))
    payment = db.session.scalar(select(PaymentMethod.id).where(PaymentMethod.code == "fps"))
    shipping = db.session.scalar(select(ShippingMethod.id).where(ShippingMethod.kind == "delivery"))
    order = place_order(Checkout(
        customer=CustomerDetails(name="陳大文", phone="9123 4567", email="tai.man@example.hk",
                                 address="九龍旺角彌敦道 1 號 12 樓 A 室"),
        items=[(v, 1 + i % 3) for i, v in enumerate(variants)], payment_method_id=payment,
        shipping_method_id=shipping))
    upload_proof(order.id, path="bench/proof.png", sha256="b" * 64)
    confirm_payment(order.id, actor=staff)
    for n in range(max(0, events - 3)):
        add_note(order.id, f"備註 {n}: 客人要求改為下午送貨 / customer asked for an afternoon slot",
                 actor=staff)
    return order.number


def make_small_order() -> str:
    from domain.db import db
    from domain.models import PaymentMethod, ShippingMethod, Variant
    from domain.orders import Checkout, CustomerDetails, place_order

    variant = db.session.scalar(select(Variant.id).where(
        (Variant.stock.is_(None)) | (Variant.stock > 100)).order_by(Variant.id).limit(1))
    payment = db.session.scalar(select(PaymentMethod.id).where(PaymentMethod.code == "fps"))
    shipping = db.session.scalar(select(ShippingMethod.id).where(ShippingMethod.kind == "delivery"))
    return place_order(Checkout(
        customer=CustomerDetails(name="Amy Wong", phone="9876 5432", email="amy@example.hk",
                                 address="Central"),
        items=[(variant, 1)], payment_method_id=payment, shipping_method_id=shipping)).number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="shopdesk-bench-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        if (workdir / "bench.db").exists():
            from flask_migrate import upgrade

            app = open_app(workdir / "bench.db")
            with app.app_context():
                upgrade()
        else:
            app, _path, _seconds = build(args.orders, workdir)
        from domain.db import db
        from domain.models import Order

        with app.app_context():
            total = db.session.query(Order).count()
            big, small = make_big_order(), make_small_order()
        client = app.test_client()
        if client.post("/login", data={"email": SIGNED_IN, "password": PASSWORD}).status_code != 302:
            print("login failed", file=sys.stderr)
            return 1
        statements = {"n": 0}
        with app.app_context():
            event.listen(db.engine, "before_cursor_execute",
                         lambda *a: statements.__setitem__("n", statements["n"] + 1))

        def page(number, htmx=False):
            headers = {"HX-Request": "true"} if htmx else {}

            def get():
                response = client.get(f"/orders/{number}", headers=headers)
                assert response.status_code == 200, response.status_code
            return get

        results = {}
        for name, number in (("small_order", small), ("big_order", big)):
            statements["n"] = 0
            page(number)()
            per_page = statements["n"]
            results[name] = {"page": summary(timed(page(number), args.runs)),
                             "statements": per_page}
            print(f"{name:12} ({number}) page p50 {results[name]['page']['p50']:6.2f} "
                  f"p95 {results[name]['page']['p95']:6.2f} ms, {per_page} SQL statements",
                  flush=True)
        ratio = results["big_order"]["page"]["p95"] / results["small_order"]["page"]["p95"]
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{total} orders; big/small p95 {ratio:.2f}x; peak RSS {rss:.0f} MB")
        with app.app_context():
            db.engine.dispose()
        print(json.dumps({"orders": total, "runs": args.runs, "ratio_p95": round(ratio, 2),
                          "peak_rss_mb": round(rss, 1), **results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
