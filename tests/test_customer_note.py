"""The customer's note for the shop: written at checkout, shown on the order page,
printed on the packing list (issue 11), escaped everywhere."""

from __future__ import annotations

import pytest
from test_documents_fixtures import pdf_text, squash
from test_storefront import checkout, latest_order, shopper  # noqa: F401  (fixture)

from domain.db import db
from domain.documents import render_pdf

pytest_plugins = ["jobs_fixtures"]


def test_the_note_travels_from_checkout_to_the_packing_list(shopper, owner_client,  # noqa: F811
                                                             make_variant):
    variant = make_variant(stock=3)
    shopper.post("/shop/cart/add", {"variant_id": variant.id, "quantity": 1})
    note = "請按門鐘兩次\n<b>gift</b> wrap please"
    assert checkout(shopper, note=note).status_code == 302
    order = latest_order()
    assert order.customer_note == note
    page = owner_client.get(f"/orders/{order.number}").get_data(as_text=True)
    shown = page[page.index('data-testid="customer-note"'):]
    shown = shown[:shown.index("</p>")]
    assert "請按門鐘兩次" in shown and "&lt;b&gt;gift&lt;/b&gt;" in shown and "<b>gift" not in shown
    text = squash(pdf_text(render_pdf("packing_list", [order.id])))
    assert squash("請按門鐘兩次") in text and squash("<b>gift</b> wrap please") in text


def test_an_order_without_a_note_prints_none(app, make_order):
    order = make_order()
    assert "Customer's note" not in pdf_text(render_pdf("packing_list", [order.id], locale="en"))


@pytest.mark.parametrize("note", ["x" * 501])
def test_a_too_long_note_is_refused_and_kept(shopper, make_variant, note):  # noqa: F811
    variant = make_variant(stock=3)
    shopper.post("/shop/cart/add", {"variant_id": variant.id, "quantity": 1})
    response = checkout(shopper, note=note)
    body = response.get_data(as_text=True)
    assert response.status_code == 422 and "At most" in body
    assert note + "</textarea>" in body
    db.session.rollback()
    assert latest_order() is None
