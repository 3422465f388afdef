"""The orders list's "Not yet printed" filter (issue 11): printing papers leaves a
history event (domain.documents.printed), and the list can show the orders that have
none, the evening's question."""

from __future__ import annotations

import pytest

from domain.actors import Actor
from domain.documents.printed import record_printed
from domain.search import OrderQuery

STAFF = Actor("staff", 1, "Printer")


@pytest.fixture
def three(app, make_order):
    return [make_order(name=name) for name in ("陳大文", "Amy Wong", "李小龍")]


def numbers(query: OrderQuery) -> set[str]:
    return {o.number for o in query.page_results().items}


def test_the_filter_leaves_out_orders_with_any_paper_printed(three):
    everyone = {o.number for o in three}
    assert numbers(OrderQuery(not_printed=True)) == everyone
    record_printed("invoice", [three[0].id], actor=STAFF)
    record_printed("label", [three[1].id], actor=STAFF)
    assert numbers(OrderQuery(not_printed=True)) == {three[2].number}
    assert numbers(OrderQuery()) == everyone  # off: every order
    # It combines with the status tabs and the counts follow it (not the kept counts).
    query = OrderQuery(not_printed=True, status="pending_payment")
    page, counts = query.page_with_tab_counts()
    assert [o.number for o in page.items] == [three[2].number]
    assert counts["pending_payment"] == 1 and counts[""] == 1


def test_the_url_round_trip_and_hostile_values(three):
    from werkzeug.datastructures import MultiDict

    query = OrderQuery.from_args(MultiDict({"not_printed": "1"}))
    assert query.not_printed and query.to_args() == {"not_printed": 1} and query.has_filters
    refused = OrderQuery.from_args(MultiDict({"not_printed": "<script>"}))
    assert not refused.not_printed and refused.errors
    assert "printing filter" in str(refused.errors[0])


def test_the_list_view_chip_and_the_checkbox(owner_client, three):
    record_printed("packing_list", [three[0].id], actor=STAFF)
    for headers in ({}, {"HX-Request": "true"}):
        page = owner_client.get("/orders?not_printed=1", headers=headers)
        html = page.get_data(as_text=True)
        assert page.status_code == 200
        assert three[0].number not in html and three[1].number in html
        assert "Not yet printed" in html  # the chip
    whole = owner_client.get("/orders?not_printed=1").get_data(as_text=True)
    assert 'name="not_printed" value="1" checked' in whole
    # The chip's × leads to the list without it.
    assert 'href="/orders" aria-label="Remove filter Not yet printed"' in whole
    hostile = owner_client.get("/orders?not_printed=yes%3Cb%3E")
    assert hostile.status_code == 200 and "<b>" not in hostile.get_data(as_text=True)
