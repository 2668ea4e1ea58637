"""The construction heuristic: place jobs one by one where their exact marginal objective is
lowest, respecting GPU capacity and power caps, then improve by remove-and-reinsert.

Marginal cost of a slot accounts for on-site renewables exactly: adding facility power p to a
site whose load is L and renewable supply R costs max(0, L+p-R) - max(0, L-R) grid kW.
Contiguous jobs pick the best start from prefix sums of that cost; interruptible jobs pick the
cheapest slots that form runs of at least min_run slots by a small dynamic programme.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gridshift.optimizer.errors import CancelledError
from gridshift.optimizer.plan import Placement, Plan
from gridshift.optimizer.problem import Problem

UNPLACEABLE = "no site and window where its GPUs and power fit beside the other jobs"


@dataclass
class _State:
    free_gpus: np.ndarray   # [S, T]
    load_kw: np.ndarray     # [S, T] facility load
    coef: np.ndarray        # [S, T] objective per grid kWh
    problem: Problem

    @staticmethod
    def empty(problem: Problem) -> _State:
        return _State(problem.gpu_capacity.astype(np.int64).copy(),
                      np.zeros((problem.n_sites, problem.n_slots)),
                      problem.grid_cost_per_kwh(), problem)

    def apply(self, j: int, p: Placement, sign: int) -> None:
        idx = np.asarray(p.slots, dtype=np.int64)
        self.free_gpus[p.site, idx] -= sign * self.problem.gpus[j]
        self.load_kw[p.site, idx] += sign * self.problem.facility_kw(j, p.site)


def slot_costs(problem: Problem, state: _State, j: int, s: int) -> np.ndarray:
    """Objective added per slot if job j ran at site s in that slot, given current loads."""
    return _site_costs(problem, state, j, np.array([s]))[0][0]


def _delay_cost(problem: Problem, j: int, end_slots: np.ndarray) -> np.ndarray:
    w = problem.objective.delay_weight * float(problem.priority[j])
    return w * end_slots * problem.slot_hours


def best_placement(problem: Problem, state: _State, j: int) -> tuple[Placement, float] | None:
    """Cheapest feasible placement of job j given the jobs already in `state`; all allowed
    sites are evaluated at once (ties: the site listed first, then the earliest start)."""
    sites = np.asarray(problem.allowed_sites[j], dtype=np.int64)
    cost, ok = _site_costs(problem, state, j, sites)
    if _splittable(problem, j):
        return _best_interruptible(problem, j, sites, cost, ok)
    return _best_contiguous(problem, j, sites, cost, ok)


def _splittable(problem: Problem, j: int) -> bool:
    """Whether job j may run in more than one piece in its window: interruptible, runs
    shorter than the job allowed, and a window with room for a gap (a window exactly as long
    as the job leaves one placement per site: contiguous, found without the DP)."""
    return bool(problem.interruptible[j] and problem.min_run_slots[j] < problem.duration_slots[j]
                and problem.last_slot[j] - problem.first_slot[j] > problem.duration_slots[j])


def feasible_options(problem: Problem, state: _State, j: int) -> int:
    """How many placements job j has left beside the jobs in `state`: its feasible
    (site, start) pairs; for a job that may split, per site the number of free slots in its
    window beyond its duration, plus one. A job with few options should be placed early."""
    sites = np.asarray(problem.allowed_sites[j], dtype=np.int64)
    lo, hi = int(problem.first_slot[j]), int(problem.last_slot[j])
    d = int(problem.duration_slots[j])
    kw = problem.power_kw[j] * problem.pue[sites]
    ok = (state.free_gpus[sites, lo:hi] >= problem.gpus[j]) & (
        state.load_kw[sites, lo:hi] + kw[:, None] <= problem.power_cap_kw[sites][:, None] + 1e-9)
    if _splittable(problem, j):
        return int(np.maximum(0, ok.sum(axis=1) - d + 1).sum())
    blocked = np.concatenate([np.zeros((len(sites), 1), dtype=np.int64),
                              np.cumsum(~ok, axis=1)], axis=1)
    return int((blocked[:, d:] - blocked[:, :-d] == 0).sum()) if hi - lo >= d else 0


def _site_costs(problem: Problem, state: _State, j: int,
                sites: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Marginal objective [k, T] of job j per slot at each of `sites`, and where it fits."""
    kw = problem.power_kw[j] * problem.pue[sites]
    load = state.load_kw[sites]
    renewable = problem.renewable_kw[sites]
    delta_grid_kw = (np.maximum(0.0, load + kw[:, None] - renewable)
                     - np.maximum(0.0, load - renewable))
    cost = delta_grid_kw * problem.slot_hours * state.coef[sites]
    ok = (state.free_gpus[sites] >= problem.gpus[j]) & (
        load + kw[:, None] <= problem.power_cap_kw[sites][:, None] + 1e-9)
    return cost, ok


def _best_contiguous(problem: Problem, j: int, sites: np.ndarray, cost: np.ndarray,
                     ok: np.ndarray):
    d = int(problem.duration_slots[j])
    lo, hi = int(problem.first_slot[j]), int(problem.last_slot[j])
    starts = np.arange(lo, hi - d + 1)
    if len(starts) == 0:
        return None
    k = len(sites)
    cum = np.concatenate([np.zeros((k, 1)), np.cumsum(cost, axis=1)], axis=1)
    blocked = np.concatenate([np.zeros((k, 1), dtype=np.int64),
                              np.cumsum(~ok, axis=1)], axis=1)
    window_cost = cum[:, starts + d] - cum[:, starts] + _delay_cost(problem, j, starts + d)
    window_cost[blocked[:, starts + d] - blocked[:, starts] > 0] = np.inf
    best = int(np.argmin(window_cost))
    row, col = divmod(best, len(starts))
    if not np.isfinite(window_cost[row, col]):
        return None
    return (Placement.contiguous(int(sites[row]), int(starts[col]), d),
            float(window_cost[row, col]))


def _best_interruptible(problem: Problem, j: int, sites: np.ndarray, cost: np.ndarray,
                        ok: np.ndarray):
    """DP over slots, all sites at once, with state (slots chosen, current run length capped
    at min_run): a run may only end once it is min_run slots long."""
    d, m = int(problem.duration_slots[j]), int(problem.min_run_slots[j])
    lo, hi = int(problem.first_slot[j]), int(problem.last_slot[j])
    k = len(sites)
    value = np.full((k, d + 1, m + 1), np.inf)
    value[:, 0, 0] = 0.0
    history = []
    for t in range(lo, hi):
        new = np.full_like(value, np.inf)
        pred = np.zeros(value.shape, dtype=np.int8)  # predecessor run state
        stay_from_m = value[:, :, m] < value[:, :, 0]
        new[:, :, 0] = np.where(stay_from_m, value[:, :, m], value[:, :, 0])
        pred[:, :, 0] = np.where(stay_from_m, m, 0)
        here = ok[:, t]
        if here.any():
            c = np.where(here, cost[:, t], np.inf)[:, None]
            for q in range(1, m + 1):
                if q == m and m > 1:
                    from_m = value[:, :-1, m] < value[:, :-1, m - 1]
                    new[:, 1:, q] = np.where(from_m, value[:, :-1, m], value[:, :-1, m - 1]) + c
                    pred[:, 1:, q] = np.where(from_m, m, m - 1)
                elif q == m:   # m == 1: a run of one slot is already complete
                    from_m = value[:, :-1, 1] < value[:, :-1, 0]
                    new[:, 1:, 1] = np.where(from_m, value[:, :-1, 1], value[:, :-1, 0]) + c
                    pred[:, 1:, 1] = np.where(from_m, 1, 0)
                else:
                    new[:, 1:, q] = value[:, :-1, q - 1] + c
                    pred[:, 1:, q] = q - 1
            new[:, d, 1:] += _delay_cost(problem, j, np.array([t + 1]))[0]
        history.append((t, pred))
        value = new
    end_state = np.where(value[:, d, 0] <= value[:, d, m], 0, m)
    totals = value[np.arange(k), d, end_state]
    row = int(np.argmin(totals))
    if not np.isfinite(totals[row]):
        return None
    slots = _backtrack([(t, pred[row]) for t, pred in history], d, int(end_state[row]))
    return Placement(int(sites[row]), slots), float(totals[row])


def _backtrack(history, k: int, q: int) -> tuple[int, ...]:
    chosen = []
    for t, pred in reversed(history):
        if q >= 1:
            chosen.append(t)
            q, k = int(pred[k, q]), k - 1
        else:
            q = int(pred[k, 0])
        if k == 0 and q == 0:
            break
    return tuple(sorted(chosen))


def construct(problem: Problem, order: list[int], jobs: set[int] | None = None,
              stop: Callable[[], bool] | None = None) -> Plan:
    """Place jobs in `order` (restricted to `jobs` if given) one by one at their cheapest spot;
    ``stop()`` (the caller gave up) is asked every 256 jobs: CancelledError."""
    state = _State.empty(problem)
    plan = Plan()
    for k, j in enumerate(order):
        if stop is not None and k % 256 == 0 and stop():
            raise CancelledError("the call ended while its first plan was being built")
        if jobs is not None and j not in jobs:
            continue
        found = best_placement(problem, state, j)
        if found is None:
            plan.unscheduled[j] = UNPLACEABLE
            continue
        plan.placements[j] = found[0]
        state.apply(j, found[0], +1)
    return plan


def improve(problem: Problem, plan: Plan, deadline: float,
            stop: Callable[[], bool] | None = None) -> Plan:
    """Remove-and-reinsert local search until no job moves, the deadline (time.monotonic) or
    `stop()` (a cancelled call)."""
    state = _State.empty(problem)
    for j, p in plan.placements.items():
        state.apply(j, p, +1)
    improved = True
    while improved and time.monotonic() < deadline:
        improved = False
        for j in list(plan.placements):
            current = plan.placements[j]
            state.apply(j, current, -1)
            current_cost = float(slot_costs(problem, state, j, current.site)[list(current.slots)]
                                 .sum() + _delay_cost(problem, j, np.array([current.end_slot]))[0])
            found = best_placement(problem, state, j)
            if found is not None and found[1] < current_cost - 1e-9:
                plan.placements[j] = found[0]
                improved = True
            state.apply(j, plan.placements[j], +1)
            if time.monotonic() >= deadline or (stop is not None and stop()):
                break
    return plan


def job_orders(problem: Problem, seed: int = 0, randomised: int = 2) -> list[list[int]]:
    """Several job orders worth trying: big energy first, tight windows first, FIFO, random."""
    jobs = range(problem.n_jobs)
    energy = problem.power_kw * problem.duration_slots
    slack = (problem.last_slot - problem.first_slot) - problem.duration_slots
    orders = [
        sorted(jobs, key=lambda j: (-energy[j] * problem.gpus[j], problem.job_ids[j])),
        sorted(jobs, key=lambda j: (-problem.gpus[j], slack[j], problem.job_ids[j])),
        sorted(jobs, key=lambda j: (slack[j], -energy[j], problem.job_ids[j])),
        sorted(jobs, key=lambda j: (problem.first_slot[j], problem.job_ids[j])),
    ]
    rng = np.random.default_rng(seed)
    for _ in range(randomised):
        noise = rng.lognormal(0.0, 0.5, problem.n_jobs)
        orders.append(sorted(jobs, key=lambda j: -energy[j] * problem.gpus[j] * noise[j]))
    return orders


def left_out_gpu_hours(problem: Problem, plan: Plan) -> float:
    """GPU-hours of the jobs a plan leaves out (the tie-break after their number)."""
    return float(sum(problem.gpus[j] * problem.duration_minutes[j] for j in plan.unscheduled)
                 / 60.0)


def greedy_plan(problem: Problem, time_budget_s: float = 1.0, seed: int = 0,
                jobs: set[int] | None = None,
                on_first_plan: Callable[[Plan], None] | None = None,
                stop: Callable[[], bool] | None = None) -> Plan:
    """Best of several constructions (fewest unplaced jobs, then fewest GPU-hours left out,
    then lowest objective), improved
    by local search. Jobs that fail to place are retried first in a restart; where the first
    construction leaves jobs out, the earliest-fit schedule (`earliest_fit_plan`) is a
    candidate too. The first plan (the better of the first construction and that schedule)
    is reported through `on_first_plan` as soon as it exists. `stop()` (a cancelled call)
    ends the search after the construction in progress."""
    from gridshift.optimizer.accounting import plan_objective

    started = time.monotonic()
    deadline = build_until = started + time_budget_s
    best, best_key = None, None
    orders = job_orders(problem, seed)
    restarts, restart_queued = 0, False
    fitted_all = False

    def key_of(plan: Plan) -> tuple[int, float, float]:
        return (len(plan.unscheduled), left_out_gpu_hours(problem, plan),
                plan_objective(problem, plan))

    # Past the budget, only a queued restart for left-out jobs still runs (at most 3), unless
    # the earliest-fit schedule already placed every job.
    while orders and (best is None or time.monotonic() < build_until
                      or (restart_queued and not fitted_all)):
        order = orders.pop(0)
        restart_queued = False
        plan = construct(problem, order, jobs, stop)
        if stop is not None and stop():
            raise CancelledError("the call ended while its first plan was being built")
        key = key_of(plan)
        if best is None and plan.unscheduled:
            # Deadlines as tight as a first-come-first-served schedule needs (a busy fleet's
            # night) defeat cost-first insertion: the earliest-fit schedule places every job.
            # It is the plan to beat, and local search gets half the budget.
            fitted = earliest_fit_plan(problem, jobs)
            best, best_key = fitted, key_of(fitted)
            fitted_all = not fitted.unscheduled
            if fitted_all:
                build_until = started + 0.5 * time_budget_s
        if on_first_plan is not None:
            on_first_plan(plan if best is None or key < best_key else best)
            on_first_plan = None
        if plan.unscheduled and restarts < 3:
            # Restart at once with the jobs that found no room placed first.
            restarts += 1
            restart_queued = True
            failed = [j for j in order if j in plan.unscheduled]
            orders.insert(0, failed + [j for j in order if j not in plan.unscheduled])
        if best_key is None or key < best_key:
            best, best_key = plan, key
        if best_key[0] == 0:
            restart_queued = False
        if stop is not None and stop():
            break
    assert best is not None
    return improve(problem, best, deadline, stop)


def earliest_fit_plan(problem: Problem, jobs: set[int] | None = None) -> Plan:
    """Jobs first come, first served (earliest start, then id), each run contiguously at the
    earliest start in its window where it fits beside the jobs placed before it: at its home
    site, else at its other allowed sites in the order listed (committed jobs first). The FIFO
    baseline's rule kept within each job's deadline, so wherever FIFO meets every deadline
    this places every job."""
    state = _State.empty(problem)
    plan = Plan()
    committed = problem.committed if len(problem.committed) else np.zeros(problem.n_jobs, bool)
    # Committed jobs (fixed where they run) first, so that no job takes their place.
    order = sorted((j for j in range(problem.n_jobs) if jobs is None or j in jobs),
                   key=lambda j: (not committed[j], problem.earliest_hours[j],
                                  problem.job_ids[j]))
    for j in order:
        home = int(problem.home_site[j])
        d = int(problem.duration_slots[j])
        lo, hi = int(problem.first_slot[j]), int(problem.last_slot[j])
        for s in [home] + [s for s in problem.allowed_sites[j] if s != home]:
            ok = (state.free_gpus[s, lo:hi] >= problem.gpus[j]) & (
                state.load_kw[s, lo:hi] + problem.facility_kw(j, s)
                <= problem.power_cap_kw[s] + 1e-9)
            blocked = np.concatenate([[0], np.cumsum(~ok)])
            fits = np.flatnonzero(blocked[d:] - blocked[:-d] == 0) if hi - lo >= d else []
            if len(fits):
                plan.placements[j] = Placement.contiguous(s, lo + int(fits[0]), d)
                state.apply(j, plan.placements[j], +1)
                break
        else:
            plan.unscheduled[j] = UNPLACEABLE
    return plan
