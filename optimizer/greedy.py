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
from dataclasses import dataclass, field

import numpy as np

from gridshift.optimizer import insertion_kernels
from gridshift.optimizer.errors import CancelledError
from gridshift.optimizer.plan import Placement, Plan
from gridshift.optimizer.problem import Problem

UNPLACEABLE = "no site and window where its GPUs and power fit beside the other jobs"


@dataclass(frozen=True)
class _JobView:
    """What the insertion of one job needs that does not change while it is placed: its
    allowed sites as rows of the [S, T] arrays (a slice where they are in site order with no
    gap), its facility power and the power cap at each, and its sizes as Python numbers."""

    rows: slice | np.ndarray
    facility_kw: np.ndarray     # [k, 1]
    cap_kw: np.ndarray          # [k, 1] power cap plus the 1e-9 tolerance
    sites: tuple[int, ...]
    site_rows: np.ndarray       # [k] the allowed sites (int64), for the compiled kernels
    facility_kw_flat: np.ndarray    # [k]
    cap_kw_flat: np.ndarray         # [k]
    gpus: int
    duration_slots: int
    min_run_slots: int
    first_slot: int
    last_slot: int              # exclusive
    splittable: bool
    slot_hours: float

    @staticmethod
    def of(problem: Problem, j: int) -> _JobView:
        sites = np.asarray(problem.allowed_sites[j], dtype=np.int64)
        step = np.diff(sites)
        rows = (slice(int(sites[0]), int(sites[-1]) + 1)
                if len(sites) and (step == 1).all() else sites)
        facility_kw = np.ascontiguousarray(problem.power_kw[j] * problem.pue[sites], float)
        cap_kw = np.ascontiguousarray(problem.power_cap_kw[sites] + 1e-9, float)
        return _JobView(rows, facility_kw[:, None], cap_kw[:, None],
                        tuple(int(s) for s in sites), sites, facility_kw, cap_kw,
                        int(problem.gpus[j]), int(problem.duration_slots[j]),
                        int(problem.min_run_slots[j]), int(problem.first_slot[j]),
                        int(problem.last_slot[j]), _splittable(problem, j), problem.slot_hours)


@dataclass
class _State:
    free_gpus: np.ndarray   # [S, T]
    load_kw: np.ndarray     # [S, T] facility load
    coef: np.ndarray        # [S, T] objective per grid kWh
    problem: Problem
    views: dict[int, _JobView] = field(default_factory=dict)
    demand: dict[tuple[int, int], tuple[int, float]] = field(default_factory=dict)
    renewable_kw: np.ndarray | None = None      # [S, T] the problem's, as the kernels take it

    @staticmethod
    def empty(problem: Problem, views: dict[int, _JobView] | None = None) -> _State:
        """No job placed. ``views``: jobs' constants already computed for this problem (the
        constructions of one ``greedy_plan`` share them), filled as jobs are looked at."""
        # Writable C-ordered float64 copies: the one array type the compiled kernels take.
        return _State(np.array(problem.gpu_capacity, dtype=np.int64, order="C"),
                      np.zeros((problem.n_sites, problem.n_slots)),
                      np.array(problem.grid_cost_per_kwh(), dtype=np.float64, order="C"),
                      problem, views=views if views is not None else {},
                      renewable_kw=np.array(problem.renewable_kw, dtype=np.float64, order="C"))

    def view(self, j: int) -> _JobView:
        """Job j's constants (computed once per state)."""
        found = self.views.get(j)
        if found is None:
            found = self.views[j] = _JobView.of(self.problem, j)
        return found

    def apply(self, j: int, p: Placement, sign: int) -> None:
        slots, site = p.slots, p.site
        first, last = slots[0], slots[-1]
        # Inline lookups: apply() runs about 70 times per ruin-and-recreate step.
        gpus, facility_kw = self.demand.get((j, site)) or self._demand(j, site)
        contiguous = last - first + 1 == len(slots)
        compiled = insertion_kernels.loaded
        if contiguous and compiled is not None:
            compiled.add_run(self.free_gpus, self.load_kw, site, first, last + 1,
                             sign * gpus, sign * facility_kw)
            return
        # A contiguous placement (most are) as a slice: no index array to build.
        idx = slice(first, last + 1) if contiguous else np.asarray(slots, dtype=np.int64)
        self.free_gpus[site, idx] -= sign * gpus
        self.load_kw[site, idx] += sign * facility_kw

    def _demand(self, j: int, site: int) -> tuple[int, float]:
        """Job j's GPUs and facility kW at `site` (kept: apply() runs for every move)."""
        found = self.demand.get((j, site))
        if found is None:
            found = self.demand[j, site] = (int(self.problem.gpus[j]),
                                            self.problem.facility_kw(j, site))
        return found


def slot_costs(problem: Problem, state: _State, j: int, s: int) -> np.ndarray:
    """Objective added per slot if job j ran at site s in that slot, given current loads."""
    return _site_costs(problem, state, j, np.array([s]))[0][0]


def _delay_cost(problem: Problem, j: int, end_slots: np.ndarray) -> np.ndarray:
    w = problem.objective.delay_weight * float(problem.priority[j])
    return w * end_slots * problem.slot_hours


def best_placement(problem: Problem, state: _State, j: int) -> tuple[Placement, float] | None:
    """Cheapest feasible placement of job j given the jobs already in `state`; all allowed
    sites are evaluated at once (ties: the site listed first, then the earliest start)."""
    view = state.view(j)
    compiled = insertion_kernels.loaded
    if compiled is None:        # not loaded (yet: see insertion_kernels), or no numba
        if view.splittable:
            return _best_interruptible(problem, state, j, view)
        return _best_contiguous(problem, state, j, view)
    if view.splittable:
        return _compiled_interruptible(compiled, problem, state, j, view)
    return _compiled_contiguous(compiled, problem, state, j, view)


def _kernel_arrays(state: _State, view: _JobView) -> tuple:
    """The state's arrays and the job's constants, as the compiled kernels take them."""
    return (state.free_gpus, state.load_kw, state.renewable_kw, state.coef,
            view.site_rows, view.facility_kw_flat, view.cap_kw_flat, view.gpus,
            view.slot_hours)


_NO_DELAY = np.zeros(0)


def _compiled_contiguous(compiled, problem: Problem, state: _State, j: int, view: _JobView):
    """_best_contiguous by the compiled kernel (the same placement and cost)."""
    d, lo, hi = view.duration_slots, view.first_slot, view.last_slot
    if hi - d + 1 - lo <= 0:
        return None
    delay = (_delay_cost(problem, j, np.arange(lo + d, hi + 1))
             if problem.objective.delay_weight else _NO_DELAY)
    row, start, cost = compiled.best_contiguous(*_kernel_arrays(state, view), lo, hi, d,
                                                delay)
    if row < 0:
        return None
    return Placement.contiguous(view.sites[row], int(start), d), float(cost)


def _compiled_interruptible(compiled, problem: Problem, state: _State, j: int,
                            view: _JobView):
    """_best_interruptible by the compiled kernel (the same placement and cost)."""
    lo, hi = view.first_slot, view.last_slot
    delay = (_delay_cost(problem, j, np.arange(lo + 1, hi + 1))
             if problem.objective.delay_weight else _NO_DELAY)
    row, slots, cost = compiled.best_interruptible(*_kernel_arrays(state, view), lo, hi,
                                                   view.duration_slots, view.min_run_slots,
                                                   delay)
    if row < 0:
        return None
    return Placement(view.sites[row], tuple(int(t) for t in slots)), float(cost)


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
    view = state.view(j)
    lo, hi, d = view.first_slot, view.last_slot, view.duration_slots
    ok = _fits(state, view, lo, hi)
    if view.splittable:
        return int(np.maximum(0, ok.sum(axis=1) - d + 1).sum())
    if hi - lo < d:
        return 0
    blocked = _blocked(ok)
    return int((blocked[:, d:] - blocked[:, :-d] == 0).sum())


def _blocked(ok: np.ndarray) -> np.ndarray:
    """[k, W+1]: how many of the first w slots of each row do not fit."""
    out = np.empty((ok.shape[0], ok.shape[1] + 1), dtype=np.int64)
    out[:, 0] = 0
    (~ok).cumsum(axis=1, out=out[:, 1:])
    return out


def _fits(state: _State, view: _JobView, lo: int, hi: int) -> np.ndarray:
    """[k, hi - lo]: where the job fits at each allowed site in slots [lo, hi)."""
    return (state.free_gpus[view.rows, lo:hi] >= view.gpus) & (
        state.load_kw[view.rows, lo:hi] + view.facility_kw <= view.cap_kw)


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


def _costs_until(state: _State, view: _JobView, lo: int, hi: int,
                 first: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The job's marginal objective [k, hi - first] per slot in slots [first, hi) at each
    allowed site (the same arithmetic as `_site_costs`, so the same floats), and where it
    fits [k, hi - lo] in slots [lo, hi) (first <= lo)."""
    load = state.load_kw[view.rows, first:hi]
    renewable = state.problem.renewable_kw[view.rows, first:hi]
    with_job = load + view.facility_kw
    # In place, but the same operations in the same order as `_site_costs`.
    cost = with_job - renewable
    np.maximum(0.0, cost, out=cost)
    without_job = load - renewable
    np.maximum(0.0, without_job, out=without_job)
    cost -= without_job
    cost *= view.slot_hours
    cost *= state.coef[view.rows, first:hi]
    ok = state.free_gpus[view.rows, lo:hi] >= view.gpus
    ok &= with_job[:, lo - first:] <= view.cap_kw
    return cost, ok


def _best_contiguous(problem: Problem, state: _State, j: int, view: _JobView):
    """Cheapest feasible start over all allowed sites from prefix sums of the slot costs
    (summed from slot 0, as the first version did, so that the same floats come out)."""
    d, lo, hi = view.duration_slots, view.first_slot, view.last_slot
    n_starts = hi - d + 1 - lo
    if n_starts <= 0:
        return None
    cost, ok = _costs_until(state, view, lo, hi)
    cum = np.empty((cost.shape[0], hi + 1))
    cum[:, 0] = 0.0
    cost.cumsum(axis=1, out=cum[:, 1:])
    window_cost = cum[:, lo + d:] - cum[:, lo:lo + n_starts]
    if problem.objective.delay_weight:
        window_cost += _delay_cost(problem, j, np.arange(lo + d, hi + 1))
    if not ok.all():
        blocked = _blocked(ok)
        window_cost[blocked[:, d:] > blocked[:, :n_starts]] = np.inf
    best = int(window_cost.argmin())
    row, col = divmod(best, n_starts)
    if not np.isfinite(window_cost[row, col]):
        return None
    return Placement.contiguous(view.sites[row], lo + col, d), float(window_cost[row, col])


def _window_costs(cost: np.ndarray, m: int) -> np.ndarray:
    """[k, W] the cost of the m slots ending at each slot, summed left to right (inf where
    fewer than m slots precede it, or where one of them does not fit)."""
    k, width = cost.shape
    window = np.full((k, width), np.inf)
    if width >= m:
        total = cost[:, :width - m + 1].copy()
        for a in range(1, m):
            total += cost[:, a:width - m + 1 + a]
        window[:, m - 1:] = total
    return window


def _best_interruptible(problem: Problem, state: _State, j: int, view: _JobView):
    """DP over slots, all sites at once, over (slots chosen c, idle or running): a run
    starts as a block of min_run slots (from the idle state min_run slots back) and then
    grows one slot at a time, so every run is at least min_run long. The same sums in the
    same order as insertion_jit.best_interruptible, so the same placement and cost."""
    d, m = view.duration_slots, view.min_run_slots
    lo, hi = view.first_slot, view.last_slot
    cost, ok = _costs_until(state, view, lo, hi, first=lo)
    k, width = ok.shape
    cost[~ok] = np.inf
    window = _window_costs(cost, m)
    delay = (_delay_cost(problem, j, np.arange(lo + 1, hi + 1)).tolist()
             if problem.objective.delay_weight else None)
    # idle[i]: not running before slot lo + i; run: in a run of at least m slots.
    idle = np.full((width + 1, k, d + 1), np.inf)
    idle[0, :, 0] = 0.0
    run = np.full((k, d + 1), np.inf)
    go_on, begin = np.full((k, d + 1), np.inf), np.full((k, d + 1), np.inf)
    ended = np.empty((width, k, d + 1), dtype=bool)
    started = np.empty((width, k, d + 1), dtype=bool)
    for i in range(width):
        np.less(run, idle[i], out=ended[i])
        np.minimum(idle[i], run, out=idle[i + 1])
        np.add(run[:, :-1], cost[:, i, None], out=go_on[:, 1:])
        if i + 1 >= m:
            np.add(idle[i + 1 - m, :, :d + 1 - m], window[:, i, None], out=begin[:, m:])
        np.less(begin, go_on, out=started[i])
        run = np.where(started[i], begin, go_on)
        if delay is not None:
            run[:, d] += delay[i]
    final_idle, final_run = idle[width, :, d], run[:, d]
    end_running = final_run < final_idle
    totals = np.where(end_running, final_run, final_idle)
    row = int(np.argmin(totals))
    if not np.isfinite(totals[row]):
        return None
    slots = _backtrack(ended[:, row], started[:, row], lo, d, m, bool(end_running[row]))
    return Placement(view.sites[row], slots), float(totals[row])


def _backtrack(ended: np.ndarray, started: np.ndarray, lo: int, d: int, m: int,
               running: bool) -> tuple[int, ...]:
    """The slots of the DP's best path ending with d slots chosen (running or idle);
    ``ended``/``started`` [W, d + 1]: where the idle state came from a run, and where the
    running state began a run of m slots."""
    chosen: list[int] = []
    c, i = d, ended.shape[0] - 1
    while c > 0:
        if not running:
            running = bool(ended[i, c])
        elif started[i, c]:
            chosen.extend(range(lo + i - m + 1, lo + i + 1))
            c, i, running = c - m, i - m, False
            continue
        else:
            chosen.append(lo + i)
            c -= 1
        i -= 1
    return tuple(sorted(chosen))


def construct(problem: Problem, order: list[int], jobs: set[int] | None = None,
              stop: Callable[[], bool] | None = None,
              views: dict[int, _JobView] | None = None) -> Plan:
    """Place jobs in `order` (restricted to `jobs` if given) one by one at their cheapest spot;
    ``stop()`` (the caller gave up) is asked every 256 jobs: CancelledError. ``views``: as
    :meth:`_State.empty` takes them."""
    state = _State.empty(problem, views)
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
            stop: Callable[[], bool] | None = None,
            views: dict[int, _JobView] | None = None) -> Plan:
    """Remove-and-reinsert local search until no job moves, the deadline (time.monotonic) or
    `stop()` (a cancelled call). ``views``: as :meth:`_State.empty` takes them."""
    if time.monotonic() >= deadline:
        return plan             # the fleet's state alone takes 0.3 s to build on 10,000 jobs
    state = _State.empty(problem, views)
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


#: Share of the jobs a first construction may leave out for a restart (those jobs first) to
#: run past the budget even where the earliest-fit schedule places every job.
FEW_LEFT_OUT_SHARE = 0.02


def greedy_plan(problem: Problem, time_budget_s: float = 1.0, seed: int = 0,
                jobs: set[int] | None = None,
                on_first_plan: Callable[[Plan], None] | None = None,
                stop: Callable[[], bool] | None = None,
                restarts_until: float | None = None,
                on_first_pass: Callable[[Plan], None] | None = None) -> Plan:
    """Best of several constructions (fewest unplaced jobs, then fewest GPU-hours left out,
    then lowest objective), improved
    by local search. Jobs that fail to place are retried first in a restart; where the first
    construction leaves jobs out, the earliest-fit schedule (`earliest_fit_plan`) is a
    candidate too. The first plan (the better of the first construction and that schedule)
    is reported through `on_first_plan` as soon as it exists. `stop()` (a cancelled call)
    ends the search after the construction in progress. After ``restarts_until``
    (time.monotonic(), where given: the call's own deadline) a restart starts only while no
    plan places every job, or once where the best plan is the earliest-fit schedule.
    ``on_first_pass`` gets the first construction as it is (before the earliest-fit schedule
    or any restart): the jobs cost-first insertion leaves out tell how hard capacity binds."""
    from gridshift.optimizer.accounting import plan_objective

    started = time.monotonic()
    deadline = build_until = started + time_budget_s
    best, best_key = None, None
    orders = job_orders(problem, seed)
    views: dict[int, _JobView] = {}     # each job's constants, computed once for every pass
    restarts, restart_queued = 0, False
    fitted, skip_restarts = None, False

    def key_of(plan: Plan) -> tuple[int, float, float]:
        return (len(plan.unscheduled), left_out_gpu_hours(problem, plan),
                plan_objective(problem, plan))

    late_restarts = 0

    # Past the budget, only a queued restart for left-out jobs still runs (at most 3), unless
    # the earliest-fit schedule already placed every job where many were left out. Past
    # ``restarts_until``: while no plan places every job, and once where the best is the
    # earliest-fit schedule, which saves next to nothing against FIFO (2,000 jobs x 10
    # sites at 1 s: 2,830 kg without the restart, 1,536 with it, 0.5 s later).
    def late() -> bool:
        return restarts_until is not None and time.monotonic() >= restarts_until

    def restart_allowed() -> bool:
        return (restart_queued and not skip_restarts
                and (not late() or best_key is None or best_key[0] > 0
                     or (best is fitted and late_restarts == 0)))

    while orders and (best is None or time.monotonic() < build_until or restart_allowed()):
        if restart_queued and late():
            late_restarts += 1
        order = orders.pop(0)
        restart_queued = False
        plan = construct(problem, order, jobs, stop, views)
        if stop is not None and stop():
            raise CancelledError("the call ended while its first plan was being built")
        key = key_of(plan)
        if on_first_pass is not None:
            on_first_pass(plan)
            on_first_pass = None
        if best is None and plan.unscheduled:
            # Deadlines as tight as a first-come-first-served schedule needs (a busy fleet's
            # night) defeat cost-first insertion: the earliest-fit schedule places every job.
            # It is the plan to beat, and local search gets half the budget.
            fitted = earliest_fit_plan(problem, jobs)
            best, best_key = fitted, key_of(fitted)
            # Where only a few jobs were left out, a restart with them first usually places
            # every job at far less cost (xlarge, 10,000 jobs: 20 left out; the restart
            # places all at 28,891 kg against the earliest-fit schedule's 54,216), so it
            # still runs; where many were (tight nights: 18-27 %), it rarely does.
            many_left_out = len(plan.unscheduled) > FEW_LEFT_OUT_SHARE * len(order)
            skip_restarts = not fitted.unscheduled and many_left_out
            if skip_restarts:
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
        if best_key[0] == 0 and (best is not fitted or skip_restarts):
            restart_queued = False
        if stop is not None and stop():
            break
    assert best is not None
    return improve(problem, best, deadline, stop, views)


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
