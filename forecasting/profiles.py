"""Typical-day grid profiles embedded with the package: the offline default data.

``forecasting/data/typical_profiles.csv`` holds, for each region, month (1-12) and UTC hour
(0-23), the mean carbon intensity (gCO2e/kWh), the mean solar and wind shares of generation and a
normalised solar capacity-factor shape (see ``forecasting/data/README.md``). This module turns it
into per-slot series for any horizon: the hourly profile is piecewise constant per UTC hour, the
value of an hour being that of its (month, hour of day) cell, and a slot's value is the
time-weighted mean of the hourly values it covers.

Pure: numpy, pandas and the standard library; the CSV is read once and cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources

import numpy as np
import pandas as pd

__all__ = ["PROFILE_SOURCE", "known_regions", "typical_intensity", "typical_solar_cf"]

PROFILE_SOURCE: str = (
    "embedded typical-day profiles (mean by month x UTC hour): EIA-930 2022 hourly data "
    "(US government public data, via HewlettPackard/dc-rl, MIT), Germany 2020 15-min "
    "carbon intensity (via dos-group/vessim, MIT) and GB national intensity of 3 days of "
    "March 2023 (NESO Carbon Intensity API, CC BY 4.0, via "
    "nmpowell/carbon-intensity-forecast-tracking, MIT; the same profile every month)"
)

_CSV_NAME = "typical_profiles.csv"
_MONTHS = 12
_HOURS = 24
_SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class _RegionProfile:
    """The (12, 24) tables of one region; NaN where the source has no data."""

    ci_g_per_kwh: np.ndarray
    solar_cf: np.ndarray


@cache
def _profiles() -> dict[str, _RegionProfile]:
    """Load and index the embedded CSV (once per process)."""
    resource = resources.files("gridshift.forecasting") / "data" / _CSV_NAME
    with resource.open("r", encoding="utf-8") as handle:
        table = pd.read_csv(handle)
    profiles: dict[str, _RegionProfile] = {}
    for region, rows in table.groupby("region", sort=False):
        ci = np.full((_MONTHS, _HOURS), np.nan)
        cf = np.full((_MONTHS, _HOURS), np.nan)
        months = rows["month"].to_numpy(dtype=int) - 1
        hours = rows["hour_utc"].to_numpy(dtype=int)
        ci[months, hours] = rows["ci_g_per_kwh"].to_numpy(dtype=float)
        cf[months, hours] = rows["solar_cf"].to_numpy(dtype=float)
        if np.isnan(ci).any():
            raise ValueError(f"{_CSV_NAME}: region {region!r} lacks some (month, hour) cells")
        ci.setflags(write=False)
        cf.setflags(write=False)
        profiles[str(region)] = _RegionProfile(ci_g_per_kwh=ci, solar_cf=cf)
    return profiles


def _region(region: str) -> _RegionProfile:
    profiles = _profiles()
    try:
        return profiles[region]
    except KeyError:
        raise KeyError(
            f"no typical profile for region {region!r}; known regions: "
            f"{', '.join(sorted(profiles))}"
        ) from None


def known_regions() -> list[str]:
    """Region ids that have an embedded typical carbon-intensity profile, sorted."""
    return sorted(_profiles())


def _per_slot(table: np.ndarray, start: datetime, slots: int, slot_minutes: int) -> np.ndarray:
    """Time-weighted mean of the hourly (month, hour) profile ``table`` over each slot."""
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("start must be a timezone-aware datetime (UTC)")
    if slots < 0:
        raise ValueError(f"slots must be >= 0, got {slots}")
    if slot_minutes <= 0:
        raise ValueError(f"slot_minutes must be > 0, got {slot_minutes}")
    if slots == 0:
        return np.zeros(0)
    start_utc = start.astimezone(UTC)
    first_hour = start_utc.replace(minute=0, second=0, microsecond=0)
    offset_s = (start_utc - first_hour).total_seconds()
    edges_s = offset_s + np.arange(slots + 1, dtype=float) * slot_minutes * 60.0
    n_hours = int(np.ceil(edges_s[-1] / _SECONDS_PER_HOUR))
    hours = np.datetime64(first_hour.replace(tzinfo=None), "h") + np.arange(n_hours)
    month_idx = hours.astype("datetime64[M]").astype(np.int64) % _MONTHS
    hour_idx = hours.astype(np.int64) % _HOURS
    hourly = table[month_idx, hour_idx]
    # The cumulative integral of a step function is piecewise linear between hour boundaries,
    # so interpolating it at the slot edges is exact.
    knots_s = np.arange(n_hours + 1, dtype=float) * _SECONDS_PER_HOUR
    integral = np.concatenate([[0.0], np.cumsum(hourly * _SECONDS_PER_HOUR)])
    at_edges = np.interp(edges_s, knots_s, integral)
    return np.diff(at_edges) / (slot_minutes * 60.0)


def typical_intensity(region: str, start: datetime, slots: int, slot_minutes: int) -> np.ndarray:
    """Typical carbon intensity (gCO2e/kWh) of ``region`` for each of ``slots`` slots.

    Slot ``k`` covers ``[start + k*slot_minutes, start + (k+1)*slot_minutes)``; its value is the
    time-weighted mean of the hourly typical profile over that interval (each UTC hour takes the
    value of its month and hour of day). ``start`` must be timezone-aware; it is read in UTC and
    need not be on an hour boundary.

    Raises:
        KeyError: the region has no embedded profile (see :func:`known_regions`).
        ValueError: ``start`` is naive, ``slots`` < 0 or ``slot_minutes`` <= 0.
    """
    return _per_slot(_region(region).ci_g_per_kwh, start, slots, slot_minutes)


def typical_solar_cf(region: str, start: datetime, slots: int, slot_minutes: int) -> np.ndarray:
    """Typical solar capacity factor (0..1) of ``region`` for each slot, aligned as
    :func:`typical_intensity`.

    The shape is that of the region's utility solar fleet (EIA-930 SUN / its 2022 maximum);
    multiply by an on-site array's peak kW to get its expected output in kW.

    Raises:
        KeyError: the region is unknown or has no solar data (``DE``, ``US-NY-NYIS``).
        ValueError: ``start`` is naive, ``slots`` < 0 or ``slot_minutes`` <= 0.
    """
    table = _region(region).solar_cf
    if np.isnan(table).any():
        with_solar = sorted(
            name for name, prof in _profiles().items() if not np.isnan(prof.solar_cf).any()
        )
        raise KeyError(
            f"no solar capacity-factor profile for region {region!r}; regions with one: "
            f"{', '.join(with_solar)}"
        )
    return _per_slot(table, start, slots, slot_minutes)
