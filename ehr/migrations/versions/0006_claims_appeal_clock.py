"""claims: appeals on the 48-hour clock (pause, escalation) and complementary revisions

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08 10:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs (native on SQLite and PostgreSQL), not a batch copy of claim_appeal.
    op.add_column('claim_appeal', sa.Column('escalated_at', sa.BigInteger(), nullable=True))
    op.add_column('claim_appeal', sa.Column('info_request_id', sa.String(length=64), nullable=True))
    op.add_column('claim_appeal', sa.Column('paused_at', sa.BigInteger(), nullable=True))
    op.add_column('claim_appeal', sa.Column('paused_total_us', sa.BigInteger(), server_default='0', nullable=False))
    op.add_column('claim_appeal', sa.Column('follows_id', sa.BigInteger(), nullable=True))
    op.create_index('ix_claim_appeal_clock', 'claim_appeal', ['status', 'due_at'], unique=False)
    op.create_index('ix_claim_appeal_info', 'claim_appeal', ['info_request_id'], unique=False)
    op.create_index('ix_claim_appeal_received', 'claim_appeal', ['fund_code', 'received_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_claim_appeal_received', table_name='claim_appeal')
    op.drop_index('ix_claim_appeal_info', table_name='claim_appeal')
    op.drop_index('ix_claim_appeal_clock', table_name='claim_appeal')
    for column in ('follows_id', 'paused_total_us', 'paused_at', 'info_request_id', 'escalated_at'):
        op.drop_column('claim_appeal', column)  # native on SQLite ≥ 3.35, like the ADD COLUMNs above
