"""Large-neighbourhood search: re-optimise a subset of jobs exactly while the rest stay fixed.

Each step picks a neighbourhood designed for this problem — jobs competing for the same
site and slots, a clean/dirty site pair, a window around a site's renewable peak, a time
window, or random jobs — builds the time-indexed model for those jobs only (the fixed jobs
are a background load: they use GPUs and power and count against renewables), solves it with
a short time limit warm-started from the current placement, and keeps the result when the
whole plan's exact objective improves. The plan only ever gets better.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np

from gridshift.optimizer.backends import BackendResult
from gridshift.optimizer.milp import build_milp
from gridshift.optimizer.plan import Placement, Plan
from gridshift.optimizer.problem import Problem

# solve_sub(model, hint, time_limit_s, stop_flag) -> BackendResult
SubSolver = Callable[..., BackendResult]
NEIGHBOURHOODS = ("pack", "competition", "site_pair", "renewable_peak", "time_window", "random")


@dataclass
class LnsStats:
    iterations: int = 0
    improvements: int = 0
    by_kind: dict[str, list[int]] = field(default_factory=dict)   # kind -> [tried, improved]
    gain_by_kind: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        if not self.iterations:
            return "LNS: no step (too little time left)"
        parts = [f"{k} {v[1]}/{v[0]} ({self.gain_by_kind.get(k, 0.0):.2f})"
                 for k, v in sorted(self.by_kind.items())]
        return (f"LNS {self.improvements}/{self.iterations} improving steps; "
                "by neighbourhood (improved/tried, objective gained): " + ", ".join(parts))


class PlanState:
    """A plan with its per-site loads, for fast exact objective evaluation."""

    def __init__(self, problem: Problem, plan: Plan) -> None:
        self.problem = problem
        self.placements: dict[int, Placement] = dict(plan.placements)
        self.gpus = np.zeros((problem.n_sites, problem.n_slots))
        self.load_kw = np.zeros((problem.n_sites, problem.n_slots))
        self.coef_per_kw = problem.grid_cost_per_kwh() * problem.slot_hours
        for j, p in self.placements.items():
            self._add(j, p, +1)

    def _add(self, j: int, p: Placement, sign: int) -> None:
        idx = np.asarray(p.slots, dtype=np.int64)
        self.gpus[p.site, idx] += sign * self.problem.gpus[j]
        self.load_kw[p.site, idx] += sign * self.problem.facility_kw(j, p.site)

    def objective(self) -> float:
        """Exact objective up to a constant (the delay term's earliest-start offsets)."""
        p = self.problem
        grid = np.maximum(0.0, self.load_kw - p.renewable_kw)
        value = float((grid * self.coef_per_kw).sum())
        if p.objective.delay_weight:
            value += p.objective.delay_weight * p.slot_hours * sum(
                float(p.priority[j]) * pl.end_slot for j, pl in self.placements.items())
        return value

    def background(self, jobs: list[int]) -> tuple[np.ndarray, np.ndarray]:
        gpus, load = self.gpus.copy(), self.load_kw.copy()
        for j in jobs:
            p = self.placements[j]
            idx = np.asarray(p.slots, dtype=np.int64)
            gpus[p.site, idx] -= self.problem.gpus[j]
            load[p.site, idx] -= self.problem.facility_kw(j, p.site)
        return gpus, load

    def replace(self, moves: dict[int, Placement]) -> dict[int, Placement]:
        """Apply moves; returns the previous placements (for undo)."""
        old = {j: self.placements[j] for j in moves}
        for j, p in old.items():
            self._add(j, p, -1)
        for j, p in moves.items():
            self._add(j, p, +1)
            self.placements[j] = p
        return old

    def place(self, j: int, placement: Placement) -> None:
        """Add a job that was not placed."""
        self.placements[j] = placement
        self._add(j, placement, +1)

    def unplace(self, j: int) -> None:
        """Take a placed job out."""
        self._add(j, self.placements.pop(j), -1)

    def feasible(self) -> bool:
        p = self.problem
        return bool((self.gpus <= p.gpu_capacity + 1e-9).all() and
                    (self.load_kw <= p.power_cap_kw[:, None] + 1e-6).all())

    def plan(self) -> Plan:
        return Plan(placements=dict(self.placements))


class NeighbourhoodPicker:
    """Chooses job subsets; kinds that improve more often are picked more often."""

    def __init__(self, problem: Problem, seed: int) -> None:
        self.problem = problem
        self.rng = np.random.default_rng(seed)
        self.weights = {k: 1.0 for k in NEIGHBOURHOODS}
        coef = problem.grid_cost_per_kwh()
        self.site_cost = coef.mean(axis=1)
        self.renewable_sites = np.flatnonzero(problem.renewable_kw.sum(axis=1) > 0)
        self.allowed = [set(a) for a in problem.allowed_sites]

    def reward(self, kind: str, improved: bool) -> None:
        w = self.weights[kind]
        self.weights[kind] = min(5.0, w * 1.3) if improved else max(0.2, w * 0.95)

    # What the last pick is about: sites the jobs may move to (besides their own) and the
    # slots their runs may use; the sub-model offers only those options.
    focus_sites: tuple[int, ...] = ()
    focus_window: tuple[int, int] | None = None

    def pick(self, state: PlanState, size: int) -> tuple[str, list[int]]:
        kinds = list(self.weights)
        p = np.array([self.weights[k] for k in kinds])
        kind = kinds[int(self.rng.choice(len(kinds), p=p / p.sum()))]
        if kind == "renewable_peak" and len(self.renewable_sites) == 0:
            kind = "random"
        self.focus_sites, self.focus_window = (), None
        jobs = getattr(self, f"_{kind}")(state, size)
        if len(jobs) < 2:
            kind, jobs = "random", self._random(state, size)
        return kind, jobs

    def restrict(self, state: PlanState, jobs: list[int], extra_sites: int = 1) -> Problem:
        """The problem with the jobs' options cut to the focus: their own site, the focus sites
        and `extra_sites` random others; starts inside the focus window (widened to keep the
        current placement). Smaller sub-models solve much faster."""
        prob = self.problem
        allowed = list(prob.allowed_sites)
        first, last = prob.first_slot.copy(), prob.last_slot.copy()
        for j in jobs:
            current = state.placements[j]
            options = {current.site} | (set(self.focus_sites) & self.allowed[j])
            others = [s for s in prob.allowed_sites[j] if s not in options]
            if others and extra_sites:
                options |= {int(s) for s in self.rng.choice(others, min(extra_sites, len(others)),
                                                            replace=False)}
            allowed[j] = tuple(s for s in prob.allowed_sites[j] if s in options)
            if self.focus_window is not None:
                lo, hi = self.focus_window
                first[j] = max(first[j], min(lo, current.slots[0]))
                last[j] = min(last[j], max(hi, current.slots[-1] + 1))
        return dataclasses.replace(prob, allowed_sites=tuple(allowed), first_slot=first,
                                   last_slot=last)

    def _sample(self, candidates, size: int) -> list[int]:
        candidates = np.unique(np.asarray(list(candidates), dtype=np.int64))
        if len(candidates) <= size:
            return candidates.tolist()
        return self.rng.choice(candidates, size, replace=False).tolist()

    def _around(self, state: PlanState, site: int, lo: int, hi: int) -> list[int]:
        """Jobs placed at `site` touching [lo, hi), and jobs that could move there."""
        prob = self.problem
        placed = [j for j, p in state.placements.items()
                  if p.site == site and p.slots[0] < hi and p.slots[-1] >= lo]
        could = [j for j in state.placements if site in self.allowed[j]
                 and prob.first_slot[j] < hi and prob.last_slot[j] > lo]
        return placed + could

    def _pack(self, state: PlanState, size: int) -> list[int]:
        """Fill a clean site: the jobs it runs in a time window, plus the jobs elsewhere that
        would gain most by moving in (energy x intensity difference); options: stay or move."""
        prob = self.problem
        order = np.argsort(self.site_cost)
        site = int(order[min(int(self.rng.geometric(0.5)) - 1, len(order) - 1)])
        width = int(self.rng.integers(max(2, prob.n_slots // 12), max(3, prob.n_slots // 4)))
        lo = int(self.rng.integers(0, max(1, prob.n_slots - width)))
        hi = lo + width
        residents = [j for j, p in state.placements.items()
                     if p.site == site and p.slots[0] < hi and p.slots[-1] >= lo]
        movers = [j for j, p in state.placements.items()
                  if p.site != site and site in self.allowed[j]
                  and prob.first_slot[j] < hi and prob.last_slot[j] > lo]
        gain = np.array([prob.power_kw[j] * prob.duration_slots[j] *
                         (self.site_cost[state.placements[j].site] - self.site_cost[site])
                         for j in movers])
        picked = [movers[i] for i in np.argsort(-gain)[:max(1, size - len(residents[:size // 2]))]]
        self.focus_sites = (site,)
        self.focus_window = (lo, hi)
        return self._sample(residents, size // 2) + picked[:size - min(len(residents), size // 2)]

    def _competition(self, state: PlanState, size: int) -> list[int]:
        prob = self.problem
        usage = state.gpus / np.maximum(prob.gpu_capacity, 1)
        weights = (usage + 0.05).ravel()
        flat = int(self.rng.choice(weights.size, p=weights / weights.sum()))
        site, slot = divmod(flat, prob.n_slots)
        width = int(self.rng.integers(2, max(3, prob.n_slots // 8)))
        self.focus_sites = (site,)
        self.focus_window = (max(0, slot - 3 * width), slot + 3 * width)
        return self._sample(self._around(state, site, slot - width, slot + width), size)

    def _site_pair(self, state: PlanState, size: int) -> list[int]:
        order = np.argsort(self.site_cost)
        clean = int(order[int(self.rng.integers(0, max(1, len(order) // 2)))])
        dirty = int(order[-1 - int(self.rng.integers(0, max(1, len(order) // 2)))])
        movers = [j for j, p in state.placements.items()
                  if p.site == dirty and clean in self.allowed[j]]
        residents = [j for j, p in state.placements.items() if p.site == clean]
        self.focus_sites = (clean, dirty)
        half = self._sample(movers, size // 2)
        return half + self._sample(residents, size - len(half))

    def _renewable_peak(self, state: PlanState, size: int) -> list[int]:
        prob = self.problem
        site = int(self.rng.choice(self.renewable_sites))
        peak = int(np.argmax(prob.renewable_kw[site] - state.load_kw[site]))
        width = int(self.rng.integers(2, max(3, prob.n_slots // 6)))
        self.focus_sites = (site,)
        self.focus_window = (max(0, peak - 3 * width), peak + 3 * width)
        return self._sample(self._around(state, site, peak - width, peak + width), size)

    def _time_window(self, state: PlanState, size: int) -> list[int]:
        prob = self.problem
        width = int(self.rng.integers(2, max(3, prob.n_slots // 4)))
        lo = int(self.rng.integers(0, max(1, prob.n_slots - width)))
        touching = [j for j, p in state.placements.items()
                    if p.slots[0] < lo + width and p.slots[-1] >= lo]
        self.focus_sites = tuple(int(s) for s in np.argsort(self.site_cost)[:2])
        self.focus_window = (lo, lo + width)
        return self._sample(touching, size)

    def _random(self, state: PlanState, size: int) -> list[int]:
        return self._sample(list(state.placements), size)


#: Least time left (seconds) for a first step: a sub-MIP gets at least 0.05 s, and with its
#: model's build and HiGHS's start a step took 0.2-0.3 s (tight large under a 1 s limit,
#: started 0.06 s before its deadline, ended 0.24 s later having improved nothing).
MIN_STEP_S = 0.15


def large_neighbourhood_search(problem: Problem, plan: Plan, deadline: float,
                               solve_sub: SubSolver, *, seed: int = 0, parallel: int = 1,
                               initial_size: int = 30, sub_time_limit_s: float = 1.0,
                               on_improve: Callable[[Plan, float], None] | None = None,
                               stop_flag: Callable[[], bool] | None = None,
                               ) -> tuple[Plan, LnsStats]:
    """Improve `plan` (all of whose jobs are placed) until `deadline` (time.monotonic)."""
    state = PlanState(problem, plan)
    picker = NeighbourhoodPicker(problem, seed)
    stats = LnsStats()
    size = min(initial_size, len(state.placements))
    if size < 2:
        return state.plan(), stats
    current = state.objective()
    if deadline - time.monotonic() < MIN_STEP_S:
        return state.plan(), stats

    def stopped() -> bool:
        return time.monotonic() >= deadline or (stop_flag is not None and stop_flag())

    def submit(pool: ThreadPoolExecutor) -> tuple[Future, str, list[int], object]:
        kind, jobs = picker.pick(state, size)
        background = state.background(jobs)
        model = build_milp(picker.restrict(state, jobs), jobs, background=background)
        hint = model.encode(Plan(placements={j: state.placements[j] for j in jobs}))
        limit = max(0.05, min(sub_time_limit_s, deadline - time.monotonic()))
        return pool.submit(solve_sub, model, hint, limit, stopped), kind, jobs, model

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        running = [submit(pool) for _ in range(parallel)]
        while running:
            done, _ = wait([r[0] for r in running], return_when=FIRST_COMPLETED)
            for item in [r for r in running if r[0] in done]:
                running.remove(item)
                future, kind, jobs, model = item
                gained = _apply(state, future.result(), model, jobs, current)
                stats.iterations += 1
                tried = stats.by_kind.setdefault(kind, [0, 0])
                tried[0] += 1
                picker.reward(kind, gained > 0)
                if gained > 0:
                    current -= gained
                    tried[1] += 1
                    stats.improvements += 1
                    stats.gain_by_kind[kind] = stats.gain_by_kind.get(kind, 0.0) + gained
                    if on_improve is not None:
                        on_improve(state.plan(), current)
                size = _adapt(size, future.result(), len(state.placements))
                if not stopped():
                    running.append(submit(pool))
    return state.plan(), stats


def _apply(state: PlanState, result: BackendResult, model, jobs: list[int],
           current: float) -> float:
    """Accept the sub-solution if the whole plan stays feasible and improves; returns gain."""
    if result.values is None:
        return 0.0
    moves = model.decode(result.values).placements
    if set(moves) != set(jobs):
        return 0.0
    old = state.replace(moves)
    value = state.objective()
    if state.feasible() and value < current - 1e-9 * max(1.0, abs(current)):
        return current - value
    state.replace(old)
    return 0.0


def _adapt(size: int, result: BackendResult, n_jobs: int) -> int:
    """Grow neighbourhoods the solver closes quickly, shrink ones it cannot finish."""
    if result.status == "optimal" and result.wall_seconds < 0.5:
        size = math.ceil(size * 1.15)
    elif result.status != "optimal":
        size = math.floor(size * 0.8)
    return int(min(max(size, 8), 200, n_jobs))


def repair_unplaced(problem: Problem, plan: Plan, deadline: float, solve_sub: SubSolver,
                    max_neighbours: int = 40, seed: int = 0) -> Plan:
    """Place left-out jobs by re-packing their neighbourhood: each left-out job with the placed
    jobs that compete for its sites and window, solved exactly for the fewest jobs left out
    while everything else stays fixed. Never places fewer jobs than before."""
    rng = np.random.default_rng(seed)
    state = PlanState(problem, plan)
    left = dict(plan.unscheduled)
    allowed = [set(a) for a in problem.allowed_sites]
    for j in sorted(left, key=lambda k: -problem.gpus[k] * problem.duration_slots[k]):
        if time.monotonic() >= deadline:
            break
        lo, hi = problem.first_slot[j], problem.last_slot[j]
        rivals = [k for k, p in state.placements.items() if p.site in allowed[j]
                  and p.slots[0] < hi and p.slots[-1] >= lo]
        if len(rivals) > max_neighbours:
            rivals = rng.choice(rivals, max_neighbours, replace=False).tolist()
        jobs = [j, *rivals]
        model = build_milp(problem, jobs, partial=True, count_objective=True,
                           background=state.background(rivals))
        current = Plan(placements={k: state.placements[k] for k in rivals},
                       unscheduled={j: "left out"})
        limit = max(0.05, min(2.0, deadline - time.monotonic()))
        result = solve_sub(model, model.encode(current), limit, lambda: False)
        if result.values is None:
            continue
        packed = model.decode(result.values)
        if packed.unscheduled or set(packed.placements) != set(jobs):
            continue
        old = state.replace({k: packed.placements[k] for k in rivals})
        state.place(j, packed.placements[j])
        if not state.feasible():
            state.unplace(j)
            state.replace(old)
            continue
        del left[j]
    return Plan(placements=dict(state.placements), unscheduled=left)
