"""A refused form on the order page comes back with what was typed and the reason
beside it (issue 16), with and without htmx; and the reject dialog returns focus."""

from __future__ import annotations

import re

import pytest
from conftest import browser_login
from playwright.sync_api import expect

from domain.actors import Actor
from domain.db import db
from domain.models import Order, OrderEvent
from domain.orders import confirm_payment

STAFF = Actor("staff", None, "Test")


def events(order, type_):
    return db.session.query(OrderEvent).filter_by(order_id=order.id, type=type_).count()


@pytest.mark.parametrize("htmx", [True, False])
def test_a_refused_refund_keeps_amount_and_reference(owner_client, make_order, htmx):
    order = make_order()
    confirm_payment(order.id, actor=STAFF)
    response = owner_client.post(f"/orders/{order.number}/refund-notes", htmx=htmx,
                                 data={"amount": "99999", "method": "FPS", "reference": "FPS-778<b>"})
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    refund = body[body.index('id="refund-note"'):]
    refund = refund[:refund.index("</details>")]
    assert refund.startswith('id="refund-note" open')
    assert 'value="99999"' in refund and 'value="FPS-778&lt;b&gt;"' in refund
    assert re.search(r'<option selected value="FPS">|<option value="FPS" selected', refund)
    assert 'class="field-error" role="alert">Refund amount cannot exceed' in refund
    assert events(order, "refund_noted") == 0


@pytest.mark.parametrize("htmx", [True, False])
def test_a_refused_note_keeps_its_text(owner_client, make_order, htmx):
    order = make_order()
    response = owner_client.post(f"/orders/{order.number}/notes", htmx=htmx,
                                 data={"text": "x" * 2001})
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert ">" + "x" * 2001 + "</textarea>" in body and 'id="note-error"' in body
    assert events(order, "note_added") == 0


def test_a_refused_reject_reopens_the_dialog_with_the_reason(owner_client, make_order):
    order = make_order()
    response = owner_client.post(f"/orders/{order.number}/reject", htmx=True,
                                 data={"reason": "r" * 501})
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'id="reject-dialog" class="dialog" aria-labelledby="reject-h" data-open-on-load' in body
    assert "r" * 501 + "</textarea>" in body
    db.session.expire_all()
    assert db.session.get(Order, order.id).status == "pending_payment"


def test_a_refused_decline_keeps_the_reason_open(owner_client, make_order, samples):
    from io import BytesIO

    from domain.proofs import submit_proof

    order = submit_proof(make_order().id, BytesIO(samples.image_bytes("JPEG", (200, 200), "red")))
    response = owner_client.post(f"/orders/{order.number}/decline-proof", htmx=True,
                                 data={"reason": "r" * 501})
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert '<details class="inline-form" open>' in body and "r" * 501 + "</textarea>" in body


def test_success_still_clears_the_form(owner_client, make_order):
    order = make_order()
    response = owner_client.post(f"/orders/{order.number}/notes", htmx=True, data={"text": "ok"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "></textarea>" in body


pytest_plugins = ["jobs_fixtures"]


@pytest.mark.browser
def test_the_reject_dialog_traps_and_returns_focus(live_server, browser, owner, make_order):
    order = make_order()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    browser_login(page, live_server, owner.email)
    page.goto(f"{live_server}/orders/{order.number}")
    opener = page.get_by_role("button", name="Reject order…")
    opener.click()
    dialog = page.locator("#reject-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#reject-reason")).to_be_focused()
    for _ in range(6):  # Tab cycles inside the modal dialog, never to the page behind
        page.keyboard.press("Tab")
        assert page.evaluate("document.getElementById('reject-dialog').contains(document.activeElement)"
                             " || document.activeElement === document.body")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(opener).to_be_focused()
