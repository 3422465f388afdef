"""notifications (issue 9): the outbox, desk notifications, resend count

Revision ID: f6a2c4e8d0b1
Revises: e5c3a7b2c9f4
Create Date: 2026-12-01 22:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = 'f6a2c4e8d0b1'
down_revision = 'e5c3a7b2c9f4'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'outbox_message',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('event_key', sa.String(80), nullable=False),
        sa.Column('channel', sa.String(16), nullable=False),
        sa.Column('recipient', sa.String(254), nullable=False),
        sa.Column('audience', sa.String(10), nullable=False),
        sa.Column('kind', sa.String(40), nullable=False),
        sa.Column('order_id', sa.Integer(), nullable=True),
        sa.Column('event_id', sa.Integer(), nullable=True),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('status', sa.String(10), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
        sa.Column('claimed_at', sa.DateTime(), nullable=True),
        sa.Column('claim_token', sa.String(32), nullable=True),
        sa.Column('sent_at', sa.DateTime(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=False),
        sa.Column('subject', sa.String(300), nullable=False),
        sa.Column('copy_path', sa.String(255), nullable=True),
        sa.Column('params', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id'], ondelete='CASCADE',
                                name=op.f('fk_outbox_message_order_id_orders')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_message')),
        sa.UniqueConstraint('event_key', 'channel', 'recipient',
                            name='uq_outbox_event_channel_recipient'),
    )
    op.create_index('ix_outbox_order', 'outbox_message', ['order_id', 'id'])
    op.create_index('ix_outbox_due', 'outbox_message', ['status', 'next_attempt_at'])
    op.create_table(
        'desk_notification',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('order_id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(40), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('read_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE',
                                name=op.f('fk_desk_notification_user_id_user')),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id'], ondelete='CASCADE',
                                name=op.f('fk_desk_notification_order_id_orders')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_desk_notification')),
        sa.UniqueConstraint('user_id', 'event_id', name='uq_desk_notification_user_event'),
    )
    op.create_index('ix_desk_notification_user_unread', 'desk_notification',
                    ['user_id', 'read_at', 'id'])
    op.create_index('ix_desk_notification_order', 'desk_notification', ['order_id'])
    # Plain ADD COLUMN: a batch copy of orders would lose the search triggers.
    op.add_column('orders', sa.Column('email_resends', sa.Integer(), nullable=False,
                                      server_default='0'))


def downgrade():
    op.execute('ALTER TABLE "orders" DROP COLUMN email_resends')
    op.drop_table('desk_notification')
    op.drop_table('outbox_message')
