"""The plan store: plans with their request, response, forecasts and provenance, in SQL.

``records`` holds the plain dataclasses (no SQLAlchemy); ``plan_store`` the store itself. The
store's names are imported on first use, so that ``from adapters.store import PlanRecord`` does
not import SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gridshift.adapters.store.records import (
    ActualSeries,
    GateSubmission,
    JobRow,
    JobRun,
    PlanFilter,
    PlanRecord,
    forecast_from_snapshot,
    forecast_snapshot,
    regular_series,
)

if TYPE_CHECKING:
    from gridshift.adapters.store.plan_store import (
        MAX_PAGE_SIZE,
        DuplicatePlanError,
        DuplicateSubmissionError,
        PlanStore,
        StoreError,
        redact_url,
    )

__all__ = [
    "MAX_PAGE_SIZE",
    "ActualSeries",
    "DuplicatePlanError",
    "DuplicateSubmissionError",
    "GateSubmission",
    "JobRow",
    "JobRun",
    "PlanFilter",
    "PlanRecord",
    "PlanStore",
    "StoreError",
    "forecast_from_snapshot",
    "forecast_snapshot",
    "redact_url",
    "regular_series",
]

_LAZY = {"MAX_PAGE_SIZE", "DuplicatePlanError", "DuplicateSubmissionError", "PlanStore",
         "StoreError", "redact_url"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from gridshift.adapters.store import plan_store

        return getattr(plan_store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
