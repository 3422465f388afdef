"""a narrow (id, kind, status) index of orders (issue 14): a search's tab counts probe
it for each match instead of the wide covering index

Revision ID: a3c5e7f9b1d4
Revises: f2b4d6e8a0c1
Create Date: 2026-12-07 14:20:00

A text search's tab counts read the status of up to 1,001 matching orders, one probe
by id each. The covering index of every list filter (ix_orders_search_cover, nine
columns) made each probe decode a wide entry: 1.34 ms for the 1,001 probes of "大文"
at 100,000 orders, against 0.73 ms through three columns. A filtered search (a date,
a method) still uses the wide one: only it has those columns.
"""
from alembic import op

revision = 'a3c5e7f9b1d4'
down_revision = 'f2b4d6e8a0c1'
branch_labels = None
depends_on = None

NAME = "ix_orders_status_by_id"


def upgrade():
    op.create_index(NAME, "orders", ["id", "kind", "status"])
    bind = op.get_bind()
    if bind.dialect.name != "sqlite" or not bind.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").first():
        return
    # Planner figures in the shape of the wide index's (migration b7e4c2d91a55): unique
    # from its first column. Equal figures, the planner takes the narrower index where
    # it covers the query. A later ANALYZE measures real ones.
    row = bind.exec_driver_sql("SELECT stat FROM sqlite_stat1 WHERE tbl = 'orders' "
                               "AND idx = 'ix_orders_search_cover'").first()
    total = row[0].split()[0] if row else "100000"
    bind.exec_driver_sql("DELETE FROM sqlite_stat1 WHERE tbl = 'orders' AND idx = ?", (NAME,))
    bind.exec_driver_sql("INSERT INTO sqlite_stat1(tbl, idx, stat) VALUES ('orders', ?, ?)",
                         (NAME, f"{total} 1 1 1"))
    bind.exec_driver_sql("ANALYZE sqlite_schema")  # load the figures


def downgrade():
    op.drop_index(NAME, table_name="orders")
