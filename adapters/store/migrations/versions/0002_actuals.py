"""Observed carbon intensity (actuals), for forecast-vs-actual reports.

Revision ID: 0002
Revises: 0001
Create Date: 2026-06-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "actuals",
        sa.Column("region", sa.String(128), nullable=False),
        sa.Column("valid_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ci_g_per_kwh", sa.Float(), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        # One value per region and time: the primary key is the unique (region, valid_at).
        sa.PrimaryKeyConstraint("region", "valid_at", name="pk_actuals"),
    )


def downgrade() -> None:
    op.drop_table("actuals")
