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


def window_request(ctx: Context, w: Window, ci: np.ndarray | DecisionForecast,
                   time_limit_s: float, relaxed: frozenset[str] = frozenset(),
                   due_h: dict[str, int] | None = None) -> dict:
    """The OptimizeRequest of a decision window: its jobs, the capacity left by commitments
    and the series ``ci`` from the decision time (with its band when it has one); jobs in
    ``relaxed`` are due by the horizon's end (see :func:`_job_dict`)."""
    site = {"id": ctx.cfg.site_id, "region": ctx.cfg.region, "gpu_capacity": ctx.capacity,
            "pue": ctx.cfg.pue,
            "capacity_windows": _capacity_windows(ctx, w.free_gpus, w)}
    if ctx.cfg.power_cap_kw is not None:
        site["power_cap_kw"] = ctx.cfg.power_cap_kw
    due_h = due_h or {}
    return {
        "horizon": {"start": _ts(ctx.time(w.start_h)), "slot_minutes": SLOT_MINUTES,
                    "slots": w.slots},
        "sites": [site],
        "jobs": [_job_dict(ctx, w, j, j.id in relaxed, due_h.get(j.id)) for j in w.jobs],
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

    @classmethod
    def empty(cls, hours: int) -> Ledger:
        return cls(np.zeros(hours, dtype=np.int64), np.zeros(hours))

    def commit(self, job: TraceJob, start_h: int, pue: float) -> None:
        self.used[start_h:start_h + job.duration_slots] += job.gpus
        self.used_kw[start_h:start_h + job.duration_slots] += job.power_kw * pue
        self.starts[job.id] = start_h


def free_gpus(ctx: Context, ledger: Ledger, start_h: int, slots: int,
              pending: list[TraceJob]) -> np.ndarray:
    """GPUs the pending jobs may use per hour from ``start_h``: those commitments leave, and
    under a power cap no more than the facility power left holds at the pending jobs' highest
    kW per GPU (exact when every job draws the same power per GPU, as the Philly jobs do;
    conservative otherwise)."""
    gpus = ctx.capacity - ledger.used[start_h:start_h + slots]
    cap = ctx.cfg.power_cap_kw
    if cap is None or not pending:
        return gpus.astype(np.int64)
    per_gpu = max(j.power_kw / max(j.gpus, 1) for j in pending) * ctx.cfg.pue
    if per_gpu <= 0:
        return gpus.astype(np.int64)
    left_kw = np.maximum(cap - ledger.used_kw[start_h:start_h + slots], 0.0)
    return np.minimum(gpus, np.floor(left_kw / per_gpu + 1e-9)).astype(np.int64)


def fits(free: np.ndarray, start: int, slots: int, gpus: int) -> bool:
    """Whether ``gpus`` are free in ``slots`` slots from ``start`` (within the window)."""
    return start + slots <= len(free) and bool((free[start:start + slots] >= gpus).all())


def earliest_fit(free: np.ndarray, first: int, slots: int, gpus: int, job_id: str) -> int:
    """The first start at or after ``first`` where the job fits; BacktestError if none."""
    for start in range(first, len(free) - slots + 1):
        if fits(free, start, slots, gpus):
            return start
    raise BacktestError(f"{job_id} fits nowhere in its window's horizon (raise margin_h; under "
                        "a power cap, jobs of unequal kW per GPU are held to the highest)")


def window_problem(ctx: Context, w: Window, ci: np.ndarray | DecisionForecast,
                   limit_s: float = 1.0, relaxed: frozenset[str] = frozenset(),
                   due_h: dict[str, int] | None = None) -> Problem:
    """The prepared problem of a window's request with the series ``ci``. No forecast
    sources: the request carries the only series the policy may see."""
    return build_problem(parse_request(window_request(ctx, w, ci, limit_s, relaxed, due_h)))
