"""WhatsApp billing: the price per message, the ledger, the monthly cap, the statement.

The ledger (WhatsAppCharge) has one row per message: "reserved" before the API call
(so the cap is checked and the money held in the same statement), "accepted" once the
API took the message (accepted_at is the billing time), deleted if the API refused it.
Only accepted rows are billed. Each row keeps the price it was reserved at, so a later
price never changes a past row.

Months are calendar months in the store's time zone; datetimes in the database are
naive UTC, like everywhere else in Shopdesk.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import (
    DateTime,
    Integer,
    String,
    and_,
    delete,
    func,
    literal,
    or_,
    select,
    text,
    update,
)

from domain.db import db, insert_ignoring_duplicates, write_transaction
from domain.errors import ValidationError
from domain.i18n import L_, N_
from domain.models import (
    Order,
    OutboxMessage,
    WhatsAppCharge,
    WhatsAppConfig,
    WhatsAppPrice,
    utcnow,
)
from domain.money import parse_money
from domain.store import get_settings

DEFAULT_PRICE = (15, "HKD")  # SPEC §2: HKD 0.15 a message, if the price table were empty
MAX_PRICE_CENTS = 10000  # HKD 100 a message: anything above is a typo
FIRST_YEAR = 2000  # the seeded price row's year: no statement before it
PRICE_FIELD = L_("Price per message")
MONTH_RE = re.compile(r"([0-9]{4})-([0-9]{2})")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

# A message's delivery result as the statement reads it: the webhook's furthest status
# when there is one, else where the outbox row is.
DELIVERY_LABELS = {
    "sent": N_("Sent"),
    "delivered": N_("Delivered"),
    "read": N_("Read"),
    "failed": N_("Failed"),
}
OUTBOX_LABELS = {
    "pending": N_("Queued"),
    "sending": N_("Sending"),
    "sent": N_("Accepted by WhatsApp"),
    "failed": N_("Failed, will retry"),
    "dead": N_("Failed for good"),
    "unknown": N_("Outcome unknown"),
    "skipped": N_("Skipped"),
}
UNKNOWN_RESULT = N_("No record")


# ------------------------------------------------------------------ time helpers


def _zone() -> ZoneInfo:
    return ZoneInfo(get_settings().timezone or "Asia/Hong_Kong")


def _naive_utc(value: datetime) -> datetime:
    """An aware datetime in UTC without tzinfo (naive ones are UTC already)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def local_month(now: datetime | None = None) -> tuple[int, int]:
    """The (year, month) that ``now`` (UTC) falls in, in the store's time zone."""
    local = _naive_utc(now or utcnow()).replace(tzinfo=UTC).astimezone(_zone())
    return local.year, local.month


def _check_month(year: int, month: int) -> None:
    if not isinstance(year, int) or not isinstance(month, int) or not 1 <= month <= 12 \
            or not FIRST_YEAR <= year <= 9998:
        raise ValidationError("Choose a month as YYYY-MM, for example %(example)s.",
                              example="2026-11")


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    """The month's first instant and the next month's first instant, in the store's
    time zone, as naive UTC datetimes (start inclusive, end exclusive)."""
    _check_month(year, month)
    zone = _zone()
    start = datetime(year, month, 1, tzinfo=zone)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=zone)
    return _naive_utc(start), _naive_utc(end)


def parse_month(value: str | None, now: datetime | None = None) -> tuple[int, int]:
    """'2026-11' -> (2026, 11); blank -> the current month. Refuses other shapes,
    months before 2000 and months that have not started yet."""
    current = local_month(now)
    raw = (value or "").strip()
    if not raw:
        return current
    match = MONTH_RE.fullmatch(raw) if len(raw) <= 7 else None
    if not match:
        example = "{}-{:02d}".format(*current)
        raise ValidationError("Choose a month as YYYY-MM, for example %(example)s.",
                              example=example)
    year, month = int(match.group(1)), int(match.group(2))
    if not 1 <= month <= 12:
        raise ValidationError("%(value)s is not a month: months run from 01 to 12.", value=raw)
    if year < FIRST_YEAR:
        raise ValidationError("There are no statements before %(year)s.", year=FIRST_YEAR)
    if (year, month) > current:
        raise ValidationError("%(value)s has not started yet.", value=raw)
    return year, month


def shift_month(year: int, month: int, delta: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + delta
    return index // 12, index % 12 + 1


# ------------------------------------------------------------------ price


def price_at(when: datetime | None = None) -> tuple[int, str]:
    """(price_cents, currency) of one message sent at ``when`` (UTC): the latest price
    row in effect then (a later row set for the same date wins)."""
    when = _naive_utc(when or utcnow())
    row = db.session.execute(
        select(WhatsAppPrice.price_cents, WhatsAppPrice.currency)
        .where(WhatsAppPrice.effective_from <= when)
        .order_by(WhatsAppPrice.effective_from.desc(), WhatsAppPrice.id.desc()).limit(1)).first()
    return (int(row[0]), row[1]) if row else DEFAULT_PRICE


def _effective_start(effective_from: date | datetime | str | None) -> datetime:
    """A date (or 'YYYY-MM-DD') means that day's midnight in the store's time zone; a
    datetime is taken as is (naive = UTC). Returned as naive UTC."""
    if isinstance(effective_from, str):
        try:
            effective_from = date.fromisoformat(effective_from.strip())
        except ValueError:
            raise ValidationError("Choose the date the price starts from.") from None
    if effective_from is None:
        raise ValidationError("Choose the date the price starts from.")
    if isinstance(effective_from, datetime):
        return _naive_utc(effective_from)
    return _naive_utc(datetime.combine(effective_from, time(0), tzinfo=_zone()))


def set_price(price_text: str | None, effective_from: date | datetime | str | None,
              actor=None, *, now: datetime | None = None) -> WhatsAppPrice:
    """A new price per message from ``effective_from`` (today or later in the store's
    time zone). Past ledger rows keep their own price: nothing is rewritten.
    ``actor`` (who changed it) is accepted for the caller's history; the price table
    has no column for it."""
    cents = parse_money(price_text, field=PRICE_FIELD)
    if cents <= 0:
        raise ValidationError("%(field)s must be more than 0.", field=PRICE_FIELD)
    if cents > MAX_PRICE_CENTS:
        raise ValidationError("%(field)s can be at most %(max)s.", field=PRICE_FIELD,
                              max="HK$100.00")
    start = _effective_start(effective_from)
    zone = _zone()
    today = _naive_utc(now or utcnow()).replace(tzinfo=UTC).astimezone(zone).date()
    if start.replace(tzinfo=UTC).astimezone(zone).date() < today:
        raise ValidationError("A new price can start today or later, never in the past.")
    with write_transaction() as session:
        row = WhatsAppPrice(effective_from=start, price_cents=cents,
                            currency=get_settings().currency or "HKD")
        session.add(row)
    return row


def upcoming_prices(now: datetime | None = None) -> list[WhatsAppPrice]:
    """Price rows that start after ``now``, soonest first (for the settings page)."""
    now = _naive_utc(now or utcnow())
    return list(db.session.scalars(select(WhatsAppPrice).where(WhatsAppPrice.effective_from > now)
                                   .order_by(WhatsAppPrice.effective_from, WhatsAppPrice.id)))


# ------------------------------------------------------------------ the ledger


def _month_spent_expr(start: datetime, end: datetime):
    """What counts against the cap: accepted this month + held by reservations made
    this month. Two sums, so each uses its own index."""
    accepted = (select(func.coalesce(func.sum(WhatsAppCharge.price_cents), 0))
                .where(WhatsAppCharge.accepted_at >= start, WhatsAppCharge.accepted_at < end)
                .scalar_subquery())
    reserved = (select(func.coalesce(func.sum(WhatsAppCharge.price_cents), 0))
                .where(WhatsAppCharge.state == "reserved", WhatsAppCharge.reserved_at >= start,
                       WhatsAppCharge.reserved_at < end)
                .scalar_subquery())
    return accepted + reserved


def reserve(message_id: int, order_id: int | None, kind: str, now: datetime | None = None) -> bool:
    """Hold this message's price against the monthly cap. True: send it; False: the cap
    would be passed, send nothing. Call inside the caller's write transaction (else it
    runs in its own). A second call for the same message is a no-op returning True.

    The check and the insert are one INSERT … SELECT … WHERE statement: on SQLite the
    IMMEDIATE write transaction makes the database's single writer run it alone; on
    PostgreSQL the config row is locked FOR UPDATE first, so concurrent reservations
    queue and each sees the ones committed before it."""
    now = _naive_utc(now or utcnow())
    start, end = month_bounds(*local_month(now))
    with write_transaction() as session:
        if session.get_bind().dialect.name == "postgresql":
            # The lock needs a row to hold: make sure the config row exists.
            session.execute(insert_ignoring_duplicates(WhatsAppConfig, "id").values(id=1))
            session.execute(text("SELECT id FROM whatsapp_config WHERE id = 1 FOR UPDATE"))
        if session.scalar(select(WhatsAppCharge.id)
                          .where(WhatsAppCharge.outbox_message_id == message_id)) is not None:
            return True
        price, currency = price_at(now)
        cap = (select(WhatsAppConfig.monthly_cap_cents).where(WhatsAppConfig.id == 1)
               .scalar_subquery())
        allowed = or_(cap.is_(None), _month_spent_expr(start, end) + price <= cap)
        values = select(
            literal(message_id, Integer), literal(order_id, Integer), literal(kind[:40], String),
            literal("reserved", String), literal(now, DateTime), literal(price, Integer),
            literal(currency, String), literal("", String),
        ).where(allowed)
        statement = insert_ignoring_duplicates(WhatsAppCharge, "outbox_message_id").from_select(
            ["outbox_message_id", "order_id", "kind", "state", "reserved_at", "price_cents",
             "currency", "provider_message_id"], values)
        session.execute(statement)
        # Whether the row is there now (rowcount is not reliable for INSERT … SELECT on
        # every driver): absent means the cap refused it.
        return session.scalar(select(WhatsAppCharge.id)
                              .where(WhatsAppCharge.outbox_message_id == message_id)) is not None


def accept(message_id: int, provider_message_id: str, now: datetime | None = None) -> None:
    """The API accepted the message: its reservation becomes a billed row at ``now``.
    Idempotent. With no reservation (a caller that skipped reserve) the message is
    billed at the price of ``now`` all the same: the API took it."""
    now = _naive_utc(now or utcnow())
    wamid = (provider_message_id or "")[:128]
    _forget_sealed(now)
    with write_transaction() as session:
        _accept(session, message_id, wamid, now)
    _forget_sealed(now)  # again once committed: a statement may have sealed it meanwhile


def _accept(session, message_id: int, wamid: str, now: datetime) -> None:
    done = session.execute(
        update(WhatsAppCharge)
        .where(WhatsAppCharge.outbox_message_id == message_id,
               WhatsAppCharge.state == "reserved")
        .values(state="accepted", accepted_at=now, provider_message_id=wamid)
        .execution_options(synchronize_session=False)).rowcount
    if done:
        return
    message = session.get(OutboxMessage, message_id)
    price, currency = price_at(now)
    session.execute(insert_ignoring_duplicates(WhatsAppCharge, "outbox_message_id").values(
        outbox_message_id=message_id, order_id=message.order_id if message else None,
        kind=(message.kind if message else "")[:40], state="accepted", reserved_at=now,
        accepted_at=now, price_cents=price, currency=currency, provider_message_id=wamid))


def release(message_id: int) -> None:
    """The message was not sent: give its reservation back. An accepted row stays."""
    with write_transaction() as session:
        session.execute(delete(WhatsAppCharge).where(
            WhatsAppCharge.outbox_message_id == message_id, WhatsAppCharge.state == "reserved")
            .execution_options(synchronize_session=False))


def month_to_date_cents(now: datetime | None = None) -> int:
    """What this month's accepted messages cost so far (the bill, not the holds)."""
    start, end = month_bounds(*local_month(now))
    return int(db.session.scalar(
        select(func.coalesce(func.sum(WhatsAppCharge.price_cents), 0))
        .where(WhatsAppCharge.accepted_at >= start, WhatsAppCharge.accepted_at < end)) or 0)


# ------------------------------------------------------------------ the statement


@dataclass(frozen=True)
class StatementLine:
    kind: str
    label: str  # a msgid (N_): translate when shown
    count: int
    cents: int


@dataclass
class Statement:
    year: int
    month: int
    start: datetime
    end: datetime
    currency: str
    to_date: bool
    lines: list[StatementLine] = field(default_factory=list)
    total_count: int = 0
    total_cents: int = 0

    @property
    def key(self) -> str:
        return f"{self.year}-{self.month:02d}"


@dataclass(frozen=True)
class StatementMessage:
    charge_id: int
    accepted_at: datetime
    order_id: int | None
    order_number: str
    kind: str
    label: str
    cents: int
    currency: str
    status: str  # the outbox row's status ("" when the row is gone)
    delivery_status: str
    delivery_error: str

    @property
    def result(self) -> str:
        """The delivery result as a msgid."""
        if self.delivery_status:
            return DELIVERY_LABELS.get(self.delivery_status, self.delivery_status)
        return OUTBOX_LABELS.get(self.status, UNKNOWN_RESULT)


def _types() -> dict[str, str]:
    """type code -> label msgid, in the order of whatsapp.TYPES (W1's module), or {}."""
    try:
        from domain.notify.whatsapp import TYPES
    except ImportError:  # the channel's module is not there: codes sorted, as labels
        return {}
    return {code: str(getattr(t, "label", code)) for code, t in TYPES.items()}


def _label(kind: str, types: dict[str, str]) -> str:
    return types.get(kind) or kind


# The statement's sealed history: a month's aggregate up to SEAL before now, kept per
# process and database. A ledger row's accepted_at is the time accept() ran, so once a
# moment is SEAL in the past no row can still get an accepted_at before it (a send is a
# few seconds). Each statement then aggregates, in SQL over the index, only what came
# since the last one plus the open SEAL window, instead of the whole month (333,000 rows
# a month at 1,000,000 rows: 0.2-0.7 s on a busy 2-core machine). accept() with a `now`
# inside the sealed past (tests, back-filling) drops the process's copy.
SEAL = timedelta(hours=6)
_sealed: dict[tuple[str, int, int], tuple[datetime, dict[str, tuple[int, int]]]] = {}
_sealed_lock = threading.Lock()


def clear_statement_cache() -> None:
    """Forget every sealed aggregate (after writing ledger rows outside accept())."""
    with _sealed_lock:
        _sealed.clear()


def _aggregate(low: datetime, high: datetime) -> dict[str, tuple[int, int]]:
    """kind -> (count, cents) of rows accepted in [low, high): one GROUP BY over the
    accepted_at range of the (covering) index."""
    if high <= low:
        return {}
    rows = db.session.execute(
        select(WhatsAppCharge.kind, func.count(), func.sum(WhatsAppCharge.price_cents))
        .where(WhatsAppCharge.accepted_at >= low, WhatsAppCharge.accepted_at < high)
        .group_by(WhatsAppCharge.kind)).all()
    return {kind: (int(count), int(cents or 0)) for kind, count, cents in rows}


def _merge(*parts: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    total: dict[str, tuple[int, int]] = {}
    for part in parts:
        for kind, (count, cents) in part.items():
            have = total.get(kind, (0, 0))
            total[kind] = (have[0] + count, have[1] + cents)
    return total


def _month_aggregate(year: int, month: int, start: datetime, end: datetime,
                     cache: bool) -> dict[str, tuple[int, int]]:
    horizon = min(end, utcnow() - SEAL)
    if not cache or horizon <= start:
        return _aggregate(start, end)
    key = (str(db.engine.url), year, month)
    with _sealed_lock:
        cached = _sealed.get(key)
    if cached is not None and cached[0] <= horizon:
        sealed_at, sealed = cached
        sealed = _merge(sealed, _aggregate(sealed_at, horizon))
    else:
        sealed = _aggregate(start, horizon)
    with _sealed_lock:
        _sealed[key] = (horizon, sealed)
    return _merge(sealed, _aggregate(horizon, end))


def _forget_sealed(when: datetime) -> None:
    """A row accepted at ``when``: a sealed aggregate that should include it is stale."""
    if when < utcnow() - SEAL:
        clear_statement_cache()


def statement(year: int, month: int, now: datetime | None = None, *,
              cache: bool = True) -> Statement:
    """The month's bill: count and cost per message type (every known type, in their
    order, then any other code), the total. Accepted rows only: accepted_at is set only
    when a row is accepted, so the range on it is the (covering) index's own column.
    ``cache=False`` aggregates the whole month now (the sealed history is not used)."""
    start, end = month_bounds(year, month)
    found = _month_aggregate(year, month, start, end, cache)
    types = _types()
    order = list(types) + sorted(k for k in found if k not in types)
    lines = [StatementLine(kind, _label(kind, types), *found.get(kind, (0, 0))) for kind in order]
    now = now or utcnow()
    return Statement(
        year=year, month=month, start=start, end=end, currency=price_at(now)[1],
        to_date=(year, month) == local_month(now), lines=lines,
        total_count=sum(line.count for line in lines),
        total_cents=sum(line.cents for line in lines))


def _messages_query(start: datetime, end: datetime):
    return (select(WhatsAppCharge.id, WhatsAppCharge.accepted_at, WhatsAppCharge.order_id,
                   Order.number, WhatsAppCharge.kind, WhatsAppCharge.price_cents,
                   WhatsAppCharge.currency, OutboxMessage.status, OutboxMessage.delivery_status,
                   OutboxMessage.delivery_error)
            .outerjoin(OutboxMessage, OutboxMessage.id == WhatsAppCharge.outbox_message_id)
            .outerjoin(Order, Order.id == WhatsAppCharge.order_id)
            .where(WhatsAppCharge.accepted_at >= start, WhatsAppCharge.accepted_at < end))


def _message(row, types: dict[str, str]) -> StatementMessage:
    return StatementMessage(
        charge_id=row[0], accepted_at=row[1], order_id=row[2], order_number=row[3] or "",
        kind=row[4], label=_label(row[4], types), cents=int(row[5]), currency=row[6],
        status=row[7] or "", delivery_status=row[8] or "", delivery_error=row[9] or "")


def statement_messages(year: int, month: int, limit: int = 100,
                       offset: int = 0) -> list[StatementMessage]:
    """The month's billed messages, newest first, each with its order number and its
    delivery result (from the outbox row)."""
    start, end = month_bounds(year, month)
    limit, offset = max(0, min(int(limit), 1000)), max(0, int(offset))
    types = _types()
    # The page's ids first, from the covering index alone: an offset then skips index
    # entries, not joined rows.
    page = (select(WhatsAppCharge.id)
            .where(WhatsAppCharge.accepted_at >= start, WhatsAppCharge.accepted_at < end)
            .order_by(WhatsAppCharge.accepted_at.desc(), WhatsAppCharge.id.desc())
            .limit(limit).offset(offset).subquery())
    rows = db.session.execute(_messages_query(start, end)
                              .where(WhatsAppCharge.id.in_(select(page.c.id)))
                              .order_by(WhatsAppCharge.accepted_at.desc(),
                                        WhatsAppCharge.id.desc())).all()
    return [_message(row, types) for row in rows]


def _all_messages(year: int, month: int, chunk: int = 2000) -> Iterator[StatementMessage]:
    """Every message of the month, oldest first, read in keyset chunks (flat memory)."""
    start, end = month_bounds(year, month)
    types = _types()
    after = (start - timedelta(microseconds=1), 0)
    while True:
        rows = db.session.execute(
            _messages_query(start, end)
            .where(or_(WhatsAppCharge.accepted_at > after[0],
                       and_(WhatsAppCharge.accepted_at == after[0], WhatsAppCharge.id > after[1])))
            .order_by(WhatsAppCharge.accepted_at, WhatsAppCharge.id).limit(chunk)).all()
        if not rows:
            return
        for row in rows:
            yield _message(row, types)
        after = (rows[-1][1], rows[-1][0])


def _cell_text(value: str) -> str:
    """Text a spreadsheet would run as a formula gets a leading apostrophe."""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def statement_filename(year: int, month: int) -> str:
    return f"whatsapp-statement-{year}-{month:02d}.xlsx"


def statement_xlsx(year: int, month: int, *, translate: Callable[[str], str] = str,
                   now: datetime | None = None) -> bytes:
    """The statement as a workbook: a summary sheet (per type and the total) and every
    message. ``translate`` is the reader's gettext (headers and labels are msgids)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    t = translate
    bill = statement(year, month, now)
    zone = _zone()
    workbook = Workbook(write_only=True)
    bold = Font(bold=True)
    money = "#,##0.00"

    def header(ws, titles):
        cells = []
        for title in titles:
            cell = WriteOnlyCell(ws, value=_cell_text(t(title)))
            cell.font = bold
            cells.append(cell)
        ws.append(cells)

    summary = workbook.create_sheet(_cell_text(t(N_("Summary")))[:31])
    for letter, width in zip("ABC", (28, 12, 14), strict=True):
        summary.column_dimensions[letter].width = width
    month_label = f"{bill.key}" + (f" ({t(N_('to date'))})" if bill.to_date else "")
    summary.append([t(N_("Month")), month_label])
    summary.append([t(N_("Currency")), bill.currency])
    summary.append([])
    header(summary, [N_("Message type"), N_("Messages"), N_("Cost")])
    for line in bill.lines:
        cost = WriteOnlyCell(summary, value=line.cents / 100)
        cost.number_format = money
        summary.append([_cell_text(t(line.label)), line.count, cost])
    total = WriteOnlyCell(summary, value=bill.total_cents / 100)
    total.number_format = money
    total.font = bold
    label = WriteOnlyCell(summary, value=t(N_("Total")))
    label.font = bold
    summary.append([label, bill.total_count, total])

    sheet = workbook.create_sheet(_cell_text(t(N_("Messages")))[:31])
    for letter, width in zip("ABCDEF", (18, 14, 26, 10, 22, 40), strict=True):
        sheet.column_dimensions[letter].width = width
    sheet.freeze_panes = "A2"
    header(sheet, [N_("Time"), N_("Order number"), N_("Message type"), N_("Cost"),
                   N_("Delivery result"), N_("Error")])
    for message in _all_messages(year, month):
        local = message.accepted_at.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)
        when = WriteOnlyCell(sheet, value=local)
        when.number_format = "yyyy-mm-dd hh:mm"
        cost = WriteOnlyCell(sheet, value=message.cents / 100)
        cost.number_format = money
        sheet.append([when, _cell_text(message.order_number), _cell_text(t(message.label)), cost,
                      _cell_text(t(message.result)), _cell_text(message.delivery_error)])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


__all__ = ["DELIVERY_LABELS", "Statement", "StatementLine", "StatementMessage", "accept",
           "clear_statement_cache",
           "local_month", "month_bounds", "month_to_date_cents", "parse_month",
           "price_at", "release", "reserve", "set_price", "shift_month", "statement",
           "statement_filename", "statement_messages", "statement_xlsx", "upcoming_prices"]
