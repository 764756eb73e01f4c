"""Executors: totals by prompt size (`executor_slots`) and shadow runs (`shadow_calls`).

The totals are filled from the call log already kept, by the same definitions the writer hook applies
(`app.core.analytics.executors`), so an upgraded log scores its models from its whole history.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ENDED = "c.outcome NOT IN ('in_flight', 'interrupted')"
# Frozen copy of app.core.analytics.executors.CTX_EDGES as of this revision.
_EDGES = (
    8_000,
    16_000,
    24_000,
    32_000,
    40_000,
    48_000,
    56_000,
    64_000,
    72_000,
    80_000,
    88_000,
    96_000,
    104_000,
    112_000,
    120_000,
    128_000,
    160_000,
    192_000,
    224_000,
    256_000,
)
_PROMPT = "(c.input_tokens + c.cache_read_tokens + c.cache_write_tokens + c.cache_write_1h_tokens)"
_BIN = (
    "CASE "
    + " ".join(f"WHEN {_PROMPT} < {edge} THEN {i}" for i, edge in enumerate(_EDGES))
    + f" ELSE {len(_EDGES)} END"
)


def upgrade() -> None:
    op.create_table(
        "executor_slots",
        sa.Column("slot", sa.Integer, primary_key=True),
        sa.Column("provider", sa.String(100), primary_key=True),
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("ctx", sa.Integer, primary_key=True),
        *[
            sa.Column(name, sa.Integer, nullable=False, server_default="0")
            for name in (
                "calls",
                "errors",
                "tool_calls",
                "tool_invalid",
                "tool_result_failed",
                "prompt_tokens",
            )
        ],
        sa.Column("cost_usd", sa.Float, nullable=False, server_default="0"),
        sa.Column("escalated", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "shadow_calls",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("call_id", sa.String(32), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("preset", sa.String(100)),
        sa.Column("served_provider", sa.String(100)),
        sa.Column("served_model", sa.String(200)),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("status", sa.Integer),
        sa.Column("error_kind", sa.String(64)),
        sa.Column("error_message", sa.Text),
        sa.Column("latency_ms", sa.Float),
        sa.Column("served_latency_ms", sa.Float),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("cache_read_tokens", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float),
        sa.Column("cost_source", sa.String(16)),
        sa.Column("served_cost_usd", sa.Float),
        sa.Column("tool_calls", sa.Integer, nullable=False),
        sa.Column("tool_failures", sa.Integer, nullable=False),
        sa.Column("served_tool_calls", sa.Integer, nullable=False),
        sa.Column("served_tool_failures", sa.Integer, nullable=False),
        sa.Column("valid", sa.Boolean),
        sa.Column("served_valid", sa.Boolean),
        sa.Column("same_tool", sa.Boolean),
        sa.Column("args_valid", sa.Boolean),
        sa.Column("served_tool", sa.String(200)),
        sa.Column("shadow_tool", sa.String(200)),
        sa.Column("detail", sa.Text),
    )
    op.create_index("ix_shadow_time", "shadow_calls", ["started_at"])
    op.create_index("ix_shadow_target", "shadow_calls", ["provider", "model", "started_at"])
    _backfill()


def _backfill() -> None:
    """SQLite only (total(), summed booleans, truncating CAST): PostgreSQL ledgers came after this revision
    (0005), so a PostgreSQL log has no call older than its totals."""
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(f"""
        INSERT INTO executor_slots
        SELECT CAST(c.started_at / 86400 AS INTEGER) * 86400, coalesce(c.provider, ''), coalesce(c.upstream_model, ''),
               {_BIN}, count(*), sum(c.outcome != 'ok'), sum(c.tool_calls), sum(c.tool_failures), 0, sum({_PROMPT}),
               total(c.cost_usd), sum(c.escalated)
        FROM calls c WHERE {_ENDED}
        GROUP BY 1, 2, 3, 4
    """)
    op.execute(f"""
        UPDATE executor_slots SET tool_result_failed = s.n
        FROM (
            SELECT CAST(c.started_at / 86400 AS INTEGER) * 86400 AS slot, coalesce(c.provider, '') AS provider,
                   coalesce(c.upstream_model, '') AS model, {_BIN} AS ctx, count(*) AS n
            FROM tool_calls t JOIN calls c ON c.call_id = t.call_id
            WHERE {_ENDED} AND t.kind IN ('ok', 'unchecked') AND t.result_failed
            GROUP BY 1, 2, 3, 4
        ) AS s
        WHERE executor_slots.slot = s.slot AND executor_slots.provider = s.provider AND executor_slots.model = s.model
          AND executor_slots.ctx = s.ctx
    """)


def downgrade() -> None:
    op.drop_index("ix_shadow_target", "shadow_calls")
    op.drop_index("ix_shadow_time", "shadow_calls")
    op.drop_table("shadow_calls")
    op.drop_table("executor_slots")
