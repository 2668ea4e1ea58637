"""Why jobs cannot be placed: alone (no site/window fits the job even on an empty fleet),
jointly (a small set of jobs that cannot all fit together, for small cases), or by capacity
(a few site sets and time windows where the jobs that can only run there ask for more
GPU-hours than there are: a proof, by counting, that some of them must be left out)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gridshift.optimizer import greedy
from gridshift.optimizer.errors import CancelledError
from gridshift.optimizer.problem import Problem


def alone_infeasible(problem: Problem, stop: Callable[[], bool] | None = None
                     ) -> dict[int, str]:
    """Jobs that fit at none of their allowed sites even with every other job removed.

    A quick sufficient test comes first — some allowed site has the job's GPUs free for
    `duration` consecutive slots in its window and its power under the cap (a contiguous run
    is valid for interruptible jobs too); only jobs failing it get the exact check. ``stop``
    (the caller gave up) is asked every 256 jobs: CancelledError."""
    reasons: dict[int, str] = {}
    window_min: dict[int, np.ndarray] = {}
    empty = None
    for j in range(problem.n_jobs):
        if stop is not None and j % 256 == 0 and stop():
            raise CancelledError("the call ended while its jobs were being checked")
        d = int(problem.duration_slots[j])
        if d not in window_min:
            window_min[d] = _sliding_min(problem.gpu_capacity, d)
        if _fits_somewhere(problem, j, window_min[d]):
            continue
        if empty is None:
            empty = greedy._State.empty(problem)
        if greedy.best_placement(problem, empty, j) is None:
            reasons[j] = _alone_reason(problem, j)
    return reasons


def _sliding_min(capacity: np.ndarray, d: int) -> np.ndarray:
    """[S, T - d + 1]: the smallest capacity over each run of d slots."""
    if d > capacity.shape[1]:
        return np.zeros((capacity.shape[0], 0))
    return np.lib.stride_tricks.sliding_window_view(capacity, d, axis=1).min(axis=2)


def _fits_somewhere(problem: Problem, j: int, window_min: np.ndarray) -> bool:
    lo = int(problem.first_slot[j])
    hi = int(problem.last_slot[j]) - int(problem.duration_slots[j]) + 1
    if hi <= lo:
        return False
    for s in problem.allowed_sites[j]:
        if problem.facility_kw(j, s) > problem.power_cap_kw[s] + 1e-9:
            continue
        if (window_min[s, lo:hi] >= problem.gpus[j]).any():
            return True
    return False


def _alone_reason(problem: Problem, j: int) -> str:
    sites = problem.allowed_sites[j]
    lo, hi = int(problem.first_slot[j]), int(problem.last_slot[j])
    names = ", ".join(problem.site_ids[s] for s in sites)
    most_gpus = {s: int(problem.gpu_capacity[s, lo:hi].max()) for s in sites}
    best_gpus = max(most_gpus.values())
    if problem.gpus[j] > best_gpus:
        return (f"needs {problem.gpus[j]} GPUs; its allowed sites ({names}) have at most "
                f"{best_gpus} in its window")
    if all(problem.facility_kw(j, s) > problem.power_cap_kw[s] for s in sites):
        return (f"needs {min(problem.facility_kw(j, s) for s in sites):.1f} kW facility power, "
                f"above the power cap of every allowed site ({names})")
    stretch = (f"no {problem.duration_slots[j]}-slot stretch between earliest_start and "
               f"deadline where {{}} has {problem.gpus[j]} GPUs free (capacity windows)")
    per_site = []
    for s in sites:
        if problem.gpus[j] > most_gpus[s]:
            per_site.append(f"{problem.site_ids[s]} has at most {most_gpus[s]} GPUs in its "
                            f"window, it needs {problem.gpus[j]}")
        elif problem.facility_kw(j, s) > problem.power_cap_kw[s]:
            per_site.append(f"{problem.site_ids[s]} caps power at {problem.power_cap_kw[s]:.1f} "
                            f"kW, it needs {problem.facility_kw(j, s):.1f} kW")
    if not per_site:
        return stretch.format(f"an allowed site ({names})")
    # Sites ruled out for different reasons: name each one.
    per_site += [stretch.format(problem.site_ids[s]) for s in sites
                 if problem.gpus[j] <= most_gpus[s]
                 and problem.facility_kw(j, s) <= problem.power_cap_kw[s]]
    return "; ".join(per_site)


def _overlap(problem: Problem, a: int, b: int) -> float:
    """GPU-slots of contention between two jobs: shared sites x shared window x GPUs."""
    if not set(problem.allowed_sites[a]) & set(problem.allowed_sites[b]):
        return 0.0
    lo = max(problem.first_slot[a], problem.first_slot[b])
    hi = min(problem.last_slot[a], problem.last_slot[b])
    return float(max(0, hi - lo) * min(problem.gpus[a], problem.gpus[b]))


def conflict_set(problem: Problem, job: int, excluded: set[int], budget_s: float,
                 max_candidates: int = 30) -> tuple[list[int], bool]:
    """A small set of jobs, including `job`, that cannot all be placed together.

    Deletion filter over the jobs that contend with `job`: a job is dropped from the set when
    the rest is still proven infeasible. Returns (set, minimal) where `minimal` says whether
    every test finished within the budget. The set is empty when no set including `job`
    was proven infeasible within the budget.
    """
    from gridshift.optimizer.backends.cpsat import solve_cpsat
    from gridshift.optimizer.milp import build_milp

    deadline = time.monotonic() + budget_s
    contenders = [k for k in range(problem.n_jobs)
                  if k != job and k not in excluded and _overlap(problem, job, k) > 0]
    contenders.sort(key=lambda k: -_overlap(problem, job, k))
    members = [job] + contenders[:max_candidates]
    minimal = len(contenders) <= max_candidates

    def infeasible(jobs: list[int]) -> bool | None:
        if not greedy.greedy_plan(problem, 0.05, jobs=set(jobs)).unscheduled:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0.05:
            return None
        model = build_milp(problem, jobs, count_objective=True)
        result = solve_cpsat(model, time_limit_s=min(remaining, 2.0), relative_gap=0.0)
        return {"infeasible": True, "optimal": False, "feasible": False}.get(result.status)

    # The deletion filter must start from a set proven infeasible. The direct contenders can
    # leave room for `job` when jobs that contend only with them take part too (a chain), so
    # then every job not excluded is the starting set; unproven, the set is not called minimal.
    verdict = infeasible(members)
    if verdict is False:
        others = sorted((k for k in range(problem.n_jobs)
                         if k != job and k not in excluded and k not in members),
                        key=lambda k: -_overlap(problem, job, k))
        members = members + others
        verdict = infeasible(members) if others else False
    if not verdict:
        # Not proven infeasible within the budget (or not infeasible at all: the heuristic
        # that left the job out may have packed badly): no set to name.
        return [], False
    for k in list(reversed(members[1:])):
        trial = [m for m in members if m != k]
        verdict = infeasible(trial)
        if verdict is None:
            minimal = False
            break
        if verdict:
            members = trial
    return sorted(members, key=lambda m: problem.job_ids[m]), minimal


def demand_note(problem: Problem, jobs: list[int]) -> str:
    """A short description of what a conflicting set asks for."""
    gpus = int(np.sum(problem.gpus[jobs]))
    return f"together they need {gpus} GPUs in overlapping windows"


@dataclass(frozen=True)
class Overload:
    """Sites and a window of slots where the jobs that can only run there (allowed sites
    within ``sites``, whole window within [first_slot, end_slot)) need more GPU-slots than the
    sites have: at least one of ``jobs`` must be left out."""

    sites: tuple[int, ...]
    first_slot: int
    end_slot: int
    demand_gpu_slots: float
    capacity_gpu_slots: float
    jobs: tuple[int, ...]

    @property
    def ratio(self) -> float:
        return self.demand_gpu_slots / max(self.capacity_gpu_slots, 1e-9)


def capacity_overloads(problem: Problem, jobs: list[int], limit: int = 5) -> list[Overload]:
    """The most oversubscribed (site set, window) pairs among ``jobs``, most GPU-slots short
    first, at most one per site set and ``limit`` in all. Site sets: each job's allowed sites
    and all sites; windows: between job window ends. O(site sets x T^2), vectorised."""
    if not jobs:
        return []
    site_sets = {tuple(sorted(problem.allowed_sites[j])) for j in jobs}
    site_sets.add(tuple(range(problem.n_sites)))
    found = [o for sites in sorted(site_sets) if (o := _worst_window(problem, jobs, sites))]
    found.sort(key=lambda o: -(o.demand_gpu_slots - o.capacity_gpu_slots))
    return found[:limit]


def _worst_window(problem: Problem, jobs: list[int], sites: tuple[int, ...]) -> Overload | None:
    inside = set(sites)
    members = [j for j in jobs if set(problem.allowed_sites[j]) <= inside]
    if not members:
        return None
    T = problem.n_slots
    first = problem.first_slot[members].astype(int)
    last = problem.last_slot[members].astype(int)
    need = (problem.gpus[members] * problem.duration_slots[members]).astype(float)
    table = np.zeros((T + 1, T + 1))
    np.add.at(table, (first, last), need)
    # demand[a, b] = need of the jobs with first >= a and last <= b.
    demand = np.flip(np.cumsum(np.flip(table, axis=0), axis=0), axis=0).cumsum(axis=1)
    cumulative = np.concatenate([[0.0], np.cumsum(problem.gpu_capacity[list(sites)].sum(axis=0))])
    capacity = cumulative[None, :] - cumulative[:, None]
    excess = np.where(np.triu(np.ones((T + 1, T + 1), dtype=bool), 1), demand - capacity,
                      -np.inf)
    a, b = np.unravel_index(int(np.argmax(excess)), excess.shape)
    if excess[a, b] <= 1e-9:
        return None
    chosen = tuple(j for j, f, e in zip(members, first, last, strict=True) if f >= a and e <= b)
    return Overload(sites, int(a), int(b), float(demand[a, b]), float(capacity[a, b]), chosen)
