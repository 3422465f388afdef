"""Search reads input the way people type it (issue 7): full-width forms, odd
spaces, order numbers with # and dashes, phones with or without the country
code, simplified or traditional Chinese, variant names and SKUs. On SQLite
and on PostgreSQL, plus the stored E.164 form, the migration's backfill and
PostgreSQL's indexed path for one- and two-character searches."""

from __future__ import annotations

import os
import uuid

import pytest
from conftest import fill_payment_details
from sqlalchemy import select, text, update

from domain import orders as actions
from domain.db import db
from domain.demo import seed_demo
from domain.drafts import DraftInput, create_draft, update_draft
from domain.models import Order, PaymentMethod, Product, ShippingMethod, Variant
from domain.orders import Checkout, CustomerDetails, place_order
from domain.phones import region_for, to_e164
from domain.search import OrderQuery
from domain.search_index import _postgres_match
from domain.search_text import document, fold, grams, needles

PG_ADMIN_URL = os.environ.get("SHOPDESK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def found(q: str, **filters) -> set[str]:
    ids = select(Order.number).where(*OrderQuery(q=q, **filters).where_clauses())
    db.session.expire_all()
    return set(db.session.scalars(ids))


def _variant(product: str, option: str, sku: str, barcode: str) -> int:
    item = db.session.scalar(select(Product).where(Product.name == product))
    if item is None:
        item = Product(name=product)
        db.session.add(item)
        db.session.flush()
    v = Variant(product_id=item.id, name=option, sku=sku, barcode=barcode, price_cents=1000,
                stock=None)
    db.session.add(v)
    db.session.commit()
    return v.id


def _order(item: int, name: str, phone: str, email: str = "") -> str:
    method = db.session.scalar(select(PaymentMethod.id).where(PaymentMethod.code == "fps"))
    shipping = db.session.scalar(select(ShippingMethod.id).where(ShippingMethod.kind == "delivery"))
    return place_order(Checkout(
        customer=CustomerDetails(name=name, phone=phone, email=email, address="旺角"),
        items=[(item, 1)], payment_method_id=method, shipping_method_id=shipping)).number


def build_shop() -> dict[str, str]:
    matcha = _variant("曲奇禮盒", "抹茶", "COOKIE-MATCHA", "4891111000011")
    plain = _variant("曲奇禮盒", "原味", "COOKIE-PLAIN", "4891111000028")
    tea = _variant("Jasmine Green Tea", "250g", "TEA-250", "4892222000015")
    shop = {
        "chan": _order(plain, "陳大文", "9757 5358", "tai.man@example.hk"),
        "cc": _order(tea, "Karen Ho", "+852 9876 5432", "karen@example.com"),
        "spaced": _order(tea, "黃 嘉欣", "6123 0000", "kayan@example.com"),
        "simplified": _order(plain, "陈小明", "5123 4567", "ming@example.cn"),
        "matcha": _order(matcha, "Amy Wong", "2345 6789", "amy@example.com"),
        "next": _order(tea, "Ivan Lee", "8765 4321", "ivan@example.com"),
    }
    # Written the way WhatsApp pastes it (no checkout accepts these forms).
    db.session.execute(update(Order).where(Order.number == shop["next"])
                       .values(customer_name="ＩＶＡＮ　　Ｌｅｅ"))
    db.session.commit()
    return shop


@pytest.fixture(scope="module")
def pg_shop():
    import psycopg
    from flask_migrate import upgrade

    from app import create_app
    from domain.store import ensure_store_defaults

    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"No PostgreSQL at {PG_ADMIN_URL}: {exc}")
    name = f"shopdesk_norm_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    pg_app = create_app({"TESTING": True, "SECRET_KEY": "pg",
                         "SQLALCHEMY_DATABASE_URI": f"{url}/{name}"})
    try:
        with pg_app.app_context():
            upgrade()
            ensure_store_defaults()
            fill_payment_details()
            shop = build_shop()
            db.session.remove()
        yield pg_app, shop
    finally:
        with pg_app.app_context():
            db.engine.dispose()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def shop(app):
    return build_shop()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_shop(request):
    if request.param == "sqlite":
        yield request.getfixturevalue("shop")
        return
    pg_app, shop = request.getfixturevalue("pg_shop")
    with pg_app.app_context():
        yield shop
        db.session.rollback()
        db.session.remove()


def expect(shop, *keys) -> set[str]:
    return {shop[k] for k in keys}


# ------------------------------------------------------------------ the forms people type


@pytest.mark.parametrize("q,keys", [
    # full-width digits and letters, searched and stored
    ("５３５８", ["chan"]), ("９７５７　５３５８", ["chan"]), ("ＡＭＹ", ["matcha"]),
    ("ivan lee", ["next"]), ("IVAN", ["next"]), ("ｉｖａｎ ｌｅｅ", ["next"]),
    # the ideographic space, repeated spaces, a space inside a Chinese name
    ("陳　大文", ["chan"]), ("陳 大文", ["chan"]), ("陳   大 文", ["chan"]),
    ("amy    wong", ["matcha"]), ("  Amy\u3000Wong  ", ["matcha"]),
    ("黃嘉欣", ["spaced"]), ("黃 嘉欣", ["spaced"]), ("嘉欣", ["spaced"]),
    # simplified and traditional, either way round
    ("陈大文", ["chan"]), ("陳大文", ["chan"]), ("陈小明", ["simplified"]),
    ("陳小明", ["simplified"]), ("黄嘉欣", ["spaced"]), ("曲奇礼盒", ["chan", "simplified", "matcha"]),
    # phones with or without the country code, in either direction
    ("+852 9757 5358", ["chan"]), ("85297575358", ["chan"]), ("(852) 9757 5358", ["chan"]),
    ("852-9757-5358", ["chan"]), ("+85297575358", ["chan"]), ("97575358", ["chan"]),
    ("98765432", ["cc"]), ("9876 5432", ["cc"]), ("+852 9876 5432", ["cc"]),
    ("(852) 98765432", ["cc"]), ("５４３２", ["cc", "next"]),  # next: 8765 4321
    # variant names and SKUs
    ("抹茶", ["matcha"]), ("曲奇禮盒 抹茶", ["matcha"]), ("曲奇礼盒抹茶", ["matcha"]),
    ("cookie-matcha", ["matcha"]), ("COOKIE", ["chan", "simplified", "matcha"]),
    ("原味", ["chan", "simplified"]), ("250g", ["cc", "spaced", "next"]),
    # nothing
    ("綠茶", []), ("+852 9757 5359", []), ("+44 9757 5358", []),
])
def test_forms_people_type_find_the_order(any_shop, q, keys):
    assert found(q) == expect(any_shop, *keys), q


def test_order_number_written_any_way(any_shop):
    number = any_shop["matcha"]                      # "SD10005"
    digits = number[2:]
    wide = number.translate({ord(c): ord(c) + 0xFEE0 for c in number})  # ＳＤ１０００５
    for q in (number, f"#{number}", f"#{digits}", f"SD-{digits}", f"SD {digits}",
              f"sd{digits}", f"# sd - {digits}", wide, f"＃{wide}", digits):
        assert found(q) == {number}, q
    assert found(f"SD-{digits}9") == set()
    assert found(f"#XY{digits}") == set()


def test_digits_never_match_across_two_numbers(any_shop):
    # "chan" is 9757 5358, "cc" 9876 5432: the end of one and the start of the other
    assert found("53589876") == set()
    assert found("5358 9876") == set()
    # "cc" (+852 9876 5432) and "next" (8765 4321), the two numbers side by side
    assert found("54328765") == set()
    assert found("98765432 8765") == set()


def test_one_field_holding_two_numbers_keeps_them_apart(shop, make_order):
    both = make_order(name="Two Phones", phone="6888 1212", email="two@example.com")
    db.session.execute(update(Order).where(Order.id == both.id)
                       .values(customer_phone="9123 4567 / 6888 1212"))
    db.session.commit()
    assert found("91234567") == {both.number}
    assert found("68881212") == {both.number}
    assert found("45676888") == set()
    assert found("+852 6888 1212") == {both.number}


@pytest.mark.parametrize("q", [
    "\u3000", "\u3000\u3000", "＂", "＂＂", "％", "＿", "＼", "＊", "（", "）", "＃", "#", "+", "--",
    "(852)", "+852", "852", "#SD", "#" * 50, "SD-", "# - #", "＋８５２", "8" * 40, "+" + "9" * 30,
    "00852 9757 5358 " * 5, "陳" * 200, "\u3000陈\u3000" * 50, "a\u3000OR\u3000b", "NEAR（陳）",
    "\ufeff", "\u200b大文\u200b", "ｓｄ' OR 1=1 --", "\U0002a6a5", "𠀀𠀁", "ﾀﾞｲﾌﾞﾝ", "①②③④",
])
def test_hostile_forms_do_not_crash_or_match_everything(any_shop, q):
    result = found(q)
    assert len(result) <= 1, (q, result)
    assert OrderQuery(q=q).count() == len(result)


def test_query_string_forms_through_the_list_view(owner_client, shop):
    import re

    for q, key in [("陈大文", "chan"), ("+852 9757 5358", "chan"), ("ＳＤ" + shop["cc"][2:], "cc"),
                   ("抹茶", "matcha"), ("#" + shop["next"], "next")]:
        html = owner_client.get("/orders", query_string={"q": q}, htmx=True).get_data(as_text=True)
        assert set(re.findall(r'id="row-([^"]+)"', html)) == {shop[key]}, q


# ------------------------------------------------------------------ the pieces


def test_fold_is_stable_and_one_form():
    for value in ["ＳＤ１２００１", "陳 大文", "陈大文", "曲奇禮盒　抹茶", "Amy  Wong", "髮", "發", "台灣",
                  "臺灣", "𠀀 𠀁", "①", "ﾀﾞｲﾌﾞﾝ"]:
        assert fold(fold(value)) == fold(value), value
    assert fold("ＳＤ１２００１") == "sd12001"
    assert fold("陳　大文") == fold("陳 大 文") == fold("陈大文") == "陈大文"
    assert fold("Amy \u3000 Wong") == "amy wong"
    assert fold("臺灣") == fold("台灣") == fold("台湾")
    assert fold("USB-C 充電線") == "usb-c 充电线"       # a space next to Latin stays
    assert fold(None) == "" and fold(42) == "42"


def test_needles():
    assert needles("#SD12001") == ["#sd12001", "sd12001"]
    assert needles("SD 12001") == ["sd 12001", "sd12001"]
    assert needles("#12001") == ["#12001", "12001"]
    assert needles("+852 9757 5358") == ["+852 9757 5358", "85297575358", "97575358"]
    assert needles("(852) 9757 5358") == ["(852) 9757 5358", "85297575358", "97575358"]
    assert needles("98765432") == ["98765432"]
    assert needles("852") == ["852"]
    assert needles("４５６７") == ["4567"]
    assert needles("a 1") == ["a 1"]
    assert needles("\u3000\x00\n") == []


def test_document_fields_are_one_per_line():
    doc = document("SD10001", "陳 大文", "9123 4567 / 6888 1212", "Tai@X.hk",
                   [("曲奇禮盒", "抹茶", "C-1", "489111"), ("Tea", "", "T-1", "489222")])
    assert doc == ("sd10001\n陈大文\n9123 4567 / 6888 1212\n91234567\n68881212\n"
                   "tai@x.hk\n曲奇礼盒抹茶\nc-1\n489111\ntea\nt-1\n489222\n\n")
    # what the SQLite trigger passes: lines as one string
    assert document("SD1", "x", "", "", "a\x1fb\x1fc\x1fd\x1ee\x1f\x1f\x1ff") == \
        "sd1\nx\na b\nc\nd\ne\nf\n\n"
    assert document(None, None, None, None, None) == "\n\n"
    assert set(grams("ab\ncd\n\n")) == {"a", "b", "ab", "c", "d", "cd"}


@pytest.mark.parametrize("raw,e164", [
    ("9757 5358", "+85297575358"), ("+852 9757 5358", "+85297575358"),
    ("(852) 9757 5358", "+85297575358"), ("85297575358", "+85297575358"),
    ("９７５７ ５３５８", "+85297575358"), ("+86 138 0013 8000", "+8613800138000"),
    ("9123 4567 / 6888 1212", "+85291234567"), ("", ""), ("12", ""), ("abc", ""),
    ("+" * 40, ""), ("0" * 40, ""),
])
def test_e164(raw, e164):
    assert to_e164(raw, "HK") == e164


def test_region_comes_from_the_time_zone_then_the_currency():
    assert region_for("Asia/Hong_Kong", "HKD") == "HK"
    assert region_for("Asia/Taipei", "HKD") == "TW"
    assert region_for("Mars/Olympus", "SGD") == "SG"
    assert region_for(None, None) == "HK"


# ------------------------------------------------------------------ E.164 is stored


def test_placed_orders_and_drafts_store_the_e164_form(shop, make_variant):
    assert db.session.scalar(select(Order.customer_phone_e164)
                             .where(Order.number == shop["chan"])) == "+85297575358"
    assert db.session.scalar(select(Order.customer_phone_e164)
                             .where(Order.number == shop["cc"])) == "+85298765432"
    from domain.actors import Actor

    staff = Actor("staff", 1, "T")
    shipping = db.session.scalar(select(ShippingMethod.id).where(ShippingMethod.kind == "delivery"))
    item = make_variant().id
    draft = create_draft(DraftInput(CustomerDetails("草稿", "6111 2222", "", "旺角"),
                                    [(item, 1)], shipping), actor=staff)
    assert draft.customer_phone_e164 == "+85261112222"
    draft = update_draft(draft.id, DraftInput(CustomerDetails("草稿", "+852 6333 4444", "", "旺角"),
                                              [(item, 1)], shipping), actor=staff)
    assert draft.customer_phone_e164 == "+85263334444"
    assert OrderQuery(q="63334444", list="unpaid").count() == 1
    assert OrderQuery(q="61112222", list="unpaid").count() == 0


def test_a_phone_changed_without_its_e164_is_not_found_by_the_old_number(shop):
    order = actions.get_order_by_number(shop["chan"])
    order.customer_phone = "6000 1111"               # the e164 column still says 9757 5358
    db.session.commit()
    assert found("97575358") == set()
    assert found("+852 9757 5358") == set()
    assert found("+852 6000 1111") == {shop["chan"]}


def test_migration_backfills_e164_and_rebuilds_the_index(tmp_path):
    """Orders written before d4b2f6a1b8e3 get their E.164 form and the new text."""
    from flask_migrate import downgrade, upgrade

    from app import create_app
    from domain.store import ensure_store_defaults

    app = create_app({"TESTING": True, "SECRET_KEY": "m",
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'm.db'}"})
    with app.app_context():
        upgrade()
        ensure_store_defaults()
        seed_demo(40, seed=5)
        downgrade(revision="c3a1e5f0a7d2")
        db.session.execute(text(
            "UPDATE orders SET customer_name = '陳 大文', customer_phone = '+852 9757 5358' "
            "WHERE id = 1"))
        db.session.commit()
        upgrade()
        rows = db.session.execute(text(
            "SELECT id, customer_phone, customer_phone_e164 FROM orders")).all()
        assert all(e164 == to_e164(phone, "HK") and e164.startswith("+852")
                   for _, phone, e164 in rows)
        assert db.session.scalar(text("SELECT count(*) FROM order_search")) == len(rows) == 40
        first = db.session.get(Order, 1)
        assert found("陈大文", list=first.kind == "draft" and "unpaid" or "paid") == {first.number}
        assert found("97575358", list=first.kind == "draft" and "unpaid" or "paid") \
            == {first.number}
        db.session.remove()
        db.engine.dispose()


def test_bulk_seed_text_equals_the_document_of_each_row(app):
    seed_demo(120, seed=3)
    stored = dict(db.session.execute(text("SELECT rowid, doc FROM order_search")).all())
    for order in db.session.scalars(select(Order)):
        lines = [(ln.product_name, ln.variant_name, ln.sku, ln.barcode) for ln in order.lines]
        assert stored[order.id] == document(order.number, order.customer_name,
                                            order.customer_phone, order.customer_email, lines)


# ------------------------------------------------------------------ PostgreSQL


def test_postgres_short_searches_use_the_pairs_index(pg_shop):
    pg_app, shop = pg_shop
    with pg_app.app_context():
        db.session.execute(text("SET LOCAL enable_seqscan = off"))
        # (the planner would rather read six rows than any index; the lookup
        # of matching orders is what must have an indexed path)
        for q, index in [("陳", "grams"), ("陈", "grams"), ("大文", "grams"), ("抹", "grams"),
                         ("５", "grams"), ("43", "grams"), ("陈大文", "trgm"), ("抹茶", "grams"),
                         ("+852 9757 5358", "trgm"), ("#SD10001", "trgm")]:
            sql = str(_postgres_match(needles(q)).compile(
                db.engine, compile_kwargs={"literal_binds": True}))
            plan = "\n".join(db.session.scalars(text("EXPLAIN " + sql)))
            assert f"ix_order_search_doc_{index}" in plan and "Seq Scan" not in plan, (q, plan)
        db.session.rollback()
        db.session.remove()


def test_postgres_text_follows_raw_writes_bulk_seed_and_deletes(pg_shop):
    pg_app, shop = pg_shop
    with pg_app.app_context():
        try:
            db.session.execute(update(Order).where(Order.number == shop["matcha"])
                               .values(customer_name="張　三"))
            db.session.commit()
            assert found("张三") == {shop["matcha"]}
            assert found("wong") == set()
            for n in range(4):  # the seeder draws up to four items from the catalogue
                _variant("鳳梨酥", f"{n}件裝", f"PINE-{n}", f"48933330000{n}")
            seed_demo(200, seed=11)
            counts = db.session.execute(text(
                "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM order_search_doc), "
                "(SELECT count(*) FROM order_search_stale)")).one()
            assert counts[0] == counts[1] and counts[2] == 0
            row = db.session.execute(text(
                "SELECT o.number, o.customer_name, o.customer_phone, o.customer_email, d.doc "
                "FROM orders o JOIN order_search_doc d "
                "ON d.order_id = o.id ORDER BY o.id DESC LIMIT 1")).one()
            order = db.session.scalar(select(Order).where(Order.number == row[0]))
            lines = [(ln.product_name, ln.variant_name, ln.sku, ln.barcode) for ln in order.lines]
            assert row[4] == document(*row[:4], lines)
        finally:
            db.session.execute(update(Order).where(Order.number == shop["matcha"])
                               .values(customer_name="Amy Wong"))
            keep = {"keep": list(shop.values())}
            db.session.execute(text("DELETE FROM order_event WHERE order_id IN "
                                    "(SELECT id FROM orders WHERE number <> ALL(:keep))"), keep)
            db.session.execute(text("DELETE FROM order_line WHERE order_id IN "
                                    "(SELECT id FROM orders WHERE number <> ALL(:keep))"), keep)
            db.session.execute(text("DELETE FROM orders WHERE number <> ALL(:keep)"), keep)
            db.session.commit()
        assert db.session.scalar(text("SELECT count(*) FROM order_search_doc")) == len(shop)
        assert found("amy") == {shop["matcha"]}
        db.session.remove()
