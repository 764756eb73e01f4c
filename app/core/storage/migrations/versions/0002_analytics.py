"""Analytics: usage totals per 15-minute slot, task totals, probe results, analytics state.

The totals are filled from the existing call log here, so a database upgraded from 0001 charts the
same figures as one that had the writer hook from the start.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ENDED = "c.outcome NOT IN ('in_flight', 'interrupted')"


def upgrade() -> None:
    op.create_table(
        "usage_slots",
        sa.Column("slot", sa.Integer, primary_key=True),
        sa.Column("provider", sa.String(100), primary_key=True),
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("role", sa.String(32), primary_key=True),
        *[
            sa.Column(name, sa.Integer, nullable=False, server_default="0")
            for name in (
                "calls",
                "errors",
                "input_tokens",
                "output_tokens",
                "cache_read_tokens",
                "cache_write_tokens",
            )
        ],
        sa.Column("cost_usd", sa.Float, nullable=False, server_default="0"),
        sa.Column("unpriced_calls", sa.Integer, nullable=False, server_default="0"),
        sa.Column("premium_usd", sa.Float, nullable=False, server_default="0"),
        sa.Column("savings_usd", sa.Float, nullable=False, server_default="0"),
        sa.Column("escalated", sa.Integer, nullable=False, server_default="0"),
        sa.Column("duration_ms", sa.Float, nullable=False, server_default="0"),
        *[
            sa.Column(name, sa.Integer, nullable=False, server_default="0")
            for name in (
                "tool_calls",
                "tool_invalid_json",
                "tool_unknown_tool",
                "tool_schema",
                "tool_text_form",
                "tool_result_failed",
            )
        ],
    )
    op.create_table(
        "task_totals",
        sa.Column("task_id", sa.Integer, sa.ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True),
        *[
            sa.Column(name, sa.Integer, nullable=False, server_default="0")
            for name in ("calls", "errors", "input_tokens", "output_tokens")
        ],
        sa.Column("cost_usd", sa.Float, nullable=False, server_default="0"),
        sa.Column("unpriced_calls", sa.Integer, nullable=False, server_default="0"),
        sa.Column("premium_usd", sa.Float, nullable=False, server_default="0"),
        sa.Column("savings_usd", sa.Float, nullable=False, server_default="0"),
        sa.Column("tool_calls", sa.Integer, nullable=False, server_default="0"),
        sa.Column("tool_failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("escalated", sa.Integer, nullable=False, server_default="0"),
        sa.Column("models", sa.Text, nullable=False, server_default=""),
    )
    op.create_table(
        "analytics_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "probe_results",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("probe", sa.String(32), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("tool_calls", sa.Integer, nullable=False),
        sa.Column("tool_failures", sa.Integer, nullable=False),
        sa.Column("failure_kinds", sa.Text),
        sa.Column("latency_ms", sa.Float),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float),
        sa.Column("detail", sa.Text),
    )
    op.create_index("ix_probe_target", "probe_results", ["target", "started_at"])
    op.create_index("ix_tasks_last", "tasks", ["last_at"])
    op.create_index("ix_tasks_source", "tasks", ["source", "id"])
    op.create_index("ix_tasks_started_cover", "tasks", ["started_at", "id", "outcome", "label"])
    op.create_index(
        "ix_tool_calls_time", "tool_calls", ["started_at", "upstream_model", "kind", "result_failed"]
    )
    _backfill()


def _backfill() -> None:
    """Totals of the calls already logged, by the same definitions the writer hook applies. (SQLite only:
    PostgreSQL came after this revision, so a PostgreSQL ledger has no call older than its totals.)"""
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(f"""
        INSERT INTO usage_slots
        SELECT CAST(c.started_at / 900 AS INTEGER) * 900, coalesce(c.provider, ''), coalesce(c.upstream_model, ''),
               coalesce(c.role, ''), count(*), sum(c.outcome != 'ok'), sum(c.input_tokens), sum(c.output_tokens),
               sum(c.cache_read_tokens), sum(c.cache_write_tokens + c.cache_write_1h_tokens), total(c.cost_usd),
               sum(c.unpriced AND c.outcome = 'ok'),
               total(CASE WHEN c.cost_usd IS NOT NULL THEN c.premium_cost_usd END),
               total(c.premium_cost_usd - c.cost_usd), sum(c.escalated), total(c.duration_ms),
               0, 0, 0, 0, 0, 0
        FROM calls c WHERE {_ENDED}
        GROUP BY 1, 2, 3, 4
    """)
    op.execute(f"""
        UPDATE usage_slots SET
            tool_calls = s.n, tool_invalid_json = s.invalid_json, tool_unknown_tool = s.unknown_tool,
            tool_schema = s.schema_, tool_text_form = s.text_form, tool_result_failed = s.result_failed
        FROM (
            SELECT CAST(c.started_at / 900 AS INTEGER) * 900 AS slot, coalesce(c.provider, '') AS provider,
                   coalesce(c.upstream_model, '') AS model, coalesce(c.role, '') AS role, count(*) AS n,
                   sum(t.kind = 'invalid_json') AS invalid_json, sum(t.kind = 'unknown_tool') AS unknown_tool,
                   sum(t.kind = 'schema') AS schema_, sum(t.kind = 'text_form') AS text_form,
                   sum(t.kind = 'ok' AND t.result_failed) AS result_failed
            FROM tool_calls t JOIN calls c ON c.call_id = t.call_id WHERE {_ENDED}
            GROUP BY 1, 2, 3, 4
        ) AS s
        WHERE usage_slots.slot = s.slot AND usage_slots.provider = s.provider AND usage_slots.model = s.model
          AND usage_slots.role = s.role
    """)
    op.execute(f"""
        INSERT INTO task_totals
        SELECT c.task_id, count(*), sum(c.outcome != 'ok'), sum(c.input_tokens + c.cache_read_tokens
               + c.cache_write_tokens + c.cache_write_1h_tokens), sum(c.output_tokens), total(c.cost_usd),
               sum(c.unpriced AND c.outcome = 'ok'), total(CASE WHEN c.cost_usd IS NOT NULL THEN c.premium_cost_usd END),
               total(c.premium_cost_usd - c.cost_usd),
               (SELECT count(*) FROM tool_calls t JOIN calls c2 ON c2.call_id = t.call_id WHERE c2.task_id = c.task_id),
               (SELECT count(*) FROM tool_calls t JOIN calls c2 ON c2.call_id = t.call_id
                WHERE c2.task_id = c.task_id AND (t.kind != 'ok' OR t.result_failed)),
               sum(c.escalated),
               coalesce((SELECT group_concat(m, char(10)) FROM (SELECT DISTINCT c3.provider || '/' || c3.upstream_model AS m
                         FROM calls c3 WHERE c3.task_id = c.task_id AND c3.provider IS NOT NULL)), '')
        FROM calls c WHERE c.task_id IS NOT NULL AND {_ENDED}
        GROUP BY c.task_id
    """)


def downgrade() -> None:
    op.drop_index("ix_tool_calls_time", "tool_calls")
    op.drop_index("ix_tasks_started_cover", "tasks")
    op.drop_index("ix_tasks_source", "tasks")
    op.drop_index("ix_tasks_last", "tasks")
    op.drop_table("probe_results")
    op.drop_table("analytics_meta")
    op.drop_table("task_totals")
    op.drop_table("usage_slots")
