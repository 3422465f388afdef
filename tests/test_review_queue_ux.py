"""Payments to confirm (issue 16): each proof big enough to read beside its amount, a
placeholder for a missing file, Undo before Confirm is sent, keys through the queue."""

from __future__ import annotations

import re
import time
from io import BytesIO

import pytest
from conftest import browser_login

from domain.db import db
from domain.models import Order
from domain.proofs import resolve

pytest_plugins = ["jobs_fixtures"]


def proofed(make_order, samples, n=1, colour="red"):
    from domain.proofs import submit_proof

    return [submit_proof(make_order().id, BytesIO(samples.image_bytes("JPEG", (300, 400), colour)))
            for _ in range(n)]


def card_of(body: str, number: str) -> str:
    start = body.index(f'id="queue-{number}"')
    return body[start:body.index("</li>", start)]


def test_each_card_shows_the_proof_beside_what_it_must_show(owner_client, make_order, samples):
    (order,) = proofed(make_order, samples)
    body = owner_client.get("/review/").get_data(as_text=True)
    card = card_of(body, order.number)
    assert f'<img src="/review/proofs/{order.number}"' in card  # the full image, not a thumbnail
    assert f'data-open-dialog="zoom-{order.number}"' in card and f'id="zoom-{order.number}"' in card
    assert re.search(r"Should show <strong class='queue-total'>HK\$[\d,.]+</strong>", card)
    assert 'hx-trigger="confirm-now"' in card and 'class="confirm-form"' in card
    assert "/static/js/review.js" in body


def test_a_missing_proof_file_shows_a_placeholder_not_a_broken_image(owner_client, make_order,
                                                                      samples):
    missing, present = proofed(make_order, samples, 2)
    resolve(missing.proof_path).unlink()
    body = owner_client.get("/review/").get_data(as_text=True)
    gone = card_of(body, missing.number)
    assert 'data-testid="proof-missing"' in gone and "<img" not in gone
    assert "<img" in card_of(body, present.number)
    page = owner_client.get(f"/orders/{missing.number}").get_data(as_text=True)
    assert 'data-testid="proof-missing"' in page and "proofs/" + missing.number + "/thumbnail" not in page


def test_confirm_without_script_still_posts_at_once(owner_client, make_order, samples):
    (order,) = proofed(make_order, samples)
    response = owner_client.post(f"/review/{order.number}/confirm")
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Order, order.id).status == "processing"


@pytest.mark.browser
def test_undo_stops_a_confirm_and_keys_walk_the_queue(app, live_server, browser, owner,
                                                       make_order, samples):
    first, second, third = proofed(make_order, samples, 3)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    browser_login(page, live_server, owner.email)
    page.goto(f"{live_server}/review/")
    page.keyboard.press("j")  # the oldest proof first
    assert page.evaluate("document.activeElement.dataset.number") == first.number
    page.keyboard.press("c")
    undo = page.get_by_test_id(f"queue-{first.number}").get_by_role("button", name="Undo")
    undo.wait_for()
    assert "Confirming in" in page.get_by_test_id(f"queue-{first.number}").inner_text()
    undo.click()
    time.sleep(6)  # past the countdown: nothing was sent
    db.session.rollback()  # a fresh read, not this session's snapshot
    assert db.session.get(Order, first.id).status == "pending_confirmation"

    page.get_by_test_id(f"queue-{first.number}").focus()
    page.keyboard.press("c")
    page.get_by_test_id(f"queue-result-{first.number}").wait_for(timeout=15000)
    db.session.rollback()
    assert db.session.get(Order, first.id).status == "processing"
    # landed on the next proof
    page.wait_for_function(f"() => document.activeElement.dataset.number === '{second.number}'")
    page.keyboard.press("j")
    assert page.evaluate("document.activeElement.dataset.number") == third.number
    page.keyboard.press("d")  # decline opens with the reason field ready
    assert page.evaluate("document.activeElement.name") == "reason"
    page.keyboard.press("Escape")
    page.get_by_test_id(f"queue-{second.number}").focus()
    page.keyboard.press("Enter")  # the proof full size, in a dialog
    dialog = page.locator(f"#zoom-{second.number}")
    dialog.wait_for(state="visible")
    assert dialog.evaluate("d => d.open")
    page.keyboard.press("Escape")
    assert not dialog.evaluate("d => d.open")
