"""In real Chromium on a phone-sized screen: "Confirm payment" in the review queue
shows its notice where the merchant is, not at the top of the page out of view.

Set SHOPDESK_SHOTS=/some/dir to also save screenshots after a confirm at 1280 and 390 px.
"""

from __future__ import annotations

import os
from io import BytesIO
from pathlib import Path

import pytest
from conftest import browser_login

from domain.db import db
from domain.models import Order

pytestmark = pytest.mark.browser
pytest_plugins = ["jobs_fixtures"]
SHOTS = os.environ.get("SHOPDESK_SHOTS")

IN_VIEW = """el => { const r = el.getBoundingClientRect();
  return r.top >= 0 && r.bottom <= window.innerHeight && r.height > 0; }"""


def queue_of(make_order, samples, n):
    from domain.proofs import submit_proof

    colours = ["red", "blue", "green", "orange", "purple", "teal"]
    return [submit_proof(make_order().id, BytesIO(samples.image_bytes(
        "JPEG", (300, 400), colours[i % len(colours)]))) for i in range(n)]


def shoot(page, name):
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=f"{SHOTS}/{name}.png", full_page=False)


@pytest.mark.parametrize("width", [390, 1280])
def test_confirm_notice_appears_where_the_merchant_is(app, live_server, browser, owner,
                                                      make_order, samples, width):
    orders = queue_of(make_order, samples, 8)
    third = orders[2]
    page = browser.new_page(viewport={"width": width, "height": 844 if width == 390 else 900})
    browser_login(page, live_server, owner.email)
    page.goto(f"{live_server}/review/")
    assert "8 waiting" in page.inner_text("#queue-count")
    card = page.get_by_test_id(f"queue-{third.number}")
    button = card.get_by_role("button", name="Confirm payment")
    card.evaluate("el => el.scrollIntoView({block: 'start'})")  # the merchant scrolled down to it
    if width == 390:  # the top of the queue, where the old notice went, is out of view
        assert not page.locator("h1").evaluate(IN_VIEW)
    shoot(page, f"review-before-confirm-{width}")
    button.click()

    notice = page.get_by_test_id(f"queue-result-{third.number}").get_by_text(
        f"Payment confirmed for {third.number}.")
    notice.wait_for()
    assert notice.evaluate(IN_VIEW), "the notice is out of view"
    # it sits where the card was: the cards around it stay, the count follows
    assert page.get_by_test_id(f"queue-{third.number}").count() == 0
    for other in orders[:2] + orders[3:]:
        assert page.get_by_test_id(f"queue-{other.number}").count() == 1
    assert "7 waiting" in page.inner_text("#queue-count")
    # The merchant lands on the next proof (the result is read out as a status).
    assert page.evaluate("document.activeElement.dataset.testid") == f"queue-{orders[3].number}"
    shoot(page, f"review-after-confirm-{width}")
    db.session.rollback()
    assert db.session.get(Order, third.id).status == "processing"

    # declining the next card answers in place too
    fourth = orders[3]
    card = page.get_by_test_id(f"queue-{fourth.number}")
    card.locator("summary").click()
    card.locator("textarea[name=reason]").fill("The amount does not match")
    card.get_by_role("button", name="Decline proof").click()
    declined = page.get_by_test_id(f"queue-result-{fourth.number}").get_by_text(
        f"Proof declined for {fourth.number}")
    declined.wait_for()
    assert declined.evaluate(IN_VIEW)
    assert "6 waiting" in page.inner_text("#queue-count")
    page.close()
