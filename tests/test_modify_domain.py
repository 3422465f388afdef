"""Modify order in the domain (issue 12), on a real SQLite file: who may modify when,
stock by the difference, refusals that change nothing, stale saves, the diff in both
languages, and the outbox rows the save writes (or, rolled back, does not)."""

from __future__ import annotations

import pytest
from flask_babel import force_locale
from sqlalchemy import select, update
from test_modify_domain_helpers import (
    STAFF,
    books_balance,
    events_of,
    fresh,
    keep,
    ledger_sum,
    set_plan,
    stock_of,
)

from domain import modify
from domain.db import db
from domain.errors import InsufficientStock, InvalidTransition, PlanRequired, ValidationError
from domain.models import Order, OutboxMessage, ShippingMethod, StockMove
from domain.modify import ModifyInput, StaleOrder, describe_changes, modify_order, modify_refusal
from domain.orders import confirm_payment, reject_order, ship_order, upload_proof
from domain.status import OrderStatus
from domain.store import get_settings

pytest_plugins = ["outbox_fixtures"]


@pytest.fixture
def advanced(app):
    set_plan("advanced")


def _in_status(make_order, status):
    order = make_order(payment="fps")
    if status in ("pending_confirmation", "processing", "completed"):
        upload_proof(order.id, path="p.png", sha256="0" * 64)
    if status in ("processing", "completed"):
        confirm_payment(order.id, actor=STAFF)
    if status == "completed":
        ship_order(order.id, actor=STAFF)
    if status == "canceled":
        reject_order(order.id, "out of stock", actor=STAFF)
    return fresh(order.id)


# ------------------------------------------------------------------ who and when

STATUSES = ["pending_payment", "pending_confirmation", "processing", "completed", "canceled"]


@pytest.mark.parametrize("plan", ["basic", "advanced", "video_commerce"])
@pytest.mark.parametrize("status", STATUSES)
def test_who_and_when_table(app, make_order, plan, status):
    # given an order in this status, on this plan
    order = _in_status(make_order, status)
    set_plan(plan)
    open_ = status in ("pending_payment", "pending_confirmation", "processing")
    # when / then: the refusal names the right reason
    refusal = modify_refusal(order)
    if not open_:
        assert refusal in (modify.COMPLETED_REFUSED, modify.CANCELED_REFUSED)
    elif plan == "basic":
        assert refusal == modify.PLAN_REQUIRED
    else:
        assert refusal is None
    # and a crafted save is refused the same way, changing nothing
    before = (order.total_cents, order.version, [ln.quantity for ln in order.lines])
    data = keep(order, discount_cents=100)
    if refusal is None:
        version = order.version
        saved = modify_order(order.id, data, expected_version=version, actor=STAFF)
        assert saved.version == version + 1 and saved.discount_cents == 100
    else:
        error = PlanRequired if refusal == modify.PLAN_REQUIRED else InvalidTransition
        with pytest.raises(error):
            modify_order(order.id, data, expected_version=order.version, actor=STAFF)
        after = fresh(order.id)
        assert (after.total_cents, after.version, [ln.quantity for ln in after.lines]) == before
        assert not events_of(order.id, "order_modified")


def test_a_draft_is_refused_even_by_a_crafted_call(app, advanced, make_variant):
    from domain.drafts import DraftInput, create_draft
    from domain.orders import CustomerDetails

    variant = make_variant()
    ship = db.session.scalar(select(ShippingMethod).where(ShippingMethod.kind == "delivery"))
    draft = create_draft(DraftInput(CustomerDetails("陳大文", "9123 4567", "", "旺角"),
                                    [(variant.id, 1)], ship.id), actor=STAFF)
    assert modify_refusal(draft) == modify.DRAFT_REFUSED
    with pytest.raises(InvalidTransition):
        modify_order(draft.id, keep(draft, discount_cents=1), expected_version=1, actor=STAFF)
    assert stock_of(variant.id) == 10


# ------------------------------------------------------------------ stock by the difference


def _variant_moves(variant_id):
    return [(m.delta, m.reason) for m in db.session.scalars(
        select(StockMove).where(StockMove.variant_id == variant_id).order_by(StockMove.id))]


def test_add_remove_increase_decrease_and_swap(app, advanced, make_variant, make_order):
    a = make_variant(name="原味曲奇", variant="", stock=10)
    b = make_variant(name="抹茶曲奇禮盒", variant="", stock=5)
    c = make_variant(name="朱古力曲奇", variant="大盒", stock=3)
    order = make_order(items=[(a.id, 2), (b.id, 1)])
    assert (stock_of(a.id), stock_of(b.id)) == (8, 4)
    line_a, line_b = order.lines

    # increase a by 3, decrease nothing, add c
    order = modify_order(order.id, ModifyInput(
        lines=(("line", line_a.id, 5), ("line", line_b.id, 1), ("variant", c.id, 2)),
        shipping_method_id=None, shipping_fee_cents=None), expected_version=1, actor=STAFF)
    assert (stock_of(a.id), stock_of(b.id), stock_of(c.id)) == (5, 4, 1)
    # the held unit of b did not move at all: no release-and-hold pair
    assert _variant_moves(b.id) == [(5, "opening"), (-1, "order_hold")]
    assert _variant_moves(a.id)[-1] == (-3, "modification")

    # decrease a to 1, remove b
    line_c = next(ln for ln in order.lines if ln.variant_id == c.id)
    order = modify_order(order.id, ModifyInput(
        lines=(("line", line_a.id, 1), ("line", line_c.id, 2)),
        shipping_method_id=None, shipping_fee_cents=None), expected_version=2, actor=STAFF)
    assert (stock_of(a.id), stock_of(b.id), stock_of(c.id)) == (9, 5, 1)

    # swap c (大盒 ×2) for b ×2: a removal plus an addition
    order = modify_order(order.id, ModifyInput(
        lines=(("line", line_a.id, 1), ("line", line_c.id, 0), ("variant", b.id, 2)),
        shipping_method_id=None, shipping_fee_cents=None), expected_version=3, actor=STAFF)
    assert (stock_of(a.id), stock_of(b.id), stock_of(c.id)) == (9, 3, 3)
    assert sorted((ln.product_name, ln.quantity) for ln in order.lines) == [
        ("原味曲奇", 1), ("抹茶曲奇禮盒", 2)]
    assert order.subtotal_cents == 3 * 12800 and order.version == 4
    # every modification row names the order; the ledger sums to the stock
    numbers = set(db.session.scalars(select(StockMove.order_number)
                                     .where(StockMove.reason == "modification")))
    assert numbers == {order.number}
    for v in (a, b, c):
        assert ledger_sum(v.id) == stock_of(v.id)
    assert books_balance()


def test_adding_an_item_already_on_the_order_adds_to_its_line(app, advanced, make_variant,
                                                              make_order):
    a = make_variant(stock=10, price_cents=5000)
    order = make_order(items=[(a.id, 1)])
    a.price_cents = 9900  # the shop raised the price since
    db.session.commit()
    order = modify_order(order.id, keep(order, lines=(("line", order.lines[0].id, 1),
                                                      ("variant", a.id, 2))),
                         expected_version=1, actor=STAFF)
    [line] = order.lines
    assert line.quantity == 3 and line.unit_price_cents == 5000
    assert stock_of(a.id) == 7 and books_balance()


def test_not_enough_stock_refuses_everything_and_names_the_item(app, advanced, make_variant,
                                                                make_order):
    a = make_variant(name="原味曲奇", variant="", stock=10)
    last = make_variant(name="抹茶曲奇禮盒", variant="限量", stock=1)
    order = make_order(items=[(a.id, 2)])
    data = keep(order, lines=(("line", order.lines[0].id, 1), ("variant", last.id, 2)),
                discount_cents=500)
    # the preview says so without raising...
    preview = modify.preview(order.id, data)
    assert [type(p) for p in preview.problems] == [InsufficientStock]
    assert "抹茶曲奇禮盒 (限量)" in str(preview.problems[0])
    # ...and the save refuses the whole change
    with pytest.raises(InsufficientStock, match="抹茶曲奇禮盒"):
        modify_order(order.id, data, expected_version=1, actor=STAFF)
    after = fresh(order.id)
    assert [ln.quantity for ln in after.lines] == [2] and after.discount_cents == 0
    assert after.version == 1 and (stock_of(a.id), stock_of(last.id)) == (8, 1)
    assert not events_of(order.id, "order_modified") and books_balance()


def test_stock_taken_by_someone_else_after_the_preview_is_still_refused(
        app, advanced, make_variant, make_order):
    a = make_variant(stock=3)
    order = make_order(items=[(a.id, 1)])
    data = keep(order, lines=(("line", order.lines[0].id, 3),))
    assert modify.preview(order.id, data).problems == []
    make_order(items=[(a.id, 1)])  # another customer buys one
    with pytest.raises(InsufficientStock):
        modify_order(order.id, data, expected_version=1, actor=STAFF)
    assert stock_of(a.id) == 1 and books_balance()


def test_unlimited_items_move_nothing(app, advanced, make_variant, make_order):
    free = make_variant(stock=None)
    order = make_order(items=[(free.id, 1)])
    modify_order(order.id, keep(order, lines=(("line", order.lines[0].id, 50),)),
                 expected_version=1, actor=STAFF)
    assert stock_of(free.id) is None and books_balance()


# ------------------------------------------------------------------ hostile input


@pytest.mark.parametrize("lines,message", [
    ((), "no items"),
    ((("line", 999999, 1),), "not on this order"),
    ((("variant", 999999, 1),), "no longer for sale"),
    ((("bogus", 1, 1),), "not on this order"),
    ((("line", "x", 1),), "not on this order"),
    ((("variant", None, 1),), "not on this order"),
])
def test_bad_lines_are_refused(app, advanced, make_order, lines, message):
    order = make_order()
    data = ModifyInput(lines=lines, shipping_method_id=None, shipping_fee_cents=None)
    assert any(message in str(p) for p in modify.preview(order.id, data).problems)
    with pytest.raises(ValidationError, match=message):
        modify_order(order.id, data, expected_version=1, actor=STAFF)
    assert fresh(order.id).version == 1


@pytest.mark.parametrize("changes,message", [
    (dict(discount_cents=10**9), "Discount cannot be more"),
    (dict(discount_cents=-1), "Discount must be between"),
    (dict(shipping_fee_cents=-5), "Shipping fee must be between"),
    (dict(extra_charge_cents=10**12), "Extra charge must be between"),
    (dict(extra_charge_cents=100, extra_charge_label="x" * 81), "at most"),
    (dict(shipping_method_id=999999), "available shipping method"),
])
def test_bad_money_and_shipping_are_refused(app, advanced, make_order, changes, message):
    order = make_order()
    with pytest.raises(ValidationError, match=message):
        modify_order(order.id, keep(order, **changes), expected_version=1, actor=STAFF)


def test_quantities_out_of_range_and_another_orders_line(app, advanced, make_order):
    order, other = make_order(), make_order()
    for lines in ((("line", order.lines[0].id, -1),), (("line", order.lines[0].id, 1000),),
                  (("line", other.lines[0].id, 1),)):
        with pytest.raises(ValidationError):
            modify_order(order.id, ModifyInput(lines, None, None), expected_version=1,
                         actor=STAFF)
    assert [ln.quantity for ln in fresh(other.id).lines] == [1]


def test_saving_nothing_changed_is_refused(app, advanced, make_order):
    order = make_order()
    with pytest.raises(ValidationError, match="Nothing to save"):
        modify_order(order.id, keep(order), expected_version=1, actor=STAFF)


def test_a_save_against_an_old_version_is_stale(app, advanced, make_order):
    order = make_order(quantity=2)
    modify_order(order.id, keep(order, discount_cents=100), expected_version=1, actor=STAFF)
    with pytest.raises(StaleOrder, match="reload"):
        modify_order(order.id, keep(order, discount_cents=200), expected_version=1, actor=STAFF)
    assert fresh(order.id).discount_cents == 100


# ------------------------------------------------------------------ totals and shipping


def test_totals_follow_checkout_rules_and_the_fee_override(app, advanced, make_order):
    order = make_order(quantity=2)  # 2 × 128 + local delivery 30 = 286
    assert order.total_cents == 28600
    sf = db.session.scalar(select(ShippingMethod).where(ShippingMethod.kind == "logistics"))
    pv = modify.preview(order.id, keep(order, shipping_method_id=sf.id))
    assert (pv.shipping_fee_cents, pv.fee_overridden, pv.total_cents) == (4000, False, 29600)
    pv = modify.preview(order.id, keep(order, shipping_method_id=sf.id, shipping_fee_cents=4500,
                                       extra_charge_cents=1000, extra_charge_label="Gift wrap",
                                       discount_cents=2000))
    assert (pv.total_cents, pv.fee_overridden, pv.old_total_cents) == (25600 + 4500 + 1000 - 2000,
                                                                       True, 28600)
    saved = modify_order(order.id, keep(order, shipping_method_id=sf.id, shipping_fee_cents=4500,
                                        extra_charge_cents=1000, extra_charge_label="Gift wrap",
                                        discount_cents=2000), expected_version=1, actor=STAFF)
    assert (saved.total_cents, saved.shipping_kind, saved.extra_charge_label) == (
        pv.total_cents, "logistics", "Gift wrap")
    assert saved.payment_deadline_at == order.payment_deadline_at  # unchanged


# ------------------------------------------------------------------ the diff


def test_the_diff_in_both_languages(app, advanced, make_variant, make_order):
    plain = make_variant(name="曲奇禮盒", variant="原味", stock=10)
    matcha = make_variant(name="抹茶曲奇禮盒", variant="", stock=10)
    order = make_order(items=[(plain.id, 2)])  # 256 + 30 = 286
    sf = db.session.scalar(select(ShippingMethod).where(ShippingMethod.kind == "logistics"))
    saved = modify_order(order.id, keep(order, lines=(("variant", matcha.id, 1),),
                                        shipping_method_id=sf.id, shipping_fee_cents=4500),
                         expected_version=1, actor=STAFF)
    [event] = events_of(order.id, "order_modified")
    d = event.details
    assert d["added"] == [{"name": "抹茶曲奇禮盒", "variant": "", "sku": matcha.sku,
                           "quantity": 1, "unit_price_cents": 12800}]
    assert d["removed"][0]["quantity"] == 2 and d["version"] == 2
    assert d["shipping"] == {"old_method": "Local delivery",
                             "new_method": "SF Express (auto waybill)",
                             "old_fee_cents": 3000, "new_fee_cents": 4500}
    assert d["total"] == {"old_cents": 28600, "new_cents": saved.total_cents}
    with force_locale("en"):
        assert describe_changes(d) == [
            "+1 抹茶曲奇禮盒 (HK$128.00)", "− 曲奇禮盒 (原味) ×2",
            "Shipping Local delivery HK$30.00 → SF Express (auto waybill) HK$45.00",
            "Total HK$286.00 → HK$173.00"]
    with force_locale("zh_Hant_HK"):
        assert describe_changes(d) == [
            "+1 抹茶曲奇禮盒 (HK$128.00)", "− 曲奇禮盒 (原味) ×2",
            "運費 本地送貨 HK$30.00 → 順豐速運（自動運單） HK$45.00",
            "總額 HK$286.00 → HK$173.00"]


def test_quantity_discount_and_extra_lines(app, advanced, make_order):
    order = make_order(quantity=2)
    modify_order(order.id, keep(order, lines=(("line", order.lines[0].id, 3),),
                                discount_cents=1000, extra_charge_cents=500,
                                extra_charge_label="<b>禮盒包裝</b>"),
                 expected_version=1, actor=STAFF)
    [event] = events_of(order.id, "order_modified")
    with force_locale("zh_Hant_HK"):
        lines = describe_changes(event.details)
    assert lines == ["曲奇禮盒 (原味) 數量 2 → 3", "折扣 HK$0.00 → HK$10.00",
                     "附加費用 HK$0.00 → <b>禮盒包裝</b> HK$5.00",
                     "總額 HK$286.00 → HK$409.00"]
    assert describe_changes({}) == [] and describe_changes(None) == []


# ------------------------------------------------------------------ the outbox


def test_the_save_writes_the_customer_message_and_a_rollback_writes_none(
        shop, advanced, make_variant, make_order):
    order = make_order(quantity=1)
    modify_order(order.id, keep(order, discount_cents=100), expected_version=1, actor=STAFF)
    [event] = events_of(order.id, "order_modified")
    rows = db.session.scalars(select(OutboxMessage).where(OutboxMessage.event_id == event.id)).all()
    assert [(r.channel, r.kind, r.recipient) for r in rows] == [
        ("email", "order_updated", "tai.man@example.hk")]
    # a refused save (not enough stock) writes no event and no message
    scarce = make_variant(stock=0)
    count = db.session.query(OutboxMessage).count()
    with pytest.raises(InsufficientStock):
        modify_order(order.id, keep(fresh(order.id), lines=(("variant", scarce.id, 1),)),
                     expected_version=2, actor=STAFF)
    assert db.session.query(OutboxMessage).count() == count
    assert len(events_of(order.id, "order_modified")) == 1


def test_a_status_change_between_load_and_save_is_seen_in_the_transaction(
        app, advanced, make_order):
    order = make_order()
    # someone completes the order behind the editor's back
    db.session.execute(update(Order).where(Order.id == order.id)
                       .values(status=OrderStatus.COMPLETED.value))
    db.session.commit()
    with pytest.raises(InvalidTransition, match="completed"):
        modify_order(order.id, keep(order, discount_cents=1), expected_version=1, actor=STAFF)
    assert get_settings().plan == "advanced"


def test_preview_keeps_a_line_with_a_bad_quantity_as_it_was(app, advanced, make_order):
    order = make_order(quantity=2)
    pv = modify.preview(order.id, keep(order, lines=(("line", order.lines[0].id, 5000),)))
    assert [ln.quantity for ln in pv.lines] == [2] and pv.problems
    assert pv.version == 1 and pv.total_cents == order.total_cents and not pv.changed


def test_preview_of_a_refused_order_names_the_refusal(app, make_order):
    set_plan("basic")
    order = make_order()
    with force_locale("en"):
        pv = modify.preview(order.id, keep(order, discount_cents=100))
    assert isinstance(pv.problems[0], PlanRequired) and pv.total_cents == order.total_cents - 100
    assert pv.changes == ["Discount HK$0.00 → HK$1.00", "Total HK$158.00 → HK$157.00"]


def test_an_archived_item_can_be_reduced_but_not_increased(app, advanced, make_variant,
                                                          make_order):
    old = make_variant(stock=10)
    order = make_order(items=[(old.id, 2)])
    old.product.active = False
    db.session.commit()
    line = order.lines[0].id
    with pytest.raises(ValidationError, match="no longer for sale"):
        modify_order(order.id, keep(order, lines=(("line", line, 3),)), expected_version=1,
                     actor=STAFF)
    modify_order(order.id, keep(order, lines=(("line", line, 1),)), expected_version=1,
                 actor=STAFF)
    assert stock_of(old.id) == 9 and books_balance()
