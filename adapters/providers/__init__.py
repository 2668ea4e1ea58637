"""Forecast providers: one client + one adapter (a ``ForecastSource``) per provider.

| module | adapter | signal |
| --- | --- | --- |
| :mod:`.ukci` | :class:`UKCarbonIntensity` | NESO UK CI: national, region id, postcode; 30 min |
| :mod:`.electricitymaps` | :class:`ElectricityMaps` | Electricity Maps v3, gCO2eq/kWh, hourly |
| :mod:`.watttime` | :class:`WattTime` | WattTime v3 MOER, lbs/MWh converted to g/kWh, 5 min |
| :mod:`.openmeteo` | :class:`OpenMeteoRenewables` | Open-Meteo weather turned into a site's kW |
| :mod:`.files` | :class:`FileSource` | CSV/Parquet series with forecast vintages ("as of") |

Every adapter's ``forecast(region, start, slots, slot_minutes)`` returns a :class:`Forecast` at
the provider's native resolution that covers ``[start, start + slots*slot_minutes)``
(alignment to slots happens in ``forecasting.alignment``), and ``history(region, start, end)``
returns actuals. Failures after retries, malformed/empty data and wrong units all raise
:class:`~forecasting.errors.ForecastUnavailable` (an unknown region raises
:class:`UnknownRegion`, which is also a ``KeyError``) so the caller's fallback chain can act.

This package module also holds the small helpers the adapters share.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from gridshift.forecasting.errors import ForecastUnavailable
from gridshift.forecasting.series import AVERAGE, Forecast

__all__ = [
    "MAX_MISSING_FRACTION",
    "MAX_PLAUSIBLE_G_PER_KWH",
    "Clock",
    "ElectricityMaps",
    "FileSource",
    "OpenMeteoRenewables",
    "UKCarbonIntensity",
    "UnknownRegion",
    "WattTime",
    "build_forecast",
    "parse_time",
    "utc",
]

Clock = Callable[[], datetime]

#: Carbon intensities above this (gCO2e/kWh) are taken as a unit error, not data. The dirtiest
#: grids average ~1,000 g/kWh and lignite plants ~1,200; marginal rates stay below ~1,000.
MAX_PLAUSIBLE_G_PER_KWH = 2500.0
#: A series with more missing (null) points than this, inside the window, is rejected.
MAX_MISSING_FRACTION = 0.25

_LAZY = {
    "UKCarbonIntensity": "ukci",
    "ElectricityMaps": "electricitymaps",
    "WattTime": "watttime",
    "OpenMeteoRenewables": "openmeteo",
    "FileSource": "files",
}


def __getattr__(name: str) -> Any:
    """Lazy re-exports, so that importing one provider does not import them all."""
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class UnknownRegion(ForecastUnavailable, KeyError):
    """A region that this source has no zone for (a ``ForecastUnavailable`` and a ``KeyError``,
    as the ``ForecastSource`` protocol asks)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (a naive value is taken to be UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def now_utc() -> datetime:
    """The current time, aware, UTC (the default clock of every adapter)."""
    return datetime.now(UTC)


def parse_time(text: Any) -> datetime:
    """Parse a provider timestamp (``2024-01-12T06:00Z``, ``...:00.000Z``, ``...+00:00``) to UTC.

    Raises ValueError for anything else.
    """
    if not isinstance(text, str) or not text:
        raise ValueError(f"not a timestamp: {text!r}")
    return utc(datetime.fromisoformat(text.strip()))


def window_end(start: datetime, slots: int, slot_minutes: int) -> datetime:
    """``start + slots * slot_minutes``, validating both counts."""
    if slots <= 0 or slot_minutes <= 0:
        raise ValueError(f"slots and slot_minutes must be positive, got {slots}, {slot_minutes}")
    return start + timedelta(minutes=slots * slot_minutes)


def resolve_zone(provider: str, zones: Mapping[str, str] | None, region: str) -> str:
    """The provider zone for a gridshift region (identity when ``zones`` is None)."""
    if zones is None:
        return region
    try:
        return zones[region]
    except KeyError:
        known = ", ".join(sorted(zones)) or "none"
        raise UnknownRegion(provider, region,
                            f"no zone configured for this region (configured: {known})") from None


def step_minutes_of(times: Iterable[datetime], default: int | None = None) -> int:
    """The series step: the smallest positive gap between consecutive timestamps, in minutes."""
    ordered = sorted(set(times))
    gaps = [(b - a).total_seconds() for a, b in zip(ordered, ordered[1:], strict=False)]
    gaps = [g for g in gaps if g > 0]
    if not gaps:
        if default is None:
            raise ValueError("cannot infer the step of a single-point series")
        return default
    step_s = min(gaps)
    if step_s % 60:
        raise ValueError(f"series step of {step_s:g} s is not a whole number of minutes")
    return int(step_s // 60)


def to_value(raw: Any) -> float:
    """A JSON number (or null → NaN); anything else is malformed."""
    if raw is None:
        return math.nan
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ValueError(f"not a number: {raw!r}")
    return float(raw)


def build_forecast(provider: str, region: str, points: Iterable[tuple[datetime, float]],
                   step_minutes: int, start: datetime, end: datetime, *,
                   issued_at: datetime | None, clock: Clock = now_utc,
                   max_plausible: float = MAX_PLAUSIBLE_G_PER_KWH,
                   max_missing_fraction: float = MAX_MISSING_FRACTION,
                   what: str = "carbon intensity", signal: str = AVERAGE) -> Forecast:
    """A regular series covering ``[start, end)`` from ``(period start, gCO2e/kWh)`` points.

    Points outside the window are dropped; a point repeated later in ``points`` wins (so a
    caller lists lower-priority data first). Missing points inside the window become NaN (the
    alignment's gap policy fills them); more than ``max_missing_fraction`` missing, a series
    that does not reach both ends of the window, off-grid timestamps, negative or implausibly
    large values (a unit error) all raise ForecastUnavailable. ``signal`` is what the provider
    publishes (average or marginal intensity).
    """
    step = timedelta(minutes=step_minutes)
    by_time: dict[datetime, float] = {}
    for t, v in points:
        if t < end and t + step > start:
            by_time[t] = v
    if not by_time:
        raise ForecastUnavailable(provider, region,
                                  f"no {what} data for {_fmt(start)} to {_fmt(end)}")
    first, last = min(by_time), max(by_time)
    for t in by_time:
        if (t - first) % step:
            raise ForecastUnavailable(provider, region,
                                      f"irregular timestamps (step {step_minutes} min expected)")
    if first > start or last + step < end:
        raise ForecastUnavailable(
            provider, region,
            f"{what} data covers {_fmt(first)} to {_fmt(last + step)}, not the requested "
            f"window {_fmt(start)} to {_fmt(end)}")
    n = (last - first) // step + 1
    values = [by_time.get(first + i * step, math.nan) for i in range(n)]
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        raise ForecastUnavailable(provider, region, f"only null {what} values in the window")
    missing = n - len(finite)
    if missing > max_missing_fraction * n:
        raise ForecastUnavailable(provider, region,
                                  f"{missing} of {n} {what} values missing in the window")
    low, high = min(finite), max(finite)
    if low < 0:
        raise ForecastUnavailable(provider, region, f"negative {what} value {low:g} g/kWh")
    if high > max_plausible:
        raise ForecastUnavailable(
            provider, region,
            f"implausible {what} value {high:g} g/kWh (wrong units?); max accepted "
            f"{max_plausible:g}")
    return Forecast(region=region, start=first, slot_minutes=step_minutes,
                    carbon_intensity=tuple(values), provider=provider,
                    issued_at=issued_at if issued_at is not None else clock(), signal=signal)


def malformed(provider: str, region: str, detail: str) -> ForecastUnavailable:
    """The error for a response that does not have the documented shape."""
    return ForecastUnavailable(provider, region, f"malformed response: {detail}")


def _fmt(t: datetime) -> str:
    return utc(t).strftime("%Y-%m-%dT%H:%MZ")
