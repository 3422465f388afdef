"""order counts per (kind, status), kept by triggers in the same transaction as each
change (issue 14): the status tabs, the To do view and the nav badges read one small
table instead of COUNT ... GROUP BY over every order

Revision ID: d1a3c5e7f9b2
Revises: c9f1b3d5e7a2
Create Date: 2026-12-02 19:10:00

Why triggers: an order's kind and status change in a dozen guarded UPDATEs (each
domain action, bulk ship, expiry sweeps, drafts turning into orders) and rows are
inserted in bulk by the demo seed and deleted with drafts. A trigger on `orders`
itself counts every one of them, in the same statement and so the same transaction:
a rolled-back action leaves the counts as they were. `flask orders recount` checks
and repairs them (domain.order_counts).

A draft's status is NULL; it is counted under status ''.
"""
import sqlalchemy as sa
from alembic import op

revision = 'd1a3c5e7f9b2'
down_revision = 'c9f1b3d5e7a2'
branch_labels = None
depends_on = None

_SQLITE = [
    """CREATE TRIGGER order_count_ai AFTER INSERT ON orders BEGIN
        INSERT OR IGNORE INTO order_count (kind, status, n)
            VALUES (NEW.kind, COALESCE(NEW.status, ''), 0);
        UPDATE order_count SET n = n + 1
            WHERE kind = NEW.kind AND status = COALESCE(NEW.status, '');
    END""",
    """CREATE TRIGGER order_count_ad AFTER DELETE ON orders BEGIN
        UPDATE order_count SET n = n - 1
            WHERE kind = OLD.kind AND status = COALESCE(OLD.status, '');
    END""",
    """CREATE TRIGGER order_count_au AFTER UPDATE OF kind, status ON orders
        WHEN OLD.kind IS NOT NEW.kind OR OLD.status IS NOT NEW.status BEGIN
        UPDATE order_count SET n = n - 1
            WHERE kind = OLD.kind AND status = COALESCE(OLD.status, '');
        INSERT OR IGNORE INTO order_count (kind, status, n)
            VALUES (NEW.kind, COALESCE(NEW.status, ''), 0);
        UPDATE order_count SET n = n + 1
            WHERE kind = NEW.kind AND status = COALESCE(NEW.status, '');
    END""",
]

# PostgreSQL: one function for the three events. The two count rows an UPDATE touches
# are changed in a fixed order (by status, then kind), so two transactions moving
# orders in opposite directions (a proof uploaded here, one declined there) lock them
# in the same order and cannot deadlock.
_PG_FUNCTION = """
CREATE FUNCTION order_count_bump(k text, s text, delta integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO order_count (kind, status, n) VALUES (k, s, delta)
    ON CONFLICT (kind, status) DO UPDATE SET n = order_count.n + delta;
END $$;
CREATE FUNCTION order_count_keep() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_key text; new_key text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM order_count_bump(NEW.kind, COALESCE(NEW.status, ''), 1);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM order_count_bump(OLD.kind, COALESCE(OLD.status, ''), -1);
    ELSIF OLD.kind IS DISTINCT FROM NEW.kind OR OLD.status IS DISTINCT FROM NEW.status THEN
        old_key := COALESCE(OLD.status, '') || '/' || OLD.kind;
        new_key := COALESCE(NEW.status, '') || '/' || NEW.kind;
        IF old_key < new_key THEN
            PERFORM order_count_bump(OLD.kind, COALESCE(OLD.status, ''), -1);
            PERFORM order_count_bump(NEW.kind, COALESCE(NEW.status, ''), 1);
        ELSE
            PERFORM order_count_bump(NEW.kind, COALESCE(NEW.status, ''), 1);
            PERFORM order_count_bump(OLD.kind, COALESCE(OLD.status, ''), -1);
        END IF;
    END IF;
    RETURN NULL;
END $$;
"""
_PG_TRIGGERS = """
CREATE TRIGGER order_count_ai AFTER INSERT ON orders
    FOR EACH ROW EXECUTE FUNCTION order_count_keep();
CREATE TRIGGER order_count_ad AFTER DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION order_count_keep();
CREATE TRIGGER order_count_au AFTER UPDATE OF kind, status ON orders
    FOR EACH ROW EXECUTE FUNCTION order_count_keep();
"""


def upgrade():
    op.create_table(
        'order_count',
        sa.Column('kind', sa.String(8), nullable=False),
        sa.Column('status', sa.String(24), nullable=False),
        sa.Column('n', sa.Integer(), nullable=False, server_default='0'),
        sa.PrimaryKeyConstraint('kind', 'status', name=op.f('pk_order_count')),
    )
    bind = op.get_bind()
    # The counts of the orders already here; the triggers keep them from now on.
    bind.execute(sa.text(
        "INSERT INTO order_count (kind, status, n) SELECT kind, COALESCE(status, ''), COUNT(*) "
        "FROM orders GROUP BY kind, COALESCE(status, '')"))
    if bind.dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGERS)
    else:
        for statement in _SQLITE:
            op.execute(statement)


def downgrade():
    bind = op.get_bind()
    for name in ("order_count_ai", "order_count_ad", "order_count_au"):
        op.execute(f"DROP TRIGGER IF EXISTS {name}" +
                   (" ON orders" if bind.dialect.name == "postgresql" else ""))
    if bind.dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS order_count_keep()")
        op.execute("DROP FUNCTION IF EXISTS order_count_bump(text, text, integer)")
    op.drop_table('order_count')
