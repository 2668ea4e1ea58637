"""The replay context (actual series, jobs, capacity, decision-time forecasts), decision
windows and their OptimizeRequests, and the capacity ledger of committed starts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from gridshift.adapters.datasets import load_trace
from gridshift.app.backtest.config import (
    FORECAST_MODELS,
    SITE_ID,
    SLOT_MINUTES,
    BacktestConfig,
    BacktestError,
    TraceJob,
    replay_origin,
)
from gridshift.app.backtest.data import (
    carbon_series,
    size_capacity,
    trace_jobs,
    trace_week,
)
from gridshift.forecasting.blend import HISTORY_DAYS, blend_with_actuals
from gridshift.forecasting.series import Forecast
from gridshift.forecasting.uncertainty import evolving_log_errors, scenarios
from gridshift.optimizer.parsing import parse_request
from gridshift.optimizer.problem import Problem, build_problem


@dataclass
class Context:
    """One replay's data: the actual series from its origin (and the actuals before it),
    the jobs, the capacity, and the decision-time forecasts (drawn once, cached)."""

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


def build_context(cfg: BacktestConfig, data_dir: Path) -> tuple[Context, date]:
    """The replay of ``cfg`` on the data under ``data_dir``, and the trace week it replays."""
    trace = load_trace(data_dir)
    week = cfg.trace_start or trace_week(cfg.start, cfg.days, trace)
    jobs = trace_jobs(cfg, trace, week)
    if not jobs:
        raise BacktestError(f"no trace jobs of 30 min .. 24 h in the week from {week}")
    origin = replay_origin(cfg)
    total_h = (cfg.days * 24 + 24 + math.ceil(cfg.slack_h) + cfg.decision_hours
               + 2 * cfg.margin_h)
    series = carbon_series(cfg.region, data_dir)
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
    return Context(cfg, origin, total_h, window.to_numpy(dtype=float), jobs, capacity,
                    past), week


# --- Window requests --------------------------------------------------------------------------


@dataclass
class Window:
    """Decision ``index`` at hour ``start_h``: its pending jobs and the GPUs left free by
    earlier commitments over its ``slots`` hours."""

    index: int
    start_h: int
    slots: int
    jobs: list[TraceJob]
    free_gpus: np.ndarray        # [slots] capacity left by earlier commitments


def _ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _capacity_windows(ctx: Context, w: Window) -> list[dict]:
    """Runs of equal lowered capacity as capacity windows (docs/architecture.md)."""
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


def _job_dict(ctx: Context, w: Window, job: TraceJob, relaxed: bool) -> dict:
    """A job of a window request. A job that can no longer meet its deadline is due as soon
    as it could finish (run it now); a ``relaxed`` one (checks only) by the horizon's end."""
    first = max(job.first_h, w.start_h)
    due_h = (w.start_h + w.slots if relaxed
             else max(job.deadline_h, first + job.duration_slots))
    return {"id": job.id, "gpus": job.gpus, "power_kw": job.power_kw,
            "duration_minutes": job.duration_minutes, "earliest_start": _ts(ctx.time(first)),
            "deadline": _ts(ctx.time(due_h)), "home_site": SITE_ID}


def _window_request(ctx: Context, w: Window, ci: np.ndarray, time_limit_s: float,
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
class Ledger:
    """A policy's committed starts (absolute hours) and the GPUs they hold per hour."""

    used: np.ndarray
    starts: dict[str, int] = field(default_factory=dict)

    def commit(self, job: TraceJob, start_h: int) -> None:
        self.used[start_h:start_h + job.duration_slots] += job.gpus
        self.starts[job.id] = start_h


def fits(free: np.ndarray, start: int, slots: int, gpus: int) -> bool:
    """Whether ``gpus`` are free in ``slots`` slots from ``start`` (within the window)."""
    return start + slots <= len(free) and bool((free[start:start + slots] >= gpus).all())


def earliest_fit(free: np.ndarray, first: int, slots: int, gpus: int, job_id: str) -> int:
    """The first start at or after ``first`` where the job fits; BacktestError if none."""
    for start in range(first, len(free) - slots + 1):
        if fits(free, start, slots, gpus):
            return start
    raise BacktestError(f"{job_id} fits nowhere in its window's horizon; raise margin_h")


def window_problem(ctx: Context, w: Window, ci: np.ndarray, limit_s: float = 1.0,
                   relaxed: frozenset[str] = frozenset()) -> Problem:
    """The prepared problem of a window's request with the series ``ci``. No forecast
    sources: the request carries the only series the policy may see."""
    return build_problem(parse_request(_window_request(ctx, w, ci, limit_s, relaxed)))
