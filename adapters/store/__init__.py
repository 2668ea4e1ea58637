"""The plan store: plans with their request, response, forecasts and provenance, in SQL.

``records`` holds the plain dataclasses (no SQLAlchemy); ``plan_store`` the store itself, which
imports SQLAlchemy when this package is imported — import it from the composition root only.
"""

from adapters.store.plan_store import (
    MAX_PAGE_SIZE,
    DuplicatePlanError,
    PlanStore,
    StoreError,
    default_data_dir,
    default_url,
    redact_url,
)
from adapters.store.records import (
    ActualSeries,
    JobRow,
    PlanFilter,
    PlanRecord,
    forecast_snapshot,
)

__all__ = [
    "MAX_PAGE_SIZE",
    "ActualSeries",
    "DuplicatePlanError",
    "JobRow",
    "PlanFilter",
    "PlanRecord",
    "PlanStore",
    "StoreError",
    "default_data_dir",
    "default_url",
    "forecast_snapshot",
    "redact_url",
]
