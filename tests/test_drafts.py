"""Unpaid orders placed on behalf of a customer: builder, link, customer checkout."""

from __future__ import annotations

import re
import threading

import pytest
from sqlalchemy import func, select

from domain import drafts
from domain.actors import Actor
from domain.db import db
from domain.errors import DomainError, InvalidTransition
from domain.models import Order, OrderEvent, PaymentMethod, ShippingMethod, Variant
from domain.orders import CustomerDetails

pytest_plugins = ["jobs_fixtures"]
STAFF = Actor("staff", 1, "Tester")


def ship_id(kind="delivery"):
    return db.session.query(ShippingMethod).filter_by(kind=kind).first().id


def pay_id(code="fps"):
    return db.session.query(PaymentMethod).filter_by(code=code).first().id


def stock_of(variant_id):
    db.session.rollback()
    return db.session.get(Variant, variant_id).stock


def builder_data(variant_id, qty=2, **extra):
    data = {"customer_name": "李小姐", "phone": "6123 4567", "email": "", "address": "沙田",
            "lines-0-variant_id": variant_id, "lines-0-quantity": qty,
            "lines-1-variant_id": 0, "lines-1-quantity": "",
            "shipping_method": ship_id(), "shipping_fee": "15", "discount": "10"}
    data.update(extra)
    return data


def test_draft_link_checkout_end_to_end(app, owner_client, client, make_variant, redis_conn):
    variant = make_variant(price_cents=5000, stock=4)
    # the merchant builds a draft: no stock moves
    response = owner_client.post("/drafts/new", builder_data(variant.id, qty=3))
    assert response.status_code == 302
    draft = db.session.scalar(select(Order).where(Order.kind == "draft"))
    assert (draft.status, draft.source, draft.total_cents) == (None, "on_behalf",
                                                               15000 + 1500 - 1000)
    assert stock_of(variant.id) == 4
    # the builder shows the link to copy
    page = owner_client.get(response.headers["Location"]).get_data(as_text=True)
    link = re.search(r'id="draft-link" type="text" readonly value="([^"]+)"', page).group(1)
    assert link.endswith(f"/shop/d/{draft.public_token}")
    # the customer opens it, chooses FPS and confirms
    path = link.split("localhost", 1)[-1]
    html = client.get(path).get_data(as_text=True)
    assert "李小姐" in html and "HK$155.00" in html
    token = client.token_from(html)
    confirm = client.post(path, {"payment_method": pay_id("fps"), "csrf_token": token},
                          csrf=False)
    assert confirm.status_code == 302
    assert confirm.headers["Location"].endswith(f"/shop/o/{draft.public_token}")
    db.session.rollback()
    order = db.session.get(Order, draft.id)
    assert (order.kind, order.status, order.source) == ("placed", "pending_payment", "on_behalf")
    assert order.placed_at is not None and order.customer_id is not None
    assert stock_of(variant.id) == 1  # held at that moment
    # the link now leads to the order page, and the draft can no longer be edited or deleted
    assert client.get(path).status_code == 302
    assert owner_client.get(f"/drafts/{draft.id}").status_code == 302
    with pytest.raises(InvalidTransition):
        drafts.delete_draft(draft.id, actor=STAFF)
    with pytest.raises(InvalidTransition):
        drafts.update_draft(draft.id, drafts.draft_input_from(order), actor=STAFF)


def test_draft_checkout_with_test_gateway_is_processing(app, make_variant):
    variant = make_variant(stock=2)
    draft = drafts.create_draft(drafts.DraftInput(
        CustomerDetails("Amy", "9876 5432", address="Central"), [(variant.id, 1)], ship_id()),
        actor=STAFF)
    order = drafts.checkout_draft(draft.id, pay_id("credit_card"))
    assert order.status == "processing" and order.payment_kind == "online"
    event = db.session.scalar(select(OrderEvent).where(OrderEvent.order_id == order.id,
                                                       OrderEvent.type == "order_placed"))
    assert event.details["source"] == "on_behalf"
    assert event.details["payment_reference"].startswith("test_")


def test_draft_checkout_without_stock_says_which_item(app, make_variant):
    variant = make_variant(name="限量月餅", variant="", stock=1)
    draft = drafts.create_draft(drafts.DraftInput(
        CustomerDetails("Amy", "9876 5432", address="Central"), [(variant.id, 2)], ship_id()),
        actor=STAFF)
    with pytest.raises(DomainError, match="Not enough stock for 限量月餅"):
        drafts.checkout_draft(draft.id, pay_id())
    db.session.rollback()
    assert db.session.get(Order, draft.id).kind == "draft" and stock_of(variant.id) == 1


def test_edit_and_delete_a_draft(app, owner_client, make_variant):
    a, b = make_variant(price_cents=1000), make_variant(price_cents=2000)
    owner_client.post("/drafts/new", builder_data(a.id, qty=1))
    draft = db.session.scalar(select(Order).where(Order.kind == "draft"))
    # edit: swap the item, pickup with no address, no discount
    response = owner_client.post(f"/drafts/{draft.id}", builder_data(
        b.id, qty=2, shipping_method=ship_id("pickup"), address="", shipping_fee="",
        discount=""))
    assert response.status_code == 302
    db.session.rollback()
    draft = db.session.get(Order, draft.id)
    assert [(ln.variant_id, ln.quantity) for ln in draft.lines] == [(b.id, 2)]
    assert (draft.total_cents, draft.shipping_kind) == (4000, "pickup")
    # refusals keep the draft as it was
    for data, message in [({"customer_name": ""}, "Give the customer"),
                          ({"discount": "99999"}, "Discount cannot be more"),
                          ({"lines-0-variant_id": 0, "lines-0-quantity": ""}, "no items"),
                          ({"lines-0-variant_id": 0}, "Choose the item for this quantity"),
                          ({"shipping_fee": "abc"}, "Shipping fee must be")]:
        bad = owner_client.post(f"/drafts/{draft.id}", builder_data(b.id, **data))
        assert bad.status_code == 422 and message in bad.get_data(as_text=True), message
    db.session.rollback()
    assert db.session.get(Order, draft.id).total_cents == 4000
    # the list shows it; delete removes it
    draft_id = draft.id
    assert draft.number in owner_client.get("/drafts/").get_data(as_text=True)
    assert owner_client.post(f"/drafts/{draft_id}/delete").status_code == 302
    db.session.rollback()
    assert db.session.get(Order, draft_id) is None


def test_the_fee_follows_the_method_unless_the_merchant_typed_one(app, owner_client,
                                                                  make_variant):
    """Re-saving a draft must not freeze the first method's fee (issue 16: a draft
    switched from SF Express to store pickup still charged HK$40)."""
    item = make_variant(price_cents=10000)
    owner_client.post("/drafts/new", builder_data(
        item.id, qty=1, shipping_method=ship_id("logistics"), shipping_fee="", discount=""))
    draft = db.session.scalar(select(Order).where(Order.kind == "draft"))
    assert (draft.shipping_fee_cents, draft.total_cents) == (4000, 14000)
    page = owner_client.get(f"/drafts/{draft.id}").get_data(as_text=True)
    fee_box = re.search(r'<input[^>]*name="shipping_fee"[^>]*>', page).group(0)
    assert 'value="40' not in fee_box  # offered blank: it follows the method
    # The merchant switches to store pickup and saves what the page offered.
    owner_client.post(f"/drafts/{draft.id}", builder_data(
        item.id, qty=1, shipping_method=ship_id("pickup"), address="", shipping_fee="",
        discount=""))
    db.session.rollback()
    draft = db.session.get(Order, draft.id)
    assert (draft.shipping_kind, draft.shipping_fee_cents, draft.total_cents) == (
        "pickup", 0, 10000)
    # A fee the merchant typed is an override: kept, and shown in the box.
    owner_client.post(f"/drafts/{draft.id}", builder_data(
        item.id, qty=1, shipping_method=ship_id("delivery"), shipping_fee="25", discount=""))
    db.session.rollback()
    draft = db.session.get(Order, draft.id)
    assert (draft.shipping_fee_cents, draft.total_cents) == (2500, 12500)
    assert drafts.draft_input_from(draft).shipping_fee_cents == 2500
    page = owner_client.get(f"/drafts/{draft.id}").get_data(as_text=True)
    assert 'value="25.00"' in re.search(r'<input[^>]*name="shipping_fee"[^>]*>', page).group(0)


def test_draft_pages_need_login_and_drafts_have_no_order_page(client, app, make_variant):
    variant = make_variant()
    draft = drafts.create_draft(drafts.DraftInput(
        CustomerDetails("Amy", "9876 5432", address="Central"), [(variant.id, 1)], ship_id()),
        actor=STAFF)
    assert client.get("/drafts/").status_code == 302
    assert client.get(f"/shop/o/{draft.public_token}").status_code == 404
    assert client.get(f"/shop/d/{draft.public_token}x").status_code == 404


@pytest.mark.slow
def test_two_customers_confirming_one_link_give_one_order(app, make_variant):
    variant = make_variant(stock=1000)
    for _ in range(30):
        draft = drafts.create_draft(drafts.DraftInput(
            CustomerDetails("Amy", "9876 5432", address="Central"), [(variant.id, 2)],
            ship_id()), actor=STAFF)
        draft_id, fps = draft.id, pay_id()
        barrier = threading.Barrier(2)
        outcomes = []

        def confirm(draft_id=draft_id, fps=fps, barrier=barrier, outcomes=outcomes):
            with app.app_context():
                barrier.wait()
                try:
                    drafts.checkout_draft(draft_id, fps)
                    outcomes.append("ok")
                except DomainError as exc:
                    outcomes.append(str(exc))
                finally:
                    db.session.remove()

        threads = [threading.Thread(target=confirm) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(outcomes) == sorted(["ok", drafts.ALREADY_PLACED]), outcomes
    db.session.rollback()
    assert db.session.scalar(select(func.count(Order.id)).where(Order.kind == "placed")) == 30
    assert stock_of(variant.id) == 1000 - 60


# ---------------------------------------------------------------- line errors (issue 7)


def line_error_row(html: str, index: int) -> str:
    """The sentence shown right under builder line ``index`` (0-based), or ''."""
    match = re.search(rf'<tr class="line-error-row"><td colspan="\d" id="lines-{index}-error">'
                      r'(.*?)</td></tr>', html, re.S)
    return match.group(1) if match else ""


def test_two_lines_of_one_item_are_capped_after_merging(app, owner_client, make_variant):
    variant = make_variant(name="抹茶曲奇", variant="", stock=None)
    data = builder_data(variant.id, qty=500, **{"lines-1-variant_id": variant.id,
                                                "lines-1-quantity": 500})
    response = owner_client.post("/drafts/new", data)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    message = "The lines of 抹茶曲奇 add up to 1000; an order can have at most 999 of one item."
    assert message in line_error_row(html, 0) and message in line_error_row(html, 1)
    assert db.session.scalar(select(func.count(Order.id))) == 0
    # the domain refuses it whoever calls it, and 999 in total is still fine
    with pytest.raises(drafts.LineQuantityError, match="add up to 1000"):
        drafts.create_draft(drafts.DraftInput(
            CustomerDetails("Amy", "9876 5432", address="Central"),
            [(variant.id, 500), (variant.id, 500)], ship_id()), actor=STAFF)
    draft = drafts.create_draft(drafts.DraftInput(
        CustomerDetails("Amy", "9876 5432", address="Central"),
        [(variant.id, 500), (variant.id, 499)], ship_id()), actor=STAFF)
    assert [(ln.variant_id, ln.quantity) for ln in draft.lines] == [(variant.id, 999)]


def test_place_order_refuses_duplicate_lines_past_the_cap(app, make_variant):
    from domain.errors import ValidationError
    from domain.orders import Checkout, place_order

    variant = make_variant(name="月餅", variant="", stock=None)
    with pytest.raises(ValidationError, match="at most 999 of 月餅"):
        place_order(Checkout(customer=CustomerDetails("Amy", "9876 5432", address="Central"),
                             items=[(variant.id, 600), (variant.id, 400)],
                             payment_method_id=pay_id(), shipping_method_id=ship_id()))


@pytest.mark.parametrize("qty, sentence", [
    ("1000", "Give a quantity from 1 to 999."),
    ("0", "Give a quantity from 1 to 999."),
    ("-3", "Give a quantity from 1 to 999."),
    ("2.5", "Give the quantity as a whole number, like 2."),
    ("abc", "Give the quantity as a whole number, like 2."),
    ("", "Give a quantity for this item."),
    ("   ", "Give a quantity for this item."),
])
def test_a_wrong_quantity_gets_a_sentence_next_to_its_line(app, owner_client, make_variant,
                                                           qty, sentence):
    a, b = make_variant(name="Good", variant=""), make_variant(name="Bad", variant="")
    data = builder_data(a.id, qty=2, **{"lines-1-variant_id": b.id, "lines-1-quantity": qty,
                                        "customer_name": "王先生 <b>"})
    response = owner_client.post("/drafts/new", data)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert sentence in line_error_row(html, 1) and line_error_row(html, 0) == ""
    assert "Some item lines need a correction: see the messages next to them." in html
    assert "{'quantity'" not in html and "Lines:" not in html and "[&#39;" not in html
    # the wrong field is marked for screen readers, and everything typed is kept
    assert re.search(r'<input[^>]*aria-describedby="lines-1-error"[^>]*aria-invalid="true"'
                     r'|<input[^>]*aria-invalid="true"[^>]*aria-describedby="lines-1-error"', html)
    assert f'value="{qty}"' in html or (not qty.strip() and 'name="lines-1-quantity" type="number" value=""' in html)
    assert "王先生 &lt;b&gt;" in html and 'value="6123 4567"' in html and "沙田" in html
    # the item stays on its line (a hidden id beside its name), not dropped
    assert f'name="lines-1-variant_id" type="hidden" value="{b.id}"' in html
    assert re.search(r'<tr class="draft-line line-invalid">\s*<td><input[^>]*lines-1-variant_id[^>]*>'
                     r'\s*<strong>Bad</strong>', html)
    assert db.session.scalar(select(func.count(Order.id))) == 0


def test_blank_quantity_is_refused_when_editing_and_the_draft_is_unchanged(app, owner_client,
                                                                           make_variant):
    variant = make_variant(price_cents=1000)
    owner_client.post("/drafts/new", builder_data(variant.id, qty=3))
    draft = db.session.scalar(select(Order).where(Order.kind == "draft"))
    response = owner_client.post(f"/drafts/{draft.id}", builder_data(variant.id, qty=""))
    assert response.status_code == 422
    assert "Give a quantity for this item." in line_error_row(response.get_data(as_text=True), 0)
    db.session.rollback()
    assert [ln.quantity for ln in db.session.get(Order, draft.id).lines] == [3]


def test_a_quantity_without_an_item_is_refused(app, owner_client, make_variant):
    variant = make_variant()
    data = builder_data(variant.id, **{"lines-1-quantity": "4"})
    response = owner_client.post("/drafts/new", data)
    assert response.status_code == 422
    assert "Choose the item for this quantity." in line_error_row(response.get_data(as_text=True), 1)
    # a crafted item id gets a sentence too, not a traceback or coerce message
    crafted = owner_client.post("/drafts/new", builder_data("x1", qty=2))
    assert crafted.status_code == 422
    assert "Choose an item from the list." in line_error_row(crafted.get_data(as_text=True), 0)
    assert db.session.scalar(select(func.count(Order.id))) == 0
