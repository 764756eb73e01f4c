"""The call log, tool calls and tasks.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("label", sa.String(200)),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("last_at", sa.Float, nullable=False),
        sa.Column("outcome", sa.String(16)),
    )
    op.create_index("ix_tasks_key", "tasks", ["key"])
    op.create_index("ix_tasks_started", "tasks", ["started_at"])
    op.create_table(
        "calls",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("call_id", sa.String(32), nullable=False, unique=True),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ttfb_ms", sa.Float),
        sa.Column("duration_ms", sa.Float),
        sa.Column("client_api", sa.String(16), nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("requested_model", sa.String(200)),
        sa.Column("preset", sa.String(100)),
        sa.Column("role", sa.String(32)),
        sa.Column("provider", sa.String(100)),
        sa.Column("upstream_api", sa.String(16)),
        sa.Column("upstream_model", sa.String(200)),
        sa.Column("streamed", sa.Boolean, nullable=False),
        sa.Column("status", sa.Integer),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error_kind", sa.String(64)),
        sa.Column("error_message", sa.Text),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("cache_read_tokens", sa.Integer, nullable=False),
        sa.Column("cache_write_tokens", sa.Integer, nullable=False),
        sa.Column("cache_write_1h_tokens", sa.Integer, nullable=False),
        sa.Column("reasoning_tokens", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float),
        sa.Column("cost_source", sa.String(16)),
        sa.Column("billed_cost_usd", sa.Float),
        sa.Column("estimated_cost_usd", sa.Float),
        sa.Column("premium_cost_usd", sa.Float),
        sa.Column("unpriced", sa.Boolean, nullable=False),
        sa.Column("fallback_chain", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("bytes_in", sa.Integer, nullable=False),
        sa.Column("bytes_out", sa.Integer, nullable=False),
        sa.Column("session_key", sa.String(200)),
        sa.Column("task_id", sa.Integer, sa.ForeignKey("tasks.id")),
        sa.Column("user_agent", sa.String(200)),
        sa.Column("tool_calls", sa.Integer, nullable=False),
        sa.Column("tool_failures", sa.Integer, nullable=False),
        sa.Column("escalated", sa.Boolean, nullable=False),
        sa.Column("request_body", sa.LargeBinary),
        sa.Column("response_body", sa.LargeBinary),
    )
    op.create_index("ix_calls_started_at", "calls", ["started_at"])
    op.create_index("ix_calls_model_time", "calls", ["upstream_model", "started_at"])
    op.create_index("ix_calls_provider_time", "calls", ["provider", "started_at"])
    op.create_index("ix_calls_task", "calls", ["task_id"])
    op.create_index("ix_calls_outcome", "calls", ["outcome"])
    op.create_table(
        "tool_calls",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("call_id", sa.String(32), nullable=False),
        sa.Column("tool_call_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("result_failed", sa.Boolean, nullable=False),
        sa.Column("result_reason", sa.Text),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("upstream_model", sa.String(200)),
    )
    op.create_index("ix_tool_calls_call", "tool_calls", ["call_id"])
    op.create_index("ix_tool_calls_tcid", "tool_calls", ["tool_call_id"])
    op.create_index("ix_tool_calls_model_time", "tool_calls", ["upstream_model", "started_at"])


def downgrade() -> None:
    op.drop_table("tool_calls")
    op.drop_table("calls")
    op.drop_table("tasks")
