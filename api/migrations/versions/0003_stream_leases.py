"""Stream leases: one row per open live stream, shared by every worker and replica.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "stream_leases",
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("instance", sa.String(200), nullable=False),
        sa.Column("worker", sa.String(64), nullable=False),
        sa.Column("opened_at", _TS, nullable=False),
        sa.Column("heartbeat_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("call_id", name="pk_stream_leases"),
    )
    op.create_index("ix_stream_leases_instance", "stream_leases", ["instance"])


def downgrade() -> None:
    op.drop_index("ix_stream_leases_instance", table_name="stream_leases")
    op.drop_table("stream_leases")
