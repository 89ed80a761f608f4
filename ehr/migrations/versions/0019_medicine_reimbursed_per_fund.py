"""reference: whether each fund reimburses a medicine, where it differs from the national list

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 23:55:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'medicine_fund',
        sa.Column('version_id', sa.BigInteger(), primary_key=True),
        sa.Column('code', sa.String(13), primary_key=True),
        sa.Column('fund', sa.String(32), primary_key=True),
        sa.Column('reimbursable', sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('medicine_fund')
