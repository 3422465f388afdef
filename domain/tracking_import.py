"""Tracking codes from a spreadsheet (SPEC §3, issue 12): read a CSV or .xlsx of order
number + tracking code (+ optionally "ship now"), and say row by row what applying it
would do. Writes nothing: domain/bulk_ship.py applies a file, planning it again under
the write lock with the same ``classify``.

Columns are found by their header, in English or Chinese, including the exact headers
of the export's Orders sheet (domain/exports.py), so that sheet comes back with its
tracking column filled in. Its other columns are ignored. The file reading itself
(encodings, size, zip bombs, formulas read as text) is the products import's
(domain/catalog_parse.py): one reader, one set of limits to keep right.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import select

from domain.catalog_parse import read_table
from domain.db import db
from domain.errors import DomainError, InvalidTransition, ValidationError
from domain.i18n import L_, N_, Label
from domain.models import Order
from domain.orders import TRACKING_RE
from domain.refusals import _refuse
from domain.status import DeliveryStatus, OrderStatus, can_set_tracking_code, can_ship_order

MAX_ROWS = 20_000
MAX_ROWS_SHOWN = f"{MAX_ROWS:,}"  # as the refusal writes it
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

# Header names per column, compared after casefolding with spaces, hyphens and
# underscores read alike. The first two lists start with the export's own headers
# (ORDER_COLUMNS "Order number" / "Tracking code", in English and in Chinese).
HEADER_ALIASES = {
    "order": ("Order number", "order_no", "order no", "order #", "order", "number",
              "訂單編號", "訂單號碼", "訂單號", "訂單", "單號"),
    "code": ("Tracking code", "tracking number", "tracking no", "tracking", "tracking #",
             "追蹤編號", "追蹤號碼", "追蹤碼", "運單號", "運單編號", "物流單號", "快遞單號"),
    "ship": ("Ship now", "ship", "confirm shipment", "立即發貨", "即時發貨", "發貨", "出貨",
             "確認發貨"),
}
YES = {"yes", "y", "true", "1", "x", "✓", "是", "要", "發貨"}
NO = {"", "no", "n", "false", "0", "否", "不"}

# What a row does. SHIP: ship it keeping its code (blank or the same code).
SET, SET_SHIP, SHIP, UNCHANGED, ERROR = "set", "set_ship", "ship", "unchanged", "error"
ACTIONS = (SET_SHIP, SHIP, SET, UNCHANGED, ERROR)
ACTION_LABELS = {SET: N_("Set tracking code"), SET_SHIP: N_("Set code and ship"),
                 SHIP: N_("Ship"), UNCHANGED: N_("Unchanged"), ERROR: N_("Invalid")}
SHIPS = (SET_SHIP, SHIP)


def _key(text: str) -> str:
    return re.sub(r"[\s\-_]+", " ", str(text).strip().lstrip("\ufeff")).casefold()


_HEADER_INDEX = {_key(alias): column for column, aliases in HEADER_ALIASES.items()
                 for alias in aliases}


def header_name(column: str, locale: str) -> str:
    """The column's header as a reader of ``locale`` types it (both are read)."""
    aliases = HEADER_ALIASES[column]
    if locale != "en":
        return next(alias for alias in aliases if not alias.isascii())
    return aliases[0]


@dataclass
class TrackingRow:
    number: int  # the spreadsheet's row number (the header is row 1)
    order_number: str
    code: str
    ship: bool | None  # None: the file has no ship-now value for this row
    problem: DomainError | None = None  # refused while reading (formula, ship now unreadable)


@dataclass
class TrackingFile:
    filename: str
    rows: list[TrackingRow]
    has_ship_column: bool = False
    ignored: list[str] = field(default_factory=list)  # header names not read


# ------------------------------------------------------------------ reading


def parse(data: bytes, filename: str) -> TrackingFile:
    """Read an upload, or raise ValidationError saying why the file is refused."""
    table, name = read_table(data, filename)
    return _rows_from(table, name)


def _header(cells: list[str]) -> tuple[list[str | None], list[str]]:
    columns, ignored, seen = [], [], set()
    for raw in cells:
        column = _HEADER_INDEX.get(_key(raw))
        if column in seen:
            raise ValidationError("The column %(name)s appears twice in the header row.",
                                  name=str(raw).strip())
        if column:
            seen.add(column)
        elif str(raw).strip():
            ignored.append(str(raw).strip()[:60])
        columns.append(column)
    if "order" not in seen or "code" not in seen:
        raise ValidationError(
            "The first row must be the header, with the columns “Order number” and "
            "“Tracking code” (in English or Chinese), and optionally “Ship now”.")
    return columns, ignored


def _ship_value(text: str) -> bool:
    value = text.strip().casefold()
    if value in YES:
        return True
    if value in NO:
        return False
    raise ValidationError("Ship now must be yes or no.")


def _rows_from(table, filename: str) -> TrackingFile:
    header: list[str | None] | None = None
    ignored: list[str] = []
    rows: list[TrackingRow] = []
    for number, cells in table:
        if not any(str(text).strip() for text, _formula in cells):
            continue
        if header is None:
            header, ignored = _header([str(text) for text, _formula in cells])
            continue
        if len(rows) >= MAX_ROWS:
            raise ValidationError("The file has more than %(max)s rows; split it into smaller "
                                  "files.", max=MAX_ROWS_SHOWN)
        values, formulas = {}, set()
        for column, (text, is_formula) in zip(header, cells, strict=False):
            if column is None:
                continue
            text = str(text).strip()
            if is_formula or text.startswith(FORMULA_START):
                formulas.add(column)
            values[column] = text
        row = TrackingRow(number, values.get("order", "")[:64], values.get("code", "")[:200],
                          None)
        if formulas:
            row.problem = ValidationError(
                "A cell starts with =, +, - or @ and would run as a formula in a spreadsheet; "
                "order numbers and tracking codes are plain text.")
        elif "ship" in header:
            try:
                row.ship = _ship_value(values.get("ship", ""))
            except ValidationError as exc:
                row.problem = exc
        rows.append(row)
    if header is None:
        raise ValidationError("The file is empty.")
    return TrackingFile(filename, rows, "ship" in header, ignored)


# ------------------------------------------------------------------ planning


@dataclass
class RowPlan:
    number: int
    order_number: str
    code: str
    ship: bool
    action: str = UNCHANGED
    error: DomainError | None = None
    order_id: int | None = None
    old_code: str = ""
    note: str | None = None  # why an unchanged row is unchanged (a message id)


@dataclass
class Preview:
    rows: list[RowPlan]
    counts: Counter
    ignored: list[str] = field(default_factory=list)
    has_ship_column: bool = False

    @property
    def has_changes(self) -> bool:
        return any(self.counts[a] for a in (SET, SET_SHIP, SHIP))

    @property
    def has_errors(self) -> bool:
        return bool(self.counts[ERROR])


# The order columns a plan needs: read as plain rows, in chunks.
STATE_COLUMNS = (Order.id, Order.number, Order.kind, Order.status, Order.delivery_status,
                 Order.shipping_kind, Order.tracking_code, Order.tracking_code_by_carrier)


def order_states(numbers, *, lock: bool = False) -> dict[str, object]:
    """The state of the orders with these numbers, by number (row-locked on PostgreSQL
    when ``lock``: the apply plans under the same lock it writes under)."""
    wanted = list(dict.fromkeys(n for n in numbers if n))
    found = {}
    for start in range(0, len(wanted), 500):
        query = select(*STATE_COLUMNS).where(Order.number.in_(wanted[start:start + 500]))
        if lock:
            query = query.with_for_update()
        found.update((row.number, row) for row in db.session.execute(query))
    return found


def classify(row: TrackingRow, state, *, ship_all: bool = False) -> RowPlan:
    """What this row would do to its order as it is now (``state``: a row of
    STATE_COLUMNS, or None when there is no such order). The rules are the order
    page's: domain.status predicates, domain.orders' tracking code rules and refusals."""
    ship = bool(row.ship) or (ship_all and row.ship is None and bool(row.code))
    plan = RowPlan(row.number, row.order_number, row.code, ship)
    if row.problem is not None:
        return _error(plan, row.problem)
    if not row.order_number:
        return _error(plan, ValidationError("This row has no order number."))
    if state is None:
        return _error(plan, ValidationError("No order %(number)s in this store.",
                                               number=row.order_number))
    plan.order_id, plan.old_code = state.id, state.tracking_code or ""
    if row.code and not TRACKING_RE.match(row.code):
        return _error(plan, ValidationError(
            "Tracking code may use letters, digits, spaces and - _ / . (at most 64 characters)."))
    changes_code = bool(row.code) and row.code != plan.old_code
    if state.kind != "placed":
        if not changes_code and not ship:
            plan.note = N_("A draft: nothing to do.")
            return plan
        return _error(plan, _frozen(state.number, L_("a draft")))
    if changes_code and not can_set_tracking_code(state):
        if state.tracking_code_by_carrier:
            return _error(plan, InvalidTransition(
                "This tracking code comes from the carrier and cannot be edited."))
        return _error(plan, _frozen(state.number, Label(OrderStatus(state.status).label)))
    if ship:
        if state.delivery_status == DeliveryStatus.SHIPPED and not changes_code:
            plan.note = N_("Already shipped.")  # the same file applied again
            return plan
        if not can_ship_order(state):
            return _error(plan, _refuse(state, "ship_order"))
        plan.action = SET_SHIP if changes_code else SHIP
        return plan
    if changes_code:
        plan.action = SET
    else:
        plan.note = (N_("Already has this tracking code.") if row.code
                     else N_("No tracking code given."))
    return plan


def _frozen(number: str, status: Label) -> InvalidTransition:
    # set_tracking_code's own refusal, word for word.
    return InvalidTransition(
        "Order %(number)s is %(status)s: its tracking code can no longer change.",
        number=number, status=status)


def _error(plan: RowPlan, error: DomainError) -> RowPlan:
    plan.action, plan.error = ERROR, error
    return plan


def plan_rows(rows: list[TrackingRow], states: dict, *, ship_all: bool = False,
              seen: dict[str, int] | None = None) -> list[RowPlan]:
    """Every row's plan. An order on two rows is planned once, at its first row;
    ``seen`` (order number -> first row) carries that across batches of one file."""
    first = {} if seen is None else seen
    plans = []
    for row in rows:
        key = row.order_number.casefold()
        if row.order_number and key in first:
            plan = RowPlan(row.number, row.order_number, row.code, bool(row.ship))
            plans.append(_error(plan, ValidationError(
                "Order %(number)s is also on row %(row)s: each order may appear once.",
                number=row.order_number, row=first[key])))
            continue
        if row.order_number:
            first[key] = row.number
        plans.append(classify(row, states.get(row.order_number), ship_all=ship_all))
    return plans


def preview(data: TrackingFile, *, ship_all: bool = False) -> Preview:
    """What applying ``data`` would do, row by row, with each invalid row's reason."""
    states = order_states(row.order_number for row in data.rows)
    plans = plan_rows(data.rows, states, ship_all=ship_all)
    return Preview(plans, Counter(plan.action for plan in plans), data.ignored,
                   data.has_ship_column)
