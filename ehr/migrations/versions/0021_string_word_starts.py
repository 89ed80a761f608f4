"""search: word-start rows of string parameters (a name is found from any of its words)

Every ``idx_string`` row gets its word starts (``ehr.search.normalize.word_starts``) under
``word_hash(param)`` with an empty ``exact``: the rows the indexer writes since this revision,
rebuilt here from the stored rows alone, so no resource is re-read.  No schema change.

Revision ID: 0021
Revises: 0019
Create Date: 2026-12-08 00:40:00.000000
"""
from alembic import op
import sqlalchemy as sa

from ehr.search.values import word_rows


revision = '0021'
down_revision = '0019'
branch_labels = None
depends_on = None

_idx_string = sa.table(
    'idx_string', sa.column('rid'), sa.column('param'), sa.column('grp'), sa.column('norm'), sa.column('exact'),
)
_RIDS_PER_BATCH = 2000


def upgrade() -> None:
    conn = op.get_bind()
    t = _idx_string
    conn.execute(t.delete().where(t.c.exact == ''))
    low, high = conn.execute(sa.select(sa.func.min(t.c.rid), sa.func.max(t.c.rid))).one()
    if low is None:
        return
    for start in range(low, high + 1, _RIDS_PER_BATCH):
        rows = conn.execute(
            sa.select(t.c.rid, t.c.param, t.c.grp, t.c.norm)
            .where(t.c.rid >= start, t.c.rid < start + _RIDS_PER_BATCH, t.c.exact != '')
        ).all()
        words = {(rid, *row) for rid, param, grp, norm in rows for row in word_rows(param, grp, norm)}
        if words:
            conn.execute(t.insert(), [dict(zip(('rid', 'param', 'grp', 'norm', 'exact'), w)) for w in words])


def downgrade() -> None:
    op.execute("DELETE FROM idx_string WHERE exact = ''")
