"""Text search over orders (SPEC §4, issues 4 and 7): one search box over
customer name, phone, email, product and variant name, SKU, barcode and
order number; partial, case-insensitive, CJK included, read the way people
type it (full-width, simplified or traditional, spaced, with or without a
country code: domain/search_text.py).

Every order has one searchable text, one field per line
(``search_text.document``). A search is folded the same way and matches
when one of its needles (``search_text.needles``) occurs in that text; a
needle never holds a newline, so it cannot match across two fields.

SQLite keeps the text in an FTS5 trigram table written by triggers:

* three characters or more: the needle is quoted as one FTS5 phrase, so
  operators (``OR``, ``NEAR``, ``*``, ``"``) are plain text;
* one or two characters: trigrams cannot hold them, but every character of
  the text starts a trigram (the text ends with two newlines), so the needle
  becomes an OR of the indexed trigrams that start with it, read from the
  fts5vocab table. Exact, and it still uses the index.

PostgreSQL keeps it in order_search_doc: LIKE on the text (a pg_trgm GIN
index) for three characters or more, and for one or two, containment in the
array of the text's characters and character pairs (a GIN index), since
trigram indexes cannot serve them.
"""

from __future__ import annotations

from sqlalchemy import Integer, String, Text, bindparam, false, or_, select, table, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import column

from domain.db import db
from domain.models import Order
from domain.phones import store_region
from domain.search_text import needles as _needles

# No field is longer than this (the longest, an email, is 254), and a match
# lies inside one field, so a longer search cannot match anything.
MAX_NEEDLE = 512
# Above every character, for "terms starting with" as a range.
_TOP = "\U0010ffff"

_pg_doc = table("order_search_doc", column("order_id"), column("doc", Text),
                column("grams", ARRAY(Text)))


def needles(q: str) -> list[str]:
    """The strings to look for (see search_text.needles), in the store's country."""
    return _needles(q, store_region())


def _phrase(text: str) -> str:
    """``text`` as one FTS5 phrase: quoted, inner double quotes doubled."""
    return '"' + text.replace('"', '""') + '"'


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# The FTS5 query as SQL text with bound values: the same statement as SQLAlchemy's
# expression language would build (and cached the same way), without building ~50
# expression objects per search (a third of a millisecond, once or twice a request).
# A one- or two-character needle expands to the quoted trigrams that start with it.
_EXPAND = ("""coalesce((SELECT group_concat('"' || replace(term, '"', '""') || '"', ' OR ') """
           """FROM order_search_vocab WHERE term >= :{name} AND term < :{name}_top), '""')""")


def _sqlite_ids(found: list[str], from_id: int | None = None):
    """SELECT of the rowids of the documents holding any needle (an FTS5 MATCH), from
    ``from_id`` up when given (FTS5 seeks there: a broad search's recent matches are
    read without listing the older ones). Phrases are bound values, never SQL:
    operators typed in a search stay text."""
    parts, values = [], []
    phrases = [_phrase(n) for n in found if len(n) >= 3]
    if phrases:
        parts.append(":fts_phrases")
        values.append(bindparam("fts_phrases", " OR ".join(phrases), type_=String))
    for number, short in enumerate(n for n in found if len(n) < 3):
        name = f"fts_short_{number}"
        # '""' (an empty phrase) matches nothing when no trigram starts with it.
        parts.append(_EXPAND.format(name=name))
        values += [bindparam(name, short, type_=String),
                   bindparam(f"{name}_top", short + _TOP, type_=String)]
    match = " || ' OR ' || ".join(parts)
    since = ""
    if from_id is not None:
        since = " AND rowid >= :fts_from_id"
        values.append(bindparam("fts_from_id", from_id, type_=Integer))
    return text(f"SELECT rowid FROM order_search WHERE order_search MATCH {match}{since}") \
        .bindparams(*values).columns(column("rowid", Integer))


def _postgres_match(found: list[str]):
    """Rows of order_search_doc holding any needle (the text and needles are
    both folded to lower case in Python, so LIKE, not ILIKE)."""
    clauses = [_pg_doc.c.doc.like(f"%{_escape_like(n)}%", escape="\\")
               for n in found if len(n) >= 3]
    short = [n for n in found if len(n) < 3]
    if short:
        # One containment test per needle: "grams && ARRAY[...]" would be one
        # too, but GIN serves each @> with a single key lookup.
        clauses += [_pg_doc.c.grams.contains([n]) for n in short]
    return select(_pg_doc.c.order_id).where(or_(*clauses))


def matching_ids(q: str, *, from_id: int | None = None):
    """SELECT of the ids of the orders whose text contains ``q``, or None when no
    order can match (no needle, or none short enough to lie inside one field).
    ``from_id`` (SQLite only): only the ids from there up."""
    found = [n for n in needles(q) if len(n) <= MAX_NEEDLE]
    if not found:
        return None
    if db.engine.dialect.name == "sqlite":
        return _sqlite_ids(found, from_id)
    return _postgres_match(found)


def ids_clause(ids, *, by_id: bool = True):
    """A clause over ``Order`` true for the orders of ``ids`` (from matching_ids).

    ``by_id=False`` (SQLite) keeps the planner from fetching the matching
    orders by id: for one page of a broad search it then walks the date
    index and stops after a page, instead of fetching and sorting every match.
    """
    if ids is None:
        return false()
    if db.engine.dialect.name == "sqlite":
        return (Order.id if by_id else Order.id + 0).in_(ids)
    return Order.id.in_(ids)


def text_match(q: str, *, by_id: bool = True):
    """A clause over ``Order`` true for orders whose text contains ``q``."""
    return ids_clause(matching_ids(q), by_id=by_id)
