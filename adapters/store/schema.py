"""Tables of the plan store (SQLAlchemy Core), as they stand at the newest migration.

The migrations in ``migrations/versions`` create these tables; ``tests/test_plan_store.py``
checks that a database migrated to head matches this metadata, so a change here needs a new
revision there. Times are ``UTCDateTime``: timezone-aware in, UTC out, on SQLite (ISO text,
which sorts in time order) and PostgreSQL (timestamptz) alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
)
from sqlalchemy.types import TypeDecorator

__all__ = ["UTCDateTime", "actuals", "gate_submissions", "job_runs", "metadata", "plan_jobs",
           "plans"]

# Named constraints, so that migrations can refer to them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime, stored in UTC (naive UTC text on SQLite), read back in UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"datetime {value!r} must be timezone-aware")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


plans = Table(
    "plans",
    metadata,
    Column("plan_id", String(128), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("source", String(32), nullable=False),
    Column("status", String(32), nullable=False),
    Column("horizon_start", UTCDateTime(), nullable=False),
    Column("horizon_end", UTCDateTime(), nullable=False),
    Column("request", JSON(), nullable=False),
    Column("response", JSON(), nullable=False),
    Column("forecasts", JSON(), nullable=False),
    Column("provenance", JSON(), nullable=False),
    Column("emissions_kg", Float(), nullable=False),
    Column("baseline_emissions_kg", Float(), nullable=False),
    Column("energy_kwh", Float(), nullable=False),
    # Nightly runs: date + input hash. Unique where set (NULLs are distinct in both databases).
    Column("run_key", String(255), nullable=True, unique=True),
    Index(None, "created_at", "plan_id"),
    Index(None, "horizon_start"),
    Index(None, "horizon_end"),
    Index(None, "status"),
)

plan_jobs = Table(
    "plan_jobs",
    metadata,
    Column("plan_id", String(128), ForeignKey("plans.plan_id", ondelete="CASCADE"),
           primary_key=True),
    # Position of the job in the plan, so that jobs come back in the order they were stored.
    Column("seq", Integer(), primary_key=True, autoincrement=False),
    Column("job_id", String(255), nullable=False),
    Column("team", String(255), nullable=False),
    Column("site_id", String(255), nullable=False),
    Column("start_at", UTCDateTime(), nullable=False),
    Column("end_at", UTCDateTime(), nullable=False),
    Column("energy_kwh", Float(), nullable=False),
    Column("grid_energy_kwh", Float(), nullable=False),
    Column("emissions_kg", Float(), nullable=False),
    Column("baseline_emissions_kg", Float(), nullable=False),
    # The newer plan that re-planned this job (NULL: this row is the job's current plan).
    Column("superseded_by", String(128), nullable=True),
    Index(None, "job_id"),
    Index(None, "team", "plan_id"),
    Index(None, "site_id", "plan_id"),
)

actuals = Table(
    "actuals",
    metadata,
    Column("region", String(128), primary_key=True),
    Column("valid_at", UTCDateTime(), primary_key=True),
    Column("ci_g_per_kwh", Float(), nullable=False),
    Column("provider", String(64), nullable=False),
)


#: What jobs really ran (read back from the scheduler), one row per run.
job_runs = Table(
    "job_runs",
    metadata,
    Column("job_id", String(255), primary_key=True),
    Column("started_at", UTCDateTime(), primary_key=True),
    Column("ended_at", UTCDateTime(), nullable=False),
    Column("site_id", String(255), nullable=False),
    Column("source", String(64), nullable=False),
)

#: Jobs given to a job gate (the Ray gate): the gate's queue, so a restart loses none.
gate_submissions = Table(
    "gate_submissions",
    metadata,
    Column("submission_id", String(255), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("spec", JSON(), nullable=False),
    Column("state", String(16), nullable=False),
    Column("cluster", String(255), nullable=False),
    Column("planned_start", UTCDateTime(), nullable=True),
    Column("submitted_at", UTCDateTime(), nullable=True),
    Column("started_at", UTCDateTime(), nullable=True),
    Column("ended_at", UTCDateTime(), nullable=True),
    Column("scheduler_status", String(32), nullable=False),
    Column("plan_id", String(128), nullable=False),
    Column("note", String(1024), nullable=False),
    Index(None, "state", "created_at"),
)
