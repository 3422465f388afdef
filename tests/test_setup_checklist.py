"""The desk's setup checklist (issue 13): each step flips as the thing is set, and
the card on the orders page shows until the store is ready, on whole pages only."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image
from sqlalchemy import event, update

from domain import setup_checklist
from domain.db import db
from domain.models import PaymentMethod, Product, ShippingMethod, StoreSettings, Variant
from domain.payment_details import is_ready
from domain.setup_checklist import checklist


def png() -> io.BytesIO:
    out = io.BytesIO()
    Image.new("RGB", (40, 20), (200, 30, 30)).save(out, format="PNG")
    out.seek(0)
    return out


def steps() -> dict[str, bool]:
    db.session.expire_all()
    return {step.key: step.done for step in checklist().steps}


def no_payment_ready():
    """A fresh store's state: manual methods empty and off, online ones off too."""
    db.session.execute(update(PaymentMethod).values(
        enabled=False, fps_id="", payee_name="", bank_name="", account_number="",
        payme_link="", instructions=""))
    db.session.commit()


def make_ready(make_variant):
    from domain.store import set_store_logo

    settings = db.session.get(StoreSettings, 1)
    settings.name, settings.notification_email = "Cookie Lab 曲奇", "orders@cookielab.hk"
    db.session.commit()
    set_store_logo(png())
    make_variant()


# ------------------------------------------------------------------ domain


def test_fresh_store_is_not_ready(app):
    no_payment_ready()
    result = checklist()
    assert [s.key for s in result.steps] == ["store", "payment", "shipping", "product",
                                             "notification_email"]
    # The default shipping methods are on; nothing else is done.
    assert steps() == {"store": False, "payment": False, "shipping": True, "product": False,
                       "notification_email": False}
    assert result.done_count == 1 and not result.ready
    assert [s.endpoint for s in result.steps] == ["settings.store_info", "settings.payments",
                                                  "settings.shipping", "products.new",
                                                  "settings.store_info"]


def test_store_step_needs_own_name_and_logo(app):
    from domain.store import remove_store_logo, set_store_logo

    settings = db.session.get(StoreSettings, 1)
    settings.name = "Cookie Lab"
    db.session.commit()
    assert not steps()["store"]  # no logo yet
    set_store_logo(png())
    assert steps()["store"]
    db.session.get(StoreSettings, 1).name = "My Shop"  # the default again
    db.session.commit()
    assert not steps()["store"]
    db.session.get(StoreSettings, 1).name = "   "
    db.session.commit()
    assert not steps()["store"]
    db.session.get(StoreSettings, 1).name = "Cookie Lab"
    db.session.commit()
    remove_store_logo()
    assert not steps()["store"]


@pytest.mark.parametrize("code,details", [
    ("fps", {"fps_id": "1234567", "payee_name": "Cookie Lab Ltd"}),
    ("bank_transfer", {"bank_name": "HSBC", "payee_name": "Cookie Lab Ltd",
                       "account_number": "004-123-456789-001"}),
    ("payme", {"payme_link": "https://payme.hsbc/cookielab"}),
])
def test_manual_method_counts_only_with_every_detail_and_enabled(app, code, details):
    no_payment_ready()
    method = db.session.query(PaymentMethod).filter_by(code=code).one()
    method.enabled = True
    method.instructions = "Pay us please"  # free text is not the typed details
    db.session.commit()
    assert not steps()["payment"]
    for key in details:  # each detail but the last still leaves it not ready
        method = db.session.query(PaymentMethod).filter_by(code=code).one()
        assert not is_ready(method)
        setattr(method, key, details[key])
        db.session.commit()
    assert steps()["payment"]
    method = db.session.query(PaymentMethod).filter_by(code=code).one()
    setattr(method, next(iter(details)), "   ")  # blank is not filled in
    db.session.commit()
    assert not steps()["payment"]
    method = db.session.query(PaymentMethod).filter_by(code=code).one()
    setattr(method, next(iter(details)), details[next(iter(details))])
    method.enabled = False  # filled in but off
    db.session.commit()
    assert not steps()["payment"]


def test_custom_manual_method_needs_instructions_and_online_does_not_count(app):
    from domain.store import save_custom_payment_method

    no_payment_ready()
    custom = save_custom_payment_method(name="Cash on pickup", instructions="Pay at the counter")
    assert steps()["payment"] is custom.enabled
    db.session.get(PaymentMethod, custom.id).instructions = ""
    db.session.commit()
    assert not steps()["payment"]
    # The test gateway moves no real money: a card method alone is not a way to pay.
    db.session.execute(update(PaymentMethod).where(PaymentMethod.code == "credit_card")
                       .values(enabled=True))
    db.session.commit()
    assert not steps()["payment"]


def test_shipping_product_and_email_steps(app, make_variant):
    db.session.execute(update(ShippingMethod).values(enabled=False))
    db.session.commit()
    assert not steps()["shipping"]
    db.session.execute(update(ShippingMethod).where(ShippingMethod.kind == "pickup")
                       .values(enabled=True))
    db.session.commit()
    assert steps()["shipping"]

    variant = make_variant()
    assert steps()["product"]
    db.session.execute(update(Product).values(active=False))  # archived
    db.session.commit()
    assert not steps()["product"]
    db.session.execute(update(Product).values(active=True))
    db.session.execute(update(Variant).where(Variant.id == variant.id).values(active=False))
    db.session.commit()
    assert not steps()["product"]  # a product with nothing on sale is not for sale

    from domain.store import get_settings, update_store_info

    settings = get_settings()
    base = dict(name=settings.name, address="", phone="", email="", currency="HKD",
                timezone="Asia/Hong_Kong", plan="basic", order_prefix="SD")
    assert not steps()["notification_email"]
    update_store_info(**base, notification_email="orders@cookielab.hk")
    assert steps()["notification_email"]
    update_store_info(**base, notification_email="")
    assert not steps()["notification_email"]


def test_ready_when_everything_is_done_in_few_queries(app, make_variant):
    make_ready(make_variant)
    db.session.expire_all()
    statements = []

    def count(*args):
        if args[2].lstrip().upper().startswith("SELECT"):
            statements.append(args[2])

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        result = checklist()
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert result.ready and result.done_count == 5
    # The settings row (cached by the session on a page: the layout reads it first),
    # the enabled payment methods, and one round trip for shipping and products.
    assert len(statements) <= 3, statements


# ------------------------------------------------------------------ the card


def card(html: str) -> str:
    match = re.search(r'<section class="setup-card".*?</section>', html, re.S)
    return match.group(0) if match else ""


def test_owner_sees_the_card_with_links_until_ready(owner_client, make_variant):
    no_payment_ready()
    html = owner_client.get("/orders").get_data(as_text=True)
    section = card(html)
    assert section and html.count('class="setup-card"') == 1
    assert "1 of 5 done" in section
    for href in ("/settings/store", "/settings/payments", "/settings/shipping", "/products/"):
        assert f'href="{href}' in section
    assert section.count('class="setup-step is-done"') == 1

    make_ready(make_variant)
    html = owner_client.get("/orders").get_data(as_text=True)
    assert "4 of 5 done" in card(html)  # payment still to do
    # An online method alone takes no real money (the test gateway): still to do.
    db.session.execute(update(PaymentMethod).where(PaymentMethod.code == "octopus")
                       .values(enabled=True))
    db.session.commit()
    assert "4 of 5 done" in card(owner_client.get("/orders").get_data(as_text=True))
    db.session.execute(update(PaymentMethod).where(PaymentMethod.code == "fps").values(
        fps_id="1234567", payee_name="Cookie Lab Ltd", enabled=True))
    db.session.commit()
    html = owner_client.get("/orders").get_data(as_text=True)
    assert not card(html) and "setup-line" not in html


def test_htmx_results_swap_never_carries_the_card(owner_client, make_order):
    make_order()
    no_payment_ready()
    full = owner_client.get("/orders?q=%E9%99%B3").get_data(as_text=True)
    assert full.count('class="setup-card"') == 1
    fragment = owner_client.get("/orders?q=%E9%99%B3", htmx=True)
    assert fragment.status_code == 200
    body = fragment.get_data(as_text=True)
    assert 'id="results"' in body and "setup-card" not in body and "setup-line" not in body


def test_staff_see_one_line_without_owner_links(staff_client):
    no_payment_ready()
    html = staff_client.get("/orders").get_data(as_text=True)
    assert not card(html)
    assert "The store is still being set up (1 of 5 steps done)" in html
    assert 'href="/settings/payments"' not in html


def test_card_in_chinese(owner_client):
    no_payment_ready()
    db.session.get(StoreSettings, 1).language = "zh_Hant_HK"
    db.session.commit()
    html = owner_client.get("/orders").get_data(as_text=True)
    section = card(html)
    assert section and "Finish setting up your store" not in section
    assert "完成" in section and "Store name and logo" not in section


def test_checklist_failure_is_not_hidden_by_a_missing_page(owner_client, monkeypatch):
    """A step whose page is not built yet links to its fallback instead of failing."""
    no_payment_ready()
    original = setup_checklist.checklist

    def with_unknown_endpoint():
        result = original()
        from dataclasses import replace

        steps = tuple(replace(s, endpoint="products.not_built") if s.key == "product" else s
                      for s in result.steps)
        return replace(result, steps=steps)

    monkeypatch.setattr(setup_checklist, "checklist", with_unknown_endpoint)
    response = owner_client.get("/orders")
    assert response.status_code == 200
    assert 'href="/products/"' in card(response.get_data(as_text=True))
