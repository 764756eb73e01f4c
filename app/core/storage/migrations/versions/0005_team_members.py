"""Team mode: every call row, task and 15-minute slot carries the member (and the call its machine);
member tokens of a shared gateway, stored hashed; the outbox of calls waiting to be shipped to a team ledger.

Calls and tasks get nullable/empty `member` columns (a single user's log leaves them empty). `usage_slots`
gets `member` in its primary key, so the dashboard can filter and group by member from the totals; SQLite
cannot change a primary key in place, so the table is rebuilt (same rows, member '') on both databases; the
rebuilt table keeps every column the earlier revisions gave it (0003's `estimated_calls` included).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_KEYS = ("slot", "provider", "model", "role")
_INT_MEASURES = (
    "calls",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
)
_TOOL_MEASURES = (
    "tool_calls",
    "tool_invalid_json",
    "tool_unknown_tool",
    "tool_schema",
    "tool_text_form",
    "tool_result_failed",
)
_LATER_MEASURES = ("estimated_calls",)  # added by 0003 (usage_estimated)
_MEASURES = (
    *_INT_MEASURES,
    "cost_usd",
    "unpriced_calls",
    "premium_usd",
    "savings_usd",
    "escalated",
    "duration_ms",
    *_TOOL_MEASURES,
    *_LATER_MEASURES,
)


def _slots_table(name: str, with_member: bool) -> None:
    member = [sa.Column("member", sa.String(100), primary_key=True, server_default="")] if with_member else []
    op.create_table(
        name,
        sa.Column("slot", sa.Integer, primary_key=True),
        sa.Column("provider", sa.String(100), primary_key=True),
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("role", sa.String(32), primary_key=True),
        *member,
        *[sa.Column(c, sa.Integer, nullable=False, server_default="0") for c in _INT_MEASURES],
        sa.Column("cost_usd", sa.Float, nullable=False, server_default="0"),
        sa.Column("unpriced_calls", sa.Integer, nullable=False, server_default="0"),
        sa.Column("premium_usd", sa.Float, nullable=False, server_default="0"),
        sa.Column("savings_usd", sa.Float, nullable=False, server_default="0"),
        sa.Column("escalated", sa.Integer, nullable=False, server_default="0"),
        sa.Column("duration_ms", sa.Float, nullable=False, server_default="0"),
        *[
            sa.Column(c, sa.Integer, nullable=False, server_default="0")
            for c in (*_TOOL_MEASURES, *_LATER_MEASURES)
        ],
    )


def _rebuild_slots(with_member: bool) -> None:
    columns = ", ".join((*_KEYS, *_MEASURES))
    _slots_table("usage_slots_rebuilt", with_member)
    if with_member:  # every existing slot becomes the slot of member ''
        op.execute(f"INSERT INTO usage_slots_rebuilt ({columns}) SELECT {columns} FROM usage_slots")
    else:  # a downgrade adds the members' slots of one key together
        sums = ", ".join((*_KEYS, *(f"sum({m})" for m in _MEASURES)))
        op.execute(
            f"INSERT INTO usage_slots_rebuilt ({columns}) SELECT {sums} FROM usage_slots"
            f" GROUP BY {', '.join(_KEYS)}"
        )
    op.drop_table("usage_slots")
    op.rename_table("usage_slots_rebuilt", "usage_slots")


def upgrade() -> None:
    op.add_column("calls", sa.Column("member", sa.String(100)))
    op.add_column("calls", sa.Column("machine", sa.String(100)))
    op.create_index("ix_calls_member_time", "calls", ["member", "started_at"])
    op.add_column("tasks", sa.Column("member", sa.String(100), nullable=False, server_default=""))
    _rebuild_slots(with_member=True)
    op.create_table(
        "member_tokens",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("token_id", sa.String(32), nullable=False, unique=True),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("call_id", sa.String(32), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("member_tokens")
    _rebuild_slots(with_member=False)
    op.drop_column("tasks", "member")
    op.drop_index("ix_calls_member_time", "calls")
    op.drop_column("calls", "machine")
    op.drop_column("calls", "member")
