"""OrderQuery: the one description of "which orders" shared by the list,
tab counts, bulk actions and export (SPEC §4).

It is built from URL arguments (validated, never trusted) and turned back
into them, so the URL always holds the current list.
"""

from __future__ import annotations

import math
from collections import namedtuple
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, literal, select, tuple_

from domain import order_counts
from domain.db import db
from domain.documents import PRINTED_EVENT
from domain.errors import ValidationError
from domain.i18n import L_, N_, Label
from domain.inventory import low_stock_clauses, low_stock_count, low_stock_variant_ids  # noqa: F401
from domain.models import Order, OrderEvent, OrderLine
from domain.status import DeliveryStatus, OrderStatus
from domain.store import get_settings

# Message ids, translated where shown ({{ _(SOURCES[order.source]) }}).
SOURCES = {"online_store": N_("Online store"), "on_behalf": N_("On behalf"),
           "live_stream": N_("Live stream"), "api": N_("API")}
LISTS = ("paid", "unpaid")
# The "To do" tab (issue 16): orders waiting for the merchant, oldest first: a proof to
# confirm, or paid and not yet shipped or picked up. The desk opens on it.
TODO = "todo"
TODO_STATUSES = order_counts.TODO_STATUSES  # one definition, beside the kept counts
# Sortable columns (issue 16): URL value -> (column name, ascending). "" is the list's own
# order: newest first, or oldest first in To do.
SORTS = {"date": ("date", True), "-date": ("date", False), "total": ("total", True),
         "-total": ("total", False), "customer": ("customer", True),
         "-customer": ("customer", False)}
MAX_PAGE = 100_000
MAX_Q = 100
# Up to this many matches, fetching them by id is cheapest; above it SQLite
# does better walking the date index and stopping after one page.
BY_ID_LIMIT = 1000
# What a row of the list shows (blueprints/orders/rows.py, domain.status.tracking_refusal),
# and nothing else: 16 of the order's 42 columns.
_ROW_COLUMNS = (
    Order.id, Order.number, Order.kind, Order.status, Order.delivery_status, Order.placed_at,
    Order.created_at, Order.customer_name, Order.customer_phone, Order.total_cents,
    Order.refunded_cents, Order.payment_method_name, Order.shipping_method_name,
    Order.shipping_kind, Order.tracking_code, Order.tracking_code_by_carrier)


# SELECT of orders as the list shows them: rows of _ROW_COLUMNS (ListedOrder), read by
# attribute like an order (row.number). Not ORM objects: loading 50 of them (identity
# map, instance state, a refusal set on each of 26 unread columns) cost more than the
# page's own SQL, and a row has no other column to read by mistake (AttributeError).
# Built once; each page adds its WHERE, ORDER BY and LIMIT to a copy (generative).
_LISTED = select(*_ROW_COLUMNS)


# A listed order: a named tuple, whose fields read at C speed. A Row's attribute goes
# through its key map: with Rows a page's markup (blueprints/orders/rows.py) took
# 2.5 ms, with these 1.8 ms.
ListedOrder = namedtuple("ListedOrder", [column.key for column in _ROW_COLUMNS])


def _count_up_to(ids, limit: int) -> int:
    """How many of a search's matches (search_index.matching_ids, SQLite) there are, up
    to ``limit``: read in the text index alone, stopping there."""
    found = ids.subquery()
    return db.session.scalar(select(func.count()).select_from(
        select(found.c.rowid).limit(limit).subquery()))


def _rows(statement: Select) -> list[ListedOrder]:
    # On the session's connection (its transaction), without the ORM layer: plain rows.
    return list(map(ListedOrder._make, db.session.connection().execute(statement)))


# A broad search's first page reads the text index from this many ids below the newest
# (OrderQuery._recent_first_page), checking that nothing older belongs on it.
RECENT_IDS = 20_000
# ... once the store has had this many orders (ids): below it the recent read's three
# extra statements cost more than they save (大文 at 100,000 orders: 8.5-8.7 ms a request
# with them, 7.7-8.0 without).
RECENT_FROM = 200_000
# Past the cap, a search with few matches is fetched by id and sorted: at most
# sqrt(FEW_SCALE × orders) of them, and never more than FEW_MATCHES (_few_matches).
FEW_MATCHES = 3000
FEW_SCALE = 5
# A search or filter counts its matches exactly up to this many; above it the list
# says "more than 1,000" (as the big admin tools do), so a broad search costs the same
# at a million orders as at a hundred thousand instead of counting every match.
COUNT_CAP = 1000


def _flag(values: list[str], what: Label) -> bool:
    """A checkbox filter: "1" on, "0" or "" off. Repeated (a stale link plus a
    ticked box), any "1" wins; anything else is refused, and the filter is off."""
    values = [str(v) for v in values]
    if any(v not in ("", "0", "1") for v in values):
        raise ValidationError("Unknown %(what)s.", what=what)
    return "1" in values


@dataclass(frozen=True)
class Page:
    items: list[ListedOrder]  # in the list's order
    total: int
    page: int
    per_page: int
    # True when the matches were counted only up to COUNT_CAP: ``total`` is then a lower
    # bound, the number of pages is unknown, and ``next_exists`` says whether one follows.
    more: bool = False
    next_exists: bool = False

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.next_exists if self.more else self.page < self.pages


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
    low_stock: bool = False  # only orders with a line whose variant is low on stock now
    not_printed: bool = False  # only orders with no papers printed yet (issue 11)
    sort: str = ""  # a key of SORTS, or "" for the list's own order
    page: int = 1
    per_page: int = 50
    # Keyset pagination (issue 14): the pager's Next link carries the id of the page's
    # last order ("after"), Previous the first one's ("before"), next to the page
    # number, so a deep page is read from the index where the last one stopped.
    after: int = 0
    before: int = 0
    # Refusals of bad arguments (ValidationError: str() is English, the view
    # shows translate_error(e)).
    errors: tuple[ValidationError, ...] = field(default=(), compare=False)
    # The WHERE clauses, built once per (with_status, by_id), and the search's matching
    # ids once ("ids"): a page with its tab counts
    # asks for them two to four times, and a search's (needles, the FTS query, its
    # subqueries) cost about as much to build as its SQL takes to run. Not copied by
    # replace(): another query builds its own.
    _clauses: dict = field(default_factory=dict, init=False, compare=False, repr=False)

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
        if status and status != TODO and status not in OrderStatus.__members__.values():
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
        take("low_stock", lambda: _flag(args.getlist("low_stock"), L_("low-stock filter")))
        take("not_printed", lambda: _flag(args.getlist("not_printed"), L_("printing filter")))
        sort = str(args.get("sort", ""))
        if sort and sort not in SORTS:
            errors.append(ValidationError("Unknown sort order; showing the usual order."))
            sort = ""
        values["sort"] = sort
        page = str(args.get("page", "1"))
        values["page"] = min(int(page), MAX_PAGE) if page.isdigit() and int(page) >= 1 else 1
        for key in ("after", "before"):
            cursor = str(args.get(key, ""))
            if cursor and (not cursor.isdigit() or len(cursor) > 12):
                errors.append(ValidationError("Unknown page position; showing the page by number."))
            elif cursor and values["page"] > 1:
                values[key] = int(cursor)
        if values.get("after") and values.get("before"):
            values["after"] = values["before"] = 0  # contradictory: the page number decides
        if values.get("date_from") and values.get("date_to") and values["date_from"] > values["date_to"]:
            errors.append(ValidationError("From date is after To date; the dates were swapped."))
            values["date_from"], values["date_to"] = values["date_to"], values["date_from"]
        return cls(**values, errors=tuple(errors))

    def to_args(self, **overrides) -> dict:
        """URL arguments for this query (only non-defaults), with overrides."""
        if "page" in overrides:  # another page: a cursor only where the caller gives one
            overrides = {"after": 0, "before": 0} | overrides
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
        if query.low_stock:
            args["low_stock"] = 1
        if query.not_printed:
            args["not_printed"] = 1
        if query.sort:
            args["sort"] = query.sort
        if query.page > 1:
            args["page"] = query.page
            if query.after:
                args["after"] = query.after
            elif query.before:
                args["before"] = query.before
        return args

    @property
    def has_filters(self) -> bool:
        return bool(self.q or self._filters_besides_text)

    @property
    def _kind(self) -> str:
        return "placed" if self.list == "paid" else "draft"

    @property
    def _text_alone_on_sqlite(self) -> bool:
        """A search with no other filter, on SQLite: the case the text index's shorter
        ways serve (the outward tab counts, the recent first page, few matches by id)."""
        return bool(self.q) and not self._filters_besides_text \
            and db.engine.dialect.name == "sqlite"

    @property
    def _filters_besides_text(self) -> bool:
        return bool(self.date_from or self.date_to or self.payment_method_ids
                    or self.shipping_method_ids or self.delivery_statuses or self.sources
                    or self.product_ids or self.low_stock or self.not_printed)

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
        """The SQL conditions of this query (a new list each call, the clauses shared)."""
        key = (with_status, by_id)
        if key not in self._clauses:
            self._clauses[key] = tuple(self._build_clauses(with_status, by_id))
        return list(self._clauses[key])

    def _build_clauses(self, with_status: bool, by_id: bool, *, ids=None) -> list:
        """The clauses of where_clauses; ``ids`` stands in for the search's matches."""
        kind = self._kind
        date_col = Order.placed_at if kind == "placed" else Order.created_at
        clauses = [Order.kind == kind]
        if with_status and self.status == TODO and kind == "placed":
            clauses.append(Order.status.in_(TODO_STATUSES))
        elif with_status and self.status and kind == "placed":
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
            clauses.append(Order.id.in_(select(OrderLine.order_id)
                                        .where(OrderLine.product_id.in_(self.product_ids))))
        if self.low_stock:
            # Driven from the few low variants through order_line's variant index
            # (the nested IN makes SQLite build the variant list first), not a scan of
            # order_line nor a probe per order: orders far outnumber the catalogue.
            clauses.append(Order.id.in_(select(OrderLine.order_id).where(
                OrderLine.variant_id.in_(low_stock_variant_ids()))))
        if self.not_printed:
            # "Not yet printed": no invoice, packing list, label or pick list printed for
            # it (domain.documents.printed); a probe of order_event's order_id index.
            clauses.append(~select(OrderEvent.id).where(
                OrderEvent.order_id == Order.id, OrderEvent.type == PRINTED_EVENT).exists())
        if self.q:
            from domain.search_index import ids_clause

            clauses.append(ids_clause(self._matching_ids() if ids is None else ids, by_id=by_id))
        return clauses

    def _matching_ids(self):
        """The search's SELECT of matching order ids (search_index.matching_ids), built
        once for every statement of this query."""
        from domain.search_index import matching_ids

        if "ids" not in self._clauses:
            self._clauses["ids"] = matching_ids(self.q)
        return self._clauses["ids"]

    def order_ids(self) -> Select:
        """SELECT of matching order ids (for bulk actions and export)."""
        return select(Order.id).where(*self.where_clauses()).order_by(*self._ordering())

    def sort_key(self) -> tuple[str, bool]:
        """(column, ascending) of the list's order: the chosen sort, else newest first,
        or oldest first in To do (the work waiting longest comes first)."""
        if self.sort:
            return SORTS[self.sort]
        return ("date", self.list == "paid" and self.status == TODO)

    def sort_column(self):
        column, _ascending = self.sort_key()
        if column == "total":
            return Order.total_cents
        if column == "customer":
            return Order.customer_name
        return Order.placed_at if self.list == "paid" else Order.created_at

    def _ordering(self, *, reverse: bool = False):
        column, ascending = self.sort_key()
        ascending = ascending != reverse
        col = self.sort_column()
        # The id breaks ties, in the same direction, so pages never overlap.
        return (col.asc(), Order.id.asc()) if ascending else (col.desc(), Order.id.desc())

    def count(self) -> int:
        return db.session.scalar(select(func.count(Order.id)).where(*self.where_clauses()))

    def capped_count(self) -> int | None:
        """The number of matches, or None when there are more than COUNT_CAP (it stops
        reading at COUNT_CAP + 1)."""
        found = db.session.scalar(select(func.count()).select_from(
            select(Order.id).where(*self.where_clauses()).limit(COUNT_CAP + 1).subquery()))
        return None if found > COUNT_CAP else found

    def page_results(self, total: int | None = None) -> Page:
        """One page of orders; pass ``total`` when already known (from tab_counts),
        or None to count them. A filtered list counts only up to COUNT_CAP."""
        if total is None:
            total = self.capped_count() if self.has_filters else self.count()
        if total is None:
            return self._page_past_the_cap()
        pages = max(1, math.ceil(total / self.per_page))
        page = min(self.page, pages)
        by_id = total <= BY_ID_LIMIT
        where = self.where_clauses(by_id=by_id)
        start = (page - 1) * self.per_page
        end = min(start + self.per_page, total)
        items = self._keyset_page(where) if page == self.page else None
        if items is None and start > total // 2:
            # Past the middle, read from the other end: the last page costs what the
            # first does, instead of stepping over every row before it.
            items = self._page_rows(where, by_id=by_id, reverse=True,
                                    limit=max(0, end - start), offset=total - end)[::-1]
        if items is None:
            items = self._page_rows(where, by_id=by_id, limit=self.per_page, offset=start)
        return Page(items, total, page, self.per_page)

    def _page_rows(self, where: list, *, by_id: bool, limit: int, offset: int = 0,
                   reverse: bool = False) -> list[ListedOrder]:
        """One page's rows. A search's matches fetched by id (by_id) are first put in
        order by their ids alone, through the covering index, and only the page's rows
        are then read: sorting a thousand matches by reading each whole row cost 3.8 ms
        at 1,000,000 orders, this way 2.3-2.8 ms."""
        ordering = self._ordering(reverse=reverse)
        if by_id and self.q and self.sort_key()[0] == "date":
            chosen = select(Order.id).where(*where).order_by(*ordering).limit(limit).offset(offset)
            return _rows(_LISTED.where(Order.id.in_(chosen)).order_by(*ordering))
        return _rows(_LISTED.where(*where).order_by(*ordering).limit(limit).offset(offset))

    def _page_past_the_cap(self) -> Page:
        """A page of a list with more than COUNT_CAP matches: no last page to read from,
        so the page number (or the cursor) decides, and one row more than a page says
        whether a next page exists."""
        where = self.where_clauses(by_id=False)
        take = self.per_page + 1
        items = self._keyset_page(where, limit=take)
        backwards = items is not None and not self.after
        # A search alone on SQLite may take a shorter way to its page (below): both need
        # the newest id, that is how many orders the store has had.
        top = 0
        if items is None and self._text_alone_on_sqlite:
            top = db.session.scalar(select(func.max(Order.id))) or 0
        if items is None:
            items = self._recent_first_page(take, top)
        if items is None and self._few_matches(top):
            items = self._page_rows(self.where_clauses(), by_id=True, limit=take,
                                    offset=(self.page - 1) * self.per_page)
        if items is None:
            items = _rows(
                _LISTED.where(*where).order_by(*self._ordering())
                .limit(take).offset((self.page - 1) * self.per_page))
        if not items and self.page > 1:
            # A page number typed past the end: count exactly this once (rare, and it costs
            # what every list did before the cap) and show the real last page.
            return self.page_results(self.count())
        if backwards:  # read back from the cursor: the extra row is the far one; a page follows
            next_exists, items = True, items[-self.per_page:]
        else:
            next_exists, items = len(items) > self.per_page, items[:self.per_page]
        reached = (self.page - 1) * self.per_page + len(items)
        if not next_exists and reached > COUNT_CAP:
            # The last page, walked to: now the number is known without counting.
            return Page(items, reached, self.page, self.per_page)
        return Page(items, COUNT_CAP, self.page, self.per_page, more=True,
                    next_exists=next_exists)

    def _few_matches(self, top: int) -> bool:
        """Past the cap, whether a search alone (SQLite) has so few matches (counted in
        the text index only) that fetching them by id and sorting beats walking the date
        index, where sparse matches lie far apart (陈大文 at 1,000,000 orders: 2.3 ms
        against 6.9 ms). A match fetched by id costs about ten steps of the walk, and
        the walk takes about 51·N/m steps for m matches of N orders: by id wins while
        m² < FEW_SCALE·N (about 700 matches at 100,000 orders, 2,200 at 1,000,000; at
        most FEW_MATCHES)."""
        if not self._text_alone_on_sqlite:
            return False
        few = min(FEW_MATCHES, math.isqrt(FEW_SCALE * top))
        if few <= COUNT_CAP:
            return False  # past the cap there are more matches than that: no need to count
        ids = self._matching_ids()
        return ids is not None and _count_up_to(ids, few + 1) <= few

    def _recent_first_page(self, take: int, top: int) -> list | None:
        """The first ``take`` rows of a broad search's first page, read from its recent
        matches only, or None when that cannot be shown exact (then all are read).

        Walking the date index, SQLite checks each order against the list of every
        match, and listing them cost in proportion to the matches: at 1,000,000 orders
        ~3 ms for 大文, ~18 ms for denim. The newest orders have the highest ids, so the
        text index is read from RECENT_IDS below the newest id up. Exact when no order
        below that id sorts before the last row taken (a draft placed lately, say):
        one look at the date index's newest entries says so."""
        if (self.page != 1 or self.list != "paid" or self.sort or self.status == TODO
                or not self._text_alone_on_sqlite):
            return None
        floor = top - RECENT_IDS
        from domain.search_index import matching_ids

        recent = matching_ids(self.q, from_id=floor) if top >= RECENT_FROM and floor > 0 else None
        if recent is None or _count_up_to(recent, take) < take:
            return None  # too few recent matches to fill the page: read them all
        # The walk stops at the time the first recent order was made: a recent match placed
        # before it (none should be) would sort after every row taken here anyway.
        since = db.session.scalar(select(Order.created_at).where(Order.id >= floor)
                                  .order_by(Order.id).limit(1))
        rows = _rows(_LISTED.where(*self._build_clauses(True, False, ids=recent),
                                     Order.placed_at >= since)
                     .order_by(*self._ordering()).limit(take))
        if len(rows) < take:
            return None  # the status tab has too few of them: read them all
        last = rows[-1]
        older_first = db.session.scalar(select(Order.id).where(
            Order.kind == "placed", Order.id < floor,
            tuple_(Order.placed_at, Order.id) > tuple_(literal(last.placed_at, Order.placed_at.type),
                                                       last.id)).limit(1))
        return rows if older_first is None else None

    def _keyset_page(self, where: list, *, limit: int | None = None) -> list | None:
        """The page after (or before) the cursor's order, by index range; None when there
        is no usable cursor (then the page number decides)."""
        cursor_id = self.after or self.before
        if not cursor_id:
            return None
        col = self.sort_column()
        value = db.session.scalar(select(col).where(Order.id == cursor_id, *where[:1]))
        if value is None:
            return None  # gone, another list, or no value to compare: use the number
        _column, ascending = self.sort_key()
        forward = bool(self.after)
        key, cursor = tuple_(col, Order.id), tuple_(literal(value, col.type), cursor_id)
        comes_after = (key > cursor) if ascending else (key < cursor)
        comes_before = (key < cursor) if ascending else (key > cursor)
        rows = _rows(
            _LISTED.where(*where, comes_after if forward else comes_before)
            .order_by(*self._ordering(reverse=not forward)).limit(limit or self.per_page))
        return rows if forward else rows[::-1]

    def page_with_tab_counts(self) -> tuple[Page, dict[str, int | None]]:
        """One page and the tab counts; for the paid list the counts already hold
        the total, so no second COUNT runs (unless they were capped)."""
        counts = self.tab_counts()
        if self.list != "paid":
            return self.page_results(), counts
        total = counts[self.status]
        if total is not None:
            return self.page_results(total), counts
        if not self.status:  # "All": the tab counts' sample already went past the cap
            return self._page_past_the_cap(), counts
        # Past the cap over all statuses, this tab may still be small: page_results counts
        # it up to the cap, and a number it found exactly goes on the tab too.
        page = self.page_results()
        return page, counts if page.more else {**counts, self.status: page.total}

    def tab_counts(self) -> dict[str, int | None]:
        """Orders per status under the current search and filters ("" = all).

        Unfiltered, they are the counts the database keeps (domain.order_counts):
        a few rows read, not every order counted. Filtered, the first COUNT_CAP + 1
        matches are read; when there are more, no tab has a count (None): an exact
        one would read every match."""
        if not self.has_filters:
            return order_counts.status_counts(self._kind)
        sample = self._status_sample()
        rows = db.session.execute(
            select(sample.c.status, func.count()).group_by(sample.c.status)).all()
        if sum(number for _status, number in rows) > COUNT_CAP:
            return dict.fromkeys([status.value for status in OrderStatus] + ["", TODO])
        counts = {status.value: 0 for status in OrderStatus}
        for status, number in rows:
            if status in counts:
                counts[status] = number
        counts[""] = sum(counts.values())
        counts[TODO] = sum(counts[s] for s in TODO_STATUSES)
        return counts

    def _status_sample(self):
        """The statuses of the first COUNT_CAP + 1 matches, in no order (a subquery).

        A search alone on SQLite is read from the text index outwards: each match it
        yields, its order's kind and status (one probe), stopping at COUNT_CAP + 1. As
        ``id IN (matches)`` SQLite first read every match into a list: at 1,000,000
        orders 3-19 ms for a broad search (大文, Kelvin, denim), against 0.5-1.2 ms. With
        another filter (a date range, a method) the IN form stays: the filter's index
        then finds the few orders that also match, where this would read matches that
        fail it."""
        ids = self._matching_ids() if self._text_alone_on_sqlite else None
        if ids is not None:
            found = ids.subquery("found")
            return (select(Order.status).select_from(found.join(Order, Order.id == found.c.rowid))
                    .where(Order.kind == self._kind).limit(COUNT_CAP + 1).subquery())
        return (select(Order.status).where(*self.where_clauses(with_status=False))
                .limit(COUNT_CAP + 1).subquery())

    def list_counts(self) -> dict[str, int]:
        """How many placed and draft orders exist, unfiltered (for the list switch)."""
        return order_counts.list_counts()
