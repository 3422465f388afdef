"""languages (issue 8): the store's language, each staff member's, each order's

Revision ID: e5c3a7b2c9f4
Revises: d4b2f6a1b8e3
Create Date: 2026-12-01 19:00:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'e5c3a7b2c9f4'
down_revision = 'd4b2f6a1b8e3'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMN (no batch copy): a copied orders table would lose the
    # search-index triggers, and adding a nullable column is instant.
    op.add_column('store_settings',
                  sa.Column('language', sa.String(16), nullable=False, server_default='en'))
    # NULL: the person has not chosen; they read the store's language.
    op.add_column('user', sa.Column('locale', sa.String(16), nullable=True))
    # NULL for orders placed before languages existed: they use the store's.
    op.add_column('orders', sa.Column('locale', sa.String(16), nullable=True))


def downgrade():
    # Plain DROP COLUMN (SQLite 3.35+ and PostgreSQL): a batch copy of orders would
    # trip the search-index triggers that name it.
    op.execute('ALTER TABLE "orders" DROP COLUMN locale')
    op.execute('ALTER TABLE "user" DROP COLUMN locale')
    op.execute('ALTER TABLE "store_settings" DROP COLUMN language')
