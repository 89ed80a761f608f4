"""claims: registry feeds, RSU thresholds, coverage transitions (the coverage cliff)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-12 10:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'rsu_threshold',
        sa.Column('version_id', sa.BigInteger(), nullable=False),
        sa.Column('programme', sa.String(length=16), nullable=False),
        sa.Column('threshold', sa.Numeric(12, 7), nullable=False),
        sa.PrimaryKeyConstraint('version_id', 'programme'),
    )
    op.create_table(
        'registry_feed',
        sa.Column('id', ROW_ID, autoincrement=True, nullable=False),
        sa.Column('sender', sa.String(length=140), nullable=False),
        sa.Column('format', sa.String(length=8), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('received_at', sa.BigInteger(), nullable=False),
        sa.Column('row_count', sa.Integer(), nullable=False),
        sa.Column('patients', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_table(
        'coverage_transition',
        sa.Column('id', ROW_ID, autoincrement=True, nullable=False),
        sa.Column('patient_id', sa.String(length=64), nullable=False),
        sa.Column('coverage_id', sa.String(length=64), nullable=False),
        sa.Column('fund_ref', sa.String(length=80), nullable=False),
        sa.Column('regime', sa.String(length=16), nullable=True),
        sa.Column('next_regime', sa.String(length=16), nullable=True),
        sa.Column('ends_on', sa.String(length=10), nullable=False),
        sa.Column('ald', sa.SmallInteger(), nullable=False),
        sa.Column('transition_until', sa.String(length=10), nullable=True),
        sa.Column('feed_id', sa.BigInteger(), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('notified_at', sa.BigInteger(), nullable=True),
        sa.Column('reminded_at', sa.BigInteger(), nullable=True),
        sa.Column('closed_at', sa.BigInteger(), nullable=True),
        sa.Column('closed_feed_id', sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_coverage_transition_fund', 'coverage_transition', ['fund_ref', 'closed_at', 'ends_on'])
    op.create_index('ix_coverage_transition_coverage', 'coverage_transition', ['coverage_id', 'closed_at'])
    op.create_index('ix_coverage_transition_remind', 'coverage_transition', ['closed_at', 'reminded_at', 'transition_until'])


def downgrade() -> None:
    for name in ('ix_coverage_transition_remind', 'ix_coverage_transition_coverage', 'ix_coverage_transition_fund'):
        op.drop_index(name, table_name='coverage_transition')
    op.drop_table('coverage_transition')
    op.drop_table('registry_feed')
    op.drop_table('rsu_threshold')
