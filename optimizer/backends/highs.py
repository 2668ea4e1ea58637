"""HiGHS (branch and cut) on the array model, passed straight in as a column-wise matrix."""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable

import numpy as np

from gridshift.optimizer.backends import BackendResult, ProgressCallback
from gridshift.optimizer.milp import MilpModel

# Objective units (kg, currency) below which two values count as equal.
ABSOLUTE_GAP = 1e-9

SMALL_MODEL_COLUMNS = 5_000
_banner_lock = threading.Lock()
_banner_shown = False


def new_highs():
    """A Highs instance. The library prints a banner to stdout (fd 1) the first time one is
    made in a process, which would corrupt JSON written to stdout; that first time, fd 1 is
    pointed at /dev/null while the object is built."""
    import highspy

    global _banner_shown
    with _banner_lock:
        if _banner_shown:
            return highspy.Highs()
        sys.stdout.flush()
        saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 1)
            h = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(devnull)
            _banner_shown = True
        return h


_scheduler_lock = threading.Lock()
_scheduler_threads = 0     # threads of HiGHS's process-wide scheduler (0: not made yet)
_scheduler_users = 0       # runs using it now
_scheduler_callers: set[int] = set()   # Python threads that have run HiGHS in this process


def _claim_scheduler(highspy, wanted: int) -> int:
    """The thread count to run with. HiGHS keeps one thread scheduler per process, made by the
    first run with that run's `threads`; a later run that asks for another count fails at once
    (model status "Not Set") instead of solving. Rebuilding it fixes that for the thread that
    rebuilds it, but every other thread that ran HiGHS before then fails the same way ever
    after (seen in a server: one gRPC thread's rebuild broke the next tiny solve in another).
    So the scheduler is rebuilt for a new count only while no run is using it and no other
    thread has ever run HiGHS here (the solver worker processes, which honour every count);
    otherwise it is shared, its count kept."""
    global _scheduler_threads, _scheduler_users
    with _scheduler_lock:
        caller = threading.get_ident()
        _scheduler_callers.add(caller)
        if _scheduler_threads and wanted != _scheduler_threads:
            if _scheduler_users == 0 and _scheduler_callers == {caller}:
                highspy.Highs.resetGlobalScheduler(True)
            else:
                wanted = _scheduler_threads
        _scheduler_threads = wanted
        _scheduler_users += 1
        return wanted


def _release_scheduler() -> None:
    global _scheduler_users
    with _scheduler_lock:
        _scheduler_users -= 1


def solve_highs(model: MilpModel, *, time_limit_s: float, relative_gap: float, workers: int = 0,
                seed: int = 0, hint: np.ndarray | None = None,
                on_progress: ProgressCallback | None = None, relax: bool = False,
                stop_flag: Callable[[], bool] | None = None,
                presolve: bool = True, lp_solver: str = "choose") -> BackendResult:
    """Solve with HiGHS; honours the time limit, gap, thread count, seed and a warm start.
    With `relax`, integrality is dropped and the LP relaxation's optimum is the bound;
    `lp_solver="ipm"` solves it by interior point without crossover (far less memory and time
    on models with millions of columns).
    `stop_flag` is polled by HiGHS's interrupt callbacks (best effort: some phases do not
    poll; optimizer.backends.isolated enforces hard stops).

    The objective reported is always that of the solution vector returned: HiGHS (seen with
    1.16, presolve on and a warm start) can report the objective of a solution it found
    while handing back an older vector. Then the model is solved again without presolve,
    from that vector, for the time left."""
    import highspy

    started = time.monotonic()
    h = new_highs()
    _set_options(h, model, time_limit_s, relative_gap, seed, presolve, relax, lp_solver)
    threads = _claim_scheduler(highspy, int(workers or os.cpu_count() or 1))
    h.setOptionValue("threads", threads)
    lp = _to_lp(model, highspy)
    if relax:
        lp.integrality_ = []
    h.passModel(lp)
    if hint is not None and not relax:
        sol = highspy.HighsSolution()
        sol.col_value = list(map(float, hint))
        sol.value_valid = True
        h.setSolution(sol)
    _subscribe(h, model, started, on_progress, stop_flag)
    try:
        h.run()
    finally:
        _release_scheduler()
    result = _result(h, highspy, model, time.monotonic() - started)
    if relax and result.status == "optimal":
        result.best_bound = result.objective
        if h.getInfo().dual_solution_status == 2:   # kSolutionStatusFeasible
            result.reduced_costs = np.asarray(h.getSolution().col_dual)
    if result.values is None or relax:
        return result
    actual = float(model.cost @ result.values + model.offset)
    if math.isclose(actual, result.objective, rel_tol=1e-7, abs_tol=1e-9):
        return result
    left = time_limit_s - (time.monotonic() - started)
    if presolve and left > 0.05:
        retry = solve_highs(model, time_limit_s=left, relative_gap=relative_gap,
                            workers=workers, seed=seed, hint=result.values,
                            on_progress=on_progress, stop_flag=stop_flag, presolve=False)
        retry.wall_seconds = time.monotonic() - started
        retry.best_bound = max(retry.best_bound, result.best_bound)
        return retry
    reported = result.objective
    result.objective = actual
    if result.status == "optimal":
        result.status = "feasible"
    result.detail += (f" (HiGHS reported objective {reported:.6g} for a solution whose own "
                      f"objective is {actual:.6g}, and no time was left to solve again "
                      "without presolve: the solution's own objective is used, and it is "
                      "not called optimal)")
    return result


def _set_options(h, model: MilpModel, time_limit_s: float, relative_gap: float, seed: int,
                 presolve: bool, relax: bool, lp_solver: str) -> None:
    """Time limit, gaps, seed, presolve and the LP method of one run."""
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", max(0.01, float(time_limit_s)))
    h.setOptionValue("mip_rel_gap", float(relative_gap))
    if model.n_cols <= SMALL_MODEL_COLUMNS:
        # Small models are closed at the root node; a small cut pool makes that 2x faster
        # (measured on the 50-job latency instance: 0.35 s -> 0.17 s).
        h.setOptionValue("mip_pool_soft_limit", 1)
    # The default absolute gap (1e-6) would end the search early on small objectives: the
    # relative gap asked for is the stopping rule.
    h.setOptionValue("mip_abs_gap", ABSOLUTE_GAP)
    h.setOptionValue("random_seed", int(seed))
    if not presolve:
        h.setOptionValue("presolve", "off")
    if relax and lp_solver != "choose":
        h.setOptionValue("solver", lp_solver)
        if lp_solver == "ipm":
            h.setOptionValue("run_crossover", "off")


def _subscribe(h, model: MilpModel, started: float, on_progress: ProgressCallback | None,
               stop_flag: Callable[[], bool] | None) -> None:
    """Report improving solutions to ``on_progress``; poll ``stop_flag`` in HiGHS's
    interrupt callbacks."""
    if on_progress is not None:
        def report(event) -> None:
            data = event.data_out
            values = np.array(data.mip_solution, dtype=float)
            on_progress(float(model.cost @ values + model.offset), data.mip_dual_bound,
                        time.monotonic() - started, values)
        h.cbMipImprovingSolution.subscribe(report)
    if stop_flag is not None:
        def interrupt(event) -> None:
            if stop_flag():
                event.data_in.user_interrupt = True
        for name in ("cbMipInterrupt", "cbSimplexInterrupt", "cbIpmInterrupt"):
            getattr(h, name).subscribe(interrupt)


def _to_lp(model: MilpModel, highspy):
    order = np.lexsort((model.a_row, model.a_col))
    cols, rows, vals = model.a_col[order], model.a_row[order], model.a_val[order]
    starts = np.searchsorted(cols, np.arange(model.n_cols + 1)).astype(np.int32)
    lp = highspy.HighsLp()
    lp.num_col_ = model.n_cols
    lp.num_row_ = model.n_rows
    lp.col_cost_ = model.cost
    lp.col_lower_ = model.lower
    lp.col_upper_ = model.upper
    lp.row_lower_ = np.where(np.isfinite(model.row_lo), model.row_lo, -highspy.kHighsInf)
    lp.row_upper_ = np.where(np.isfinite(model.row_hi), model.row_hi, highspy.kHighsInf)
    lp.offset_ = model.offset
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = starts
    lp.a_matrix_.index_ = rows.astype(np.int32)
    lp.a_matrix_.value_ = vals
    lp.integrality_ = [highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
                       for i in model.integer]
    return lp


def _result(h, highspy, model: MilpModel, wall: float) -> BackendResult:
    status = h.getModelStatus()
    info = h.getInfo()
    has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
    values = np.asarray(h.getSolution().col_value) if has_solution else None
    bound = info.mip_dual_bound if math.isfinite(info.mip_dual_bound) else -math.inf
    objective = info.objective_function_value if has_solution else math.nan
    name = h.modelStatusToString(status)
    if status == highspy.HighsModelStatus.kOptimal:
        kind = "optimal"
    elif status == highspy.HighsModelStatus.kInfeasible:
        kind = "infeasible"
    elif has_solution:
        kind = "feasible"
    else:
        kind = "no_solution"
    return BackendResult(kind, values, objective, bound, wall, f"HiGHS: {name}")
