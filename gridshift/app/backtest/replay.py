"""The rolling replay of every policy, the evaluation of their schedules with the actual
series, and :func:`run_backtest`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from gridshift.app.backtest.config import (
    FORECAST_MODELS,
    POLICIES,
    REFERENCE_POLICY,
    SERIES_YEAR,
    VINTAGES,
    BacktestConfig,
    BacktestError,
    BacktestResult,
    TraceJob,
)
from gridshift.app.backtest.context import Context, Ledger, Window, build_context, window_problem
from gridshift.app.backtest.data import canonical_region, default_start, to_year
from gridshift.app.backtest.policies import Decision, policy_spec
from gridshift.optimizer.accounting import figures
from gridshift.optimizer.baseline import fifo_baseline
from gridshift.optimizer.checker import CheckResult, check_plan
from gridshift.optimizer.plan import Placement, Plan
from gridshift.optimizer.problem import Problem


@dataclass
class _PolicyRun:
    starts: dict[str, int]              # job id -> absolute start hour
    windows: list[dict]
    checks: int


def _make_window(ctx: Context, k: int, start_h: int, pending: list[TraceJob],
                 ledger: Ledger) -> Window:
    end = max(j.deadline_h for j in pending)
    end = max(end, max(max(j.first_h, start_h) + j.duration_slots for j in pending))
    slots = min(end - start_h + ctx.cfg.margin_h, ctx.total_h - start_h)
    if slots <= 0:
        raise BacktestError(f"decision {k} at hour {start_h} is past the replay's horizon")
    free = ctx.capacity - ledger.used[start_h:start_h + slots]
    return Window(k, start_h, slots, list(pending), free.astype(np.int64))


def _run_windowed(ctx: Context, policy: str,
                  on_window: Callable[[str], None] | None = None) -> _PolicyRun:
    decide, series, commit_all = policy_spec(ctx, policy)
    ledger = Ledger(np.zeros(ctx.total_h, dtype=np.int64))
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


def _commit(ledger: Ledger, w: Window, decision: Decision, commit_all: bool,
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


def _check_window(ctx: Context, w: Window, ci: np.ndarray, decision: Decision,
                  policy: str) -> None:
    problem = window_problem(ctx, w, ci, relaxed=frozenset(decision.relaxed))
    index = {name: i for i, name in enumerate(problem.job_ids)}
    plan = Plan({index[job.id]: Placement.contiguous(0, decision.starts[job.id],
                                                     job.duration_slots) for job in w.jobs})
    check = check_plan(problem, plan)
    if not check.ok:
        raise BacktestError(f"{policy} window {w.index} at {ctx.time(w.start_h)}: "
                            + "; ".join(check.violations[:5]))


def _run_now(ctx: Context) -> _PolicyRun:
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


def _global_problem(ctx: Context, starts: dict[str, int]) -> Problem:
    """All jobs over the whole replay with the actual series; deadlines of jobs that
    ``starts`` finishes late are relaxed to the horizon's end (they are counted as late)."""
    w = Window(-1, 0, ctx.total_h, ctx.jobs, np.full(ctx.total_h, ctx.capacity))
    late = frozenset(j.id for j in ctx.jobs if j.id in starts
                     and starts[j.id] + j.duration_slots > j.deadline_h)
    return window_problem(ctx, w, ctx.actual, relaxed=late)


@dataclass
class _Evaluation:
    check: CheckResult
    hourly_kg: np.ndarray
    late: int


def _evaluate(ctx: Context, starts: dict[str, int], policy: str) -> _Evaluation:
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
                 data_dir: Path | str, pf_time_limit_s: float | None = None,
                 decision_hours: int = 1, max_shift_h: float = 8.0, utilisation: float = 0.9,
                 max_jobs: int | None = None, capacity_gpus: int | None = None,
                 trace_start: date | None = None, forecast_model: str = "average-ci",
                 vintages: str = "evolving", blend: bool = True, blend_others: bool = False,
                 perfect_leads_h: tuple[int, int] | None = None,
                 policies: tuple[str, ...] = POLICIES,
                 on_window: Callable[[str], None] | None = None) -> BacktestResult:
    """Replay ``days`` of the trace from ``start`` (default: :func:`default_start`) in
    ``region``, with the trace and carbon series under ``data_dir`` (the settings' shared data
    folder), and compare ``policies`` (see the module docstring). ``on_window(policy)`` is
    called after every decision window (progress)."""
    region = canonical_region(region)
    start = to_year(start, SERIES_YEAR[region]) if start else default_start(region)
    cfg = BacktestConfig(region, start, days, slack_h, time_limit_s, pf_time_limit_s, seed,
                         decision_hours, max_shift_h, utilisation, trace_start=trace_start,
                         max_jobs=max_jobs, capacity_gpus=capacity_gpus,
                         forecast_model=forecast_model, vintages=vintages, blend=blend,
                         blend_others=blend_others, perfect_leads_h=perfect_leads_h)
    _validate(cfg, policies)
    ctx, week = build_context(cfg, Path(data_dir))
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


def _table(ctx: Context, runs: dict[str, _PolicyRun],
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


def _hourly(ctx: Context, evals: dict[str, _Evaluation]) -> pd.DataFrame:
    index = pd.date_range(ctx.origin, periods=ctx.total_h, freq="1h", name="hour")
    return pd.DataFrame({p: ev.hourly_kg for p, ev in evals.items()}, index=index)


def _starts(ctx: Context, runs: dict[str, _PolicyRun]) -> pd.DataFrame:
    frame = pd.DataFrame({p: {j.id: ctx.time(r.starts[j.id]) for j in ctx.jobs}
                          for p, r in runs.items()})
    frame.index.name = "job"
    return frame
