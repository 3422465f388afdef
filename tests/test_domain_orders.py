"""Domain actions called directly: the transition table, stock, refusals, history."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from domain import orders as actions
from domain.actors import Actor
from domain.db import db
from domain.errors import InsufficientStock, InvalidTransition, ValidationError
from domain.models import Order, OrderEvent, Variant, utcnow
from domain.status import TRANSITIONS, DeliveryStatus, OrderStatus, allowed
from domain.store import get_settings, update_store_info

STAFF = Actor("staff", 1, "Tester")


def stock_of(variant_id: int) -> int | None:
    db.session.expire_all()
    return db.session.get(Variant, variant_id).stock


def events_of(order_id: int) -> list[str]:
    return list(db.session.scalars(select(OrderEvent.type).where(OrderEvent.order_id == order_id)
                                   .order_by(OrderEvent.id)))


def force_state(order_id, status, delivery=DeliveryStatus.UNFULFILLED, deadline=None):
    """Test set-up only: put an order into a state without the actions."""
    db.session.execute(update(Order).where(Order.id == order_id).values(
        status=status, delivery_status=delivery, payment_deadline_at=deadline))
    db.session.commit()


def run_action(action: str, order_id: int):
    if action == "upload_proof":
        return actions.upload_proof(order_id, path="p.png", sha256="0" * 64)
    if action in ("decline_proof", "reject_order"):
        return getattr(actions, action)(order_id, "reason", actor=STAFF)
    if action == "expire_order":
        return actions.expire_order(order_id)
    return getattr(actions, action)(order_id, actor=STAFF)


def _edges():
    for action in TRANSITIONS:
        for status in OrderStatus:
            for kind in ("delivery", "pickup", "logistics"):
                for delivery in (DeliveryStatus.UNFULFILLED, DeliveryStatus.READY_FOR_PICKUP):
                    if delivery == DeliveryStatus.READY_FOR_PICKUP and kind != "pickup":
                        continue
                    yield action, status, kind, delivery


@pytest.mark.parametrize("action,status,kind,delivery", list(_edges()))
def test_transition_table(make_order, action, status, kind, delivery):
    # given an order in `status` with a passed deadline (so expiry is only guarded by status)
    order = make_order(shipping=kind, stock=5, quantity=2)
    force_state(order.id, status, delivery, deadline=utcnow() - timedelta(minutes=1))
    variant_id = order.lines[0].variant_id
    stock_before = stock_of(variant_id)
    events_before = len(events_of(order.id))
    should_pass = allowed(action, status, delivery, kind)

    # when
    if should_pass:
        run_action(action, order.id)
    else:
        with pytest.raises(InvalidTransition):
            run_action(action, order.id)

    # then
    db.session.expire_all()
    after = db.session.get(Order, order.id)
    target = TRANSITIONS[action][1]
    assert after.status == (target if should_pass else status)
    assert len(events_of(order.id)) == events_before + (1 if should_pass else 0)
    restocks = should_pass and target == OrderStatus.CANCELED
    assert stock_of(variant_id) == stock_before + (2 if restocks else 0)


def test_place_order_holds_stock_and_writes_one_event(make_variant, make_order):
    # given
    cookies = make_variant(stock=5)
    shirt = make_variant(name="Cotton T-Shirt", variant="M", price_cents=14900, stock=3)
    # when
    order = make_order(items=[(cookies.id, 2), (shirt.id, 3)])
    # then
    assert order.status == OrderStatus.PENDING_PAYMENT
    assert order.number.startswith("SD")
    assert stock_of(cookies.id) == 3 and stock_of(shirt.id) == 0
    assert order.subtotal_cents == 2 * 12800 + 3 * 14900
    assert order.total_cents == order.subtotal_cents + order.shipping_fee_cents
    assert events_of(order.id) == ["order_placed"]
    event = db.session.scalar(select(OrderEvent).where(OrderEvent.order_id == order.id))
    assert event.details["total_cents"] == order.total_cents
    assert {ln["quantity"] for ln in event.details["lines"]} == {2, 3}


def test_online_payment_starts_in_processing(make_order):
    order = make_order(payment="credit_card")
    assert order.status == OrderStatus.PROCESSING
    assert order.payment_deadline_at is None


def test_insufficient_stock_names_item_and_changes_nothing(make_variant, make_order):
    # given
    plenty = make_variant(stock=10)
    scarce = make_variant(name="手工朱古力", variant="黑朱古力", stock=1)
    orders_before = db.session.scalar(select(func.count(Order.id)))
    # when
    with pytest.raises(InsufficientStock) as refusal:
        make_order(items=[(plenty.id, 4), (scarce.id, 2)])
    # then: the first line's hold was rolled back too
    assert "手工朱古力 (黑朱古力)" in str(refusal.value)
    assert stock_of(plenty.id) == 10 and stock_of(scarce.id) == 1
    assert db.session.scalar(select(func.count(Order.id))) == orders_before


def test_unlimited_stock_is_never_held(make_variant, make_order):
    v = make_variant(stock=None)
    order = make_order(items=[(v.id, 500)])
    actions.reject_order(order.id, "test", actor=STAFF)
    assert stock_of(v.id) is None


def test_reject_restocks_every_line_once(make_variant, make_order):
    a, b = make_variant(stock=4), make_variant(stock=4)
    order = make_order(items=[(a.id, 1), (b.id, 3)])
    actions.reject_order(order.id, "Out of season", actor=STAFF)
    assert (stock_of(a.id), stock_of(b.id)) == (4, 4)
    with pytest.raises(InvalidTransition):
        actions.reject_order(order.id, "again", actor=STAFF)
    assert (stock_of(a.id), stock_of(b.id)) == (4, 4)
    event = db.session.scalar(select(OrderEvent).where(OrderEvent.type == "order_rejected"))
    assert event.details["reason"] == "Out of season"
    assert event.details["from_status"] == "pending_payment"
    assert sorted(r["quantity"] for r in event.details["restocked"]) == [1, 3]


def test_reject_requires_reason(make_order):
    order = make_order()
    with pytest.raises(ValidationError):
        actions.reject_order(order.id, "   ", actor=STAFF)
    assert db.session.get(Order, order.id).status == OrderStatus.PENDING_PAYMENT


def test_expire_refused_before_deadline(make_order):
    update_store_info(**_store(payment_deadline_days=2))
    order = make_order()
    assert order.payment_deadline_at is not None
    with pytest.raises(InvalidTransition, match="deadline has not passed"):
        actions.expire_order(order.id)
    actions.expire_order(order.id, now=order.payment_deadline_at + timedelta(seconds=1))
    assert db.session.get(Order, order.id).status == OrderStatus.CANCELED


def _store(**overrides):
    s = get_settings()
    values = dict(name=s.name, address=s.address, phone=s.phone, email=s.email,
                  notification_email=s.notification_email, currency=s.currency,
                  timezone=s.timezone, plan=s.plan, order_prefix=s.order_prefix,
                  payment_deadline_days=s.payment_deadline_days,
                  reminder_lead_hours=s.reminder_lead_hours)
    values.update(overrides)
    return values


def test_ship_sets_tracking_and_delivery_status(make_order):
    order = make_order(payment="credit_card")
    actions.ship_order(order.id, actor=STAFF, tracking_code="SF1234567890")
    db.session.expire_all()
    order = db.session.get(Order, order.id)
    assert order.status == OrderStatus.COMPLETED
    assert order.delivery_status == DeliveryStatus.SHIPPED
    assert order.tracking_code == "SF1234567890"
    shipped = db.session.scalar(select(OrderEvent).where(OrderEvent.type == "order_shipped"))
    assert shipped.details["tracking_code"] == "SF1234567890"


def test_pickup_flow(make_order):
    order = make_order(payment="credit_card", shipping="pickup", address="")
    with pytest.raises(InvalidTransition, match="Pickup orders"):
        actions.ship_order(order.id, actor=STAFF)
    with pytest.raises(InvalidTransition, match="ready for pickup first"):
        actions.complete_pickup(order.id, actor=STAFF)
    actions.mark_ready_for_pickup(order.id, actor=STAFF)
    actions.complete_pickup(order.id, actor=STAFF)
    db.session.expire_all()
    assert db.session.get(Order, order.id).delivery_status == DeliveryStatus.PICKED_UP


@pytest.mark.parametrize("status", [OrderStatus.COMPLETED, OrderStatus.CANCELED])
def test_tracking_code_refused_when_final(make_order, status):
    order = make_order()
    force_state(order.id, status)
    with pytest.raises(InvalidTransition, match="can no longer change"):
        actions.set_tracking_code(order.id, "SF1", actor=STAFF)


def test_tracking_code_refused_when_carrier_generated(make_order):
    order = make_order(payment="credit_card", shipping="logistics")
    db.session.execute(update(Order).where(Order.id == order.id).values(
        tracking_code="SF999", tracking_code_by_carrier=True))
    db.session.commit()
    with pytest.raises(InvalidTransition, match="carrier"):
        actions.set_tracking_code(order.id, "MINE", actor=STAFF)
    assert db.session.get(Order, order.id).tracking_code == "SF999"


@pytest.mark.parametrize("code", ["<script>", "x" * 65, "a\nb", "'; DROP TABLE orders;--"])
def test_tracking_code_rejects_hostile_text(make_order, code):
    order = make_order()
    with pytest.raises(ValidationError):
        actions.set_tracking_code(order.id, code, actor=STAFF)
    assert db.session.get(Order, order.id).tracking_code == ""


def test_tracking_code_change_is_recorded(make_order):
    order = make_order()
    actions.set_tracking_code(order.id, "SF1", actor=STAFF)
    actions.set_tracking_code(order.id, "SF2", actor=STAFF)
    actions.set_tracking_code(order.id, "SF2", actor=STAFF)  # no change, no event
    changes = db.session.scalars(select(OrderEvent).where(OrderEvent.type == "tracking_code_set")
                                 .order_by(OrderEvent.id)).all()
    assert [(e.details["old"], e.details["new"]) for e in changes] == [("", "SF1"), ("SF1", "SF2")]


def test_notes_and_refund_notes(make_order):
    order = make_order(payment="credit_card")
    actions.add_note(order.id, "Customer asked for gift wrap 🎁", actor=STAFF)
    with pytest.raises(ValidationError):
        actions.add_note(order.id, "", actor=STAFF)
    with pytest.raises(ValidationError, match="cannot exceed"):
        actions.record_refund_note(order.id, amount_cents=order.total_cents + 1,
                                   method="FPS", actor=STAFF)
    with pytest.raises(ValidationError):
        actions.record_refund_note(order.id, amount_cents=100, method="Bitcoin", actor=STAFF)
    actions.record_refund_note(order.id, amount_cents=5000, method="FPS", reference="FPS-778",
                               actor=STAFF)
    assert events_of(order.id) == ["order_placed", "note_added", "refund_noted"]
    assert db.session.get(Order, order.id).status == OrderStatus.PROCESSING  # no money moved


@pytest.mark.parametrize("field,value,message", [
    ("name", "", "Name is required"),
    ("phone", "call me", "Phone must be digits"),
    ("email", "not-an-email", "valid email"),
    ("address", "", "Address is required"),
])
def test_checkout_validation(make_order, field, value, message):
    with pytest.raises(ValidationError, match=message):
        make_order(**{field: value})


@pytest.mark.parametrize("quantity", [0, -1, 1000])
def test_quantity_bounds(make_order, quantity):
    with pytest.raises(ValidationError, match="Quantities"):
        make_order(quantity=quantity)


def test_discount_cannot_exceed_subtotal(make_order):
    with pytest.raises(ValidationError, match="Discount"):
        make_order(discount_cents=10**7)


def test_deadline_uses_method_override(make_order):
    from domain.models import PaymentMethod

    update_store_info(**_store(payment_deadline_days=3, reminder_lead_hours=12))
    fps = db.session.scalar(select(PaymentMethod).where(PaymentMethod.code == "fps"))
    fps.deadline_days = 1
    db.session.commit()
    order = make_order()
    assert order.payment_deadline_at - order.placed_at == timedelta(days=1)
    assert order.payment_deadline_at - order.reminder_at == timedelta(hours=12)
    bank = make_order(payment="bank_transfer")
    assert bank.payment_deadline_at - bank.placed_at == timedelta(days=3)


def test_decline_gives_a_fresh_deadline(make_order):
    update_store_info(**_store(payment_deadline_days=2))
    order = make_order()
    actions.upload_proof(order.id, path="p.png", sha256="1" * 64)
    later = order.payment_deadline_at + timedelta(hours=1)  # proof waited past the deadline
    actions.decline_proof(order.id, "Wrong amount", actor=STAFF, now=later)
    db.session.expire_all()
    after = db.session.get(Order, order.id)
    assert after.status == OrderStatus.PENDING_PAYMENT
    assert after.payment_deadline_at == later + timedelta(days=2)
    with pytest.raises(InvalidTransition):
        actions.expire_order(order.id, now=later + timedelta(minutes=1))
