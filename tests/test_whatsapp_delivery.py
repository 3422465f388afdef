"""WhatsApp delivery against the fake Cloud API on loopback (tests/whatsapp_fixtures.py),
on a real SQLite file: each of the 8 types goes out with its template, language and
parameters; the row is stamped and the price reserved before the call; the API's
answers map to sent / dead / retried (Retry-After) / unknown; the monthly cap holds
under 20 concurrent senders; webhook statuses apply in any order, twice, and before
the send's own commit."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from outbox_helpers import fresh_row, messages, pg_order
from sqlalchemy import func, select

from domain import orders as actions
from domain.db import db
from domain.models import DeskNotification, OrderEvent, WhatsAppCharge, WhatsAppStatus, utcnow
from domain.notify import outbox, whatsapp, whatsapp_config
from domain.notify import whatsapp_delivery as wd
from domain.notify.kinds import WHATSAPP_NOT_SENT

pytest_plugins = ["outbox_fixtures", "whatsapp_fixtures"]

PRICE = 15  # the seeded price: HKD 0.15


@pytest.fixture
def wa(app, shop, whatsapp_api):
    """WhatsApp on in sandbox mode, its API the loopback fake; webhooks go nowhere
    unless a test feeds them (``feed``)."""
    app.config.update(WHATSAPP_SANDBOX_SERVER=True, PUBLIC_URL=whatsapp_api.base_url)
    whatsapp_config.use_sandbox()
    whatsapp_config.activate()
    whatsapp_api.on_webhook = lambda body, headers: 200
    return whatsapp_api


def feed(app, api):
    """The fake's webhooks go to record_status_updates (what the webhook route calls)."""
    def sink(body, headers):
        with app.app_context():
            try:
                wd.record_status_updates(json.loads(body))
            finally:
                db.session.remove()
        return 200

    api.on_webhook = sink


def wa_rows(order_id=None):
    return [m for m in messages(order_id) if m.channel == "whatsapp"]


def charges():
    db.session.rollback()
    return list(db.session.scalars(select(WhatsAppCharge).order_by(WhatsAppCharge.id)))


def body_params(request) -> dict[str, str]:
    template = request.json["template"]
    [component] = template["components"]
    return {p["parameter_name"]: p["text"] for p in component["parameters"]}


def _paid(mk, **kw):
    return mk(payment="credit_card", **kw)


def _ready(order, actor):
    actions.mark_ready_for_pickup(order.id, actor=actor)
    return order


# type -> (how to get there from a placed order, expected parameter values)
def _steps(type_code, order, actor):
    if type_code == "payment_received":
        actions.upload_proof(order.id, path="p.png", sha256="0" * 64)
        actions.confirm_payment(order.id, actor=actor)
    elif type_code == "shipping_status":
        actions.ship_order(order.id, actor=actor, tracking_code="SF123")
    elif type_code == "pickup_notification":
        actions.mark_ready_for_pickup(order.id, actor=actor)
    elif type_code == "pickup_completed":
        actions.mark_ready_for_pickup(order.id, actor=actor)
        actions.complete_pickup(order.id, actor=actor)
    elif type_code == "order_cancellation":
        actions.reject_order(order.id, "缺貨 Sold out", actor=actor)
    elif type_code == "expired_order":
        actions.expire_order(order.id, now=utcnow() + timedelta(days=3))
    elif type_code == "payment_reminder":
        from domain import deadlines

        deadlines.remind_if_due(order.id, now=utcnow() + timedelta(days=1, hours=1))
    elif type_code == "order_updated":
        from domain.models import StoreSettings
        from domain.modify import ModifyInput, modify_order

        db.session.get(StoreSettings, 1).plan = "advanced"
        db.session.commit()
        line = actions.get_order(order.id).lines[0]
        modify_order(order.id, ModifyInput((("line", line.id, line.quantity + 1),), None, None),
                     expected_version=actions.get_order(order.id).version, actor=actor)


PLACE = {"shipping_status": dict(payment="credit_card"),
         "pickup_notification": dict(payment="credit_card", shipping="pickup", address=""),
         "pickup_completed": dict(payment="credit_card", shipping="pickup", address="")}


@pytest.mark.parametrize("language,locale", [("en", "en"), ("zh_HK", "zh_Hant_HK")])
@pytest.mark.parametrize("type_code", list(whatsapp.TYPES))
def test_each_type_is_sent_with_its_template_language_and_parameters(
        wa, make_order, staff_actor, type_code, language, locale):
    order = make_order(locale=locale, **PLACE.get(type_code, {}))
    _steps(type_code, order, staff_actor)
    [row] = [m for m in wa_rows(order.id) if m.kind == type_code]
    # the expiry and the reminder were written "days later": deliver after them
    counts = wd.deliver_whatsapp_due(now=utcnow() + timedelta(days=4))
    assert counts["sent"] == len(wa_rows(order.id)) and counts["failed"] == counts["dead"] == 0
    [request] = [r for r in wa.sends
                 if r.json["template"]["name"] == f"shopdesk_{type_code}"]
    assert request.json["to"] == "+85291234567"
    assert request.json["template"]["language"] == {"code": language}
    assert request.headers.get("Authorization") == "Bearer sandbox-token"
    params = body_params(request)
    assert list(params) == list(whatsapp.TYPES[type_code].params)
    assert all(params.values())
    db.session.rollback()
    order = actions.get_order(order.id)
    if "order_number" in params:
        assert params["order_number"] == order.number
    if "customer_name" in params:
        assert params["customer_name"] == "陳大文"
    if type_code == "shipping_status":
        assert params["tracking_code"] == "SF123"
    if type_code == "order_cancellation":
        assert params["reason"] == "缺貨 Sold out"
    sent = fresh_row(row.id)
    assert sent.status == "sent" and sent.provider_id in wa.sent
    assert sent.params == {"template": f"shopdesk_{type_code}", "language": language,
                           "params": params}


def test_the_row_is_stamped_and_the_price_held_before_the_call(app, wa, make_order):
    order = make_order()
    [row] = wa_rows(order.id)
    seen = {}
    real = whatsapp.client_from_config()

    class Watching:
        def send_template(self, to, message):
            # what a second connection sees at this moment: committed before the call
            with app.app_context():
                seen["row"] = fresh_row(row.id)
                seen["stamped"] = (seen["row"].status, seen["row"].claimed_at is not None)
                seen["charges"] = [(c.state, c.price_cents) for c in charges()]
                db.session.remove()
            return real.send_template(to, message)

    assert wd.deliver_whatsapp_due(Watching())["sent"] == 1
    real.close()
    assert seen["stamped"] == ("sending", True)
    assert seen["charges"] == [("reserved", PRICE)]
    [charge] = charges()
    assert (charge.state, charge.price_cents, charge.outbox_message_id, charge.kind) == (
        "accepted", PRICE, row.id, "order_confirmation")
    assert charge.provider_message_id == fresh_row(row.id).provider_id == wa.sent[0]
    # nothing is sent twice
    assert wd.deliver_whatsapp_due()["sent"] == 0
    assert len(wa.sends) == 1


def test_pending_rows_are_skipped_once_whatsapp_is_off_or_their_type_is(wa, make_order,
                                                                        staff_actor):
    first = make_order()
    second = make_order()
    actions.reject_order(second.id, "no", actor=staff_actor)
    whatsapp_config.set_type_enabled("order_cancellation", False)
    counts = wd.deliver_whatsapp_due(limit=0)
    assert sum(counts.values()) == 0
    whatsapp_config.deactivate()
    counts = wd.deliver_whatsapp_due()
    assert counts["skipped"] == 3 and counts["sent"] == 0
    state = {(m.order_id, m.kind): (m.status, m.last_error) for m in wa_rows()}
    assert state == {(first.id, "order_confirmation"): ("skipped", wd.OFF_REASON),
                     (second.id, "order_confirmation"): ("skipped", wd.OFF_REASON),
                     (second.id, "order_cancellation"): ("skipped", wd.OFF_REASON)}
    assert wa.sends == [] and charges() == []
    # switched on again, only the type switch holds a message back
    third = make_order()
    actions.reject_order(third.id, "no", actor=staff_actor)  # written while the type is off
    whatsapp_config.activate()
    whatsapp_config.set_type_enabled("order_cancellation", False)
    for m in wa_rows():
        if m.status == "skipped":
            outbox.retry_by_hand(m.id, actor=staff_actor)
    counts = wd.deliver_whatsapp_due()
    state = {(m.order_id, m.kind): (m.status, m.last_error) for m in wa_rows()}
    assert state[(second.id, "order_cancellation")] == ("skipped", wd.TYPE_OFF_REASON)
    assert state[(first.id, "order_confirmation")] == ("sent", "")
    assert (third.id, "order_cancellation") not in state
    assert len(wa.sends) == counts["sent"] == 2


def test_a_refusal_is_dead_and_costs_nothing(wa, make_order):
    order = make_order(phone="6123 0400")
    counts = wd.deliver_whatsapp_due()
    assert counts["dead"] == 1
    [row] = wa_rows(order.id)
    assert row.status == "dead" and "131026" in row.last_error
    assert charges() == [] and len(wa.sends) == 1
    assert wd.deliver_whatsapp_due(now=utcnow() + timedelta(hours=2))["dead"] == 0
    assert len(wa.sends) == 1


def test_a_429_is_retried_after_its_retry_after_and_holds_the_rest_back(wa, make_order):
    limited = make_order(phone="6123 0429")
    others = [make_order(), make_order()]
    start = utcnow()
    counts = wd.deliver_whatsapp_due(now=start)
    assert counts["failed"] == 1 and counts["handed_back"] == 2 and counts["sent"] == 0
    [row] = wa_rows(limited.id)
    assert row.status == "failed" and "130429" in row.last_error and row.attempts == 1
    assert row.next_attempt_at == start + timedelta(seconds=2)  # Retry-After: 2
    for order in others:
        [m] = wa_rows(order.id)
        assert (m.status, m.attempts, m.next_attempt_at) == ("pending", 0,
                                                             start + timedelta(seconds=2))
    assert charges() == [] and len(wa.sends) == 1
    # not before the server said
    assert sum(wd.deliver_whatsapp_due(now=start + timedelta(seconds=1)).values()) == 0
    counts = wd.deliver_whatsapp_due(now=start + timedelta(seconds=2, milliseconds=1))
    assert counts["failed"] == 1 and len(wa.sends) == 2
    assert fresh_row(row.id).attempts == 2


def test_a_server_error_is_retried_with_back_off_until_dead(wa, make_order):
    order = make_order(phone="6123 0500")
    [row] = wa_rows(order.id)
    now = utcnow()
    for attempt in range(1, outbox.MAX_ATTEMPTS + 1):
        counts = wd.deliver_whatsapp_due(now=now)
        fresh = fresh_row(row.id)
        assert fresh.attempts == attempt and "131000" in fresh.last_error
        if attempt < outbox.MAX_ATTEMPTS:
            assert counts["failed"] == 1 and fresh.status == "failed"
            assert fresh.next_attempt_at == now + outbox.retry_delay(attempt)
            now = fresh.next_attempt_at
        else:
            assert counts["dead"] == 1 and fresh.status == "dead"
    assert len(wa.sends) == outbox.MAX_ATTEMPTS and charges() == []


def test_a_timeout_is_unknown_and_never_sent_again(wa, make_order):
    wa.timeout_delay = 3.0
    order = make_order(phone="6123 0408")
    [row] = wa_rows(order.id)
    client = whatsapp.client_from_config(timeout=1.0)
    try:
        counts = wd.deliver_whatsapp_due(client)
    finally:
        client.close()
    assert counts["unknown"] == 1
    fresh = fresh_row(row.id)
    assert fresh.status == "unknown" and fresh.last_error
    # the API may have taken it: the hold stays (the cap counts it), nothing is billed
    assert [(c.state, c.accepted_at) for c in charges()] == [("reserved", None)]
    for later in (timedelta(minutes=10), timedelta(days=1)):
        outbox.give_up_stuck(now=utcnow() + later)
        assert sum(wd.deliver_whatsapp_due(now=utcnow() + later).values()) == 0
    assert fresh_row(row.id).status == "unknown" and len(wa.sends) == 1


def test_the_cap_holds_under_twenty_concurrent_senders(app, wa, make_order, owner):
    cap_messages = 7
    whatsapp_config.set_monthly_cap(f"{cap_messages * PRICE / 100:.2f}")
    variant_orders = [make_order() for _ in range(20)]
    assert len(wa_rows()) == 20
    barrier = threading.Barrier(20)
    results: list[dict] = []
    errors: list[str] = []

    def sender():
        with app.app_context():
            try:
                barrier.wait()
                while True:  # one row per call: every send races for the cap
                    counts = wd.deliver_whatsapp_due(limit=1)
                    if not sum(counts.values()):
                        break
                    results.append(counts)
            except Exception as exc:  # reported below
                errors.append(repr(exc))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=sender) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    rows = wa_rows()
    statuses = sorted(m.status for m in rows)
    assert statuses == ["sent"] * cap_messages + ["skipped"] * (20 - cap_messages)
    assert {m.last_error for m in rows if m.status == "skipped"} == {wd.CAP_REASON}
    assert len(wa.sends) == cap_messages  # never one over
    ledger = charges()
    assert [c.state for c in ledger] == ["accepted"] * cap_messages
    assert sum(c.price_cents for c in ledger) == cap_messages * PRICE
    # each skipped message says so in its order's history; the owner is told once
    events = list(db.session.scalars(select(OrderEvent).where(OrderEvent.type == WHATSAPP_NOT_SENT)))
    assert sorted(e.details["reason"] for e in events) == [wd.CAP_REASON] * (20 - cap_messages)
    bell = list(db.session.scalars(select(DeskNotification)
                                   .where(DeskNotification.kind == "whatsapp_cap_reached")))
    assert [(n.user_id, n.read_at) for n in bell] == [(owner.id, None)]
    assert {o.id for o in variant_orders} == {m.order_id for m in rows}


def payload(*items):
    return {"object": "whatsapp_business_account", "entry": [{"id": "waba", "changes": [
        {"field": "messages", "value": {"messaging_product": "whatsapp",
                                        "statuses": list(items)}}]}]}


def status(wamid, state, ts, **extra):
    return {"id": wamid, "status": state, "timestamp": str(ts), "recipient_id": "85291234567",
            **extra}


FAILED_ERRORS = [{"code": 131047, "title": "Re-engagement message",
                  "message": "Re-engagement message"}]


def _sent_row(wa, make_order):
    order = make_order()
    wd.deliver_whatsapp_due()
    [row] = wa_rows(order.id)
    assert row.status == "sent"
    return row


def test_webhooks_out_of_order_and_twice_give_the_furthest_status(wa, make_order):
    row = _sent_row(wa, make_order)
    wamid = row.provider_id
    t = int(time.time())
    assert wd.record_status_updates(payload(status(wamid, "delivered", t + 2))) == 1
    assert fresh_row(row.id).delivery_status == "delivered"
    assert wd.record_status_updates(payload(status(wamid, "sent", t + 1))) == 1
    assert fresh_row(row.id).delivery_status == "delivered"  # never lowered
    assert wd.record_status_updates(payload(status(wamid, "read", t + 3),
                                            status(wamid, "read", t + 3))) == 1
    assert wd.record_status_updates(payload(status(wamid, "delivered", t + 2),
                                            status(wamid, "read", t + 3))) == 0  # replays
    fresh = fresh_row(row.id)
    assert (fresh.delivery_status, fresh.delivery_error) == ("read", "")
    assert fresh.delivery_at is not None
    # a "failed" after "read" changes nothing
    wd.record_status_updates(payload(status(wamid, "failed", t + 4, errors=FAILED_ERRORS)))
    assert fresh_row(row.id).delivery_status == "read"
    assert db.session.scalar(select(func.count()).select_from(WhatsAppStatus)) == 4


def test_a_failed_webhook_records_the_error_code_and_title(wa, make_order):
    row = _sent_row(wa, make_order)
    t = int(time.time())
    wd.record_status_updates(payload(status(row.provider_id, "sent", t)))
    wd.record_status_updates(payload(status(row.provider_id, "failed", t + 1,
                                            errors=FAILED_ERRORS)))
    fresh = fresh_row(row.id)
    assert (fresh.status, fresh.delivery_status, fresh.delivery_error) == (
        "sent", "failed", "131047 Re-engagement message")
    # the API accepted it: it stays billed
    assert [c.state for c in charges()] == ["accepted"]


def test_a_status_that_arrives_before_the_sends_commit_is_applied_at_the_commit(
        app, wa, make_order):
    order = make_order()
    [row] = wa_rows(order.id)
    real = whatsapp.client_from_config()

    class Early:
        def send_template(self, to, message):
            wamid = real.send_template(to, message)
            # the webhook lands, in another connection, before the worker records the send
            with app.app_context():
                stored = wd.record_status_updates(payload(
                    status(wamid, "delivered", int(time.time()))))
                db.session.remove()
            assert stored == 1
            return wamid

    wd.deliver_whatsapp_due(Early())
    real.close()
    fresh = fresh_row(row.id)
    assert (fresh.status, fresh.delivery_status) == ("sent", "delivered")


def test_statuses_of_a_message_not_known_yet_are_kept(wa):
    assert wd.record_status_updates(payload(status("wamid.elsewhere", "read", 1700000000))) == 1
    [kept] = db.session.scalars(select(WhatsAppStatus))
    assert (kept.provider_message_id, kept.status) == ("wamid.elsewhere", "read")
    assert kept.occurred_at.year == 2023


def test_the_fakes_signed_webhooks_reach_the_row(app, wa, make_order):
    feed(app, wa)
    read = make_order()
    failing = make_order(phone="6123 0410")
    assert wd.deliver_whatsapp_due()["sent"] == 2
    wa.wait_webhooks(4, timeout=10)
    time.sleep(0.1)
    [r] = wa_rows(read.id)
    [f] = wa_rows(failing.id)
    assert r.delivery_status == "read" and r.delivery_at is not None
    assert (f.status, f.delivery_status, f.delivery_error) == (
        "sent", "failed", "131047 Re-engagement message")


@pytest.mark.parametrize("body", [
    None, [], "text", {"entry": "x"}, {"entry": [{"changes": [{"value": {"statuses": "x"}}]}]},
    payload({"id": "w" * 129, "status": "read"}), payload({"id": "w1", "status": "deleted"}),
    payload({"id": 5, "status": "read"}), payload({"id": "w\n1", "status": "read"}),
    payload("not a status"),
])
def test_malformed_webhook_bodies_store_nothing(wa, body):
    assert wd.record_status_updates(body) == 0
    assert db.session.scalar(select(func.count()).select_from(WhatsAppStatus)) == 0


def test_hostile_values_are_cut_to_size(wa):
    item = status("wamid.x", "failed", "not a time",
                  errors=[{"code": "9" * 50, "title": "=HYPERLINK(\"x\")" + "t" * 1000}])
    assert wd.record_status_updates(payload(item)) == 1
    [kept] = db.session.scalars(select(WhatsAppStatus))
    assert kept.occurred_at is None and len(kept.error_code) == 20
    assert len(kept.error_title) == 500


def test_a_run_stops_claiming_after_its_time_and_says_there_is_more(wa, make_order):
    for _ in range(wd.CLAIM_BATCH + 2):
        make_order(email="")
    counts = wd.deliver_whatsapp_due(max_seconds=0)
    assert counts["sent"] == wd.CLAIM_BATCH and counts["more"] == 1
    assert sorted(m.status for m in wa_rows()) == ["pending"] * 2 + ["sent"] * wd.CLAIM_BATCH
    assert wd.deliver_whatsapp_due()["sent"] == 2


def test_the_cap_and_the_webhooks_on_postgres(pg_app, whatsapp_api):
    """The same guarantees where reserve locks the config row and a send's commit and
    a webhook for its message id take the same advisory lock."""
    from domain.models import OutboxMessage

    pg_app.config.update(WHATSAPP_SANDBOX_SERVER=True, PUBLIC_URL=whatsapp_api.base_url)
    whatsapp_api.on_webhook = lambda body, headers: 200
    with pg_app.app_context():
        db.session.execute(WhatsAppCharge.__table__.delete())
        db.session.execute(OutboxMessage.__table__.update().where(
            OutboxMessage.status.in_(("pending", "failed"))).values(status="dead"))
        db.session.commit()
        whatsapp_config.use_sandbox()
        whatsapp_config.activate()
        whatsapp_config.set_monthly_cap(f"{3 * PRICE / 100:.2f}")
        order_ids = [pg_order().id for _ in range(8)]
        db.session.remove()
    barrier = threading.Barrier(8)
    errors: list[str] = []

    def sender():
        with pg_app.app_context():
            try:
                barrier.wait()
                while sum(wd.deliver_whatsapp_due(limit=1).values()):
                    pass
            except Exception as exc:  # reported below
                errors.append(repr(exc))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=sender) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    with pg_app.app_context():
        try:
            rows = list(db.session.scalars(select(OutboxMessage).where(
                OutboxMessage.order_id.in_(order_ids), OutboxMessage.channel == "whatsapp")))
            assert sorted(m.status for m in rows) == ["sent"] * 3 + ["skipped"] * 5
            assert len(whatsapp_api.sends) == 3
            assert sum(c.price_cents for c in db.session.scalars(select(WhatsAppCharge))) \
                == 3 * PRICE
            wamid = next(m.provider_id for m in rows if m.status == "sent")
            t = int(time.time())
            assert wd.record_status_updates(payload(status(wamid, "read", t + 2),
                                                    status(wamid, "sent", t))) == 2
            assert wd.record_status_updates(payload(status(wamid, "delivered", t + 1),
                                                    status(wamid, "read", t + 2))) == 1
            db.session.rollback()
            row = db.session.scalar(select(OutboxMessage).where(OutboxMessage.provider_id == wamid))
            assert row.delivery_status == "read"
        finally:
            whatsapp_config.deactivate()
            db.session.remove()


def test_unreadable_credentials_send_nothing_and_hand_the_batch_back(app, wa, make_order):
    for _ in range(5):
        make_order(email="")
    app.config["SECRET_KEY"] = "another-key"  # the saved token can no longer be read
    try:
        counts = wd.deliver_whatsapp_due()
    finally:
        app.config["SECRET_KEY"] = "test-secret"
    assert counts["failed"] == wd.FAILURE_STREAK and counts["handed_back"] == 5 - wd.FAILURE_STREAK
    assert wa.sends == [] and charges() == []
    assert sorted(m.status for m in wa_rows()) == ["failed"] * 3 + ["pending"] * 2
    assert {m.attempts for m in wa_rows() if m.status == "pending"} == {0}


def test_an_unknown_outcome_sent_again_by_hand_is_billed_once(wa, make_order, staff_actor):
    order = make_order()
    [row] = wa_rows(order.id)

    class Broken:
        def send_template(self, to, message):
            raise RuntimeError("connection reset after the request left")

    assert wd.deliver_whatsapp_due(Broken())["unknown"] == 1
    assert fresh_row(row.id).status == "unknown"
    assert [c.state for c in charges()] == ["reserved"]
    outbox.retry_by_hand(row.id, actor=staff_actor)
    assert wd.deliver_whatsapp_due()["sent"] == 1
    assert [(c.state, c.price_cents) for c in charges()] == [("accepted", PRICE)]
    assert fresh_row(row.id).status == "sent" and len(wa.sends) == 1
