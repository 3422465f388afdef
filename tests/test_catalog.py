"""Product rules (domain/catalog.py) with hostile input, archive, search, low stock."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from domain import inventory
from domain.actors import Actor
from domain.catalog import (
    ProductInvalid,
    VariantInput,
    archive_product,
    low_stock_count,
    save_product,
    search_products,
    unarchive_product,
)
from domain.db import db
from domain.errors import NotFound, ValidationError
from domain.models import Order, Product, StockMove, Variant
from domain.payments import sellable_catalog

STAFF = Actor("staff", 1, "Tester")
EAN = "4006381333931"  # a real EAN-13 with a valid check digit
EAN2 = "4891234567898"


def v(sku="B-001", name="", barcode="", price="128", stock="10", threshold="", id=None):
    return VariantInput(id=id, name=name, sku=sku, barcode=barcode, price=price, stock=stock,
                        low_stock_threshold=threshold)


def refused(**kw) -> dict:
    kw.setdefault("name", "曲奇禮盒")
    kw.setdefault("variants", [v()])
    with pytest.raises(ProductInvalid) as info:
        save_product(None, actor=STAFF, **kw)
    db.session.rollback()
    assert db.session.scalar(select(Product).limit(1)) is None  # nothing was written
    return {k: e.msgid for k, e in info.value.errors.items()}


def test_create_with_two_variants_writes_opening_ledger(app):
    p = save_product(None, name="曲奇禮盒", description="牛油曲奇",
                     variants=[v("b-001", "原味", EAN, "128.00", "12", "3"),
                               v("B-002", "朱古力", "", "138", "")], actor=STAFF)
    a, b = p.variants
    assert (a.sku, a.price_cents, a.stock, a.low_stock_threshold) == ("B-001", 12800, 12, 3)
    assert b.stock is None and b.barcode == ""
    moves = db.session.scalars(select(StockMove)).all()
    assert [(m.variant_id, m.delta, m.reason, m.actor_label) for m in moves] == [
        (a.id, 12, "opening", "Tester")]
    assert inventory.reconcile() == []


@pytest.mark.parametrize("variants,key,fragment", [
    ([v("B-1"), v("b-1", name="x")], "variants-1-sku", "used twice"),
    ([v("B-1", barcode=EAN), v("B-2", name="x", barcode=EAN)], "variants-1-barcode", "used twice"),
    ([v(barcode="4006381333932")], "variants-0-barcode", "check digit"),
    ([v(barcode="12345")], "variants-0-barcode", "8, 12, 13 or 14"),
    ([v(price="-5")], "variants-0-price", "positive amount"),
    ([v(price="99999999999")], "variants-0-price", "too large"),
    ([v(price="abc")], "variants-0-price", "positive amount"),
    ([v(stock="-1")], "variants-0-stock", "whole number"),
    ([v(stock="99999999")], "variants-0-stock", "between 0"),
    ([v(stock="1e3")], "variants-0-stock", "whole number"),
    ([v(threshold="-2")], "variants-0-low_stock_threshold", "Low-stock"),
    ([v(sku="")], "variants-0-sku", "required"),
    ([v(sku="=HYPERLINK(1)")], "variants-0-sku", "letters, digits"),
    ([v(name="A\x00B")], "variants-0-name", "invalid characters"),
    ([v(name="=1+1")], "variants-0-name", "must not start"),
    ([v("A", name="Big"), v("B", name="big")], "variants-1-name", "Two variants"),
    ([v("A"), v("B")], "variants-1-name", "Two variants"),  # two unnamed variants
    ([], "variants", "at least one variant"),
])
def test_variant_refusals(app, variants, key, fragment):
    errors = refused(variants=variants)
    assert key in errors and fragment in errors[key], errors


@pytest.mark.parametrize("name,fragment", [
    ("", "required"), ("x" * 10_000, "at most"), ("=SUM(A1:A9)", "must not start"),
    ("@cmd", "must not start"), ("+1", "must not start"), ("Tab\tname", "invalid characters"),
    ("bell\x07", "invalid characters"),
])
def test_product_name_refusals(app, name, fragment):
    errors = refused(name=name)
    assert fragment in errors["name"]


def test_description_too_long(app):
    assert "at most" in refused(description="x" * 10_000)["description"]


def test_every_mistake_reported_at_once(app):
    errors = refused(name="", variants=[v(sku="", price="-1", barcode="4006381333932")])
    assert set(errors) == {"name", "variants-0-sku", "variants-0-price", "variants-0-barcode"}


def test_sku_and_barcode_unique_store_wide(app):
    save_product(None, name="A", variants=[v("SKU-1", barcode=EAN)], actor=STAFF)
    with pytest.raises(ProductInvalid) as info:
        save_product(None, name="B", variants=[v("sku-1", barcode=EAN2)], actor=STAFF)
    assert "SKU-1" in str(info.value.errors["variants-0-sku"])
    db.session.rollback()
    with pytest.raises(ProductInvalid) as info:
        save_product(None, name="B", variants=[v("SKU-2", barcode=EAN)], actor=STAFF)
    assert "variants-0-barcode" in info.value.errors
    db.session.rollback()
    assert db.session.query(Product).count() == 1


def test_integrity_error_becomes_validation_error(app, monkeypatch):
    """Two saves racing past the clash check: the unique index refuses the second cleanly."""
    save_product(None, name="A", variants=[v("RACE-1")], actor=STAFF)
    monkeypatch.setattr("domain.catalog._clashes", lambda cleaned, errors: None)
    with pytest.raises(ValidationError) as info:
        save_product(None, name="B", variants=[v("RACE-1")], actor=STAFF)
    assert "just taken" in str(info.value)
    db.session.rollback()
    assert db.session.query(Product).count() == 1


def test_edit_keeps_stock_and_switches_tracking_through_the_ledger(app):
    p = save_product(None, name="茶", variants=[v("T-1", "綠茶", stock="5"),
                                               v("T-2", "紅茶", stock="")], actor=STAFF)
    a, b = p.variants
    inventory.adjust_stock(a.id, "-2", note="damaged", actor=STAFF)
    # the editor sends a stale count (5) for a; asks b to start tracking at 7
    p = save_product(p.id, name="茶葉", variants=[v("T-1", "綠茶", stock="5", id=a.id),
                                                v("T-2", "紅茶", stock="7", id=b.id)], actor=STAFF)
    db.session.expire_all()
    assert db.session.get(Variant, a.id).stock == 3
    assert db.session.get(Variant, b.id).stock == 7
    # back to unlimited
    save_product(p.id, name="茶葉", variants=[v("T-1", "綠茶", stock="unlimited", id=a.id),
                                             v("T-2", "紅茶", stock="7", id=b.id)], actor=STAFF)
    db.session.expire_all()
    assert db.session.get(Variant, a.id).stock is None
    reasons = [m.reason for m in inventory.ledger([a.id, b.id])]
    assert reasons == ["tracking", "tracking", "adjustment", "opening"]
    assert inventory.reconcile() == []


def test_remove_variant_deletes_or_deactivates(app, make_order):
    p = save_product(None, name="Mix", variants=[v("M-1", "A"), v("M-2", "B"), v("M-3", "C")],
                     actor=STAFF)
    a, b, c = p.variants
    ids = (a.id, b.id, c.id)
    make_order(items=[(b.id, 1)])
    save_product(p.id, name="Mix", variants=[v("M-1", "A", id=ids[0])], actor=STAFF)
    db.session.expire_all()
    assert db.session.get(Variant, ids[1]).active is False  # on an order: kept
    assert db.session.get(Variant, ids[2]) is None  # never ordered: gone
    assert inventory.reconcile() == []
    # an id of another product's variant is refused
    other = save_product(None, name="Other", variants=[v("O-1")], actor=STAFF)
    with pytest.raises(NotFound):
        save_product(p.id, name="Mix", variants=[v("O-1", id=other.variants[0].id)], actor=STAFF)


def test_archive_hides_and_refuses_orders_but_keeps_past_lines(app, make_order):
    p = save_product(None, name="限定月餅", variants=[v("MOON-1", stock="5")], actor=STAFF)
    vid, pid = p.variants[0].id, p.id
    old = make_order(items=[(vid, 2)])
    archive_product(pid)
    db.session.expire_all()
    product = db.session.get(Product, pid)
    assert product.active is False and product.archived_at is not None
    assert pid not in [x.id for x in sellable_catalog()]
    with pytest.raises(ValidationError, match="no longer for sale"):
        make_order(items=[(vid, 1)])
    db.session.rollback()
    lines = db.session.get(Order, old.id).lines
    assert [(ln.product_name, ln.quantity) for ln in lines] == [("限定月餅", 2)]
    assert search_products("月餅").total == 0
    assert search_products("月餅", include_archived=True).total == 1
    unarchive_product(pid)
    assert pid in [x.id for x in sellable_catalog()]
    make_order(items=[(vid, 1)])


def test_search_cjk_width_case_sku_barcode(app):
    save_product(None, name="曲奇禮盒", variants=[v("COOK-1", "朱古力味", EAN)], actor=STAFF)
    save_product(None, name="Green Tea", variants=[v("TEA-9", "Large")], actor=STAFF)
    names = lambda q: [p.name for p in search_products(q).items]  # noqa: E731
    assert names("曲奇") == ["曲奇禮盒"]
    assert names("礼盒") == ["曲奇禮盒"]  # simplified finds traditional
    assert names("朱古力") == ["曲奇禮盒"]  # variant name
    assert names("ｃｏｏｋ") == ["曲奇禮盒"]  # full-width SKU
    assert names("333931") == ["曲奇禮盒"]  # barcode substring
    assert names("green") == ["Green Tea"]
    assert names("large") == ["Green Tea"]
    assert names("") == ["Green Tea", "曲奇禮盒"]
    assert names("%") == [] and names("_") == []
    assert names("x" * 5000) == []


def test_search_is_paginated(app):
    for i in range(7):
        save_product(None, name=f"Item {i}", variants=[v(f"P-{i}")], actor=STAFF)
    page = search_products("item", limit=3, offset=3)
    assert page.total == 7 and [p.name for p in page.items] == ["Item 3", "Item 4", "Item 5"]
    assert page.has_prev and page.has_next
    assert search_products("", limit=3, offset=6).items[0].name == "Item 6"


def test_low_stock_count(app):
    p = save_product(None, name="Low", variants=[v("L-1", "a", stock="2", threshold="2"),
                                                 v("L-2", "b", stock="3", threshold="2"),
                                                 v("L-3", "c", stock="", threshold="5")],
                     actor=STAFF)
    assert low_stock_count() == 1
    inventory.adjust_stock(p.variants[1].id, "-1", note="broken", actor=STAFF)
    assert low_stock_count() == 2
    archive_product(p.id)
    assert low_stock_count() == 0
