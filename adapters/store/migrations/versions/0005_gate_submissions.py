"""The job gate's queue: jobs given to the Ray gate, waiting, submitted, running or done.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gate_submissions",
        sa.Column("submission_id", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("cluster", sa.String(255), nullable=False),
        sa.Column("planned_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("scheduler_status", sa.String(32), nullable=False),
        sa.Column("plan_id", sa.String(128), nullable=False),
        sa.Column("note", sa.String(1024), nullable=False),
        sa.PrimaryKeyConstraint("submission_id", name="pk_gate_submissions"),
    )
    op.create_index("ix_gate_submissions_state_created_at", "gate_submissions",
                    ["state", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_gate_submissions_state_created_at", table_name="gate_submissions")
    op.drop_table("gate_submissions")
