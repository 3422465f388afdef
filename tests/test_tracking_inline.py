"""The inline tracking editor, finished (issue 16): Save & ship in one step, "Saved"
announced, focus back on the cell, and columns that stay put."""

from __future__ import annotations

import pytest
from conftest import browser_login
from playwright.sync_api import expect
from sqlalchemy import func, select

from domain.actors import Actor
from domain.db import db
from domain.models import Order, OrderEvent
from domain.orders import confirm_payment

STAFF = Actor("staff", None, "Test")


def paid(make_order, **kw):
    order = make_order(**kw)
    confirm_payment(order.id, actor=STAFF)
    return order


def shipped_events(order):
    return db.session.scalar(select(func.count()).select_from(OrderEvent).where(
        OrderEvent.order_id == order.id, OrderEvent.type == "order_shipped"))


def test_save_and_ship_from_the_list_ships_once_and_updates_the_row(owner_client, make_order):
    order = paid(make_order)
    response = owner_client.post(f"/orders/{order.number}/tracking?context=list",
                                 data={"tracking_code": "SF100200300", "and_ship": "1"}, htmx=True)
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "SF100200300" in body and "Shipment confirmed for" in body
    assert f'id="status-{order.number}" hx-swap-oob="true"' in body and "Completed" in body
    db.session.expire_all()
    row = db.session.get(Order, order.id)
    assert (row.status, row.delivery_status, row.tracking_code) == ("completed", "shipped", "SF100200300")
    assert shipped_events(order) == 1
    again = owner_client.post(f"/orders/{order.number}/tracking?context=list",
                              data={"tracking_code": "SF100200300", "and_ship": "1"}, htmx=True)
    assert again.status_code == 422 and shipped_events(order) == 1  # refused, nothing doubled


def test_save_and_ship_on_the_order_page_refreshes_it(owner_client, make_order):
    order = paid(make_order)
    response = owner_client.post(f"/orders/{order.number}/tracking",
                                 data={"tracking_code": "SF1", "and_ship": "1"}, htmx=True)
    assert response.headers.get("HX-Refresh") == "true"
    plain = paid(make_order)
    response = owner_client.post(f"/orders/{plain.number}/tracking",
                                 data={"tracking_code": "SF2", "and_ship": "1"})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Order, plain.id).status == "completed"


def test_save_and_ship_refused_keeps_the_typed_code_and_changes_nothing(owner_client, make_order):
    order = make_order()  # pending payment: cannot ship yet
    response = owner_client.post(f"/orders/{order.number}/tracking?context=list",
                                 data={"tracking_code": "SF777", "and_ship": "1"}, htmx=True)
    body = response.get_data(as_text=True)
    assert response.status_code == 422 and 'value="SF777"' in body
    db.session.expire_all()
    row = db.session.get(Order, order.id)
    assert (row.status, row.tracking_code) == ("pending_payment", "")
    bad = owner_client.post(f"/orders/{paid(make_order).number}/tracking?context=list",
                            data={"tracking_code": "<script>", "and_ship": "1"}, htmx=True)
    assert bad.status_code == 422 and "<script>" not in bad.get_data(as_text=True)


def test_the_editor_offers_save_and_ship_only_where_shipping_is_possible(owner_client, make_order):
    ready = paid(make_order)
    editor = owner_client.get(f"/orders/{ready.number}/tracking/edit?context=list", htmx=True)
    assert 'name="and_ship"' in editor.get_data(as_text=True)
    unpaid = make_order()
    editor = owner_client.get(f"/orders/{unpaid.number}/tracking/edit?context=list", htmx=True)
    assert 'name="and_ship"' not in editor.get_data(as_text=True)


def test_a_plain_save_says_saved(owner_client, make_order):
    order = paid(make_order)
    body = owner_client.post(f"/orders/{order.number}/tracking?context=list",
                             data={"tracking_code": "SF5"}, htmx=True).get_data(as_text=True)
    assert '<small class="saved-note" data-saved>Saved</small>' in body
    db.session.expire_all()
    assert db.session.get(Order, order.id).status == "processing"  # saved, not shipped


def test_save_and_ship_needs_csrf(owner_client, make_order):
    order = paid(make_order)
    response = owner_client.post(f"/orders/{order.number}/tracking?context=list",
                                 data={"tracking_code": "SF9", "and_ship": "1"}, htmx=True,
                                 csrf=False)
    assert response.status_code in (400, 422)
    db.session.expire_all()
    assert db.session.get(Order, order.id).status == "processing"


@pytest.mark.browser
def test_focus_returns_saved_is_announced_and_columns_stay(live_server, browser, owner,
                                                          make_order):
    order = paid(make_order)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    browser_login(page, live_server, owner.email)
    page.goto(f"{live_server}/orders")
    header = page.locator("table.orders thead th").nth(9)
    before = header.bounding_box()["x"]
    cell = page.locator(f"#tracking-list-{order.number}")
    cell.locator("button.tracking-view").click()
    box = cell.locator("input[name=tracking_code]")
    expect(box).to_be_focused()
    assert abs(page.locator("table.orders thead th").nth(9).bounding_box()["x"] - before) < 2
    box.press("Escape")
    expect(page.locator(f"#tracking-list-{order.number} button.tracking-view")).to_be_focused()
    page.keyboard.press("Enter")  # the focused cell opens the editor again
    box = page.locator(f"#tracking-list-{order.number} input[name=tracking_code]")
    expect(box).to_be_focused()
    box.fill("SF246810")
    box.press("Enter")
    expect(page.locator(f"#tracking-list-{order.number} button.tracking-view")).to_be_focused()
    expect(page.locator("#tracking-live")).to_have_text("Saved")
    # Save & ship: the row turns Completed without leaving the list
    page.locator(f"#tracking-list-{order.number} button.tracking-view").click()
    page.locator(f"#tracking-list-{order.number} button[name=and_ship]").click()
    expect(page.locator(f"#status-{order.number}")).to_contain_text("Completed")
    expect(page.locator("#tracking-live")).to_contain_text("Shipment confirmed")
    assert page.url.endswith("/orders")


def test_pickup_orders_offer_no_tracking_code(owner_client, make_order):
    from domain.errors import InvalidTransition
    from domain.orders import set_tracking_code

    order = paid(make_order, shipping="pickup", address="")
    body = owner_client.get("/orders").get_data(as_text=True)
    cell = body[body.index(f'id="tracking-list-{order.number}"'):]
    cell = cell[:cell.index("</div>")]
    assert "tracking-view locked" in cell and "Add tracking code" not in cell
    with pytest.raises(InvalidTransition, match="collected in the shop"):
        set_tracking_code(order.id, "SF1", actor=STAFF)
    crafted = owner_client.post(f"/orders/{order.number}/tracking?context=list",
                                data={"tracking_code": "SF1"}, htmx=True)
    assert crafted.status_code == 422 and "collected in the shop" in crafted.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Order, order.id).tracking_code == ""
