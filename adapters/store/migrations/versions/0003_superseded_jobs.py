"""Re-planned jobs: a job row is superseded by the newest plan that holds the same job.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("plan_jobs") as batch:
        batch.add_column(sa.Column("superseded_by", sa.String(128), nullable=True))
        batch.create_index("ix_plan_jobs_job_id", ["job_id"])


def downgrade() -> None:
    with op.batch_alter_table("plan_jobs") as batch:
        batch.drop_index("ix_plan_jobs_job_id")
        batch.drop_column("superseded_by")
