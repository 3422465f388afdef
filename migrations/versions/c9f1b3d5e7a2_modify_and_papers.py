"""modify order and papers (issues 11, 12): an order's version, money received and
refunded, the extra charge's label, the customer's note; balance payments; carrier shipments; a job's
result summary; the invoice note

Revision ID: c9f1b3d5e7a2
Revises: b8e4f0a2d6c3
Create Date: 2026-12-02 05:40:00

"""
import json

import sqlalchemy as sa
from alembic import op

revision = 'c9f1b3d5e7a2'
down_revision = 'b8e4f0a2d6c3'
branch_labels = None
depends_on = None

def upgrade():
    # Plain ADD COLUMN (no batch copy of `orders`: its search triggers would be lost).
    op.add_column('orders', sa.Column('version', sa.Integer(), nullable=False, server_default='1'))
    op.add_column('orders', sa.Column('paid_cents', sa.Integer(), nullable=False, server_default='0'))
    op.add_column('orders', sa.Column('refunded_cents', sa.Integer(), nullable=False,
                                      server_default='0'))
    op.add_column('orders', sa.Column('extra_charge_label', sa.String(80), nullable=False,
                                      server_default=''))
    op.add_column('orders', sa.Column('customer_note', sa.Text(), nullable=False,
                                      server_default=''))
    bind = op.get_bind()
    # The customer has paid (or sent a proof for) the total of an order in these statuses.
    bind.execute(sa.text(
        "UPDATE orders SET paid_cents = total_cents WHERE kind = 'placed' AND status IN "
        "('pending_confirmation', 'processing', 'completed')"))
    # ...and canceled orders whose payment had been confirmed (rejected after payment):
    # their refund notes need what was paid.
    bind.execute(sa.text(
        "UPDATE orders SET paid_cents = total_cents WHERE kind = 'placed' AND status = 'canceled' "
        "AND id IN (SELECT order_id FROM order_event WHERE type = 'payment_confirmed')"))
    # Refunds recorded before this column: sum their events once.
    rows = bind.execute(sa.text(
        "SELECT order_id, details FROM order_event WHERE type = 'refund_noted'")).fetchall()
    refunded: dict[int, int] = {}
    for order_id, details in rows:
        if isinstance(details, str):
            details = json.loads(details or "{}")
        refunded[order_id] = refunded.get(order_id, 0) + int((details or {}).get("amount_cents") or 0)
    for order_id, cents in refunded.items():
        bind.execute(sa.text("UPDATE orders SET refunded_cents = :c WHERE id = :i"),
                     {"c": cents, "i": order_id})

    op.create_table(
        'balance_payment',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('order_id', sa.Integer(), nullable=False),
        sa.Column('amount_cents', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(10), nullable=False, server_default='pending'),
        sa.Column('proof_path', sa.String(255), nullable=True),
        sa.Column('proof_sha256', sa.String(64), nullable=True),
        sa.Column('reason', sa.Text(), nullable=False, server_default=''),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('decided_at', sa.DateTime(), nullable=True),
        sa.Column('decided_by', sa.String(254), nullable=False, server_default=''),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id'], ondelete='CASCADE',
                                name=op.f('fk_balance_payment_order_id_orders')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_balance_payment')),
    )
    op.create_index('ix_balance_payment_order_id', 'balance_payment', ['order_id'])
    op.create_index('ix_balance_payment_status', 'balance_payment', ['status'])

    op.create_table(
        'shipment',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('order_id', sa.Integer(), nullable=False),
        sa.Column('carrier', sa.String(40), nullable=False),
        sa.Column('tracking_code', sa.String(64), nullable=False),
        sa.Column('weight_grams', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('label', sa.JSON(), nullable=False, server_default='{}'),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id'], ondelete='CASCADE',
                                name=op.f('fk_shipment_order_id_orders')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_shipment')),
        sa.UniqueConstraint('order_id', name=op.f('uq_shipment_order_id')),
    )
    op.add_column('job', sa.Column('result', sa.JSON(), nullable=True))
    op.add_column('store_settings', sa.Column('invoice_note', sa.Text(), nullable=False,
                                              server_default=''))


def downgrade():
    op.drop_column('store_settings', 'invoice_note')
    op.drop_column('job', 'result')
    op.drop_table('shipment')
    op.drop_index('ix_balance_payment_status', table_name='balance_payment')
    op.drop_index('ix_balance_payment_order_id', table_name='balance_payment')
    op.drop_table('balance_payment')
    # DROP COLUMN one by one, again without copying `orders`.
    for column in ('customer_note', 'extra_charge_label', 'refunded_cents', 'paid_cents',
                   'version'):
        op.drop_column('orders', column)
