"""The rolling replay of every policy, the evaluation of their schedules with the actual
series against the perfect-foresight reference, and :func:`replay` / :func:`run_backtest`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from gridshift.app.backtest.config import (
    DEFAULT_POLICIES,
    FORECAST_MODELS,
    PF_ROW,
    POLICIES,
    REFERENCE_POLICY,
    VINTAGES,
    BacktestConfig,
    BacktestError,
    BacktestResult,
    Reference,
    TraceJob,
)
from gridshift.app.backtest.context import (
    Context,
    Ledger,
    Window,
    build_context,
    is_window_job,
    make_window,
    window_problem,
)
from gridshift.app.backtest.data import (
    ReplayInputs,
    SeriesSource,
    TraceSource,
    canonical_region,
    load_inputs,
    series_start,
)
from gridshift.app.backtest.policies import Decision, policy_rules, policy_spec
from gridshift.app.backtest.reference import covers, due_hours, offline_reference
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
    no_regret: tuple[int, int, int] = (0, 0, 0)


def _make_window(ctx: Context, k: int, start_h: int, pending: list[TraceJob],
                 ledger: Ledger) -> Window:
    end = max(j.deadline_h for j in pending)
    end = max(end, max(max(j.first_h, start_h) + j.duration_slots for j in pending))
    slots = min(end - start_h + ctx.cfg.margin_h, ctx.total_h - start_h)
    if slots <= 0:
        raise BacktestError(f"decision {k} at hour {start_h} is past the replay's horizon")
    return make_window(ctx, k, start_h, slots, pending, ledger)


def _run_windowed(ctx: Context, policy: str,
                  on_window: Callable[[str], None] | None = None) -> _PolicyRun:
    decide, series, commit_all = policy_spec(ctx, policy)
    ledger = Ledger.empty(ctx.total_h)
    cadence = ctx.cfg.decision_hours
    queue, pending, windows, checks, k = list(ctx.jobs), [], [], 0, 0
    regret = np.zeros(3, dtype=int)
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
            regret += decision.no_regret
            committed = _commit(ctx, ledger, w, decision, commit_all, cadence)
            pending = [j for j in pending if j.id not in committed]
            windows.append({"policy": policy, "window": k, "decision": ctx.time(start_h),
                            "jobs": len(w.jobs), "committed": len(committed),
                            "wall_s": wall, "status": decision.status})
            if on_window is not None:
                on_window(policy)
        k += 1
        if k * cadence > ctx.total_h:
            raise BacktestError(f"{policy}: jobs still pending at the replay's end")
    return _PolicyRun(ledger.starts, windows, checks, tuple(int(v) for v in regret))


def _commit(ctx: Context, ledger: Ledger, w: Window, decision: Decision, commit_all: bool,
            cadence: int) -> set[str]:
    """Start the jobs planned before the next decision (all of them for commit-all policies,
    and relaxed jobs); returns their ids."""
    committed = set()
    for job in w.jobs:
        slot = decision.starts[job.id]
        if commit_all or slot < cadence or job.id in decision.relaxed:
            ledger.commit(job, w.start_h + slot, ctx.cfg.pue)
            committed.add(job.id)
    return committed


def _check_window(ctx: Context, w: Window, ci, decision: Decision, policy: str) -> None:
    problem = window_problem(ctx, w, ci, relaxed=frozenset(decision.relaxed))
    index = {name: i for i, name in enumerate(problem.job_ids)}
    plan = Plan({index[job.id]: Placement.contiguous(0, decision.starts[job.id],
                                                     job.duration_slots) for job in w.jobs})
    for j, name in enumerate(problem.job_ids):
        if not is_window_job(name):      # a commitment: where it runs
            plan.placements[j] = Placement.contiguous(0, int(problem.first_slot[j]),
                                                      int(problem.duration_slots[j]))
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


def reference_for(ctx: Context, run_now: _PolicyRun | None = None) -> Reference:
    """The perfect-foresight reference of a replay, covering run-now's schedule."""
    run_now = run_now or _run_now(ctx)
    upper = _evaluate(ctx, run_now.starts, REFERENCE_POLICY).check.emissions_kg
    return offline_reference(ctx, due_hours(ctx.jobs, [run_now.starts]), upper)


# --- The backtest -----------------------------------------------------------------------------


def replay(cfg: BacktestConfig, inputs: ReplayInputs, *,
           policies: tuple[str, ...] = DEFAULT_POLICIES, reference: Reference | None = None,
           on_window: Callable[[str], None] | None = None) -> BacktestResult:
    """Replay ``cfg`` on ``inputs`` and compare ``policies`` against the perfect-foresight
    reference (computed here unless given; recomputed when a schedule finishes a job later
    than the given one allows). ``on_window(policy)`` is called after every decision window."""
    _validate(cfg, policies)
    ctx, week = build_context(cfg, inputs)
    runs = {p: _run_now(ctx) if p == REFERENCE_POLICY else _run_windowed(ctx, p, on_window)
            for p in policies}
    schedules = [r.starts for r in runs.values()]
    if reference is None or not all(covers(reference, ctx.jobs, s) for s in schedules):
        upper = _evaluate(ctx, runs[REFERENCE_POLICY].starts, REFERENCE_POLICY)
        reference = offline_reference(ctx, due_hours(ctx.jobs, schedules),
                                      upper.check.emissions_kg)
    evals = {p: _evaluate(ctx, run.starts, p) for p, run in runs.items()}
    return BacktestResult(
        config=cfg, trace_start=week, capacity_gpus=ctx.capacity, jobs=ctx.jobs,
        table=_table(ctx, runs, evals, reference), hourly_kg=_hourly(ctx, evals),
        starts=_starts(ctx, runs), windows=pd.DataFrame([w for r in runs.values()
                                                         for w in r.windows]),
        reference=reference, rules=policy_rules(cfg),
        checks_passed=sum(r.checks for r in runs.values()) + len(evals),
        no_regret=dict(zip(("kept", "pulled_back", "no_room"),
                           runs["gridshift"].no_regret if "gridshift" in runs else (0, 0, 0),
                           strict=True)))


def run_backtest(region: str, start: date | None = None, days: int = 7, *,
                 data_dir: Path | str, csv_path: str | None = None,
                 jobs_path: str | None = None, forecast_path: str | None = None,
                 policies: tuple[str, ...] = DEFAULT_POLICIES,
                 on_window: Callable[[str], None] | None = None,
                 **settings) -> BacktestResult:
    """Replay ``days`` of the trace (the Philly trace, or ``jobs_path``) from ``start``
    (default: the default trace week in the series' year) against the series ``region`` (a
    built-in one, or the CSV ``csv_path`` named ``region``), and compare ``policies``.
    ``settings`` are :class:`BacktestConfig`'s fields (slack_h, time_limit_s, seed, ...)."""
    source = SeriesSource(region, csv_path, forecast_path)
    inputs = load_inputs(source, TraceSource(jobs_path), Path(data_dir))
    cfg = config_for(source, inputs, start, days, **settings)
    return replay(cfg, inputs, policies=policies, on_window=on_window)


def config_for(source: SeriesSource, inputs: ReplayInputs, start: date | None, days: int,
               **settings) -> BacktestConfig:
    """The replay's configuration: the region's name, its first day within the series."""
    region = source.region if source.csv_path else canonical_region(source.region)
    cfg = BacktestConfig(region, series_start(start, inputs.series), days,
                         forecast_vintages=inputs.vintages is not None)
    return replace(cfg, **settings)


def _validate(cfg: BacktestConfig, policies: tuple[str, ...]) -> None:
    unknown = [p for p in policies if p not in POLICIES]
    if unknown or REFERENCE_POLICY not in policies:
        raise ValueError(f"policies must include {REFERENCE_POLICY!r} and come from "
                         f"{POLICIES}; got {policies}")
    checks = [("days", cfg.days >= 1, ">= 1"),
              ("decision_hours", cfg.decision_hours >= 1, ">= 1"),
              ("slack_h", cfg.slack_h >= 0, ">= 0"),
              ("time_limit_s", cfg.time_limit_s > 0, "> 0"),
              ("utilisation", cfg.utilisation > 0, "> 0"),
              ("pue", cfg.pue >= 1, ">= 1"),
              ("power_cap_kw", cfg.power_cap_kw is None or cfg.power_cap_kw > 0, "> 0"),
              ("capacity_gpus", cfg.capacity_gpus is None or cfg.capacity_gpus >= 1, ">= 1")]
    for name, ok, bound in checks:
        if not ok:
            raise ValueError(f"{name} must be {bound}; got {getattr(cfg, name)}")
    leads = cfg.perfect_leads_h
    if leads is not None and not 0 <= leads[0] < leads[1]:
        raise ValueError(f"perfect_leads_h must be (first, end) with 0 <= first < end; got "
                         f"{leads}")
    if cfg.vintages not in VINTAGES:
        raise ValueError(f"vintages must be one of {', '.join(VINTAGES)}; got {cfg.vintages!r}")
    if cfg.forecast_model not in FORECAST_MODELS:
        raise ValueError(f"forecast_model must be one of {', '.join(FORECAST_MODELS)}; got "
                         f"{cfg.forecast_model!r}")
    if cfg.no_regret_z is not None and cfg.no_regret_z < 0:
        raise ValueError(f"no_regret_z must be >= 0; got {cfg.no_regret_z}")
    if not math.isfinite(cfg.no_regret_budget_pct) or cfg.no_regret_budget_pct < 0:
        raise ValueError(f"no_regret_budget_pct must be finite and >= 0; got "
                         f"{cfg.no_regret_budget_pct}")


def _table(ctx: Context, runs: dict[str, _PolicyRun], evals: dict[str, _Evaluation],
           reference: Reference) -> pd.DataFrame:
    run_now = evals[REFERENCE_POLICY].check.emissions_kg
    fifo = evals["fifo"].check.emissions_kg if "fifo" in evals else math.nan
    pf_savings = run_now - reference.bound_kg
    rows = []
    for policy, ev in evals.items():
        walls = [w["wall_s"] for w in runs[policy].windows]
        rows.append(_row(ctx, policy, ev.check.emissions_kg, run_now, fifo, pf_savings) | {
            "energy_kwh": ev.check.energy_kwh, "late_jobs": ev.late,
            "mean_wait_h": ev.check.wait_hours / len(ctx.jobs), "windows": len(walls),
            "wall_s_per_window_mean": float(np.mean(walls)),
            "wall_s_per_window_max": float(np.max(walls))})
    rows.append(_row(ctx, PF_ROW, reference.bound_kg, run_now, fifo, pf_savings) | {
        "energy_kwh": evals[REFERENCE_POLICY].check.energy_kwh, "late_jobs": 0,
        "mean_wait_h": math.nan, "windows": 0, "wall_s_per_window_mean": reference.wall_s,
        "wall_s_per_window_max": reference.wall_s})
    return pd.DataFrame(rows)


def _row(ctx: Context, policy: str, emissions: float, run_now: float, fifo: float,
         pf_savings: float) -> dict:
    savings = run_now - emissions
    return {"region": ctx.cfg.region, "policy": policy, "emissions_kg": emissions,
            "savings_kg": savings,
            "savings_pct": 100.0 * savings / run_now if run_now else math.nan,
            "savings_vs_fifo_kg": fifo - emissions,
            "share_of_pf_pct": 100.0 * savings / pf_savings if pf_savings > 0 else math.nan}


def _hourly(ctx: Context, evals: dict[str, _Evaluation]) -> pd.DataFrame:
    index = pd.date_range(ctx.origin, periods=ctx.total_h, freq="1h", name="hour")
    return pd.DataFrame({p: ev.hourly_kg for p, ev in evals.items()}, index=index)


def _starts(ctx: Context, runs: dict[str, _PolicyRun]) -> pd.DataFrame:
    frame = pd.DataFrame({p: {j.id: ctx.time(r.starts[j.id]) for j in ctx.jobs}
                          for p, r in runs.items()})
    frame.index.name = "job"
    return frame
