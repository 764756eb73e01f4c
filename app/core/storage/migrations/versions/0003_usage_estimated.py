"""Estimated usage: a flag per call, a count per slot and per task; unpriced counts include failed calls.

A call whose provider reported no usage (a stream without its usage chunk, a stream cut short, a cancelled
call) is logged with estimated tokens; `usage_estimated` says so, and the totals count such calls so a
figure built on guesses says how many. Calls logged before this revision are not known to be estimates:
they keep 0. The unpriced counts of the totals used to leave out failed and cancelled calls (which are
billed for what they produced); they are recounted from the calls still in the log.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_FAILED_UNPRICED = "c.unpriced AND c.outcome NOT IN ('ok', 'in_flight', 'interrupted')"


def upgrade() -> None:
    op.add_column("calls", sa.Column("usage_estimated", sa.Boolean, nullable=False, server_default="0"))
    op.add_column("usage_slots", sa.Column("estimated_calls", sa.Integer, nullable=False, server_default="0"))
    op.add_column("task_totals", sa.Column("estimated_calls", sa.Integer, nullable=False, server_default="0"))
    _recount_failed_unpriced()


def _recount_failed_unpriced() -> None:
    """SQLite only: PostgreSQL ledgers came after this revision (0005), so none holds a call counted the old
    way; and SQLite's CAST truncates where PostgreSQL's rounds, so this slot arithmetic is SQLite's."""
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(f"""
        UPDATE usage_slots SET unpriced_calls = unpriced_calls + s.n
        FROM (
            SELECT CAST(c.started_at / 900 AS INTEGER) * 900 AS slot, coalesce(c.provider, '') AS provider,
                   coalesce(c.upstream_model, '') AS model, coalesce(c.role, '') AS role, count(*) AS n
            FROM calls c WHERE {_FAILED_UNPRICED} GROUP BY 1, 2, 3, 4
        ) AS s
        WHERE usage_slots.slot = s.slot AND usage_slots.provider = s.provider AND usage_slots.model = s.model
          AND usage_slots.role = s.role
    """)
    op.execute(f"""
        UPDATE task_totals SET unpriced_calls = unpriced_calls + s.n
        FROM (SELECT c.task_id, count(*) AS n FROM calls c WHERE c.task_id IS NOT NULL AND {_FAILED_UNPRICED}
              GROUP BY c.task_id) AS s
        WHERE task_totals.task_id = s.task_id
    """)


def downgrade() -> None:
    op.drop_column("task_totals", "estimated_calls")
    op.drop_column("usage_slots", "estimated_calls")
    op.drop_column("calls", "usage_estimated")
