"""Text search over orders (SPEC §4, issue 4): one search box over customer
name, phone, email, product name, barcode and order number; partial,
case-insensitive, CJK included.

Every order has one searchable text, one field per line (see the migration
``b7e4c2d91a55_order_search_index``): number, customer name, phone as typed,
phone digits only, email, then each line's product name and barcode. A
search is a substring of one field, so it matches when it occurs anywhere in
that text; it never holds a newline, so it cannot match across two fields.

SQLite keeps the text in an FTS5 trigram table maintained by triggers:

* three characters or more: the search is quoted as one FTS5 phrase, so
  operators (``OR``, ``NEAR``, ``*``, ``"``) are plain text;
* one or two characters: trigrams cannot hold them, but every character of
  the text starts a trigram (the text ends with two newlines), so the search
  becomes an OR of the indexed trigrams that start with it, read from the
  fts5vocab table. Exact, and it still uses the index.

PostgreSQL runs ILIKE on the same text written as expressions that pg_trgm
GIN indexes cover.
"""

from __future__ import annotations

from sqlalchemy import String, false, func, literal, literal_column, or_, select, table, union
from sqlalchemy.sql import column

from domain.db import db
from domain.models import Order, OrderLine

# No field is longer than this (the longest, an email, is 254), and a match
# lies inside one field, so a longer search cannot match anything.
MAX_NEEDLE = 512
# Characters people put inside phone numbers; a search made only of digits
# and these is also tried as digits alone ("9123-4567" finds "9123 4567").
PHONE_SEPARATORS = frozenset(" ()+./-")
# Above every character, for "terms starting with" as a range.
_TOP = "\U0010ffff"

_fts = table("order_search", column("rowid"), column("order_search"))
_vocab = table("order_search_vocab", column("term"))

# PostgreSQL: must stay identical to the expressions indexed in the migration.
ORDER_TEXT = literal_column(
    "(coalesce(orders.number, '') || chr(10) || orders.customer_name || chr(10) || "
    "orders.customer_phone || chr(10) || "
    "regexp_replace(orders.customer_phone, '[ ()+./-]', '', 'g') || chr(10) || "
    "orders.customer_email)", String)
LINE_TEXT = literal_column("(order_line.product_name || chr(10) || order_line.barcode)", String)


def needles(q: str) -> list[str]:
    """The strings to look for: the search without control characters, and
    for a phone-like search also its digits alone. Longest first."""
    text = "".join(ch for ch in q if ch.isprintable()).strip()
    found = [text] if text else []
    if any(ch.isdigit() for ch in text) and all(
            ch.isdigit() or ch in PHONE_SEPARATORS for ch in text):
        digits = "".join(ch for ch in text if ch.isdigit())
        if digits != text:
            found.append(digits)
    return found


def _phrase(text: str) -> str:
    """``text`` as one FTS5 phrase: quoted, inner double quotes doubled."""
    return '"' + text.replace('"', '""') + '"'


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _sqlite_match(found: list[str]):
    """An FTS5 query (SQL expression) matching the documents holding any needle."""
    phrases = [_phrase(n) for n in found if len(n) >= 3]
    query = literal(" OR ".join(phrases), String) if phrases else None
    for short in (n.lower() for n in found if len(n) < 3):
        quoted = literal('"', String) + func.replace(_vocab.c.term, '"', '""') + literal('"', String)
        # '""' (an empty phrase) matches nothing when no trigram starts with it.
        expanded = func.coalesce(
            select(func.group_concat(quoted, " OR "))
            .where(_vocab.c.term >= short, _vocab.c.term < short + _TOP)
            .scalar_subquery(), literal('""', String))
        query = expanded if query is None else query + literal(" OR ", String) + expanded
    return query


def text_match(q: str, *, by_id: bool = True):
    """A clause over ``Order`` true for orders whose text contains ``q``.

    ``by_id=False`` (SQLite) keeps the planner from fetching the matching
    orders by id: for one page of a broad search it then walks the date
    index and stops after a page, instead of fetching and sorting every match.
    """
    found = [n for n in needles(q) if len(n) <= MAX_NEEDLE]
    if not found:
        return false()
    if db.engine.dialect.name == "sqlite":
        ids = select(_fts.c.rowid).where(_fts.c.order_search.op("MATCH")(_sqlite_match(found)))
        return (Order.id if by_id else Order.id + 0).in_(ids)
    patterns = [f"%{_escape_like(n)}%" for n in found]
    return Order.id.in_(union(
        select(Order.id).where(or_(*(ORDER_TEXT.ilike(p, escape="\\") for p in patterns))),
        select(OrderLine.order_id).where(or_(*(LINE_TEXT.ilike(p, escape="\\")
                                               for p in patterns)))))
