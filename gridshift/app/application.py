"""The application: the use cases wired together, as every entry point sees them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gridshift.adapters.forecast_service import ForecastService
from gridshift.adapters.tracing import NO_TRACING, NoTracing, Tracing
from gridshift.app.forecasts import ForecastQueries
from gridshift.app.nightly import Nightly
from gridshift.app.planning import Planner
from gridshift.app.plans import PlanArchive

__all__ = ["App"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class App:
    """gridshift, wired: what every entry point calls.

    ``archive`` is None when storing plans is switched off; ``shared_data_dir`` is where the
    research data sets for backtests are.
    """

    planner: Planner
    forecast_service: ForecastService
    queries: ForecastQueries
    archive: PlanArchive | None
    nightly: Nightly
    device: str
    shared_data_dir: Path
    clock: Callable[[], datetime] = _utc_now
    #: The Slurm cluster's slurm.conf for the scheduler agent (None: Slurm's default).
    slurm_conf: str | None = None
    #: The process's metrics (gridshift.adapters.metrics.Metrics), or None.
    metrics: Any = None
    #: The process's OpenTelemetry tracing (gridshift.adapters.tracing; off: NO_TRACING).
    tracing: Tracing | NoTracing = NO_TRACING

    def close(self) -> None:
        """Release the plan store's connections; export the spans not yet sent."""
        if self.archive is not None:
            self.archive.close()
        self.tracing.shutdown()
