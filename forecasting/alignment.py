"""Align a regular series of any step to the request's slots by time-weighted mean.

Gap policy: a series must cover every slot it is aligned to; a slot only partly covered is an
error here (the caller reports it as a coverage problem). Missing values inside a series (NaN)
are filled from the nearest valid neighbour in time before averaging.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np


def covers(series_start: datetime, step_minutes: int, n_values: int,
           window_start: datetime, window_minutes: float) -> bool:
    """Whether [series_start, series_start + n*step) covers the whole window."""
    offset_min = (window_start - series_start).total_seconds() / 60.0
    return offset_min >= 0 and offset_min + window_minutes <= step_minutes * n_values + 1e-9


def align_to_slots(values: np.ndarray | list[float], series_start: datetime, step_minutes: int,
                   horizon_start: datetime, slot_minutes: int, slots: int) -> np.ndarray:
    """Time-weighted mean of a piecewise-constant series over each slot.

    Value i holds on [series_start + i*step, series_start + (i+1)*step). Raises ValueError
    when the series does not cover [horizon_start, horizon_start + slots*slot_minutes).
    """
    series = _fill_gaps(np.asarray(values, dtype=float))
    if not covers(series_start, step_minutes, len(series), horizon_start, slots * slot_minutes):
        raise ValueError("series does not cover the horizon")
    offset_min = (horizon_start - series_start).total_seconds() / 60.0
    # Integrate the step function: cumulative integral at every series boundary, then
    # interpolate it (exactly, it is piecewise linear) at the slot boundaries.
    boundaries_min = np.arange(len(series) + 1) * float(step_minutes)
    integral = np.concatenate([[0.0], np.cumsum(series * step_minutes)])
    slot_edges_min = offset_min + np.arange(slots + 1) * float(slot_minutes)
    at_edges = np.interp(slot_edges_min, boundaries_min, integral)
    return np.diff(at_edges) / slot_minutes


def _fill_gaps(series: np.ndarray) -> np.ndarray:
    bad = ~np.isfinite(series)
    if not bad.any():
        return series
    if bad.all():
        raise ValueError("series has no valid values")
    idx = np.arange(len(series))
    good = idx[~bad]
    nearest = good[np.clip(np.searchsorted(good, idx), 0, len(good) - 1)]
    left = good[np.clip(np.searchsorted(good, idx) - 1, 0, len(good) - 1)]
    pick = np.where(np.abs(idx - left) <= np.abs(nearest - idx), left, nearest)
    filled = series.copy()
    filled[bad] = series[pick[bad]]
    return filled
