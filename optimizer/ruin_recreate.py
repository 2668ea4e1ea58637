"""Ruin and recreate: a local search for plans whose sites' capacity binds.

When capacity binds, a job can rarely move alone: the clean slot it would go to is full. A
step here takes a handful of related jobs out ("ruin") and puts them back one by one, each at
its cheapest feasible placement given everything else ("recreate", the exact marginal
objective of optimizer/greedy.py, renewables included). Moving several jobs at once lets them
trade places — a job leaves a clean slot so that a bigger or hungrier one takes it — which is
what swaps and ejection chains do, without enumerating them.

Ruin kinds (chosen adaptively: kinds that improve the plan are picked more often):

- *clean window*: the jobs at a clean site in a time window, plus jobs elsewhere that could
  move in — frees capacity in the cleanest slots and offers it to the jobs that gain most;
- *time window*: the jobs running in a window at every site;
- *related*: a job and the jobs that compete with it (a shared site, overlapping windows),
  nearest in time first;
- *worst*: the jobs furthest above their cheapest placement on an empty fleet;
- *random*.

Recreation inserts the removed jobs biggest first (GPU-slots), least slack first, or in a
random order. A step that leaves a job without room is undone. Steps are accepted by
simulated annealing on the exact objective, cooled over the time given, so a longer time
limit searches longer before settling; the best plan seen is returned.

Where the compiled kernels are loaded (optimizer/insertion_kernels.py), a recreation is one
kernel call (the same placements as the job-by-job loop here), jobs move out and back in one
call, and placements are held as arrays; Placement objects are made only for plans. A search
of WAIT_FOR_KERNELS_MIN_S or more then runs the whole loop compiled (optimizer/annealing_jit.py
through _CompiledLoop: the same step, 2.7-4 times the steps per second, its own generator).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from gridshift.optimizer import greedy, insertion_kernels
from gridshift.optimizer.plan import Placement, Plan
from gridshift.optimizer.problem import Problem
from gridshift.optimizer.recreation_status import DONE, OVER, STUCK

RUIN_KINDS = ("clean_window", "time_window", "related", "worst", "random")
RECREATE_ORDERS = ("fewest_options", "big_first", "tight_first", "random")
#: Recreations retried per step, each with the job that found no room first.
RETRIES = 2
#: Jobs taken out per step: between these, drawn per step.
MIN_RUIN, MAX_RUIN = 3, 30
#: Searches at least this long (seconds) wait for the compiled insertion to load, for at most
#: this share of their time (a search without it runs on NumPy).
WAIT_FOR_KERNELS_MIN_S, KERNELS_WAIT_SHARE = 2.0, 0.3
#: Whether a long search runs the compiled loop where numba loads (False: step by step in
#: Python even then, each recreation compiled: for comparisons and for the tests of both).
COMPILED_LOOP = True
#: Temperature at the start and the end, per job of mean objective (cooled geometrically);
#: plans of more than HOT_START_MAX_JOBS jobs start at COOL_START. Measured (README, "A
#: hotter start"): on tight medium at 10 s a start of 0.8 against 0.05 took the plans from
#: +1.5 % to +0.5 % above the references, and large (2,000 jobs) 0.4 % lower at 10 s and
#: 60 s; on 10,000 jobs at 60 s it was 0.2-0.35 % worse (0.16 too).
START_TEMPERATURE, END_TEMPERATURE = 0.8, 0.0005
HOT_START_MAX_JOBS, COOL_START = 2000, 0.05


@dataclass
class RecreateStats:
    """What a search did: steps, accepted steps, improvements of the best, by ruin kind."""

    steps: int = 0
    accepted: int = 0
    improved: int = 0
    failed: int = 0
    by_kind: dict[str, list[int]] = field(default_factory=dict)   # kind -> [tried, improved]

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {v[1]}/{v[0]}" for k, v in sorted(self.by_kind.items()))
        return (f"ruin and recreate: {self.improved} improvements in {self.steps} steps "
                f"({self.accepted} accepted, {self.failed} without room; by kind "
                f"improved/tried: {kinds})")


class _JobTable:
    """Every job's constants as the compiled recreation takes them (insertion_jit.recreate):
    allowed sites padded into rows, facility kW and power cap per allowed site (as
    greedy._JobView), sizes, windows, whether it may split, its delay weight; and buffers
    for the placements the kernel writes."""

    def __init__(self, problem: Problem) -> None:
        n, n_sites = problem.n_jobs, problem.n_sites
        site_rows = np.zeros((n, n_sites), dtype=np.int64)
        n_rows = np.zeros(n, dtype=np.int64)
        facility_kw = np.zeros((n, n_sites))
        cap_kw = np.zeros((n, n_sites))
        for j, allowed in enumerate(problem.allowed_sites):
            sites = np.asarray(allowed, dtype=np.int64)
            k = n_rows[j] = len(sites)
            site_rows[j, :k] = sites
            facility_kw[j, :k] = problem.power_kw[j] * problem.pue[sites]
            cap_kw[j, :k] = problem.power_cap_kw[sites] + 1e-9
        splittable = np.array([greedy._splittable(problem, j) for j in range(n)], dtype=bool)
        delay_w = problem.objective.delay_weight * problem.priority.astype(float)
        ints = [np.ascontiguousarray(a, dtype=np.int64) for a in (
            problem.gpus, problem.first_slot, problem.last_slot, problem.duration_slots,
            problem.min_run_slots)]
        self.arrays = (site_rows, n_rows, facility_kw, cap_kw, *ints, splittable,
                       np.ascontiguousarray(delay_w, dtype=np.float64),
                       bool(problem.objective.delay_weight))
        self.out_site = np.zeros(n, dtype=np.int64)
        self.out_slots = np.zeros((n, max(1, int(problem.duration_slots.max(initial=1)))),
                                  dtype=np.int64)


class _Taken(NamedTuple):
    """Jobs taken out of a schedule and where they were (to put them back)."""

    jobs: np.ndarray        # int64, in the order taken
    site: np.ndarray        # [k]
    slots: np.ndarray       # [k, longest duration]: each job's slots, then padding


class _Schedule:
    """Placements with the fleet's free GPUs and loads, and the exact objective. A job's
    placement is held as arrays (site, slots); Placement objects are made only for plans."""

    def __init__(self, problem: Problem, plan: Plan, movable: np.ndarray | None = None
                 ) -> None:
        self.problem = problem
        #: The jobs a step may take out (the others stay where they are).
        self.movable = np.ones(problem.n_jobs, dtype=bool) if movable is None else movable
        self.state = greedy._State.empty(problem)
        n = problem.n_jobs
        self.site = np.full(n, -1, dtype=np.int64)      # -1: not placed
        self.lo = np.zeros(n, dtype=np.int64)
        self.hi = np.zeros(n, dtype=np.int64)
        self.durations = [int(d) for d in problem.duration_slots]
        self.durations_array = np.ascontiguousarray(problem.duration_slots, dtype=np.int64)
        self.slots_of = np.zeros((n, max(1, max(self.durations, default=1))), dtype=np.int64)
        self.gpus = np.ascontiguousarray(problem.gpus, dtype=np.int64)
        self.cost_per_kw = problem.grid_cost_per_kwh() * problem.slot_hours
        self.delay = problem.objective.delay_weight * problem.priority * problem.slot_hours
        self._table: _JobTable | None = None
        for j, p in plan.placements.items():
            self.put(j, p)

    def put(self, j: int, p: Placement) -> None:
        self.state.apply(j, p, +1)
        self.site[j], self.lo[j], self.hi[j] = p.site, p.start_slot, p.end_slot
        self.slots_of[j, :len(p.slots)] = p.slots

    def placement(self, j: int) -> Placement:
        """Where job j (placed) runs."""
        return Placement(int(self.site[j]), tuple(self.slots_of[j, :self.durations[j]].tolist()))

    @property
    def placements(self) -> dict[int, Placement]:
        """Every placed job's placement (made anew on each call)."""
        return {j: self.placement(j) for j in np.flatnonzero(self.site >= 0).tolist()}

    def n_placed(self) -> int:
        return int((self.site >= 0).sum())

    def table(self) -> _JobTable:
        """The jobs' constants for the compiled recreation (built on first use)."""
        if self._table is None:
            self._table = _JobTable(self.problem)
        return self._table

    def movable_placed(self) -> np.ndarray:
        """Mask of the jobs placed that a step may take out."""
        return (self.site >= 0) & self.movable

    def take_out(self, jobs: np.ndarray) -> _Taken:
        """Take the placed `jobs` out, in their order; where they were."""
        taken = _Taken(jobs, self.site[jobs], self.slots_of[jobs])
        self._move(jobs, -1)
        self.site[jobs] = -1
        return taken

    def put_back(self, taken: _Taken) -> None:
        """Put the jobs of `taken` (none of them placed now) where they were."""
        jobs = taken.jobs
        self.site[jobs] = taken.site
        self.slots_of[jobs] = taken.slots
        self.lo[jobs] = taken.slots[:, 0]
        self.hi[jobs] = taken.slots[np.arange(len(jobs)), self.durations_array[jobs] - 1] + 1
        self._move(jobs, +1)

    def _move(self, jobs: np.ndarray, sign: int) -> None:
        """Apply the placements of `jobs` (site, slots_of) to the state, in or out."""
        compiled = insertion_kernels.loaded
        if compiled is None:
            for j in jobs.tolist():
                self.state.apply(j, self.placement(j), sign)
            return
        p = self.problem
        compiled.move_jobs(self.state.free_gpus, self.state.load_kw, jobs, self.site,
                           self.slots_of, self.durations_array, self.gpus, p.power_kw, p.pue,
                           sign)

    def objective(self) -> float:
        """The plan's objective up to the delay term's constant (as optimizer.lns)."""
        grid = np.maximum(0.0, self.state.load_kw - self.problem.renewable_kw)
        value = float((grid * self.cost_per_kw).sum())
        if self.problem.objective.delay_weight:
            placed = self.site >= 0
            value += float((self.delay[placed] * self.hi[placed]).sum())
        return value

    def snapshot(self) -> _Taken:
        """Every placed job's placement, as arrays (cheap: kept for the best plan)."""
        jobs = np.flatnonzero(self.site >= 0)
        return _Taken(jobs, self.site[jobs], self.slots_of[jobs])

    def plan_of(self, snapshot: _Taken) -> Plan:
        """The plan a snapshot holds."""
        durations = self.durations
        return Plan(placements={
            j: Placement(site, tuple(slots[:durations[j]]))
            for j, site, slots in zip(snapshot.jobs.tolist(), snapshot.site.tolist(),
                                      snapshot.slots.tolist(), strict=True)})

    def plan(self) -> Plan:
        return self.plan_of(self.snapshot())


class _Ruiner:
    """Chooses the jobs a step takes out."""

    def __init__(self, problem: Problem, rng: np.random.Generator,
                 kinds: tuple[str, ...] = RUIN_KINDS, ideal: np.ndarray | None = None) -> None:
        self.problem = problem
        self.rng = rng
        coef = problem.grid_cost_per_kwh()
        self.allowed = np.zeros((problem.n_jobs, problem.n_sites), dtype=bool)
        for j, sites in enumerate(problem.allowed_sites):
            self.allowed[j, list(sites)] = True
        # Each job's allowed sites as bits, where they fit in one integer: whether two jobs
        # share a site is then one AND (a boolean matrix product otherwise).
        self.site_bits = (self.allowed.astype(np.int64) << np.arange(problem.n_sites)).sum(
            axis=1) if problem.n_sites <= 62 else None
        self._ideal = ideal
        self.weights = dict.fromkeys(kinds, 1.0)
        self._ruins = {kind: getattr(self, f"_{kind}") for kind in kinds}
        # Fixed for the search: a (site, slot) cell's chance in a clean-window ruin (cleaner
        # cells likelier: rank-based weights) and the prefix sums that rank the worst jobs.
        flat = coef.ravel()
        ranks = np.empty(flat.size)
        ranks[np.argsort(flat)] = np.arange(flat.size)
        weights = np.exp(-3.0 * ranks / flat.size)
        self.cell_chance = weights / weights.sum()
        # Drawn by inverse transform (rng.choice with p= rebuilds this on every call).
        self.cell_cdf = np.cumsum(self.cell_chance)
        self.coef_cum = np.concatenate([np.zeros((problem.n_sites, 1)), np.cumsum(coef, axis=1)],
                                       axis=1)

    @property
    def ideal(self) -> np.ndarray:
        """Each job's cheapest placement on an empty fleet, computed on first use (a
        construction's worth of work: 0.5 s for 2,000 jobs)."""
        if self._ideal is None:
            self._ideal = ideal_costs(self.problem)
        return self._ideal

    def reward(self, kind: str, improved: bool) -> None:
        w = self.weights[kind]
        self.weights[kind] = min(5.0, w * 1.2) if improved else max(0.3, w * 0.995)

    def pick(self, sched: _Schedule, size: int) -> tuple[str, np.ndarray]:
        kind = self._draw_kind()
        jobs = self._ruins[kind](sched, size)
        if len(jobs) < 2:
            kind, jobs = "random", self._random(sched, size)
        return kind, jobs

    def _draw_kind(self) -> str:
        """A ruin kind, each as likely as its weight."""
        weights = self.weights
        x = self.rng.random() * sum(weights.values())
        for kind, w in weights.items():
            x -= w
            if x < 0:
                return kind
        return kind

    def _sample(self, candidates: np.ndarray, size: int) -> np.ndarray:
        """At most `size` of `candidates` (distinct job indices), drawn at random."""
        if len(candidates) <= size:
            return candidates
        return self.rng.choice(candidates, size, replace=False)

    def _window(self, width_max: int) -> tuple[int, int]:
        T = self.problem.n_slots
        width = int(self.rng.integers(2, max(3, width_max)))
        lo = int(self.rng.integers(0, max(1, T - width)))
        return lo, lo + width

    def _overlapping(self, sched: _Schedule, lo: int, hi: int) -> np.ndarray:
        return sched.movable_placed() & (sched.lo < hi) & (sched.hi > lo)

    def _clean_window(self, sched: _Schedule, size: int) -> np.ndarray:
        prob = self.problem
        cell = min(int(np.searchsorted(self.cell_cdf, self.rng.random() * self.cell_cdf[-1],
                                       side="right")), self.cell_cdf.size - 1)
        site, slot = divmod(cell, prob.n_slots)
        half = int(self.rng.integers(1, max(2, prob.n_slots // 8)))
        lo, hi = max(0, slot - half), min(prob.n_slots, slot + half + 1)
        near = self._overlapping(sched, lo, hi)
        residents = np.flatnonzero(near & (sched.site == site))
        movers = np.flatnonzero(near & (sched.site != site) & self.allowed[:, site]
                                & (prob.first_slot < hi) & (prob.last_slot > lo))
        keep = self._sample(residents, size // 2)
        return np.concatenate([keep, self._sample(movers, size - len(keep))])

    def _time_window(self, sched: _Schedule, size: int) -> np.ndarray:
        lo, hi = self._window(self.problem.n_slots // 6)
        return self._sample(np.flatnonzero(self._overlapping(sched, lo, hi)), size)

    def _related(self, sched: _Schedule, size: int) -> np.ndarray:
        placed = np.flatnonzero(sched.movable_placed())
        seed = int(self.rng.choice(placed))
        if self.site_bits is not None:
            share = (self.site_bits[placed] & self.site_bits[seed]) != 0
        else:
            share = self.allowed[placed] @ self.allowed[seed] > 0
        mid = 0.5 * (sched.lo + sched.hi)
        distance = np.abs(mid[placed] - mid[seed]) + self.rng.exponential(2.0, len(placed))
        distance[~share] = np.inf
        nearest = _smallest(distance, size)
        return placed[nearest[np.isfinite(distance[nearest])]]

    def _worst(self, sched: _Schedule, size: int) -> np.ndarray:
        placed = np.flatnonzero(sched.movable_placed())
        prob = self.problem
        kw = prob.power_kw[placed] * prob.pue[sched.site[placed]]
        cum = self.coef_cum
        # Contiguous estimate of the current cost (ignores renewables): enough to rank.
        now = kw * (cum[sched.site[placed], sched.hi[placed]]
                    - cum[sched.site[placed], sched.lo[placed]]) * prob.slot_hours
        excess = (now - self.ideal[placed]) * self.rng.lognormal(0.0, 0.5, len(placed))
        return placed[_smallest(-excess, size)]

    def _random(self, sched: _Schedule, size: int) -> np.ndarray:
        return self._sample(np.flatnonzero(sched.movable_placed()), size)


def _smallest(values: np.ndarray, size: int) -> np.ndarray:
    """Indices of the `size` smallest of `values`, smallest first (a partial sort: the
    candidates are every placed job, the picks a few dozen)."""
    if size <= 0:
        return np.zeros(0, dtype=np.int64)
    if len(values) > size:
        part = np.argpartition(values, size - 1)[:size]
        return part[np.argsort(values[part], kind="stable")]
    return np.argsort(values, kind="stable")


def ideal_costs(problem: Problem) -> np.ndarray:
    """Each job's cheapest placement on an empty fleet (carbon/cost terms, no renewables)."""
    empty = greedy._State.empty(problem)
    empty.load_kw[:] = problem.renewable_kw      # renewables spent: the plain grid price
    out = np.zeros(problem.n_jobs)
    for j in range(problem.n_jobs):
        found = greedy.best_placement(problem, empty, j)
        out[j] = found[1] if found else 0.0
    return out


def _recreate_order(problem: Problem, sched: _Schedule, jobs: np.ndarray, kind: str,
                    rng: np.random.Generator) -> np.ndarray:
    """`jobs` (int64) in the order a recreation of this kind puts them back."""
    if kind == "fewest_options":
        options = _feasible_options(problem, sched, jobs)
        size = problem.gpus[jobs] * problem.duration_slots[jobs]
        return jobs[np.lexsort((-size * rng.random(len(jobs)), options))]
    if kind == "big_first":
        size = problem.gpus[jobs] * problem.duration_slots[jobs] * rng.lognormal(0, 0.3,
                                                                                   len(jobs))
        return jobs[np.argsort(-size)]
    if kind == "tight_first":
        slack = (problem.last_slot[jobs] - problem.first_slot[jobs]
                 - problem.duration_slots[jobs]) + rng.random(len(jobs))
        return jobs[np.argsort(slack)]
    return rng.permutation(jobs)


def _feasible_options(problem: Problem, sched: _Schedule, jobs: np.ndarray) -> np.ndarray:
    """greedy.feasible_options of each of `jobs`, in one compiled call where loaded."""
    compiled = insertion_kernels.loaded
    if compiled is None:
        return np.array([greedy.feasible_options(problem, sched.state, int(j)) for j in jobs])
    out = np.empty(len(jobs), dtype=np.int64)
    compiled.feasible_options(sched.state.free_gpus, sched.state.load_kw, sched.table().arrays,
                              np.asarray(jobs, dtype=np.int64), out)
    return out


def ruin_and_recreate(problem: Problem, plan: Plan, deadline: float, *, seed: int = 0,
                      stop: Callable[[], bool] | None = None,
                      on_improve: Callable[[Plan, float], None] | None = None,
                      cool_until: float | None = None,
                      kinds: tuple[str, ...] = RUIN_KINDS,
                      movable: np.ndarray | None = None,
                      temperatures: tuple[float, float] | None = None,
                      ideal: np.ndarray | None = None,
                      max_steps: int | None = None,
                      warm_up: bool = True) -> tuple[Plan, RecreateStats]:
    """Improve `plan` (every job placed) until `deadline` (time.monotonic) or `stop()`.

    The temperature cools from the start to ``cool_until`` (default: the deadline), from
    and to ``temperatures`` (default: a share of the objective per job, see
    :func:`temperatures_for`). ``on_improve(plan, objective)`` is called with each new best
    plan and its objective (optimizer.accounting.plan_objective's value). ``kinds``: the
    ruin kinds to use (a short probe leaves out *worst*, whose first use costs a
    construction's worth of work). ``movable``: mask of the jobs the search may move (the
    others stay; default all). ``ideal``: each job's cheapest placement on an empty fleet
    (:func:`ideal_costs`), where the caller has it. ``max_steps``: stop after this many
    steps. ``warm_up``: a short search loads the compiled kernels in the background for a
    later one (pass False where none follows: the load takes the interpreter from it).

    A search of at least WAIT_FOR_KERNELS_MIN_S runs compiled where numba loads (the whole
    loop: optimizer/annealing_jit.py, its own generator); a shorter one runs compiled where
    the kernels are already loaded, and otherwise step by step here (each step's recreation
    compiled where already loaded); a short one with ``max_steps`` (the probe) always runs
    step by step."""
    from gridshift.optimizer.accounting import plan_objective

    # The compiled insertion makes 3x the steps. Loading it takes about 0.4 s of CPU (once
    # per process, from numba's cache): a longer search waits for it; the probe runs on
    # NumPy and loads nothing, since small models the exact backend proves at once need no
    # search after it and the load would only take CPU from the exact backend.
    long_search = deadline - time.monotonic() >= WAIT_FOR_KERNELS_MIN_S
    if long_search:
        # At most a share of the time: without numba's disk cache they compile for ~30 s.
        insertion_kernels.kernels_within(KERNELS_WAIT_SHARE * (deadline - time.monotonic()))
    elif max_steps is None and warm_up:
        # A short search that is not the probe (a 1 s round of optimizer/time_split.py, the
        # time LP-guided rounds left): compiled if the kernels are loaded; otherwise it
        # starts loading them for the next one and runs on NumPy meanwhile.
        insertion_kernels.warm_up()
    sched = _Schedule(problem, plan, movable)
    rng = np.random.default_rng(seed)
    stats = RecreateStats()
    n_movable = int(sched.movable_placed().sum())
    if n_movable < 2:
        return sched.plan(), stats
    ruiner = _Ruiner(problem, rng, kinds, ideal)
    may_compile = long_search or max_steps is None
    compiled = insertion_kernels.loaded if may_compile and COMPILED_LOOP else None
    if compiled is not None:
        loop = _CompiledLoop(compiled, sched, ruiner, seed)
        current = best = loop.objective()
    else:
        current = best = sched.objective()
    # The schedule's objective leaves out the delay term's constant (as optimizer.lns).
    shift = plan_objective(problem, plan) - best if on_improve is not None else 0.0
    t_hot, t_cold = temperatures or temperatures_for(current, sched.n_placed())
    began = time.monotonic()
    span = max(1e-3, (cool_until or deadline) - began)
    max_ruin = min(MAX_RUIN, max(MIN_RUIN, n_movable // 4))

    def temperature_at(now: float) -> float:
        return t_hot * (t_cold / t_hot) ** min(1.0, (now - began) / span)

    if compiled is not None:
        best_plan = loop.run(deadline, stop, max_steps, temperature_at, max_ruin,
                             None if on_improve is None else
                             lambda snap, value: on_improve(sched.plan_of(snap), value + shift))
        loop.add_stats(stats)
        return sched.plan_of(best_plan), stats
    best_plan = sched.snapshot()
    while True:
        now = time.monotonic()
        if (now >= deadline or (stop is not None and stop())
                or (max_steps is not None and stats.steps >= max_steps)):
            break
        temperature = temperature_at(now)
        size = int(rng.integers(MIN_RUIN, max_ruin + 1))
        kind, jobs = ruiner.pick(sched, size)
        # Simulated annealing's test drawn first: the step is accepted iff its objective is
        # at most `limit`, so a recreation can stop as soon as it is sure to be rejected.
        limit = current - temperature * math.log(max(rng.random(), 1e-300))
        value, previous = _step(problem, sched, jobs, rng, limit)
        stats.steps += 1
        tried = stats.by_kind.setdefault(kind, [0, 0])
        tried[0] += 1
        if value is None:
            stats.failed += 1
            ruiner.reward(kind, False)
            continue
        improved = value < best - 1e-9 * max(1.0, abs(best))
        ruiner.reward(kind, improved)
        if value > limit:
            _restore(sched, previous)
            continue
        current = value
        stats.accepted += 1
        if improved:
            best, best_plan = value, sched.snapshot()
            stats.improved += 1
            tried[1] += 1
            if on_improve is not None:
                on_improve(sched.plan_of(best_plan), best + shift)
    return sched.plan_of(best_plan), stats


def temperatures_for(objective: float, n_jobs: int,
                     start: float | None = None) -> tuple[float, float]:
    """The annealing's start and end temperatures for a plan of this objective and size
    (``start``: another start temperature per job of mean objective)."""
    per_job = max(abs(objective), 1e-9) / max(1, n_jobs)
    if start is None:
        start = START_TEMPERATURE if n_jobs <= HOT_START_MAX_JOBS else COOL_START
    return start * per_job, END_TEMPERATURE * per_job


def _step(problem: Problem, sched: _Schedule, jobs: np.ndarray, rng: np.random.Generator,
          limit: float = math.inf) -> tuple[float | None, _Taken]:
    """Take `jobs` out and put them back: (the new objective, the jobs' previous
    placements); (None, ...) when one found no room however often retried, and the step was
    undone. A recreation whose objective is sure to exceed `limit` stops early and returns
    an objective above it (the jobs not yet put back stay out: the caller restores the
    step)."""
    jobs = np.asarray(jobs, dtype=np.int64)
    previous = sched.take_out(jobs)
    base = sched.objective()
    order = _recreate_order(problem, sched, jobs,
                            RECREATE_ORDERS[int(rng.integers(len(RECREATE_ORDERS)))], rng)
    compiled = insertion_kernels.loaded
    if compiled is not None:
        status = _recreate_compiled(compiled, problem, sched, order, limit - base)
    else:
        status = _recreate_retrying(problem, sched, order.tolist(), limit - base)
    if status == OVER:
        return math.inf, previous
    if status == DONE:
        return sched.objective(), previous
    _restore(sched, previous)
    return None, previous


def _recreate_retrying(problem: Problem, sched: _Schedule, order: list[int],
                       allowed: float) -> int:
    """:func:`_recreate`, and where a job finds no room, the jobs placed taken out again (in
    the order placed) and a retry with that job first (as the construction's restarts), up
    to RETRIES times; the last status (recreation_status' DONE, OVER or STUCK: none of
    `order` placed). What insertion_jit.recreate_retrying does in one call."""
    for _ in range(RETRIES + 1):
        placed, status = _recreate(problem, sched, order, allowed)
        if status != STUCK:
            return status
        sched.take_out(np.array(order[:placed], dtype=np.int64))
        order = [order[placed]] + order[:placed] + order[placed + 1:]
    return STUCK


def _recreate(problem: Problem, sched: _Schedule, order: list[int],
              allowed: float = math.inf) -> tuple[int, int]:
    """Put the jobs of `order` in one by one at their cheapest placement: (the jobs placed,
    recreation_status' DONE; STUCK when the next one found no room; OVER as soon as the jobs
    put back add more than `allowed` to the objective — each placement only adds: a lower
    bound on what the whole recreation adds)."""
    added = 0.0
    slack = 1e-9 * max(1.0, abs(allowed)) if math.isfinite(allowed) else 0.0
    for i, j in enumerate(order):
        found = greedy.best_placement(problem, sched.state, j)
        if found is None:
            return i, STUCK
        sched.put(j, found[0])
        added += found[1]
        if added > allowed + slack:
            return i + 1, OVER
    return len(order), DONE


def _recreate_compiled(compiled, problem: Problem, sched: _Schedule, order: np.ndarray,
                       allowed: float) -> int:
    """_recreate_retrying in one call of the compiled kernel (insertion_jit.recreate_retrying:
    the same placements, tests/test_insertion.py)."""
    state, table, p = sched.state, sched.table(), problem
    return compiled.recreate_retrying(state.free_gpus, state.load_kw, state.renewable_kw,
                                      state.coef, p.slot_hours, table.arrays, order,
                                      allowed, RETRIES,
                                      sched.site, sched.slots_of, sched.lo, sched.hi,
                                      p.power_kw, p.pue, table.out_site, table.out_slots)


#: The compiled loop returns after about this long (seconds) to check the deadline and
#: the stop flag and to report a better plan.
CHUNK_S = 0.01


class _CompiledLoop:
    """The search loop compiled (optimizer/annealing_jit.py): the schedule's, the jobs' and
    the ruins' arrays as its kernel takes them, its generator's state, the ruin kinds'
    weights and the counts, called in chunks of about CHUNK_S."""

    def __init__(self, compiled, sched: _Schedule, ruiner: _Ruiner, seed: int) -> None:
        self.compiled = compiled
        self.sched = sched
        p, state = sched.problem, sched.state
        n, longest = sched.slots_of.shape
        f64 = np.float64
        # Writable C-ordered copies: the one array type the kernel is compiled (and cached)
        # for; a read-only or strided array would make numba compile it again, for seconds.
        self.arrays = (
            state.free_gpus, state.load_kw, state.renewable_kw, state.coef,
            float(p.slot_hours), _writable(sched.cost_per_kw, f64),
            sched.site, sched.lo, sched.hi, sched.slots_of, sched.durations_array, sched.gpus,
            _writable(p.power_kw, f64), _writable(p.pue, f64), _writable(sched.movable, bool),
            _writable(np.broadcast_to(sched.delay, n), f64), bool(p.objective.delay_weight))
        table = sched.table()
        self.table = table.arrays
        kinds = tuple(ruiner.weights)
        ideal = ruiner.ideal if "worst" in kinds else np.zeros(n)
        self.ruin = (ruiner.allowed, ruiner.cell_cdf, ruiner.coef_cum, _writable(ideal, f64))
        self.weights = np.array([ruiner.weights.get(kind, 0.0) for kind in RUIN_KINDS])
        ints = np.int64
        self.work = (np.zeros(n, ints), np.zeros(n, ints), np.zeros(n), np.zeros(n, ints),
                     np.zeros(MAX_RUIN, ints), np.zeros(MAX_RUIN), np.zeros(MAX_RUIN),
                     np.zeros(MAX_RUIN, ints), np.zeros(MAX_RUIN, ints),
                     np.zeros((MAX_RUIN, longest), ints), sched.site.copy(),
                     sched.slots_of.copy(), table.out_site, table.out_slots)
        self.rng = np.array([seed % 2**64], dtype=np.uint64)
        self.values = np.zeros(2)                       # current, best
        self.counts = np.zeros(4, dtype=np.int64)       # steps, accepted, improved, failed
        self.by_kind = np.zeros((len(RUIN_KINDS), 2), dtype=np.int64)

    def objective(self) -> float:
        """The schedule's objective as the kernel computes it."""
        return float(self.compiled.objective(self.arrays))

    def best(self) -> _Taken:
        """The best plan seen, as a snapshot."""
        site, slots = self.work[10], self.work[11]
        jobs = np.flatnonzero(site >= 0)
        return _Taken(jobs, site[jobs], slots[jobs])

    def run(self, deadline: float, stop: Callable[[], bool] | None, max_steps: int | None,
            temperature_at: Callable[[float], float], max_ruin: int,
            on_improve: Callable[[_Taken, float], None] | None) -> _Taken:
        """Steps until the deadline, ``stop()`` or ``max_steps``; the best plan seen.
        ``on_improve(snapshot, objective)`` after each chunk that improved the best."""
        self.values[:] = self.objective()
        per_call = 8
        while True:
            now = time.monotonic()
            done = int(self.counts[0])
            if (now >= deadline or (stop is not None and stop())
                    or (max_steps is not None and done >= max_steps)):
                break
            steps = per_call if max_steps is None else min(per_call, max_steps - done)
            improved = self.compiled.anneal(self.rng, self.arrays, self.table, self.ruin,
                                          self.weights, self.work, steps, temperature_at(now),
                                          MIN_RUIN, max_ruin, RETRIES, self.values,
                                          self.counts, self.by_kind)
            took = time.monotonic() - now
            per_call = int(min(100_000, max(1, steps * CHUNK_S / max(took, 1e-6))))
            if improved and on_improve is not None:
                on_improve(self.best(), float(self.values[1]))
        return self.best()

    def add_stats(self, stats: RecreateStats) -> None:
        steps, accepted, improved, failed = (int(c) for c in self.counts)
        stats.steps += steps
        stats.accepted += accepted
        stats.improved += improved
        stats.failed += failed
        for kind, (tried, better) in zip(RUIN_KINDS, self.by_kind.tolist(), strict=True):
            if tried:
                counts = stats.by_kind.setdefault(kind, [0, 0])
                counts[0] += tried
                counts[1] += better


def _writable(values, dtype) -> np.ndarray:
    """A writable, C-ordered copy of `values` as `dtype`."""
    return np.array(values, dtype=dtype, order="C")


def _restore(sched: _Schedule, previous: _Taken) -> None:
    """Put the jobs of `previous` back where they were, taking out first those that a
    recreation has placed."""
    placed = previous.jobs[sched.site[previous.jobs] >= 0]
    if len(placed):
        sched.take_out(placed)
    sched.put_back(previous)
