"""OR-Tools CP-SAT on the array model.

CP-SAT needs integers: rows that carry kW coefficients are scaled by 1000 (watts) and
rounded, and continuous kW columns become integer watt columns. The error is under a watt per
job (capacity rows round up, so caps are never exceeded); the plan is re-checked and its
objective recomputed exactly afterwards.
"""

from __future__ import annotations

import math
import os
import threading
import time

import numpy as np

from gridshift.optimizer.backends import BackendResult, ProgressCallback
from gridshift.optimizer.milp import MilpModel

# Objective units (kg, currency) below which two values count as equal.
ABSOLUTE_GAP = 1e-9


def solve_cpsat(model: MilpModel, *, time_limit_s: float, relative_gap: float, workers: int = 0,
                seed: int = 0, hint: np.ndarray | None = None,
                on_progress: ProgressCallback | None = None,
                stop_flag=None) -> BackendResult:
    """Solve with CP-SAT; honours the time limit, gap, worker count, seed and a warm start."""
    from ortools.sat.python import cp_model

    started = time.monotonic()
    cp, variables = _to_cp(model, cp_model)
    if hint is not None:
        for var, value, scale in zip(variables, hint, model.col_scale, strict=True):
            cp.add_hint(var, int(round(value * scale)))
    solver = cp_model.CpSolver()
    params = solver.parameters
    params.max_time_in_seconds = max(0.01, float(time_limit_s))
    params.relative_gap_limit = float(relative_gap)
    # The default absolute gap (1e-4) would end the search early on small objectives (a few
    # grams): the relative gap asked for is the stopping rule.
    params.absolute_gap_limit = ABSOLUTE_GAP
    params.num_workers = int(workers or os.cpu_count() or 1)
    params.random_seed = int(seed)
    callback = _Progress(cp_model, on_progress, started, model.offset, stop_flag, variables,
                         model.col_scale)
    finished = threading.Event()
    if stop_flag is not None:
        threading.Thread(target=_watch, args=(solver, stop_flag, finished), daemon=True).start()
    try:
        code = solver.solve(cp, callback)
    finally:
        finished.set()
    wall = time.monotonic() - started
    status = {cp_model.OPTIMAL: "optimal", cp_model.FEASIBLE: "feasible",
              cp_model.INFEASIBLE: "infeasible"}.get(code, "no_solution")
    values = None
    objective = math.nan
    if status in ("optimal", "feasible"):
        values = np.array([solver.value(v) for v in variables], dtype=float) / model.col_scale
        objective = solver.objective_value + model.offset
    bound = solver.best_objective_bound + model.offset if status != "infeasible" else math.inf
    return BackendResult(status, values, objective, bound, wall,
                         f"CP-SAT: {solver.status_name(code)}")


def _to_cp(model: MilpModel, cp_model):
    cp = cp_model.CpModel()
    variables = []
    for c in range(model.n_cols):
        scale = model.col_scale[c]
        ub = int(math.ceil(model.upper[c] * scale))
        if model.integer[c] and ub == 1 and scale == 1:
            variables.append(cp.new_bool_var(f"v{c}"))
        else:
            variables.append(cp.new_int_var(int(math.floor(model.lower[c] * scale)), ub, f"v{c}"))
    order = np.argsort(model.a_row, kind="stable")
    rows, cols, vals = model.a_row[order], model.a_col[order], model.a_val[order]
    bounds = np.searchsorted(rows, np.arange(model.n_rows + 1))
    for i in range(model.n_rows):
        lo_idx, hi_idx = bounds[i], bounds[i + 1]
        if lo_idx == hi_idx:
            continue
        k = model.row_scale[i]
        lo, hi = model.row_lo[i], model.row_hi[i]
        coeffs = vals[lo_idx:hi_idx] * k / model.col_scale[cols[lo_idx:hi_idx]]
        if not math.isfinite(lo) and (coeffs >= 0).all():
            # A packing row (GPUs, power cap) over non-negative columns: round coefficients up
            # (past float noise), so that every integer solution also keeps the exact kW cap.
            # Rounding to nearest could pack loads a fraction of a watt over the cap, and the
            # checker would then reject the plan.
            coeffs = np.ceil(coeffs - 1e-6)
        else:
            coeffs = np.rint(coeffs)
        expr = cp_model.LinearExpr.weighted_sum(
            [variables[c] for c in cols[lo_idx:hi_idx]], coeffs.astype(np.int64).tolist())
        if lo == hi:
            cp.add(expr == int(round(lo * k)))
        else:
            if math.isfinite(hi):
                cp.add(expr <= int(math.floor(hi * k + 1e-6)))
            if math.isfinite(lo):
                cp.add(expr >= int(math.ceil(lo * k - 1e-6)))
    nz = np.flatnonzero(model.cost != 0)
    cp.minimize(cp_model.LinearExpr.weighted_sum(
        [variables[c] for c in nz], (model.cost[nz] / model.col_scale[nz]).tolist()))
    return cp, variables


def _watch(solver, stop_flag, finished: threading.Event) -> None:
    """Stop the search from outside as soon as stop_flag() turns true (CP-SAT allows this)."""
    while not finished.wait(0.05):
        if stop_flag():
            solver.stop_search()
            return


class _Progress:
    """CP-SAT solution callback that reports improvements and honours an external stop flag."""

    def __new__(cls, cp_model, on_progress, started, offset, stop_flag, variables, scales):
        class Callback(cp_model.CpSolverSolutionCallback):
            def on_solution_callback(self) -> None:
                if on_progress is not None:
                    values = np.array([self.value(v) for v in variables], dtype=float) / scales
                    on_progress(self.objective_value + offset, self.best_objective_bound + offset,
                                time.monotonic() - started, values)
                if stop_flag is not None and stop_flag():
                    self.stop_search()

        return Callback()
