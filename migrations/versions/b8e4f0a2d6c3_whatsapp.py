"""whatsapp (issue 10): the channel's settings, prices, the billing ledger, webhook
statuses, and the outbox columns for a provider's delivery result

Revision ID: b8e4f0a2d6c3
Revises: a7d3e9f1c5b2
Create Date: 2026-12-02 03:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = 'b8e4f0a2d6c3'
down_revision = 'a7d3e9f1c5b2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'whatsapp_config',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column('sandbox', sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column('phone_number_id', sa.String(64), nullable=False, server_default=''),
        sa.Column('business_account_id', sa.String(64), nullable=False, server_default=''),
        sa.Column('access_token_enc', sa.Text(), nullable=False, server_default=''),
        sa.Column('app_secret_enc', sa.Text(), nullable=False, server_default=''),
        sa.Column('verify_token', sa.String(64), nullable=False, server_default=''),
        sa.Column('api_version', sa.String(10), nullable=False, server_default='v21.0'),
        sa.Column('status', sa.String(12), nullable=False, server_default=''),
        sa.Column('status_detail', sa.Text(), nullable=False, server_default=''),
        sa.Column('status_checked_at', sa.DateTime(), nullable=True),
        sa.Column('disabled_types', sa.JSON(), nullable=False, server_default='[]'),
        sa.Column('monthly_cap_cents', sa.Integer(), nullable=True),
        sa.Column('updated_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_whatsapp_config')),
    )
    op.create_table(
        'whatsapp_price',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('effective_from', sa.DateTime(), nullable=False),
        sa.Column('price_cents', sa.Integer(), nullable=False),
        sa.Column('currency', sa.String(3), nullable=False, server_default='HKD'),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_whatsapp_price')),
    )
    op.create_index('ix_whatsapp_price_from', 'whatsapp_price', ['effective_from'])
    # SPEC §2: HKD 0.15 a message, from the beginning.
    op.execute("INSERT INTO whatsapp_price (effective_from, price_cents, currency, created_at)"
               " VALUES ('2000-01-01 00:00:00', 15, 'HKD', CURRENT_TIMESTAMP)")
    op.create_table(
        'whatsapp_charge',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('outbox_message_id', sa.Integer(), nullable=False),
        sa.Column('order_id', sa.Integer(), nullable=True),
        sa.Column('kind', sa.String(40), nullable=False),
        sa.Column('state', sa.String(10), nullable=False),
        sa.Column('reserved_at', sa.DateTime(), nullable=False),
        sa.Column('accepted_at', sa.DateTime(), nullable=True),
        sa.Column('price_cents', sa.Integer(), nullable=False),
        sa.Column('currency', sa.String(3), nullable=False, server_default='HKD'),
        sa.Column('provider_message_id', sa.String(128), nullable=False, server_default=''),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_whatsapp_charge')),
        sa.UniqueConstraint('outbox_message_id', name='uq_whatsapp_charge_message'),
    )
    op.create_index('ix_whatsapp_charge_accepted', 'whatsapp_charge',
                    ['accepted_at', 'kind', 'price_cents'])
    op.create_index('ix_whatsapp_charge_reserved', 'whatsapp_charge', ['state', 'reserved_at'])
    op.create_index('ix_whatsapp_charge_kind', 'whatsapp_charge',
                    ['kind', 'accepted_at', 'price_cents'])
    op.create_table(
        'whatsapp_status',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('provider_message_id', sa.String(128), nullable=False),
        sa.Column('status', sa.String(12), nullable=False),
        sa.Column('occurred_at', sa.DateTime(), nullable=True),
        sa.Column('error_code', sa.String(20), nullable=False, server_default=''),
        sa.Column('error_title', sa.Text(), nullable=False, server_default=''),
        sa.Column('received_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_whatsapp_status')),
        sa.UniqueConstraint('provider_message_id', 'status', name='uq_whatsapp_status_message'),
    )
    op.add_column('outbox_message', sa.Column('provider_id', sa.String(128), nullable=True))
    op.add_column('outbox_message', sa.Column('delivery_status', sa.String(12), nullable=False,
                                              server_default=''))
    op.add_column('outbox_message', sa.Column('delivery_error', sa.Text(), nullable=False,
                                              server_default=''))
    op.add_column('outbox_message', sa.Column('delivery_at', sa.DateTime(), nullable=True))
    op.create_index('ix_outbox_provider', 'outbox_message', ['provider_id'])


def downgrade():
    op.drop_index('ix_outbox_provider', table_name='outbox_message')
    for name in ('delivery_at', 'delivery_error', 'delivery_status', 'provider_id'):
        op.drop_column('outbox_message', name)
    op.drop_table('whatsapp_status')
    op.drop_index('ix_whatsapp_charge_kind', table_name='whatsapp_charge')
    op.drop_index('ix_whatsapp_charge_reserved', table_name='whatsapp_charge')
    op.drop_index('ix_whatsapp_charge_accepted', table_name='whatsapp_charge')
    op.drop_table('whatsapp_charge')
    op.drop_index('ix_whatsapp_price_from', table_name='whatsapp_price')
    op.drop_table('whatsapp_price')
    op.drop_table('whatsapp_config')
