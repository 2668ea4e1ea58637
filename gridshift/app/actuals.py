"""Recording observed carbon intensity (actuals): imported from files or pulled from the
providers' history endpoints, stored for re-scoring plans in reports and for the forecast
blend."""

from __future__ import annotations

from datetime import datetime

from gridshift.adapters.forecast_service import ForecastService
from gridshift.adapters.store import ActualSeries
from gridshift.app.plans import PlanArchive
from gridshift.optimizer.errors import FieldViolation, InvalidInputError, UpstreamUnavailableError

__all__ = ["import_actuals", "pull_actuals"]


def import_actuals(archive: PlanArchive, points: dict[str, list[tuple[datetime, float]]],
                   slot_minutes: int, source: str) -> int:
    """Store points (by region) that lie on a ``slot_minutes`` grid; returns the values
    stored."""
    if not 1 <= slot_minutes <= 1440:
        raise InvalidInputError([FieldViolation(
            "--slot-minutes", f"must be within 1..1440, got {slot_minutes}")])
    stored = 0
    step = slot_minutes * 60
    for region, region_points in points.items():
        region_points = sorted(region_points)
        start = region_points[0][0]
        n = int((region_points[-1][0] - start).total_seconds() // step) + 1
        values = [float("nan")] * n
        for t, v in region_points:
            values[int((t - start).total_seconds() // step)] = v
        stored += archive.save_actuals([ActualSeries(region, start, slot_minutes, values,
                                                     provider=source)])
    return stored


def pull_actuals(archive: PlanArchive, forecasts: ForecastService, regions: list[str],
                 start: datetime, end: datetime) -> int:
    """Pull each region's actuals from the first provider of its chain that has them and store
    them; returns the values stored. UpstreamUnavailableError names what was tried."""
    total = 0
    for region in regions:
        try:
            series = forecasts.pull_actuals(region, start, end)
        except LookupError as exc:
            raise UpstreamUnavailableError(str(exc)) from None
        total += archive.save_actuals([ActualSeries(region, series.start, series.slot_minutes,
                                                    list(series.carbon_intensity),
                                                    provider=series.provider)])
    return total
