"""order counts bumped at commit on PostgreSQL (issue 14): the count triggers are
deferred constraint triggers, so a transaction locks its count row for the moment of
its commit, not from its first change of an order to its end

Revision ID: f2b4d6e8a0c1
Revises: e7a9c1b3d5f6
Create Date: 2026-12-04 21:40:00

Every new order bumps the same row of order_count (placed, pending payment). With
plain AFTER triggers that row stayed locked from the order's INSERT to the commit,
through the lines, the history, the outbox and the search text, and every other
checkout waited for it: PostgreSQL checkouts ran one at a time. Deferred, the
bump runs as the transaction commits. The counts stay exact and transactional
(the recount's table lock still excludes a commit's bump), and a rollback still
bumps nothing. SQLite keeps its triggers: it has one writer at a time anyway.
"""
from alembic import op

revision = 'f2b4d6e8a0c1'
down_revision = 'e7a9c1b3d5f6'
branch_labels = None
depends_on = None

_EVENTS = {"order_count_ai": "INSERT", "order_count_ad": "DELETE",
           "order_count_au": "UPDATE OF kind, status"}


def _recreate(constraint: bool) -> None:
    for name, event in _EVENTS.items():
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON orders")
        if constraint:
            op.execute(f"CREATE CONSTRAINT TRIGGER {name} AFTER {event} ON orders "
                       "DEFERRABLE INITIALLY DEFERRED "
                       "FOR EACH ROW EXECUTE FUNCTION order_count_keep()")
        else:
            op.execute(f"CREATE TRIGGER {name} AFTER {event} ON orders "
                       "FOR EACH ROW EXECUTE FUNCTION order_count_keep()")


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        _recreate(constraint=True)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        _recreate(constraint=False)
