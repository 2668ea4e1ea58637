"""Ruin and recreate on both cores at once, one search: the day cut in two at a slot.

Each round cuts the horizon at a slot drawn between a third and two thirds of it; the jobs
that run wholly before the cut may move only before it, those wholly after it only after it,
and the jobs across the cut stay where they are. Capacity, power caps, renewables and
emissions are all per site and slot, so the two halves never compete: each half is searched
in its own process (this one and a worker), and joining the halves' best plans gives a plan
whose objective is the round's start minus both halves' gains. The next round cuts
elsewhere, so every job gets to move; the annealing's temperature falls across the rounds as
in one long search.

Where it pays: a plan far from converged, where a longer trajectory is what counts. On tight
large (bench/tight.py, 2,000 jobs) the 60 s plan is 7,788.9 and 7,790.6 kg against 7,811.0
and 7,819.7 with two independent searches, in the same runs. On tight medium (200 jobs),
near convergence at 10 s, the better of two independent trajectories does better (+0.97 %
against +1.29 % above the reference over five seeds x 2 runs), so that path keeps them.
Cutting by sites instead (two groups of sites) was worse than one search: moving jobs
between sites is much of the saving.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from gridshift.optimizer.plan import Plan
from gridshift.optimizer.problem import Problem

#: Rounds in a search, each at least MIN_ROUND_S long (shorter searches have fewer rounds).
ROUNDS, MIN_ROUND_S = 6, 1.0
#: The cut is drawn between these shares of the horizon.
CUT_LOW, CUT_HIGH = 1 / 3, 2 / 3


def halves(problem: Problem, plan: Plan, cut: int) -> list[tuple[Problem, np.ndarray]]:
    """The two halves of a round: per half, the problem with the windows of that half's jobs
    cut at slot ``cut``, and the mask of its jobs (placed wholly before / from the cut)."""
    first, last = problem.first_slot.copy(), problem.last_slot.copy()
    before = np.zeros(problem.n_jobs, dtype=bool)
    after = np.zeros(problem.n_jobs, dtype=bool)
    for j, p in plan.placements.items():
        if p.end_slot <= cut:
            before[j] = True
        elif p.start_slot >= cut:
            after[j] = True
    last[before] = np.minimum(last[before], cut)
    first[after] = np.maximum(first[after], cut)
    return [(dataclasses.replace(problem, last_slot=last), before),
            (dataclasses.replace(problem, first_slot=first), after)]


def join(plan: Plan, parts: list[tuple[Plan, np.ndarray]]) -> Plan:
    """``plan`` with the jobs of each part's mask placed as in that part's plan."""
    placements = dict(plan.placements)
    for part, mask in parts:
        for j in np.flatnonzero(mask):
            placements[int(j)] = part.placements[int(j)]
    return Plan(placements=placements)


@dataclasses.dataclass
class SplitStats:
    """What a time-split search did."""

    rounds: int = 0
    improved_rounds: int = 0
    #: The last round's summary of the half searched here.
    last_here: str = ""
    #: Per round whose worker half failed (that half kept its plan): the reason reported.
    worker_failures: list[str] = dataclasses.field(default_factory=list)

    def add_round(self, here: str, failure: str | None) -> None:
        """Count a round: the summary of the half searched here, and why the worker's half
        failed (None if it did not)."""
        self.rounds += 1
        self.last_here = here
        if failure is not None:
            self.worker_failures.append(failure)

    def summary(self) -> str:
        last = f"; last round here: {self.last_here}" if self.last_here else ""
        failed = self.worker_failures
        lost = (f"; the worker's half failed in {len(failed)} rounds and kept its plan "
                f"({failed[-1]})"
                if failed else "")
        return (f"ruin and recreate on both cores, the day cut in two: {self.improved_rounds} "
                f"of {self.rounds} rounds improved{lost}{last}")


def split_search(problem: Problem, plan: Plan, deadline: float, *, seed: int = 0,
                 stop: Callable[[], bool] | None = None,
                 on_improve: Callable[[Plan, float], None] | None = None
                 ) -> tuple[Plan, SplitStats]:
    """Improve ``plan`` (every job placed) until ``deadline`` (time.monotonic) or
    ``stop()``, one half of each round here and the other in a worker process: the best
    plan and what was done. ``on_improve(plan, objective)`` as in ruin_and_recreate (with
    each round's joined plan, and with this process's half as it improves)."""
    from gridshift.optimizer.accounting import plan_objective
    from gridshift.optimizer.backends.isolated import recreate_isolated
    from gridshift.optimizer.ruin_recreate import ideal_costs, ruin_and_recreate, temperatures_for

    stats = SplitStats()
    rng = np.random.default_rng(seed)
    best = plan_objective(problem, plan)
    hot, cold = temperatures_for(best, problem.n_jobs)
    ideal = ideal_costs(problem)
    began = time.monotonic()
    span = max(1e-3, deadline - began)
    round_s = max(MIN_ROUND_S, span / ROUNDS)

    def temperature(at: float) -> float:
        return hot * (cold / hot) ** min(1.0, max(0.0, (at - began) / span))

    reported = [best]

    def report(better: Plan, value: float) -> None:
        # Each report strictly better than the last: a round whose worker half gained
        # nothing joins to the last plan reported here, up to rounding.
        if on_improve is not None and value < reported[0] - 1e-9 * max(1.0, abs(value)):
            reported[0] = value
            on_improve(better, value)

    def stopped() -> bool:
        return stop is not None and stop()

    with ThreadPoolExecutor(max_workers=1) as pool:
        while not stopped():
            now = time.monotonic()
            if deadline - now < 0.1:
                break
            end = deadline if deadline - now < 1.5 * round_s else now + round_s
            cut = int(rng.integers(int(CUT_LOW * problem.n_slots),
                                   max(int(CUT_LOW * problem.n_slots) + 1,
                                       int(CUT_HIGH * problem.n_slots))))
            (here, mine), (there, theirs) = halves(problem, plan, cut)
            temps = (temperature(now), temperature(end))
            round_seed = int(rng.integers(2**31))
            other = pool.submit(recreate_isolated, there, plan, time_limit_s=end - now,
                                seed=round_seed + 1, stop_flag=stop, movable=theirs,
                                temperatures=temps, ideal=ideal)
            ours, ours_stats = ruin_and_recreate(here, plan, end, seed=round_seed, stop=stop,
                                                 on_improve=report, movable=mine,
                                                 temperatures=temps, ideal=ideal)
            theirs_searched = other.result()
            plan = join(plan, [(ours, mine), (theirs_searched.plan, theirs)])
            value = plan_objective(problem, plan)
            stats.add_round(ours_stats.summary(), theirs_searched.failure)
            if value < best - 1e-9 * max(1.0, abs(best)):
                best = value
                stats.improved_rounds += 1
                report(plan, value)
    return plan, stats
