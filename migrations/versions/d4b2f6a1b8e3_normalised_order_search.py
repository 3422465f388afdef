"""normalised order search (issue 7)

The search text of an order is now built by domain.search_text.document:
NFKC, traditional and simplified Chinese folded to one script, whitespace
tidied, phone digits per number, each line's variant and SKU. Python does the normalising, so:

* orders gets customer_phone_e164 (domain.phones.store_e164), backfilled
  here in the store's country;
* SQLite: the triggers on orders and order_line now call
  shopdesk_search_document(), a Python function registered on every
  connection (domain/search_text.py). Bulk INSERTs (seed-demo) stay indexed.
  A tool that writes orders without that function gets "no such function"
  and writes nothing, instead of leaving the index stale;
* PostgreSQL: one row per order in order_search_doc (the text, GIN trigram
  index, and its characters and character pairs, GIN index, for one- and
  two-character searches). Triggers queue changed orders in
  order_search_stale; the committing session rewrites their text in the
  same transaction (domain.search_text.refresh_postgres). The expression
  indexes of b7e4c2d91a55 go.

Revision ID: d4b2f6a1b8e3
Revises: c3a1e5f0a7d2
Create Date: 2026-12-01 18:40:00

"""
import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

from domain.phones import DEFAULT_REGION, region_for, to_e164
from domain.search_text import refresh_postgres, register_sqlite

# revision identifiers, used by Alembic.
revision = 'd4b2f6a1b8e3'
down_revision = 'c3a1e5f0a7d2'
branch_labels = None
depends_on = None

BATCH = 5000

# ---------------------------------------------------------------- SQLite

_SQLITE_DOCUMENT = """
SELECT o.id,
       shopdesk_search_document(
           o.number, o.customer_name, o.customer_phone, o.customer_email,
           (SELECT group_concat(l.product_name || char(31) || l.variant_name || char(31) ||
                                l.sku || char(31) || l.barcode, char(30))
              FROM order_line AS l WHERE l.order_id = o.id))
  FROM orders AS o
"""


def _reindex(order_id: str) -> str:
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
        AFTER UPDATE OF order_id, product_name, variant_name, sku, barcode ON order_line BEGIN
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


def _previous():
    """The b7e4c2d91a55 migration module (its triggers and indexes, for downgrade)."""
    path = Path(__file__).with_name("b7e4c2d91a55_order_search_index.py")
    spec = importlib.util.spec_from_file_location("b7e4c2d91a55", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _drop_triggers():
    for name in _SQLITE_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")


# ---------------------------------------------------------------- both


def _region(bind) -> str:
    row = bind.execute(sa.text(
        "SELECT timezone, currency FROM store_settings ORDER BY id LIMIT 1")).first()
    return region_for(row[0], row[1]) if row else DEFAULT_REGION


def _backfill_e164(bind):
    region = _region(bind)
    rows = bind.execute(sa.text(
        "SELECT id, customer_phone FROM orders WHERE customer_phone <> ''")).all()
    values = [{"id": i, "e164": to_e164(phone, region)} for i, phone in rows]
    values = [v for v in values if v["e164"]]
    for start in range(0, len(values), BATCH):
        bind.execute(sa.text("UPDATE orders SET customer_phone_e164 = :e164 WHERE id = :id"),
                     values[start:start + BATCH])


def _add_column():
    op.add_column("orders", sa.Column("customer_phone_e164", sa.String(20), nullable=False,
                                      server_default=""))


# ------------------------------------------------------------ PostgreSQL

_PG_FUNCTIONS = """
CREATE FUNCTION order_search_queue_orders() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO order_search_stale (order_id) VALUES (NEW.id), (OLD.id)
            ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO order_search_stale (order_id)
            SELECT DISTINCT id FROM new_rows ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;
CREATE FUNCTION order_search_queue_lines() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO order_search_stale (order_id) VALUES (NEW.order_id), (OLD.order_id)
            ON CONFLICT DO NOTHING;
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO order_search_stale (order_id)
            SELECT DISTINCT order_id FROM new_rows ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO order_search_stale (order_id)
            SELECT DISTINCT order_id FROM old_rows ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;
"""

# Bulk inserts (seed-demo) queue once per statement; an update of a search
# field once per row (PostgreSQL allows no transition tables with UPDATE OF).
_PG_TRIGGERS = """
CREATE TRIGGER order_search_orders_ai AFTER INSERT ON orders
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION order_search_queue_orders();
CREATE TRIGGER order_search_orders_au
    AFTER UPDATE OF id, number, customer_name, customer_phone, customer_email ON orders
    FOR EACH ROW EXECUTE FUNCTION order_search_queue_orders();
CREATE TRIGGER order_search_line_ai AFTER INSERT ON order_line
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION order_search_queue_lines();
CREATE TRIGGER order_search_line_au
    AFTER UPDATE OF order_id, product_name, variant_name, sku, barcode ON order_line
    FOR EACH ROW EXECUTE FUNCTION order_search_queue_lines();
CREATE TRIGGER order_search_line_ad AFTER DELETE ON order_line
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION order_search_queue_lines();
"""


def _upgrade_postgresql():
    bind = op.get_bind()
    _add_column()
    _backfill_e164(bind)
    op.execute("DROP INDEX IF EXISTS ix_orders_search_trgm")
    op.execute("DROP INDEX IF EXISTS ix_order_line_search_trgm")
    op.execute("""
        CREATE TABLE order_search_doc (
            order_id integer PRIMARY KEY REFERENCES orders (id) ON DELETE CASCADE,
            doc text NOT NULL,
            grams text[] NOT NULL)""")
    op.execute("CREATE TABLE order_search_stale (order_id integer PRIMARY KEY)")
    op.execute("CREATE INDEX ix_order_search_doc_trgm ON order_search_doc "
               "USING gin (doc gin_trgm_ops)")
    op.execute("CREATE INDEX ix_order_search_doc_grams ON order_search_doc USING gin (grams)")
    op.execute(_PG_FUNCTIONS)
    op.execute(_PG_TRIGGERS)
    op.execute("INSERT INTO order_search_stale (order_id) SELECT id FROM orders")
    refresh_postgres(bind)


def _downgrade_postgresql():
    for name, table in (("order_search_orders_ai", "orders"), ("order_search_orders_au", "orders"),
                        ("order_search_line_ai", "order_line"),
                        ("order_search_line_au", "order_line"),
                        ("order_search_line_ad", "order_line")):
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS order_search_queue_orders()")
    op.execute("DROP FUNCTION IF EXISTS order_search_queue_lines()")
    op.execute("DROP TABLE IF EXISTS order_search_stale")
    op.execute("DROP TABLE IF EXISTS order_search_doc")
    previous = _previous()
    op.execute(f"CREATE INDEX ix_orders_search_trgm ON orders "
               f"USING gin ({previous._PG_ORDER_TEXT} gin_trgm_ops)")
    op.execute(f"CREATE INDEX ix_order_line_search_trgm ON order_line "
               f"USING gin ({previous._PG_LINE_TEXT} gin_trgm_ops)")
    op.drop_column("orders", "customer_phone_e164")


# ---------------------------------------------------------------- SQLite


def _upgrade_sqlite():
    bind = op.get_bind()
    register_sqlite(bind.connection.driver_connection)
    _drop_triggers()
    _add_column()  # ADD COLUMN: no table copy, so no trigger or index is lost
    _backfill_e164(bind)
    op.execute("DELETE FROM order_search")
    op.execute(f"INSERT INTO order_search(rowid, doc) {_SQLITE_DOCUMENT}")
    for sql in _SQLITE_TRIGGERS.values():
        op.execute(sql)


def _downgrade_sqlite():
    previous = _previous()
    _drop_triggers()
    op.execute("DELETE FROM order_search")
    op.execute(f"INSERT INTO order_search(rowid, doc) {previous._SQLITE_DOCUMENT}")
    for sql in previous._SQLITE_TRIGGERS.values():
        op.execute(sql)
    # DROP COLUMN needs no table copy here (the column has no index).
    op.execute("ALTER TABLE orders DROP COLUMN customer_phone_e164")


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
