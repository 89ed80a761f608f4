"""claims: what has been dispensed on each prescription line (dispensing under a lock)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-11 10:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'dispense_line',
        sa.Column('line_id', sa.String(length=64), nullable=False),
        sa.Column('prescription', sa.String(length=64), nullable=False),
        sa.Column('dispensed_milli', sa.BigInteger(), nullable=False),
        sa.Column('dispenses', sa.Integer(), nullable=False),
        sa.Column('updated_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('line_id'),
    )
    op.create_index('ix_dispense_line_prescription', 'dispense_line', ['prescription'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_dispense_line_prescription', table_name='dispense_line')
    op.drop_table('dispense_line')
