"""Forecast scenarios for a problem, and the risk figures / risk-aware choice of a plan: the
solve every plan goes through (the optimizer's, then risk over forecast scenarios)."""

from __future__ import annotations

import dataclasses
import time
import zlib

import numpy as np

from gridshift.forecasting.alignment import align_to_slots
from gridshift.forecasting.uncertainty import forecast_scenarios
from gridshift.optimizer.accounting import figures
from gridshift.optimizer.checker import check_plan
from gridshift.optimizer.problem import Problem
from gridshift.optimizer.scoring.selection import candidate_pool, plan_risk, select
from gridshift.optimizer.solve import SolveResult, solve

DEFAULT_SCENARIOS = 32
# Share of the time limit kept for building and scoring the candidate pool.
RISK_TIME_SHARE = 0.2


def ci_scenarios(problem: Problem, n: int, seed: int) -> np.ndarray:
    """[n, S, T] carbon-intensity scenarios (gCO2e/kWh) aligned to the problem's slots. Sites in
    one region share a scenario; regions are sampled independently."""
    h = problem.horizon
    by_region = {f.region: f for f in problem.forecasts if f.carbon_intensity}
    out = np.empty((n, problem.n_sites, problem.n_slots))
    cache: dict[str, np.ndarray] = {}
    for s, region in enumerate(problem.site_regions):
        if region not in cache:
            f = by_region[region]
            native = forecast_scenarios(f, n, seed + zlib.crc32(region.encode()) % 100_000)
            cache[region] = np.stack([align_to_slots(row, f.start, f.slot_minutes, h.start,
                                                     h.slot_minutes, h.slots) for row in native])
        out[:, s, :] = cache[region]
    return out


def solve_with_risk(problem: Problem, on_progress=None, stop_flag=None,
                    time_limit_s: float | None = None, device: str = "auto") -> SolveResult:
    """solve(), then risk figures for the plan; with options.risk_measure, a pool of candidate
    plans is scored over the scenarios (on ``device``: auto, cpu or gpu) and the best feasible
    one by that measure returned. The risk step is reported to ``on_progress`` as a ``phase``
    event (``risk``), like the solve's own phases."""
    opts = problem.options
    limit = opts.time_limit_seconds if time_limit_s is None else time_limit_s
    measure = opts.risk_measure.value
    wants_choice = measure in ("EXPECTED", "P90", "CVAR95")
    started = time.monotonic()
    result = solve(problem, on_progress=on_progress, stop_flag=stop_flag,
                   time_limit_s=limit * (1 - RISK_TIME_SHARE) if wants_choice else limit)
    if result.status == "INFEASIBLE" or not result.plan.placements:
        return result
    risk_began = time.monotonic()
    ok = False
    try:
        result = _with_risk(problem, result, wants_choice, measure, device, started)
        ok = True
        return result
    finally:
        if on_progress is not None:
            now = time.monotonic()
            on_progress({"kind": "phase", "phase": "risk", "elapsed_s": now - started,
                         "seconds": now - risk_began, "ok": ok})


def _with_risk(problem: Problem, result: SolveResult, wants_choice: bool, measure: str,
               device: str, started: float) -> SolveResult:
    """The result with its risk figures (and, when a measure is asked for, the best plan of
    the candidate pool by it)."""
    opts = problem.options
    n = opts.scenarios or DEFAULT_SCENARIOS
    scenarios = ci_scenarios(problem, n, opts.random_seed)
    if not wants_choice:
        expected, p90, cvar = plan_risk(problem, result.plan, scenarios, device=device)
        result.risk = {"expected_kg": expected, "p90_kg": p90, "cvar95_kg": cvar,
                       "scenarios": n}
        return result
    pool = candidate_pool(problem, result.plan, scenarios, opts.random_seed)
    chosen = select(problem, pool, scenarios, measure, device=device)
    if chosen.plan is not result.plan:
        result = _replace_plan(result, chosen.plan)
    result.risk = {"expected_kg": chosen.expected_kg, "p90_kg": chosen.p90_kg,
                   "cvar95_kg": chosen.cvar95_kg, "scenarios": n, "measure": measure,
                   "candidates": chosen.candidates,
                   "point_plan_measure_kg": chosen.point_plan_value_kg,
                   "chosen_measure_kg": chosen.chosen_value_kg}
    result.wall_seconds = time.monotonic() - started
    return result


def _replace_plan(result: SolveResult, plan) -> SolveResult:
    """The result with another (checked) plan; the solver's bound still holds."""
    problem = result.problem
    check = check_plan(problem, plan)
    if not check.ok:
        return result
    plan_figures = figures(problem, plan)
    objective = plan_figures.totals.objective(problem)
    gap = (objective - result.best_bound) / max(abs(objective), 1e-9)
    return dataclasses.replace(
        result, plan=plan, figures=plan_figures, objective=objective, gap=gap,
        status="FEASIBLE",
        detail=result.detail + "; plan chosen by risk measure over forecast scenarios")
