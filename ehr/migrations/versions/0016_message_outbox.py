"""claims: patient notifications to send (SMS, e-mail) and care-sheet status codes

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-20 10:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'message_outbox',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), primary_key=True, autoincrement=True),
        sa.Column('patient_id', sa.String(64), nullable=False),
        sa.Column('event', sa.String(40), nullable=False),
        sa.Column('about', sa.String(130), nullable=False),
        sa.Column('communication_id', sa.String(64), nullable=False),
        sa.Column('status', sa.String(12), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.BigInteger(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('sent_at', sa.BigInteger(), nullable=True),
        sa.UniqueConstraint('patient_id', 'event', 'about', name='ux_message_outbox_event'),
    )
    op.create_index('ix_message_outbox_due', 'message_outbox', ['status', 'next_attempt_at'])
    op.create_table(
        'claim_status_code',
        sa.Column('code', sa.String(8), primary_key=True),
        sa.Column('claim_id', sa.String(64), nullable=False, unique=True),
    )


def downgrade() -> None:
    op.drop_table('claim_status_code')
    op.drop_index('ix_message_outbox_due', table_name='message_outbox')
    op.drop_table('message_outbox')
