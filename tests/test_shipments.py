"""create_shipment on a real SQLite file: who may book, the lock afterwards, failures,
and two bookings at once (issue 11)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select

from domain import orders as actions
from domain import shipments
from domain.actors import Actor
from domain.db import db
from domain.documents.carriers import CarrierError, TestCarrier
from domain.errors import DomainError, InvalidTransition, ValidationError
from domain.models import Order, OrderEvent, Shipment, utcnow
from domain.shipments import ShipmentRefused, create_shipment, shipment_for

STAFF = Actor("staff", 1, "Tester")


def events(order_id, type_):
    db.session.rollback()
    return list(db.session.scalars(select(OrderEvent).where(
        OrderEvent.order_id == order_id, OrderEvent.type == type_)))


def fresh(order_id):
    db.session.rollback()
    return db.session.get(Order, order_id)


@pytest.fixture
def logistics_order(make_order):
    def make(**kw):
        kw.setdefault("payment", "credit_card")  # online: starts in Processing
        return make_order(shipping="logistics", **kw)
    return make


def test_create_shipment_stores_code_locks_it_and_writes_event(app, logistics_order):
    order = logistics_order()
    shipment = create_shipment(order.id, actor=STAFF, weight_grams=1500)
    order = fresh(order.id)
    assert order.tracking_code == shipment.tracking_code and order.tracking_code_by_carrier
    assert shipment.carrier == "test" and shipment.weight_grams == 1500
    assert shipment.label["recipient"] == "陳大文" and shipment.label["address"] == "旺角彌敦道 1 號"
    assert shipment_for(order.id).id == shipment.id
    [event] = events(order.id, "shipment_created")
    assert event.details["tracking_code"] == shipment.tracking_code
    assert event.details["carrier"] == "test" and event.actor_label == "Tester"


def test_default_weight(app, logistics_order):
    order = logistics_order()
    assert create_shipment(order.id, actor=STAFF).weight_grams == shipments.DEFAULT_WEIGHT_GRAMS


@pytest.mark.parametrize("weight", ["abc", "-5", 0, 100_001, "1e9", True, "12.5"])
def test_bad_weight_refused_before_anything(app, logistics_order, weight):
    order = logistics_order()
    with pytest.raises(ValidationError):
        create_shipment(order.id, actor=STAFF, weight_grams=weight)
    assert db.session.scalar(select(func.count(Shipment.id))) == 0


def _eligibility_cases():
    return [
        ("delivery order", dict(shipping="delivery", payment="credit_card"), None, shipments.NOT_LOGISTICS),
        ("pickup order", dict(shipping="pickup", payment="credit_card", address=""), None, shipments.NOT_LOGISTICS),
        ("pending payment", dict(shipping="logistics", payment="fps"), None, shipments.WRONG_STATUS),
        ("pending confirmation", dict(shipping="logistics", payment="fps"), "upload", shipments.WRONG_STATUS),
        ("completed", dict(shipping="logistics", payment="credit_card"), "ship", shipments.WRONG_STATUS),
        ("canceled", dict(shipping="logistics", payment="credit_card"), "reject", shipments.WRONG_STATUS),
        ("processing logistics", dict(shipping="logistics", payment="credit_card"), None, None),
        ("paid by transfer", dict(shipping="logistics", payment="fps"), "confirm", None),
    ]


@pytest.mark.parametrize("label, kw, step, refusal", _eligibility_cases(),
                         ids=[c[0] for c in _eligibility_cases()])
def test_eligibility_table(app, make_order, label, kw, step, refusal):
    order = make_order(**kw)
    if step == "upload":
        db.session.execute(Order.__table__.update().where(Order.id == order.id)
                           .values(status="pending_confirmation"))
        db.session.commit()
    elif step == "confirm":
        actions.confirm_payment(order.id, actor=STAFF)
    elif step == "ship":
        actions.ship_order(order.id, actor=STAFF)
    elif step == "reject":
        actions.reject_order(order.id, "out of stock", actor=STAFF)
    before = fresh(order.id)
    assert (shipments.shipment_refusal(before) is None) is (refusal is None)
    if refusal is None:
        assert create_shipment(order.id, actor=STAFF).tracking_code
        return
    with pytest.raises(ShipmentRefused) as caught:
        create_shipment(order.id, actor=STAFF)
    assert caught.value.msgid == refusal
    assert db.session.scalar(select(func.count(Shipment.id))) == 0
    assert fresh(order.id).tracking_code == before.tracking_code


def test_draft_is_refused(app, logistics_order):
    order = logistics_order()
    db.session.execute(Order.__table__.update().where(Order.id == order.id).values(kind="draft"))
    db.session.commit()
    with pytest.raises(ShipmentRefused) as caught:
        create_shipment(order.id, actor=STAFF)
    assert caught.value.msgid == shipments.DRAFT


def test_not_twice(app, logistics_order):
    order = logistics_order()
    first = create_shipment(order.id, actor=STAFF)
    with pytest.raises(ShipmentRefused) as caught:
        create_shipment(order.id, actor=STAFF)
    assert caught.value.msgid == shipments.ALREADY
    assert first.tracking_code in str(caught.value)
    assert len(events(order.id, "shipment_created")) == 1


def test_missing_order(app):
    with pytest.raises(DomainError):
        create_shipment(999_999, actor=STAFF)


def test_carrier_code_is_locked_in_the_domain(app, logistics_order):
    order = logistics_order()
    code = create_shipment(order.id, actor=STAFF).tracking_code
    with pytest.raises(InvalidTransition):
        actions.set_tracking_code(order.id, "HAND123", actor=STAFF)
    with pytest.raises(ValidationError):
        actions.ship_order(order.id, actor=STAFF, tracking_code="OTHER999")
    assert fresh(order.id).status == "processing"
    # shipping with the carrier's own code (or none) is fine and keeps it
    shipped = actions.ship_order(order.id, actor=STAFF)
    assert (shipped.status, shipped.tracking_code) == ("completed", code)


def test_crafted_post_to_tracking_route_is_refused(app, logistics_order, staff_client):
    order = logistics_order()
    code = create_shipment(order.id, actor=STAFF).tracking_code
    for htmx in (False, True):
        response = staff_client.post(f"/orders/{order.number}/tracking",
                                     data={"tracking_code": "EVIL123"}, htmx=htmx)
        assert response.status_code in (302, 422)
        assert fresh(order.id).tracking_code == code
    page = staff_client.get(f"/orders/{order.number}").get_data(as_text=True)
    assert code in page and "Set by the carrier" in page


def test_carrier_failure_leaves_order_unchanged_with_an_event(app, logistics_order):
    order = logistics_order(address="九龍 FAIL-CARRIER 道 3 號")
    before = fresh(order.id)
    snapshot = (before.status, before.tracking_code, before.tracking_code_by_carrier,
                before.updated_at, before.version)
    with pytest.raises(CarrierError):
        create_shipment(order.id, actor=STAFF, weight_grams=800)
    after = fresh(order.id)
    assert (after.status, after.tracking_code, after.tracking_code_by_carrier,
            after.updated_at, after.version) == snapshot
    assert db.session.scalar(select(func.count(Shipment.id))) == 0
    [event] = events(order.id, "shipment_failed")
    assert "refused the address" in event.details["reason"]
    assert event.details["retryable"] is False and event.details["weight_grams"] == 800
    assert shipments.last_failure(order.id).id == event.id
    # a later success hides the failure from the card; the claim was released, so it can run
    app.config["CARRIER"] = "test"
    db.session.execute(Order.__table__.update().where(Order.id == order.id)
                       .values(shipping_address="九龍道 3 號"))
    db.session.commit()
    create_shipment(order.id, actor=STAFF)
    assert shipments.last_failure(order.id) is None


def test_failure_shows_on_the_order_page(app, logistics_order, staff_client):
    app.config["TEST_CARRIER_FAIL"] = "busy"
    order = logistics_order()
    with pytest.raises(CarrierError):
        create_shipment(order.id, actor=STAFF)
    page = staff_client.get(f"/orders/{order.number}").get_data(as_text=True)
    assert "not answering right now" in page


def test_two_at_once_book_once(app, logistics_order, monkeypatch):
    order = logistics_order()
    order_id = order.id  # a plain int: the threads must not touch this session's objects
    calls = []
    real = TestCarrier.create_shipment

    def slow(self, parcel):
        calls.append(parcel.reference)
        time.sleep(0.5)  # the second request arrives while the first is at the carrier
        return real(self, parcel)

    monkeypatch.setattr(TestCarrier, "create_shipment", slow)
    outcomes = []
    barrier = threading.Barrier(2)

    def book():
        with app.app_context():
            barrier.wait()
            try:
                outcomes.append(create_shipment(order_id, actor=STAFF).tracking_code)
            except ShipmentRefused as exc:
                outcomes.append(exc.msgid)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=book) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(calls) == 1
    assert sorted(outcomes, key=len)[1] == shipments.UNDER_WAY
    db.session.rollback()
    assert db.session.scalar(select(func.count(Shipment.id))) == 1
    assert len(events(order.id, "shipment_created")) == 1


def test_interrupted_booking_is_visible_then_retried_with_the_same_code(app, logistics_order,
                                                                        monkeypatch):
    order = logistics_order()

    def crash(self, parcel):
        raise ConnectionError("the line dropped after the carrier answered")

    monkeypatch.setattr(TestCarrier, "create_shipment", crash)
    with pytest.raises(ConnectionError):
        create_shipment(order.id, actor=STAFF)
    monkeypatch.undo()
    card = shipments.shipment_card(fresh(order.id))
    assert card.claim is not None and not card.claim_stale and card.shipment is None
    # too soon: still under way
    with pytest.raises(ShipmentRefused) as caught:
        create_shipment(order.id, actor=STAFF)
    assert caught.value.msgid == shipments.UNDER_WAY
    # after CLAIM_STALE the claim is taken over; the same reference gives the same parcel
    later = utcnow() + shipments.CLAIM_STALE
    assert shipments.shipment_card(fresh(order.id), now=later).claim_stale
    shipment = create_shipment(order.id, actor=STAFF, now=later)
    from domain.documents.carriers import tracking_code_for
    assert shipment.tracking_code == tracking_code_for(order.number)
    assert db.session.scalar(select(func.count(Shipment.id))) == 1
