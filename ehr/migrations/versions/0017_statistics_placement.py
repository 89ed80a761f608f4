"""claims: the statistics' patient placement and coverage starts, the ledger's ALD flag and care kind

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-21 10:00:00.000000

The two tables are kept by a write hook from then on; an existing database fills them with
``sijill statistics refresh`` (docs/statistics.md).  Sheets decided before this revision have no
ALD flag nor care kind (the statistics show them as ``undecided``/their care setting).
"""
from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'patient_place',
        sa.Column('patient_id', sa.String(64), primary_key=True),
        sa.Column('province', sa.String(40), nullable=True),
        sa.Column('region', sa.String(2), nullable=False),
    )
    op.create_index('ix_patient_place_region', 'patient_place', ['region', 'province'])
    op.create_table(
        'coverage_start',
        sa.Column('coverage_id', sa.String(64), primary_key=True),
        sa.Column('patient_id', sa.String(64), nullable=False),
        sa.Column('fund_code', sa.String(32), nullable=False),
        sa.Column('starts_on', sa.String(10), nullable=False),
    )
    op.create_index('ix_coverage_start_starts_on', 'coverage_start', ['starts_on'])
    op.create_index('ix_coverage_start_patient', 'coverage_start', ['patient_id'])
    op.add_column('claim_ledger', sa.Column('care_kind', sa.String(16), nullable=True))
    op.add_column('claim_ledger', sa.Column('ald', sa.SmallInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('claim_ledger') as batch:
        batch.drop_column('ald')
        batch.drop_column('care_kind')
    op.drop_index('ix_coverage_start_patient', table_name='coverage_start')
    op.drop_index('ix_coverage_start_starts_on', table_name='coverage_start')
    op.drop_table('coverage_start')
    op.drop_index('ix_patient_place_region', table_name='patient_place')
    op.drop_table('patient_place')
