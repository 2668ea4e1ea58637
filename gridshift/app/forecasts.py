"""Forecast queries: GetForecast (each region's series with p10/p90 and provenance) and
FindBestWindow (the best start for a run, per region and overall), over the forecast service."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from gridshift.adapters.forecast_service import ForecastService
from gridshift.forecasting.alignment import align_to_slots
from gridshift.forecasting.best_window import find_best_window
from gridshift.forecasting.profiles import known_regions
from gridshift.forecasting.series import Forecast
from gridshift.forecasting.uncertainty import with_quantiles
from gridshift.optimizer.errors import FieldViolation, InvalidInputError, UpstreamUnavailableError

__all__ = ["MAX_QUERY_HOURS", "ForecastQueries", "RegionAnswers"]

@dataclass(frozen=True)
class RegionAnswers:
    """A query's answer for the regions that have one, and why the others have none
    (region -> reason): one region's outage does not hide the others."""

    answer: Any
    unavailable: dict[str, str]


#: The longest window a query may ask for.
MAX_QUERY_HOURS = 24 * 14


class ForecastQueries:
    """The forecast queries over one forecast service (what the CLI and the gRPC servicer
    call). Regions are resolved with the service's chains; a region no source can answer is
    UpstreamUnavailableError, a malformed query InvalidInputError naming the field."""

    def __init__(self, service: ForecastService) -> None:
        self.service = service

    def get_forecasts(self, regions: list[str], start: datetime | None, end: datetime | None,
                      slot_minutes: int = 60, *,
                      time_budget_s: float | None = None) -> RegionAnswers:
        """Each region's series aligned to ``slot_minutes`` slots over [start, end), with
        p10/p90 (the provider's own, or the calibrated error model's) and provenance. Regions
        are resolved concurrently within the service's time budget, cut to ``time_budget_s``
        when given (a caller's deadline). The answer is the list of series of the regions that
        have one."""
        self._check(regions, start, end, ("start", "end"))
        if slot_minutes <= 0 or slot_minutes > 1440:
            raise InvalidInputError([FieldViolation("slot_minutes", "must be within 1..1440")])
        slots = math.ceil((end - start).total_seconds() / 60 / slot_minutes)
        series, unavailable = self._resolve(regions, start, slots, slot_minutes, time_budget_s)
        return RegionAnswers(
            [_aligned(with_quantiles(series[region]), start, slot_minutes, slots)
             for region in dict.fromkeys(regions) if region in series], unavailable)

    def best_windows(self, regions: list[str], duration_minutes: int,
                     window_start: datetime | None, window_end: datetime | None, *,
                     time_budget_s: float | None = None) -> RegionAnswers:
        """FindBestWindow over the regions' series (forecasting.best_window); its answer is
        the BestWindowResult of the regions that have a series."""
        self._check(regions, window_start, window_end, ("window_start", "window_end"),
                    [] if duration_minutes > 0 else [FieldViolation("duration_minutes",
                                                                    "must be positive")])
        if timedelta(minutes=duration_minutes) > window_end - window_start:
            raise InvalidInputError([FieldViolation(
                "duration_minutes", "longer than the window between window_start and "
                                    "window_end")])
        step = 5 if duration_minutes < 60 else 15
        slots = math.ceil((window_end - window_start).total_seconds() / 60 / step)
        series, unavailable = self._resolve(regions, window_start, slots, step, time_budget_s)
        try:
            return RegionAnswers(find_best_window(series, duration_minutes, window_start,
                                                  window_end), unavailable)
        except ValueError as exc:
            raise InvalidInputError([FieldViolation("", str(exc))]) from None

    def _check(self, regions: list[str], start: datetime | None, end: datetime | None,
               names: tuple[str, str], extra: list[FieldViolation] | None = None) -> None:
        problems = list(extra or [])
        if not regions:
            problems.append(FieldViolation("regions", "at least one region is required"))
        for i, region in enumerate(regions):
            if not region.strip():
                problems.append(FieldViolation(f"regions[{i}]", "empty"))
            elif not self.service.answerable(region):
                problems.append(FieldViolation(
                    f"regions[{i}]", f"unknown region {region!r}: no provider is configured for "
                    f"it and no embedded profile exists (embedded: "
                    f"{', '.join(known_regions())})"))
        if start is None:
            problems.append(FieldViolation(names[0], "required"))
        if end is None:
            problems.append(FieldViolation(names[1], "required"))
        if start is not None and end is not None:
            if end <= start:
                problems.append(FieldViolation(names[1], f"not after {names[0]}"))
            elif end - start > timedelta(hours=MAX_QUERY_HOURS):
                problems.append(FieldViolation(names[1],
                                               f"window longer than {MAX_QUERY_HOURS} h"))
        if problems:
            raise InvalidInputError(problems)

    def _resolve(self, regions: list[str], start: datetime, slots: int, slot_minutes: int,
                 time_budget_s: float | None) -> tuple[dict[str, Forecast], dict[str, str]]:
        """Each region's series, and why the others have none; UpstreamUnavailableError only
        when no region has one (one provider's outage does not hide the other regions)."""
        answers = self.service.resolve_many(regions, start, slots, slot_minutes,
                                            deadline=self.service.deadline(time_budget_s))
        series = {r: a for r, a in answers.items() if isinstance(a, Forecast)}
        unavailable = {r: str(a) for r, a in answers.items() if not isinstance(a, Forecast)}
        if not series:
            failed = "; ".join(f"region {r!r}: {why}" for r, why in unavailable.items())
            raise UpstreamUnavailableError(f"no forecast for {failed}")
        return series, unavailable


def _aligned(native: Forecast, start: datetime, slot_minutes: int, slots: int) -> Forecast:
    def aligned(values: tuple[float, ...]) -> tuple[float, ...]:
        if not values:
            return ()
        return tuple(float(v) for v in align_to_slots(
            values, native.start, native.slot_minutes, start, slot_minutes, slots))

    return replace(native, start=start, slot_minutes=slot_minutes,
                   carbon_intensity=aligned(native.carbon_intensity),
                   carbon_intensity_p10=aligned(native.carbon_intensity_p10),
                   carbon_intensity_p90=aligned(native.carbon_intensity_p90),
                   price_per_mwh=aligned(native.price_per_mwh))
