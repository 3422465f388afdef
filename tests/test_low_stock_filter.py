"""Low stock (issue 13): which variants are low, the orders list's "contains
low-stock items" filter (the list, the tabs and the Excel export share one
OrderQuery), hostile URL values, and the Products nav badge."""

from __future__ import annotations

import io
import re

import pytest
from openpyxl import load_workbook
from sqlalchemy import update
from werkzeug.datastructures import MultiDict

from domain.db import db
from domain.exports import matching_ids
from domain.models import Product, Variant
from domain.search import OrderQuery, low_stock_count


def set_variant(variant_id: int, **values) -> None:
    """Thresholds and on-sale flags are not stock moves: set them directly."""
    db.session.execute(update(Variant).where(Variant.id == variant_id).values(**values))
    db.session.commit()


@pytest.fixture
def orders(make_variant, make_order):
    """Three orders: one with a low variant (stock 4 after the order, threshold 5),
    one with a healthy variant, one mixing a healthy and a low line."""
    low = make_variant(name="抹茶曲奇", stock=5)
    healthy = make_variant(name="Butter cookies", stock=50)
    set_variant(low.id, low_stock_threshold=5)
    set_variant(healthy.id, low_stock_threshold=5)
    a = make_order(items=[(low.id, 1)], name="陳大文")
    b = make_order(items=[(healthy.id, 1)], name="Amy Wong")
    c = make_order(items=[(healthy.id, 1), (low.id, 1)], name="Ben Lee")
    return {"low": low, "healthy": healthy, "a": a, "b": b, "c": c}


def numbers(query: OrderQuery) -> set[str]:
    return {o.number for o in query.page_results().items}


# ------------------------------------------------------------------ which variants are low


def test_low_stock_count_follows_the_rule(app, make_variant):
    assert low_stock_count() == 0
    v = make_variant(stock=3)
    assert low_stock_count() == 0  # no threshold: never low
    set_variant(v.id, low_stock_threshold=2)
    assert low_stock_count() == 0
    set_variant(v.id, low_stock_threshold=3)  # at the threshold is low
    assert low_stock_count() == 1
    set_variant(v.id, active=False)  # removed from sale
    assert low_stock_count() == 0
    set_variant(v.id, active=True)
    db.session.execute(update(Product).where(Product.id == v.product_id).values(active=False))
    db.session.commit()
    assert low_stock_count() == 0  # archived product
    db.session.execute(update(Product).where(Product.id == v.product_id).values(active=True))
    db.session.commit()
    unlimited = make_variant(stock=None)
    set_variant(unlimited.id, low_stock_threshold=100)
    zero = make_variant(stock=0)
    set_variant(zero.id, low_stock_threshold=0)
    assert low_stock_count() == 2  # v and the sold-out one; unlimited is never low


# ------------------------------------------------------------------ the filter


def test_filter_keeps_orders_with_a_low_line_now(orders):
    everything = OrderQuery()
    low = OrderQuery(low_stock=True)
    assert numbers(everything) == {orders[k].number for k in "abc"}
    assert numbers(low) == {orders["a"].number, orders["c"].number}
    assert low.count() == 2 and low.tab_counts()[""] == 2
    assert low.has_filters and low.to_args() == {"low_stock": 1}
    # "Now": raising the threshold past the healthy stock brings order b in; a restock
    # of the low one (threshold under its stock) takes a and c out.
    set_variant(orders["healthy"].id, low_stock_threshold=100)
    assert numbers(low) == {orders[k].number for k in "abc"}
    set_variant(orders["healthy"].id, low_stock_threshold=None)
    set_variant(orders["low"].id, low_stock_threshold=1)
    assert numbers(low) == set()


def test_filter_combines_with_search_and_other_filters(orders):
    assert numbers(OrderQuery(low_stock=True, q="Ben")) == {orders["c"].number}
    assert numbers(OrderQuery(low_stock=True, q="Amy")) == set()


def test_filter_uses_the_variant_index(orders):
    """The plan starts from the variants (few) and reaches order_line by its variant index."""
    from sqlalchemy import select

    from domain.models import Order

    sql = select(Order.id).where(*OrderQuery(low_stock=True).where_clauses()).compile(
        db.engine, compile_kwargs={"literal_binds": True})
    plan = " ".join(row[3] for row in db.session.execute(
        db.text(f"EXPLAIN QUERY PLAN {sql}")).all())
    assert "ix_order_line_variant_id" in plan, plan


def test_list_page_and_fragment(owner_client, orders):
    full = owner_client.get("/orders?low_stock=1")
    assert full.status_code == 200
    html = full.get_data(as_text=True)
    assert orders["a"].number in html and orders["c"].number in html
    assert f'id="row-{orders["b"].number}"' not in html
    assert re.search(r'name="low_stock" value="1"\s+checked', html)
    # Counted among the active filters (the Filters button's pill), panel open.
    assert re.search(r'Filters <span class="pill pill-on">1</span>', html)
    fragment = owner_client.get("/orders?low_stock=1", htmx=True)
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "<html" not in body
    assert f'id="row-{orders["b"].number}"' not in body and orders["a"].number in body
    assert fragment.headers["HX-Push-Url"].endswith("/orders?low_stock=1")
    # The export form inside the results carries the filter to the export.
    assert '<input type="hidden" name="low_stock" value="1">' in body


def test_excel_export_of_all_matching_keeps_the_filter(owner_client, orders):
    response = owner_client.post("/orders/export", {"scope": "matching", "low_stock": "1"})
    assert response.status_code == 200
    wb = load_workbook(io.BytesIO(response.data), read_only=True)
    exported = {row[0] for row in wb["Orders"].iter_rows(min_row=2, values_only=True)}
    assert exported == {orders["a"].number, orders["c"].number}
    # The background export's id list is the same query.
    ids = matching_ids(OrderQuery.from_args(MultiDict([("low_stock", "1")])))
    assert sorted(ids) == sorted([orders["a"].id, orders["c"].id])


def test_saved_view_keeps_the_filter(owner_client, orders):
    from domain import saved_views
    from domain.errors import ValidationError

    assert saved_views.canonical_query_string("low_stock=1&q=Ben") in (
        "low_stock=1&q=Ben", "q=Ben&low_stock=1")
    with pytest.raises(ValidationError):
        saved_views.canonical_query_string("low_stock=junk")


# ------------------------------------------------------------------ hostile URLs


@pytest.mark.parametrize("url,expect", [
    ("/orders?low_stock=abc", 200),
    ("/orders?low_stock=%00", 200),
    ("/orders?low_stock=" + "1" * 500, 200),
    ("/orders?low_stock=-1", 200),
    ("/orders?low_stock=1&low_stock=0", 302),
    ("/orders?low_stock=0", 302),
    ("/orders?low_stock=", 302),
])
def test_hostile_values_never_500(owner_client, orders, url, expect):
    response = owner_client.get(url)
    assert response.status_code == expect
    if expect == 200:
        html = response.get_data(as_text=True)
        assert "Unknown low-stock filter." in html
        assert orders["b"].number in html  # refused: the filter is off, every order shows
    else:
        location = response.headers["Location"]
        assert location.endswith("/orders?low_stock=1") if "low_stock=1" in url \
            else location.endswith("/orders")
    assert owner_client.get(url, htmx=True).status_code == 200


def test_from_args_flag_rules():
    def parse(*pairs):
        return OrderQuery.from_args(MultiDict(pairs))

    assert parse(("low_stock", "1")).low_stock is True
    assert parse(("low_stock", "0")).low_stock is False
    assert parse(("low_stock", "1"), ("low_stock", "0")).low_stock is True
    bad = parse(("low_stock", "yes"))
    assert bad.low_stock is False and [str(e) for e in bad.errors] == ["Unknown low-stock filter."]


# ------------------------------------------------------------------ the nav badge and notice


def badge(html: str) -> re.Match | None:
    # position: relative keeps its screen-reader text inside the phone's scrolling nav
    # (an absolute .sr-only span off to the right widened the whole page).
    return re.search(r'<span class="nav-count" id="badge-low-stock" data-count="(\d+)"( hidden)?'
                     r' style="position: relative">'
                     r'<span aria-hidden="true">([^<]*)</span>', html)


def test_nav_badge_counts_low_variants_and_hides_at_zero(owner_client, staff_client,
                                                         make_variant):
    v = make_variant(stock=2)
    match = badge(owner_client.get("/orders").get_data(as_text=True))
    assert match and match.group(1) == "0" and match.group(2) == " hidden"
    html = owner_client.get("/orders").get_data(as_text=True)
    assert "stock-notice" not in html
    set_variant(v.id, low_stock_threshold=2)
    w = make_variant(stock=0)
    set_variant(w.id, low_stock_threshold=1)
    for client in (owner_client, staff_client):
        html = client.get("/orders").get_data(as_text=True)
        match = badge(html)
        assert match and match.group(1) == "2" and match.group(2) is None and match.group(3) == "2"
        assert "2 items low on stock" in html
        # The notice links to the products list filtered to low stock.
        assert 'href="/products/?low_stock=1"' in html and "2 items are low on stock." in html
        assert 'href="/orders?low_stock=1"' in html
    # On other desk pages too (the nav is the layout's).
    assert badge(owner_client.get("/settings/store").get_data(as_text=True)).group(1) == "2"


def test_no_badge_for_customers(client, make_variant):
    v = make_variant(stock=1)
    set_variant(v.id, low_stock_threshold=5)
    response = client.get("/shop/")
    assert response.status_code == 200
    assert "badge-low-stock" not in response.get_data(as_text=True)
