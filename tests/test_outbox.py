"""The outbox on a real SQLite file (and PostgreSQL when one answers): each
action writes exactly its messages and bell entries, in its own transaction
(a rolled-back action leaves none); a message is never written twice; resend
stops at five however many staff press at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from outbox_helpers import (
    CUSTOMER,
    SHOP,
    bell_count,
    last_event,
    messages,
    new_rows,
    pg_order,
    resend_race,
    shop_app,
    summary,
)
from sqlalchemy import func, select, update

from domain import deadlines
from domain import orders as actions
from domain.actors import SYSTEM, Actor
from domain.db import db, write_transaction
from domain.errors import (
    DomainError,
    InsufficientStock,
    InvalidTransition,
    NotFound,
    ResendLimit,
    ValidationError,
)
from domain.models import DeskNotification, Order, OrderEvent, OutboxMessage, User, utcnow
from domain.notify import outbox, resend
from domain.notify.kinds import EVENT_MESSAGES, KIND_LABELS, status_email_kind
from domain.store import get_settings

pytest_plugins = ["outbox_fixtures"]

# ------------------------------------------------------------------ writing


def test_placement_writes_the_merchant_and_the_customer_email(shop, make_order):
    order = make_order(email=CUSTOMER)
    event = last_event(order.id, "order_placed")
    rows = messages(order.id)
    assert summary(rows) == [("customer", "order_placed", CUSTOMER),
                             ("merchant", "new_order", SHOP)]
    assert {m.event_id for m in rows} == {event.id}
    assert {m.event_key for m in rows} == {f"event:{event.id}", f"event:{event.id}:merchant"}
    for m in rows:
        assert (m.status, m.attempts, m.channel) == ("pending", 0, "email")
        assert m.next_attempt_at == event.created_at and m.claim_token is None


def test_a_customer_without_email_gets_no_email(shop, make_order):
    order = make_order(email="")
    assert summary(messages(order.id)) == [("merchant", "new_order", SHOP)]


def test_no_notification_address_no_merchant_email(app, make_order):
    assert not get_settings().notification_email
    order = make_order(email=CUSTOMER)
    assert summary(messages(order.id)) == [("customer", "order_placed", CUSTOMER)]


def test_merchant_ordering_with_their_own_address_gets_both_emails(shop, make_order):
    # The unique key is (event, channel, recipient): one address, two audiences.
    order = make_order(email=SHOP)
    assert summary(messages(order.id)) == [("customer", "order_placed", SHOP),
                                           ("merchant", "new_order", SHOP)]


def _paid(make_order, **kw):
    return make_order(payment="credit_card", **kw)


def _with_proof(make_order):
    order = make_order()
    actions.upload_proof(order.id, path="p.png", sha256="0" * 64)
    return order


# action -> (set-up, the action, the event it writes, the messages it causes)
LIFECYCLE = {
    "upload_proof": (lambda mk: mk(),
                     lambda o, a: actions.upload_proof(o, path="p.png", sha256="1" * 64),
                     "proof_uploaded", [("merchant", "proof_uploaded", SHOP)]),
    "confirm_payment": (_with_proof, lambda o, a: actions.confirm_payment(o, actor=a),
                        "payment_confirmed", [("customer", "payment_confirmed", CUSTOMER)]),
    "confirm_cash": (lambda mk: mk(), lambda o, a: actions.confirm_payment(o, actor=a),
                     "payment_confirmed", [("customer", "payment_confirmed", CUSTOMER)]),
    "decline_proof": (_with_proof,
                      lambda o, a: actions.decline_proof(o, "金額不符 Amount differs", actor=a),
                      "proof_declined", [("customer", "proof_declined", CUSTOMER)]),
    "ship_order": (_paid, lambda o, a: actions.ship_order(o, actor=a, tracking_code="SF123"),
                   "order_shipped", [("customer", "order_shipped", CUSTOMER)]),
    "mark_ready_for_pickup": (lambda mk: _paid(mk, shipping="pickup", address=""),
                              lambda o, a: actions.mark_ready_for_pickup(o, actor=a),
                              "ready_for_pickup", [("customer", "ready_for_pickup", CUSTOMER)]),
    "complete_pickup": (
        lambda mk: _ready(_paid(mk, shipping="pickup", address="")),
        lambda o, a: actions.complete_pickup(o, actor=a),
        "pickup_completed", [("customer", "pickup_completed", CUSTOMER)]),
    "reject_order": (lambda mk: mk(), lambda o, a: actions.reject_order(o, "缺貨 Sold out", actor=a),
                     "order_rejected", [("customer", "order_rejected", CUSTOMER)]),
    "expire_order": (lambda mk: mk(),
                     lambda o, a: actions.expire_order(o, now=utcnow() + timedelta(days=3)),
                     "order_expired", [("customer", "order_expired", CUSTOMER)]),
    "remind_if_due": (lambda mk: mk(),
                      lambda o, a: deadlines.remind_if_due(o, now=utcnow() + timedelta(days=1,
                                                                                         hours=1)),
                      "payment_reminder_due", [("customer", "payment_reminder", CUSTOMER)]),
}


def _ready(order):
    actions.mark_ready_for_pickup(order.id, actor=Actor("staff", None, "set-up"))
    return order


@pytest.mark.parametrize("name", list(LIFECYCLE))
def test_each_lifecycle_action_writes_its_messages(shop, make_order, staff_actor, name):
    setup, action, event_type, expected = LIFECYCLE[name]
    order = setup(make_order)
    before = {m.id for m in messages(order.id)}
    action(order.id, staff_actor)
    event = last_event(order.id, event_type)
    assert event is not None
    rows = new_rows(order.id, before)
    assert summary(rows) == sorted(expected)
    assert all(m.event_id == event.id and m.order_id == order.id for m in rows)
    assert all(m.status == "pending" for m in rows)
    # Every message kind the table names has a label for the timeline.
    assert all(m.kind in KIND_LABELS for m in rows)


def test_the_decline_reason_and_tracking_code_travel_in_the_event(shop, make_order, staff_actor):
    order = _with_proof(make_order)
    actions.decline_proof(order.id, "金額不符", actor=staff_actor)
    declined = last_event(order.id, "proof_declined")
    (message,) = [m for m in messages(order.id) if m.kind == "proof_declined"]
    assert db.session.get(OrderEvent, message.event_id).details["reason"] == "金額不符"
    assert declined.id == message.event_id


def test_batch_expiry_and_the_sweep_write_one_email_per_order(shop, make_order):
    ids = [make_order(email=f"buyer{i}@example.hk").id for i in range(4)]
    ids.append(make_order(email="").id)  # no email: expired, but no customer message
    later = utcnow() + timedelta(days=3)
    assert sorted(actions.expire_orders(ids[:2], now=later)) == sorted(ids[:2])
    assert deadlines.sweep_overdue(now=later) == 3  # expunges the session's objects
    for i, order_id in enumerate(ids):
        event = last_event(order_id, "order_expired")
        rows = [m for m in messages(order_id) if m.kind == "order_expired"]
        expected = [] if i == 4 else [("customer", "order_expired", f"buyer{i}@example.hk")]
        assert summary(rows) == expected
        assert all(m.event_id == event.id for m in rows)
    # A second sweep expires nothing and writes nothing.
    count = len(messages())
    assert deadlines.sweep_overdue(now=later) == 0
    assert len(messages()) == count


def test_notes_tracking_and_refund_notes_write_no_message(shop, make_order, staff_actor, owner):
    order = _paid(make_order)
    before = {m.id for m in messages(order.id)}
    bells = bell_count(order.id)
    actions.add_note(order.id, "Customer called", actor=staff_actor)
    actions.set_tracking_code(order.id, "SF999", actor=staff_actor)
    actions.record_refund_note(order.id, amount_cents=100, method="FPS", actor=staff_actor)
    assert new_rows(order.id, before) == []
    assert bell_count(order.id) == bells
    assert {"note_added", "tracking_code_set", "refund_noted"} <= set(db.session.scalars(
        select(OrderEvent.type).where(OrderEvent.order_id == order.id)))


def test_a_refused_action_writes_nothing(shop, make_order, make_variant, staff_actor, owner):
    order = make_order()
    count, bells = len(messages()), bell_count()
    with pytest.raises(InvalidTransition):
        actions.ship_order(order.id, actor=staff_actor)  # still unpaid
    with pytest.raises(InvalidTransition):
        actions.complete_pickup(order.id, actor=staff_actor)
    with pytest.raises(InsufficientStock):
        make_order(items=[(make_variant(stock=1).id, 2)])
    assert (len(messages()), bell_count()) == (count, bells)


def test_a_rolled_back_action_leaves_no_message_and_no_bell(shop, make_order, staff_actor,
                                                            owner):
    order = make_order()
    count, bells = len(messages()), bell_count()
    with pytest.raises(RuntimeError):
        with write_transaction():
            # The action joins the outer transaction, writes its event and messages...
            actions.confirm_payment(order.id, actor=staff_actor)
            assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == count + 1
            assert db.session.scalar(
                select(func.count()).select_from(DeskNotification)) == bells + 1
            raise RuntimeError("something later in the transaction fails")
    # ...and the rollback takes them all back, and the ids queued for delivery.
    assert (len(messages()), bell_count()) == (count, bells)
    assert last_event(order.id, "payment_confirmed") is None
    assert db.session.get(Order, order.id).status == "pending_payment"
    assert outbox.take_new_ids(db.session) == []


def test_rows_written_in_a_commit_are_handed_to_the_commit_hook_once(shop, make_order):
    seen = []

    from sqlalchemy import event as sa_event
    from sqlalchemy.orm import Session

    def grab(session):
        seen.append(list(session.info.get(outbox.NEW_IDS_KEY, [])))

    sa_event.listen(Session, "after_commit", grab, insert=True)  # before jobs.outbox takes them
    try:
        order = make_order()
    finally:
        sa_event.remove(Session, "after_commit", grab)
    ids = [m.id for m in messages(order.id)]
    assert [s for s in seen if s] == [ids]


def test_writing_the_same_message_twice_is_a_no_op(app, make_order):
    order = make_order(email="")
    now = utcnow()
    row = outbox.message_row(event_key="export:job-1", recipient="owner@shop.test",
                             audience="staff", kind="export_ready", now=now, user_id=1,
                             params={"file": "訂單.xlsx"})
    with write_transaction():
        first = outbox.write_messages([row])
    with write_transaction():
        again = outbox.write_messages([row, {**row, "recipient": "staff@shop.test"}])
    assert len(first) == 1 and len(again) == 1 and again != first
    rows = [m for m in messages() if m.event_key == "export:job-1"]
    assert sorted(m.recipient for m in rows) == ["owner@shop.test", "staff@shop.test"]
    assert rows[0].params == {"file": "訂單.xlsx"}
    # The event's own message, written again for the same event, is ignored too.
    event = last_event(order.id, "order_placed")
    with write_transaction():
        assert outbox.write_messages([outbox.message_row(
            event_key=outbox.event_key(event.id), recipient=SHOP, audience="customer",
            kind="order_placed", now=now, order_id=order.id, event_id=event.id)]) != []
        assert outbox.write_messages([outbox.message_row(
            event_key=outbox.event_key(event.id), recipient=SHOP, audience="customer",
            kind="order_placed", now=now, order_id=order.id, event_id=event.id)]) == []


# ------------------------------------------------------------------ the bell


def test_bell_rows_go_to_every_active_user_but_the_one_who_acted(shop, make_order, owner,
                                                                  staff, staff_actor):
    from domain.accounts import create_user

    gone = create_user(email="gone@shop.test", password="correct horse battery", role="staff")
    db.session.execute(update(User).where(User.id == gone.id).values(active=False))
    db.session.commit()

    def bell_users(event):
        db.session.rollback()
        return sorted(db.session.scalars(select(DeskNotification.user_id)
                                         .where(DeskNotification.event_id == event.id)))

    order = make_order()  # the customer acted: everyone active hears
    assert bell_users(last_event(order.id, "order_placed")) == sorted([owner.id, staff.id])
    actions.confirm_payment(order.id, actor=staff_actor)  # staff acted: only the owner
    assert bell_users(last_event(order.id, "payment_confirmed")) == [owner.id]
    actions.add_note(order.id, "note", actor=staff_actor)  # not a lifecycle event
    assert bell_users(last_event(order.id, "note_added")) == []
    other = make_order()
    actions.expire_order(other.id, now=utcnow() + timedelta(days=3))  # the system acted
    assert bell_users(last_event(other.id, "order_expired")) == sorted([owner.id, staff.id])
    kinds = set(db.session.scalars(select(DeskNotification.kind)))
    assert kinds == {"order_placed", "payment_confirmed", "order_expired"}


# ------------------------------------------------------------------ resend


def test_resend_five_times_then_refused(shop, make_order, staff_actor):
    order = _paid(make_order)
    actions.ship_order(order.id, actor=staff_actor, tracking_code="SF1")
    for n in range(1, resend.MAX_RESENDS + 1):
        result = resend.resend_email(order.id, actor=staff_actor)
        assert result.email_resends == n and resend.resends_left(result) == 5 - n
        event = last_event(order.id, "email_resent")
        assert event.details == {"count": n, "kind": "order_shipped", "recipient": CUSTOMER}
        (message,) = [m for m in messages(order.id) if m.event_id == event.id]
        assert (message.audience, message.kind, message.recipient, message.status) == (
            "customer", "order_shipped", CUSTOMER, "pending")
        assert message.params == {"resend": n}
    count = len(messages())
    with pytest.raises(ResendLimit) as refused:
        resend.resend_email(order.id, actor=staff_actor)
    assert "5 times" in str(refused.value) and "limit" in str(refused.value)
    assert order.number in str(refused.value)
    assert len(messages()) == count
    db.session.expire_all()
    assert db.session.get(Order, order.id).email_resends == 5
    assert db.session.scalar(select(func.count()).select_from(OrderEvent).where(
        OrderEvent.order_id == order.id, OrderEvent.type == "email_resent")) == 5


def test_resend_refused_without_customer_email(shop, make_order, staff_actor):
    order = make_order(email="")
    with pytest.raises(ValidationError, match="no customer email"):
        resend.resend_email(order.id, actor=staff_actor)
    db.session.expire_all()
    assert db.session.get(Order, order.id).email_resends == 0
    assert last_event(order.id, "email_resent") is None
    with pytest.raises(NotFound):
        resend.resend_email(999999, actor=staff_actor)


def test_two_simultaneous_resends_at_four_one_wins(shop, make_order, staff_actor):
    for _ in range(10):
        order = make_order()
        db.session.execute(update(Order).where(Order.id == order.id).values(email_resends=4))
        db.session.commit()
        order_id = order.id
        db.session.remove()
        outcomes = resend_race(shop_app(), order_id, staff_actor)
        assert sorted(outcomes) == ["limit", "ok"], outcomes
        assert db.session.get(Order, order_id).email_resends == 5
        resent = db.session.scalar(select(func.count()).select_from(OrderEvent).where(
            OrderEvent.order_id == order_id, OrderEvent.type == "email_resent"))
        assert resent == 1
        assert len([m for m in messages(order_id) if m.kind == "payment_due"]) == 1


@pytest.mark.parametrize("state,kind", [
    ({"status": "pending_payment"}, "payment_due"),
    ({"status": "pending_confirmation"}, "proof_received"),
    ({"status": "processing"}, "order_processing"),
    ({"status": "processing", "delivery_status": "ready_for_pickup"}, "ready_for_pickup"),
    ({"status": "completed", "delivery_status": "shipped"}, "order_shipped"),
    ({"status": "completed", "delivery_status": "picked_up"}, "pickup_completed"),
    ({"status": "canceled", "cancel_reason": "缺貨"}, "order_rejected"),
    ({"status": "canceled", "cancel_reason": actions.EXPIRY_REASON}, "order_expired"),
])
def test_status_email_kind(state, kind):
    order = Order(**state)
    assert status_email_kind(order) == kind
    assert kind in KIND_LABELS


def test_every_event_message_kind_has_a_label():
    kinds = {kind for pairs in EVENT_MESSAGES.values() for _aud, kind in pairs}
    assert kinds <= set(KIND_LABELS)


# ------------------------------------------------------------------ PostgreSQL


def test_rows_written_and_deduplicated_on_postgres(pg_app):
    with pg_app.app_context():
        order = pg_order()
        event = last_event(order.id, "order_placed")
        assert summary(messages(order.id)) == [("customer", "order_placed", CUSTOMER),
                                               ("merchant", "new_order", SHOP)]
        rows = [outbox.message_row(event_key=outbox.event_key(event.id), recipient=CUSTOMER,
                                   audience="customer", kind="order_placed", now=utcnow(),
                                   order_id=order.id, event_id=event.id),
                outbox.message_row(event_key=outbox.event_key(event.id), recipient="new@x.hk",
                                   audience="customer", kind="order_placed", now=utcnow(),
                                   order_id=order.id, event_id=event.id)]
        with write_transaction():
            assert len(outbox.write_messages(rows)) == 1  # only the new recipient
        with pytest.raises(RuntimeError):
            with write_transaction():
                actions.confirm_payment(order.id, actor=SYSTEM)
                raise RuntimeError
        assert len(messages(order.id)) == 3
        db.session.remove()


def test_two_simultaneous_resends_at_four_on_postgres(pg_app):
    actor = Actor("staff", None, "PG tester")
    for _ in range(5):
        with pg_app.app_context():
            order = pg_order()
            db.session.execute(update(Order).where(Order.id == order.id)
                               .values(email_resends=4))
            db.session.commit()
            order_id = order.id
            db.session.remove()
        outcomes = resend_race(pg_app, order_id, actor)
        assert sorted(outcomes) == ["limit", "ok"], outcomes
        with pg_app.app_context():
            assert db.session.get(Order, order_id).email_resends == 5
            assert db.session.scalar(select(func.count()).select_from(OrderEvent).where(
                OrderEvent.order_id == order_id, OrderEvent.type == "email_resent")) == 1
            db.session.remove()


def test_domain_error_is_the_refusal_base():
    # ResendLimit is shown by the web layer like every other refusal.
    assert issubclass(ResendLimit, DomainError)
