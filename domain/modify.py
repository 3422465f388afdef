"""Modify order (SPEC §5, §8; issue 12): one guarded action changes an open order's
lines, shipping, discount and extra charge, moves stock by the difference only, and
writes a readable diff to history and the outbox.

Interface (the editor in blueprints/modify calls only these):

- ``ModifyInput``: what the editor sends.
- ``modify_refusal(order) -> str | None``: None when the order may be modified now,
  else a message id saying why (plan, status, draft); ``PLAN_REQUIRED`` is the plan's.
- ``preview(order_id, data) -> ModifyPreview``: the new lines, totals, diff and money
  after the change, computed exactly as saving would; writes nothing.
- ``modify_order(order_id, data, *, expected_version, actor, now=None) -> Order``.
- ``StaleOrder``: raised when ``expected_version`` is not the order's version.
- ``describe_changes(details) -> list[str]``: an ``order_modified`` event's diff as
  text lines in the current language (``+1 抹茶曲奇禮盒 (HK$128.00)``).

Both preview and save run ``_plan``: the same lines, totals and diff, so what the
merchant saw is what is saved. Preview collects refusals as ``problems``; saving
raises the first one. Stock moves only by the per-variant difference between the
old and the new lines (domain.inventory.hold_stock, reason "modification"): a unit
held before and after is never released and held again.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask_babel import get_translations
from sqlalchemy import delete, select, update

from domain.actors import Actor
from domain.balance import balance_after
from domain.checkout import MAX_LINES, MAX_QUANTITY, compute_totals
from domain.db import db, write_transaction
from domain.errors import (
    DomainError,
    InsufficientStock,
    InvalidTransition,
    NotFound,
    PlanRequired,
    ValidationError,
)
from domain.i18n import L_, N_, bound_translations
from domain.inventory import hold_stock
from domain.models import Order, OrderLine, Product, ShippingMethod, Variant
from domain.money import format_money
from domain.orders import _event, _locked_order, _now
from domain.status import DeliveryStatus, OrderStatus, can_modify_order
from domain.store import clean_text, get_settings

# Plans whose stores may modify orders (domain.store.PLANS).
MODIFY_PLANS = frozenset({"advanced", "video_commerce"})

# modify_refusal's answers: whole sentences without parameters (the editor shows _(id)).
PLAN_REQUIRED = N_("Modifying an order needs the Advanced or Video Commerce plan. The "
                   "store owner can change the plan in Settings → Store.")
DRAFT_REFUSED = N_("This order is not placed yet: change it in the draft builder.")
COMPLETED_REFUSED = N_("This order is completed: it can no longer be modified.")
CANCELED_REFUSED = N_("This order is canceled: it can no longer be modified.")
STALE = N_("This order changed meanwhile; reload it and make your changes again.")
NOTHING_CHANGED = N_("Nothing to save: the order is as it was.")

# The diff's words (describe_changes); %(old)s / %(new)s are "<method> <fee>" or money.
SHIPPING_CHANGE = N_("Shipping %(old)s → %(new)s")
DISCOUNT_CHANGE = N_("Discount %(old)s → %(new)s")
EXTRA_CHANGE = N_("Extra charge %(old)s → %(new)s")
TOTAL_CHANGE = N_("Total %(old)s → %(new)s")
QUANTITY_CHANGE = N_("%(item)s ×%(old)s → ×%(new)s")


class ModifyRefused(InvalidTransition):
    """Not now: one of modify_refusal's message ids (marked above)."""

    def __init__(self, msgid: str):
        super().__init__(msgid)


class ModifyPlanRequired(PlanRequired):
    """The store's plan does not include modifying orders."""

    def __init__(self):
        super().__init__(PLAN_REQUIRED)


class NothingChanged(ValidationError):
    def __init__(self):
        super().__init__(NOTHING_CHANGED)


class StaleOrder(InvalidTransition):
    """Someone saved this order after the editor loaded it: nothing was changed."""

    def __init__(self):
        super().__init__(STALE)


@dataclass(frozen=True)
class ModifyInput:
    # The order's lines after the change, in order. ("line", order_line_id, qty) keeps
    # an existing line at a quantity (0 removes it); ("variant", variant_id, qty) adds
    # a product. A variant swap is a removal plus an addition. An existing line not
    # listed is removed. Adding an item the order already has (on a kept line) adds to
    # that line, at the price the customer was given.
    lines: tuple[tuple[str, int, int], ...]
    shipping_method_id: int | None  # None: keep the order's method
    # None: the shipping method's own fee; a number: the merchant typed this fee.
    shipping_fee_cents: int | None
    discount_cents: int = 0
    extra_charge_cents: int = 0
    extra_charge_label: str = ""


@dataclass
class PreviewLine:
    key: str  # "line:<order line id>" or "variant:<variant id>" (an added item)
    product_name: str
    variant_name: str
    sku: str
    unit_price_cents: int
    quantity: int
    line_total_cents: int
    available: int | None  # units left in stock for more; None: unlimited
    variant_id: int | None = None
    old_quantity: int = 0  # on the order before the change (0: added)


@dataclass
class ModifyPreview:
    lines: list[PreviewLine]
    subtotal_cents: int
    discount_cents: int
    shipping_fee_cents: int
    fee_overridden: bool
    extra_charge_cents: int
    extra_charge_label: str
    total_cents: int
    old_total_cents: int
    shipping_method_name: str
    changes: list[str]
    problems: list[DomainError]
    balance: Any  # domain.balance.BalanceState after the change
    version: int
    details: dict[str, Any] = field(default_factory=dict)  # what the event would store

    @property
    def changed(self) -> bool:
        return _changed(self.details)


# ------------------------------------------------------------------ who and when


def modify_refusal(order: Order) -> str | None:
    """None when this order may be modified now, else the message id saying why."""
    if order.kind != "placed":
        return DRAFT_REFUSED
    if not can_modify_order(order):
        return COMPLETED_REFUSED if order.status == OrderStatus.COMPLETED else CANCELED_REFUSED
    if (get_settings().plan or "basic") not in MODIFY_PLANS:
        return PLAN_REQUIRED
    return None


def _check_allowed(order: Order) -> None:
    refusal = modify_refusal(order)
    if refusal == PLAN_REQUIRED:
        raise ModifyPlanRequired()
    if refusal:
        raise ModifyRefused(refusal)


# ------------------------------------------------------------------ the plan


def _label(name: str, variant: str) -> str:
    return f"{name} ({variant})" if variant else name


@dataclass
class _Plan:
    preview: ModifyPreview
    kept: dict[int, int]  # order line id -> new quantity, additions merged in (0: removed)
    added: list[PreviewLine]
    deltas: dict[int, int]  # variant id -> units to take (negative: give back)
    values: dict[str, Any]  # the order's new columns


def _plan(order: Order, data: ModifyInput) -> _Plan:
    """The order after ``data``, its stock deltas, totals and diff; refusals are
    collected in ``preview.problems`` (the first is raised on save)."""
    problems: list[DomainError] = []
    own = {line.id: line for line in order.lines}
    kept: dict[int, int] = {}
    wanted_adds: list[tuple[int, int]] = []
    for entry in data.lines or ():
        try:
            kind, ref, qty = entry
            ref, qty = int(ref), int(qty)
        except (TypeError, ValueError):
            problems.append(ValidationError("One of the lines is not on this order."))
            continue
        low = 0 if kind == "line" else 1
        if not low <= qty <= MAX_QUANTITY:
            problems.append(ValidationError("Quantities must be between 1 and %(max)s.",
                                            max=MAX_QUANTITY))
            if kind == "line" and ref in own:  # shown as it was, not as removed
                kept.setdefault(ref, own[ref].quantity)
            continue
        if kind == "line" and ref in own and ref not in kept:
            kept[ref] = qty
        elif kind == "variant":
            wanted_adds.append((ref, qty))
        else:
            problems.append(ValidationError("One of the lines is not on this order."))
    for line_id in own:
        kept.setdefault(line_id, 0)  # not listed: removed

    variant_ids = {vid for vid, _q in wanted_adds} | {ln.variant_id for ln in own.values()
                                                      if ln.variant_id}
    variants = {v.id: v for v in db.session.scalars(
        select(Variant).join(Product).where(Variant.id.in_(variant_ids)))} if variant_ids else {}

    # New quantities per line: kept lines, then additions merged into a kept line of
    # the same item, else into one new line per item.
    new_qty = {line_id: qty for line_id, qty in kept.items()}
    by_variant = {own[lid].variant_id: lid for lid, q in kept.items()
                  if q and own[lid].variant_id}
    adds: dict[int, int] = {}
    for variant_id, qty in wanted_adds:
        variant = variants.get(variant_id)
        if variant is None or not (variant.active and variant.product.active):
            problems.append(ValidationError("One of the items is no longer for sale."))
            continue
        if variant_id in by_variant:
            new_qty[by_variant[variant_id]] += qty
        else:
            adds[variant_id] = adds.get(variant_id, 0) + qty

    old_per_variant: Counter[int] = Counter()
    new_per_variant: Counter[int] = Counter()
    for line_id, line in own.items():
        if line.variant_id:
            old_per_variant[line.variant_id] += line.quantity
            new_per_variant[line.variant_id] += new_qty[line_id]
    for variant_id, qty in adds.items():
        new_per_variant[variant_id] += qty
    deltas = {vid: new_per_variant[vid] - old_per_variant[vid]
              for vid in set(old_per_variant) | set(new_per_variant)
              if new_per_variant[vid] != old_per_variant[vid]}

    def available(variant_id: int | None) -> int | None:
        variant = variants.get(variant_id) if variant_id else None
        if variant is None:
            return 0
        if variant.stock is None:
            return None
        return max(0, variant.stock - deltas.get(variant_id, 0))

    for variant_id, qty in new_per_variant.items():
        if qty > MAX_QUANTITY:
            name = variants[variant_id].display_name if variant_id in variants else ""
            problems.append(ValidationError("An order can have at most %(max)d of %(item)s.",
                                            max=MAX_QUANTITY, item=name))
    for variant_id, delta in sorted(deltas.items()):
        variant = variants.get(variant_id)
        if delta > 0 and variant is not None and not (variant.active and variant.product.active):
            # archived since it was ordered: the units held stay, no more are sold
            problems.append(ValidationError("One of the items is no longer for sale."))
        elif delta > 0 and variant is not None and variant.stock is not None \
                and variant.stock < delta:
            problems.append(InsufficientStock(_label(variant.product.name, variant.name),
                                              delta, variant.stock))

    lines: list[PreviewLine] = []
    for line_id, line in own.items():
        if new_qty[line_id]:
            lines.append(PreviewLine(
                f"line:{line_id}", line.product_name, line.variant_name, line.sku,
                line.unit_price_cents, new_qty[line_id],
                line.unit_price_cents * new_qty[line_id], available(line.variant_id),
                line.variant_id, line.quantity))
    added = []
    for variant_id, qty in adds.items():
        variant = variants[variant_id]
        added.append(PreviewLine(
            f"variant:{variant_id}", variant.product.name, variant.name, variant.sku,
            variant.price_cents, qty, variant.price_cents * qty, available(variant_id),
            variant_id, 0))
    lines += added
    if not lines:
        problems.append(ValidationError("The order has no items."))
    if len(lines) > MAX_LINES:
        problems.append(ValidationError("An order can have at most %(max)s lines.",
                                        max=MAX_LINES))

    # Shipping: the order's own method (even if switched off since), or an enabled one.
    method_id = data.shipping_method_id or order.shipping_method_id
    method = db.session.get(ShippingMethod, method_id) if method_id else None
    if method_id != order.shipping_method_id and (method is None or not method.enabled):
        problems.append(ValidationError("Choose an available shipping method."))
        method, method_id = None, order.shipping_method_id
    same_method = method_id == order.shipping_method_id
    method_name = order.shipping_method_name if same_method else method.name
    method_kind = order.shipping_kind if same_method else method.kind
    overridden = data.shipping_fee_cents is not None
    if overridden:
        fee = int(data.shipping_fee_cents)
    elif method is not None:
        fee = method.fee_cents
    else:
        fee = order.shipping_fee_cents

    discount = int(data.discount_cents or 0)
    extra = int(data.extra_charge_cents or 0)
    extra_label = ""
    if extra:
        try:
            extra_label = clean_text(data.extra_charge_label, L_("Extra charge label"),
                                     max_len=80)
        except ValidationError as exc:
            problems.append(exc)
    subtotal = sum(line.line_total_cents for line in lines)
    try:
        total = compute_totals(subtotal, discount, fee, extra)
    except ValidationError as exc:
        problems.append(exc)
        total = subtotal - discount + fee + extra

    values = dict(subtotal_cents=subtotal, discount_cents=discount, shipping_fee_cents=fee,
                  extra_charge_cents=extra, extra_charge_label=extra_label, total_cents=total,
                  shipping_method_id=method_id, shipping_method_name=method_name,
                  shipping_kind=method_kind)
    if method_kind != "pickup" and order.delivery_status == DeliveryStatus.READY_FOR_PICKUP:
        # Switched from pickup to delivery after "ready": it has to be shipped now.
        values["delivery_status"] = DeliveryStatus.UNFULFILLED.value

    details = _diff(order, own, new_qty, added, values)
    state = balance_after(order, total)
    details.update(version=order.version + 1, from_version=order.version,
                   balance={"kind": state.kind, "cents": state.cents},
                   stock=[{"variant_id": vid, "delta": -delta} for vid, delta
                          in sorted(deltas.items())])
    preview = ModifyPreview(
        lines=lines, subtotal_cents=subtotal, discount_cents=discount, shipping_fee_cents=fee,
        fee_overridden=overridden, extra_charge_cents=extra, extra_charge_label=extra_label,
        total_cents=total, old_total_cents=order.total_cents,
        shipping_method_name=method_name, changes=describe_changes(details),
        problems=problems, balance=state, version=order.version, details=details)
    return _Plan(preview, new_qty, added, deltas, values)


def _item(line, quantity: int) -> dict[str, Any]:
    return {"name": line.product_name, "variant": line.variant_name, "sku": line.sku,
            "quantity": quantity, "unit_price_cents": line.unit_price_cents}


def _diff(order: Order, own: dict[int, OrderLine], new_qty: dict[int, int],
          added: list[PreviewLine], values: dict[str, Any]) -> dict[str, Any]:
    """The structured diff stored in the order_modified event (rendered by
    describe_changes in the reader's language)."""
    details: dict[str, Any] = {"added": [], "removed": [], "changed": []}
    for line_id, line in own.items():
        qty = new_qty[line_id]
        if qty == 0:
            details["removed"].append(_item(line, line.quantity))
        elif qty != line.quantity:
            details["changed"].append(_item(line, qty) | {"old_quantity": line.quantity})
    details["added"] = [_item(line, line.quantity) for line in added]
    if (values["shipping_method_id"] != order.shipping_method_id
            or values["shipping_fee_cents"] != order.shipping_fee_cents):
        details["shipping"] = {
            "old_method": order.shipping_method_name, "new_method": values["shipping_method_name"],
            "old_fee_cents": order.shipping_fee_cents, "new_fee_cents": values["shipping_fee_cents"]}
    if values["discount_cents"] != order.discount_cents:
        details["discount"] = {"old_cents": order.discount_cents,
                               "new_cents": values["discount_cents"]}
    if (values["extra_charge_cents"] != order.extra_charge_cents
            or values["extra_charge_label"] != (order.extra_charge_label or "")):
        details["extra_charge"] = {
            "old_cents": order.extra_charge_cents, "new_cents": values["extra_charge_cents"],
            "old_label": order.extra_charge_label or "", "new_label": values["extra_charge_label"]}
    details["total"] = {"old_cents": order.total_cents, "new_cents": values["total_cents"]}
    return details


def _changed(details: dict[str, Any]) -> bool:
    return any(details.get(key) for key in
               ("added", "removed", "changed", "shipping", "discount", "extra_charge"))


# ------------------------------------------------------------------ preview and save


def preview(order_id: int, data: ModifyInput) -> ModifyPreview:
    """What saving ``data`` would make of the order; writes nothing, never raises for a
    refusal of the change itself (those are in ``problems``)."""
    order = db.session.get(Order, order_id)
    if order is None:
        raise NotFound("Order not found.")
    result = _plan(order, data).preview
    refusal = modify_refusal(order)
    if refusal:
        result.problems.insert(0, ModifyPlanRequired() if refusal == PLAN_REQUIRED
                               else ModifyRefused(refusal))
    return result


def modify_order(order_id: int, data: ModifyInput, *, expected_version: int, actor: Actor,
                 now: datetime | None = None) -> Order:
    """Save the change: one transaction, or nothing at all.

    Refused (and nothing changes) when the order may not be modified, when it was
    saved by someone else since ``expected_version`` (StaleOrder), when an item has
    too few units left (InsufficientStock naming it), or when the totals do not add up.
    """
    now = _now(now)
    with write_transaction():
        order = _locked_order(order_id)
        _check_allowed(order)
        if expected_version is None or int(expected_version) != order.version:
            raise StaleOrder()
        plan = _plan(order, data)
        if plan.preview.problems:
            raise plan.preview.problems[0]
        if not plan.preview.changed:
            raise NothingChanged()
        # The guard: this version, this status. A loser of any race changes nothing.
        result = db.session.execute(
            update(Order).where(Order.id == order_id, Order.kind == "placed",
                                Order.version == order.version, Order.status == order.status)
            .values(version=order.version + 1, updated_at=now, **plan.values)
            .execution_options(synchronize_session=False))
        if result.rowcount != 1:
            raise StaleOrder()
        removed = [line_id for line_id, qty in plan.kept.items() if qty == 0]
        if removed:
            db.session.execute(delete(OrderLine).where(OrderLine.id.in_(removed))
                               .execution_options(synchronize_session=False))
        for line_id, qty in plan.kept.items():
            if qty:
                db.session.execute(update(OrderLine).where(OrderLine.id == line_id)
                                   .values(quantity=qty)
                                   .execution_options(synchronize_session=False))
        for line in plan.added:
            variant = db.session.get(Variant, line.variant_id)
            db.session.add(OrderLine(
                order_id=order_id, variant_id=variant.id, product_id=variant.product_id,
                product_name=line.product_name, variant_name=line.variant_name, sku=line.sku,
                barcode=variant.barcode, unit_price_cents=line.unit_price_cents,
                quantity=line.quantity))
        db.session.flush()
        # Only the difference moves; InsufficientStock here rolls everything back.
        hold_stock(plan.deltas.items(), order=order, actor=actor, reason="modification")
        _event(order_id, "order_modified", actor, plan.preview.details, now)
    db.session.expire_all()
    return db.session.get(Order, order_id)


# ------------------------------------------------------------------ the diff in words


def gettext(msgid: str, **variables) -> str:
    """Flask-Babel's translation in the current language (a request's, force_locale's,
    or the batch's bound by domain.notify.email.in_language); English without one."""
    translations = bound_translations()
    if translations is None:
        try:
            translations = get_translations()
        except RuntimeError:  # no request and no forced locale: the message id
            translations = None
    text = translations.ugettext(msgid) if translations is not None else msgid
    return text % variables if variables else text


def _money(cents) -> str:
    return format_money(int(cents or 0), get_settings().currency or "HKD")


def _stored(text: str) -> str:
    """A stored built-in name (a message id) in the reader's language; a merchant's own
    text comes back as typed (blueprints/i18n.stored_text does the same)."""
    return gettext(text) if text else ""


def _with_price(quantity: int, unit: int) -> str:
    return _money(unit) if quantity == 1 else f"{quantity} × {_money(unit)}"


def describe_changes(details: dict[str, Any]) -> list[str]:
    """An order_modified event's diff as lines of text in the current language."""
    details = details or {}
    out = []
    for item in details.get("added") or ():
        label = _label(item.get("name", ""), item.get("variant", ""))
        qty = int(item.get("quantity") or 0)
        out.append(f"+{qty} {label} ({_with_price(qty, item.get('unit_price_cents'))})")
    for item in details.get("removed") or ():
        label = _label(item.get("name", ""), item.get("variant", ""))
        out.append(f"− {label} ×{int(item.get('quantity') or 0)}")
    for item in details.get("changed") or ():
        out.append(gettext(QUANTITY_CHANGE,
                           item=_label(item.get("name", ""), item.get("variant", "")),
                           old=item.get("old_quantity"), new=item.get("quantity")))
    shipping = details.get("shipping")
    if shipping:
        old = f"{_stored(shipping.get('old_method') or '')} {_money(shipping.get('old_fee_cents'))}"
        new = f"{_stored(shipping.get('new_method') or '')} {_money(shipping.get('new_fee_cents'))}"
        out.append(gettext(SHIPPING_CHANGE, old=old.strip(), new=new.strip()))
    discount = details.get("discount")
    if discount:
        out.append(gettext(DISCOUNT_CHANGE, old=_money(discount.get("old_cents")),
                           new=_money(discount.get("new_cents"))))
    extra = details.get("extra_charge")
    if extra:
        old = f"{extra.get('old_label') or ''} {_money(extra.get('old_cents'))}".strip()
        new = f"{extra.get('new_label') or ''} {_money(extra.get('new_cents'))}".strip()
        out.append(gettext(EXTRA_CHANGE, old=old, new=new))
    total = details.get("total")
    if total and total.get("old_cents") != total.get("new_cents"):
        out.append(gettext(TOTAL_CHANGE, old=_money(total.get("old_cents")),
                           new=_money(total.get("new_cents"))))
    return out
