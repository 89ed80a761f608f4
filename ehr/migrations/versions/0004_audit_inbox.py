"""audit inbox: requests record their events without locking the chain head

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 09:00:00.000000
"""
from alembic import op
import sqlalchemy as sa

from ehr.security.audit_log import INBOX_APPEND_ONLY_DDL


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN, not a batch copy: SQLite refuses to rename a copy of audit_chain into
    # place while audit_log's triggers refer to it.
    op.add_column('audit_chain', sa.Column('sealing', sa.Boolean(), server_default=sa.false(), nullable=False))

    op.create_table('audit_inbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('recorded', sa.BigInteger(), nullable=False),
    sa.Column('patient_ref', sa.String(length=80), nullable=True),
    sa.Column('event', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sqlite_autoincrement=True,
    )
    # Append-only like audit_log; only the sealer deletes (triggers as of this revision).
    for ddl in INBOX_APPEND_ONLY_DDL[op.get_bind().dialect.name]:
        op.execute(ddl)


def downgrade() -> None:
    bind = op.get_bind()
    waiting = bind.execute(sa.text('SELECT count(*) FROM audit_inbox')).scalar_one()
    if waiting:
        raise RuntimeError(f'{waiting} audit events are not sealed yet: run `sijill audit seal` before downgrading')
    if bind.dialect.name == 'postgresql':
        op.execute('DROP TRIGGER IF EXISTS audit_inbox_append_only ON audit_inbox')
        op.execute('DROP FUNCTION IF EXISTS audit_inbox_append_only()')
    op.drop_table('audit_inbox')
    op.drop_column('audit_chain', 'sealing')  # native on SQLite ≥ 3.35, like the ADD COLUMN above
