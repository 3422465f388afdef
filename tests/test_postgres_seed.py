"""``seed-demo`` on PostgreSQL, then the store keeps working: real HTTP checkouts and
drafts get new ids above the seeded ones (issue 7).

The seed writes its rows with explicit ids (order numbers come from ids); on
PostgreSQL that leaves each id sequence behind unless the seed moves it on,
and the next checkout then fails with a duplicate key (a 500).

Runs against the PostgreSQL server on loopback (``SHOPDESK_TEST_PG`` overrides
the admin URL), in a fresh database for this module; skipped when none answers.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select, text
from test_postgres import ADMIN_URL, _admin

pytest_plugins = ["jobs_fixtures"]

SEEDED_ORDERS = 300
OWNER = ("owner@example.com", "shopdesk-demo")


@pytest.fixture(scope="module")
def pg_seeded(tmp_path_factory, embedded_redis):
    """A fresh PostgreSQL store seeded through the real ``seed-demo`` command.

    Yields (app, the highest id of every table right after seeding).
    """
    from flask_migrate import upgrade

    from app import create_app
    from domain.db import db
    from jobs import queue as job_queue

    name = f"shopdesk_test_{uuid.uuid4().hex[:10]}"
    admin = _admin()
    admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    folder = tmp_path_factory.mktemp("pg_seed")
    app = create_app({"TESTING": True, "SECRET_KEY": "pg-seed", "SQLALCHEMY_DATABASE_URI": url,
                      "UPLOAD_FOLDER": str(folder / "uploads"),
                      "GENERATED_FOLDER": str(folder / "generated"), "SERVER_NAME": None})
    try:
        with app.app_context():
            upgrade()
            embedded_redis.flushall()
            app.extensions[job_queue._EXTENSION] = embedded_redis
            result = app.test_cli_runner().invoke(
                args=["seed-demo", "--orders", str(SEEDED_ORDERS), "--seed", "3"])
            assert result.exit_code == 0, result.output
            db.session.rollback()
            yield app, _max_ids()
            app.extensions.pop(job_queue._EXTENSION, None)
            embedded_redis.flushall()
            db.session.remove()
            db.engine.dispose()
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _serial_tables() -> list[tuple[str, str]]:
    """(table, id column) of every table whose single integer key has a sequence."""
    from domain.db import db

    found = []
    for table in db.metadata.sorted_tables:
        keys = list(table.primary_key.columns)
        if len(keys) == 1 and db.session.scalar(
                text("SELECT pg_get_serial_sequence(quote_ident(:t), :c)"),
                {"t": table.name, "c": keys[0].name}):
            found.append((table.name, keys[0].name))
    return found


def _max_ids() -> dict[str, int]:
    from domain.db import db

    return {table: db.session.scalar(text(f'SELECT coalesce(max("{col}"), 0) FROM "{table}"'))
            for table, col in _serial_tables()}


@pytest.fixture
def shopper(pg_seeded):
    """An anonymous browser on the shop, sending the shop's CSRF token."""
    from conftest import Client

    app, _ = pg_seeded
    client = Client(app)
    client._token = client.token_from(client.get("/shop/").get_data(as_text=True))
    return client


def _sellable_variant(quantity: int):
    from domain.db import db
    from domain.models import Variant

    db.session.rollback()
    return db.session.scalar(select(Variant).where(
        (Variant.stock.is_(None)) | (Variant.stock >= quantity)).order_by(Variant.id).limit(1))


def _method_id(model, **where) -> int:
    from domain.db import db

    return db.session.query(model).filter_by(**where).first().id


def test_seed_moves_every_id_sequence_past_the_seeded_rows(pg_seeded):
    from domain.db import db

    _app, seeded = pg_seeded
    assert seeded["orders"] >= SEEDED_ORDERS and seeded["customer"] >= 50
    assert {"orders", "customer", "order_line", "order_event", "variant"} <= set(seeded)
    for table, col in _serial_tables():
        last = db.session.scalar(text(
            "SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence(quote_ident(:t), :c)"
            "::regclass), 0)"), {"t": table, "c": col})
        assert last >= seeded[table], f"{table}: sequence at {last}, rows up to {seeded[table]}"


def test_http_checkouts_after_seeding_get_new_ids(pg_seeded, shopper):
    from domain.db import db
    from domain.models import Customer, Order, PaymentMethod, ShippingMethod
    from domain.orders import order_number_for
    from domain.store import get_settings

    _app, seeded = pg_seeded
    variant = _sellable_variant(quantity=1)
    placed = []
    for i in range(3):
        added = shopper.post("/shop/cart/add", {"variant_id": variant.id, "quantity": 1})
        assert added.status_code == 302
        cart = shopper.get("/shop/cart")
        assert cart.status_code == 200 and variant.product.name in cart.get_data(as_text=True)
        response = shopper.post("/shop/checkout", {
            "name": f"種子買家{i}", "phone": f"3{i}00 0{i}11", "email": "", "address": "旺角彌敦道 1 號",
            "shipping_method": _method_id(ShippingMethod, kind="delivery"),
            "payment_method": _method_id(PaymentMethod, code="fps"), "card_number": ""})
        assert response.status_code == 302, response.get_data(as_text=True)[:2000]
        assert "/shop/o/" in response.headers["Location"]
        page = shopper.get(response.headers["Location"])
        assert page.status_code == 200
        db.session.rollback()
        placed.append(db.session.scalar(select(Order).where(
            Order.public_token == response.headers["Location"].rsplit("/", 1)[1])))
    prefix = get_settings().order_prefix
    ids = [o.id for o in placed]
    assert ids == sorted(ids) and ids[0] > seeded["orders"]
    for order in placed:
        assert (order.status, order.source) == ("pending_payment", "online_store")
        assert order.number == order_number_for(order.id, prefix)
        assert order.customer_id > seeded["customer"]
        assert all(line.id > seeded["order_line"] for line in order.lines)
    assert db.session.scalar(select(func.count(Customer.id)).where(
        Customer.id > seeded["customer"])) == 3


def test_staff_draft_after_seeding_gets_a_new_id(pg_seeded):
    from conftest import Client

    from domain.db import db
    from domain.models import Order, ShippingMethod
    from domain.orders import order_number_for
    from domain.store import get_settings

    app, seeded = pg_seeded
    owner = Client(app)
    owner.login(type("Login", (), {"email": OWNER[0]}), password=OWNER[1])
    variant = _sellable_variant(quantity=2)
    response = owner.post("/drafts/new", {
        "customer_name": "李小姐", "phone": "6123 4567", "email": "", "address": "沙田",
        "lines-0-variant_id": variant.id, "lines-0-quantity": 2,
        "lines-1-variant_id": 0, "lines-1-quantity": "",
        "shipping_method": _method_id(ShippingMethod, kind="delivery"),
        "shipping_fee": "15", "discount": "0"})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    db.session.rollback()
    draft = db.session.scalar(select(Order).where(Order.kind == "draft")
                              .order_by(Order.id.desc()).limit(1))
    assert draft.id > seeded["orders"] and draft.customer_name == "李小姐"
    assert draft.number == order_number_for(draft.id, get_settings().order_prefix)
    assert owner.get(response.headers["Location"]).status_code == 200


def test_id_sequences_only_move_forward(pg_seeded):
    """Resyncing never moves a sequence back below ids it has already handed out."""
    from domain.db import db
    from domain.demo import sync_id_sequences
    from domain.models import Product

    before = db.session.scalar(text(
        "SELECT pg_sequence_last_value(pg_get_serial_sequence('product', 'id')::regclass)"))
    db.session.execute(text("SELECT setval(pg_get_serial_sequence('product', 'id'), :v)"),
                       {"v": before + 50})
    db.session.commit()
    sync_id_sequences()
    db.session.commit()
    product = Product(name="After resync")
    db.session.add(product)
    db.session.commit()
    assert product.id == before + 51


def test_review_queue_images_after_seeding_on_postgres(pg_seeded):
    import re

    from conftest import Client

    app, _ = pg_seeded
    owner = Client(app).login(type("Login", (), {"email": OWNER[0]}), password=OWNER[1])
    html = owner.get("/review/").get_data(as_text=True)
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert sources, "the seeded store has payments to confirm"
    for url in sources:
        response = owner.get(url)
        assert (response.status_code, response.mimetype) == (200, "image/jpeg"), url
