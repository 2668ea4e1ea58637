"""The solve pipeline: diagnose, construct, solve exactly with a warm start, verify.

1. Jobs that fit nowhere even alone are named (INFEASIBLE unless partial plans are allowed).
2. The construction heuristic gives a plan in well under a second.
3. If it leaves jobs out, an exact phase-1 model finds the most jobs that fit together; the
   ones left out are named with a small conflicting set.
4. The chosen exact backend improves the plan under the request's time limit and reports its
   bound; the better of the heuristic and exact plans is returned.
5. The independent checker verifies the plan; its figures are what the response reports.

Progress goes to ``on_progress`` as events (dicts with ``kind`` and ``elapsed_s``, seconds
since the solve began): ``first_plan``, ``heuristic`` and ``incumbent`` carry an
``objective`` (and ``best_bound``); ``phase`` marks the end of one phase of the pipeline
(``phase``: diagnosis, construction, explanation, improvement, stability, check, baseline;
``seconds``: its wall time; ``ok``: False when it raised), which tracing turns into spans.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from gridshift.optimizer import diagnosis, greedy, insertion_kernels
from gridshift.optimizer.accounting import PlanFigures, figures, plan_objective
from gridshift.optimizer.backends import BackendResult
from gridshift.optimizer.baseline import fifo_baseline
from gridshift.optimizer.checker import check_plan
from gridshift.optimizer.domain import Backend
from gridshift.optimizer.errors import CancelledError
from gridshift.optimizer.milp import build_milp
from gridshift.optimizer.plan import Plan
from gridshift.optimizer.portfolio import EXACT_ALONE_MAX_COLUMNS, estimate_columns, improve_plan
from gridshift.optimizer.problem import Problem
from gridshift.optimizer.stability import Stability, keep_announced

# Chosen by bench/solver.py: see README "Benchmarks".
DEFAULT_BACKEND = Backend.HIGHS
# Models at least this large are solved in a killable child process.
ISOLATE_MIN_COLUMNS = 2000
#: Least time left (seconds) once the whole model is built for its solve in a worker process
#: to be worth starting. Measured: a worker given 0.14 s (a 1 s call on 120 jobs x 288
#: five-minute slots, whose model took 0.58 s to build) returned 0.6 s later, after its
#: start-up and a presolve that does not stop at the limit.
EXACT_IN_WORKER_MIN_S = 0.3
#: Seconds to build the whole model, per estimated column (portfolio.estimate_columns), for
#: the check before building it. Measured: 11-20 us per column on one idle core (92,000
#: columns in 1.35 s); 25 leaves room for a core shared with a search. A 1 s call on 1,000
#: jobs x 6 sites x 96 slots built its model for 1.3 s past the limit and returned in 3.0 s.
BUILD_S_PER_COLUMN = 25e-6
#: Models of at least this many columns (those too large for the exact backend alone), under
#: a limit of at least this many seconds, load the compiled insertion kernels before their
#: construction (see _load_kernels_early), and wait for them at most this share of the
#: limit, and at most this long (seconds).
EARLY_KERNELS_MIN_COLUMNS, EARLY_KERNELS_MIN_LIMIT_S = EXACT_ALONE_MAX_COLUMNS, 2.0
EARLY_KERNELS_WAIT_SHARE, EARLY_KERNELS_WAIT_MAX_S = 0.15, 1.5
#: Time kept at the end to check the plan and compute the FIFO baseline: this long per job
#: and site, at most this share of the limit. Measured: 0.9-1.4 s on 10,000 jobs x 10 sites
#: after a search (0.9 s alone); 1e-5 with at most 10 % of the limit ended xlarge's 10 s
#: calls at 10.0-10.5 s.
FINISH_S_PER_JOB_SITE, FINISH_RESERVE_SHARE = 1.5e-5, 0.15

ProgressSink = Callable[[dict], None]


class PlanCheckError(AssertionError):
    """A solver produced a plan that the independent checker rejects (a bug)."""


@dataclass
class SolveResult:
    """A verified plan with its status, solver report, figures and the FIFO baseline."""

    problem: Problem
    plan: Plan
    status: str                 # "OPTIMAL" | "FEASIBLE" | "INFEASIBLE"
    backend: str
    objective: float
    best_bound: float
    gap: float
    wall_seconds: float
    detail: str
    figures: PlanFigures
    baseline: Plan
    baseline_figures: PlanFigures
    conflicts: dict[int, list[int]] = field(default_factory=dict)
    #: Why jobs were left out, by capacity: a few lines (empty when every job is placed).
    explanations: list[str] = field(default_factory=list)
    #: Jobs with an announced placement, and how many this plan moves (None: none announced).
    stability: Stability | None = None
    # Emissions over forecast scenarios (set by the caller that samples them).
    risk: dict | None = None


def solve(problem: Problem, on_progress: ProgressSink | None = None,
          stop_flag: Callable[[], bool] | None = None,
          time_limit_s: float | None = None) -> SolveResult:
    """Plan `problem` under its options (or an explicit, shorter time limit)."""
    started = time.monotonic()
    opts = problem.options
    limit = opts.time_limit_seconds if time_limit_s is None else time_limit_s
    deadline = started + limit
    backend = DEFAULT_BACKEND if opts.backend == Backend.AUTO else opts.backend
    notes: list[str] = []
    emit = _progress_emitter(on_progress, started)

    with _phase(emit, "diagnosis"):
        unscheduled = {j: f"cannot be placed alone: {why}"
                       for j, why in diagnosis.alone_infeasible(problem, stop_flag).items()}
    candidates = [j for j in range(problem.n_jobs) if j not in unscheduled]
    with _phase(emit, "construction"):
        plan, first_pass_left_out = _construct(problem, candidates, backend, limit, deadline,
                                               notes, emit, stop_flag)
    _stop_if_asked(stop_flag, "its first plan was built")
    with _phase(emit, "explanation"):
        explanation = _explain_unplaced(problem, plan, candidates, unscheduled,
                                        min(deadline, time.monotonic() + EXPLAIN_SHARE * limit))
    _stop_if_asked(stop_flag, "its left-out jobs were explained")
    conflicts, explanations = explanation
    if unscheduled and not opts.allow_partial:
        return _finish(problem, Plan(unscheduled=unscheduled), "INFEASIBLE", backend,
                       math.nan, started, "; ".join(notes) or "jobs cannot be placed", conflicts,
                       explanations, emit)
    placed = sorted(plan.placements)
    plan.unscheduled = {}
    status, detail = "FEASIBLE", "construction heuristic"
    bound = -math.inf
    # Keep time to verify the plan and compute the baseline (about linear in the size).
    finish_reserve = min(FINISH_RESERVE_SHARE * limit,
                         0.05 + FINISH_S_PER_JOB_SITE * problem.n_jobs * problem.n_sites)
    with _phase(emit, "improvement"):
        if backend == Backend.GREEDY:
            bound, detail = _heuristic_bound(problem, placed, plan, deadline)
        if backend != Backend.GREEDY and placed:
            columns = estimate_columns(problem, placed)

            def run_exact(until: float, stop, start: Plan | None = None
                          ) -> tuple[BackendResult, Plan | None]:
                return _exact(problem, placed, columns, start or plan, backend, until, stop,
                              emit)

            better = improve_plan(problem, placed, plan, backend, deadline - finish_reserve,
                                  run_exact, stop_flag, emit,
                                  first_pass_left_out=first_pass_left_out, columns=columns)
            plan, detail = better.plan, better.detail
            bound = max(bound, better.bound)
            status = "OPTIMAL" if better.optimal else "FEASIBLE"
    plan.unscheduled = unscheduled
    _stop_if_asked(stop_flag, "it was being solved")
    stability = None
    if problem.announced:
        with _phase(emit, "stability"):
            plan, stability = keep_announced(problem, plan,
                                             time.monotonic() + max(0.05, 0.02 * limit))
        if stability.restored:
            status = "FEASIBLE"    # the search's optimum was traded for stability
    result = _finish(problem, plan, status, backend, bound, started,
                     "; ".join([detail, *notes]), conflicts, explanations, emit)
    result.stability = stability
    return result


def _load_kernels_early(problem: Problem, candidates: list[int], limit_s: float,
                        deadline: float) -> None:
    """Load the compiled insertion kernels (numba's disk cache, once per process) as soon as
    a large model's first plan is out: the rest of its construction then runs compiled,
    and ruin and recreate does not wait for them later. Without the disk cache they compile
    for about 30 s: the wait is bounded, and they go on loading in the background meanwhile.

    Measured (10 s, 2 cores): the 10,000-job construction took 6-7.5 s on NumPy, which had
    pushed the call past its limit. Loaded before the first construction, the first plan
    of a 2,000-job model came at 1.1 s instead of 0.5 s; medium models (200 jobs) gain
    nothing: their construction takes 0.4 s on NumPy and the load about 0.6 s (loading in a
    background thread instead only slows the construction: the load holds the
    interpreter). No wait past the call's ``deadline``: a first plan that late is returned
    as it is."""
    wait_s = min(EARLY_KERNELS_WAIT_MAX_S, EARLY_KERNELS_WAIT_SHARE * limit_s,
                 deadline - time.monotonic())
    if (limit_s >= EARLY_KERNELS_MIN_LIMIT_S and wait_s > 0
            and estimate_columns(problem, candidates) >= EARLY_KERNELS_MIN_COLUMNS):
        insertion_kernels.kernels_within(wait_s)


def _stop_if_asked(stop_flag: Callable[[], bool] | None, after: str) -> None:
    """CancelledError when the caller gave up (checked between the phases, so that an
    abandoned call does not go on to the checker and the baseline)."""
    if stop_flag is not None and stop_flag():
        raise CancelledError(f"the call ended after {after}")


@contextmanager
def _phase(emit: Callable[..., None], name: str) -> Iterator[None]:
    """Reports the phase ``name`` as a ``phase`` event when it ends, with its wall time
    (``seconds``) and whether it finished (``ok``; False when it raised)."""
    began = time.monotonic()
    ok = False
    try:
        yield
        ok = True
    finally:
        emit("phase", phase=name, seconds=time.monotonic() - began, ok=ok)


def _progress_emitter(on_progress: ProgressSink | None,
                      started: float) -> Callable[..., None]:
    """``emit(kind, **data)``: progress events with the elapsed time, thread-safe."""
    best_reported = [math.inf]
    emitting = threading.Lock()

    def emit(kind: str, **data) -> None:
        if on_progress is None:
            return
        with emitting:
            if kind == "incumbent" and data.get("objective") is not None:
                # Two searches (exact with LNS or with LP-guided rounds) run at once; a client
                # sees each improvement of the best plan so far, never a worse one found by
                # the other.
                if data["objective"] >= best_reported[0]:
                    return
                best_reported[0] = data["objective"]
            on_progress({"kind": kind, "elapsed_s": time.monotonic() - started, **data})

    return emit


def _construct(problem: Problem, candidates: list[int], backend: Backend, limit: float,
               deadline: float, notes: list[str], emit: Callable[..., None],
               stop_flag: Callable[[], bool] | None) -> tuple[Plan, int]:
    """The first plan: the construction heuristic and, where it leaves jobs out, an exact
    search for the most jobs that fit together (phase 1); and how many jobs the heuristic's
    first pass left out (see greedy.greedy_plan's ``on_first_pass``)."""
    def on_first_plan(first: Plan) -> None:
        emit("first_plan", objective=plan_objective(problem, first),
             unplaced=len(first.unscheduled))
        _load_kernels_early(problem, candidates, limit, deadline)

    first_pass: list[Plan] = []
    plan = greedy.greedy_plan(problem, min(2.0, 0.15 * limit), problem.options.random_seed,
                              set(candidates), on_first_plan=on_first_plan, stop=stop_flag,
                              restarts_until=deadline, on_first_pass=first_pass.append)
    left_out = len(first_pass[0].unscheduled) if first_pass else 0
    emit("heuristic", objective=plan_objective(problem, plan), unplaced=len(plan.unscheduled))
    if time.monotonic() >= deadline:
        notes.append(f"the construction alone took the whole time limit ({limit:g} s): a "
                     f"longer limit lets the solver improve its plan")
    if not plan.unscheduled:
        return plan, left_out
    # Only an exact model proves that jobs cannot all fit: the heuristic may just have packed
    # them badly. With the GREEDY backend, phase 1 runs on HiGHS for that proof, and its
    # packing is then improved by the heuristic's local search.
    prover = Backend.HIGHS if backend == Backend.GREEDY else backend
    if estimate_columns(problem, candidates) > EXACT_ALONE_MAX_COLUMNS:
        plan = _repair_by_neighbourhoods(problem, plan, prover, deadline, notes)
    else:
        plan = _most_jobs(problem, plan, candidates, prover, deadline, notes, stop_flag)
    if backend == Backend.GREEDY:
        plan = greedy.improve(problem, plan, time.monotonic() + min(0.5, 0.1 * limit))
    return plan, left_out


def _explain_unplaced(problem: Problem, plan: Plan, candidates: list[int],
                      unscheduled: dict[int, str], until: float
                      ) -> tuple[dict[int, list[int]], list[str]]:
    """Add to ``unscheduled`` why each job the plan leaves out is left out, by ``until``.

    A few left-out jobs in a small model get exact conflicting sets (a deletion filter, called
    minimal only when proven). Otherwise — many jobs left out, a large model, or no time left
    — the explanation is by capacity: the site sets and windows where the jobs that can only
    run there ask for more GPU-hours than there are (a few lines, returned for the response),
    and each left-out job points at the one it belongs to. Returns (conflict sets, lines)."""
    left_out = sorted(plan.unscheduled, key=lambda j: problem.job_ids[j])
    if not left_out:
        return {}, []
    overloads = diagnosis.capacity_overloads(problem, candidates)
    lines = [_overload_line(problem, o, left_out) for o in overloads]
    conflicts: dict[int, list[int]] = {}
    exact = (len(left_out) <= EXACT_EXPLAIN_MAX_JOBS
             and estimate_columns(problem, candidates) <= EXACT_ALONE_MAX_COLUMNS)
    for k, j in enumerate(left_out):
        remaining = until - time.monotonic()
        if exact and remaining > 0.1:
            members, minimal = diagnosis.conflict_set(problem, j, set(unscheduled),
                                                      budget_s=remaining / (len(left_out) - k))
            if not members:    # nothing proven: said as such, by capacity
                unscheduled[j] = _capacity_reason(problem, j, overloads)
                continue
            conflicts[j] = members
            names = ", ".join(problem.job_ids[m] for m in members)
            unscheduled[j] = (f"left out: {'minimal ' if minimal else ''}conflicting set "
                              f"{{{names}}}: they cannot all run together (proven; "
                              f"{diagnosis.demand_note(problem, members)})")
            continue
        unscheduled[j] = _capacity_reason(problem, j, overloads)
    return conflicts, lines


#: Exact conflicting sets are searched for at most this many left-out jobs; more are
#: explained by capacity (a set per job took seconds each and ran far past the time limit).
EXACT_EXPLAIN_MAX_JOBS = 3
#: Share of the time limit the explanation of left-out jobs may take.
EXPLAIN_SHARE = 0.15


def _window_text(problem: Problem, first: int, end: int) -> str:
    """``2026-06-15 06:00 to 18:00 UTC``, or both dates when the window spans midnight."""
    start, stop = problem.slot_time(first), problem.slot_time(end)
    until = f"{stop:%H:%M}" if stop.date() == start.date() else f"{stop:%Y-%m-%d %H:%M}"
    return f"{start:%Y-%m-%d %H:%M} to {until} UTC"


def _sites_text(problem: Problem, sites: tuple[int, ...]) -> str:
    names = [problem.site_ids[s] for s in sites]
    return (f"site {names[0]}" if len(names) == 1 else
            "all sites" if len(names) == problem.n_sites and len(names) > 2 else
            "sites " + ", ".join(names))


def _overload_line(problem: Problem, o: diagnosis.Overload, left_out: list[int]) -> str:
    h = problem.slot_hours
    out = sum(1 for j in o.jobs if j in set(left_out))
    return (f"oversubscribed: {_sites_text(problem, o.sites)} from "
            f"{_window_text(problem, o.first_slot, o.end_slot)}: the {len(o.jobs)} jobs that "
            f"can only run there then need {o.demand_gpu_slots * h:,.1f} GPU-hours, there are "
            f"{o.capacity_gpu_slots * h:,.1f} ({o.ratio:.2f}x); {out} of them left out")


def _capacity_reason(problem: Problem, j: int, overloads: list[diagnosis.Overload]) -> str:
    mine = [o for o in overloads if j in o.jobs]
    if not mine:
        return ("left out: no room found beside the placed jobs within the time limit (not "
                "proven infeasible: more time may place it)")
    o = max(mine, key=lambda o: o.ratio)
    where = _window_text(problem, o.first_slot, o.end_slot)
    return (f"left out: one of {len(o.jobs)} jobs competing for "
            f"{_sites_text(problem, o.sites)} from {where}, which they oversubscribe "
            f"{o.ratio:.2f}x in GPU-hours (see the capacity lines)")


def _heuristic_bound(problem: Problem, jobs: list[int], plan: Plan,
                     deadline: float) -> tuple[float, str]:
    """The bound reported with the heuristic alone: the Lagrangian relaxation within a short
    budget (vectorised; the per-job loop of `_independent_bound` is too slow at scale)."""
    from gridshift.optimizer.lagrangian import lagrangian_bound
    from gridshift.optimizer.portfolio import restricted

    if not jobs:
        return -math.inf, "construction heuristic"
    budget = max(0.05, min(1.0, 0.5 * (deadline - time.monotonic())))
    lag = lagrangian_bound(restricted(problem, jobs), plan_objective(problem, plan), budget)
    return lag.bound, (f"construction heuristic; bound: Lagrangian relaxation "
                       f"({lag.iterations} subgradient steps)")


def _independent_bound(problem: Problem, jobs: list[int]) -> float:
    """Sum of each job's cheapest placement on an empty fleet. Valid when every grid cost
    weight is non-negative (grid draw is superadditive in load); -inf otherwise. No longer
    reported (the Lagrangian bound is at least as strong); kept as the reference bound that
    tests/test_properties.py checks against brute force."""
    if (problem.grid_cost_per_kwh() < 0).any():
        return -math.inf
    empty = greedy._State.empty(problem)
    total = 0.0
    for j in jobs:
        found = greedy.best_placement(problem, empty, j)
        total += found[1] if found else 0.0
        total -= problem.objective.delay_weight * problem.priority[j] * (
            problem.earliest_hours[j] + problem.duration_minutes[j] / 60.0)
    return total


def _run_backend(backend: Backend, model, hint, deadline: float, problem: Problem,
                 stop_flag=None, on_progress=None) -> BackendResult:
    """Run an exact backend under the deadline. Models past ISOLATE_MIN_COLUMNS run in a
    child process that is killed on cancellation or overrun (see backends/isolated.py);
    tiny ones, which finish in milliseconds, run in-process."""
    from gridshift.optimizer.backends.cpsat import solve_cpsat
    from gridshift.optimizer.backends.highs import solve_highs
    from gridshift.optimizer.backends.isolated import solve_isolated

    opts = problem.options
    kwargs = dict(time_limit_s=max(0.05, deadline - time.monotonic()),
                  relative_gap=opts.relative_gap, workers=opts.workers, seed=opts.random_seed,
                  hint=hint, on_progress=on_progress, stop_flag=stop_flag)
    name = "cpsat" if backend == Backend.CPSAT else "highs"
    if model.n_cols >= ISOLATE_MIN_COLUMNS:
        return solve_isolated(name, model, **kwargs)
    return (solve_cpsat if name == "cpsat" else solve_highs)(model, **kwargs)


def _repair_by_neighbourhoods(problem: Problem, plan: Plan, backend: Backend, deadline: float,
                              notes: list[str]) -> Plan:
    """Large models: place left-out jobs by exact re-packing of their neighbourhoods (a full
    phase-1 model would not fit the time). Jobs still left out are not proven infeasible."""
    from gridshift.optimizer.lns import repair_unplaced
    from gridshift.optimizer.portfolio import lns_sub_solver

    budget = time.monotonic() + 0.4 * max(0.0, deadline - time.monotonic())
    repaired = repair_unplaced(problem, plan, budget, lns_sub_solver(backend),
                               seed=problem.options.random_seed)
    if repaired.unscheduled:
        notes.append("large model: jobs left out by neighbourhood re-packing are not proven "
                     "to be infeasible")
    return repaired


def _most_jobs(problem: Problem, plan: Plan, candidates: list[int], backend: Backend,
               deadline: float, notes: list[str], stop_flag=None) -> Plan:
    """Phase 1: the largest set of jobs that fit together (exact, warm-started)."""
    model = build_milp(problem, candidates, partial=True, count_objective=True)
    budget = time.monotonic() + 0.5 * max(0.0, deadline - time.monotonic())
    result = _run_backend(backend, model, model.encode(plan), budget, problem, stop_flag)
    if result.values is None:
        notes.append("phase 1 found no better packing than the heuristic")
        return plan
    packed = model.decode(result.values)
    def left_out(p: Plan) -> tuple[int, float]:
        return len(p.unscheduled), greedy.left_out_gpu_hours(problem, p)

    if left_out(packed) > left_out(plan):
        return plan
    if result.status != "optimal":
        notes.append("phase 1 (most jobs placed) stopped at its time limit: jobs left out may "
                     "fit with more time")
    return packed


def _exact(problem: Problem, jobs: list[int], columns: int, start: Plan, backend: Backend,
           deadline: float, stop_flag, emit) -> tuple[BackendResult, Plan | None]:
    """The whole model over `jobs` (`columns`: its estimated size) with the exact backend,
    warm-started from `start`, until `deadline`: its result and the plan decoded from it
    (None where it has none, or the checker rejects it)."""
    began = time.monotonic()
    name = backend.exact_solver_name
    build_s = BUILD_S_PER_COLUMN * columns
    if columns >= ISOLATE_MIN_COLUMNS and deadline - began < build_s + EXACT_IN_WORKER_MIN_S:
        return _not_run(name, began, f"{max(0.0, deadline - began):.2f} s left, about "
                                     f"{build_s:.1f} s to build the model and "
                                     f"{EXACT_IN_WORKER_MIN_S:.1f} s at least to run it"), None
    model = build_milp(problem, jobs)
    left_s = deadline - time.monotonic()
    if model.n_cols >= ISOLATE_MIN_COLUMNS and left_s < EXACT_IN_WORKER_MIN_S:
        return _not_run(name, began,
                        f"{max(0.0, left_s):.2f} s left once the model was built"), None

    def progress(objective: float, bound: float, elapsed: float, values=None) -> None:
        emit("incumbent", objective=objective, best_bound=bound)

    result = _run_backend(backend, model, model.encode(start), deadline, problem,
                          stop_flag=stop_flag, on_progress=progress)
    if result.values is None:
        return result, None
    candidate = model.checked_decode(result.values)
    if candidate is None:
        result.detail += " (solution rejected by the checker; heuristic plan kept)"
        return result, None
    return result, candidate


def _not_run(name: str, began: float, why: str) -> BackendResult:
    """The exact backend's result where there was no time to run it."""
    return BackendResult("no_solution", None, math.nan, -math.inf, time.monotonic() - began,
                         f"{name}: not run ({why})")


def _finish(problem: Problem, plan: Plan, status: str, backend: Backend, bound: float,
            started: float, detail: str, conflicts, explanations: list[str],
            emit: Callable[..., None]) -> SolveResult:
    with _phase(emit, "check"):
        check = check_plan(problem, plan)
        if status != "INFEASIBLE" and not check.ok:
            raise PlanCheckError("; ".join(check.violations[:5]))
        plan_figures = figures(problem, plan)
    with _phase(emit, "baseline"):
        base = fifo_baseline(problem)
        base_figures = figures(problem, base)
    objective = math.nan if status == "INFEASIBLE" else plan_figures.totals.objective(problem)
    if math.isfinite(objective) and math.isfinite(bound):
        bound = min(bound, objective)
        gap = (objective - bound) / max(abs(objective), 1e-9)
    else:
        gap = math.nan if status == "INFEASIBLE" else math.inf
    return SolveResult(problem=problem, plan=plan, status=status, backend=backend.value.lower()
                       if backend != Backend.AUTO else "auto", objective=objective,
                       best_bound=bound, gap=gap, wall_seconds=time.monotonic() - started,
                       detail=detail, figures=plan_figures, baseline=base,
                       baseline_figures=base_figures, conflicts=conflicts,
                       explanations=explanations)
