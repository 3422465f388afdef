"""Money after a modification (issue 12), on a real SQLite file: what the books say
was paid (Order.paid_cents) through the payment actions, the balance due and the
credit owed, and the balance payments that settle them."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from test_modify_domain_helpers import STAFF, events_of, fresh, keep, set_plan

from domain import balance
from domain import orders as actions
from domain.balance import BalanceState, balance_state
from domain.db import db
from domain.errors import InvalidTransition, ValidationError
from domain.models import BalancePayment, OutboxMessage
from domain.modify import modify_order

pytest_plugins = ["outbox_fixtures"]


@pytest.fixture
def advanced(app):
    set_plan("advanced")


def _paid(make_order, quantity=2):
    order = make_order(payment="fps", quantity=quantity)
    actions.upload_proof(order.id, path="p.png", sha256="a" * 64)
    actions.confirm_payment(order.id, actor=STAFF)
    return fresh(order.id)


# ------------------------------------------------------------------ paid_cents bookkeeping


def test_paid_follows_the_payment_actions(app, make_order):
    order = make_order(payment="fps")
    assert fresh(order.id).paid_cents == 0
    actions.upload_proof(order.id, path="p.png", sha256="a" * 64)
    assert fresh(order.id).paid_cents == order.total_cents
    actions.decline_proof(order.id, "blurry", actor=STAFF)
    assert fresh(order.id).paid_cents == 0
    actions.confirm_payment(order.id, actor=STAFF)  # cash, no proof
    assert fresh(order.id).paid_cents == order.total_cents


def test_online_orders_are_paid_when_placed(app, make_order):
    order = make_order(payment="credit_card")
    assert fresh(order.id).paid_cents == order.total_cents


def test_an_unpaid_order_simply_owes_its_new_total(app, advanced, make_order):
    order = make_order(payment="fps", quantity=2)
    deadline = order.payment_deadline_at
    saved = modify_order(order.id, keep(order, lines=(("line", order.lines[0].id, 3),)),
                         expected_version=1, actor=STAFF)
    assert (saved.paid_cents, saved.payment_deadline_at) == (0, deadline)
    assert balance_state(saved) == BalanceState("none", 0)
    # a cash confirmation after the change counts the new total
    actions.confirm_payment(order.id, actor=STAFF)
    assert fresh(order.id).paid_cents == saved.total_cents


# ------------------------------------------------------------------ balance due


def test_balance_due_paid_by_proof(shop, advanced, make_order):
    order = _paid(make_order)  # 2 × 128 + 30 = 286, paid
    saved = modify_order(order.id, keep(order, lines=(("line", order.lines[0].id, 3),)),
                         expected_version=1, actor=STAFF)  # 414
    assert balance_state(saved) == BalanceState("due", 12800)
    # the customer uploads a proof for the balance: the shop is told
    payment = balance.upload_balance_proof(order.id, path="b.png", sha256="b" * 64)
    assert (payment.status, payment.amount_cents) == ("pending", 12800)
    assert balance.pending_balance_payment(fresh(order.id)).id == payment.id
    [uploaded] = events_of(order.id, "balance_proof_uploaded")
    assert uploaded.details["amount_cents"] == 12800 and uploaded.actor_type == "customer"
    assert [(m.audience, m.kind) for m in db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.event_id == uploaded.id))] == [
        ("merchant", "balance_proof_uploaded")]
    # a second proof while one waits is refused
    with pytest.raises(InvalidTransition, match="already waiting"):
        balance.upload_balance_proof(order.id, path="c.png", sha256="c" * 64)
    # the shop confirms: paid, no balance; the customer is told
    balance.confirm_balance_payment(payment.id, actor=STAFF)
    after = fresh(order.id)
    assert after.paid_cents == 41400 and balance_state(after) == BalanceState("none", 0)
    [confirmed] = events_of(order.id, "balance_payment_confirmed")
    assert [(m.audience, m.kind) for m in db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.event_id == confirmed.id))] == [
        ("customer", "balance_confirmed")]
    # confirming it again is refused and counts nothing twice
    with pytest.raises(InvalidTransition, match="already handled"):
        balance.confirm_balance_payment(payment.id, actor=STAFF)
    with pytest.raises(InvalidTransition, match="already handled"):
        balance.decline_balance_payment(payment.id, "no", actor=STAFF)
    assert fresh(order.id).paid_cents == 41400
    with pytest.raises(InvalidTransition, match="no balance"):
        balance.upload_balance_proof(order.id, path="d.png", sha256="d" * 64)


def test_balance_proof_declined_then_marked_received(shop, advanced, make_order):
    order = _paid(make_order)
    modify_order(order.id, keep(order, extra_charge_cents=5000, extra_charge_label="Gift wrap"),
                 expected_version=1, actor=STAFF)
    payment = balance.upload_balance_proof(order.id, path="b.png", sha256="b" * 64)
    with pytest.raises(ValidationError):
        balance.decline_balance_payment(payment.id, "   ", actor=STAFF)
    # while the proof waits, "received" is refused (it would count twice)
    with pytest.raises(InvalidTransition, match="already waiting"):
        balance.mark_balance_received(order.id, actor=STAFF)
    balance.decline_balance_payment(payment.id, "金額不符 <script>", actor=STAFF)
    declined = db.session.get(BalancePayment, payment.id)
    assert (declined.status, declined.reason, declined.decided_by) == (
        "declined", "金額不符 <script>", "Modifier")
    [event] = events_of(order.id, "balance_proof_declined")
    assert event.details["reason"] == "金額不符 <script>"
    assert [m.kind for m in db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.event_id == event.id))] == ["balance_declined"]
    assert balance_state(fresh(order.id)) == BalanceState("due", 5000)
    # the merchant got the money another way and marks it received
    received = balance.mark_balance_received(order.id, actor=STAFF)
    assert (received.status, received.amount_cents, received.proof_path) == ("confirmed", 5000,
                                                                            None)
    assert balance_state(fresh(order.id)) == BalanceState("none", 0)
    [event] = events_of(order.id, "balance_received")
    assert [m.kind for m in db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.event_id == event.id))] == ["balance_confirmed"]
    with pytest.raises(InvalidTransition, match="no balance"):
        balance.mark_balance_received(order.id, actor=STAFF)
    assert [p.status for p in balance.balance_payments(fresh(order.id))] == [
        "confirmed", "declined"]


def test_decline_of_the_order_proof_while_a_balance_is_due_resets_the_books(
        app, advanced, make_order):
    order = make_order(payment="fps", quantity=2)
    actions.upload_proof(order.id, path="p.png", sha256="a" * 64)
    modify_order(order.id, keep(order, discount_cents=0, extra_charge_cents=1000,
                                extra_charge_label="x"), expected_version=1, actor=STAFF)
    assert balance_state(fresh(order.id)) == BalanceState("due", 1000)
    actions.decline_proof(order.id, "wrong amount", actor=STAFF)
    after = fresh(order.id)
    assert after.paid_cents == 0 and balance_state(after) == BalanceState("none", 0)


# ------------------------------------------------------------------ credit


def test_credit_owed_then_recorded_by_a_refund_note(app, advanced, make_order):
    order = _paid(make_order)  # 286 paid
    saved = modify_order(order.id, keep(order, lines=(("line", order.lines[0].id, 1),)),
                         expected_version=1, actor=STAFF)  # 158
    assert balance_state(saved) == BalanceState("credit", 12800)
    with pytest.raises(InvalidTransition):
        balance.upload_balance_proof(order.id, path="b.png", sha256="b" * 64)
    # the cap is what was paid less what was refunded
    with pytest.raises(ValidationError, match="cannot exceed"):
        actions.record_refund_note(order.id, amount_cents=28601, method="FPS", actor=STAFF)
    actions.record_refund_note(order.id, amount_cents=10000, method="FPS", actor=STAFF)
    assert balance_state(fresh(order.id)) == BalanceState("credit", 2800)
    actions.record_refund_note(order.id, amount_cents=2800, method="FPS", reference="R2",
                               actor=STAFF)
    after = fresh(order.id)
    assert after.refunded_cents == 12800 and balance_state(after) == BalanceState("none", 0)
    with pytest.raises(ValidationError, match="cannot exceed"):
        actions.record_refund_note(order.id, amount_cents=28600 - 12800 + 1, method="FPS",
                                   actor=STAFF)


def test_an_order_with_nothing_paid_takes_no_refund_note(app, make_order):
    from domain.errors import InvalidTransition

    order = make_order(payment="fps")  # unpaid: confirm the payment first if money came
    with pytest.raises(InvalidTransition, match="nothing to refund"):
        actions.record_refund_note(order.id, amount_cents=100, method="Cash", actor=STAFF)
    assert fresh(order.id).refunded_cents == 0
    actions.confirm_payment(order.id, actor=STAFF)  # cash arrived: now it can be refunded
    actions.record_refund_note(order.id, amount_cents=order.total_cents, method="Cash",
                               actor=STAFF)
    assert fresh(order.id).refunded_cents == order.total_cents
    with pytest.raises(ValidationError, match="cannot exceed"):
        actions.record_refund_note(order.id, amount_cents=1, method="Cash", actor=STAFF)


def test_unknown_payment_and_draft_have_no_balance(app, make_order):
    from domain.errors import NotFound

    with pytest.raises(NotFound):
        balance.confirm_balance_payment(999999, actor=STAFF)
    order = make_order()
    assert balance.pending_balance_payment(order) is None
    assert balance_state(order) == BalanceState("none", 0)


def test_a_drafts_link_paid_online_is_paid_on_the_books(app, make_variant):
    from domain.drafts import DraftInput, checkout_draft, create_draft
    from domain.models import PaymentMethod, ShippingMethod
    from domain.orders import CustomerDetails

    variant = make_variant()
    ship = db.session.scalar(select(ShippingMethod.id).where(ShippingMethod.kind == "delivery"))
    card = db.session.scalar(select(PaymentMethod.id).where(PaymentMethod.code == "credit_card"))
    fps = db.session.scalar(select(PaymentMethod.id).where(PaymentMethod.code == "fps"))
    online = create_draft(DraftInput(CustomerDetails("陳大文", "9123 4567", "", "旺角"),
                                     [(variant.id, 1)], ship), actor=STAFF)
    manual = create_draft(DraftInput(CustomerDetails("陳大文", "9123 4567", "", "旺角"),
                                     [(variant.id, 1)], ship), actor=STAFF)
    placed = checkout_draft(online.id, card)
    assert placed.status == "processing" and fresh(online.id).paid_cents == placed.total_cents
    checkout_draft(manual.id, fps)
    assert fresh(manual.id).paid_cents == 0
