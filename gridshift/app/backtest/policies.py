"""The policies compared by the backtest, each deciding one window, and the rules they follow
(stated in every output): FIFO, the per-job lowest window (repaired), Let's-Wait-Awhile, and
the solver (gridshift with the no-regret rule, and the rolling-foresight diagnostic)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from gridshift.app.backtest.config import SLOT_MINUTES, BacktestConfig, BacktestError, TraceJob
from gridshift.app.backtest.context import (
    Context,
    Window,
    earliest_fit,
    fits,
    is_window_job,
    take,
    window_problem,
)
from gridshift.app.backtest.forecasts import DecisionForecast
from gridshift.app.backtest.regret import RegretBudget
from gridshift.app.risk import ci_scenarios
from gridshift.forecasting.best_window import find_best_window
from gridshift.forecasting.series import Forecast
from gridshift.optimizer.baseline import fifo_baseline
from gridshift.optimizer.no_regret import apply_no_regret
from gridshift.optimizer.solve import solve

Series = np.ndarray | DecisionForecast


@dataclass
class Decision:
    """A policy's starts for one window. ``relaxed``: jobs placed outside their deadline
    window (late, or pushed out by a repair); they are committed at once and their deadline is
    relaxed in the window's check (lateness is counted against the real deadline).
    ``no_regret``: the rule's counts (shifts kept; pulled back, to now or to the earliest start
    that fits; kept for want of room)."""

    starts: dict[str, int]              # job id -> start slot in the window
    relaxed: set[str] = field(default_factory=set)
    status: str = ""
    no_regret: tuple[int, int, int] = (0, 0, 0)


def policy_rules(cfg: BacktestConfig) -> dict[str, str]:
    """Each policy's rule in words, with this replay's deadlines, slack and cadence."""
    every = f"decisions every {cfg.decision_hours} h"
    return {**_fixed_rules(cfg, every), "gridshift": _gridshift_rule(cfg, every)}


def _no_regret_rule(cfg: BacktestConfig) -> str:
    if cfg.no_regret_z is None:
        return "no-regret rule off"
    z = f"{cfg.no_regret_z:g}"
    if cfg.no_regret_budget_pct <= 0:
        return (f"no-regret rule: the plan's shifts from running now are kept only where, over "
                f"the forecast scenarios, their saving together has a mean >= {z} standard "
                "deviations, else the weakest bets are pulled back to run now")
    return (f"no-regret rule with a loss budget: the plan's shifts from running now, together "
            "with the bets already in play (each job against running at its arrival: settled "
            "with the published actuals, else over the forecast scenarios), may lose at most "
            f"{cfg.no_regret_budget_pct:g} % of the replay's stake (its jobs' energy at the "
            f"intensity published before it) in their {z}-sigma bad case, else the weakest "
            "bets are pulled back to run now")


def _gridshift_rule(cfg: BacktestConfig, every: str) -> str:
    return ("the solver's joint plan of the pending jobs (deadline arrival + duration "
            f"+ {cfg.slack_h:g} h slack, capacity and power cap), re-planned at each "
            f"decision ({every}) with only the jobs planned to start before the next "
            f"one committed; {_no_regret_rule(cfg)}")


def _fixed_rules(cfg: BacktestConfig, every: str) -> dict[str, str]:
    return {
        "run-now": "each job starts at its arrival (next hour) if its GPUs and the power cap "
                   "allow, else at the earliest hour they do, first come first served; no "
                   "forecast, deadlines ignored",
        "fifo": f"run-now at each decision ({every}): jobs wait for the next decision, then "
                "start first come, first served; no forecast",
        "lowest-window": "per job, the start with the lowest forecast mean intensity between "
                         f"the decision and its deadline (arrival + duration + {cfg.slack_h:g} "
                         "h slack), capacity ignored (the Carbon Aware SDK's advice), then "
                         "repaired in order of those starts; committed when advised; " + every,
        "lets-wait-awhile": f"as lowest-window, but starting no later than arrival + "
                            f"{cfg.max_shift_h:g} h and by the deadline; " + every,
        "rolling-foresight": "as gridshift, but on the actual intensity (no forecast error, "
                             "future arrivals unknown), without the no-regret rule; a "
                             "diagnostic",
    }


def _decide_fifo(ctx: Context, w: Window, ci: Series) -> Decision:
    problem = window_problem(ctx, w, ci)
    plan = fifo_baseline(problem)
    if plan.unscheduled:
        raise BacktestError(f"FIFO left jobs out at window {w.index}; raise margin_h")
    own = {j: p for j, p in plan.placements.items() if is_window_job(problem.job_ids[j])}
    return Decision({problem.job_ids[j]: p.start_slot for j, p in own.items()},
                    {problem.job_ids[j] for j, p in own.items()
                     if p.end_slot > problem.last_slot[j]}, status="FIFO")


def _values(ci: Series) -> np.ndarray:
    return ci.values if isinstance(ci, DecisionForecast) else ci


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


def _repair(w: Window, ranked: dict[str, list[int]], pue: float) -> Decision:
    """Jobs in order of their preferred start; each takes its best-ranked start that fits,
    else the earliest start that fits after its window (late)."""
    free = _free(w)
    by_id = {j.id: j for j in w.jobs}
    decision = Decision({}, status="repaired")
    for job_id in sorted(ranked, key=lambda i: (ranked[i][0], by_id[i].arrival_h, i)):
        job = by_id[job_id]
        kw = job.power_kw * pue
        start = next((s for s in ranked[job_id]
                      if fits(free[0], s, job.duration_slots, job.gpus, free[1], kw)), None)
        if start is None:
            start = earliest_fit(free[0], max(ranked[job_id]) + 1, job.duration_slots,
                                 job.gpus, job.id, free[1], kw)
            decision.relaxed.add(job.id)
        take(free, job, start, pue)
        decision.starts[job.id] = start
    return decision


def _free(w: Window) -> tuple[np.ndarray, np.ndarray | None]:
    """Copies of the window's free GPUs and (under a power cap) facility kW."""
    return w.free_gpus.copy(), None if w.free_kw is None else w.free_kw.copy()


def _latest_start(w: Window, job: TraceJob) -> int:
    first = max(job.first_h, w.start_h)
    return max(first, job.deadline_h - job.duration_slots) - w.start_h


def _decide_lowest(ctx: Context, w: Window, ci: Series) -> Decision:
    values = _values(ci)
    return _repair(w, {j.id: _ranked_starts(ctx, w, values, j, _latest_start(w, j))
                       for j in w.jobs}, ctx.cfg.pue)


def _decide_lwa(ctx: Context, w: Window, ci: Series) -> Decision:
    values = _values(ci)

    def latest(j: TraceJob) -> int:
        shift_end = math.floor(j.arrival_h + ctx.cfg.max_shift_h) - w.start_h
        return min(shift_end, _latest_start(w, j))

    return _repair(w, {j.id: _ranked_starts(ctx, w, values, j, latest(j)) for j in w.jobs},
                   ctx.cfg.pue)


def _decide_solver(ctx: Context, w: Window, ci: Series, limit_s: float,
                   no_regret_z: float | None, budget: RegretBudget | None = None) -> Decision:
    problem = window_problem(ctx, w, ci, limit_s)
    result = solve(problem, time_limit_s=limit_s)
    plan, counts = result.plan, (0, 0, 0)
    if no_regret_z is not None and plan.placements:
        scenarios = ci_scenarios(problem, ctx.cfg.scenarios, ctx.cfg.seed * 100_003 + w.index)
        if budget is None:
            outcome = apply_no_regret(problem, plan, scenarios, no_regret_z)
        else:
            outcome = apply_no_regret(problem, plan, scenarios, no_regret_z, budget.budget_kg,
                                      budget.in_play_kg(w, scenarios))
        plan = outcome.plan
        counts = (len(outcome.kept), len(outcome.pulled_back), len(outcome.no_room))
    decision = Decision({}, status=result.status, no_regret=counts)
    free = _free(w)
    by_id = {j.id: j for j in w.jobs}
    for j, p in plan.placements.items():
        if is_window_job(problem.job_ids[j]):
            decision.starts[problem.job_ids[j]] = p.start_slot
            take(free, by_id[problem.job_ids[j]], p.start_slot, ctx.cfg.pue)
    for j in range(problem.n_jobs):
        job = by_id.get(problem.job_ids[j])
        if job is not None and job.id not in decision.starts:
            start = earliest_fit(free[0], int(problem.first_slot[j]), job.duration_slots,
                                 job.gpus, job.id, free[1], job.power_kw * ctx.cfg.pue)
            take(free, job, start, ctx.cfg.pue)
            decision.starts[job.id] = start
            decision.relaxed.add(job.id)
    return decision


Decide = Callable[[Context, Window, Series], Decision]


def policy_spec(ctx: Context, policy: str) -> tuple[Decide, Callable[[Window], Series], bool]:
    """How ``policy`` decides: (decide(ctx, window, series) -> Decision, the series it sees
    at a window, whether it commits every job when planned). Every forecast-driven policy sees
    the same decision forecast."""
    cfg = ctx.cfg

    def seen(w: Window) -> DecisionForecast:
        return ctx.decision_forecast(w.index, w.start_h)

    def gridshift_seen(w: Window) -> DecisionForecast:
        return ctx.gridshift_forecast(w.index, w.start_h)

    def actual(w: Window) -> np.ndarray:
        return ctx.actual[w.start_h:]

    budget = RegretBudget.for_replay(ctx, cfg.no_regret_budget_pct) \
        if cfg.no_regret_z is not None and cfg.no_regret_budget_pct > 0 else None

    specs: dict[str, tuple[Decide, Callable[[Window], Series], bool]] = {
        "fifo": (_decide_fifo, actual, True),
        "lowest-window": (_decide_lowest, seen, True),
        "lets-wait-awhile": (_decide_lwa, seen, True),
        "gridshift": (lambda c, w, ci: _decide_solver(c, w, ci, cfg.time_limit_s,
                                                      cfg.no_regret_z, budget),
                      gridshift_seen, False),
        "rolling-foresight": (lambda c, w, ci: _decide_solver(c, w, ci, cfg.pf_limit_s, None),
                              actual, False),
    }
    return specs[policy]
