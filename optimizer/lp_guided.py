"""LP-guided restricted MIPs: near-optimal plans for mid-size models in seconds.

Where the LP relaxation is tight, the optimal plan uses almost only columns (job, site, start)
whose reduced cost at the LP optimum is near zero. A MIP restricted to those columns — plus the
columns the LP uses and those of the best plan so far — is a fraction of the model, and the
exact backend's root heuristics solve it within a fraction of a second. Rounds repeat with
other solver seeds and other reduced-cost thresholds, each warm-started from the best plan, so
the plan only gets better (a RENS-style search; Berthold, "RENS", 2014).

Measured on the medium benchmark instance (200 jobs, 5 sites, 96 slots; LP 154.4 kg): the
whole model under HiGHS reaches 162-164 kg in 9 s; restricted rounds reach 155.3-155.5 kg
(better than a 3-minute run of the whole model) in the same time.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gridshift.optimizer.accounting import plan_objective
from gridshift.optimizer.milp import KIND_R, KIND_X, KIND_Y, MilpModel
from gridshift.optimizer.plan import Plan
from gridshift.optimizer.problem import Problem

# Reduced-cost thresholds tried in turn, as fractions of the LP objective per job; every
# round without an improvement widens the next ones (up to a whole job's mean cost).
THRESHOLDS = (0.013, 0.065, 0.2)
WIDEN = 1.5
#: Rounds a thread runs before judging the LP weak (see lp_guided_search's weak_lp_gap).
WEAK_LP_ROUNDS = 2


@dataclass
class GuidedResult:
    plan: Plan
    lp_bound: float            # the LP relaxation's optimum (-inf when it was not solved)
    rounds: int
    improved: int
    detail: str


def lp_guided_search(problem: Problem, model: MilpModel, starts: list[Plan], deadline: float,
                     solve_lp: Callable[..., object], solve_sub: Callable[..., object],
                     seed: int = 0, stop: Callable[[], bool] | None = None,
                     on_improve: Callable[[Plan, float], None] | None = None,
                     parallel: int = 2, stall_rounds: int | None = None,
                     weak_lp_gap: float | None = None) -> GuidedResult:
    """Improve on `starts` (plans with every job of `model` placed) by restricted MIPs until
    `deadline`, in `parallel` threads that share the best plan (each solve runs in its own
    worker process). A round is warm-started from the best plan so far; the first round of
    each thread from its own start, since where a restricted solve ends depends much on where
    it starts. `solve_lp(model, limit_s)` returns the LP relaxation with reduced costs;
    `solve_sub(model, hint, limit_s, stop, seed)` solves a restricted model. With
    ``stall_rounds``, a thread stops once that many of its rounds in a row improved nothing;
    with ``weak_lp_gap``, once WEAK_LP_ROUNDS rounds have run and the best plan is still more
    than that share above the LP (a weak LP guides poorly). The caller then has the time left
    for another search."""
    stopped = stop or (lambda: False)
    values = [plan_objective(problem, plan) for plan in starts]
    shared = _Shared(starts[int(np.argmin(values))], min(values))
    lp = solve_lp(model, max(0.05, 0.5 * (deadline - time.monotonic())))
    if lp.values is None or lp.reduced_costs is None or lp.status != "optimal":
        return GuidedResult(shared.plan, -math.inf, 0, 0,
                            "LP-guided search: LP not solved in time")
    guide = _Guide(model, lp)

    def rounds_from(thread: int) -> None:
        first = starts[thread % len(starts)]
        widen, k, failed = 1.0, 0, 0
        while not stopped() and (stall_rounds is None or failed < stall_rounds):
            if (weak_lp_gap is not None and k >= WEAK_LP_ROUNDS
                    and shared.value - lp.objective > weak_lp_gap * abs(lp.objective)):
                return
            left = deadline - time.monotonic()
            # Most rounds find their plan at the root or soon after; a short limit leaves time
            # for other seeds and thresholds.
            limit = min(left, max(1.0, min(3.0, 0.2 * left)))
            if limit < 0.3:
                return
            base = first if k == 0 else shared.plan
            fraction = THRESHOLDS[(k + thread) % len(THRESHOLDS)] * widen
            hint = model.encode(base)
            result = solve_sub(guide.restricted(fraction, hint), hint, limit, stopped,
                               seed + parallel * k + thread)
            k += 1
            candidate = None if result.values is None else model.checked_decode(result.values)
            value = math.inf if candidate is None else plan_objective(problem, candidate)
            if shared.offer(candidate, value, on_improve):
                failed = 0
                continue
            failed += 1
            if k % len(THRESHOLDS) == 0:
                widen = min(widen * WIDEN, 1.0 / THRESHOLDS[0])

    threads = [threading.Thread(target=rounds_from, args=(i,), daemon=True)
               for i in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    detail = (f"LP-guided search: {shared.improved}/{shared.rounds} restricted MIPs improved "
              f"(LP {lp.objective:,.4g})")
    return GuidedResult(shared.plan, lp.objective, shared.rounds, shared.improved, detail)


class _Guide:
    """The LP solution and reduced costs; builds restricted models from them."""

    def __init__(self, model: MilpModel, lp) -> None:
        self.model = model
        assign = np.isin(model.kind, (KIND_X, KIND_Y, KIND_R))
        self.always = (lp.values > 1e-6) | ~assign
        self.reduced_costs = lp.reduced_costs
        self.unit = max(abs(lp.objective), 1e-9) / max(1, len(model.jobs))

    def restricted(self, fraction: float, hint: np.ndarray) -> MilpModel:
        """The model with only the columns the LP uses, those of `hint`, and those whose
        reduced cost is at most `fraction` of the LP objective per job."""
        keep = self.always | (self.reduced_costs <= fraction * self.unit) | (hint > 0.5)
        return dataclasses.replace(self.model, upper=np.where(keep, self.model.upper, 0.0))


class _Shared:
    """The best plan of all threads."""

    def __init__(self, plan: Plan, value: float) -> None:
        self.plan, self.value = plan, value
        self.rounds = self.improved = 0
        self._lock = threading.Lock()

    def offer(self, plan: Plan | None, value: float,
              on_improve: Callable[[Plan, float], None] | None) -> bool:
        """Keep `plan` if it is the best so far (reported through `on_improve`, in order)."""
        with self._lock:
            self.rounds += 1
            if plan is None or value >= self.value - 1e-9 * max(1.0, abs(self.value)):
                return False
            self.plan, self.value = plan, value
            self.improved += 1
            if on_improve is not None:
                on_improve(plan, value)
            return True


