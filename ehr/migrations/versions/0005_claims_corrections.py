"""claims: corrected resubmissions (ledger link to the replaced row) and appeals

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 12:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN and a unique index, not a batch copy of claim_ledger (which the other
    # claim tables reference): both are native on SQLite and PostgreSQL.
    op.add_column('claim_ledger', sa.Column('corrects_id', sa.BigInteger(), nullable=True))
    op.create_index('ux_claim_ledger_corrects', 'claim_ledger', ['corrects_id'], unique=True)

    op.create_table('claim_appeal',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ledger_id', sa.BigInteger(), nullable=False),
    sa.Column('open_ledger_id', sa.BigInteger(), nullable=True),
    sa.Column('fund_code', sa.String(length=32), nullable=False),
    sa.Column('party', sa.String(length=10), nullable=False),
    sa.Column('appellant', sa.String(length=130), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('lines', sa.String(length=255), nullable=True),
    sa.Column('documents', sa.LargeBinary(), nullable=True),
    sa.Column('contested', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('received_at', sa.BigInteger(), nullable=False),
    sa.Column('due_at', sa.BigInteger(), nullable=False),
    sa.Column('closed_at', sa.BigInteger(), nullable=True),
    sa.Column('closed_by', sa.String(length=130), nullable=True),
    sa.Column('resolution', sa.Text(), nullable=True),
    sa.Column('before_cents', sa.BigInteger(), nullable=False),
    sa.Column('after_cents', sa.BigInteger(), nullable=True),
    sa.Column('payable_cents', sa.BigInteger(), nullable=False),
    sa.Column('paid_on', sa.String(length=10), nullable=True),
    sa.Column('reconciliation_id', sa.String(length=64), nullable=True),
    sa.Column('notice_id', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['ledger_id'], ['claim_ledger.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('claim_appeal', schema=None) as batch_op:
        batch_op.create_index('ix_claim_appeal_ledger', ['ledger_id'], unique=False)
        batch_op.create_index('ix_claim_appeal_queue', ['fund_code', 'status', 'due_at'], unique=False)
        batch_op.create_index('ux_claim_appeal_open', ['open_ledger_id'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('claim_appeal', schema=None) as batch_op:
        batch_op.drop_index('ux_claim_appeal_open')
        batch_op.drop_index('ix_claim_appeal_queue')
        batch_op.drop_index('ix_claim_appeal_ledger')
    op.drop_table('claim_appeal')
    op.drop_index('ux_claim_ledger_corrects', table_name='claim_ledger')
    op.drop_column('claim_ledger', 'corrects_id')  # native on SQLite ≥ 3.35, like the ADD COLUMN above
