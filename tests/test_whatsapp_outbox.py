"""WhatsApp rows of the outbox, written in the action's transaction (real SQLite file):
one per order event of the 8 types while the channel is active and the type on, the
same event key as the customer's email, never twice; no valid mobile -> no row and a
"whatsapp_not_sent" event instead; deactivating stops new rows at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from outbox_helpers import CUSTOMER, last_event, messages
from sqlalchemy import event, func, select

from domain import deadlines
from domain import orders as actions
from domain.actors import SYSTEM, Actor
from domain.db import db, write_transaction
from domain.models import DeskNotification, OrderEvent, OutboxMessage, utcnow
from domain.notify import outbox, whatsapp, whatsapp_config
from domain.notify.kinds import KIND_LABELS, STATUS_LABELS, WHATSAPP_NOT_SENT

pytest_plugins = ["outbox_fixtures"]

MOBILE = "+85291234567"


@pytest.fixture
def active(app, shop):
    """WhatsApp on, with the sandbox's credentials (no API is called when writing)."""
    app.config["WHATSAPP_SANDBOX_SERVER"] = True
    whatsapp_config.use_sandbox()
    whatsapp_config.activate()
    db.session.commit()
    return whatsapp_config.get_config()


def wa_rows(order_id=None):
    return [m for m in messages(order_id) if m.channel == "whatsapp"]


def not_sent_events(order_id):
    db.session.rollback()
    return list(db.session.scalars(select(OrderEvent).where(
        OrderEvent.order_id == order_id, OrderEvent.type == WHATSAPP_NOT_SENT)
        .order_by(OrderEvent.id)))


def _paid(mk, **kw):
    return mk(payment="credit_card", **kw)


def _with_proof(mk):
    order = mk()
    actions.upload_proof(order.id, path="p.png", sha256="0" * 64)
    return order


def _ready(order):
    actions.mark_ready_for_pickup(order.id, actor=Actor("staff", None, "set-up"))
    return order


def _modify(order_id, actor):
    """Modify order (issue 12): one more of the first line, on the Advanced plan."""
    from domain.models import StoreSettings
    from domain.modify import ModifyInput, modify_order

    db.session.get(StoreSettings, 1).plan = "advanced"
    db.session.commit()
    line = actions.get_order(order_id).lines[0]
    return modify_order(order_id, ModifyInput((("line", line.id, line.quantity + 1),), None, None),
                        expected_version=actions.get_order(order_id).version, actor=actor)


# WhatsApp type -> (set-up, the action, the order event it writes)
ACTIONS = {
    "order_confirmation": (None, None, "order_placed"),
    "payment_received": (_with_proof, lambda o, a: actions.confirm_payment(o, actor=a),
                         "payment_confirmed"),
    "shipping_status": (_paid, lambda o, a: actions.ship_order(o, actor=a, tracking_code="SF123"),
                        "order_shipped"),
    "pickup_notification": (lambda mk: _paid(mk, shipping="pickup", address=""),
                            lambda o, a: actions.mark_ready_for_pickup(o, actor=a),
                            "ready_for_pickup"),
    "pickup_completed": (lambda mk: _ready(_paid(mk, shipping="pickup", address="")),
                         lambda o, a: actions.complete_pickup(o, actor=a), "pickup_completed"),
    "order_cancellation": (lambda mk: mk(),
                           lambda o, a: actions.reject_order(o, "缺貨 Sold out", actor=a),
                           "order_rejected"),
    "expired_order": (lambda mk: mk(),
                      lambda o, a: actions.expire_order(o, now=utcnow() + timedelta(days=3)),
                      "order_expired"),
    "payment_reminder": (lambda mk: mk(),
                         lambda o, a: deadlines.remind_if_due(
                             o, now=utcnow() + timedelta(days=1, hours=1)),
                         "payment_reminder_due"),
    "order_updated": (lambda mk: mk(), _modify, "order_modified"),
}


def test_the_table_covers_the_nine_types():
    assert set(ACTIONS) == set(whatsapp.TYPES) == set(whatsapp.EVENT_TYPES.values())
    assert {e for _s, _a, e in ACTIONS.values()} == set(whatsapp.EVENT_TYPES)
    for code in whatsapp.TYPES:
        assert code in KIND_LABELS
    assert "skipped" in STATUS_LABELS


@pytest.mark.parametrize("type_code", list(ACTIONS))
def test_each_type_is_written_for_its_event_beside_the_email(active, make_order, staff_actor,
                                                             type_code):
    setup, action, event_type = ACTIONS[type_code]
    if setup is None:
        order = make_order(email=CUSTOMER)
    else:
        order = setup(make_order)
        before = {m.id for m in messages(order.id)}
        action(order.id, staff_actor)
    ev = last_event(order.id, event_type)
    rows = [m for m in messages(order.id) if m.event_id == ev.id]
    if setup is not None:
        assert not {m.id for m in rows} & before
    wa = [m for m in rows if m.channel == "whatsapp"]
    assert [(m.kind, m.recipient, m.audience, m.status) for m in wa] == [
        (type_code, MOBILE, "customer", "pending")]
    email = [m for m in rows if m.channel == "email" and m.audience == "customer"]
    # the same event key as the customer's email: another channel of the same message
    assert [m.event_key for m in email] == [wa[0].event_key] == [f"event:{ev.id}"]
    assert wa[0].order_id == order.id and wa[0].params == {}
    assert wa[0].provider_id is None and wa[0].delivery_status == ""


def test_nothing_is_written_while_whatsapp_is_off(shop, make_order, staff_actor):
    order = make_order()
    actions.reject_order(order.id, "no", actor=staff_actor)
    assert wa_rows() == [] and not_sent_events(order.id) == []
    assert {m.channel for m in messages()} == {"email"}


def test_deactivating_stops_new_rows_at_once(active, make_order, staff_actor):
    first = make_order()
    whatsapp_config.deactivate()
    second = make_order()
    actions.reject_order(first.id, "no", actor=staff_actor)
    assert [(m.order_id, m.kind) for m in wa_rows()] == [(first.id, "order_confirmation")]
    assert not_sent_events(second.id) == []
    whatsapp_config.activate()
    actions.reject_order(second.id, "no", actor=staff_actor)
    assert [(m.order_id, m.kind) for m in wa_rows(second.id)] == [(second.id,
                                                                   "order_cancellation")]


def test_a_type_switched_off_writes_no_row_and_the_others_still_do(active, make_order,
                                                                   staff_actor):
    whatsapp_config.set_type_enabled("order_cancellation", False)
    order = make_order()
    actions.reject_order(order.id, "no", actor=staff_actor)
    assert [m.kind for m in wa_rows(order.id)] == ["order_confirmation"]
    assert not_sent_events(order.id) == []  # switched off is no "no mobile"


@pytest.mark.parametrize("phone", ["", "2345 6789", "1234 5678", "+852 9123 456789012"])
def test_no_valid_mobile_writes_no_row_and_an_event_says_so(active, make_order, phone):
    order = make_order(phone=phone)
    assert wa_rows(order.id) == []
    placed = last_event(order.id, "order_placed")
    [ev] = not_sent_events(order.id)
    assert ev.details == {"reason": "no_mobile", "type": "order_confirmation",
                          "event_id": placed.id}
    assert ev.actor_type == SYSTEM.type
    # the email still goes; the new event causes no message and no bell entry of its own
    assert [m.channel for m in messages(order.id) if m.audience == "customer"] == ["email"]
    assert not [m for m in messages(order.id) if m.event_id == ev.id]
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(DeskNotification)
                             .where(DeskNotification.event_id == ev.id)) == 0


def test_a_rolled_back_action_writes_no_whatsapp_row_and_no_event(active, make_order,
                                                                  staff_actor):
    order = make_order()
    no_mobile = make_order(phone="")
    before_events = db.session.scalar(select(func.count()).select_from(OrderEvent))
    before = {m.id for m in messages()}
    with pytest.raises(RuntimeError), write_transaction():
        actions.reject_order(order.id, "no", actor=staff_actor)
        actions.reject_order(no_mobile.id, "no", actor=staff_actor)
        # written inside the transaction (a row and a "no mobile" event), then...
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.channel == "whatsapp", OutboxMessage.order_id == order.id,
            OutboxMessage.kind == "order_cancellation")) == 1
        assert db.session.scalar(select(func.count()).select_from(OrderEvent).where(
            OrderEvent.order_id == no_mobile.id, OrderEvent.type == WHATSAPP_NOT_SENT)) == 2
        raise RuntimeError("the action failed after writing")
    db.session.rollback()
    assert {m.id for m in messages()} == before
    assert db.session.scalar(select(func.count()).select_from(OrderEvent)) == before_events
    assert outbox.take_new_ids(db.session) == []


def test_a_second_write_of_the_same_event_is_a_no_op(active, make_order):
    order = make_order()
    no_mobile = make_order(phone="")
    events = [outbox.WrittenEvent(o.id, last_event(o.id, "order_placed").id, "order_placed",
                                  SYSTEM) for o in (order, no_mobile)]
    rows_before = [(m.id, m.channel) for m in messages()]
    for _ in range(2):
        with write_transaction():
            assert outbox.write_for_events(events, utcnow()) == []
    assert [(m.id, m.channel) for m in messages()] == rows_before
    assert len(not_sent_events(no_mobile.id)) == 1


def test_the_expiry_batch_writes_one_row_per_order_and_reads_the_config_once(
        active, app, make_order):
    orders = [make_order(email=f"b{i}@example.hk") for i in range(4)]
    orders.append(make_order(phone="", email="b4@example.hk"))
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        if "whatsapp_config" in statement:
            statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        expired = actions.expire_orders([o.id for o in orders], now=utcnow() + timedelta(days=3))
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert sorted(expired) == sorted(o.id for o in orders)
    # is_active and the disabled types: at most one read of the row per call
    assert len(statements) <= 1, statements
    expiry = [m for m in wa_rows() if m.kind == "expired_order"]
    assert sorted(m.order_id for m in expiry) == sorted(o.id for o in orders[:4])
    [ev] = [e for e in not_sent_events(orders[4].id) if e.details["type"] == "expired_order"]
    assert ev.details["reason"] == "no_mobile"


def test_new_rows_are_queued_for_delivery_after_the_commit(active, make_order):
    with write_transaction():
        order = make_order()
        ids = list(db.session.info.get(outbox.NEW_IDS_KEY, []))
    db.session.rollback()
    wa = {m.id for m in wa_rows(order.id)}
    assert wa and wa <= set(ids)


def test_a_skipped_message_can_be_sent_again_by_hand(active, make_order, staff_actor):
    order = make_order()
    [row] = wa_rows(order.id)
    ids, token = outbox.claim_due(channel="whatsapp")
    assert ids == [row.id]
    assert outbox.record_skipped(row.id, token, reason="monthly cap reached")
    assert db.session.get(OutboxMessage, row.id).status == "skipped"
    outbox.retry_by_hand(row.id, actor=staff_actor)
    fresh = messages(order.id)
    assert [m.status for m in fresh if m.id == row.id] == ["pending"]
    assert last_event(order.id, "message_retried").details["channel"] == "whatsapp"


def test_staff_are_shown_the_furthest_report_once_sent():
    from domain.models import OutboxMessage

    assert OutboxMessage(status="pending", delivery_status="").shown_status == "pending"
    assert OutboxMessage(status="sent", delivery_status="").shown_status == "sent"
    assert OutboxMessage(status="sent", delivery_status="read").shown_status == "read"
    assert OutboxMessage(status="sent", delivery_status="failed").shown_status == "failed"
    # A report on a row that is not "sent" (retried by hand) does not hide its status.
    assert OutboxMessage(status="failed", delivery_status="delivered").shown_status == "failed"
