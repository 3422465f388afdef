"""order search index (issue 4)

One searchable text per order: number, customer name, phone (as typed and
digits only), email, and every line's product name and barcode, each field
on its own line ("\\n" never occurs in a search, so no match can span two
fields). domain/search_index.py queries it; keep the two in step.

SQLite: an FTS5 table with the trigram tokenizer (rowid = orders.id), kept
right by triggers on orders and order_line, so bulk INSERTs (seed-demo) and
every domain action maintain it without application code. Plus an fts5vocab
table: searches shorter than three characters expand to the indexed
trigrams that start with them.

PostgreSQL: pg_trgm GIN indexes on the same text written as expressions over
orders and order_line; the search is an ILIKE on those expressions.

Revision ID: b7e4c2d91a55
Revises: 3029accd4e47
Create Date: 2026-11-28 13:10:00

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = 'b7e4c2d91a55'
down_revision = '3029accd4e47'
branch_labels = None
depends_on = None


# ---------------------------------------------------------------- SQLite

# Only separators are dropped for the digits-only phone; anything else stays
# (the phone as typed is indexed too).
_SQLITE_PHONE_DIGITS = ("replace(replace(replace(replace(replace(replace(replace("
                        "o.customer_phone, ' ', ''), '-', ''), '+', ''), '(', ''), ')', ''),"
                        " '.', ''), '/', '')")

# The document of order :id. Ends with two newlines so that every character
# of the text starts at least one trigram (what 1- and 2-character searches
# look up in the vocabulary).
_SQLITE_DOCUMENT = f"""
SELECT o.id,
       coalesce(o.number, '') || char(10) ||
       o.customer_name || char(10) ||
       o.customer_phone || char(10) ||
       {_SQLITE_PHONE_DIGITS} || char(10) ||
       o.customer_email || char(10) ||
       coalesce((SELECT group_concat(l.product_name || char(10) || l.barcode, char(10))
                   FROM order_line AS l WHERE l.order_id = o.id), '') ||
       char(10) || char(10)
  FROM orders AS o
"""


def _reindex(order_id: str) -> str:
    """Statements (trigger body) that rebuild the document of ``order_id``."""
    return (f"DELETE FROM order_search WHERE rowid = {order_id};\n"
            f"INSERT INTO order_search(rowid, doc) {_SQLITE_DOCUMENT} WHERE o.id = {order_id};\n")


_SQLITE_TRIGGERS = {
    "order_search_orders_ai": f"""
        CREATE TRIGGER order_search_orders_ai AFTER INSERT ON orders BEGIN
        {_reindex('NEW.id')}
        END""",
    "order_search_orders_au": f"""
        CREATE TRIGGER order_search_orders_au
        AFTER UPDATE OF id, number, customer_name, customer_phone, customer_email ON orders
        BEGIN
        DELETE FROM order_search WHERE rowid = OLD.id;
        {_reindex('NEW.id')}
        END""",
    "order_search_orders_ad": """
        CREATE TRIGGER order_search_orders_ad AFTER DELETE ON orders BEGIN
        DELETE FROM order_search WHERE rowid = OLD.id;
        END""",
    "order_search_line_ai": f"""
        CREATE TRIGGER order_search_line_ai AFTER INSERT ON order_line BEGIN
        {_reindex('NEW.order_id')}
        END""",
    "order_search_line_au": f"""
        CREATE TRIGGER order_search_line_au
        AFTER UPDATE OF order_id, product_name, barcode ON order_line BEGIN
        {_reindex('OLD.order_id')}
        {_reindex('NEW.order_id')}
        END""",
    # When the order itself is being deleted its row is already gone, so the
    # rebuild finds nothing and the document simply stays deleted.
    "order_search_line_ad": f"""
        CREATE TRIGGER order_search_line_ad AFTER DELETE ON order_line BEGIN
        {_reindex('OLD.order_id')}
        END""",
}


# Search matches come back as order ids; the list then counts them per status
# and filters them. This index holds, per id, every column OrderQuery filters
# on, so those lookups read a few MB of index instead of whole order rows
# (about half the time at 100,000 orders). domain/models.py should declare it.
COVER_INDEX = "ix_orders_search_cover"
COVER_COLUMNS = ["id", "kind", "status", "placed_at", "created_at", "payment_method_id",
                 "shipping_method_id", "delivery_status", "source"]

# Planner statistics for orders, the shape of any real store: nearly every
# order is "placed", five statuses, the rest close to unique. Without them
# SQLite takes "kind = 'placed'" for a selective index and scans the whole
# kind index probing every search match, instead of fetching the matches by
# id (5-20 ms wasted per query at 100,000 orders). They replace any figures
# there were for orders; a later ANALYZE replaces them with measured ones.
_ORDERS_STAT1 = {
    "ix_order_kind_placed": "100000 50000 1",
    "ix_order_kind_status_placed": "100000 50000 10000 1",
    "ix_order_status_deadline": "100000 20000 2",
    "ix_orders_customer_id": "100000 4",
    "ix_orders_proof_sha256": "100000 1",
    COVER_INDEX: "100000" + " 1" * len(COVER_COLUMNS),
}


def _write_orders_stats():
    bind = op.get_bind()
    bind.exec_driver_sql("ANALYZE sqlite_schema")  # creates sqlite_stat1 if missing
    bind.exec_driver_sql("DELETE FROM sqlite_stat1 WHERE tbl = 'orders'")
    for _, name, unique, *_ in bind.exec_driver_sql("PRAGMA index_list(orders)").all():
        stat = "100000 1" if unique else _ORDERS_STAT1.get(name)
        if stat:
            bind.exec_driver_sql(
                "INSERT INTO sqlite_stat1(tbl, idx, stat) VALUES ('orders', ?, ?)", (name, stat))
    bind.exec_driver_sql("ANALYZE sqlite_schema")  # load them


def _upgrade_sqlite():
    op.execute("CREATE VIRTUAL TABLE order_search USING fts5(doc, tokenize = 'trigram')")
    op.execute("CREATE VIRTUAL TABLE order_search_vocab USING fts5vocab(order_search, 'row')")
    op.execute(f"INSERT INTO order_search(rowid, doc) {_SQLITE_DOCUMENT}")
    for sql in _SQLITE_TRIGGERS.values():
        op.execute(sql)
    op.create_index(COVER_INDEX, "orders", COVER_COLUMNS)
    _write_orders_stats()


def _downgrade_sqlite():
    for name in _SQLITE_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute("DROP TABLE IF EXISTS order_search_vocab")
    op.execute("DROP TABLE IF EXISTS order_search")
    op.drop_index(COVER_INDEX, "orders")


# ------------------------------------------------------------ PostgreSQL

# Must stay identical to ORDER_TEXT / LINE_TEXT in domain/search_index.py,
# or PostgreSQL will not use the indexes.
_PG_ORDER_TEXT = ("(coalesce(number, '') || chr(10) || customer_name || chr(10) || "
                  "customer_phone || chr(10) || "
                  "regexp_replace(customer_phone, '[ ()+./-]', '', 'g') || chr(10) || "
                  "customer_email)")
_PG_LINE_TEXT = "(product_name || chr(10) || barcode)"


def _upgrade_postgresql():
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute(f"CREATE INDEX ix_orders_search_trgm ON orders "
               f"USING gin ({_PG_ORDER_TEXT} gin_trgm_ops)")
    op.execute(f"CREATE INDEX ix_order_line_search_trgm ON order_line "
               f"USING gin ({_PG_LINE_TEXT} gin_trgm_ops)")
    op.create_index(COVER_INDEX, "orders", COVER_COLUMNS)


def _downgrade_postgresql():
    op.execute("DROP INDEX IF EXISTS ix_order_line_search_trgm")
    op.execute("DROP INDEX IF EXISTS ix_orders_search_trgm")
    op.drop_index(COVER_INDEX, "orders")


def upgrade():
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _upgrade_sqlite()
    elif dialect == "postgresql":
        _upgrade_postgresql()


def downgrade():
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _downgrade_sqlite()
    elif dialect == "postgresql":
        _downgrade_postgresql()
