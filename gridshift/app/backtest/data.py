"""The backtest's data: the Philly GPU trace and the real carbon series of ../shared/data,
and the mapping of a trace week onto a carbon year (see the package docstring)."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from gridshift.adapters.datasets import load_carbon_series
from gridshift.app.backtest.config import (
    DEFAULT_TRACE_WEEK,
    MAX_DURATION_S,
    MIN_DURATION_S,
    SERIES_YEAR,
    SLOT_MINUTES,
    TRACE_YEAR,
    BacktestConfig,
    TraceJob,
    replay_origin,
)


def canonical_region(name: str) -> str:
    """``US-CAL-CISO`` for ``CISO`` / ``us-cal-ciso``; ``DE``. Raises ValueError otherwise."""
    key = name.strip().upper()
    for region in SERIES_YEAR:
        if key == region or key == region.rsplit("-", 1)[-1]:
            return region
    raise ValueError(f"unknown backtest region {name!r}; known: {', '.join(SERIES_YEAR)}")


def default_start(region: str) -> date:
    """The Monday the default trace week maps to in the region's series year."""
    return to_year(DEFAULT_TRACE_WEEK, SERIES_YEAR[canonical_region(region)])


def to_year(day: date, year: int) -> date:
    """``day`` moved by the whole number of weeks that lands nearest the same calendar date
    in ``year`` (weekday kept)."""
    target = date(year, day.month, min(day.day, 28) if day.month == 2 else day.day)
    return day + timedelta(weeks=round((target - day).days / 7))


def carbon_series(region: str, data_dir: Path) -> pd.Series:
    """Hourly actual intensity (gCO2e/kWh) of a backtest region on a UTC index."""
    return load_carbon_series(canonical_region(region), Path(data_dir))


def trace_week(start: date, days: int, trace: pd.DataFrame) -> date:
    """The trace date replayed as ``start``: whole weeks into 2017, clamped into the trace."""
    candidate = to_year(start, TRACE_YEAR)
    first = trace["arrival"].iloc[0].date()
    last = trace["arrival"].iloc[-1].date() - timedelta(days=days)
    while candidate < first:
        candidate += timedelta(weeks=1)
    while candidate > last and candidate - timedelta(weeks=1) >= first:
        candidate -= timedelta(weeks=1)
    return candidate


def trace_jobs(cfg: BacktestConfig, trace: pd.DataFrame, trace_start: date) -> list[TraceJob]:
    """The jobs of the replayed days, shifted onto ``cfg.start``, with deadlines and power."""
    lo = pd.Timestamp(trace_start, tz="UTC")
    hi = lo + pd.Timedelta(days=cfg.days)
    keep = trace[(trace["arrival"] >= lo) & (trace["arrival"] < hi)
                 & trace["duration_s"].between(MIN_DURATION_S, MAX_DURATION_S)]
    if cfg.max_jobs is not None and len(keep) > cfg.max_jobs:
        keep = keep.iloc[np.unique(np.linspace(0, len(keep) - 1, cfg.max_jobs).round()
                                   .astype(int))]
    shift = pd.Timestamp(cfg.start, tz="UTC") - lo
    origin = replay_origin(cfg)
    return [_job(i, row.arrival + shift, row.duration_s, row.gpus, cfg, origin)
            for i, row in enumerate(keep.itertuples(index=False))]


def _job(i: int, arrival: pd.Timestamp, duration_s: float, gpus: int, cfg: BacktestConfig,
         origin: datetime) -> TraceJob:
    minutes = int(math.ceil(duration_s / 60.0))
    at = arrival.to_pydatetime()
    deadline = at + timedelta(minutes=minutes, hours=cfg.slack_h)
    arrival_h = (at - origin).total_seconds() / 3600.0
    return TraceJob(
        id=f"job-{i:05d}", arrival=at, duration_minutes=minutes, gpus=int(gpus),
        power_kw=round(cfg.gpu_kw * gpus, 3), deadline=deadline, arrival_h=arrival_h,
        first_h=math.ceil(arrival_h - 1e-9), duration_slots=-(-minutes // SLOT_MINUTES),
        deadline_h=math.floor((deadline - origin).total_seconds() / 3600.0 + 1e-9))


def size_capacity(jobs: list[TraceJob], utilisation: float) -> int:
    """GPUs such that the run-now demand (every job at its arrival) peaks at ``utilisation``."""
    if not jobs:
        return 1
    end = max(j.first_h + j.duration_slots for j in jobs) + 1
    demand = np.zeros(end, dtype=np.int64)
    for j in jobs:
        demand[j.first_h:j.first_h + j.duration_slots] += j.gpus
    return int(max(math.ceil(demand.max() / utilisation), max(j.gpus for j in jobs)))
