"""reference: the usual daily dose range of a medicine (checked when it is prescribed)

Revision ID: 0012
Revises: 0007
Create Date: 2026-12-14 10:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('medicine', sa.Column('dose_min', sa.Numeric(10, 2), nullable=True))
    op.add_column('medicine', sa.Column('dose_max', sa.Numeric(10, 2), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('medicine') as batch:
        batch.drop_column('dose_max')
        batch.drop_column('dose_min')
