"""The backtest's data: the carbon series (built-in ones of ../shared/data, or a user's CSV),
the trace of arrivals (the Philly GPU trace, or a user's jobs file), forecast vintages where a
user has them, and the mapping of a trace week onto a carbon year (see the package
docstring)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from gridshift.adapters.backtest_inputs import (
    read_carbon_csv,
    read_jobs_trace,
    read_site,
    read_vintages,
)
from gridshift.adapters.datasets import load_carbon_series, load_trace
from gridshift.app.backtest.config import (
    DEFAULT_TRACE_WEEK,
    MAX_DURATION_S,
    MIN_DURATION_S,
    SERIES_YEAR,
    SLOT_MINUTES,
    BacktestConfig,
    TraceJob,
    replay_origin,
)


@dataclass(frozen=True)
class SeriesSource:
    """Where a replay's carbon series comes from: a built-in series of the shared data
    (``csv_path`` None; ``region`` one of SERIES_YEAR or a short name) or a user's CSV named
    ``region``. ``forecast_path``: a file of real forecast vintages for it (optional)."""

    region: str
    csv_path: str | None = None
    forecast_path: str | None = None

    def describe(self) -> str:
        own = f"{self.csv_path}" if self.csv_path else "built-in series"
        vintages = f", forecast vintages from {self.forecast_path}" if self.forecast_path else ""
        return f"{self.region} ({own}{vintages})"


@dataclass(frozen=True)
class TraceSource:
    """Where the arrivals come from: the Philly trace (``jobs_path`` None) or a jobs file."""

    jobs_path: str | None = None

    @property
    def name(self) -> str:
        return self.jobs_path or "Philly trace"


@dataclass
class ReplayInputs:
    """The data one replay reads, loaded once by whoever plans the replays (a sweep hands the
    same inputs to every replay of a series; on Ray through the object store)."""

    series: pd.Series                  # hourly actual intensity, UTC index
    trace: pd.DataFrame                # arrival, duration_s, gpus [, power_kw, deadline]
    filter_durations: bool             # keep only jobs of 30 min .. 24 h (the Philly trace)
    vintages: pd.DataFrame | None = None   # issued_at, valid_at, value


def canonical_region(name: str) -> str:
    """``US-CAL-CISO`` for ``CISO`` / ``us-cal-ciso``; ``DE``. Raises ValueError otherwise."""
    key = name.strip().upper()
    for region in SERIES_YEAR:
        if key == region or key == region.rsplit("-", 1)[-1]:
            return region
    raise ValueError(f"unknown built-in backtest region {name!r}; known: "
                     f"{', '.join(SERIES_YEAR)} (or give your own with --carbon-csv)")


def load_series(source: SeriesSource, data_dir: Path) -> pd.Series:
    """Hourly actual intensity (gCO2e/kWh) on a UTC index."""
    if source.csv_path is not None:
        return read_carbon_csv(source.csv_path)
    return load_carbon_series(canonical_region(source.region), Path(data_dir))


def load_inputs(source: SeriesSource, trace: TraceSource, data_dir: Path) -> ReplayInputs:
    """Everything a replay of ``source`` with ``trace`` reads."""
    series = load_series(source, data_dir)
    if trace.jobs_path is None:
        frame, filtered = load_trace(Path(data_dir)), True
    else:
        frame, filtered = read_jobs_trace(trace.jobs_path), False
    vintages = (read_vintages(source.forecast_path, source.region, required=False)
                if source.forecast_path else None)
    return ReplayInputs(series, frame, filtered, vintages)


def site_settings(path: Path | str, region: str, site_id: str | None = None) -> dict:
    """The replayed site's settings (site_id, capacity_gpus, pue, power_cap_kw) from a nightly
    sites file: the site ``site_id``, else the first of ``region``."""
    return read_site(path, region, site_id)


def carbon_series(region: str, data_dir: Path) -> pd.Series:
    """Hourly actual intensity (gCO2e/kWh) of a built-in backtest region on a UTC index."""
    return load_carbon_series(canonical_region(region), Path(data_dir))


def to_year(day: date, year: int) -> date:
    """``day`` moved by the whole number of weeks that lands nearest the same calendar date
    in ``year`` (weekday kept)."""
    target = date(year, day.month, min(day.day, 28) if day.month == 2 else day.day)
    return day + timedelta(weeks=round((target - day).days / 7))


def series_start(day: date | None, series: pd.Series) -> date:
    """The replay's first day: ``day`` if the series holds it, else ``day`` moved by whole
    weeks into the series' first year; default the Monday the default trace week maps to in
    that year."""
    first, last = series.index[0].date(), series.index[-1].date()
    year = first.year if first.month < 12 or first.year == last.year else first.year + 1
    if day is None:
        return to_year(DEFAULT_TRACE_WEEK, year)
    return day if first <= day <= last else to_year(day, year)


def default_start(region: str) -> date:
    """The Monday the default trace week maps to in a built-in region's series year."""
    return to_year(DEFAULT_TRACE_WEEK, SERIES_YEAR[canonical_region(region)])


def trace_week(start: date, days: int, trace: pd.DataFrame) -> date:
    """The trace date replayed as ``start``: ``start`` moved by whole weeks to the nearest same
    calendar date in the trace's year, if the trace holds ``days`` from there; otherwise the
    trace's weeks are used in turn (the offset in weeks wraps around the trace's span), so a
    year of replays cycles through the trace rather than repeating its first or last week."""
    first = trace["arrival"].iloc[0].date()
    last = trace["arrival"].iloc[-1].date() - timedelta(days=days)
    candidate = to_year(start, first.year)
    base = first + timedelta(days=(candidate - first).days % 7)
    positions = (last - base).days // 7 + 1
    if positions <= 0:
        return base
    offset = (candidate - base).days // 7
    return base + timedelta(weeks=offset % positions)


def trace_jobs(cfg: BacktestConfig, inputs: ReplayInputs, trace_start: date) -> list[TraceJob]:
    """The jobs of the replayed days, shifted onto ``cfg.start``, with deadlines and power."""
    trace = inputs.trace
    lo = pd.Timestamp(trace_start, tz="UTC")
    hi = lo + pd.Timedelta(days=cfg.days)
    keep = trace[(trace["arrival"] >= lo) & (trace["arrival"] < hi)]
    if inputs.filter_durations:
        keep = keep[keep["duration_s"].between(MIN_DURATION_S, MAX_DURATION_S)]
    if cfg.max_jobs is not None and len(keep) > cfg.max_jobs:
        keep = keep.iloc[np.unique(np.linspace(0, len(keep) - 1, cfg.max_jobs).round()
                                   .astype(int))]
    shift = pd.Timestamp(cfg.start, tz="UTC") - lo
    origin = replay_origin(cfg)
    return [_job(i, row, shift, cfg, origin)
            for i, row in enumerate(keep.to_dict("records"))]


def _job(i: int, row: dict, shift: pd.Timedelta, cfg: BacktestConfig,
         origin: datetime) -> TraceJob:
    minutes = int(math.ceil(row["duration_s"] / 60.0))
    at = (row["arrival"] + shift).to_pydatetime()
    deadline = row.get("deadline")
    if deadline is None or pd.isna(deadline):
        deadline = at + timedelta(minutes=minutes, hours=cfg.slack_h)
    else:
        deadline = (deadline + shift).to_pydatetime()
    power = row.get("power_kw")
    power_kw = cfg.gpu_kw * row["gpus"] if power is None or pd.isna(power) else float(power)
    arrival_h = (at - origin).total_seconds() / 3600.0
    return TraceJob(
        id=f"job-{i:05d}", arrival=at, duration_minutes=minutes, gpus=int(row["gpus"]),
        power_kw=round(power_kw, 3), deadline=deadline, arrival_h=arrival_h,
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
