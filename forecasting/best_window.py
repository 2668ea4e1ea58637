"""FindBestWindow: the start that minimises the mean carbon intensity of a run, per region and
overall (what the Carbon Aware SDK's ``forecasts/current`` answers, for many regions at once).

For a run of ``duration_minutes`` that must lie inside ``[window_start, window_end]``, the
candidate starts of a region are ``window_start`` itself and every point of the series' own step
grid (``series.start + k * step``) after it from which the run still ends by ``window_end``. The
rolling-average curve maps each candidate start ``s`` to the time-weighted mean intensity over
``[s, s + duration)`` of the piecewise-constant series (value ``i`` holds on
``[start + i*step, start + (i+1)*step)``), so unaligned windows and durations are exact.

Vectorised: one cumulative integral per region, evaluated at every candidate's two ends by
linear interpolation (exact, the integral of a step function is piecewise linear).

Ties (within 1e-9 relative) go to the earliest start; across regions, then to the region that
sorts first. Gap policy: NaN values are filled from the nearest valid neighbour, as in
:mod:`forecasting.alignment`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from gridshift.forecasting.alignment import _fill_gaps
from gridshift.forecasting.series import Forecast

__all__ = ["BestWindowResult", "RegionBestWindow", "find_best_window"]

_TIE_REL = 1e-9


@dataclass(frozen=True, eq=False)
class RegionBestWindow:
    """The best start of one region and its rolling-average curve.

    Attributes:
        region: the region id.
        start: best start (earliest among ties).
        mean_intensity_g_per_kwh: time-weighted mean over ``[start, start + duration)``.
        curve_start_offsets_min: candidate starts, minutes after ``window_start`` (ascending).
        curve_mean_g_per_kwh: mean intensity of a run starting at each candidate.
        window_start: the request's window start (the offsets' origin).
        duration_minutes: the run's duration.
        forecast: the series the answer was computed from (provenance).
    """

    region: str
    start: datetime
    mean_intensity_g_per_kwh: float
    curve_start_offsets_min: np.ndarray = field(repr=False)
    curve_mean_g_per_kwh: np.ndarray = field(repr=False)
    window_start: datetime
    duration_minutes: float
    forecast: Forecast = field(repr=False)

    @property
    def end(self) -> datetime:
        """End of the best run (start + duration)."""
        return self.start + timedelta(minutes=self.duration_minutes)

    def curve(self) -> list[tuple[datetime, float]]:
        """The rolling-average curve as (start, mean gCO2e/kWh) pairs."""
        return [(self.window_start + timedelta(minutes=float(m)), float(v))
                for m, v in zip(self.curve_start_offsets_min, self.curve_mean_g_per_kwh,
                                strict=True)]


@dataclass(frozen=True)
class BestWindowResult:
    """Per-region answers and the overall best region/start."""

    regions: dict[str, RegionBestWindow]
    best: RegionBestWindow
    duration_minutes: float
    window_start: datetime
    window_end: datetime


def _check_inputs(series: dict[str, Forecast], duration_minutes: float, window_start: datetime,
                  window_end: datetime) -> float:
    """Validate the request; returns the window length in minutes."""
    if not series:
        raise ValueError("find_best_window: no regions given (series is empty)")
    for name, moment in (("window_start", window_start), ("window_end", window_end)):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"find_best_window: {name} must be timezone-aware (UTC)")
    if not duration_minutes > 0:
        raise ValueError(f"find_best_window: duration_minutes must be > 0, got {duration_minutes}")
    window_min = (window_end - window_start).total_seconds() / 60.0
    if duration_minutes > window_min:
        raise ValueError(f"find_best_window: the window [{window_start.isoformat()}, "
                         f"{window_end.isoformat()}] ({window_min:g} min) is shorter than the "
                         f"duration ({duration_minutes:g} min)")
    return window_min


def _check_series(region: str, forecast: Forecast, duration_minutes: float, offset_min: float,
                  window_min: float) -> None:
    step = forecast.slot_minutes
    n = len(forecast.carbon_intensity)
    if n == 0 or step <= 0:
        raise ValueError(f"find_best_window: region {region!r} has an empty series")
    if duration_minutes < step:
        raise ValueError(f"find_best_window: duration {duration_minutes:g} min is shorter than "
                         f"one {step}-min step of region {region!r}'s series")
    if offset_min < -1e-9 or offset_min + window_min > n * step + 1e-9:
        raise ValueError(f"find_best_window: region {region!r}'s series "
                         f"[{forecast.start.isoformat()}, {forecast.end.isoformat()}) does not "
                         f"cover the window")


def _region_curve(forecast: Forecast, duration_min: float, offset_min: float,
                  window_min: float) -> tuple[np.ndarray, np.ndarray]:
    """(candidate starts in minutes after the series start, mean over each run)."""
    step = float(forecast.slot_minutes)
    values = _fill_gaps(np.asarray(forecast.carbon_intensity, dtype=float))
    knots = np.arange(len(values) + 1) * step
    integral = np.concatenate([[0.0], np.cumsum(values * step)])
    last = offset_min + window_min - duration_min
    first_k = int(np.ceil(offset_min / step - 1e-9))
    last_k = int(np.floor(last / step + 1e-9))
    grid = np.arange(first_k, last_k + 1) * step
    starts = grid if grid.size and abs(grid[0] - offset_min) < 1e-9 else np.concatenate(
        [[offset_min], grid])
    means = (np.interp(starts + duration_min, knots, integral)
             - np.interp(starts, knots, integral)) / duration_min
    return starts, means


def _earliest_min(means: np.ndarray) -> int:
    """Index of the earliest mean within the tie tolerance of the minimum."""
    lowest = means.min()
    return int(np.argmax(means <= lowest + _TIE_REL * max(1.0, abs(lowest))))


def find_best_window(series: dict[str, Forecast], duration_minutes: float,
                     window_start: datetime, window_end: datetime) -> BestWindowResult:
    """Best start for a run of ``duration_minutes`` inside ``[window_start, window_end]``, per
    region of ``series`` and overall.

    Raises:
        ValueError: no regions; naive datetimes; duration <= 0, longer than the window or
            shorter than one step of a region's series; a series that does not cover the
            whole window or is empty.
    """
    window_min = _check_inputs(series, duration_minutes, window_start, window_end)
    answers: dict[str, RegionBestWindow] = {}
    for region, forecast in series.items():
        offset_min = (window_start - forecast.start).total_seconds() / 60.0
        _check_series(region, forecast, duration_minutes, offset_min, window_min)
        starts, means = _region_curve(forecast, float(duration_minutes), offset_min, window_min)
        best = _earliest_min(means)
        relative = starts - offset_min
        answers[region] = RegionBestWindow(
            region=region, start=window_start + timedelta(minutes=float(relative[best])),
            mean_intensity_g_per_kwh=float(means[best]), curve_start_offsets_min=relative,
            curve_mean_g_per_kwh=means, window_start=window_start,
            duration_minutes=duration_minutes, forecast=forecast)
    return BestWindowResult(regions=answers, best=_overall(answers),
                            duration_minutes=duration_minutes, window_start=window_start,
                            window_end=window_end)


def _overall(answers: dict[str, RegionBestWindow]) -> RegionBestWindow:
    """Lowest mean; ties to the earliest start, then the region that sorts first."""
    ordered = sorted(answers.values(), key=lambda a: (a.start, a.region))
    means = np.array([a.mean_intensity_g_per_kwh for a in ordered])
    return ordered[_earliest_min(means)]
