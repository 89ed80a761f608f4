"""security: access opened by a proof of presence ($start-care, $assist)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10 10:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'presence_grant',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('purpose', sa.String(length=16), nullable=False),
        sa.Column('actor', sa.String(length=140), nullable=False),
        sa.Column('subject', sa.String(length=255), nullable=False),
        sa.Column('patient_id', sa.String(length=64), nullable=False),
        sa.Column('reason', sa.String(length=1000), nullable=True),
        sa.Column('granted_at', sa.BigInteger(), nullable=False),
        sa.Column('expires_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_presence_grant_actor', 'presence_grant', ['actor', 'purpose', 'expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_presence_grant_actor', table_name='presence_grant')
    op.drop_table('presence_grant')
