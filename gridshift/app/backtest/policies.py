"""The policies compared by the backtest, each deciding one window: FIFO, the per-job
lowest window (repaired), Let's-Wait-Awhile, and the solver (gridshift, perfect foresight)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from gridshift.app.backtest.config import SLOT_MINUTES, BacktestError, TraceJob
from gridshift.app.backtest.context import Context, Window, earliest_fit, fits, window_problem
from gridshift.forecasting.best_window import find_best_window
from gridshift.forecasting.series import Forecast
from gridshift.optimizer.baseline import fifo_baseline
from gridshift.optimizer.solve import solve


@dataclass
class Decision:
    """A policy's starts for one window. ``relaxed``: jobs placed outside their deadline
    window (late, or pushed out by a repair); they are committed at once and their deadline is
    relaxed in the window's check (lateness is counted against the real deadline)."""

    starts: dict[str, int]              # job id -> start slot in the window
    relaxed: set[str] = field(default_factory=set)
    status: str = ""


def _decide_fifo(ctx: Context, w: Window, ci: np.ndarray) -> Decision:
    problem = window_problem(ctx, w, ci)
    plan = fifo_baseline(problem)
    if plan.unscheduled:
        raise BacktestError(f"FIFO left jobs out at window {w.index}; raise margin_h")
    return Decision({problem.job_ids[j]: p.start_slot for j, p in plan.placements.items()},
                     {problem.job_ids[j] for j, p in plan.placements.items()
                      if p.end_slot > problem.last_slot[j]}, status="FIFO")


def _ranked_starts(ctx: Context, w: Window, ci: np.ndarray, job: TraceJob,
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


def _repair(w: Window, ranked: dict[str, list[int]]) -> Decision:
    """Jobs in order of their preferred start; each takes its best-ranked start that fits,
    else the earliest start that fits after its window (late)."""
    free = w.free_gpus.copy()
    by_id = {j.id: j for j in w.jobs}
    decision = Decision({}, status="repaired")
    for job_id in sorted(ranked, key=lambda i: (ranked[i][0], by_id[i].arrival_h, i)):
        job = by_id[job_id]
        start = next((s for s in ranked[job_id]
                      if fits(free, s, job.duration_slots, job.gpus)), None)
        if start is None:
            start = earliest_fit(free, max(ranked[job_id]) + 1, job.duration_slots,
                                  job.gpus, job.id)
            decision.relaxed.add(job.id)
        free[start:start + job.duration_slots] -= job.gpus
        decision.starts[job.id] = start
    return decision


def _latest_start(w: Window, job: TraceJob) -> int:
    first = max(job.first_h, w.start_h)
    return max(first, job.deadline_h - job.duration_slots) - w.start_h


def _decide_lowest(ctx: Context, w: Window, ci: np.ndarray) -> Decision:
    return _repair(w, {j.id: _ranked_starts(ctx, w, ci, j, _latest_start(w, j))
                       for j in w.jobs})


def _decide_lwa(ctx: Context, w: Window, ci: np.ndarray) -> Decision:
    def latest(j: TraceJob) -> int:
        shift_end = math.floor(j.arrival_h + ctx.cfg.max_shift_h) - w.start_h
        return min(shift_end, _latest_start(w, j))

    return _repair(w, {j.id: _ranked_starts(ctx, w, ci, j, latest(j)) for j in w.jobs})


def _decide_solver(ctx: Context, w: Window, ci: np.ndarray, limit_s: float) -> Decision:
    problem = window_problem(ctx, w, ci, limit_s)
    result = solve(problem, time_limit_s=limit_s)
    decision = Decision({}, status=result.status)
    free = w.free_gpus.copy()
    for j, p in result.plan.placements.items():
        decision.starts[problem.job_ids[j]] = p.start_slot
        free[list(p.slots)] -= problem.gpus[j]
    by_id = {j.id: j for j in w.jobs}
    for j in range(problem.n_jobs):
        job = by_id[problem.job_ids[j]]
        if job.id not in decision.starts:
            start = earliest_fit(free, int(problem.first_slot[j]), job.duration_slots,
                                  job.gpus, job.id)
            free[start:start + job.duration_slots] -= job.gpus
            decision.starts[job.id] = start
            decision.relaxed.add(job.id)
    return decision


def policy_spec(ctx: Context, policy: str) -> tuple[
        Callable[[Context, Window, np.ndarray], Decision], Callable[[Window], np.ndarray], bool]:
    """How ``policy`` decides: (decide(ctx, window, ci) -> Decision, the series it sees at a
    window, whether it commits every job when planned)."""
    cfg = ctx.cfg

    def forecast(w: Window) -> np.ndarray:
        return ctx.forecast(w.index, w.start_h)

    def product_forecast(w: Window) -> np.ndarray:
        return ctx.product_forecast(w.index, w.start_h)

    advice_forecast = product_forecast if cfg.blend_others else forecast

    def actual(w: Window) -> np.ndarray:
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
