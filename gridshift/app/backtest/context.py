"""The replay context (actual series, jobs, site, decision-time forecasts), decision windows
and their OptimizeRequests, and the capacity ledger of committed starts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from gridshift.app.backtest.config import (
    SLOT_MINUTES,
    BacktestConfig,
    BacktestError,
    TraceJob,
    replay_origin,
)
from gridshift.app.backtest.data import ReplayInputs, size_capacity, trace_jobs, trace_week
from gridshift.app.backtest.forecasts import DecisionForecast, DecisionForecasts
from gridshift.forecasting.blend import HISTORY_DAYS
from gridshift.optimizer.parsing import parse_request
from gridshift.optimizer.problem import Problem, build_problem


@dataclass
class Context:
    """One replay's data: the actual series from its origin (and the actuals before it),
    the jobs, the site's capacity and power cap, and the decision-time forecasts."""

    cfg: BacktestConfig
    origin: datetime
    total_h: int                  # hours from origin that the replay may use
    actual: np.ndarray            # [total_h] actual intensity
    jobs: list[TraceJob]
    capacity: int
    past: np.ndarray              # [HISTORY_DAYS * 24] actual intensity before origin
    forecasts: DecisionForecasts = field(init=False)
    vintages: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        self.forecasts = DecisionForecasts(self.cfg, self.origin, self.actual, self.past,
                                           self.vintages)

    def time(self, hour: int) -> datetime:
        return self.origin + timedelta(hours=hour)

    def forecast(self, k: int, start_h: int) -> np.ndarray:
        """The raw forecast issued at decision ``k`` (hour ``start_h``) for [start_h, total_h)."""
        return self.forecasts.raw(k, start_h)

    def decision_forecast(self, k: int, start_h: int) -> DecisionForecast:
        """What every forecast-driven policy plans on at decision ``k``."""
        return self.forecasts.decision(k, start_h)

    def gridshift_forecast(self, k: int, start_h: int) -> DecisionForecast:
        """The decision forecast, except with ``perfect_leads_h`` = (first, end): the hours at
        leads ``first`` to ``end`` (exclusive) are the actual intensity, exact (the value of
        perfect information at those leads; a diagnostic for gridshift alone)."""
        seen = self.decision_forecast(k, start_h)
        if self.cfg.perfect_leads_h is None:
            return seen
        first, end = self.cfg.perfect_leads_h
        parts = [a.copy() for a in (seen.values, seen.p10, seen.p90)]
        for part in parts:
            part[first:end] = self.actual[start_h + first:start_h + end]
        return DecisionForecast(*parts)

    def product_forecast(self, k: int, start_h: int) -> np.ndarray:
        """gridshift's point forecast at decision ``k`` (see :meth:`gridshift_forecast`)."""
        return self.gridshift_forecast(k, start_h).values


def replay_hours(cfg: BacktestConfig, jobs: list[TraceJob]) -> int:
    """Hours from the origin a replay may use: the days, the longest job and its slack, the
    decision cadence and two margins."""
    longest = max((j.duration_slots for j in jobs), default=24)
    slack = max((j.deadline_h - j.first_h - j.duration_slots for j in jobs), default=0)
    return (cfg.days * 24 + max(longest, 24) + max(math.ceil(cfg.slack_h), slack)
            + cfg.decision_hours + 2 * cfg.margin_h)


def build_context(cfg: BacktestConfig, inputs: ReplayInputs) -> tuple[Context, date]:
    """The replay of ``cfg`` on ``inputs``, and the trace week it replays."""
    week = cfg.trace_start or trace_week(cfg.start, cfg.days, inputs.trace)
    jobs = trace_jobs(cfg, inputs, week)
    if not jobs:
        raise BacktestError(f"no trace jobs in the week from {week}"
                            + (" of 30 min .. 24 h" if inputs.filter_durations else ""))
    origin = replay_origin(cfg)
    total_h = replay_hours(cfg, jobs)
    series = inputs.series
    window = series[(series.index >= origin) & (series.index < origin
                                                + timedelta(hours=total_h))]
    if len(window) < total_h:
        raise BacktestError(f"the {cfg.region} series does not cover {origin:%Y-%m-%d} + "
                            f"{total_h} h (it spans {series.index[0]} .. {series.index[-1]})")
    # The actuals before the replay (NaN where the series has none) feed the blend.
    before = pd.date_range(origin - timedelta(days=HISTORY_DAYS), origin, freq="1h",
                           inclusive="left")
    past = series.reindex(before).to_numpy(dtype=float)
    capacity = cfg.capacity_gpus or size_capacity(jobs, cfg.utilisation)
    widest = max(j.gpus for j in jobs)
    if capacity < widest:
        raise BacktestError(f"the site's {capacity} GPUs cannot hold a job of {widest} GPUs")
    return Context(cfg, origin, total_h, window.to_numpy(dtype=float), jobs, capacity, past,
                   vintages=inputs.vintages), week


# --- Window requests --------------------------------------------------------------------------


@dataclass
class Window:
    """Decision ``index`` at hour ``start_h``: its pending jobs and the GPUs left free by
    earlier commitments over its ``slots`` hours."""

    index: int
    start_h: int
    slots: int
    jobs: list[TraceJob]
    free_gpus: np.ndarray        # [slots] GPUs the window's jobs may use
    #: Under a power cap: the facility kW the window's jobs may use [slots], and the
    #: commitments overlapping the window as (job, absolute start hour), which its requests
    #: carry as committed jobs (the cap then holds exactly, whatever each job's kW per GPU).
    free_kw: np.ndarray | None = None
    committed: tuple[tuple[TraceJob, int], ...] = ()
    #: The policy's commitments so far (what the no-regret budget settles).
    ledger: Ledger | None = None


def _ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _capacity_windows(ctx: Context, free: np.ndarray, w: Window) -> list[dict]:
    """Runs of equal lowered capacity as capacity windows (docs/architecture.md)."""
    out: list[dict] = []
    t = 0
    while t < w.slots:
        value = int(free[t])
        end = t + 1
        while end < w.slots and int(free[end]) == value:
            end += 1
        if value < ctx.capacity:
            out.append({"start": _ts(ctx.time(w.start_h + t)),
                        "end": _ts(ctx.time(w.start_h + end)), "gpu_capacity": max(value, 0)})
        t = end
    return out


def _job_dict(ctx: Context, w: Window, job: TraceJob, relaxed: bool,
              due_h: int | None = None) -> dict:
    """A job of a window request. A job that can no longer meet its deadline is due as soon
    as it could finish (run it now); a ``relaxed`` one (checks only) by the horizon's end;
    ``due_h`` overrides the deadline hour."""
    first = max(job.first_h, w.start_h)
    if relaxed:
        due = w.start_h + w.slots
    else:
        due = max(job.deadline_h if due_h is None else due_h, first + job.duration_slots)
    return {"id": job.id, "gpus": job.gpus, "power_kw": job.power_kw,
            "duration_minutes": job.duration_minutes, "earliest_start": _ts(ctx.time(first)),
            "deadline": _ts(ctx.time(due)), "home_site": ctx.cfg.site_id}


def _series_dict(ctx: Context, w: Window, ci: np.ndarray | DecisionForecast) -> dict:
    start = _ts(ctx.time(w.start_h))
    out = {"region": ctx.cfg.region, "start": start, "slot_minutes": SLOT_MINUTES}
    if isinstance(ci, DecisionForecast):
        out["carbon_intensity"] = [float(v) for v in ci.values[:w.slots]]
        out["carbon_intensity_p10"] = [float(v) for v in ci.p10[:w.slots]]
        out["carbon_intensity_p90"] = [float(v) for v in ci.p90[:w.slots]]
    else:
        out["carbon_intensity"] = [float(v) for v in ci[:w.slots]]
    return out


#: Id prefix of the commitments a window's request carries as committed jobs.
COMMITTED_PREFIX = "committed:"


def is_window_job(job_id: str) -> bool:
    """Whether a window problem's job is one of the window's own (not a commitment)."""
    return not job_id.startswith(COMMITTED_PREFIX)


def _committed_dict(ctx: Context, w: Window, job: TraceJob, start_h: int) -> dict:
    """A commitment overlapping the window as a committed (running or started) job."""
    return {"id": COMMITTED_PREFIX + job.id, "gpus": job.gpus, "power_kw": job.power_kw,
            "duration_minutes": job.duration_slots * SLOT_MINUTES,
            "earliest_start": _ts(ctx.time(max(start_h, w.start_h))),
            "deadline": _ts(ctx.time(start_h + job.duration_slots)),
            "home_site": ctx.cfg.site_id, "committed_site": ctx.cfg.site_id,
            "committed_start": _ts(ctx.time(start_h))}


def window_request(ctx: Context, w: Window, ci: np.ndarray | DecisionForecast,
                   time_limit_s: float, relaxed: frozenset[str] = frozenset(),
                   due_h: dict[str, int] | None = None) -> dict:
    """The OptimizeRequest of a decision window: its jobs, the capacity left by commitments
    and the series ``ci`` from the decision time (with its band when it has one); jobs in
    ``relaxed`` are due by the horizon's end (see :func:`_job_dict`). Under a power cap the
    commitments come as committed jobs (ids with COMMITTED_PREFIX) instead of lowered GPU
    capacity, so that the cap holds for their kW too."""
    under_cap = w.free_kw is not None
    site = {"id": ctx.cfg.site_id, "region": ctx.cfg.region, "gpu_capacity": ctx.capacity,
            "pue": ctx.cfg.pue,
            "capacity_windows": [] if under_cap else _capacity_windows(ctx, w.free_gpus, w)}
    if ctx.cfg.power_cap_kw is not None:
        site["power_cap_kw"] = ctx.cfg.power_cap_kw
    due_h = due_h or {}
    committed = [_committed_dict(ctx, w, job, start_h) for job, start_h in w.committed]
    return {
        "horizon": {"start": _ts(ctx.time(w.start_h)), "slot_minutes": SLOT_MINUTES,
                    "slots": w.slots},
        "sites": [site],
        "jobs": [_job_dict(ctx, w, j, j.id in relaxed, due_h.get(j.id)) for j in w.jobs]
        + committed,
        "forecasts": [_series_dict(ctx, w, ci)],
        "options": {"time_limit_seconds": time_limit_s, "allow_partial": True,
                    "random_seed": ctx.cfg.seed, "workers": 1},
    }


# --- Capacity ledger --------------------------------------------------------------------------


@dataclass
class Ledger:
    """A policy's committed starts (absolute hours), and the GPUs and facility kW they hold
    per hour."""

    used: np.ndarray
    used_kw: np.ndarray
    starts: dict[str, int] = field(default_factory=dict)
    jobs: dict[str, TraceJob] = field(default_factory=dict)
    #: Job ids in the order they were committed (so a reader can take only the new ones).
    order: list[str] = field(default_factory=list)

    @classmethod
    def empty(cls, hours: int) -> Ledger:
        return cls(np.zeros(hours, dtype=np.int64), np.zeros(hours))

    def commit(self, job: TraceJob, start_h: int, pue: float) -> None:
        self.used[start_h:start_h + job.duration_slots] += job.gpus
        self.used_kw[start_h:start_h + job.duration_slots] += job.power_kw * pue
        if job.id not in self.starts:
            self.order.append(job.id)
        self.starts[job.id] = start_h
        self.jobs[job.id] = job

    def overlapping(self, start_h: int, end_h: int) -> tuple[tuple[TraceJob, int], ...]:
        """The commitments running at some hour of [start_h, end_h), as (job, start hour)."""
        return tuple((self.jobs[i], s) for i, s in self.starts.items()
                     if s < end_h and s + self.jobs[i].duration_slots > start_h)


def make_window(ctx: Context, index: int, start_h: int, slots: int, pending: list[TraceJob],
                ledger: Ledger) -> Window:
    """Decision ``index`` at ``start_h`` over ``slots`` hours: the GPUs the commitments
    leave, and under a power cap the facility kW they leave and the commitments themselves."""
    gpus = (ctx.capacity - ledger.used[start_h:start_h + slots]).astype(np.int64)
    cap = ctx.cfg.power_cap_kw
    if cap is None:
        return Window(index, start_h, slots, list(pending), gpus, ledger=ledger)
    left_kw = cap - ledger.used_kw[start_h:start_h + slots]
    return Window(index, start_h, slots, list(pending), gpus, left_kw,
                  ledger.overlapping(start_h, start_h + slots), ledger)


def fits(free: np.ndarray, start: int, slots: int, gpus: int,
         free_kw: np.ndarray | None = None, kw: float = 0.0) -> bool:
    """Whether ``gpus`` (and, under a power cap, ``kw`` of facility power) are free in
    ``slots`` slots from ``start`` (within the window)."""
    if start + slots > len(free) or not bool((free[start:start + slots] >= gpus).all()):
        return False
    return free_kw is None or bool((free_kw[start:start + slots] >= kw - 1e-9).all())


def earliest_fit(free: np.ndarray, first: int, slots: int, gpus: int, job_id: str,
                 free_kw: np.ndarray | None = None, kw: float = 0.0) -> int:
    """The first start at or after ``first`` where the job fits; BacktestError if none."""
    for start in range(first, len(free) - slots + 1):
        if fits(free, start, slots, gpus, free_kw, kw):
            return start
    raise BacktestError(f"{job_id} fits nowhere in its window's horizon (raise margin_h)")


def take(w_free: tuple[np.ndarray, np.ndarray | None], job: TraceJob, start: int,
         pue: float) -> None:
    """Take a job's GPUs (and facility kW) from the free arrays ``w_free`` at ``start``."""
    gpus, kw = w_free
    gpus[start:start + job.duration_slots] -= job.gpus
    if kw is not None:
        kw[start:start + job.duration_slots] -= job.power_kw * pue


def window_problem(ctx: Context, w: Window, ci: np.ndarray | DecisionForecast,
                   limit_s: float = 1.0, relaxed: frozenset[str] = frozenset(),
                   due_h: dict[str, int] | None = None) -> Problem:
    """The prepared problem of a window's request with the series ``ci``. No forecast
    sources: the request carries the only series the policy may see."""
    return build_problem(parse_request(window_request(ctx, w, ci, limit_s, relaxed, due_h)))
