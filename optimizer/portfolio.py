"""The improvement phase after construction, chosen by size.

- Small models go to the exact backend (it usually proves optimality at once); where it has
  not within a second, LP-guided restricted MIPs (optimizer/lp_guided.py) run beside it on the
  other core, then ruin and recreate for the time they leave, and the better plan wins.
- Mid-size and larger models run ruin and recreate on both cores (the day cut in two) for a
  share of the time, then large-neighbourhood search on both cores (`_recreate_first`); the
  exact backend on the whole model runs beside LNS only where no time was left for ruin and
  recreate.
- Where a short probe of ruin and recreate finds that capacity binds (jobs taken out often
  find no room again), the LP is weak and the whole model does not pay: small models stop it
  and run ruin and recreate on both cores (here and in a worker process), after the LP
  relaxation for the bound. A call too short for that needs no probe where the
  construction's first pass left many jobs out: the whole model is not built.
Every size gets the Lagrangian lower bound (optimizer/lagrangian.py), so each plan states an
honest gap; where the exact backend ran, its bound is used when it is higher.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gridshift.optimizer.accounting import plan_objective
from gridshift.optimizer.backends import BackendResult
from gridshift.optimizer.domain import Backend
from gridshift.optimizer.lagrangian import LagrangianResult, lagrangian_bound
from gridshift.optimizer.lns import PlanState, large_neighbourhood_search
from gridshift.optimizer.plan import Plan
from gridshift.optimizer.problem import Problem

# Estimated model columns up to which the exact backend runs alone / in a portfolio.
EXACT_ALONE_MAX_COLUMNS = 25_000
EXACT_PORTFOLIO_MAX_COLUMNS = 120_000


@dataclass
class Improvement:
    plan: Plan
    optimal: bool
    bound: float
    detail: str


def estimate_columns(problem: Problem, jobs: list[int]) -> int:
    """Columns of the time-indexed model for `jobs`, without building it."""
    n_sites = np.array([len(problem.allowed_sites[j]) for j in jobs])
    window = problem.last_slot[jobs] - problem.first_slot[jobs]
    starts = np.where(problem.interruptible[jobs], window + 1,
                      window - problem.duration_slots[jobs] + 1)
    return int((n_sites * np.maximum(starts, 1)).sum())


def restricted(problem: Problem, jobs: list[int]) -> Problem:
    """The problem with only `jobs` (for bounds over a partial plan's placed jobs)."""
    import dataclasses

    idx = np.asarray(jobs, dtype=np.int64)
    pick = {name: getattr(problem, name)[idx] for name in (
        "gpus", "power_kw", "duration_minutes", "duration_slots", "first_slot", "last_slot",
        "earliest_hours", "home_site", "interruptible", "min_run_slots", "priority")}
    if len(problem.committed):
        pick["committed"] = problem.committed[idx]
    new_index = {j: k for k, j in enumerate(jobs)}
    return dataclasses.replace(
        problem, job_ids=tuple(problem.job_ids[j] for j in jobs),
        job_teams=tuple(problem.job_teams[j] for j in jobs),
        allowed_sites=tuple(problem.allowed_sites[j] for j in jobs),
        announced={new_index[j]: a for j, a in problem.announced.items() if j in new_index},
        **pick)


def improve_plan(problem: Problem, jobs: list[int], plan: Plan, backend: Backend,
                 deadline: float, run_exact: Callable[..., tuple[BackendResult, Plan | None]],
                 stop_flag: Callable[[], bool] | None,
                 emit: Callable[..., None], first_pass_left_out: int = 0,
                 columns: int | None = None) -> Improvement:
    """Improve `plan` (every job in `jobs` placed) until `deadline`; see the module docstring.
    `run_exact(deadline, stop_flag[, start])` solves the whole model with the chosen backend.
    `first_pass_left_out`: the jobs the construction's first pass left out (where many were,
    capacity binds). `columns`: :func:`estimate_columns` of `jobs`, where the caller has it."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        # The construction took the whole call (thousands of jobs under a 1-3 s limit): its
        # plan is returned as it is; the set-up of LNS alone took 0.4 s on 5,000 jobs.
        return Improvement(plan, False, -math.inf,
                           "construction heuristic: no time was left to improve its plan")
    if columns is None:
        columns = estimate_columns(problem, jobs)
    emit = _improving_only(emit)

    def stopped() -> bool:
        return stop_flag is not None and stop_flag()
    small = columns <= EXACT_ALONE_MAX_COLUMNS or len(jobs) < 20
    # Small models: time kept at the end for a Lagrangian bound if the exact solve stops short.
    work_deadline = deadline - (max(0.05, min(0.5, 0.05 * remaining)) if small else 0.0)

    if small:
        if _construction_binds(len(jobs), columns, first_pass_left_out, work_deadline):
            return _improve_where_capacity_binds(problem, jobs, plan, backend, deadline,
                                                 work_deadline, first_pass_left_out, stopped,
                                                 emit)
        return _improve_small(problem, jobs, columns, plan, backend, deadline, work_deadline,
                              run_exact, stopped, emit)
    # The largest models get more subgradient steps: there the bound matters more than the
    # last fraction of a percent LNS finds.
    lag_share = 0.25 if columns > EXACT_PORTFOLIO_MAX_COLUMNS else 0.15
    # Large models: the Lagrangian bound first (it converges towards the LP bound, which is
    # too slow to solve here), and a plan rounded from its preferences as a second start.
    lag = lagrangian_bound(restricted(problem, jobs),
                           plan_objective(problem, plan),
                           time_budget_s=max(0.05, min(30.0, lag_share * remaining)),
                           stop=stopped)
    started_from = plan
    plan = _better_start(problem, jobs, plan, lag, deadline, lns_sub_solver(backend), stopped)
    if plan is not started_from:
        emit("incumbent", objective=plan_objective(problem, plan),
             best_bound=lag.bound if lag.valid else None)
    with_exact = columns <= EXACT_PORTFOLIO_MAX_COLUMNS
    return _race_lns_and_exact(problem, plan, backend, lag, with_exact, work_deadline,
                               run_exact, stop_flag, emit)


def _incumbent_reporter(emit: Callable[..., None]) -> Callable[[Plan, float], None]:
    """A search's ``on_improve`` that reports each better plan's objective as an incumbent."""
    def improved(_: Plan, value: float) -> None:
        emit("incumbent", objective=value, best_bound=None)

    return improved


def _bound_until(problem: Problem, jobs: list[int], plan: Plan, deadline: float,
                 stopped) -> LagrangianResult:
    """The Lagrangian bound for `plan` over `jobs`, with the time left until `deadline` (at
    least 0.05 s)."""
    return lagrangian_bound(restricted(problem, jobs), plan_objective(problem, plan),
                            time_budget_s=max(0.05, deadline - time.monotonic()), stop=stopped)


def _improving_only(emit: Callable[..., None]) -> Callable[..., None]:
    """``emit`` that passes an incumbent without a bound on only if it improves on every
    one before it: searches running side by side each report their own bests."""
    lock = threading.Lock()
    best = [math.inf]

    def guarded(kind: str, **data) -> None:
        value = data.get("objective")
        if kind == "incumbent" and value is not None and data.get("best_bound") is None:
            with lock:
                if value >= best[0]:
                    return
                best[0] = value
        elif kind == "incumbent" and value is not None:
            with lock:
                best[0] = min(best[0], value)
        emit(kind, **data)
    return guarded


def _race_lns_and_exact(problem: Problem, plan: Plan, backend: Backend, lag: LagrangianResult,
                        with_exact: bool, work_deadline: float,
                        run_exact: Callable[..., tuple[BackendResult, Plan | None]],
                        stop_flag: Callable[[], bool] | None,
                        emit: Callable[..., None]) -> Improvement:
    """LNS from ``plan`` until ``work_deadline``, beside the exact model on a thread of its
    own when ``with_exact`` (a proven optimum stops LNS); the better of the two, with the
    best bound known."""
    lns_stop = threading.Event()

    def stop_lns() -> bool:
        return lns_stop.is_set() or (stop_flag is not None and stop_flag())

    # Ruin and recreate on both cores first, then LNS (_recreate_first says why); the whole
    # model runs beside LNS only where no time was left for that.
    plan, recreate_note = _recreate_first(problem, plan, work_deadline, stop_lns, emit)
    with_exact = with_exact and not recreate_note
    exact: dict = {}
    worker = None
    if with_exact:
        def exact_run() -> None:
            exact["result"], exact["plan"] = run_exact(work_deadline, stop_flag)
            if exact["result"].status == "optimal":
                lns_stop.set()
        worker = threading.Thread(target=exact_run, daemon=True)
        worker.start()
    best = {"objective": plan_objective(problem, plan)}
    # LNS reports its own objective, which leaves out the delay term's constant; the shift
    # turns it into the plan's (recomputing a large plan's figures per step took 0.25 s).
    shift = best["objective"] - PlanState(problem, plan).objective()

    def on_improve(_: Plan, lns_objective: float) -> None:
        value = lns_objective + shift
        if value < best["objective"]:
            best["objective"] = value
            emit("incumbent", objective=value, best_bound=None)

    lns_plan, stats = large_neighbourhood_search(
        problem, plan, work_deadline, lns_sub_solver(backend), seed=problem.options.random_seed,
        parallel=1 if worker else 2, on_improve=on_improve, stop_flag=stop_lns)
    if worker is not None:
        worker.join()
    note = f"{recreate_note}{stats.summary()}"
    lag_note = _bound_note(lag)
    if worker is None:
        return Improvement(lns_plan, False, lag.bound, f"{note}; {lag_note}")
    result, exact_plan = exact["result"], exact["plan"]
    chosen = _pick(problem, lns_plan, exact_plan, result, lag.bound, lag_note)
    chosen.detail = f"portfolio: {chosen.detail}; {note}"
    return chosen


#: Share of the time left that ruin and recreate (on both cores, the day cut in two) gets
#: before LNS in a model of the portfolio's size or larger. Measured on tight large (2,000
#: jobs) at 60 s in one run: 7,776.7 kg at 0.5, 7,762.6 at 0.8, 7,761.0 at 1.0 (no LNS); 0.8
#: keeps LNS's exact moves for longer limits (300 s: 7,715.1).
RECREATE_BEFORE_LNS_SHARE = 0.8
#: Least time (seconds) left after the probe for which the search before LNS is worth it,
#: and at least this many times its set-up (each job's ideal cost at every site and start,
#: about RECREATE_SETUP_S_PER_CELL per job x site x slot: 1.7 s on 10,000 jobs x 10 sites x
#: 168 slots, which at 10 s would have overrun the limit).
RECREATE_FIRST_MIN_S, RECREATE_FIRST_SETUP_TIMES = 0.5, 5.0
RECREATE_SETUP_S_PER_CELL = 1.5e-7


def _recreate_first(problem: Problem, plan: Plan, work_deadline: float,
                    stopped: Callable[[], bool], emit: Callable[..., None]
                    ) -> tuple[Plan, str]:
    """Ruin and recreate on both cores (optimizer/time_split.py) for a share of the time
    left, before LNS takes over; the plan and a note for the detail line ("" where no time
    was left for it). A probe first says whether capacity binds (the note says so).

    Where capacity binds, the whole model neither finds a plan nor proves a bound in the time
    (tight large, 2,000 jobs: killed at 60 s with neither). Where it does not, ruin and
    recreate still gets far sooner to where LNS's exact moves pay: on the generous large
    benchmark (2,000 jobs, 10 sites) 5,312.4 kg at 60 s against 5,417.5 with LNS alone (and
    the whole model beside it on 600 jobs: 867.9 against 869.6 at 60 s)."""
    from gridshift.optimizer.time_split import split_search

    improved = _incumbent_reporter(emit)
    set_up_s = (RECREATE_SETUP_S_PER_CELL * problem.n_jobs * problem.n_sites
                * problem.n_slots)
    least_s = max(RECREATE_FIRST_MIN_S, RECREATE_FIRST_SETUP_TIMES * set_up_s)
    if work_deadline - time.monotonic() < least_s:
        return plan, ""         # no time for the search: LNS gets the probe's time too
    plan, probe = _probe(problem, plan, work_deadline, stopped, improved)
    left = work_deadline - time.monotonic()
    if stopped() or left < least_s:
        return plan, ""
    until = time.monotonic() + RECREATE_BEFORE_LNS_SHARE * left
    plan, stats = split_search(problem, plan, until, seed=problem.options.random_seed + 1,
                               stop=stopped, on_improve=improved)
    return plan, f"{_probe_verdict(probe)}: {stats.summary()}; then "


def _improve_small(problem: Problem, jobs: list[int], columns: int, plan: Plan,
                   backend: Backend, deadline: float, work_deadline: float, run_exact, stopped,
                   emit) -> Improvement:
    """The exact backend on the whole model; beside it, on the other core, LP-guided
    restricted MIPs (optimizer/lp_guided.py), which often get much closer to the optimum in
    seconds where the whole model does not close. The better plan wins.

    Where a probe finds that capacity binds, the whole model stops (it neither closes nor
    improves a plan there) and its core runs a second ruin-and-recreate search in a worker
    process, after the LP relaxation for the bound."""
    # CP-SAT improved none of its restricted rounds on the medium instance (0/5 in 10 s): the
    # search runs with HiGHS, whose root heuristics do the work.
    long_enough = work_deadline - time.monotonic() >= SEARCH_IN_WORKER_MIN_S
    guided_worth_it = backend == Backend.HIGHS and len(jobs) >= 20 and long_enough
    # Where the exact model runs in a worker process, the search starts at once: its probe
    # (ruin and recreate, in this process, half a second at most) stops as soon as the exact
    # backend proves optimality.
    at_once = columns >= SEARCH_AT_ONCE_MIN_COLUMNS
    # Under a short limit the rounds have no time, but ruin and recreate still does: beside
    # an exact backend in a worker process (an in-process one would share the interpreter).
    quick = (not guided_worth_it and len(jobs) >= 20 and at_once
             and work_deadline - time.monotonic() >= QUICK_SEARCH_MIN_S)
    proven = threading.Event()        # the exact backend proved its plan optimal
    exact_over = threading.Event()    # the exact backend returned, proven or not
    binding = threading.Event()
    guided: dict = {}
    searcher = None
    if guided_worth_it or quick:
        # Most small models are proven optimal within moments: the search starts only if
        # this one is not. It runs its solves in worker processes; the exact backend stays
        # in this thread (HiGHS in-process is not safe to call from a second thread).
        wait_s = min(1.0, 0.1 * (work_deadline - time.monotonic()))

        def on_binding(probed: Plan) -> None:
            guided["probed"] = probed
            binding.set()

        def search() -> None:
            if not at_once:
                exact_over.wait(wait_s)
            if not proven.is_set():
                guided["result"] = _local_and_guided(problem, jobs, plan, backend,
                                                     work_deadline,
                                                     lambda: proven.is_set() or stopped(), emit,
                                                     on_binding, short_limit=quick,
                                                     exact_gave_up=lambda: (
                                                         exact_over.is_set()
                                                         and not proven.is_set()))

        searcher = threading.Thread(target=search, daemon=True)
        searcher.start()
    result, exact_plan = run_exact(work_deadline, lambda: stopped() or binding.is_set())
    # Only a proof ends the search early: an exact backend that returned without one (not
    # run for want of time, or its worker failed) leaves the search the rest of the time.
    if result.status == "optimal":
        proven.set()
    exact_over.set()
    second = None
    if binding.is_set() and result.status != "optimal":
        # Stopped on purpose: the detail says why instead of the solver's "cancelled".
        result.detail = f"{result.detail.split(':')[0]}: stopped where capacity binds"
        if not quick:     # a short limit: no time to start a worker for a second search
            second = _second_search(problem, jobs, guided["probed"], work_deadline, stopped,
                                    emit)
    if searcher is not None:
        searcher.join()
    found = guided.get("result")
    start = found.plan if found is not None else plan
    if second is not None and plan_objective(problem, second[0]) < plan_objective(problem,
                                                                                   start):
        start = second[0]
    chosen = _pick(problem, start, exact_plan, result, -math.inf, "")
    if result.status != "optimal":
        lag = _bound_until(problem, jobs, chosen.plan, deadline, stopped)
        bound, note = lag.bound, _bound_note(lag)
        lp_bounds = [b for b in (found.lp_bound if found else -math.inf,
                                 second[1] if second else -math.inf) if b > bound]
        if lp_bounds:
            bound, note = max(lp_bounds), "bound: LP relaxation"
        chosen = _pick(problem, start, exact_plan, result, bound, note)
    # The search's detail is worth a place where it ran rounds or ruin and recreate (its
    # detail says "LP-guided search skipped: ..." then "ruin and recreate: ..." where
    # capacity binds).
    if found is not None and (found.rounds or "ruin and recreate" in found.detail):
        chosen.detail = f"{chosen.detail}; {found.detail}"
    if second is not None:
        chosen.detail = f"{chosen.detail}; {second[2]}"
    return chosen


#: Least time left (seconds) for the probe and ruin and recreate beside the exact backend
#: where the time is too short for the LP-guided rounds (_local_and_guided's short_limit).
QUICK_SEARCH_MIN_S = 0.2
#: Least time left (seconds) for the LP-guided rounds (and, where capacity binds, a second
#: search in a worker process).
SEARCH_IN_WORKER_MIN_S = 2.0
#: Share of the jobs that the construction's first pass (cost-first insertion) leaves out
#: above which a short call takes capacity to bind without a probe. Measured: 18-25 % on
#: the tight nights of 15-minute slots (bench/tight_instances.py; 4 % on 120 jobs over
#: 5-minute slots), 0-0.4 % on every generous shape of bench/solver.py and bench/limits.py.
CONSTRUCTION_BINDS_SHARE = 0.1


def _construction_binds(n_jobs: int, columns: int, first_pass_left_out: int,
                        work_deadline: float) -> bool:
    """Whether a call too short for the LP-guided rounds already knows from its construction
    that capacity binds (many of its `n_jobs` left out by the first pass), on a model whose
    exact backend would run in a worker process (`columns`, estimated: small ones are often
    proven optimal at once).

    Measured (1 s limit, tight medium seeds 1-7 x 3 request seeds): the whole model's build
    (0.3-0.4 s) beside the probe took the interpreter from it, so the probe ended at
    0.75-0.8 s; without the model (and without loading the kernels for a later search),
    ruin and recreate made 180-260 steps instead of about 60 in a fresh process, the plans
    were 1.72 % lower (19 of 21), 0.67 % with the kernels loaded (17 of 21), and the calls
    ended at 0.96-1.00 s instead of 0.98-1.35 s. At 10 s the same skip gained nothing
    (+0.10 % +- 0.11 over 7 seeds x 2) and left the first second without a better plan (the
    compiled kernels loading), so longer calls keep the probe."""
    left_s = work_deadline - time.monotonic()
    return (first_pass_left_out > CONSTRUCTION_BINDS_SHARE * n_jobs and n_jobs >= 20
            and columns >= SEARCH_AT_ONCE_MIN_COLUMNS
            and QUICK_SEARCH_MIN_S <= left_s < SEARCH_IN_WORKER_MIN_S)


def _improve_where_capacity_binds(problem: Problem, jobs: list[int], plan: Plan,
                                  backend: Backend, deadline: float, work_deadline: float,
                                  first_pass_left_out: int, stopped, emit) -> Improvement:
    """Ruin and recreate for all of a short call's time where its construction shows that
    capacity binds; the whole model is not built. The bound is the Lagrangian's."""
    from gridshift.optimizer.ruin_recreate import ruin_and_recreate

    improved = _incumbent_reporter(emit)
    # No later search in this call: loading the compiled kernels in the background would
    # only take the interpreter from this one (half its steps in a fresh process).
    best, stats = ruin_and_recreate(problem, plan, work_deadline,
                                    seed=problem.options.random_seed + 1, stop=stopped,
                                    on_improve=improved, warm_up=False)
    lag = _bound_until(problem, jobs, best, deadline, stopped)
    return Improvement(best, False, lag.bound,
                       f"{backend.exact_solver_name}: not run (under a short limit, capacity "
                       f"binds: the construction's first pass left {first_pass_left_out} of "
                       f"{len(jobs)} jobs out); {_bound_note(lag)}; {stats.summary()}")


#: Time left below which the second search skips the LP relaxation (the bound then comes
#: from the Lagrangian relaxation alone), and the share of the time left the LP may take.
#: Measured on tight medium at 10 s (7 seeds x 2 request seeds): building and solving the LP
#: took 1.0-1.4 s of the second search's 8.5; without it the plans were 0.30 % lower on
#: average (11 of 14 lower; 7 of 14 within 1 % of the references against 3), the bound
#: 0-2.4 % weaker. From 20 s on the LP costs under 7 % of the search, and the bound is kept.
SECOND_SEARCH_LP_MIN_S, SECOND_SEARCH_LP_SHARE = 20.0, 0.3


def _second_search(problem: Problem, jobs: list[int], plan: Plan, work_deadline: float,
                   stopped, emit) -> tuple[Plan, float, str]:
    """The whole model's core once capacity is found to bind: the LP relaxation (the bound)
    where time allows, then ruin and recreate in a worker process with its own seed until
    ``work_deadline``. (the best plan, the LP bound or -inf, a note for the detail)."""
    from gridshift.optimizer.backends.isolated import recreate_isolated
    from gridshift.optimizer.milp import build_milp

    lp_bound, lp_note = -math.inf, ""
    remaining = work_deadline - time.monotonic()
    if remaining >= SECOND_SEARCH_LP_MIN_S:
        try:
            lp = _solve_lp(build_milp(problem, jobs), SECOND_SEARCH_LP_SHARE * remaining,
                           stopped)
        except RuntimeError as exc:      # the bound then comes from the Lagrangian alone
            lp = BackendResult("no_solution", None, math.nan, -math.inf, 0.0, str(exc))
        if lp.status == "optimal":
            lp_bound, lp_note = lp.best_bound, f"LP relaxation in {lp.wall_seconds:.1f} s, then "
    remaining = work_deadline - time.monotonic()
    if remaining < 0.2 or stopped():
        return plan, lp_bound, f"whole model stopped: capacity binds; {lp_note}no second search"

    improved = _incumbent_reporter(emit)
    second = recreate_isolated(problem, plan, time_limit_s=remaining,
                               seed=problem.options.random_seed + 2,
                               on_improve=improved, stop_flag=stopped)
    return second.plan, lp_bound, (f"whole model stopped: capacity binds; {lp_note}a second "
                                   f"search in a worker process: {second.summary}")


#: Models at least this large (solve.ISOLATE_MIN_COLUMNS: the exact backend runs in a worker
#: process) start the search beside the exact backend at once.
SEARCH_AT_ONCE_MIN_COLUMNS = 2000
#: The probe that tells whether capacity binds: this many ruin-and-recreate steps, or this
#: long, whichever comes first.
PROBE_STEPS, PROBE_MAX_S = 60, 0.5
#: Share of the probe's steps that found no room above which capacity is taken to bind
#: (measured: 30-55 % on the tight medium instances, none on the generous ones).
CAPACITY_BINDS_FAILED_SHARE = 0.05


def _local_and_guided(problem: Problem, jobs: list[int], plan: Plan, backend: Backend,
                      work_deadline: float, stopped, emit,
                      on_binding: Callable[[Plan], None] | None = None,
                      short_limit: bool = False,
                      exact_gave_up: Callable[[], bool] = lambda: False):
    """A short probe of ruin and recreate (optimizer/ruin_recreate.py) tells whether capacity
    binds: whether jobs taken out often find no room again. Where it binds, the LP relaxation
    is weak and so is its guidance, and ruin and recreate gets the time; elsewhere LP-guided
    rounds do, from the probe's plan, and ruin and recreate gets what they leave (their LP
    not solved in time, or their rounds stalled: `_recreate_after`).

    Measured (10 s, 2 cores): on the tight medium instances (bench/tight.py) no LP-guided
    round improved the heuristic's plan (0/7 on seed 1: 768.8 kg) while ruin and recreate
    reached 740-746; on the generous medium instance (bench/solver.py) ruin and recreate
    reaches 169 kg where the rounds reach 155.4.

    ``on_binding(plan)`` is called with the probe's plan when capacity binds.
    ``exact_gave_up()``: whether the exact backend has returned without a proof (under a short
    limit, most often not run for want of time to build the model): ruin and recreate then
    takes the time left after the probe, whether or not capacity binds.

    ``short_limit``: the time is too short for the rounds; where capacity does not bind, the
    probe is all, and the exact backend keeps the time alone. Measured (1 s limit, 2 cores):
    without any search beside the exact backend, the tight medium instances returned the
    construction's plan, 6-15 % above the best known; on the generous medium instance at
    2 s, ruin and recreate beside HiGHS for the whole time made HiGHS miss its plan (173-174
    kg instead of 162.1) and the call overrun by 0.1-0.4 s."""
    from gridshift.optimizer.lp_guided import GuidedResult
    from gridshift.optimizer.ruin_recreate import ruin_and_recreate

    seed = problem.options.random_seed

    improved = _incumbent_reporter(emit)
    plan, probe = _probe(problem, plan, work_deadline, stopped, improved)
    if _capacity_binds(probe):
        if on_binding is not None:
            on_binding(plan)
        done = (f"under a short limit, {_probe_verdict(probe)}: " if short_limit else
                f"LP-guided search skipped: {_probe_verdict(probe)}; ")
    elif not short_limit:
        guided = _guided(problem, jobs, [plan], backend, work_deadline, stopped, emit,
                         stall_rounds=GUIDED_STALL_ROUNDS, weak_lp_gap=GUIDED_WEAK_LP_GAP)
        return _recreate_after(problem, guided, work_deadline, seed, stopped, improved)
    elif exact_gave_up():
        done = f"a probe ({_probe_verdict(probe)}), then the time the exact backend left: "
    else:
        return GuidedResult(plan, -math.inf, 0, 0,
                            f"ruin and recreate: a probe only ({_probe_verdict(probe)})")
    plan, stats = ruin_and_recreate(problem, plan, work_deadline, seed=seed + 1, stop=stopped,
                                    on_improve=improved, warm_up=not short_limit)
    return GuidedResult(plan, -math.inf, 0, 0, done + stats.summary())


#: LP-guided rounds in a row that improve nothing before the search gives its time to ruin
#: and recreate, and the least time left for which that is worth it (seconds).
GUIDED_STALL_ROUNDS, RECREATE_AFTER_GUIDED_MIN_S = 3, 0.5
#: Share above the LP relaxation beyond which the rounds' plan shows the LP too weak to guide
#: them (lp_guided_search's weak_lp_gap).
GUIDED_WEAK_LP_GAP = 0.03


def _recreate_after(problem: Problem, guided, work_deadline: float, seed: int, stopped,
                    improved: Callable[[Plan, float], None]):
    """Ruin and recreate from the LP-guided search's plan for the time that search left: its
    LP relaxation not solved in time (fine slots make the model large), or its rounds
    stalled.

    Measured (10 s, 2 cores) on instances where capacity does not bind: 120 jobs on 5-minute
    slots (288 a day), the LP not solved in 5 s, the plan stayed at the construction's, 8 %
    above what ruin and recreate reaches alone on one core; 200 jobs on 15-minute slots,
    2 of 7 rounds improved, 1.5 % above it."""
    from gridshift.optimizer.lp_guided import GuidedResult
    from gridshift.optimizer.ruin_recreate import ruin_and_recreate

    if stopped() or work_deadline - time.monotonic() < RECREATE_AFTER_GUIDED_MIN_S:
        return guided
    plan, stats = ruin_and_recreate(problem, guided.plan, work_deadline, seed=seed + 1,
                                    stop=stopped, on_improve=improved)
    return GuidedResult(plan, guided.lp_bound, guided.rounds, guided.improved,
                        f"{guided.detail}; then {stats.summary()}")


def _probe(problem: Problem, plan: Plan, work_deadline: float, stopped,
           on_improve: Callable[[Plan, float], None]):
    """A few ruin-and-recreate steps (PROBE_STEPS, PROBE_MAX_S): the plan and their stats.
    They anneal from the cool start (ruin_recreate.COOL_START): the share of recreations that
    find no room, which CAPACITY_BINDS_FAILED_SHARE was measured on, depends on it."""
    from gridshift.optimizer.ruin_recreate import (
        COOL_START,
        RUIN_KINDS,
        ruin_and_recreate,
        temperatures_for,
    )

    temperatures = temperatures_for(plan_objective(problem, plan), len(plan.placements),
                                    start=COOL_START)
    return ruin_and_recreate(problem, plan, min(work_deadline, time.monotonic() + PROBE_MAX_S),
                             seed=problem.options.random_seed, on_improve=on_improve,
                             stop=stopped, max_steps=PROBE_STEPS,
                             kinds=tuple(k for k in RUIN_KINDS if k != "worst"),
                             temperatures=temperatures)


def _probe_verdict(probe) -> str:
    """What a probe found, for the detail line: whether capacity binds, and its counts. A
    probe that had no time for a step found nothing: capacity is then taken not to bind."""
    if probe.steps == 0:
        return "no time for a probe step: capacity taken not to bind"
    binds = "capacity binds" if _capacity_binds(probe) else "capacity does not bind"
    return f"{binds} ({probe.failed} of {probe.steps} recreations in a probe found no room)"


def _capacity_binds(probe) -> bool:
    """Whether a probe's recreations often found no room (see CAPACITY_BINDS_FAILED_SHARE)."""
    return probe.steps > 0 and probe.failed > CAPACITY_BINDS_FAILED_SHARE * probe.steps


def _guided(problem: Problem, jobs: list[int], starts: list[Plan], backend: Backend,
            work_deadline: float, stopped, emit, stall_rounds: int | None = None,
            weak_lp_gap: float | None = None):
    """LP-guided rounds, one at a time, until the deadline or `stopped()` (or earlier:
    lp_guided_search's ``stall_rounds`` and ``weak_lp_gap``)."""
    from gridshift.optimizer.lp_guided import lp_guided_search
    from gridshift.optimizer.milp import build_milp

    def solve_lp(model, limit_s: float):
        return _solve_lp(model, limit_s, stopped)

    improved = _incumbent_reporter(emit)
    return lp_guided_search(problem, build_milp(problem, jobs), starts, work_deadline,
                            solve_lp, lns_sub_solver(backend), seed=problem.options.random_seed,
                            stop=stopped, on_improve=improved, parallel=1,
                            stall_rounds=stall_rounds, weak_lp_gap=weak_lp_gap)


def _solve_lp(model, limit_s: float, stopped) -> BackendResult:
    """The LP relaxation of ``model`` under HiGHS on one thread, in a worker process."""
    from gridshift.optimizer.backends.isolated import solve_isolated

    return solve_isolated("highs", model, time_limit_s=limit_s, relative_gap=0.0, workers=1,
                          relax=True, stop_flag=stopped)


def _bound_note(lag) -> str:
    """The detail line saying which bound a Lagrangian result is."""
    if not lag.valid:
        return "bound: none valid"
    return (f"bound: Lagrangian relaxation ({lag.iterations} subgradient steps, converges to "
            "the LP relaxation)")


def _better_start(problem: Problem, jobs: list[int], plan: Plan, lag, deadline: float,
                  solve_sub, stop: Callable[[], bool] | None = None) -> Plan:
    """The heuristic's plan or a plan rounded from the Lagrangian preferences (the better of
    two job orders, improved by local search), whichever is better with every job placed."""
    from gridshift.optimizer import greedy

    if not lag.valid or (stop is not None and stop()):
        return plan
    # A rounding costs about one construction; start one only if it fits the time left
    # (estimate from the greedy's speed: ~30 µs per job, site and 96 slots).
    cost_s = 3e-5 * len(jobs) * problem.n_sites * problem.n_slots / 96
    rounded: list[tuple[float, Plan]] = []
    for by_slack in (True, False):
        if stop is not None and stop():
            return plan
        candidate, cost_s = _rounding(problem, jobs, lag, by_slack, deadline, cost_s, solve_sub)
        if candidate is not None:
            rounded.append((plan_objective(problem, candidate), candidate))
    if not rounded:
        return plan
    _, candidate = min(rounded, key=lambda r: r[0])
    # Local search gains most on its first passes; large models need several seconds for one.
    budget = max(0.0, min(10.0, 0.2 * (deadline - time.monotonic())))
    candidate = greedy.improve(problem, candidate, time.monotonic() + budget, stop)
    return candidate if plan_objective(problem, candidate) < plan_objective(problem, plan) \
        else plan


def _rounding(problem: Problem, jobs: list[int], lag, by_slack: bool, deadline: float,
              cost_s: float, solve_sub) -> tuple[Plan | None, float]:
    """A rounded plan with every job placed (None if there is no time or some job stays out)
    and the time one rounding took. Jobs a rounding leaves out go first in a second try, as
    the greedy's restarts do; the few still out after it are placed by re-packing their
    neighbourhood exactly (optimizer.lns.repair_unplaced)."""
    from gridshift.optimizer.lagrangian import rounded_plan
    from gridshift.optimizer.lns import repair_unplaced

    first: frozenset[int] = frozenset()
    candidate = None
    for _ in range(2):
        if time.monotonic() + 3 * cost_s > deadline:
            return None, cost_s
        began = time.monotonic()
        candidate = rounded_plan(problem, jobs, lag, by_slack=by_slack, first=first)
        cost_s = time.monotonic() - began
        if not candidate.unscheduled:
            return candidate, cost_s
        first = first | frozenset(candidate.unscheduled)
    if candidate is not None and len(candidate.unscheduled) <= max(5, len(jobs) // 100):
        budget = min(3.0, 0.1 * (deadline - time.monotonic()))
        candidate = repair_unplaced(problem, candidate, time.monotonic() + budget, solve_sub)
        if not candidate.unscheduled:
            return candidate, cost_s
    return None, cost_s


def _pick(problem: Problem, plan: Plan, exact_plan: Plan | None, result: BackendResult,
          lag_bound: float, bound_note: str) -> Improvement:
    bound = max(lag_bound, result.best_bound)
    if bound == result.best_bound and math.isfinite(result.best_bound):
        bound_note = f"bound: {result.detail.split(':')[0]} branch and bound"
    current = plan_objective(problem, plan)
    if exact_plan is not None:
        value = plan_objective(problem, exact_plan)
        # Ties go to the exact plan, so a proven optimum is reported as OPTIMAL.
        if value <= current + 1e-9 * max(1.0, abs(current)):
            return Improvement(exact_plan, result.status == "optimal", bound,
                               f"{result.detail}; {bound_note}")
    return Improvement(plan, False, bound, f"{result.detail}; {bound_note}")


def lns_sub_solver(backend: Backend):
    from gridshift.optimizer.backends.isolated import solve_isolated

    name = "cpsat" if backend == Backend.CPSAT else "highs"

    def solve_sub(model, hint, limit: float, stopped, seed: int = 0) -> BackendResult:
        return solve_isolated(name, model, time_limit_s=limit, relative_gap=1e-6, workers=1,
                              hint=hint, stop_flag=stopped, seed=seed)
    return solve_sub

