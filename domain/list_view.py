"""What the orders list shows around its rows (issue 16): date presets, the active
filters as removable chips, and a short items summary per order.

A leaf beside domain.search: it reads an OrderQuery and never changes what matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select

from domain.db import db
from domain.i18n import N_
from domain.models import OrderLine
from domain.search import SOURCES, OrderQuery
from domain.status import DeliveryStatus
from domain.store import get_settings

# Preset keys and their names (message ids, translated where shown).
PRESETS = (("today", N_("Today")), ("yesterday", N_("Yesterday")),
           ("last_7_days", N_("Last 7 days")), ("this_month", N_("This month")))


def store_today(now: datetime | None = None) -> date:
    """Today's date where the store is (the list's dates are read in its time zone)."""
    zone = ZoneInfo(get_settings().timezone)
    now = now or datetime.now(ZoneInfo("UTC"))
    if now.tzinfo is None:
        now = now.replace(tzinfo=ZoneInfo("UTC"))
    return now.astimezone(zone).date()


@dataclass(frozen=True)
class DatePreset:
    key: str
    label: str  # message id
    date_from: date
    date_to: date


def date_presets(today: date) -> list[DatePreset]:
    """Today, Yesterday, the last 7 days (today included) and this month so far."""
    ranges = {
        "today": (today, today),
        "yesterday": (today - timedelta(days=1), today - timedelta(days=1)),
        "last_7_days": (today - timedelta(days=6), today),
        "this_month": (today.replace(day=1), today),
    }
    return [DatePreset(key, label, *ranges[key]) for key, label in PRESETS]


def active_preset(query: OrderQuery, presets: list[DatePreset]) -> str:
    """The preset the query's dates are exactly, or ""."""
    for preset in presets:
        if (query.date_from, query.date_to) == (preset.date_from, preset.date_to):
            return preset.key
    return ""


@dataclass(frozen=True)
class Chip:
    """One active filter: what it reads as, and the list's arguments without it.

    ``label`` is a message id when ``translate`` is true (a status, a source), else text
    from the data (a method or product name, the search words); ``prefix`` is a message
    id naming the kind of filter ("Payment", "Product" ...)."""

    prefix: str
    label: str
    translate: bool
    args: dict


def filter_chips(query: OrderQuery, *, payment_names: dict[int, str],
                 shipping_names: dict[int, str], product_names: dict[int, str]) -> list[Chip]:
    """The query's filters as chips, each removable on its own (page back to 1)."""
    chips: list[Chip] = []

    def without(**change) -> dict:
        return query.to_args(page=1, **change)

    if query.q:
        chips.append(Chip(N_("Search"), f"“{query.q}”", False, without(q="")))
    if query.date_from or query.date_to:
        if query.date_from == query.date_to:
            text = query.date_from.isoformat()
        else:
            text = (f"{query.date_from.isoformat() if query.date_from else '…'} – "
                    f"{query.date_to.isoformat() if query.date_to else '…'}")
        chips.append(Chip(N_("Order date"), text, False, without(date_from=None, date_to=None)))
    # Method names may be built-in message ids (domain/store.py), read translated like
    # everywhere else; product names are the merchant's own text.
    for field, prefix, names, translate in (
            ("payment_method_ids", N_("Payment"), payment_names, True),
            ("shipping_method_ids", N_("Shipping"), shipping_names, True),
            ("product_ids", N_("Product"), product_names, False)):
        values = getattr(query, field)
        for value in values:
            rest = tuple(v for v in values if v != value)
            # A method or product no longer offered still reads as something.
            chips.append(Chip(prefix, names.get(value, f"#{value}"),
                              translate and value in names, without(**{field: rest})))
    for value in query.delivery_statuses:
        rest = tuple(v for v in query.delivery_statuses if v != value)
        chips.append(Chip(N_("Delivery"), DeliveryStatus(value).label, True,
                          without(delivery_statuses=rest)))
    for value in query.sources:
        rest = tuple(v for v in query.sources if v != value)
        chips.append(Chip(N_("Source"), SOURCES[value], True, without(sources=rest)))
    if query.low_stock:
        chips.append(Chip(N_("Stock"), N_("Contains low-stock items"), True,
                          without(low_stock=False)))
    if query.not_printed:
        chips.append(Chip(N_("Papers"), N_("Not yet printed"), True,
                          without(not_printed=False)))
    return chips


@dataclass(frozen=True)
class ItemsSummary:
    first_name: str
    first_quantity: int
    more: int  # other lines besides the first


# Built once, and run on the session's connection (Core: plain rows, no ORM layer):
# building it and its 50 ids per page cost three times its SQL.
_PAGE_LINES = (select(OrderLine.order_id, OrderLine.product_name, OrderLine.variant_name,
                      OrderLine.quantity)
               .where(OrderLine.order_id.in_(bindparam("ids", expanding=True)))
               .order_by(OrderLine.order_id, OrderLine.id))


def items_summaries(order_ids: list[int]) -> dict[int, ItemsSummary]:
    """For one page of orders, each order's first line and how many more: one query
    through order_line's order_id index ("曲奇禮盒 ×2, +1 more")."""
    if not order_ids:
        return {}
    rows = db.session.connection().execute(_PAGE_LINES, {"ids": list(order_ids)}).all()
    first: dict[int, tuple[str, int]] = {}
    counts: dict[int, int] = {}
    for order_id, product, variant, quantity in rows:
        counts[order_id] = counts.get(order_id, 0) + 1
        if order_id not in first:
            first[order_id] = (f"{product} · {variant}" if variant else product, quantity)
    return {order_id: ItemsSummary(name, quantity, counts[order_id] - 1)
            for order_id, (name, quantity) in first.items()}


# ------------------------------------------------------------------ the order page's way back

# The list a merchant last looked at (its URL arguments), kept in their session so the
# order page's "← Orders", previous and next follow that list.
MAX_LIST_ARGS = 2000


@dataclass(frozen=True)
class Neighbours:
    previous: str | None  # the order above this one in the list (newer), its number
    following: str | None  # the order below (older)


def neighbours(query: OrderQuery, order) -> Neighbours:
    """This order's neighbours in the list ``query`` describes, in the list's own order
    (its sort, ties broken by id), or none when the order is not in that list. Two
    indexed lookups."""
    from sqlalchemy import and_, or_

    from domain.models import Order

    if query.list != "paid" or order.kind != "placed" or order.placed_at is None:
        return Neighbours(None, None)
    clauses = query.where_clauses()
    inside = db.session.scalar(select(Order.id).where(*clauses, Order.id == order.id))
    if inside is None:
        return Neighbours(None, None)
    column = query.sort_column()
    _name, ascending = query.sort_key()
    value = getattr(order, column.key)
    after = or_(column > value, and_(column == value, Order.id > order.id))
    before = or_(column < value, and_(column == value, Order.id < order.id))
    # The row above in the list comes before it in the list's direction.
    above, below = (before, after) if ascending else (after, before)
    up = db.session.scalar(select(Order.number).where(*clauses, above).order_by(
        *((column.desc(), Order.id.desc()) if ascending else (column.asc(), Order.id.asc())))
        .limit(1))
    down = db.session.scalar(select(Order.number).where(*clauses, below).order_by(
        *((column.asc(), Order.id.asc()) if ascending else (column.desc(), Order.id.desc())))
        .limit(1))
    return Neighbours(up, down)
