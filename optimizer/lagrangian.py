"""A Lagrangian relaxation: a lower bound at every size, and each job's preferred placement.

GPU capacity, power caps and the renewable term are priced out with multipliers λ (per GPU
per slot), μ (per facility kW per slot) and ν (per facility kW per slot of renewable supply),
so the problem falls apart into one tiny problem per job: its cheapest (site, start) under
the adjusted prices. Writing grid = load − u with renewable use 0 ≤ u ≤ min(load, R) and
pricing u ≤ load with ν ∈ [0, c] gives, for any multipliers,

    L(λ, μ, ν) = Σ_j min over placements of Σ_slots [kw (c − ν + μ) + gpus λ]
                 − Σ λ·cap − Σ μ·power_cap − Σ (c − ν)·R      ≤ optimum,

where c is the objective per facility kWh in the slot (grid kg, cost). Interruptible jobs take
their d cheapest slots (the minimum-run rule is relaxed, which keeps the bound valid); the
delay term enters exactly for contiguous jobs and by its smallest value for interruptible
ones. Subgradient steps (Polyak, against the best known plan) raise the bound; its limit is
the LP relaxation's value. Everything is vectorised over jobs, sites and starts in chunks.
Valid only when every objective weight per grid kWh is non-negative.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from gridshift.optimizer.problem import Problem

CHUNK_CELLS = 4_000_000     # jobs x sites x slots evaluated at once (memory bound)
SUBPROBLEM_THREADS = 2      # chunks of jobs priced at once (the machine's two cores)


@dataclass
class LagrangianResult:
    bound: float                 # best lower bound found (objective units, offsets included)
    iterations: int
    site: np.ndarray             # [J] preferred site at the best multipliers
    start: np.ndarray            # [J] preferred start slot (contiguous jobs; -1 otherwise)
    wall_seconds: float
    valid: bool = True


class _Jobs:
    """Per-job arrays used by the vectorised subproblem."""

    def __init__(self, problem: Problem) -> None:
        S = problem.n_sites
        self.allowed = np.zeros((problem.n_jobs, S), dtype=bool)
        for j, sites in enumerate(problem.allowed_sites):
            self.allowed[j, list(sites)] = True
        self.kw = problem.power_kw[:, None] * problem.pue[None, :]          # [J, S]
        self.gpus = problem.gpus.astype(float)
        self.d = problem.duration_slots
        self.first = problem.first_slot
        self.last = problem.last_slot
        self.contiguous = ~problem.interruptible | (problem.min_run_slots >= self.d)
        w = problem.objective.delay_weight * problem.priority * problem.slot_hours
        self.delay_per_slot = w                                              # per end slot
        self.delay_offset = -problem.objective.delay_weight * problem.priority * (
            problem.earliest_hours + problem.duration_minutes / 60.0)


def _subproblem(jobs: _Jobs, idx: np.ndarray, kw_price: np.ndarray, gpu_price: np.ndarray,
                T: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cheapest adjusted cost, site and start of jobs idx. Prices are [S, T]."""
    n = len(idx)
    best = np.full(n, np.inf)
    site = np.zeros(n, dtype=np.int64)
    start = np.full(n, -1, dtype=np.int64)
    contiguous = jobs.contiguous[idx]
    if contiguous.any():
        c = np.flatnonzero(contiguous)
        best[c], site[c], start[c] = _contiguous_best(jobs, idx[c], kw_price, gpu_price, T)
    if (~contiguous).any():
        k = np.flatnonzero(~contiguous)
        best[k], site[k] = _interruptible_best(jobs, idx[k], kw_price, gpu_price, T)
    return best, site, start


def _contiguous_best(jobs: _Jobs, idx: np.ndarray, kw_price: np.ndarray, gpu_price: np.ndarray,
                     T: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cheapest (cost, site, start) of contiguous jobs. A run's price per kW and per GPU
    depends only on its length, so it comes from prefix sums once per distinct duration, and
    a job's cost is one multiply-add per (site, start)."""
    kw_cum = np.concatenate([np.zeros((kw_price.shape[0], 1)), np.cumsum(kw_price, axis=1)], 1)
    gpu_cum = np.concatenate([np.zeros((gpu_price.shape[0], 1)), np.cumsum(gpu_price, axis=1)],
                             1)
    best = np.full(len(idx), np.inf)
    site = np.zeros(len(idx), dtype=np.int64)
    start = np.full(len(idx), -1, dtype=np.int64)
    d_all = jobs.d[idx]
    for d in np.unique(d_all):
        group = np.flatnonzero(d_all == d)
        j = idx[group]
        starts = np.arange(T - d + 1)
        if len(starts) == 0:         # longer than the horizon: no start (cost stays inf)
            start[group] = 0
            continue
        run_kw = kw_cum[:, starts + d] - kw_cum[:, starts]                   # [S, starts]
        run_gpu = gpu_cum[:, starts + d] - gpu_cum[:, starts]
        cost = (jobs.kw[j][:, :, None] * run_kw[None] + jobs.gpus[j][:, None, None] * run_gpu[None]
                + (jobs.delay_per_slot[j][:, None] * (starts + d)[None, :])[:, None, :])
        ok = (starts[None, :] >= jobs.first[j][:, None]) & (
            starts[None, :] + d <= jobs.last[j][:, None])
        cost = np.where(ok[:, None, :] & jobs.allowed[j][:, :, None], cost, np.inf)
        flat = cost.reshape(len(j), -1)
        arg = np.argmin(flat, axis=1)
        best[group] = flat[np.arange(len(j)), arg]
        site[group], start[group] = np.divmod(arg, len(starts))
    return best, site, start


def _interruptible_best(jobs: _Jobs, idx: np.ndarray, kw_price: np.ndarray,
                        gpu_price: np.ndarray, T: int) -> tuple[np.ndarray, np.ndarray]:
    """Cheapest (cost, site) of interruptible jobs: their d cheapest slots in the window."""
    cost = (jobs.kw[idx][:, :, None] * kw_price[None] +
            jobs.gpus[idx][:, None, None] * gpu_price[None])                 # [n, S, T]
    S = cost.shape[1]
    t = np.arange(T)
    inside = (t[None, :] >= jobs.first[idx][:, None]) & (t[None, :] < jobs.last[idx][:, None])
    masked = np.where(inside[:, None, :], cost, np.inf)
    ordered = np.sort(masked, axis=2)
    d = jobs.d[idx]
    picked = np.cumsum(np.where(np.isfinite(ordered), ordered, 0.0), axis=2)
    total = np.take_along_axis(picked, (d - 1)[:, None, None].repeat(S, 1), axis=2)[..., 0]
    enough = np.isfinite(np.take_along_axis(ordered, (d - 1)[:, None, None].repeat(S, 1),
                                            axis=2)[..., 0])
    total = np.where(enough & jobs.allowed[idx], total, np.inf)
    site = np.argmin(total, axis=1)
    best = total[np.arange(len(idx)), site] + jobs.delay_per_slot[idx] * (jobs.first[idx] + d)
    return best, site


def _usage(problem: Problem, jobs: _Jobs, site: np.ndarray, start: np.ndarray,
           kw_price: np.ndarray, gpu_price: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GPU and facility-kW usage [S, T] of the preferred placements (interruptible jobs: their
    d cheapest slots)."""
    S, T = problem.n_sites, problem.n_slots
    gpus = np.zeros((S, T + 1))
    kw = np.zeros((S, T + 1))
    c = np.flatnonzero(jobs.contiguous)
    j_kw = jobs.kw[c, site[c]]
    for arr, amount in ((gpus, jobs.gpus[c]), (kw, j_kw)):
        np.add.at(arr, (site[c], start[c]), amount)
        np.add.at(arr, (site[c], start[c] + jobs.d[c]), -amount)
    gpus, kw = np.cumsum(gpus, axis=1)[:, :T], np.cumsum(kw, axis=1)[:, :T]
    for j in np.flatnonzero(~jobs.contiguous):
        s = site[j]
        cost = jobs.kw[j, s] * kw_price[s] + jobs.gpus[j] * gpu_price[s]
        window = np.arange(jobs.first[j], jobs.last[j])
        chosen = window[np.argsort(cost[window], kind="stable")[:jobs.d[j]]]
        gpus[s, chosen] += jobs.gpus[j]
        kw[s, chosen] += jobs.kw[j, s]
    return gpus, kw


def lagrangian_bound(problem: Problem, upper_bound: float, time_budget_s: float = 2.0,
                     max_iterations: int = 200,
                     stop: Callable[[], bool] | None = None) -> LagrangianResult:
    """Subgradient ascent on L(λ, μ, ν); see the module docstring. `upper_bound` is the
    objective of a known plan (Polyak step target); `stop()` (a cancelled call) ends it."""
    started = time.monotonic()
    S, T, J = problem.n_sites, problem.n_slots, problem.n_jobs
    c = problem.grid_cost_per_kwh() * problem.slot_hours          # per facility kW per slot
    if (c < 0).any() or J == 0:
        return LagrangianResult(-math.inf, 0, np.zeros(J, int), np.full(J, -1), 0.0, False)
    jobs = _Jobs(problem)
    R = problem.renewable_kw
    cap = problem.gpu_capacity.astype(float)
    pcap = np.where(np.isfinite(problem.power_cap_kw), problem.power_cap_kw, 0.0)[:, None] * \
        np.ones((1, T))
    capped = np.isfinite(problem.power_cap_kw)[:, None] & np.ones((1, T), dtype=bool)
    lam, mu, nu = np.zeros((S, T)), np.zeros((S, T)), np.zeros((S, T))
    nu[R > 0] = 0.0
    offset = float(jobs.delay_offset.sum())
    best = LagrangianResult(-math.inf, 0, np.zeros(J, int), np.full(J, -1), 0.0)
    theta, stall = 1.0, 0
    chunk = max(1, min(CHUNK_CELLS // max(1, S * T), math.ceil(J / SUBPROBLEM_THREADS)))
    it = 0
    with ThreadPoolExecutor(max_workers=SUBPROBLEM_THREADS) as pool:
        for it in range(1, max_iterations + 1):
            kw_price = c - nu + mu
            total, site, start = 0.0, np.zeros(J, int), np.full(J, -1)
            chunks = [np.arange(lo, min(J, lo + chunk)) for lo in range(0, J, chunk)]
            # numpy releases the GIL in its array loops, so chunks solve on both cores at once.
            priced = pool.map(_subproblem, [jobs] * len(chunks), chunks,
                              [kw_price] * len(chunks), [lam] * len(chunks), [T] * len(chunks))
            for idx, (value, idx_site, idx_start) in zip(chunks, priced, strict=True):
                site[idx], start[idx] = idx_site, idx_start
                total += float(value.sum())
            value = total - float((lam * cap).sum()) - float((mu * pcap)[capped].sum()) \
                - float(((c - nu) * R).sum()) + offset
            if value > best.bound + 1e-12 * max(1.0, abs(value)):
                best = LagrangianResult(value, it, site.copy(), start.copy(), 0.0)
                stall = 0
            else:
                stall += 1
                if stall >= 5:
                    theta, stall = theta / 2, 0
            gpus, kw = _usage(problem, jobs, site, start, kw_price, lam)
            g_lam = gpus - cap
            g_mu = np.where(capped, kw - pcap, 0.0)
            g_nu = np.where(nu < c, R, 0.0) - kw
            g_nu = np.where(R > 0, g_nu, 0.0)
            norm = float((g_lam ** 2).sum() + (g_mu ** 2).sum() + (g_nu ** 2).sum())
            gap = upper_bound - value
            if norm < 1e-12 or gap <= 1e-9 * max(1.0, abs(upper_bound)) or theta < 1e-4:
                break
            step = theta * gap / norm
            lam = np.maximum(0.0, lam + step * g_lam)
            mu = np.maximum(0.0, mu + step * g_mu)
            nu = np.clip(nu + step * g_nu, 0.0, c)
            if time.monotonic() - started > time_budget_s or (stop is not None and stop()):
                break
    best.iterations = it
    best.wall_seconds = time.monotonic() - started
    return best


def rounded_plan(problem: Problem, jobs: list[int], result: LagrangianResult,
                 by_slack: bool = True, first: frozenset[int] = frozenset()):
    """A plan from the Lagrangian preferences: jobs (tight windows first, or big energy first;
    the jobs in `first` before all others) take their preferred (site, start) when it still
    fits, else their cheapest feasible spot. `result` must come from `lagrangian_bound` on the
    problem restricted to `jobs` (same order). Returns a Plan; jobs that fit nowhere are
    unscheduled."""
    from gridshift.optimizer import greedy
    from gridshift.optimizer.plan import Placement, Plan

    state = greedy._State.empty(problem)
    plan = Plan()
    slack = problem.last_slot - problem.first_slot - problem.duration_slots
    energy = problem.power_kw * problem.duration_slots * problem.gpus
    order = sorted(range(len(jobs)), key=(lambda k: (jobs[k] not in first, slack[jobs[k]],
                                                     -energy[jobs[k]]))
                   if by_slack else (lambda k: (jobs[k] not in first, -energy[jobs[k]])))
    for k in order:
        j = jobs[k]
        placed = None
        if result.start[k] >= 0:
            site, start = int(result.site[k]), int(result.start[k])
            candidate = Placement.contiguous(site, start, int(problem.duration_slots[j]))
            slots = list(candidate.slots)
            fits = (state.free_gpus[site, slots] >= problem.gpus[j]).all() and (
                state.load_kw[site, slots] + problem.facility_kw(j, site)
                <= problem.power_cap_kw[site] + 1e-9).all()
            placed = candidate if fits else None
        if placed is None:
            found = greedy.best_placement(problem, state, j)
            placed = found[0] if found else None
        if placed is None:
            plan.unscheduled[j] = "no room left for the Lagrangian preference"
            continue
        plan.placements[j] = placed
        state.apply(j, placed, +1)
    return plan
