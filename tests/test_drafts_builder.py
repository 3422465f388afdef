"""The draft builder (issue 16): item search with steppers, the running total, the
fee override shown as such, the customer lookup, and forms that keep what was typed."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from domain import drafts
from domain.actors import Actor
from domain.catalog import archive_product, sellable_variants
from domain.customers import lookup_customers
from domain.db import db
from domain.errors import ValidationError
from domain.models import Order, ShippingMethod, Variant
from domain.orders import CustomerDetails

pytest_plugins = ["jobs_fixtures"]


def ship_id(kind="delivery"):
    return db.session.query(ShippingMethod).filter_by(kind=kind).first().id


def draft_count():
    db.session.rollback()
    return db.session.scalar(select(func.count(Order.id)).where(Order.kind == "draft"))


def form(lines=(), **extra):
    data = {"customer_name": "李小姐", "phone": "6123 4567", "email": "", "address": "沙田",
            "shipping_method": ship_id(), "shipping_fee": "", "discount": "", "q": "",
            "lookup": ""}
    for i, (vid, qty) in enumerate(lines):
        data[f"lines-{i}-variant_id"], data[f"lines-{i}-quantity"] = vid, qty
    data.update(extra)
    return data


def totals_of(html):
    found = re.search(r'data-testid="draft-total">([^<]+)<', html)
    return found.group(1) if found else None


# ------------------------------------------------------------------ domain


def test_preview_totals_is_the_saved_drafts_money(app, make_variant):
    item = make_variant(price_cents=5000)
    data = drafts.DraftInput(CustomerDetails("", ""), [(item.id, 3)], ship_id("logistics"),
                             None, 1000)
    totals = drafts.preview_totals(data)
    assert (totals.subtotal_cents, totals.discount_cents, totals.shipping_fee_cents,
            totals.total_cents, totals.fee_overridden) == (15000, 1000, 4000, 18000, False)
    assert totals.line_totals == {item.id: 15000}
    data.customer = CustomerDetails("Amy", "9876 5432", address="Central")
    assert drafts.create_draft(data, actor=drafts_actor()).total_cents == totals.total_cents
    # a typed fee is an override, and says what the method would charge
    typed = drafts.preview_totals(drafts.DraftInput(CustomerDetails("", ""), [(item.id, 1)],
                                                    ship_id("logistics"), 1500))
    assert (typed.shipping_fee_cents, typed.method_fee_cents, typed.fee_overridden) == (
        1500, 4000, True)
    # no items yet is a subtotal of 0, not a refusal; a discount over it is refused
    empty = drafts.preview_totals(drafts.DraftInput(CustomerDetails("", ""), [], ship_id()))
    assert (empty.subtotal_cents, empty.total_cents) == (0, empty.method_fee_cents)
    with pytest.raises(ValidationError, match="Discount cannot be more"):
        drafts.preview_totals(drafts.DraftInput(CustomerDetails("", ""), [], ship_id(), None, 1))


def drafts_actor():
    return Actor("staff", 1, "Tester")


def test_sellable_variants_skip_archived_products_and_removed_variants(app, make_variant):
    kept = make_variant(name="抹茶曲奇", variant="大")
    gone = make_variant(name="抹茶蛋糕")
    removed = make_variant(name="抹茶布甸")
    archive_product(gone.product_id)
    db.session.get(Variant, removed.id).active = False
    db.session.commit()
    assert [v.id for v in sellable_variants("抹茶")] == [kept.id]
    assert [v.id for v in sellable_variants(kept.sku.lower())] == [kept.id]
    assert [v.id for v in sellable_variants(kept.barcode)] == [kept.id]
    assert sellable_variants("   ") == []


def test_lookup_finds_past_customers_by_name_or_phone_distinct_newest_first(
        app, make_order, make_variant):
    old = make_order(name="陳大文", phone="9123 4567", address="舊地址")
    new = make_order(name="陳大文", phone="9123 4567", address="旺角新地址")
    other = make_order(name="陳小明", phone="6000 1111", email="ming@example.hk")
    make_order(name="Amy", phone="5555 0000", items=[(make_variant(name="陳皮糖").id, 1)])
    found = lookup_customers("陳")
    # one line per customer, the newest order's details; an item named 陳皮糖 is not a customer
    assert [(m.name, m.phone, m.address) for m in found] == [
        ("陳小明", "6000 1111", other.shipping_address), ("陳大文", "9123 4567", "旺角新地址")]
    assert found[1].order_id == new.id != old.id
    # the phone as typed, spaced differently, or with the country code
    assert [m.name for m in lookup_customers("91234567")] == ["陳大文"]
    assert [m.name for m in lookup_customers("+852 9123-4567")] == ["陳大文"]
    assert [m.name for m in lookup_customers("ming@example")] == ["陳小明"]
    assert lookup_customers("") == [] and lookup_customers("不存在") == []
    # simplified finds traditional, and at most 8
    assert [m.name for m in lookup_customers("陈大文")] == ["陳大文"]
    for i in range(10):
        make_order(name=f"黃{i}", phone=f"6{i:03d} 2222")
    assert len(lookup_customers("黃")) == 8


# ------------------------------------------------------------------ views


def test_search_view_with_and_without_htmx(app, owner_client, make_variant, client):
    item = make_variant(name="<script>alert(1)</script>曲奇", variant="")
    gone = make_variant(name="舊曲奇")
    archive_product(gone.product_id)
    html = owner_client.get("/drafts/search?q=曲奇", htmx=True).get_data(as_text=True)
    assert f'value="add:{item.id}"' in html and f"add:{gone.id}" not in html
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;曲奇" in html
    assert "<html" not in html  # a fragment
    assert "No product matches" in owner_client.get("/drafts/search?q=zzz", htmx=True).get_data(
        as_text=True)
    # without JavaScript: the builder page with the results
    page = owner_client.get("/drafts/search?q=曲奇")
    assert page.status_code == 302
    full = owner_client.get(page.headers["Location"]).get_data(as_text=True)
    assert "<html" in full and f'value="add:{item.id}"' in full
    # desk-only
    assert client.get("/drafts/search?q=曲奇").status_code == 302
    assert client.get("/drafts/customers?lookup=陳").status_code == 302
    assert client.post("/drafts/preview", {}, csrf=False).status_code in (302, 400)


def test_add_steps_and_remove_through_refresh_with_and_without_htmx(app, owner_client,
                                                                     make_variant):
    a, b = make_variant(name="曲奇", price_cents=1000), make_variant(name="蛋卷", price_cents=2500)
    # Add: a new line at 1, everything typed kept
    r = owner_client.post("/drafts/new/refresh", form(op=f"add:{a.id}", q="曲奇",
                                                      customer_name="王先生 <b>"))
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "<html" in html
    assert f'name="lines-0-variant_id" type="hidden" value="{a.id}"' in html
    assert re.search(r'name="lines-0-quantity"[^>]*value="1"', html)
    assert "王先生 &lt;b&gt;" in html
    assert 'data-testid="draft-subtotal">HK$10.00<' in html and totals_of(html)
    # Adding the same item again adds one to its quantity (no second line)
    r = owner_client.post("/drafts/new/refresh", form([(a.id, "4"), (b.id, "1")],
                                                      op=f"add:{a.id}"), htmx=True)
    html = r.get_data(as_text=True)
    assert "<html" not in html and 'id="draft-builder"' in html
    assert re.search(r'name="lines-0-quantity"[^>]*value="5"', html)
    assert "lines-2-variant_id" not in html
    # ... but never past the cap
    html = owner_client.post("/drafts/new/refresh", form([(a.id, "999")], op=f"add:{a.id}"),
                             htmx=True).get_data(as_text=True)
    assert re.search(r'name="lines-0-quantity"[^>]*value="999"', html)
    # Remove drops the line and renumbers the rest
    html = owner_client.post("/drafts/new/refresh", form([(a.id, "4"), (b.id, "2")],
                                                         op="remove:0"),
                             htmx=True).get_data(as_text=True)
    assert f'name="lines-0-variant_id" type="hidden" value="{b.id}"' in html
    assert "lines-1-variant_id" not in html
    # hostile ops change nothing and break nothing
    for op in ("add:x", "remove:99", "add:99999999", "customer:abc", "drop table", ""):
        r = owner_client.post("/drafts/new/refresh", form([(a.id, "2")], op=op), htmx=True)
        assert r.status_code == 200, op
    assert draft_count() == 0
    # CSRF on refresh and preview
    assert owner_client.post("/drafts/new/refresh", form(op=f"add:{a.id}"),
                             csrf=False).status_code == 400
    assert owner_client.post("/drafts/preview", form(), csrf=False).status_code == 400


def test_preview_is_the_domain_total_and_the_method_switch_drops_the_fee(app, owner_client,
                                                                          make_variant):
    item = make_variant(price_cents=10000)
    sf = owner_client.post("/drafts/preview", form([(item.id, "2")],
                                                   shipping_method=ship_id("logistics"),
                                                   discount="5"), htmx=True)
    html = sf.get_data(as_text=True)
    assert "<html" not in html and totals_of(html) == "HK$235.00"  # 200 - 5 + 40
    # each line's total comes with it, out of band, beside its quantity
    assert '<span id="lt-0" hx-swap-oob="true">HK$200.00</span>' in html
    assert re.search(r'data-testid="fee-source">method(&#39;|\')s fee<', html)
    pickup = owner_client.post("/drafts/preview", form([(item.id, "2")],
                                                       shipping_method=ship_id("pickup"),
                                                       discount="5"), htmx=True)
    assert totals_of(pickup.get_data(as_text=True)) == "HK$195.00"  # the fee is gone
    # a typed fee is shown as such, with the method's own fee and a way back
    typed = owner_client.post("/drafts/preview", form([(item.id, "1")],
                                                      shipping_method=ship_id("logistics"),
                                                      shipping_fee="12"), htmx=True)
    html = typed.get_data(as_text=True)
    assert totals_of(html) == "HK$112.00"
    assert "typed by you; the method charges HK$40.00" in html
    assert 'value="clear_fee"' in html
    back = owner_client.post("/drafts/new/refresh", form([(item.id, "1")],
                                                         shipping_method=ship_id("logistics"),
                                                         shipping_fee="12", op="clear_fee"),
                             htmx=True).get_data(as_text=True)
    assert totals_of(back) == "HK$140.00"
    assert re.search(r'<input[^>]*name="shipping_fee"[^>]*placeholder="40.00"[^>]*value=""', back)
    # hostile input: a sentence in the totals box, nothing saved
    for bad, sentence in [({"shipping_fee": "-5"}, "Shipping fee"),
                          ({"discount": "abc"}, "Discount"),
                          ({"lines-0-quantity": "100000000"}, "Correct the item lines"),
                          ({"lines-0-variant_id": "x"}, "Correct the item lines"),
                          ({"shipping_method": "abc"}, "shipping method")]:
        r = owner_client.post("/drafts/preview", form([(item.id, "1")], **bad), htmx=True)
        body = r.get_data(as_text=True)
        assert r.status_code == 200 and sentence.lower() in body.lower(), bad
        assert totals_of(body) is None
    # without htmx the preview is the whole builder with the total
    full = owner_client.post("/drafts/preview", form([(item.id, "2")],
                                                     shipping_method=ship_id("pickup")))
    assert "<html" in full.get_data(as_text=True) and totals_of(full.get_data(as_text=True)) \
        == "HK$200.00"
    assert draft_count() == 0


def test_customer_lookup_and_pick_fill_the_details(app, owner_client, make_order,
                                                   make_variant):
    past = make_order(name="陳大文 <i>", phone="9123 4567", email="tai.man@example.hk",
                      address="旺角彌敦道 1 號")
    html = owner_client.get("/drafts/customers?lookup=陳大", htmx=True).get_data(as_text=True)
    assert f'value="customer:{past.id}"' in html and "陳大文 &lt;i&gt;" in html
    assert "<i>" not in html and "<html" not in html
    assert "No past customer matches" in owner_client.get(
        "/drafts/customers?lookup=zzz", htmx=True).get_data(as_text=True)
    item = make_variant()
    for htmx in (True, False):
        r = owner_client.post("/drafts/new/refresh", form(
            [(item.id, "2")], customer_name="", phone="", address="", lookup="陳大",
            op=f"customer:{past.id}"), htmx=htmx)
        body = r.get_data(as_text=True)
        assert 'value="陳大文 &lt;i&gt;"' in body and 'value="9123 4567"' in body
        assert 'value="tai.man@example.hk"' in body and "旺角彌敦道 1 號" in body
        assert re.search(r'name="lines-0-quantity"[^>]*value="2"', body)  # lines kept
    # a draft (not a placed order) is not a customer to copy
    draft = drafts.create_draft(drafts.DraftInput(
        CustomerDetails("Secret", "5000 0000", address="x"), [(item.id, 1)], ship_id()),
        actor=drafts_actor())
    body = owner_client.post("/drafts/new/refresh", form(customer_name="",
                                                         op=f"customer:{draft.id}"),
                             htmx=True).get_data(as_text=True)
    assert "Secret" not in body


def test_save_with_search_lines_and_failures_keep_everything(app, owner_client, make_variant):
    a, b = make_variant(name="曲奇", price_cents=1000), make_variant(name="蛋卷", price_cents=2500)
    gone = make_variant(name="舊貨")
    archive_product(gone.product_id)
    typed = form([(a.id, "3"), (b.id, "1")], shipping_method=ship_id("logistics"),
                 discount="5", email="li@example.hk", customer_name="李小姐 <script>x</script>")
    # hostile saves: refused, nothing saved, every field as typed
    for bad, sentence in [({"lines-1-quantity": "100000000"}, "Give a quantity from 1 to 999."),
                          ({"lines-1-variant_id": "abc"}, "Choose an item from the list."),
                          ({"lines-1-variant_id": str(gone.id)}, "no longer for sale"),
                          ({"shipping_fee": "-1"}, "Shipping fee"),
                          ({"lines-2-variant_id": str(a.id), "lines-2-quantity": "997"},
                           "add up to 1000")]:
        r = owner_client.post("/drafts/new", {**typed, **bad})
        html = r.get_data(as_text=True)
        assert r.status_code == 422 and sentence in html, bad
        assert "李小姐 &lt;script&gt;x&lt;/script&gt;" in html and "<script>x" not in html
        assert 'value="6123 4567"' in html and 'value="li@example.hk"' in html
        assert re.search(r'name="lines-0-quantity"[^>]*value="3"', html)
        assert f'name="lines-0-variant_id" type="hidden" value="{a.id}"' in html
        assert re.search(rf'<option value="{ship_id("logistics")}" selected', html)
        assert re.search(r'name="discount"[^>]*value="5"', html)
        assert draft_count() == 0
    r = owner_client.post("/drafts/new", typed)
    assert r.status_code == 302
    draft = db.session.scalar(select(Order).where(Order.kind == "draft"))
    assert [(ln.variant_id, ln.quantity) for ln in draft.lines] == [(a.id, 3), (b.id, 1)]
    assert draft.total_cents == 3000 + 2500 - 500 + 4000
    # the edit page shows the lines, the total and the blank (following) fee box
    page = owner_client.get(r.headers["Location"]).get_data(as_text=True)
    assert totals_of(page) == "HK$90.00"
    assert re.search(r'data-testid="fee-source">method(&#39;|\')s fee<', page)
    # update: non-numeric ids are refused with the rest kept
    bad = owner_client.post(f"/drafts/{draft.id}", {**typed, "lines-0-variant_id": "1e3"})
    assert bad.status_code == 422 and "Choose an item from the list." in bad.get_data(as_text=True)
    ok = owner_client.post(f"/drafts/{draft.id}", {**typed, "shipping_method": ship_id("pickup"),
                                                   "address": ""})
    assert ok.status_code == 302
    db.session.rollback()
    assert db.session.get(Order, draft.id).total_cents == 3000 + 2500 - 500
