"""Desk → Products pages, with and without htmx; CSRF, login, hostile input."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from domain import inventory
from domain.actors import Actor
from domain.catalog import VariantInput, save_product
from domain.db import db
from domain.models import Product, StockMove, Variant

EAN = "4006381333931"
STAFF = Actor("staff", 1, "Tester")


def product(name="曲奇禮盒", stock="10", threshold=""):
    return save_product(None, name=name, variants=[
        VariantInput(None, "原味", "COOK-1", EAN, "128", stock, threshold),
        VariantInput(None, "朱古力", "COOK-2", "", "138", "", "")], actor=STAFF)


def form(name="曲奇禮盒", rows=()):
    data = {"name": name, "description": ""}
    for i, row in enumerate(rows):
        for key, value in row.items():
            data[f"variants-{i}-{key}"] = value
    return data


def test_anonymous_goes_to_login(client, app):
    for url in ("/products/", "/products/new", "/products/1", "/products/1/edit"):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert client.post("/products/new", csrf=False).status_code in (302, 400)


def test_list_page_and_htmx_fragment(staff_client):
    product(threshold="10")
    page = staff_client.get("/products/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in html
    assert "曲奇禮盒" in html and "COOK-1" in html and EAN in html and "HK$128.00" in html
    assert "unlimited" in html and "Low stock" in html
    fragment = staff_client.get("/products/?q=礼盒", htmx=True)
    body = fragment.get_data(as_text=True)
    assert "<html" not in body and 'id="results"' in body and "曲奇禮盒" in body
    assert fragment.headers["HX-Push-Url"].endswith("/products/?q=%E7%A4%BC%E7%9B%92")
    none = staff_client.get("/products/?q=nothing-here", htmx=True).get_data(as_text=True)
    assert "No products match" in none


def test_archived_only_with_toggle(owner_client):
    p = product()
    pid = p.id
    assert owner_client.post(f"/products/{pid}/archive").status_code == 302
    assert "曲奇禮盒" not in owner_client.get("/products/").get_data(as_text=True)
    shown = owner_client.get("/products/?archived=1").get_data(as_text=True)
    assert "曲奇禮盒" in shown and "Archived" in shown
    assert owner_client.post(f"/products/{pid}/unarchive", htmx=True).headers["HX-Redirect"]
    db.session.expire_all()
    assert db.session.get(Product, pid).active


def test_create_product_without_js(staff_client):
    response = staff_client.post("/products/new", data=form("新品", [
        {"id": "", "name": "細", "sku": "n-1", "barcode": "", "price": "20", "stock": "4",
         "low_stock_threshold": "1"},
        {"id": "", "name": "大", "sku": "N-2", "barcode": EAN, "price": "30", "stock": ""},
        {"id": "", "name": "", "sku": "", "barcode": "", "price": "", "stock": ""},  # spare row
    ]))
    assert response.status_code == 302
    p = db.session.scalar(select(Product).where(Product.name == "新品"))
    assert [(x.sku, x.stock) for x in p.variants] == [("N-1", 4), ("N-2", None)]
    detail = staff_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Product saved." in detail and "Opening stock" in detail and "陳小明" in detail


def test_refused_save_keeps_typed_text_and_marks_fields(staff_client):
    bad = form("=cmd", [{"id": "", "name": "<b>x</b>", "sku": "S 1", "barcode": "4006381333932",
                         "price": "-3", "stock": "many"}])
    for htmx in (False, True):
        response = staff_client.post("/products/new", data=bad, htmx=htmx)
        html = response.get_data(as_text=True)
        assert response.status_code == 422
        assert ('value="=cmd"' in html) and "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html
        assert 'id="err-name"' in html and 'id="err-variants-0-barcode"' in html
        assert 'id="err-variants-0-price"' in html and 'id="err-variants-0-stock"' in html
        assert ("<html" in html) is (not htmx)
    assert db.session.query(Product).count() == 0


def test_edit_removes_and_adds_rows(staff_client):
    p = product()
    a, b = p.variants
    page = staff_client.get(f"/products/{p.id}/edit").get_data(as_text=True)
    assert 'value="COOK-1"' in page and "readonly" in page and "products/_image.html" not in page
    response = staff_client.post(f"/products/{p.id}/edit", data=form("曲奇", [
        {"id": str(a.id), "name": "原味", "sku": "COOK-1", "barcode": EAN, "price": "150",
         "stock": "999"},
        {"id": str(b.id), "name": "朱古力", "sku": "COOK-2", "price": "138", "remove": "1"},
        {"id": "", "name": "抹茶", "sku": "COOK-3", "price": "140", "stock": "2"},
    ]), htmx=True)
    assert response.status_code == 204 and response.headers["HX-Redirect"].endswith(f"/products/{p.id}")
    db.session.expire_all()
    variants = db.session.scalars(select(Variant).where(Variant.product_id == p.id)).all()
    assert [(x.sku, x.price_cents, x.stock) for x in variants] == [
        ("COOK-1", 15000, 10), ("COOK-3", 14000, 2)]  # stock not overwritten by the editor


def test_foreign_variant_id_is_404(staff_client):
    p = product()
    q = save_product(None, name="Tea", variants=[VariantInput(None, "", "TEA-1", "", "5", "", "")],
                     actor=STAFF)
    response = staff_client.post(f"/products/{p.id}/edit", data=form("x", [
        {"id": str(q.variants[0].id), "name": "", "sku": "TEA-1", "price": "5"}]))
    assert response.status_code == 404
    assert staff_client.post(f"/products/{p.id}/variants/{q.variants[0].id}/adjust",
                             data={"delta": "1", "note": "x"}).status_code == 404
    assert staff_client.get("/products/999999").status_code == 404


def test_adjust_with_and_without_htmx(staff_client):
    p = product()
    vid = p.variants[0].id
    response = staff_client.post(f"/products/{p.id}/variants/{vid}/adjust",
                                 data={"delta": "+12", "note": "received"})
    assert response.status_code == 302
    response = staff_client.post(f"/products/{p.id}/variants/{vid}/adjust",
                                 data={"delta": "-1", "note": "damaged"}, htmx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html
    assert f'id="variant-{vid}"' in html and "21 in stock" in html
    assert 'id="ledger" aria-labelledby="ledger-h" hx-swap-oob="true"' in html
    assert "+12" in html and "-1" in html and "damaged" in html and "Manual adjustment" in html
    assert inventory.reconcile() == []


@pytest.mark.parametrize("delta,note,message", [
    ("-11", "oops", "cannot go below zero"), ("abc", "x", "whole number"), ("0", "x", "not be zero"),
    ("5", "", "Say why"), ("5", "a\x00b", "one line"), ("99999999999", "x", "at most"),
])
def test_adjust_refusals(staff_client, delta, note, message):
    p = product()
    vid = p.variants[0].id
    for htmx in (True, False):
        response = staff_client.post(f"/products/{p.id}/variants/{vid}/adjust",
                                     data={"delta": delta, "note": note}, htmx=htmx)
        html = response.get_data(as_text=True)
        assert response.status_code == 422 and message in html
        assert f'value="{delta}"' in html
    db.session.expire_all()
    assert db.session.get(Variant, vid).stock == 10
    assert db.session.query(StockMove).count() == 1


def test_adjust_unlimited_refused(staff_client):
    p = product()
    response = staff_client.post(f"/products/{p.id}/variants/{p.variants[1].id}/adjust",
                                 data={"delta": "3", "note": "x"}, htmx=True)
    assert response.status_code == 422 and "unlimited" in response.get_data(as_text=True)


def test_csrf_missing_is_400(staff_client):
    p = product()
    vid = p.variants[0].id
    for url, data in ((f"/products/{p.id}/variants/{vid}/adjust", {"delta": "1", "note": "x"}),
                      (f"/products/{p.id}/archive", {}), (f"/products/{p.id}/unarchive", {}),
                      ("/products/new", form("X", [{"sku": "X-1", "price": "1"}])),
                      (f"/products/{p.id}/edit", form("X", [{"sku": "X-1", "price": "1"}]))):
        assert staff_client.post(url, data=data, csrf=False).status_code == 400
        assert staff_client.post(url, data=data, csrf=False, htmx=True).status_code == 400
    db.session.expire_all()
    assert db.session.get(Variant, vid).stock == 10 and db.session.get(Product, p.id).active


def test_ledger_links_order_number(staff_client, make_order):
    p = product()
    order = make_order(items=[(p.variants[0].id, 2)])
    html = staff_client.get(f"/products/{p.id}").get_data(as_text=True)
    assert f'href="/orders/{order.number}"' in html and "Order hold" in html and "-2" in html
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d HKT", html)  # a stated time carries its zone


def test_pages_in_chinese(staff_client, make_order):
    from domain.store import get_settings

    get_settings().language = "zh_Hant_HK"
    db.session.commit()
    p = product(threshold="20")
    inventory.adjust_stock(p.variants[0].id, "-1", note="破損", actor=STAFF)
    listing = staff_client.get("/products/").get_data(as_text=True)
    assert "產品" in listing and "不限" in listing and "Low stock" not in listing
    detail = staff_client.get(f"/products/{p.id}").get_data(as_text=True)
    assert "庫存記錄" in detail and "手動調整" in detail and "Manual adjustment" not in detail
    edit = staff_client.get(f"/products/{p.id}/edit").get_data(as_text=True)
    assert "儲存產品" in edit and "Save product" not in edit
    from test_pages_in_chinese import ALLOWED, english_left

    # data: SKUs, the actor, the store name
    # WebP: the image format (_image.html); HKT: the zone of a stated time (same in both languages)
    data = {"COOK", "Tester", "My", "Shop", "WebP", "HKT"}
    for url in ("/products/", "/products/?q=%E4%B9%9C", f"/products/{p.id}",
                f"/products/{p.id}/edit", "/products/new"):
        html = staff_client.get(url).get_data(as_text=True)
        assert english_left(html, ALLOWED | data) == [], url
