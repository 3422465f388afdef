"""Deep pages (issue 14): the pager's links carry a cursor (keyset pagination), pages
past the middle are read from the other end, and every way of reaching a page gives
the same orders as plain OFFSET would, for every sort, in both directions."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select, update

from domain.db import db, write_transaction
from domain.models import Order
from domain.search import SORTS, OrderQuery

PER_PAGE = 4


@pytest.fixture
def orders(app, make_order):
    made = [make_order(name=name, quantity=q) for name, q in
            [("陳大文", 1), ("Amy Wong", 2), ("李小龍", 1), ("Bob Chan", 3), ("陳大文", 2),
             ("張三", 1), ("Amy Wong", 1), ("王五", 4), ("Cara Lee", 1), ("趙六", 2),
             ("Dan Ho", 1)]]
    with write_transaction() as session:  # two orders at the same instant: ties by id
        session.execute(update(Order).where(Order.id == made[4].id)
                        .values(placed_at=made[3].placed_at))
    return [o.id for o in made]


def by_offset(query: OrderQuery, page: int) -> list[int]:
    return list(db.session.scalars(
        select(Order.id).where(*query.where_clauses()).order_by(*query._ordering())
        .limit(PER_PAGE).offset((page - 1) * PER_PAGE)))


def ids(page) -> list[int]:
    return [o.id for o in page.items]


@pytest.mark.parametrize("sort", ["", *SORTS])
def test_walking_the_pager_gives_the_offset_pages(orders, sort):
    query = OrderQuery(sort=sort, per_page=PER_PAGE)
    first = query.page_results()
    assert first.pages == 3 and ids(first) == by_offset(query, 1)
    pages = [first]
    while pages[-1].has_next:  # Next, as the link says: page number and cursor
        current = pages[-1]
        args = query.to_args(page=current.page + 1, after=current.items[-1].id)
        assert args["after"] == current.items[-1].id and args["page"] == current.page + 1
        nxt = OrderQuery.from_args(_multi(args), per_page=PER_PAGE)
        assert nxt.after == current.items[-1].id and not nxt.errors
        pages.append(nxt.page_results())
    assert [ids(p) for p in pages] == [by_offset(query, n) for n in (1, 2, 3)]
    # ...and back with Previous, from the last page.
    back = pages[-1]
    for expected in (2, 1):
        args = query.to_args(page=back.page - 1, before=back.items[0].id)
        back = OrderQuery.from_args(_multi(args), per_page=PER_PAGE).page_results()
        assert back.page == expected and ids(back) == by_offset(query, expected)


@pytest.mark.parametrize("sort", ["", "total", "-customer"])
def test_a_page_by_number_alone_and_from_the_far_end(orders, sort):
    query = OrderQuery(sort=sort, per_page=PER_PAGE)
    for n in (1, 2, 3):  # page 3 of 3 is read backwards from the end
        assert ids(OrderQuery(sort=sort, per_page=PER_PAGE, page=n).page_results()) == \
            by_offset(query, n)
    # A page past the end is the last page.
    assert ids(OrderQuery(sort=sort, per_page=PER_PAGE, page=99).page_results()) == \
        by_offset(query, 3)


def test_hostile_cursors_are_refused_or_ignored(orders):
    query = OrderQuery.from_args(_multi({"page": "2", "after": "1; DROP TABLE orders"}),
                                 per_page=PER_PAGE)
    assert query.after == 0 and query.errors
    assert "page position" in str(query.errors[0])
    assert ids(query.page_results()) == by_offset(query, 2)
    # An id that is no order, or a draft's: the page number decides.
    for cursor in ("999999", "0" * 12):
        q = OrderQuery.from_args(_multi({"page": "2", "after": cursor}), per_page=PER_PAGE)
        assert ids(q.page_results()) == by_offset(q, 2)
    # Too long, or both directions at once.
    assert OrderQuery.from_args(_multi({"page": "2", "after": "9" * 13})).errors
    both = OrderQuery.from_args(_multi({"page": "2", "after": "3", "before": "4"}))
    assert both.after == both.before == 0
    # On page 1 there is nothing to continue from: no cursor is kept.
    assert OrderQuery.from_args(_multi({"after": "3"})).after == 0


def test_a_cursor_survives_its_order_changing_status(orders):
    """The cursor is a position (its order's date and id), not a membership: the order
    it names may have left the tab meanwhile, and the next page still follows on."""
    query = OrderQuery(status="pending_payment", per_page=PER_PAGE)
    first = query.page_results()
    last_id = first.items[-1].id
    expected = by_offset(query, 2)
    with write_transaction() as session:
        session.execute(update(Order).where(Order.id == last_id).values(status="canceled"))
    nxt = OrderQuery(status="pending_payment", per_page=PER_PAGE, page=2,
                     after=last_id).page_results()
    assert ids(nxt) == expected


def test_the_list_pager_links_carry_the_cursor(owner_client, orders, app):
    app.config["ORDERS_PER_PAGE"] = PER_PAGE
    page = owner_client.get("/orders", headers={"HX-Request": "true"}).get_data(as_text=True)
    nxt = re.search(r'rel="next" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert "page=2" in nxt and "after=" in nxt
    second = owner_client.get(nxt, headers={"HX-Request": "true"}).get_data(as_text=True)
    prev = re.search(r'rel="prev" href="([^"]+)"', second).group(1).replace("&amp;", "&")
    assert "before=" not in prev  # back to page 1: no cursor needed
    # Without htmx the same link is a whole page, and its address stays as it is.
    whole = owner_client.get(nxt)
    assert whole.status_code == 200 and "page 2 of 3" in whole.get_data(as_text=True)


def _multi(args: dict):
    from werkzeug.datastructures import MultiDict

    return MultiDict({k: str(v) for k, v in args.items()})
