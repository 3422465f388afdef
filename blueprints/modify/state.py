"""What the modify editor sent, read and checked: its lines (parallel ``key`` / ``qty``
fields), the button pressed (``op``) and the amounts, turned into a domain ModifyInput.

Every value is hostile until checked here: keys must be ``line:<id of one of this
order's lines>`` or ``variant:<id>``, quantities whole numbers in range. Unknown
variants and stock are the domain's to refuse (preview / modify_order)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from flask_babel import gettext as _

from blueprints.i18n import translate_error
from domain.db import db
from domain.errors import DomainError
from domain.i18n import L_
from domain.models import ShippingMethod, Variant
from domain.modify import ModifyInput
from domain.money import cents_to_input, parse_money
from domain.orders import MAX_QUANTITY

MAX_LINES = 100
KEY = re.compile(r"(line|variant):([0-9]{1,9})")
OP = re.compile(r"(add|remove|undo):((?:line|variant):[0-9]{1,9}|[0-9]{1,9})|search|refresh")


@dataclass
class EditorState:
    """The editor as typed: (key, quantity text) rows, in order, and the refusals of
    what could not be read (shown next to the form, the typed values kept)."""

    rows: list[list[str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def keys(self) -> list[str]:
        return [key for key, _qty in self.rows]


def initial_state(order) -> EditorState:
    """The order as it is: one row per line at its quantity."""
    return EditorState(rows=[[f"line:{ln.id}", str(ln.quantity)] for ln in order.lines])


def initial_fields(order) -> dict:
    """The other fields as the order has them. The fee field stays blank (= the
    method's own fee) unless the order's fee differs from it: then it was typed, and
    opening the editor must not change it."""
    method = db.session.get(ShippingMethod, order.shipping_method_id) \
        if order.shipping_method_id else None
    typed_fee = method is None or method.fee_cents != order.shipping_fee_cents
    return {"version": order.version, "shipping_method": order.shipping_method_id,
            "shipping_fee": cents_to_input(order.shipping_fee_cents) if typed_fee else "",
            "discount": cents_to_input(order.discount_cents) if order.discount_cents else "",
            "extra_charge": cents_to_input(order.extra_charge_cents)
            if order.extra_charge_cents else "",
            "extra_charge_label": order.extra_charge_label or ""}


def read_state(form, order) -> EditorState:
    """The rows posted by the editor, checked; an existing line the post left out
    stays as it is (the editor always sends every line; a crafted post that does not
    changes nothing about it)."""
    state = EditorState()
    keys, quantities = form.getlist("key"), form.getlist("qty")
    if len(keys) != len(quantities) or len(keys) > MAX_LINES:
        state = initial_state(order)  # shown as the order has them, with the refusal
        state.errors.append(_("The editor's lines could not be read; reload the order."))
        return state
    own_lines = {ln.id: ln for ln in order.lines}
    seen: set[str] = set()
    for key, qty in zip(keys, quantities, strict=True):
        key, qty = key.strip(), qty.strip()[:12]
        match = KEY.fullmatch(key)
        if match is None or (match[1] == "line" and int(match[2]) not in own_lines):
            state.errors.append(_("An item in the editor is not on order %(number)s; reload "
                                  "the order.", number=order.number))
            continue
        if key in seen:
            state.errors.append(_("The same item is listed twice; reload the order."))
            continue
        seen.add(key)
        state.rows.append([key, qty])
    for line_id, line in own_lines.items():
        if f"line:{line_id}" not in seen:
            state.rows.append([f"line:{line_id}", str(line.quantity)])
    return state


def apply_op(state: EditorState, op: str, order) -> None:
    """Add a product (one more if it is already there), remove or restore a line."""
    match = OP.fullmatch(op or "")
    if match is None or op in ("search", "refresh"):
        return
    verb, target = match[1], match[2]
    if verb == "add":
        variant_id = int(target.rsplit(":", 1)[-1])
        for row in state.rows:
            if row[0] == f"variant:{variant_id}" or (
                    row[0].startswith("line:") and _line_variant(order, row[0]) == variant_id):
                row[1] = str(min(_int_or(row[1], 0) + 1, MAX_QUANTITY))
                return
        if len(state.rows) >= MAX_LINES:
            state.errors.append(_("An order holds at most %(max)s lines.", max=MAX_LINES))
            return
        state.rows.append([f"variant:{variant_id}", "1"])
    elif verb == "remove":
        for row in list(state.rows):
            if row[0] == target:
                if target.startswith("variant:"):
                    state.rows.remove(row)  # never on the order: nothing to show
                else:
                    row[1] = "0"
    elif verb == "undo":
        for row in state.rows:
            if row[0] == target and target.startswith("line:"):
                line = _line(order, target)
                row[1] = str(line.quantity if line is not None else 1)


def _line(order, key: str):
    line_id = int(key.split(":", 1)[1])
    return next((ln for ln in order.lines if ln.id == line_id), None)


def _line_variant(order, key: str) -> int | None:
    line = _line(order, key)
    return line.variant_id if line is not None else None


def _int_or(text: str, default: int) -> int:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 6 else default


def _money(text: str | None, label, errors: list[str], *, blank=0):
    text = (text or "").strip()
    if not text:
        return blank
    try:
        return parse_money(text, field=label)
    except DomainError as exc:
        errors.append(translate_error(exc))
        return None


def modify_input(state: EditorState, form, order) -> tuple[ModifyInput | None, list[str]]:
    """The domain's input, or None with the reasons it could not be built."""
    errors = list(state.errors)
    for name, field_errors in form.errors.items():
        if name == "csrf_token":
            continue
        label = getattr(form, name).label.text if hasattr(form, name) else ""
        errors += [_("%(field)s: %(error)s", field=label, error=e) for e in field_errors]
    lines = []
    for key, qty in state.rows:
        kind, ident = key.split(":", 1)
        if not (qty.isascii() and qty.isdigit()) or int(qty[:7]) > MAX_QUANTITY:
            errors.append(_("%(item)s: the quantity must be a whole number from 0 to "
                            "%(max)s.", item=row_name(key, order), max=MAX_QUANTITY))
            continue
        if kind == "variant" and int(qty) == 0:
            continue  # an added item set back to 0 is simply not added
        lines.append((kind, int(ident), int(qty)))
    fee = _money(form.shipping_fee.data, L_("Shipping fee"), errors, blank=None)
    discount = _money(form.discount.data, L_("Discount"), errors)
    extra = _money(form.extra_charge.data, L_("Extra charge"), errors)
    if errors or form.errors:
        return None, errors
    return ModifyInput(lines=tuple(lines), shipping_method_id=form.shipping_method.data,
                       shipping_fee_cents=fee, discount_cents=discount or 0,
                       extra_charge_cents=extra or 0,
                       extra_charge_label=(form.extra_charge_label.data or "").strip()), []


def row_name(key: str, order) -> str:
    """A row's item name for a refusal, before the domain has read it."""
    if key.startswith("line:"):
        line = _line(order, key)
        return " ".join(filter(None, (line.product_name, line.variant_name))) if line else key
    variant = db.session.get(Variant, int(key.split(":", 1)[1]))
    return variant.display_name if variant is not None else key


@dataclass
class Row:
    """One line of the editor as shown."""

    key: str
    dom_id: str
    quantity_text: str
    product_name: str = ""
    variant_name: str = ""
    sku: str = ""
    unit_price_cents: int | None = None
    line_total_cents: int | None = None
    available: int | None = None
    removed: bool = False
    new: bool = False


def display_rows(state: EditorState, order, preview) -> list[Row]:
    """The rows with their names and money: from the preview where it has them, else
    from the order's line (a removed one) or the variant (before a preview exists)."""
    by_key = {ln.key: ln for ln in (preview.lines if preview is not None else [])}
    rows = []
    for key, qty in state.rows:
        row = Row(key=key, dom_id=key.replace(":", "-"), quantity_text=qty,
                  new=key.startswith("variant:"))
        shown = by_key.get(key)
        if shown is not None:
            row.product_name, row.variant_name, row.sku = (
                shown.product_name, shown.variant_name, shown.sku)
            row.unit_price_cents, row.line_total_cents = (shown.unit_price_cents,
                                                          shown.line_total_cents)
            row.available = shown.available
        elif key.startswith("line:"):
            line = _line(order, key)
            row.product_name, row.variant_name, row.sku = (line.product_name,
                                                           line.variant_name, line.sku)
            row.unit_price_cents = line.unit_price_cents
            row.removed = qty == "0"
        else:
            variant = db.session.get(Variant, int(key.split(":", 1)[1]))
            if variant is not None:
                row.product_name, row.variant_name, row.sku = (
                    variant.product.name, variant.name, variant.sku)
                row.unit_price_cents = variant.price_cents
            else:
                row.product_name = _("Unknown item")
        rows.append(row)
    return rows
