"""OrderQuery: the one description of "which orders" shared by the list,
tab counts, bulk actions and export (SPEC §4).

It is built from URL arguments (validated, never trusted) and turned back
into them, so the URL always holds the current list.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select

from domain.db import db
from domain.errors import ValidationError
from domain.i18n import L_, N_, Label
from domain.models import Order
from domain.status import DeliveryStatus, OrderStatus
from domain.store import get_settings

# Message ids, translated where shown ({{ _(SOURCES[order.source]) }}).
SOURCES = {"online_store": N_("Online store"), "on_behalf": N_("On behalf"),
           "live_stream": N_("Live stream"), "api": N_("API")}
LISTS = ("paid", "unpaid")
MAX_PAGE = 100_000
MAX_Q = 100
# Up to this many matches, fetching them by id is cheapest; above it SQLite
# does better walking the date index and stopping after one page.
BY_ID_LIMIT = 1000


@dataclass(frozen=True)
class Page:
    items: list[Order]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def _int_list(values: list[str], what: Label) -> tuple[int, ...]:
    out = []
    for value in map(str, values):
        if value == "":
            continue
        if not value.isdigit() or len(value) > 9:
            raise ValidationError("Unknown %(what)s.", what=what)
        out.append(int(value))
    return tuple(sorted(set(out)))


def _choice_list(values: list[str], allowed, what: Label) -> tuple[str, ...]:
    out = [str(v) for v in values if v != ""]
    bad = [v for v in out if v not in allowed]
    if bad:
        raise ValidationError("Unknown %(what)s: %(value)s.", what=what, value=bad[0][:40])
    return tuple(sorted(set(out)))


def _date(value: str | None, what: Label) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ValidationError("%(field)s must be a date like 2026-01-31.", field=what) from exc


@dataclass(frozen=True)
class OrderQuery:
    list: str = "paid"
    status: str = ""  # "" means every status (the "All" tab)
    q: str = ""
    date_from: date | None = None
    date_to: date | None = None
    payment_method_ids: tuple[int, ...] = ()
    shipping_method_ids: tuple[int, ...] = ()
    delivery_statuses: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    product_ids: tuple[int, ...] = ()
    page: int = 1
    per_page: int = 50
    # Refusals of bad arguments (ValidationError: str() is English, the view
    # shows translate_error(e)).
    errors: tuple[ValidationError, ...] = field(default=(), compare=False)

    # ------------------------------------------------------------ URL round trip

    @classmethod
    def from_args(cls, args, *, per_page: int = 50) -> OrderQuery:
        """Build from request.args. Bad values are dropped and reported in
        ``errors`` so the merchant sees why, instead of a crash or a silent guess."""
        errors: list[ValidationError] = []
        values: dict = {"per_page": per_page}

        def take(name, parse):
            try:
                values[name] = parse()
            except ValidationError as exc:
                errors.append(exc)

        lst = args.get("list", "paid")
        values["list"] = lst if lst in LISTS else "paid"
        if lst not in LISTS:
            errors.append(ValidationError("Unknown list; showing paid orders."))
        status = args.get("status", "")
        if status and status not in OrderStatus.__members__.values():
            errors.append(ValidationError("Unknown status tab; showing all."))
            status = ""
        values["status"] = status
        q = (args.get("q") or "").strip()
        if len(q) > MAX_Q:
            errors.append(ValidationError("Search is limited to %(max)s characters.", max=MAX_Q))
            q = q[:MAX_Q]
        # Control characters go; other spaces (U+3000 from a Chinese input
        # method, a no-break space) stay spaces, so words stay apart.
        values["q"] = "".join(ch if ch.isprintable() else " " if ch.isspace() else ""
                              for ch in q)
        take("date_from", lambda: _date(args.get("from"), L_("From date")))
        take("date_to", lambda: _date(args.get("to"), L_("To date")))
        take("payment_method_ids", lambda: _int_list(args.getlist("payment"), L_("payment method")))
        take("shipping_method_ids", lambda: _int_list(args.getlist("shipping"), L_("shipping method")))
        take("product_ids", lambda: _int_list(args.getlist("product"), L_("product")))
        take("delivery_statuses", lambda: _choice_list(
            args.getlist("delivery"), DeliveryStatus.__members__.values(), L_("delivery status")))
        take("sources", lambda: _choice_list(args.getlist("source"), SOURCES, L_("order source")))
        page = str(args.get("page", "1"))
        values["page"] = min(int(page), MAX_PAGE) if page.isdigit() and int(page) >= 1 else 1
        if values.get("date_from") and values.get("date_to") and values["date_from"] > values["date_to"]:
            errors.append(ValidationError("From date is after To date; the dates were swapped."))
            values["date_from"], values["date_to"] = values["date_to"], values["date_from"]
        return cls(**values, errors=tuple(errors))

    def to_args(self, **overrides) -> dict:
        """URL arguments for this query (only non-defaults), with overrides."""
        query = replace(self, **overrides) if overrides else self
        args: dict = {}
        if query.list != "paid":
            args["list"] = query.list
        if query.status:
            args["status"] = query.status
        if query.q:
            args["q"] = query.q
        if query.date_from:
            args["from"] = query.date_from.isoformat()
        if query.date_to:
            args["to"] = query.date_to.isoformat()
        for key, values in (("payment", query.payment_method_ids),
                            ("shipping", query.shipping_method_ids),
                            ("delivery", query.delivery_statuses),
                            ("source", query.sources), ("product", query.product_ids)):
            if values:
                args[key] = list(values)
        if query.page > 1:
            args["page"] = query.page
        return args

    @property
    def has_filters(self) -> bool:
        return bool(self.q or self.date_from or self.date_to or self.payment_method_ids
                    or self.shipping_method_ids or self.delivery_statuses or self.sources
                    or self.product_ids)

    # ------------------------------------------------------------ SQL

    def _utc_bounds(self) -> tuple[datetime | None, datetime | None]:
        """The date range, read in the store's time zone, as naive UTC bounds."""
        zone = ZoneInfo(get_settings().timezone)
        start = end = None
        if self.date_from:
            start = datetime.combine(self.date_from, time.min, zone).astimezone(ZoneInfo("UTC"))
        if self.date_to:
            end = datetime.combine(self.date_to + timedelta(days=1), time.min, zone).astimezone(
                ZoneInfo("UTC"))
        def strip(d):
            return (d.replace(tzinfo=None) if d else None)
        return strip(start), strip(end)

    def where_clauses(self, *, with_status: bool = True, by_id: bool = True) -> list:
        kind = "placed" if self.list == "paid" else "draft"
        date_col = Order.placed_at if kind == "placed" else Order.created_at
        clauses = [Order.kind == kind]
        if with_status and self.status and kind == "placed":
            clauses.append(Order.status == self.status)
        start, end = self._utc_bounds()
        if start:
            clauses.append(date_col >= start)
        if end:
            clauses.append(date_col < end)
        if self.payment_method_ids:
            clauses.append(Order.payment_method_id.in_(self.payment_method_ids))
        if self.shipping_method_ids:
            clauses.append(Order.shipping_method_id.in_(self.shipping_method_ids))
        if self.delivery_statuses:
            clauses.append(Order.delivery_status.in_(self.delivery_statuses))
        if self.sources:
            clauses.append(Order.source.in_(self.sources))
        if self.product_ids:
            from domain.models import OrderLine

            clauses.append(Order.id.in_(select(OrderLine.order_id)
                                        .where(OrderLine.product_id.in_(self.product_ids))))
        if self.q:
            from domain.search_index import text_match

            clauses.append(text_match(self.q, by_id=by_id))
        return clauses

    def order_ids(self) -> Select:
        """SELECT of matching order ids (for bulk actions and export)."""
        return select(Order.id).where(*self.where_clauses()).order_by(*self._ordering())

    def _ordering(self):
        if self.list == "paid":
            return (Order.placed_at.desc(), Order.id.desc())
        return (Order.created_at.desc(), Order.id.desc())

    def count(self) -> int:
        return db.session.scalar(select(func.count(Order.id)).where(*self.where_clauses()))

    def page_results(self, total: int | None = None) -> Page:
        """One page of orders; pass ``total`` when already known (from tab_counts)."""
        if total is None:
            total = self.count()
        pages = max(1, math.ceil(total / self.per_page))
        page = min(self.page, pages)
        items = list(db.session.scalars(
            select(Order).where(*self.where_clauses(by_id=total <= BY_ID_LIMIT))
            .order_by(*self._ordering())
            .limit(self.per_page).offset((page - 1) * self.per_page)))
        return Page(items, total, page, self.per_page)

    def page_with_tab_counts(self) -> tuple[Page, dict[str, int]]:
        """One page and the tab counts; for the paid list the counts already hold
        the total, so no second COUNT runs."""
        counts = self.tab_counts()
        return self.page_results(counts[self.status] if self.list == "paid" else None), counts

    def tab_counts(self) -> dict[str, int]:
        """Orders per status under the current search and filters ("" = all)."""
        rows = db.session.execute(
            select(Order.status, func.count(Order.id))
            .where(*self.where_clauses(with_status=False)).group_by(Order.status)).all()
        counts = {status.value: 0 for status in OrderStatus}
        for status, number in rows:
            if status in counts:
                counts[status] = number
        counts[""] = sum(counts.values())
        return counts

    def list_counts(self) -> dict[str, int]:
        """How many placed and draft orders exist, unfiltered (for the list switch)."""
        rows = db.session.execute(select(Order.kind, func.count(Order.id)).group_by(Order.kind))
        kinds = dict(rows.all())
        return {"paid": kinds.get("placed", 0), "unpaid": kinds.get("draft", 0)}
