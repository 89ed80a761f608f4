"""claims: answers to inbound SMS (reply number and language on the outbox) and the inbound log

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 23:50:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('message_outbox') as batch:
        batch.alter_column('patient_id', existing_type=sa.String(64), nullable=True)
        batch.add_column(sa.Column('reply_to', sa.String(32), nullable=True))
        batch.add_column(sa.Column('language', sa.String(2), nullable=True))
    op.create_table(
        'sms_inbound',
        sa.Column('message_id', sa.String(64), primary_key=True),
        sa.Column('received_at', sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('sms_inbound')
    op.execute("DELETE FROM message_outbox WHERE patient_id IS NULL")
    with op.batch_alter_table('message_outbox') as batch:
        batch.drop_column('language')
        batch.drop_column('reply_to')
        batch.alter_column('patient_id', existing_type=sa.String(64), nullable=False)
