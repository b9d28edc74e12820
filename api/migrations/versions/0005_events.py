"""events: the append-only outbox of pushed updates; event_tokens: one-use stream tokens.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        # Never reuse an id (SQLite reuses the largest rowid once its row is deleted):
        # a client resumes from the last id it saw.
        sqlite_autoincrement=True,
    )
    # Replay reads a window of recent events; pruning deletes the oldest.
    op.create_index("ix_events_created_at", "events", ["created_at"])
    op.create_table(
        "event_tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("used_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name="pk_event_tokens"),
    )
    op.create_index("ix_event_tokens_expires_at", "event_tokens", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_event_tokens_expires_at", table_name="event_tokens")
    op.drop_table("event_tokens")
    op.drop_index("ix_events_created_at", table_name="events")
    op.drop_table("events")
