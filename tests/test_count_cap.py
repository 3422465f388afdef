"""Capped counts (issue 14): a search or filter counts its matches exactly up to
domain.search.COUNT_CAP and says "more than N" above it, so a broad search reads at most
COUNT_CAP + 1 rows for its counts at any size of store. The pages, Next and Previous and
the export still reach every match.

COUNT_CAP is lowered to 5 here so a handful of real orders crosses it."""

from __future__ import annotations

import io
import re

import pytest
from openpyxl import load_workbook
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from domain import orders as actions
from domain import search
from domain.actors import Actor
from domain.db import db
from domain.models import Order
from domain.search import OrderQuery
from domain.store import get_settings

CAP = 5
PER_PAGE = 3
STAFF = Actor("staff", 1, "Tester")


@pytest.fixture(autouse=True, params=["by id", "walked"])
def small_cap(monkeypatch, request):
    monkeypatch.setattr(search, "COUNT_CAP", CAP)
    # Past the cap a search with few matches is fetched by id and sorted, one with many
    # walks the date index (domain.search.FEW_MATCHES): every test runs both ways.
    monkeypatch.setattr(search, "FEW_MATCHES", 3000 if request.param == "by id" else 1)
    monkeypatch.setattr(search, "FEW_SCALE", 10**6)  # a handful of orders counts as a store


@pytest.fixture
def kelvins(app, make_order):
    """Eight orders for Kelvin (past the cap) and two for someone else; two of Kelvin's
    are then rejected, so the Canceled tab under the search is small."""
    made = [make_order(name=f"Kelvin Lau {i}") for i in range(8)]
    for i in range(2):
        make_order(name=f"Mandy Ho {i}")
    for order in made[:2]:
        actions.reject_order(order.id, "Out of stock", actor=STAFF)
    return [o.id for o in made]


def query(**args) -> OrderQuery:
    q = OrderQuery.from_args(MultiDict({k: str(v) for k, v in args.items()}), per_page=PER_PAGE)
    assert not q.errors
    return q


def ids(page) -> list[int]:
    return [o.id for o in page.items]


def newest_first(where_query: OrderQuery) -> list[int]:
    return list(db.session.scalars(select(Order.id).where(*where_query.where_clauses())
                                   .order_by(*where_query._ordering())))


def test_past_the_cap_no_tab_has_a_count(kelvins):
    counts = query(q="Kelvin").tab_counts()
    assert set(counts.values()) == {None}
    assert {"", search.TODO, "pending_payment", "canceled"} <= set(counts)


def test_under_the_cap_the_counts_are_exact(kelvins):
    counts = query(q="Mandy").tab_counts()
    assert counts[""] == 2 and counts["pending_payment"] == 2 and counts["canceled"] == 0
    page = query(q="Mandy").page_results()
    assert page.total == 2 and not page.more and page.pages == 1 and not page.has_next


def test_exactly_at_the_cap_is_still_exact(app, make_order):
    for i in range(CAP):
        make_order(name=f"Nina {i}")
    page, counts = query(q="Nina").page_with_tab_counts()
    assert counts[""] == CAP and page.total == CAP and not page.more


def test_unfiltered_counts_stay_exact(kelvins):
    page, counts = query().page_with_tab_counts()
    assert counts[""] == 10 and counts["canceled"] == 2 and counts["pending_payment"] == 8
    assert page.total == 10 and not page.more and page.pages == 4


def test_a_small_tab_under_a_broad_search_gets_its_exact_count(kelvins):
    page, counts = query(q="Kelvin", status="canceled").page_with_tab_counts()
    assert page.total == 2 and not page.more and sorted(ids(page)) == sorted(kelvins[:2])
    assert counts["canceled"] == 2 and counts[""] is None  # the current tab, the others not


def test_next_and_previous_walk_every_match_once(kelvins):
    base = query(q="Kelvin")
    expected = newest_first(base)
    assert len(expected) == 8
    pages = [base.page_results()]
    assert pages[0].more and pages[0].total == CAP and pages[0].has_next
    while pages[-1].has_next:
        current = pages[-1]
        args = base.to_args(page=current.page + 1, after=current.items[-1].id)
        pages.append(query(**args).page_results())
        assert len(pages) < 10, "Next never ended"
    walked = [i for p in pages for i in ids(p)]
    assert walked == expected  # in order, no gap, no repeat
    assert [len(p.items) for p in pages] == [3, 3, 2] and not pages[-1].has_next
    assert [p.more for p in pages] == [True, True, False]
    assert pages[-1].total == 8 and pages[-1].pages == 3  # the last page knows the number
    # ...and back with Previous from the last page, to the same pages.
    back = pages[-1]
    for number in (2, 1):
        args = base.to_args(page=back.page - 1, before=back.items[0].id)
        back = query(**args).page_results()
        assert back.page == number and ids(back) == ids(pages[number - 1])
        assert back.has_next  # the page we came from follows


def test_a_page_number_alone_gives_the_same_page(kelvins):
    base = query(q="Kelvin")
    expected = newest_first(base)
    for number in (1, 2, 3):
        page = query(q="Kelvin", page=number).page_results()
        assert ids(page) == expected[(number - 1) * PER_PAGE:number * PER_PAGE]
        assert page.more == (number < 3)
    assert query(q="Kelvin", page=2).page_results().has_next
    assert not query(q="Kelvin", page=3).page_results().has_next


def test_a_page_number_past_the_end_shows_the_last_page(kelvins):
    page = query(q="Kelvin", page=40).page_results()
    assert page.page == 3 and not page.more and page.total == 8
    assert ids(page) == newest_first(query(q="Kelvin"))[6:]


@pytest.fixture
def three_a_page(app, monkeypatch):
    monkeypatch.setitem(app.config, "ORDERS_PER_PAGE", PER_PAGE)


@pytest.mark.parametrize("htmx", [False, True])
def test_the_list_says_more_than(owner_client, kelvins, three_a_page, htmx):
    html = owner_client.get("/orders?q=Kelvin", htmx=htmx).get_data(as_text=True)
    assert "More than 5 orders · page 1" in html
    assert re.search(r'aria-current="page">All <span class="count">5\+</span>', html)
    assert "Export all (more than 5)" in html and "Select all matching orders (more than 5)" in html
    # no tab shows a number it did not count
    assert not re.search(r'data-status="canceled"[^>]*>[^<]*<span class="count">', html)
    assert 'rel="next"' in html
    if htmx:
        assert "<html" not in html  # the results fragment only
    # Next, as the link says, to the last page: there the number is known.
    link = re.findall(r'rel="next" href="([^"]+)"', html)[0].replace("&amp;", "&")
    second = owner_client.get(link, htmx=htmx).get_data(as_text=True)
    assert "More than 5 orders · page 2" in second
    link = re.findall(r'rel="next" href="([^"]+)"', second)[0].replace("&amp;", "&")
    last = owner_client.get(link, htmx=htmx).get_data(as_text=True)
    assert "8 orders · page 3 of 3" in last and 'rel="next"' not in last


def test_the_list_in_chinese_says_more_than(owner_client, kelvins, three_a_page):
    settings = get_settings()
    settings.language = "zh_Hant_HK"
    db.session.commit()
    html = owner_client.get("/orders?q=Kelvin").get_data(as_text=True)
    assert "超過 5 張訂單 · 第 1 頁" in html


def test_under_the_cap_the_list_says_the_number(owner_client, kelvins):
    html = owner_client.get("/orders?q=Mandy").get_data(as_text=True)
    assert "2 orders · page 1 of 1" in html and "More than" not in html


def test_export_all_past_the_cap_exports_every_match(owner_client, kelvins):
    response = owner_client.post("/orders/export", {"scope": "matching", "q": "Kelvin"})
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.data), read_only=True)["Orders"]
    numbers = [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)]
    expected = db.session.scalars(select(Order.number).where(Order.id.in_(kelvins)))
    assert sorted(numbers) == sorted(expected)


def test_a_broad_searchs_first_page_read_from_its_recent_matches_is_exact(app, make_order,
                                                                         monkeypatch):
    # Past the cap, page 1 reads the text index from RECENT_IDS below the newest id up
    # (OrderQuery._recent_first_page) and checks nothing older sorts before its last row.
    from datetime import timedelta

    from sqlalchemy import event, update

    from domain.models import utcnow

    monkeypatch.setattr(search, "RECENT_IDS", 6)
    monkeypatch.setattr(search, "RECENT_FROM", 0)  # a store of any size reads recent first
    made = [make_order(name=f"Kelvin Lau {i}") for i in range(12)]
    seen = []

    def record(conn, cursor, statement, *args):
        seen.append(statement)

    def first_page(**args):
        seen.clear()
        page = query(q="Kelvin", **args).page_results()
        assert page.more and page.next_exists
        return ids(page)

    def expected(**args):
        return newest_first(query(q="Kelvin", **args))[:PER_PAGE]

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        assert first_page() == expected() == [o.id for o in made[::-1][:PER_PAGE]]
        assert any("rowid >= " in s for s in seen), seen  # read from the recent matches
        assert first_page(status="pending_payment") == expected(status="pending_payment")
        # An old order placed lately sorts first: the recent read cannot see it, so the
        # check sends the page the long way, and it is still exact.
        db.session.execute(update(Order).where(Order.id == made[0].id)
                           .values(placed_at=utcnow() + timedelta(minutes=5)))
        db.session.commit()
        assert first_page() == expected() and first_page()[0] == made[0].id
        # Fewer recent matches than a page and one: all are read.
        monkeypatch.setattr(search, "RECENT_IDS", 2)
        assert first_page() == expected()
        # Page 2 and the Next link are read as before.
        assert ids(query(q="Kelvin", page=2).page_results()) == \
            newest_first(query(q="Kelvin"))[PER_PAGE:2 * PER_PAGE]
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def test_past_the_cap_the_page_is_read_the_way_the_run_says(app, kelvins, request):
    # The two ways every test here runs are really taken: by id, the ids are ordered
    # first and only the page's rows read (IN (SELECT orders.id ... LIMIT)); walked, the
    # date index is stepped over with each order checked against the matches (id + 0).
    from sqlalchemy import event

    seen = []

    def record(conn, cursor, statement, *args):
        if statement.lstrip().startswith("SELECT orders.id, orders.number"):
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        page = query(q="Kelvin").page_results()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert page.more and len(seen) == 1, seen
    by_id = request.node.callspec.params["small_cap"] == "by id"
    assert ("orders.id IN (SELECT orders.id" in seen[0]) is by_id, seen[0]
    assert ("orders.id + ?" in seen[0]) is not by_id, seen[0]
