"""The modify editor's views (blueprints/modify): the button and the editor with and
without htmx, the live preview, saving, a stale version, the plan and status refusals
(also as crafted POSTs), who may do it, CSRF, and hostile input that must change
nothing."""

from __future__ import annotations

import pytest

from domain.db import db
from domain.models import Order, OrderEvent, StoreSettings, Variant


def set_plan(plan: str) -> None:
    db.session.get(StoreSettings, 1).plan = plan
    db.session.commit()


@pytest.fixture
def advanced(app):
    set_plan("advanced")


def fresh(order_id: int) -> Order:
    db.session.expire_all()
    return db.session.get(Order, order_id)


def form_for(order, lines=None, **fields):
    """What the editor posts: every line's key and quantity, and the money fields."""
    lines = lines if lines is not None else [(f"line:{ln.id}", str(ln.quantity))
                                             for ln in order.lines]
    data = {"key": [k for k, _q in lines], "qty": [q for _k, q in lines],
            "version": str(order.version), "shipping_method": str(order.shipping_method_id),
            "shipping_fee": "", "discount": "", "extra_charge": "", "extra_charge_label": ""}
    data.update(fields)
    return data


def snapshot(order_id: int):
    order = fresh(order_id)
    stock = [db.session.get(Variant, ln.variant_id).stock for ln in order.lines]
    return (order.version, order.total_cents, [(ln.variant_id, ln.quantity) for ln in order.lines],
            stock, db.session.query(OrderEvent).filter_by(order_id=order_id).count())


# ------------------------------------------------------------------ the button and the editor


def test_order_page_has_the_button_and_the_slot(owner_client, advanced, make_order):
    order = make_order()
    html = owner_client.get(f"/orders/{order.number}").get_data(as_text=True)
    assert 'data-testid="modify-open"' in html
    assert 'id="modify-slot"' in html
    assert "js/modify.js" in html


def test_editor_is_a_fragment_for_htmx_and_a_page_without(owner_client, advanced, make_order):
    order = make_order(quantity=2)
    fragment = owner_client.get(f"/orders/{order.number}/modify", htmx=True)
    assert fragment.status_code == 200
    text = fragment.get_data(as_text=True)
    assert 'id="modify-editor"' in text and "<html" not in text
    assert f'value="line:{order.lines[0].id}"' in text
    assert 'name="version"' in text and f'value="{order.version}"' in text
    page = owner_client.get(f"/orders/{order.number}/modify")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<html" in html and 'id="modify-form"' in html and "css/modify.css" in html


def test_preview_shows_new_totals_and_diff_and_saves_nothing(owner_client, advanced, make_order):
    order = make_order(quantity=1)
    before = snapshot(order.id)
    line = order.lines[0]
    response = owner_client.post(f"/orders/{order.number}/modify/preview",
                                 form_for(order, [(f"line:{line.id}", "3")]), htmx=True)
    assert response.status_code == 200, response.get_data(as_text=True)
    text = response.get_data(as_text=True)
    assert 'data-testid="modify-total"' in text and "<html" not in text
    assert 'data-testid="modify-diff"' in text
    assert f'id="lt-line-{line.id}" hx-swap-oob="true"' in text  # the line's own total
    assert snapshot(order.id) == before


def test_preview_names_the_item_short_of_stock(owner_client, advanced, make_order, make_variant):
    order = make_order()
    scarce = make_variant(name="抹茶曲奇禮盒", variant="大盒", stock=1)
    response = owner_client.post(f"/orders/{order.number}/modify/preview", form_for(
        order, [(f"line:{order.lines[0].id}", "1"), (f"variant:{scarce.id}", "5")]), htmx=True)
    text = response.get_data(as_text=True)
    assert 'data-testid="modify-problem"' in text and "抹茶曲奇禮盒" in text


def test_search_and_add_a_product(owner_client, advanced, make_order, make_variant):
    order = make_order()
    extra = make_variant(name="抹茶曲奇禮盒", variant="大盒", price_cents=12800, stock=5)
    found = owner_client.get(f"/orders/{order.number}/modify/search?q={extra.sku}", htmx=True)
    text = found.get_data(as_text=True)
    assert found.status_code == 200 and f'data-testid="add-{extra.sku}"' in text
    by_barcode = owner_client.get(f"/orders/{order.number}/modify/search?q={extra.barcode}",
                                  htmx=True).get_data(as_text=True)
    assert "抹茶曲奇禮盒" in by_barcode
    added = owner_client.post(f"/orders/{order.number}/modify/refresh",
                              {**form_for(order), "op": f"add:{extra.id}"}, htmx=True)
    text = added.get_data(as_text=True)
    assert added.status_code == 200 and f'value="variant:{extra.id}"' in text
    assert 'id="modify-editor"' in text
    # Remove takes the new line away again; an existing line stays, marked removed.
    removed = owner_client.post(f"/orders/{order.number}/modify/refresh", {
        **form_for(order, [(f"line:{order.lines[0].id}", "1"), (f"variant:{extra.id}", "1")]),
        "op": f"remove:line:{order.lines[0].id}"}, htmx=True).get_data(as_text=True)
    assert "is-removed" in removed and f'value="variant:{extra.id}"' in removed


def test_no_js_search_redraws_the_page(owner_client, advanced, make_order, make_variant):
    order = make_order()
    extra = make_variant(name="蛋卷", stock=5)
    page = owner_client.post(f"/orders/{order.number}/modify/refresh",
                             {**form_for(order), "op": "search", "q": "蛋卷"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in html and f'add-{extra.sku}' in html


def test_save_changes_the_order_and_shows_the_diff(owner_client, advanced, make_order):
    order = make_order(quantity=1)
    line, version = order.lines[0], order.version
    response = owner_client.post(f"/orders/{order.number}/modify",
                                 form_for(order, [(f"line:{line.id}", "2")]), htmx=True)
    text = response.get_data(as_text=True)
    assert response.status_code == 200, text
    assert 'id="order-body"' in text and 'id="modify-editor"' not in text
    assert "flash-success" in text
    after = fresh(order.id)
    assert after.version == version + 1 and after.lines[0].quantity == 2
    assert 'data-testid="history-diff"' in text


def test_save_without_htmx_redirects_to_the_order(owner_client, advanced, make_order):
    order = make_order(quantity=1)
    response = owner_client.post(f"/orders/{order.number}/modify", form_for(
        order, [(f"line:{order.lines[0].id}", "2")], discount="10"))
    assert response.status_code == 302 and response.headers["Location"].endswith(order.number)
    assert fresh(order.id).discount_cents == 1000


def test_stale_version_is_refused_and_keeps_what_was_typed(owner_client, advanced, make_order):
    order = make_order(quantity=1)
    line = order.lines[0]
    opened = form_for(order, [(f"line:{line.id}", "4")], extra_charge_label="禮物包裝")
    # someone else saves first
    assert owner_client.post(f"/orders/{order.number}/modify",
                             form_for(order, [(f"line:{line.id}", "2")])).status_code == 302
    before = snapshot(order.id)
    response = owner_client.post(f"/orders/{order.number}/modify", opened, htmx=True)
    text = response.get_data(as_text=True)
    assert response.status_code == 422
    assert response.headers.get("HX-Retarget") == "#modify-editor"
    assert "This order changed meanwhile" in text and 'data-testid="modify-stale"' in text
    assert 'value="4"' in text and "禮物包裝" in text
    assert snapshot(order.id) == before


def test_cancel_empties_the_slot(owner_client, advanced, make_order):
    order = make_order()
    closed = owner_client.get(f"/orders/{order.number}/modify/close", htmx=True)
    assert closed.status_code == 200 and closed.get_data(as_text=True).strip() == ""
    assert owner_client.get(f"/orders/{order.number}/modify/close").status_code == 302


# ------------------------------------------------------------------ who and when


@pytest.mark.parametrize("who", ["owner", "staff"])
def test_basic_plan_explains_instead_of_editing(request, who, make_order):
    client = request.getfixturevalue(f"{who}_client")
    set_plan("basic")
    order = make_order()
    page = client.get(f"/orders/{order.number}").get_data(as_text=True)
    assert 'data-testid="modify-open"' in page  # visible on Basic too
    text = client.get(f"/orders/{order.number}/modify", htmx=True).get_data(as_text=True)
    assert 'data-testid="modify-refusal"' in text and 'id="modify-form"' not in text
    assert "Advanced" in text and "Video Commerce" in text
    if who == "owner":
        assert 'data-testid="plan-link"' in text and "/settings/store" in text
    else:
        assert 'data-testid="plan-link"' not in text and "ask them" in text


@pytest.mark.parametrize("path", ["", "/preview", "/refresh"])
def test_crafted_post_on_basic_changes_nothing(owner_client, make_order, path):
    set_plan("basic")
    order = make_order(quantity=1)
    before = snapshot(order.id)
    response = owner_client.post(f"/orders/{order.number}/modify{path}",
                                 form_for(order, [(f"line:{order.lines[0].id}", "3")]), htmx=True)
    assert response.status_code == 422
    assert 'data-testid="modify-refusal"' in response.get_data(as_text=True)
    assert snapshot(order.id) == before


@pytest.mark.parametrize("end", ["completed", "canceled"])
def test_closed_orders_refuse_a_crafted_save(owner_client, owner, advanced, make_order, end):
    from domain import orders as actions
    from domain.actors import Actor

    order = make_order(quantity=1)
    actor = Actor.staff(owner)
    if end == "completed":
        actions.confirm_payment(order.id, actor=actor)
        actions.ship_order(order.id, actor=actor)
    else:
        actions.reject_order(order.id, "缺貨", actor=actor)
    order = fresh(order.id)
    page = owner_client.get(f"/orders/{order.number}").get_data(as_text=True)
    assert 'data-testid="modify-open"' not in page
    before = snapshot(order.id)
    for htmx in (True, False):
        response = owner_client.post(f"/orders/{order.number}/modify",
                                     form_for(order, [(f"line:{order.lines[0].id}", "3")]),
                                     htmx=htmx)
        assert response.status_code == 422
    assert snapshot(order.id) == before


def test_staff_can_modify_too(staff_client, advanced, make_order):
    order = make_order(quantity=1)
    response = staff_client.post(f"/orders/{order.number}/modify",
                                 form_for(order, [(f"line:{order.lines[0].id}", "2")]))
    assert response.status_code == 302 and fresh(order.id).lines[0].quantity == 2


def test_not_logged_in_goes_to_login(client, advanced, make_order):
    order = make_order()
    for url in ("/modify", "/modify/search?q=a", "/modify/close"):
        response = client.get(f"/orders/{order.number}{url}")
        assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("htmx", [False, True])
@pytest.mark.parametrize("path", ["", "/preview", "/refresh"])
def test_csrf_missing_is_400(owner_client, advanced, make_order, htmx, path):
    order = make_order(quantity=1)
    before = snapshot(order.id)
    response = owner_client.post(f"/orders/{order.number}/modify{path}",
                                 form_for(order, [(f"line:{order.lines[0].id}", "3")]),
                                 htmx=htmx, csrf=False)
    assert response.status_code == 400
    assert snapshot(order.id) == before


def test_unknown_order_is_404(owner_client, advanced):
    assert owner_client.get("/orders/SD999999/modify").status_code == 404
    assert owner_client.get("/orders/" + "X" * 40 + "/modify").status_code == 404


# ------------------------------------------------------------------ hostile input


HOSTILE_QTY = ["-1", "99999999", "abc", "1e3", "1.5", "", "٣", "0x10"]


@pytest.mark.parametrize("qty", HOSTILE_QTY)
def test_bad_quantities_change_nothing(owner_client, advanced, make_order, qty):
    order = make_order(quantity=1)
    before = snapshot(order.id)
    response = owner_client.post(f"/orders/{order.number}/modify",
                                 form_for(order, [(f"line:{order.lines[0].id}", qty)]), htmx=True)
    assert response.status_code == 422
    assert 'data-testid="modify-errors"' in response.get_data(as_text=True)
    assert snapshot(order.id) == before


@pytest.mark.parametrize("field,value", [
    ("discount", "-5"), ("discount", "1" * 30), ("discount", "abc"), ("shipping_fee", "-1"),
    ("shipping_fee", "1e9"), ("extra_charge", "9" * 15), ("extra_charge_label", "x" * 81),
    ("version", "abc"), ("version", "-1"), ("shipping_method", "999999"),
    ("shipping_method", "abc")])
def test_bad_fields_change_nothing(owner_client, advanced, make_order, field, value):
    order = make_order(quantity=1)
    before = snapshot(order.id)
    response = owner_client.post(f"/orders/{order.number}/modify",
                                 form_for(order, **{field: value}), htmx=True)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert snapshot(order.id) == before


def test_other_orders_line_and_unknown_variant_change_nothing(owner_client, advanced, make_order):
    order, other = make_order(quantity=1), make_order(quantity=1)
    before, before_other = snapshot(order.id), snapshot(other.id)
    for lines in ([(f"line:{other.lines[0].id}", "0")],
                  [(f"line:{order.lines[0].id}", "1"), ("variant:999999", "1")],
                  [(f"line:{order.lines[0].id}", "1"), ("bogus:1", "1")],
                  [(f"line:{order.lines[0].id}", "1"), (f"line:{order.lines[0].id}", "5")]):
        response = owner_client.post(f"/orders/{order.number}/modify", form_for(order, lines),
                                     htmx=True)
        assert response.status_code == 422, lines
    assert snapshot(order.id) == before and snapshot(other.id) == before_other


def test_mismatched_lists_and_too_many_lines(owner_client, advanced, make_order):
    order = make_order(quantity=1)
    before = snapshot(order.id)
    data = form_for(order)
    data["qty"] = ["1", "2"]
    assert owner_client.post(f"/orders/{order.number}/modify", data, htmx=True).status_code == 422
    many = form_for(order, [(f"variant:{n}", "1") for n in range(1, 150)])
    assert owner_client.post(f"/orders/{order.number}/modify", many, htmx=True).status_code == 422
    assert snapshot(order.id) == before


def test_typed_names_are_escaped(owner_client, advanced, make_order, make_variant):
    order = make_order()
    evil = make_variant(name='<script>alert(1)</script>', stock=3)
    text = owner_client.post(f"/orders/{order.number}/modify/refresh",
                             {**form_for(order, extra_charge_label='<img src=x onerror=1>'),
                              "op": f"add:{evil.id}"}, htmx=True).get_data(as_text=True)
    assert "<script>alert(1)" not in text and "<img src=x" not in text
    assert "&lt;script&gt;" in text


def test_editor_reads_in_chinese(app, staff, staff_client, advanced, make_order):
    from domain.models import User

    db.session.get(User, staff.id).locale = "zh_Hant_HK"
    db.session.commit()
    order = make_order()
    text = staff_client.get(f"/orders/{order.number}/modify", htmx=True).get_data(as_text=True)
    assert "修改訂單" in text and "儲存更改" in text and "加入產品" in text
    assert "Save changes" not in text and "Add a product" not in text
