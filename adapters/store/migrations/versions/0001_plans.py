"""Plans and their jobs.

Revision ID: 0001
Revises:
Create Date: 2026-06-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "plans",
        sa.Column("plan_id", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("horizon_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("horizon_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("forecasts", sa.JSON(), nullable=False),
        sa.Column("provenance", sa.JSON(), nullable=False),
        sa.Column("emissions_kg", sa.Float(), nullable=False),
        sa.Column("baseline_emissions_kg", sa.Float(), nullable=False),
        sa.Column("energy_kwh", sa.Float(), nullable=False),
        sa.Column("run_key", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("plan_id", name="pk_plans"),
        sa.UniqueConstraint("run_key", name="uq_plans_run_key"),
    )
    op.create_index("ix_plans_created_at_plan_id", "plans", ["created_at", "plan_id"])
    op.create_index("ix_plans_horizon_start", "plans", ["horizon_start"])
    op.create_index("ix_plans_horizon_end", "plans", ["horizon_end"])
    op.create_index("ix_plans_status", "plans", ["status"])

    op.create_table(
        "plan_jobs",
        sa.Column("plan_id", sa.String(128), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("job_id", sa.String(255), nullable=False),
        sa.Column("team", sa.String(255), nullable=False),
        sa.Column("site_id", sa.String(255), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("energy_kwh", sa.Float(), nullable=False),
        sa.Column("grid_energy_kwh", sa.Float(), nullable=False),
        sa.Column("emissions_kg", sa.Float(), nullable=False),
        sa.Column("baseline_emissions_kg", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("plan_id", "seq", name="pk_plan_jobs"),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.plan_id"], ondelete="CASCADE",
                                name="fk_plan_jobs_plan_id_plans"),
    )
    op.create_index("ix_plan_jobs_team_plan_id", "plan_jobs", ["team", "plan_id"])
    op.create_index("ix_plan_jobs_site_id_plan_id", "plan_jobs", ["site_id", "plan_id"])


def downgrade() -> None:
    op.drop_table("plan_jobs")
    op.drop_table("plans")
