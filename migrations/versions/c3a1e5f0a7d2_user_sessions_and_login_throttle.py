"""user sessions and login throttle (issue 7)

user_session: one row per signed-in device; the cookies carry an id plus a
secret, the table only SHA-256 hashes of the secret and the remember token.
known_address: addresses a user has signed in from (exempt from the
account-wide and address-wide throttles).
login_throttle.last_attempt_at: when a failure streak last grew; keys become
per (account, address) pair with exponential back-off, so old rows (keyed
"email:" / "ip:") are dropped.

Revision ID: c3a1e5f0a7d2
Revises: b7e4c2d91a55
Create Date: 2026-12-01 18:40:00

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = 'c3a1e5f0a7d2'
down_revision = 'b7e4c2d91a55'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'user_session',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('secret_hash', sa.String(length=64), nullable=False),
        sa.Column('remember_hash', sa.String(length=64), nullable=True),
        sa.Column('previous_remember_hash', sa.String(length=64), nullable=True),
        sa.Column('remember_rotated_at', sa.DateTime(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.Column('user_agent', sa.String(length=255), nullable=False),
        sa.Column('device', sa.String(length=80), nullable=False),
        sa.Column('address', sa.String(length=45), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_user_session_user_id_user'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_user_session')),
    )
    with op.batch_alter_table('user_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_session_user_id'), ['user_id'], unique=False)

    op.create_table(
        'known_address',
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('address', sa.String(length=45), nullable=False),
        sa.Column('first_seen_at', sa.DateTime(), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_known_address_user_id_user'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('user_id', 'address', name=op.f('pk_known_address')),
    )

    # Old streaks were keyed by email or address alone; the new keys never read them.
    op.execute("DELETE FROM login_throttle")
    with op.batch_alter_table('login_throttle', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_attempt_at', sa.DateTime(), nullable=True))


def downgrade():
    op.execute("DELETE FROM login_throttle")
    with op.batch_alter_table('login_throttle', schema=None) as batch_op:
        batch_op.drop_column('last_attempt_at')
    op.drop_table('known_address')
    with op.batch_alter_table('user_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_session_user_id'))
    op.drop_table('user_session')
