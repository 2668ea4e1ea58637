"""The perfect-foresight reference: the offline optimum of the whole replay with the actual
intensity and every arrival known, or a proven bound from its relaxation.

The offline problem holds every job of the replay at once: each may start at the first hour
at or after its arrival and must finish by its due hour (its deadline, or the first hour it can
finish by when that is later), on the site's capacity and power cap over the whole replay,
with the actual series. Every rolling policy's schedule keeps the same rules (it only knows
less: the forecast, and the jobs that have arrived), so the offline optimum emits no more than
any of them: it is the true upper bound on savings. Where a schedule finishes a job later than
its due hour (run-now under tight capacity, a repaired per-job advice), that job's due hour in
the offline problem is relaxed to cover it, so the bound still holds for every schedule
compared (the reference says how many).

It is solved by the product's solver (``reference_time_limit_s``, default 60 s); the bound is
the larger of the solver's best bound and the Lagrangian relaxation's
(:func:`gridshift.optimizer.lagrangian.lagrangian_bound`, which is also the only bound where
the problem has more than :data:`MAX_SOLVE_CELLS` jobs x hours). Savings are measured against
the bound, so no share exceeds 100 %: the kind is ``offline-optimum`` when the solver's plan
is proven within :data:`~.config.OPTIMAL_GAP` of it, else ``relaxation-bound`` (the shares
are then lower bounds on the true ones).
"""

from __future__ import annotations

import math
import time

import numpy as np

from gridshift.app.backtest.config import OPTIMAL_GAP, BacktestError, Reference, TraceJob
from gridshift.app.backtest.context import Context, Window, window_problem
from gridshift.optimizer.accounting import figures
from gridshift.optimizer.checker import check_plan
from gridshift.optimizer.lagrangian import lagrangian_bound
from gridshift.optimizer.problem import Problem
from gridshift.optimizer.solve import solve

#: Above this many jobs x hours the offline problem is not solved, only bounded.
MAX_SOLVE_CELLS = 2_500_000
#: Seconds the Lagrangian bound may take.
LAGRANGIAN_BUDGET_S = 10.0


def due_hours(jobs: list[TraceJob], schedules: list[dict[str, int]]) -> dict[str, int]:
    """Each job's due hour in the offline problem: its own, or later where a schedule in
    ``schedules`` (job id -> start hour) finishes it later."""
    due = {j.id: j.due_h for j in jobs}
    for starts in schedules:
        for j in jobs:
            if j.id in starts:
                due[j.id] = max(due[j.id], starts[j.id] + j.duration_slots)
    return due


def offline_problem(ctx: Context, due_h: dict[str, int], limit_s: float = 1.0) -> Problem:
    """Every job of the replay at once with the actual series, due by ``due_h``."""
    w = Window(-1, 0, ctx.total_h, ctx.jobs, np.full(ctx.total_h, ctx.capacity))
    return window_problem(ctx, w, ctx.actual, limit_s, due_h=due_h)


def covers(reference: Reference, jobs: list[TraceJob], starts: dict[str, int]) -> bool:
    """Whether a schedule keeps the reference's due hours (so the bound holds for it)."""
    return all(starts[j.id] + j.duration_slots <= reference.due_h[j.id] for j in jobs
               if j.id in starts)


def offline_reference(ctx: Context, due_h: dict[str, int], upper_kg: float) -> Reference:
    """Solve (or bound) the offline problem; ``upper_kg``: the emissions of a schedule known
    to keep ``due_h`` (run-now's), the bound's starting target."""
    began = time.perf_counter()
    limit = ctx.cfg.reference_time_limit_s
    problem = offline_problem(ctx, due_h, limit)
    relaxed = sum(due_h[j.id] > j.due_h for j in ctx.jobs)
    bound, plan_kg, notes = -math.inf, math.nan, []
    if problem.n_jobs * problem.n_slots <= MAX_SOLVE_CELLS:
        bound, plan_kg, note = _solved(problem, limit)
        notes.append(note)
    else:
        notes.append(f"{problem.n_jobs} jobs x {problem.n_slots} h exceed "
                     f"{MAX_SOLVE_CELLS:,} cells: not solved")
    if not _gap(plan_kg, bound) <= OPTIMAL_GAP:
        target = plan_kg if math.isfinite(plan_kg) else upper_kg
        lagrange = lagrangian_bound(problem, target,
                                    time_budget_s=min(LAGRANGIAN_BUDGET_S, limit))
        if lagrange.valid:
            bound = max(bound, lagrange.bound)
            notes.append(f"Lagrangian bound {lagrange.bound:,.1f} kg")
    if not math.isfinite(bound):
        raise BacktestError("the offline reference has no valid bound")
    if math.isfinite(plan_kg):
        bound = min(bound, plan_kg)
    gap = _gap(plan_kg, bound)
    kind = "offline-optimum" if gap <= OPTIMAL_GAP else "relaxation-bound"
    return Reference(kind=kind, bound_kg=float(bound), plan_kg=float(plan_kg),
                     gap_pct=100.0 * gap if math.isfinite(gap) else math.nan,
                     wall_s=time.perf_counter() - began, relaxed_jobs=relaxed,
                     detail="; ".join(notes),
                     due_h=dict(due_h))


def _gap(plan_kg: float, bound: float) -> float:
    """Relative gap of a plan to a bound (inf when either is unknown)."""
    if not (math.isfinite(plan_kg) and math.isfinite(bound)) or plan_kg <= 0:
        return math.inf
    return (plan_kg - bound) / plan_kg


def _solved(problem: Problem, limit_s: float) -> tuple[float, float, str]:
    """(solver's bound, its checked plan's emissions or NaN when it left jobs out, note)."""
    result = solve(problem, time_limit_s=limit_s)
    check = check_plan(problem, result.plan)
    if not check.ok:
        raise BacktestError("the offline reference's plan fails the checker: "
                            + "; ".join(check.violations[:5]))
    plan_kg = math.nan if result.plan.unscheduled else \
        figures(problem, result.plan).totals.emissions_kg
    return (result.best_bound, plan_kg,
            f"solver {result.status} in {result.wall_seconds:.1f} s ({result.detail})")
