"""The orders list's date presets, active-filter chips and items summary (issue 16)."""

from __future__ import annotations

import html
import re
from datetime import date, datetime

import pytest
from sqlalchemy import update
from werkzeug.datastructures import MultiDict

from domain.db import db
from domain.list_view import active_preset, date_presets, filter_chips, items_summaries, store_today
from domain.models import PaymentMethod, ShippingMethod, User
from domain.search import OrderQuery


def query(**args):
    return OrderQuery.from_args(MultiDict(args))


# ------------------------------------------------------------------ domain


def test_presets_are_calendar_ranges_ending_today():
    presets = {p.key: (p.date_from, p.date_to) for p in date_presets(date(2026, 3, 2))}
    assert presets == {
        "today": (date(2026, 3, 2), date(2026, 3, 2)),
        "yesterday": (date(2026, 3, 1), date(2026, 3, 1)),
        "last_7_days": (date(2026, 2, 24), date(2026, 3, 2)),
        "this_month": (date(2026, 3, 1), date(2026, 3, 2)),
    }


def test_today_is_the_stores_date_not_utcs(app):
    # 2026-12-01 17:30 UTC is already 2 December in Hong Kong (UTC+8).
    assert store_today(datetime(2026, 12, 1, 17, 30)) == date(2026, 12, 2)
    assert store_today(datetime(2026, 12, 1, 15, 30)) == date(2026, 12, 1)


def test_the_active_preset_is_recognised_only_on_an_exact_match(app):
    presets = date_presets(date(2026, 12, 2))
    assert active_preset(query(**{"from": "2026-12-01", "to": "2026-12-01"}), presets) == "yesterday"
    assert active_preset(query(**{"from": "2026-12-01", "to": "2026-12-02"}), presets) == "this_month"
    assert active_preset(query(**{"from": "2026-11-30", "to": "2026-12-01"}), presets) == ""
    assert active_preset(query(), presets) == ""


def test_each_chip_removes_only_its_own_filter(app):
    q = MultiDict([("q", "陳"), ("payment", "1"), ("payment", "2"), ("delivery", "shipped"),
                   ("from", "2026-11-01"), ("to", "2026-11-30"), ("low_stock", "1"),
                   ("status", "processing"), ("page", "3")])
    chips = filter_chips(OrderQuery.from_args(q), payment_names={1: "FPS"}, shipping_names={},
                         product_names={})
    by_label = {c.label: c.args for c in chips}
    assert set(by_label) == {"“陳”", "FPS", "#2", "Shipped", "2026-11-01 – 2026-11-30",
                             "Contains low-stock items"}
    fps = by_label["FPS"]
    assert fps["payment"] == [2] and fps["q"] == "陳" and fps["delivery"] == ["shipped"]
    assert fps["status"] == "processing" and "page" not in fps  # the tab stays, page 1
    assert "q" not in by_label["“陳”"] and by_label["“陳”"]["payment"] == [1, 2]
    assert "from" not in by_label["2026-11-01 – 2026-11-30"]
    assert "to" not in by_label["2026-11-01 – 2026-11-30"]
    assert "low_stock" not in by_label["Contains low-stock items"]
    assert "delivery" not in by_label["Shipped"]


def test_no_filters_no_chips(app):
    assert filter_chips(query(status="processing"), payment_names={}, shipping_names={},
                        product_names={}) == []


def test_items_summary_names_the_first_line_and_counts_the_rest(app, make_order, make_variant):
    one = make_order(quantity=2)
    three = make_order(items=[(make_variant(name="抹茶曲奇", variant="大盒").id, 1),
                              (make_variant(name="B").id, 1), (make_variant(name="C").id, 4)])
    summaries = items_summaries([one.id, three.id, 999999])
    assert summaries[one.id].first_name == "曲奇禮盒 · 原味"
    assert (summaries[one.id].first_quantity, summaries[one.id].more) == (2, 0)
    assert summaries[three.id].first_name == "抹茶曲奇 · 大盒"
    assert (summaries[three.id].first_quantity, summaries[three.id].more) == (1, 2)
    assert 999999 not in summaries
    assert items_summaries([]) == {}


# ------------------------------------------------------------------ views


def results(body: str) -> str:
    return body[body.index('id="results"'):]


def test_list_shows_presets_chips_and_items(owner_client, make_order, make_variant):
    order = make_order(items=[(make_variant(name="曲奇禮盒").id, 2), (make_variant(name="X").id, 1)])
    fps = db.session.query(PaymentMethod).filter_by(code="fps").one()
    body = owner_client.get(f"/orders?payment={fps.id}&delivery=unfulfilled").get_data(as_text=True)
    part = results(body)
    row = part[part.index(f'id="row-{order.number}"'):]
    row = row[:row.index("</tr>")]
    assert "曲奇禮盒 · 原味 ×2" in row and "+1 more" in row
    chips = re.findall(r'<li class="filter-chip">(.*?)</li>', part, re.S)
    assert len(chips) == 2
    assert any("FPS" in c for c in chips) and any("Unfulfilled" in c for c in chips)
    assert "Clear filters" in part
    today = store_today().isoformat()
    assert html.escape(f"/orders?from={today}&to={today}") in body or \
        f"from={today}&amp;to={today}" in body


def test_chips_come_with_the_htmx_fragment(owner_client, make_order):
    make_order()
    ship = db.session.query(ShippingMethod).filter_by(kind="delivery").first()
    response = owner_client.get(f"/orders?shipping={ship.id}", headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in body
    assert body.count('class="filter-chip"') == 1
    # the chips name their methods: a fragment reads the methods it filters by, and only those
    assert f"</span> {ship.name}" in body
    fps = db.session.query(PaymentMethod).filter_by(code="fps").one()
    from sqlalchemy import event

    tables = []

    def record(conn, cursor, statement, *args):
        tables.extend(re.findall(r"FROM (payment_method|shipping_method)\b", statement))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        body = owner_client.get(f"/orders?payment={fps.id}", headers={"HX-Request": "true"})\
            .get_data(as_text=True)
        assert body.count('class="filter-chip"') == 1 and "FPS" in body
        assert tables == ["payment_method"], tables
        tables.clear()
        owner_client.get("/orders", headers={"HX-Request": "true"})
        assert tables == []
        owner_client.get("/orders")  # the whole page lists every method in its filter panel
        assert set(tables) == {"payment_method", "shipping_method"}
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def test_empty_result_offers_clear_filters(owner_client, make_order):
    make_order()
    body = owner_client.get("/orders?q=nothing-matches-this").get_data(as_text=True)
    part = results(body)
    assert "No orders match this search and these filters." in part
    assert 'href="/orders">Clear filters' in part


def test_a_hostile_search_is_escaped_in_its_chip(owner_client):
    body = owner_client.get("/orders?q=%3Cscript%3Ealert(1)%3C/script%3E").get_data(as_text=True)
    assert "<script>alert(1)" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in results(body)


def test_presets_and_chips_in_chinese(owner_client, owner):
    db.session.execute(update(User).where(User.id == owner.id).values(locale="zh_Hant_HK"))
    db.session.commit()
    body = owner_client.get("/orders?low_stock=1").get_data(as_text=True)
    for word in ("今天", "昨天", "過去 7 天", "本月", "清除篩選"):
        assert word in body
    chip = re.search(r'<li class="filter-chip">(.*?)</li>', body, re.S).group(1)
    assert "庫存：" in chip and "Stock" not in chip


# ------------------------------------------------------------------ the way back from an order


def placed_in_sequence(make_order, n):
    """n orders placed a minute apart (the newest last), as the list orders them."""
    from datetime import timedelta

    from domain.models import Order

    orders = [make_order(name=f"客人{i}") for i in range(n)]
    base = datetime(2026, 11, 20, 4, 0)
    for i, order in enumerate(orders):
        db.session.execute(update(Order).where(Order.id == order.id)
                           .values(placed_at=base + timedelta(minutes=i)))
    db.session.commit()
    return [o.number for o in orders]


def test_neighbours_follow_the_list_order_and_its_filters(app, make_order):
    from domain.list_view import neighbours
    from domain.orders import get_order_by_number

    numbers = placed_in_sequence(make_order, 4)  # list shows 3, 2, 1, 0
    everything = query()
    middle = get_order_by_number(numbers[1])
    around = neighbours(everything, middle)
    assert (around.previous, around.following) == (numbers[2], numbers[0])
    newest = neighbours(everything, get_order_by_number(numbers[3]))
    assert (newest.previous, newest.following) == (None, numbers[2])
    # A search narrows the list: the neighbours are the matching orders only.
    only_two = query(q="客人1")
    assert neighbours(only_two, middle) == type(around)(None, None)  # alone in its list
    # An order outside the list has no neighbours in it.
    assert neighbours(query(status="completed"), middle) == type(around)(None, None)


def test_the_neighbours_fragment_follows_the_list_it_is_given(owner_client, make_order):
    numbers = placed_in_sequence(make_order, 3)
    body = owner_client.get(f"/orders/{numbers[1]}/neighbours?q=%E5%AE%A2%E4%BA%BA",
                            htmx=True).get_data(as_text=True)  # 客人
    assert f'rel="prev" href="/orders/{numbers[2]}"' in body
    assert f'rel="next" href="/orders/{numbers[0]}"' in body
    oldest_first = owner_client.get(f"/orders/{numbers[1]}/neighbours?sort=date",
                                    htmx=True).get_data(as_text=True)
    assert f'rel="prev" href="/orders/{numbers[0]}"' in oldest_first
    # A list the order is not in, or arguments the list refuses: no links.
    for args in ("status=completed", "status=bogus", "sort=x"):
        response = owner_client.get(f"/orders/{numbers[1]}/neighbours?{args}", htmx=True)
        assert response.status_code == 200 and "rel=" not in response.get_data(as_text=True)
    assert owner_client.get("/orders/SD99999/neighbours").status_code == 404


def test_the_order_page_links_back_to_the_plain_list_without_script(owner_client, make_order):
    (number,) = placed_in_sequence(make_order, 1)
    body = owner_client.get(f"/orders/{number}").get_data(as_text=True)
    assert '<a id="back-to-list" href="/orders" data-list-return>' in body
    assert f'data-neighbours-url="/orders/{number}/neighbours"' in body
    # No cookie is written by the list: it would keep the list out of the bfcache.
    response = owner_client.get("/orders?status=processing")
    assert "Set-Cookie" not in response.headers


@pytest.mark.browser
def test_back_previous_and_next_follow_the_list_in_a_browser(live_server, browser, owner,
                                                             make_order):
    from conftest import browser_login
    from playwright.sync_api import expect

    numbers = placed_in_sequence(make_order, 3)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    browser_login(page, live_server, owner.email)
    page.goto(f"{live_server}/orders?status=pending_payment&sort=date")
    page.click(f"#row-{numbers[1]} a.order-link")
    page.wait_for_url(f"**/orders/{numbers[1]}")
    expect(page.locator("#back-to-list")).to_have_attribute(
        "href", "/orders?status=pending_payment&sort=date")
    expect(page.locator("#order-steps a[rel=next]")).to_have_attribute("href", f"/orders/{numbers[2]}")
    page.click("#order-steps a[rel=next]")
    page.wait_for_url(f"**/orders/{numbers[2]}")
    expect(page.locator("#order-steps a[rel=prev]")).to_have_attribute("href", f"/orders/{numbers[1]}")
    page.click("#back-to-list")
    page.wait_for_url("**/orders?status=pending_payment&sort=date")


# ------------------------------------------------------------------ times read the same everywhere


def test_times_read_today_yesterday_then_the_date(app):
    from flask_babel import force_locale

    from blueprints.rendering import local_time

    now = datetime(2026, 11, 28, 15, 0)  # 23:00 in Hong Kong
    with app.test_request_context():
        assert local_time(datetime(2026, 11, 28, 14, 40), now=now) == "Today 22:40"
        # 2026-11-27 16:30 UTC is 28 November 00:30 in Hong Kong: today there, not yesterday.
        assert local_time(datetime(2026, 11, 27, 16, 30), now=now) == "Today 00:30"
        assert local_time(datetime(2026, 11, 27, 1, 15), now=now) == "Yesterday 09:15"
        assert local_time(datetime(2026, 11, 26, 12, 24), now=now) == "2026-11-26 20:24"
        assert local_time(None) == ""
        assert local_time(datetime(2026, 11, 28, 14, 40), "%H:%M") == "22:40"
        with force_locale("zh_Hant_HK"):
            assert local_time(datetime(2026, 11, 28, 14, 40), now=now) == "今天 22:40"
            assert local_time(datetime(2026, 11, 27, 1, 15), now=now) == "昨天 09:15"


def test_the_filters_date_fields_are_written_yyyy_mm_dd(owner_client):
    body = owner_client.get("/orders?from=2026-11-01").get_data(as_text=True)
    field = re.search(r'<input type="text" name="from"[^>]*>', body).group(0)
    assert 'value="2026-11-01"' in field
    assert f'placeholder="{store_today().isoformat()}"' in field  # an example in the same form
    assert 'type="date"' not in body
    refused = owner_client.get("/orders?from=11/26/2026").get_data(as_text=True)
    assert "must be a date like 2026-01-31" in refused


# ------------------------------------------------------------------ To do


def test_todo_holds_the_work_waiting_oldest_first(app, make_order):
    from domain.actors import Actor
    from domain.orders import confirm_payment, get_order_by_number, reject_order, ship_order

    numbers = placed_in_sequence(make_order, 5)
    staff = Actor("staff", None, "Test")
    confirm_payment(get_order_by_number(numbers[0]).id, actor=staff)  # processing
    confirm_payment(get_order_by_number(numbers[2]).id, actor=staff)
    ship_order(get_order_by_number(numbers[2]).id, actor=staff)  # completed: done
    reject_order(get_order_by_number(numbers[3]).id, "out of stock", actor=staff)  # canceled
    from domain.orders import upload_proof
    upload_proof(get_order_by_number(numbers[4]).id, path="/x.png", sha256="ab" * 32)
    todo = query(status="todo")
    page, counts = todo.page_with_tab_counts()
    # numbers[1] still waits for the customer's payment: not the merchant's work.
    assert [o.number for o in page.items] == [numbers[0], numbers[4]]
    assert counts["todo"] == 2 == counts["processing"] + counts["pending_confirmation"]
    assert page.total == 2


def test_todo_neighbours_follow_oldest_first(app, make_order):
    from domain.actors import Actor
    from domain.list_view import neighbours
    from domain.orders import confirm_payment, get_order_by_number

    numbers = placed_in_sequence(make_order, 3)
    for number in numbers:
        confirm_payment(get_order_by_number(number).id, actor=Actor("staff", None, "Test"))
    around = neighbours(query(status="todo"), get_order_by_number(numbers[1]))
    assert (around.previous, around.following) == (numbers[0], numbers[2])


def test_the_desk_opens_on_todo(owner_client, make_order):
    response = owner_client.get("/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/orders?status=todo")
    body = owner_client.get("/orders?status=todo").get_data(as_text=True)
    tab = re.search(r'<a class="tab tab-todo"[^>]*>', body).group(0)
    assert 'aria-current="page"' in tab
    fragment = owner_client.get("/orders?status=todo", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and 'data-status="todo"' in fragment.get_data(as_text=True)


# ------------------------------------------------------------------ sorting


def test_sorting_by_total_customer_and_date(app, make_order, make_variant):
    from domain.list_view import neighbours
    from domain.orders import get_order_by_number

    cheap = make_order(name="Amy", items=[(make_variant(price_cents=1000).id, 1)])
    dear = make_order(name="Zoe", items=[(make_variant(price_cents=90000).id, 1)])
    middle = make_order(name="Kit", items=[(make_variant(price_cents=5000).id, 1)])

    def numbers(sort):
        return [o.number for o in query(sort=sort).page_results().items]

    assert numbers("-total") == [dear.number, middle.number, cheap.number]
    assert numbers("total") == [cheap.number, middle.number, dear.number]
    assert numbers("customer") == [cheap.number, middle.number, dear.number]
    assert numbers("-customer") == [dear.number, middle.number, cheap.number]
    assert numbers("date") == [cheap.number, dear.number, middle.number]
    around = neighbours(query(sort="-total"), get_order_by_number(middle.number))
    assert (around.previous, around.following) == (dear.number, cheap.number)


def test_an_unknown_sort_is_refused_and_the_usual_order_kept(owner_client, make_order):
    make_order()
    body = owner_client.get("/orders?sort=total;drop").get_data(as_text=True)
    assert "Unknown sort order; showing the usual order." in body


def test_sort_headers_toggle_and_say_the_direction(owner_client, make_order):
    make_order()
    body = owner_client.get("/orders?sort=-total").get_data(as_text=True)
    total = re.search(r'<th class="num" aria-sort="descending"><a class="sort-link" href="([^"]+)"', body)
    assert total and total.group(1) == "/orders?sort=total"
    customer = re.search(r'<th class="" ><a class="sort-link" href="([^"]+)"[^>]*>Customer', body)
    assert customer and customer.group(1) == "/orders?sort=customer"
    fragment = owner_client.get("/orders?sort=customer", headers={"HX-Request": "true"})
    assert 'aria-sort="ascending"' in fragment.get_data(as_text=True)


def test_a_refunded_order_wears_a_badge_in_the_list(owner_client, make_order):
    from domain.actors import Actor
    from domain.orders import confirm_payment, record_refund_note

    refunded, plain = make_order(), make_order()
    staff = Actor("staff", None, "Test")
    confirm_payment(refunded.id, actor=staff)
    record_refund_note(refunded.id, amount_cents=5000, method="FPS", actor=staff)
    body = owner_client.get("/orders").get_data(as_text=True)

    def status_cell(number):
        cell = body[body.index(f'id="status-{number}"'):]
        return cell[:cell.index("</td>")]

    assert "Refunded" in status_cell(refunded.number) and "HK$50.00" in status_cell(refunded.number)
    assert "Refunded" not in status_cell(plain.number)


# ------------------------------------------------------------------ saved views as tabs


def test_saved_views_are_tabs_and_save_view_sits_beside_filters(owner_client, owner, make_order):
    from domain.saved_views import save_view

    make_order()
    save_view(owner.id, "待確認 <b>", "status=pending_confirmation")
    body = owner_client.get("/orders?status=pending_confirmation").get_data(as_text=True)
    tabs = body[body.index('id="status-tabs"'):body.index("</nav>", body.index('id="status-tabs"'))]
    assert 'class="tab tab-view is-current"' in tabs and "待確認 &lt;b&gt;" in tabs
    assert 'aria-current="page">待確認 &lt;b&gt;</a>' in tabs
    view_id = re.search(r'form="delete-view-(\d+)"', tabs).group(1)
    deleter = body[body.index(f'<form id="delete-view-{view_id}"'):]
    deleter = deleter[:deleter.index("</form>")]
    assert 'data-confirm="Delete the saved view “待確認 &lt;b&gt;”?"' in deleter
    toolbar = body[body.index('class="toolbar"'):body.index('id="status-tabs"')]
    assert '<summary class="btn">Save view</summary>' in toolbar
    assert 'form="save-view-form"' in toolbar
    # the fields the view saves live in a form of their own, not inside the filter form
    filters = body[body.index('<form id="order-filters"'):]
    filters = filters[:filters.index("</form>")]
    assert "<form" not in filters[5:] and 'name="query_string"' not in filters
    saver = body[body.index('<form id="save-view-form"'):]
    assert 'id="save-view-qs" value="status=pending_confirmation"' in saver[:saver.index("</form>")]
    # an htmx search sends the field again, out of band, so "Save view" saves what is shown
    fragment = owner_client.get("/orders?status=processing&q=abc", htmx=True).get_data(as_text=True)
    assert 'id="save-view-qs" value="status=processing&amp;q=abc" hx-swap-oob="true"' in fragment
    assert "tab-view" in fragment  # the tabs come along with the fragment


@pytest.mark.browser
def test_saving_and_deleting_a_view_in_a_browser(live_server, browser, owner, make_order):
    from conftest import browser_login
    from playwright.sync_api import expect

    from domain.models import SavedView

    make_order(name="陳大文")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    browser_login(page, live_server, owner.email)
    page.goto(f"{live_server}/orders")
    page.fill("#q", "陳")
    page.wait_for_url("**/orders?q=*")
    page.click("summary:has-text('Save view')")
    page.fill("#view-name", "陳 orders")
    page.click(".save-view button[type=submit]")
    expect(page.locator("#status-tabs .tab-view")).to_contain_text("陳 orders")
    db.session.rollback()
    assert [v.query_string for v in db.session.query(SavedView)] == ["q=%E9%99%B3"]
    page.once("dialog", lambda d: d.accept())  # "Delete the saved view …?"
    page.click("#status-tabs .tab-view button")
    expect(page.locator("#status-tabs .tab-view")).to_have_count(0)
    db.session.rollback()
    assert db.session.query(SavedView).count() == 0


@pytest.mark.parametrize("htmx", [False, True])
def test_a_product_filter_chip_names_the_product(owner_client, make_order, make_variant, htmx):
    """The htmx fragment looks up only the filtered products' names (the filter panel with
    every product is outside it); the chip reads the same either way."""
    chosen = make_variant(name="抹茶曲奇 <禮盒>")
    make_variant(name="Not chosen")
    order = make_order(items=[(chosen.id, 1)])
    body = owner_client.get(f"/orders?product={chosen.product_id}", htmx=htmx).get_data(as_text=True)
    chips = re.findall(r'<li class="filter-chip">(.*?)</li>', results(body), re.S)
    assert len(chips) == 1 and "抹茶曲奇 &lt;禮盒&gt;" in chips[0]
    assert f'id="row-{order.number}"' in body
    # the whole page's filter panel lists every product; the fragment has no panel
    assert ("Not chosen" in body) is (not htmx)
