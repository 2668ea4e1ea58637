"""`gridshift backtest`: replay a real GPU job trace against real carbon series and compare
scheduling policies on the same jobs and the same capacity.

Data (from ``../shared/data`` or ``$GRIDSHIFT_SHARED_DATA``; see its SOURCES.md)
-------------------------------------------------------------------------------
- Jobs: the Microsoft Philly trace as used by Pollux (``philly-adaptdl/philly.csv``: arrival
  ``timestamp``, ``duration`` in s, ``num_gpus``). Timestamps are naive US Pacific time (the
  Philly README's clock); they are localised to America/Los_Angeles and converted to UTC.
- Carbon: hourly average intensity ``avg_CI`` (gCO2e/kWh) of the EIA-930 2022 balancing
  authorities (``sustaindc-eia/*_NG_&_avgCI.csv``: US-CAL-CISO, US-TEX-ERCO, US-MIDA-PJM,
  US-NW-BPAT, US-NY-NYIS, US-MIDW-MISO; short names CISO, ERCO, ... are accepted) and the
  German 2020 series (``vessim/carbon_intensity.csv``, 15 min, averaged to hours). Gaps are
  filled by linear interpolation.

Mapping the trace onto the carbon year
--------------------------------------
``start`` is a date in the carbon series' year (a date in another year is moved by whole
weeks into the series' year, keeping its weekday). The trace week replayed is the one whose
start is ``start`` moved by whole weeks into 2017 (nearest to the same calendar date), clamped
by whole weeks into the trace's span; arrival times are shifted by that whole number of weeks,
so weekday and hour of day (UTC) are kept. The default week, 2017-10-23 .. 10-30 (mapped to
2022-10-24 for the EIA regions and 2020-10-26 for DE), is a typical one: about 1,700 jobs of
30 min .. 24 h. (Early October 2017 holds bursts of thousands of one-GPU sweep jobs.)

Jobs and site
-------------
- Jobs of 30 min .. 24 h are kept, with their trace GPU counts (1 .. 32 in the default week)
  and durations unchanged; ``max_jobs`` keeps N of them spread evenly over the arrivals
  (every k-th; for small tests).
- ``power_kw = gpus * 0.7`` (about one accelerator plus its share of the host); one site per
  region experiment with PUE 1.0 and no on-site renewables, so grid energy = IT energy and
  every policy is scaled alike.
- ``deadline = arrival + duration + slack_h`` (default 12 h).
- Capacity: ``ceil(peak / utilisation)`` GPUs (utilisation 0.9), where ``peak`` is the most
  GPUs in use at once if every job ran at its arrival (the run-now demand without a capacity
  limit); so run-now peaks at about 90 % of capacity. At least the widest job.
- Hourly slots: a job occupies ``ceil(duration / 1 h)`` whole slots and may start at the first
  hour boundary at or after its arrival (DESIGN.md semantics), for every policy alike.

Rolling decisions
-----------------
Decisions are taken every ``decision_hours`` (default 1 h, as a scheduler calling the service
for each batch of arrivals would; 6 h is the coarser alternative, where jobs wait for the next
decision and lose slack). At each decision time ``d`` a policy plans the jobs that arrived by
``d`` and have not started (they may start at ``d`` at the earliest); jobs it started earlier
occupy capacity (commitments carry over as lowered site capacity). The window's horizon runs
from ``d`` to the latest deadline of its jobs plus a 24-h margin (room for placements a repair
has to push past a deadline). Decisions go on after the week until every job has started.

The forecast known at ``d``: the actual series from ``d`` on, perturbed by the calibrated
forecast error model (default :data:`forecasting.uncertainty.DEFAULT`, the average-intensity
model fitted on GB NESO 48-h forecasts: sigma by lead time, AR(1) across valid hours). With
``vintages="evolving"`` (the default) the forecasts of successive decisions are one consistent
history (:func:`forecasting.uncertainty.evolving_log_errors`, seed ``seed``): the error of a
valid hour shrinks as it approaches by revealing independent innovations, as real forecast
vintages do (GB NESO vintages 12-36 h apart share 0.77-0.98 of their error). With
``vintages="independent"`` every decision draws a fresh error
(``forecasting.uncertainty.scenarios``, seed ``seed * 100_000 + decision index``), which makes
re-planning chase noise. Every forecast-driven policy sees the same forecast at the same
decision.

Policies (all on the same jobs and capacity, all scored with the ACTUAL intensity)
----------------------------------------------------------------------------------
- ``run-now``: each job starts at its arrival if its GPUs are free, else at the earliest slot
  where it fits; jobs in order of arrival. This is the DESIGN.md FIFO baseline
  (``optimizer.baseline.fifo_baseline``) on one problem holding the whole replay; it is
  event-driven (no decision cadence). Savings are measured against it.
- ``fifo``: DESIGN.md's FIFO baseline on each decision window's problem (jobs wait for the next
  decision, then start first come, first served); every job is committed when planned. With
  ``decision_hours=1`` it equals run-now.
- ``lowest-window``: what the Carbon Aware SDK advises per job: the start with the lowest
  forecast mean intensity within ``[d, deadline]`` (``forecasting.best_window.find_best_window``,
  asked for the job's occupied duration), capacity ignored; then repaired in order of those
  starts: a job that does not fit takes its next-best start that fits, else the earliest start
  that fits after its window (late). Committed when planned (a submitter schedules the job at
  the advised time).
- ``lets-wait-awhile``: as lowest-window, but the start is restricted to
  ``[d, arrival + max_shift_h]`` (default 8 h) and to the deadline; same repair.
- ``gridshift``: the product: each window's request (``gridshift.planning.prepare``, inline
  decision-time forecast, ``allow_partial``) solved by ``optimizer.solve.solve`` under
  ``time_limit_s``. Like the service, it plans on the decision-time forecast blended with the
  seasonal model of the actuals published by then (:mod:`forecasting.blend`; the actual of an
  hour is published ``actuals_delay_h`` = 1 h after it ends; the 21 days before the replay are
  known from the start); ``blend=False`` plans on the raw forecast, ``blend_others=True`` gives
  the lowest-window and Let's-Wait-Awhile policies the blended forecast too (what the Carbon
  Aware SDK would advise on it), to separate forecasting from joint planning. Only jobs
  planned to start before the next decision are committed; the others
  are planned again with the next, fresher forecast. A job the solver cannot place by its
  deadline (it never happens when capacity allows) takes the earliest start that fits (late).
  A job that can no longer meet its deadline at all (slack shorter than its wait for the
  decision) is asked to finish as early as possible, for every policy.
- ``perfect-foresight``: the same solver and rolling scheme on the actual series (perfect
  knowledge of carbon intensity, not of future arrivals), with ``pf_time_limit_s`` (default
  twice ``time_limit_s``). It is the upper reference for what rolling planning can save.

Checks and totals
-----------------
Every window's plan of every policy goes through the independent checker
(``optimizer.checker.check_plan``) on that window's problem (the intensity the policy saw;
deadlines of the jobs it placed late relaxed to the horizon's end). The final schedule of each
policy is checked again on one problem spanning the whole replay with the actual series (which
also proves that commitments never overbook capacity), and the totals reported are that
check's: ``emissions_kg``, ``energy_kwh``, waits. ``savings_kg = run-now - policy``;
``share_of_pf_pct = savings / perfect-foresight savings``. A schedule the checker rejects raises
:class:`BacktestError` (a bug).

What limits gridshift here (bench/backtest.py prints the numbers)
------------------------------------------------------------------
With capacity sized to the run-now peak, the trace's bursts leave most hours far below
capacity, so capacity almost never binds once jobs are spread over their deadline windows:
given the same forecast, gridshift and the per-job lowest window choose nearly the same starts
(gridshift's hourly re-planning with fresher vintages gains a little), and both stay below
perfect foresight by what the forecast error costs (the average-CI model's sigma is 0.11 at the
current hour and 0.18 at 12 h). The blend with the seasonal model of published actuals removes
part of that error, most where the series is regular and the hours differ little. Where
capacity binds (``utilisation`` > 1), gridshift's joint plan beats the repaired per-job advice
clearly and keeps every deadline.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.best_window import find_best_window
from forecasting.blend import HISTORY_DAYS, blend_with_actuals
from forecasting.series import Forecast
from forecasting.uncertainty import (
    DEFAULT,
    SEASONAL_EXTENSION_MODEL,
    ErrorModel,
    evolving_log_errors,
    scenarios,
)
from gridshift.planning import prepare
from optimizer.accounting import figures
from optimizer.baseline import fifo_baseline
from optimizer.checker import CheckResult, check_plan
from optimizer.plan import Placement, Plan
from optimizer.problem import Problem
from optimizer.solve import solve

__all__ = [
    "FORECAST_MODELS", "POLICIES", "VINTAGES", "BacktestConfig", "BacktestError", "BacktestResult",
    "TraceJob", "add_arguments", "canonical_region", "default_start", "describe",
    "format_table", "load_carbon_series", "load_trace", "main", "run_backtest",
    "shared_data_dir", "size_capacity", "trace_jobs", "trace_week", "write_outputs",
]

POLICIES = ("run-now", "fifo", "lowest-window", "lets-wait-awhile", "gridshift",
            "perfect-foresight")
REFERENCE_POLICY = "run-now"
EIA_FILES = {
    "US-CAL-CISO": "CISO_NG_&_avgCI.csv", "US-TEX-ERCO": "ERCO_NG_&_avgCI.csv",
    "US-MIDA-PJM": "PJM_NG_&_avgCI.csv", "US-NW-BPAT": "BPAT_NG_&_avgCI.csv",
    "US-NY-NYIS": "NYIS_NG_&_avgCI.csv", "US-MIDW-MISO": "MISO_NG_&_avgCI.csv",
}
SERIES_YEAR = {**{r: 2022 for r in EIA_FILES}, "DE": 2020}
TRACE_YEAR = 2017
DEFAULT_TRACE_WEEK = date(2017, 10, 23)
MIN_DURATION_S, MAX_DURATION_S = 30 * 60, 24 * 3600
SLOT_MINUTES = 60
SITE_ID = "site"
#: Decision-time forecast error models: the calibrated average-intensity model (the default),
#: the seasonal-extension model backtested on these very series, or none (perfect forecasts).
FORECAST_MODELS: dict[str, ErrorModel | None] = {
    "average-ci": DEFAULT, "seasonal-extension": SEASONAL_EXTENSION_MODEL, "perfect": None,
}

#: How forecasts issued at successive decisions relate: ``evolving`` (the default) draws one
#: consistent history of vintages (forecasting.uncertainty.evolving_log_errors), ``independent``
#: draws every decision's forecast error afresh.
VINTAGES = ("evolving", "independent")


class BacktestError(RuntimeError):
    """A schedule failed the independent checker, or the data cannot hold the replay."""


@dataclass(frozen=True)
class BacktestConfig:
    """One replay: region, week and the policy parameters (see the module docstring)."""

    region: str
    start: date
    days: int = 7
    slack_h: float = 12.0
    time_limit_s: float = 5.0
    pf_time_limit_s: float | None = None
    seed: int = 0
    decision_hours: int = 1
    max_shift_h: float = 8.0
    utilisation: float = 0.9
    gpu_kw: float = 0.7
    margin_h: int = 24
    trace_start: date | None = None
    max_jobs: int | None = None
    capacity_gpus: int | None = None
    forecast_model: str = "average-ci"
    vintages: str = "evolving"
    blend: bool = True
    blend_others: bool = False
    actuals_delay_h: int = 1
    perfect_leads_h: tuple[int, int] | None = None

    @property
    def pf_limit_s(self) -> float:
        return 2.0 * self.time_limit_s if self.pf_time_limit_s is None else self.pf_time_limit_s


@dataclass(frozen=True)
class TraceJob:
    """A trace job mapped onto the carbon year; ``*_h`` are hours after the replay's start."""

    id: str
    arrival: datetime
    duration_minutes: int
    gpus: int
    power_kw: float
    deadline: datetime
    arrival_h: float
    first_h: int          # first whole hour at or after arrival
    duration_slots: int
    deadline_h: int       # deadline rounded down to the hour


@dataclass
class BacktestResult:
    """The comparison table and what it was computed from."""

    config: BacktestConfig
    trace_start: date
    capacity_gpus: int
    jobs: list[TraceJob]
    table: pd.DataFrame             # one row per policy
    hourly_kg: pd.DataFrame         # actual emissions per hour, one column per policy
    starts: pd.DataFrame            # start time per job (rows) and policy (columns)
    windows: pd.DataFrame           # one row per decision window and policy
    checks_passed: int = 0


# --- Data ---------------------------------------------------------------------------------


def shared_data_dir() -> Path:
    """``$GRIDSHIFT_SHARED_DATA`` or ``<repo>/../shared/data`` (may not exist)."""
    env = os.environ.get("GRIDSHIFT_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def canonical_region(name: str) -> str:
    """``US-CAL-CISO`` for ``CISO`` / ``us-cal-ciso``; ``DE``. Raises ValueError otherwise."""
    key = name.strip().upper()
    for region in SERIES_YEAR:
        if key == region or key == region.rsplit("-", 1)[-1]:
            return region
    raise ValueError(f"unknown backtest region {name!r}; known: {', '.join(SERIES_YEAR)}")


def default_start(region: str) -> date:
    """The Monday the default trace week maps to in the region's series year."""
    return _to_year(DEFAULT_TRACE_WEEK, SERIES_YEAR[canonical_region(region)])


def _to_year(day: date, year: int) -> date:
    """``day`` moved by the whole number of weeks that lands nearest the same calendar date
    in ``year`` (weekday kept)."""
    target = date(year, day.month, min(day.day, 28) if day.month == 2 else day.day)
    return day + timedelta(weeks=round((target - day).days / 7))


@functools.lru_cache(maxsize=16)
def load_carbon_series(region: str, data_dir: Path) -> pd.Series:
    """Hourly actual intensity (gCO2e/kWh) on a UTC index, gaps interpolated."""
    region = canonical_region(region)
    if region == "DE":
        frame = pd.read_csv(data_dir / "vessim" / "carbon_intensity.csv", parse_dates=["time"])
        series = frame.set_index("time")["DE"].resample("1h").mean()
        series.index = series.index.tz_localize("UTC")
    else:
        frame = pd.read_csv(data_dir / "sustaindc-eia" / EIA_FILES[region])
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        series = frame.set_index("timestamp")["avg_CI"].resample("1h").mean()
    return series.interpolate(limit_direction="both").astype(float)


@functools.lru_cache(maxsize=4)
def load_trace(data_dir: Path) -> pd.DataFrame:
    """The Philly trace: ``arrival`` (UTC), ``duration_s``, ``gpus``, sorted by arrival."""
    frame = pd.read_csv(data_dir / "philly-adaptdl" / "philly.csv")
    local = pd.to_datetime(frame["timestamp"])
    arrival = local.dt.tz_localize("America/Los_Angeles", ambiguous=False,
                                   nonexistent="shift_forward").dt.tz_convert("UTC")
    out = pd.DataFrame({"arrival": arrival, "duration_s": frame["duration"].astype(float),
                        "gpus": frame["num_gpus"].astype(int)})
    return out.sort_values("arrival", kind="stable").reset_index(drop=True)


def trace_week(start: date, days: int, trace: pd.DataFrame) -> date:
    """The trace date replayed as ``start``: whole weeks into 2017, clamped into the trace."""
    candidate = _to_year(start, TRACE_YEAR)
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
    origin = _origin(cfg)
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


# --- The replay context ---------------------------------------------------------------------


def _origin(cfg: BacktestConfig) -> datetime:
    return datetime(cfg.start.year, cfg.start.month, cfg.start.day, tzinfo=UTC)


@dataclass
class _Context:
    cfg: BacktestConfig
    origin: datetime
    total_h: int                  # hours from origin that the replay may use
    actual: np.ndarray            # [total_h] actual intensity
    jobs: list[TraceJob]
    capacity: int
    past: np.ndarray              # [HISTORY_DAYS * 24] actual intensity before origin
    _forecasts: dict[int, np.ndarray] = field(default_factory=dict)
    _log_errors: np.ndarray | None = None     # [valid hour, lead] (evolving vintages)

    def time(self, hour: int) -> datetime:
        return self.origin + timedelta(hours=hour)

    def forecast(self, k: int, start_h: int) -> np.ndarray:
        """The forecast issued at decision ``k`` (hour ``start_h``) for [start_h, total_h)."""
        model = FORECAST_MODELS[self.cfg.forecast_model]
        if model is None:
            return self.actual[start_h:]
        if self.cfg.vintages == "evolving":
            if self._log_errors is None:
                self._log_errors = evolving_log_errors(model, self.total_h, SLOT_MINUTES,
                                                       seed=self.cfg.seed)
            valid = np.arange(start_h, self.total_h)
            return self.actual[start_h:] * np.exp(self._log_errors[valid, valid - start_h])
        if k not in self._forecasts:
            self._forecasts[k] = scenarios(
                self.actual[start_h:], issued_at=self.time(start_h), start=self.time(start_h),
                step_minutes=SLOT_MINUTES, n=1, seed=self.cfg.seed * 100_000 + k,
                model=model)[0]
        return self._forecasts[k]

    def product_forecast(self, k: int, start_h: int) -> np.ndarray:
        """What gridshift plans on at decision ``k``: the decision-time forecast blended with
        the seasonal model of the actuals published by then (forecasting.blend), unless
        ``blend`` is off; with ``perfect_leads_h`` = (first, end), the hours at leads ``first``
        to ``end`` (exclusive) are the actual intensity (the value of perfect information at
        those leads; a diagnostic)."""
        values = self._blended(k, start_h)
        if self.cfg.perfect_leads_h is not None:
            first, end = self.cfg.perfect_leads_h
            values = values.copy()
            values[first:end] = self.actual[start_h + first:start_h + end]
        return values

    def _blended(self, k: int, start_h: int) -> np.ndarray:
        values = self.forecast(k, start_h)
        if not self.cfg.blend:
            return values
        known_h = start_h - self.cfg.actuals_delay_h
        history = np.concatenate([self.past, self.actual[:max(known_h, 0)]])
        first = self.time(-len(self.past))
        issued = self.time(start_h)
        forecast = Forecast(region=self.cfg.region, start=issued, slot_minutes=SLOT_MINUTES,
                            carbon_intensity=tuple(values), provider="backtest-forecast",
                            issued_at=issued)
        actuals = Forecast(region=self.cfg.region, start=first, slot_minutes=SLOT_MINUTES,
                           carbon_intensity=tuple(history), provider="actuals")
        blend = blend_with_actuals(forecast, actuals)
        return np.asarray(blend.forecast.carbon_intensity, dtype=float)


def _context(cfg: BacktestConfig, data_dir: Path) -> tuple[_Context, date]:
    trace = load_trace(data_dir)
    week = cfg.trace_start or trace_week(cfg.start, cfg.days, trace)
    jobs = trace_jobs(cfg, trace, week)
    if not jobs:
        raise BacktestError(f"no trace jobs of 30 min .. 24 h in the week from {week}")
    origin = _origin(cfg)
    total_h = (cfg.days * 24 + 24 + math.ceil(cfg.slack_h) + cfg.decision_hours
               + 2 * cfg.margin_h)
    series = load_carbon_series(cfg.region, data_dir)
    window = series[(series.index >= origin) & (series.index < origin
                                                + timedelta(hours=total_h))]
    if len(window) < total_h:
        raise BacktestError(f"the {cfg.region} series does not cover {origin:%Y-%m-%d} + "
                            f"{total_h} h (it spans {series.index[0]} .. {series.index[-1]})")
    # The actuals before the replay (NaN where the series has none) feed gridshift's blend.
    before = pd.date_range(origin - timedelta(days=HISTORY_DAYS), origin, freq="1h",
                           inclusive="left")
    past = series.reindex(before).to_numpy(dtype=float)
    capacity = cfg.capacity_gpus or size_capacity(jobs, cfg.utilisation)
    return _Context(cfg, origin, total_h, window.to_numpy(dtype=float), jobs, capacity,
                    past), week


# --- Window requests --------------------------------------------------------------------------


@dataclass
class _Window:
    index: int
    start_h: int
    slots: int
    jobs: list[TraceJob]
    free_gpus: np.ndarray        # [slots] capacity left by earlier commitments


def _ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _capacity_windows(ctx: _Context, w: _Window) -> list[dict]:
    """Runs of equal lowered capacity as DESIGN.md capacity windows."""
    out: list[dict] = []
    t = 0
    while t < w.slots:
        value = int(w.free_gpus[t])
        end = t + 1
        while end < w.slots and int(w.free_gpus[end]) == value:
            end += 1
        if value < ctx.capacity:
            out.append({"start": _ts(ctx.time(w.start_h + t)),
                        "end": _ts(ctx.time(w.start_h + end)), "gpu_capacity": value})
        t = end
    return out


def _job_dict(ctx: _Context, w: _Window, job: TraceJob, relaxed: bool) -> dict:
    """A job of a window request. A job that can no longer meet its deadline is due as soon
    as it could finish (run it now); a ``relaxed`` one (checks only) by the horizon's end."""
    first = max(job.first_h, w.start_h)
    due_h = (w.start_h + w.slots if relaxed
             else max(job.deadline_h, first + job.duration_slots))
    return {"id": job.id, "gpus": job.gpus, "power_kw": job.power_kw,
            "duration_minutes": job.duration_minutes, "earliest_start": _ts(ctx.time(first)),
            "deadline": _ts(ctx.time(due_h)), "home_site": SITE_ID}


def _window_request(ctx: _Context, w: _Window, ci: np.ndarray, time_limit_s: float,
                   relaxed: frozenset[str] = frozenset()) -> dict:
    """The OptimizeRequest of a decision window: its jobs, the capacity left by commitments
    and the series ``ci`` from the decision time; jobs in ``relaxed`` are due by the
    horizon's end (see :func:`_job_dict`)."""
    start = _ts(ctx.time(w.start_h))
    site = {"id": SITE_ID, "region": ctx.cfg.region, "gpu_capacity": ctx.capacity, "pue": 1.0,
            "capacity_windows": _capacity_windows(ctx, w)}
    return {
        "horizon": {"start": start, "slot_minutes": SLOT_MINUTES, "slots": w.slots},
        "sites": [site],
        "jobs": [_job_dict(ctx, w, j, j.id in relaxed) for j in w.jobs],
        "forecasts": [{"region": ctx.cfg.region, "start": start, "slot_minutes": SLOT_MINUTES,
                       "carbon_intensity": [float(v) for v in ci[:w.slots]]}],
        "options": {"time_limit_seconds": time_limit_s, "allow_partial": True,
                    "random_seed": ctx.cfg.seed},
    }


# --- Capacity ledger --------------------------------------------------------------------------


@dataclass
class _Ledger:
    """A policy's committed starts (absolute hours) and the GPUs they hold per hour."""

    used: np.ndarray
    starts: dict[str, int] = field(default_factory=dict)

    def commit(self, job: TraceJob, start_h: int) -> None:
        self.used[start_h:start_h + job.duration_slots] += job.gpus
        self.starts[job.id] = start_h


def _fits(free: np.ndarray, start: int, slots: int, gpus: int) -> bool:
    return start + slots <= len(free) and bool((free[start:start + slots] >= gpus).all())


def _earliest_fit(free: np.ndarray, first: int, slots: int, gpus: int, job_id: str) -> int:
    for start in range(first, len(free) - slots + 1):
        if _fits(free, start, slots, gpus):
            return start
    raise BacktestError(f"{job_id} fits nowhere in its window's horizon; raise margin_h")


# --- Policies: one decision window each -----------------------------------------------------


@dataclass
class _Decision:
    """A policy's starts for one window. ``relaxed``: jobs placed outside their deadline
    window (late, or pushed out by a repair); they are committed at once and their deadline is
    relaxed in the window's check (lateness is counted against the real deadline)."""

    starts: dict[str, int]              # job id -> start slot in the window
    relaxed: set[str] = field(default_factory=set)
    status: str = ""


def _problem(ctx: _Context, w: _Window, ci: np.ndarray, limit_s: float = 1.0,
             relaxed: frozenset[str] = frozenset()) -> Problem:
    # No forecast sources: the request carries the only series the policy may see.
    return prepare(_window_request(ctx, w, ci, limit_s, relaxed), sources=[])


def _decide_fifo(ctx: _Context, w: _Window, ci: np.ndarray) -> _Decision:
    problem = _problem(ctx, w, ci)
    plan = fifo_baseline(problem)
    if plan.unscheduled:
        raise BacktestError(f"FIFO left jobs out at window {w.index}; raise margin_h")
    return _Decision({problem.job_ids[j]: p.start_slot for j, p in plan.placements.items()},
                     {problem.job_ids[j] for j, p in plan.placements.items()
                      if p.end_slot > problem.last_slot[j]}, status="FIFO")


def _ranked_starts(ctx: _Context, w: _Window, ci: np.ndarray, job: TraceJob,
                   latest_start: int) -> list[int]:
    """Window slots ordered by the forecast mean intensity of a run starting there (lowest
    first; ties earliest), from find_best_window's rolling-average curve."""
    first = max(job.first_h, w.start_h) - w.start_h
    latest_start = max(first, min(latest_start, w.slots - job.duration_slots))
    series = Forecast(region=ctx.cfg.region, start=ctx.time(w.start_h),
                      slot_minutes=SLOT_MINUTES, carbon_intensity=tuple(ci[:w.slots]))
    answer = find_best_window(
        {ctx.cfg.region: series}, job.duration_slots * SLOT_MINUTES,
        ctx.time(w.start_h + first), ctx.time(w.start_h + latest_start + job.duration_slots))
    curve = answer.regions[ctx.cfg.region]
    slots = first + np.rint(curve.curve_start_offsets_min / SLOT_MINUTES).astype(int)
    order = np.argsort(curve.curve_mean_g_per_kwh, kind="stable")
    return [int(s) for s in slots[order]]


def _repair(w: _Window, ranked: dict[str, list[int]]) -> _Decision:
    """Jobs in order of their preferred start; each takes its best-ranked start that fits,
    else the earliest start that fits after its window (late)."""
    free = w.free_gpus.copy()
    by_id = {j.id: j for j in w.jobs}
    decision = _Decision({}, status="repaired")
    for job_id in sorted(ranked, key=lambda i: (ranked[i][0], by_id[i].arrival_h, i)):
        job = by_id[job_id]
        start = next((s for s in ranked[job_id]
                      if _fits(free, s, job.duration_slots, job.gpus)), None)
        if start is None:
            start = _earliest_fit(free, max(ranked[job_id]) + 1, job.duration_slots,
                                  job.gpus, job.id)
            decision.relaxed.add(job.id)
        free[start:start + job.duration_slots] -= job.gpus
        decision.starts[job.id] = start
    return decision


def _latest_start(w: _Window, job: TraceJob) -> int:
    first = max(job.first_h, w.start_h)
    return max(first, job.deadline_h - job.duration_slots) - w.start_h


def _decide_lowest(ctx: _Context, w: _Window, ci: np.ndarray) -> _Decision:
    return _repair(w, {j.id: _ranked_starts(ctx, w, ci, j, _latest_start(w, j))
                       for j in w.jobs})


def _decide_lwa(ctx: _Context, w: _Window, ci: np.ndarray) -> _Decision:
    def latest(j: TraceJob) -> int:
        shift_end = math.floor(j.arrival_h + ctx.cfg.max_shift_h) - w.start_h
        return min(shift_end, _latest_start(w, j))

    return _repair(w, {j.id: _ranked_starts(ctx, w, ci, j, latest(j)) for j in w.jobs})


def _decide_solver(ctx: _Context, w: _Window, ci: np.ndarray, limit_s: float) -> _Decision:
    problem = _problem(ctx, w, ci, limit_s)
    result = solve(problem, time_limit_s=limit_s)
    decision = _Decision({}, status=result.status)
    free = w.free_gpus.copy()
    for j, p in result.plan.placements.items():
        decision.starts[problem.job_ids[j]] = p.start_slot
        free[list(p.slots)] -= problem.gpus[j]
    by_id = {j.id: j for j in w.jobs}
    for j in range(problem.n_jobs):
        job = by_id[problem.job_ids[j]]
        if job.id not in decision.starts:
            start = _earliest_fit(free, int(problem.first_slot[j]), job.duration_slots,
                                  job.gpus, job.id)
            free[start:start + job.duration_slots] -= job.gpus
            decision.starts[job.id] = start
            decision.relaxed.add(job.id)
    return decision


# --- The rolling loop ---------------------------------------------------------------------


@dataclass
class _PolicyRun:
    starts: dict[str, int]              # job id -> absolute start hour
    windows: list[dict]
    checks: int


def _policy_spec(ctx: _Context, policy: str):
    """(decide(window) -> Decision, series(window) -> ci, commit everything?)"""
    cfg = ctx.cfg

    def forecast(w: _Window) -> np.ndarray:
        return ctx.forecast(w.index, w.start_h)

    def product_forecast(w: _Window) -> np.ndarray:
        return ctx.product_forecast(w.index, w.start_h)

    advice_forecast = product_forecast if cfg.blend_others else forecast

    def actual(w: _Window) -> np.ndarray:
        return ctx.actual[w.start_h:]

    specs = {
        "fifo": (_decide_fifo, forecast, True),
        "lowest-window": (_decide_lowest, advice_forecast, True),
        "lets-wait-awhile": (_decide_lwa, advice_forecast, True),
        "gridshift": (lambda c, w, ci: _decide_solver(c, w, ci, cfg.time_limit_s),
                      product_forecast, False),
        "perfect-foresight": (lambda c, w, ci: _decide_solver(c, w, ci, cfg.pf_limit_s),
                              actual, False),
    }
    return specs[policy]


def _make_window(ctx: _Context, k: int, start_h: int, pending: list[TraceJob],
                 ledger: _Ledger) -> _Window:
    end = max(j.deadline_h for j in pending)
    end = max(end, max(max(j.first_h, start_h) + j.duration_slots for j in pending))
    slots = min(end - start_h + ctx.cfg.margin_h, ctx.total_h - start_h)
    if slots <= 0:
        raise BacktestError(f"decision {k} at hour {start_h} is past the replay's horizon")
    free = ctx.capacity - ledger.used[start_h:start_h + slots]
    return _Window(k, start_h, slots, list(pending), free.astype(np.int64))


def _run_windowed(ctx: _Context, policy: str,
                  on_window: Callable[[str], None] | None = None) -> _PolicyRun:
    decide, series, commit_all = _policy_spec(ctx, policy)
    ledger = _Ledger(np.zeros(ctx.total_h, dtype=np.int64))
    cadence = ctx.cfg.decision_hours
    queue, pending, windows, checks, k = list(ctx.jobs), [], [], 0, 0
    while queue or pending:
        start_h = k * cadence
        while queue and queue[0].arrival_h <= start_h + 1e-9:
            pending.append(queue.pop(0))
        if pending:
            w = _make_window(ctx, k, start_h, pending, ledger)
            ci = series(w)
            began = time.perf_counter()
            decision = decide(ctx, w, ci)
            wall = time.perf_counter() - began
            _check_window(ctx, w, ci, decision, policy)
            checks += 1
            committed = _commit(ledger, w, decision, commit_all, cadence)
            pending = [j for j in pending if j.id not in committed]
            windows.append({"policy": policy, "window": k, "decision": ctx.time(start_h),
                            "jobs": len(w.jobs), "committed": len(committed),
                            "wall_s": wall, "status": decision.status})
            if on_window is not None:
                on_window(policy)
        k += 1
        if k * cadence > ctx.total_h:
            raise BacktestError(f"{policy}: jobs still pending at the replay's end")
    return _PolicyRun(ledger.starts, windows, checks)


def _commit(ledger: _Ledger, w: _Window, decision: _Decision, commit_all: bool,
            cadence: int) -> set[str]:
    """Start the jobs planned before the next decision (all of them for commit-all policies,
    and relaxed jobs); returns their ids."""
    committed = set()
    for job in w.jobs:
        slot = decision.starts[job.id]
        if commit_all or slot < cadence or job.id in decision.relaxed:
            ledger.commit(job, w.start_h + slot)
            committed.add(job.id)
    return committed


def _check_window(ctx: _Context, w: _Window, ci: np.ndarray, decision: _Decision,
                  policy: str) -> None:
    problem = _problem(ctx, w, ci, relaxed=frozenset(decision.relaxed))
    index = {name: i for i, name in enumerate(problem.job_ids)}
    plan = Plan({index[job.id]: Placement.contiguous(0, decision.starts[job.id],
                                                     job.duration_slots) for job in w.jobs})
    check = check_plan(problem, plan)
    if not check.ok:
        raise BacktestError(f"{policy} window {w.index} at {ctx.time(w.start_h)}: "
                            + "; ".join(check.violations[:5]))


def _run_now(ctx: _Context) -> _PolicyRun:
    """FIFO by arrival on one problem spanning the replay (event-driven run-now)."""
    began = time.perf_counter()
    problem = _global_problem(ctx, {})
    plan = fifo_baseline(problem)
    if plan.unscheduled:
        raise BacktestError("run-now: jobs fit nowhere within the replay's horizon")
    starts = {problem.job_ids[j]: p.start_slot for j, p in plan.placements.items()}
    wall = time.perf_counter() - began
    window = {"policy": REFERENCE_POLICY, "window": 0, "decision": ctx.origin,
              "jobs": len(ctx.jobs), "committed": len(ctx.jobs), "wall_s": wall,
              "status": "FIFO"}
    return _PolicyRun(starts, [window], 0)


# --- Evaluation with the actual series ----------------------------------------------------


def _global_problem(ctx: _Context, starts: dict[str, int]) -> Problem:
    """All jobs over the whole replay with the actual series; deadlines of jobs that
    ``starts`` finishes late are relaxed to the horizon's end (they are counted as late)."""
    w = _Window(-1, 0, ctx.total_h, ctx.jobs, np.full(ctx.total_h, ctx.capacity))
    late = frozenset(j.id for j in ctx.jobs if j.id in starts
                     and starts[j.id] + j.duration_slots > j.deadline_h)
    return _problem(ctx, w, ctx.actual, relaxed=late)


@dataclass
class _Evaluation:
    check: CheckResult
    hourly_kg: np.ndarray
    late: int


def _evaluate(ctx: _Context, starts: dict[str, int], policy: str) -> _Evaluation:
    problem = _global_problem(ctx, starts)
    by_id = {j.id: j for j in ctx.jobs}
    plan = Plan({j: Placement.contiguous(0, starts[name], by_id[name].duration_slots)
                 for j, name in enumerate(problem.job_ids)})
    check = check_plan(problem, plan)
    if not check.ok:
        raise BacktestError(f"{policy}: the final schedule fails the checker: "
                            + "; ".join(check.violations[:5]))
    figs = figures(problem, plan)
    hourly = figs.grid_kw[0] * problem.slot_hours * problem.ci_g_per_kwh[0] / 1000.0
    late = sum(starts[j.id] + j.duration_slots > j.deadline_h for j in ctx.jobs)
    return _Evaluation(check, hourly, late)


# --- The backtest -----------------------------------------------------------------------------


def run_backtest(region: str, start: date | None = None, days: int = 7, *,
                 slack_h: float = 12.0, time_limit_s: float = 5.0, seed: int = 0,
                 data_dir: Path | str | None = None, pf_time_limit_s: float | None = None,
                 decision_hours: int = 1, max_shift_h: float = 8.0, utilisation: float = 0.9,
                 max_jobs: int | None = None, capacity_gpus: int | None = None,
                 trace_start: date | None = None, forecast_model: str = "average-ci",
                 vintages: str = "evolving", blend: bool = True, blend_others: bool = False,
                 perfect_leads_h: tuple[int, int] | None = None,
                 policies: tuple[str, ...] = POLICIES,
                 on_window: Callable[[str], None] | None = None) -> BacktestResult:
    """Replay ``days`` of the trace from ``start`` (default: :func:`default_start`) in
    ``region`` and compare ``policies`` (see the module docstring). ``on_window(policy)`` is
    called after every decision window (progress)."""
    region = canonical_region(region)
    start = _to_year(start, SERIES_YEAR[region]) if start else default_start(region)
    cfg = BacktestConfig(region, start, days, slack_h, time_limit_s, pf_time_limit_s, seed,
                         decision_hours, max_shift_h, utilisation, trace_start=trace_start,
                         max_jobs=max_jobs, capacity_gpus=capacity_gpus,
                         forecast_model=forecast_model, vintages=vintages, blend=blend,
                         blend_others=blend_others, perfect_leads_h=perfect_leads_h)
    _validate(cfg, policies)
    ctx, week = _context(cfg, Path(data_dir) if data_dir else shared_data_dir())
    runs = {p: _run_now(ctx) if p == REFERENCE_POLICY else _run_windowed(ctx, p, on_window)
            for p in policies}
    evals = {p: _evaluate(ctx, run.starts, p) for p, run in runs.items()}
    return BacktestResult(
        config=cfg, trace_start=week, capacity_gpus=ctx.capacity, jobs=ctx.jobs,
        table=_table(ctx, runs, evals), hourly_kg=_hourly(ctx, evals),
        starts=_starts(ctx, runs), windows=pd.DataFrame([w for r in runs.values()
                                                         for w in r.windows]),
        checks_passed=sum(r.checks for r in runs.values()) + len(evals))


def _validate(cfg: BacktestConfig, policies: tuple[str, ...]) -> None:
    unknown = [p for p in policies if p not in POLICIES]
    if unknown or REFERENCE_POLICY not in policies:
        raise ValueError(f"policies must include {REFERENCE_POLICY!r} and come from "
                         f"{POLICIES}; got {policies}")
    if cfg.days < 1 or cfg.decision_hours < 1 or cfg.slack_h < 0 or cfg.time_limit_s <= 0:
        raise ValueError("days and decision_hours must be >= 1, slack_h >= 0, "
                         "time_limit_s > 0")
    leads = cfg.perfect_leads_h
    if leads is not None and not 0 <= leads[0] < leads[1]:
        raise ValueError(f"perfect_leads_h must be (first, end) with 0 <= first < end; got "
                         f"{leads}")
    if cfg.vintages not in VINTAGES:
        raise ValueError(f"vintages must be one of {', '.join(VINTAGES)}; got {cfg.vintages!r}")
    if cfg.forecast_model not in FORECAST_MODELS or cfg.utilisation <= 0:
        raise ValueError(f"forecast_model must be one of {', '.join(FORECAST_MODELS)} and "
                         f"utilisation > 0; got {cfg.forecast_model!r}, {cfg.utilisation}")


def _table(ctx: _Context, runs: dict[str, _PolicyRun],
           evals: dict[str, _Evaluation]) -> pd.DataFrame:
    reference = evals[REFERENCE_POLICY].check.emissions_kg
    pf = evals.get("perfect-foresight")
    pf_savings = reference - pf.check.emissions_kg if pf else math.nan
    rows = []
    for policy, ev in evals.items():
        walls = [w["wall_s"] for w in runs[policy].windows]
        savings = reference - ev.check.emissions_kg
        rows.append({
            "region": ctx.cfg.region, "policy": policy, "emissions_kg": ev.check.emissions_kg,
            "energy_kwh": ev.check.energy_kwh, "savings_kg": savings,
            "savings_pct": 100.0 * savings / reference if reference else math.nan,
            "share_of_pf_pct": (100.0 * savings / pf_savings if pf_savings > 0 else math.nan),
            "late_jobs": ev.late, "mean_wait_h": ev.check.wait_hours / len(ctx.jobs),
            "windows": len(walls), "wall_s_per_window_mean": float(np.mean(walls)),
            "wall_s_per_window_max": float(np.max(walls)),
        })
    return pd.DataFrame(rows)


def _hourly(ctx: _Context, evals: dict[str, _Evaluation]) -> pd.DataFrame:
    index = pd.date_range(ctx.origin, periods=ctx.total_h, freq="1h", name="hour")
    return pd.DataFrame({p: ev.hourly_kg for p, ev in evals.items()}, index=index)


def _starts(ctx: _Context, runs: dict[str, _PolicyRun]) -> pd.DataFrame:
    frame = pd.DataFrame({p: {j.id: ctx.time(r.starts[j.id]) for j in ctx.jobs}
                          for p, r in runs.items()})
    frame.index.name = "job"
    return frame


# --- Outputs --------------------------------------------------------------------------------

_FORMATS = {"emissions_kg": "{:,.1f}", "energy_kwh": "{:,.0f}", "savings_kg": "{:,.1f}",
            "savings_pct": "{:.2f}", "share_of_pf_pct": "{:.1f}", "late_jobs": "{:d}",
            "mean_wait_h": "{:.2f}", "windows": "{:d}", "wall_s_per_window_mean": "{:.3f}",
            "wall_s_per_window_max": "{:.3f}"}


def _formatted(result: BacktestResult) -> pd.DataFrame:
    """The table as strings (region column dropped; NaN shown as '-')."""
    frame = result.table.drop(columns=["region"])
    for name, fmt in _FORMATS.items():
        frame[name] = ["-" if pd.isna(v) else fmt.format(v) for v in frame[name]]
    return frame


def format_table(result: BacktestResult) -> str:
    """The comparison table as aligned text (for terminals)."""
    return _formatted(result).to_string(index=False)


def describe(result: BacktestResult) -> str:
    """One line of what was replayed."""
    cfg = result.config
    return (f"{cfg.region}: {cfg.days} day(s) from {cfg.start} (trace {result.trace_start}), "
            f"{len(result.jobs)} jobs, capacity {result.capacity_gpus} GPUs, slack "
            f"{cfg.slack_h:g} h, decisions every {cfg.decision_hours} h, forecast error "
            f"{cfg.forecast_model} ({cfg.vintages} vintages), {_forecasts_used(cfg)}, time "
            f"limit {cfg.time_limit_s:g} s per window (perfect foresight {cfg.pf_limit_s:g} s), "
            f"seed {cfg.seed}")


def _forecasts_used(cfg: BacktestConfig) -> str:
    if not cfg.blend:
        return "every policy on the raw forecast"
    blended = f"blended with actuals published {cfg.actuals_delay_h} h late"
    if cfg.blend_others:
        return f"every forecast-driven policy on the forecast {blended}"
    return f"gridshift on the forecast {blended}, the per-job policies on the raw forecast"


def _markdown(result: BacktestResult) -> str:
    frame = _formatted(result)
    lines = [f"# Backtest {result.config.region}", "", describe(result) + ".", "",
             "Emissions with the actual intensity; savings against run-now; share = savings / "
             "perfect-foresight savings. Every schedule passed the independent checker "
             f"({result.checks_passed} checks).", "",
             "| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _chart(result: BacktestResult, path: Path) -> None:
    """Cumulative actual emissions per policy (left) and savings vs run-now (right)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, width_ratios=[2, 1])
    hourly = result.hourly_kg
    last = int(np.flatnonzero(hourly.to_numpy().sum(axis=1) > 0).max()) + 1
    cumulative = hourly.iloc[:last].cumsum() / 1000.0
    for policy in cumulative.columns:
        left.plot(cumulative.index, cumulative[policy], label=policy)
    left.set_ylabel("cumulative emissions (t CO2e)")
    left.set_title(f"{result.config.region}: emissions over the replay (actual intensity)")
    left.legend(loc="upper left", fontsize="small")
    left.tick_params(axis="x", labelrotation=30)
    table = result.table[result.table["policy"] != REFERENCE_POLICY]
    colours = {"gridshift": "tab:blue", "perfect-foresight": "tab:gray"}
    bars = right.bar(table["policy"], table["savings_pct"],
                     color=[colours.get(p, "tab:green") for p in table["policy"]])
    right.bar_label(bars, labels=["" if pd.isna(s) else f"{s:.0f}% of PF"
                                  for s in table["share_of_pf_pct"]], fontsize="small")
    right.axhline(0.0, color="black", linewidth=0.8)
    right.set_ylabel("savings vs run-now (%)")
    right.set_title("savings")
    right.tick_params(axis="x", labelrotation=30)
    fig.savefig(path, dpi=110)


def write_outputs(result: BacktestResult, out_dir: Path | str) -> list[Path]:
    """Write ``backtest-<region>-<start>.csv`` (the table), ``.md`` and ``.png`` (chart)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"backtest-{result.config.region}-{result.config.start.isoformat()}"
    csv, md, png = (stem.with_name(stem.name + s) for s in (".csv", ".md", ".png"))
    result.table.to_csv(csv, index=False)
    md.write_text(_markdown(result), encoding="utf-8")
    _chart(result, png)
    return [csv, md, png]


# --- CLI ------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `gridshift backtest` options."""
    parser.add_argument("--region", action="append", metavar="REGION",
                        help="region (repeatable; default US-CAL-CISO and DE): "
                             f"{', '.join(SERIES_YEAR)} or the short name (CISO, ERCO, ...)")
    parser.add_argument("--start", type=date.fromisoformat, metavar="YYYY-MM-DD",
                        help="first day, moved by whole weeks into each series' year "
                             "(default 2022-10-24 for EIA regions, 2020-10-26 for DE)")
    parser.add_argument("--days", type=int, default=7, help="days of the trace (default 7)")
    parser.add_argument("--slack-hours", type=float, default=12.0,
                        help="deadline = arrival + duration + slack (default 12)")
    parser.add_argument("--time-limit", type=float, default=5.0, metavar="S",
                        help="solver time limit per window, seconds (default 5; perfect "
                             "foresight gets twice as long)")
    parser.add_argument("--seed", type=int, default=0, help="forecast-error and solver seed")
    parser.add_argument("--decision-hours", type=int, default=1,
                        help="hours between planning decisions (default 1)")
    parser.add_argument("--forecast-model", choices=tuple(FORECAST_MODELS),
                        default="average-ci", help="decision-time forecast error model")
    parser.add_argument("--vintages", choices=VINTAGES, default="evolving",
                        help="forecasts of successive decisions: one evolving history "
                             "(default) or independent errors per decision")
    parser.add_argument("--utilisation", type=float, default=0.9,
                        help="run-now peak demand / capacity (default 0.9)")
    parser.add_argument("--no-blend", dest="blend", action="store_false",
                        help="gridshift plans on the raw decision-time forecast instead of "
                             "blending it with the seasonal model of the actuals published "
                             "by then (forecasting.blend, the product's default)")
    parser.add_argument("--blend-others", action="store_true",
                        help="give the lowest-window and Let's-Wait-Awhile policies the same "
                             "blended forecast (to separate forecasting from joint planning)")
    parser.add_argument("-o", "--output-dir", default="backtest",
                        help="where the tables (CSV, Markdown) and charts go (default ./backtest)")


def main(args: argparse.Namespace) -> int:
    """Run the backtest per region, print the tables and write the outputs. Exit codes: 0 done,
    2 invalid options or data missing, 1 a schedule failed the checker."""
    data_dir = shared_data_dir()
    if not (data_dir / "philly-adaptdl" / "philly.csv").exists():
        print(f"gridshift backtest: the trace and carbon series are not under {data_dir} "
              "(set GRIDSHIFT_SHARED_DATA)", file=sys.stderr)
        return 2
    try:
        for region in [canonical_region(r) for r in (args.region or ["US-CAL-CISO", "DE"])]:
            _main_region(args, region, data_dir)
    except (ValueError, OSError) as exc:
        print(f"gridshift backtest: {exc}", file=sys.stderr)
        return 2
    except BacktestError as exc:
        print(f"gridshift backtest: {exc}", file=sys.stderr)
        return 1
    return 0


def _main_region(args: argparse.Namespace, region: str, data_dir: Path) -> None:
    options = {"decision_hours": getattr(args, "decision_hours", 1),
               "forecast_model": getattr(args, "forecast_model", "average-ci"),
               "utilisation": getattr(args, "utilisation", 0.9),
               "vintages": getattr(args, "vintages", "evolving"),
               "blend": getattr(args, "blend", True),
               "blend_others": getattr(args, "blend_others", False)}
    estimate = (len(POLICIES) - 1) * (args.days * 24 + 48) // options["decision_hours"]
    with _progress_bar(region, estimate) as tick:
        result = run_backtest(region, args.start, args.days, slack_h=args.slack_hours,
                              time_limit_s=args.time_limit, seed=args.seed,
                              data_dir=data_dir, on_window=tick, **options)
    print(describe(result))
    print(format_table(result))
    for path in write_outputs(result, args.output_dir):
        print(f"wrote {path}")
    print()


@contextlib.contextmanager
def _progress_bar(region: str, total: int) -> Iterator[Callable[[str], None]]:
    """A tqdm bar over decision windows when stderr is a terminal; silent otherwise."""
    if not sys.stderr.isatty():
        yield lambda policy: None
        return
    from tqdm import tqdm

    bar = tqdm(total=total, desc=f"backtest {region}", unit="window", file=sys.stderr,
               leave=False)

    def tick(policy: str) -> None:
        bar.set_postfix_str(policy, refresh=False)
        bar.update(1)

    try:
        yield tick
    finally:
        bar.close()
