"""products and stock (issue 13): the stock ledger, low-stock thresholds, product
images, archived variants, typed payment details

Revision ID: a7d3e9f1c5b2
Revises: f6a2c4e8d0b1
Create Date: 2026-12-02 02:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = 'a7d3e9f1c5b2'
down_revision = 'f6a2c4e8d0b1'
branch_labels = None
depends_on = None

# The instructions the built-in manual methods shipped with: a store still showing
# one of them never told its customers where to pay.
PLACEHOLDERS = {
    'fps': 'Pay by FPS to our FPS ID, then upload the receipt.',
    'bank_transfer': 'Transfer to our bank account, then upload the receipt.',
    'payme': 'Pay with PayMe, then upload the screenshot.',
}


def upgrade():
    op.create_table(
        'stock_move',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('variant_id', sa.Integer(), nullable=False),
        sa.Column('delta', sa.Integer(), nullable=False),
        sa.Column('reason', sa.String(20), nullable=False),
        sa.Column('note', sa.String(200), nullable=False, server_default=''),
        sa.Column('order_id', sa.Integer(), nullable=True),
        sa.Column('order_number', sa.String(20), nullable=False, server_default=''),
        sa.Column('actor_type', sa.String(10), nullable=False, server_default='system'),
        sa.Column('actor_id', sa.Integer(), nullable=True),
        sa.Column('actor_label', sa.String(254), nullable=False, server_default=''),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['variant_id'], ['variant.id'], ondelete='CASCADE',
                                name=op.f('fk_stock_move_variant_id_variant')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_stock_move')),
    )
    op.create_index('ix_stock_move_variant', 'stock_move', ['variant_id', 'id'])
    op.create_index('ix_stock_move_order', 'stock_move', ['order_id'])
    # The ledger starts from the stock each variant has now.
    op.execute("INSERT INTO stock_move (variant_id, delta, reason, note, order_number, actor_type,"
               " actor_label, created_at) SELECT id, stock, 'opening', '', '', 'system',"
               " 'Shopdesk', CURRENT_TIMESTAMP FROM variant WHERE stock IS NOT NULL AND stock <> 0")

    op.add_column('variant', sa.Column('low_stock_threshold', sa.Integer(), nullable=True))
    op.add_column('variant', sa.Column('active', sa.Boolean(), nullable=False,
                                       server_default=sa.true()))
    op.add_column('product', sa.Column('image_path', sa.String(255), nullable=True))
    op.add_column('product', sa.Column('archived_at', sa.DateTime(), nullable=True))
    # A barcode, when there is one, names one variant (empty barcodes are many).
    op.create_index('uq_variant_barcode', 'variant', ['barcode'], unique=True,
                    sqlite_where=sa.text("barcode <> ''"),
                    postgresql_where=sa.text("barcode <> ''"))

    for name, size in (('payee_name', 120), ('fps_id', 120), ('bank_name', 120),
                       ('account_number', 40), ('payme_link', 300)):
        op.add_column('payment_method', sa.Column(name, sa.String(size), nullable=False,
                                                  server_default=''))
    # A built-in manual method still on its placeholder cannot take a payment: it is
    # switched off until its details are filled in (the setup checklist says so).
    payment_method = sa.table('payment_method', sa.column('code'), sa.column('instructions'),
                              sa.column('enabled'))
    for code, text in PLACEHOLDERS.items():
        op.execute(payment_method.update()
                   .where(payment_method.c.code == code, payment_method.c.instructions == text)
                   .values(enabled=False, instructions=''))


def downgrade():
    for name in ('payme_link', 'account_number', 'bank_name', 'fps_id', 'payee_name'):
        op.drop_column('payment_method', name)
    op.drop_index('uq_variant_barcode', table_name='variant')
    op.drop_column('product', 'archived_at')
    op.drop_column('product', 'image_path')
    op.drop_column('variant', 'active')
    op.drop_column('variant', 'low_stock_threshold')
    op.drop_index('ix_stock_move_order', table_name='stock_move')
    op.drop_index('ix_stock_move_variant', table_name='stock_move')
    op.drop_table('stock_move')
