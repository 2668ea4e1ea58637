"""Stable re-planning: a job whose start was announced by an earlier plan stays there unless
moving it is worth ``objective.move_weight``.

After the search, each job the plan moves away from its announced (site, start slot) is put
back there when that fits beside the other jobs (GPUs, power cap, its window) and costs at
most ``move_weight`` more objective (kg CO2e with the default weights). Moving a job back only
changes the load of the sites and slots it leaves and takes, so each trial is priced on those
slots alone; the checker verifies the result like any plan.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from gridshift.optimizer.accounting import site_loads
from gridshift.optimizer.plan import Placement, Plan
from gridshift.optimizer.problem import Problem

__all__ = ["Stability", "keep_announced"]


@dataclass(frozen=True)
class Stability:
    """How many jobs had an announced placement, how many the plan still moves, and how many
    the search had moved that were put back."""

    announced: int
    moved: int
    restored: int = 0


def keep_announced(problem: Problem, plan: Plan, deadline: float) -> tuple[Plan, Stability]:
    """The plan with moved jobs put back where they were announced when that is worth it
    (see the module docstring); jobs left as they are once ``deadline`` passes."""
    announced = {j: a for j, a in problem.announced.items() if j in plan.placements}
    weight = problem.objective.move_weight
    if not announced or weight <= 0:
        return plan, Stability(len(announced), _moved(plan, announced))
    gpus, load_kw = site_loads(problem, plan)
    cost = problem.grid_cost_per_kwh()
    placements = dict(plan.placements)
    restored, changed = 0, True
    order = sorted(announced, key=lambda j: problem.job_ids[j])
    while changed and time.monotonic() < deadline:
        # Passes until none is put back: one job back may free the place of another.
        changed = False
        for j in order:
            site, start = announced[j]
            current = placements[j]
            if (current.site, current.start_slot) == (site, start):
                continue
            back = Placement.contiguous(site, start, int(problem.duration_slots[j]))
            if not _fits(problem, j, back, current, gpus, load_kw):
                continue
            if _delta(problem, j, current, back, load_kw, cost) <= weight:
                _move(problem, j, current, back, gpus, load_kw)
                placements[j] = back
                restored += 1
                changed = True
    kept = Plan(placements=placements, unscheduled=dict(plan.unscheduled))
    return kept, Stability(len(announced), _moved(kept, announced), restored)


def _moved(plan: Plan, announced: dict[int, tuple[int, int]]) -> int:
    return sum(1 for j, (site, start) in announced.items()
               if (plan.placements[j].site, plan.placements[j].start_slot) != (site, start))


def _fits(problem: Problem, j: int, back: Placement, current: Placement, gpus: np.ndarray,
          load_kw: np.ndarray) -> bool:
    """Whether ``back`` is allowed and fits once ``current`` is vacated."""
    if back.site not in problem.allowed_sites[j] or back.start_slot < problem.first_slot[j] \
            or back.end_slot > problem.last_slot[j]:
        return False
    idx = np.asarray(back.slots)
    free_gpus = problem.gpu_capacity[back.site, idx] - gpus[back.site, idx]
    free_kw = problem.power_cap_kw[back.site] - load_kw[back.site, idx]
    if current.site == back.site:     # the job's own slots there are vacated first
        own = np.isin(idx, current.slots)
        free_gpus = free_gpus + own * problem.gpus[j]
        free_kw = free_kw + own * problem.facility_kw(j, current.site)
    return bool((free_gpus >= problem.gpus[j]).all()
                and (free_kw >= problem.facility_kw(j, back.site) - 1e-9).all())


def _grid_cost(problem: Problem, site: int, idx: np.ndarray, load: np.ndarray,
               cost: np.ndarray) -> float:
    grid = np.maximum(0.0, load - problem.renewable_kw[site, idx])
    return float((grid * cost[site, idx]).sum() * problem.slot_hours)


def _delta(problem: Problem, j: int, current: Placement, back: Placement,
           load_kw: np.ndarray, cost: np.ndarray) -> float:
    """Objective of the plan with ``back`` instead of ``current``, minus the plan's."""
    total = 0.0
    for site in {current.site, back.site}:
        idx = np.asarray(sorted(set(current.slots if current.site == site else ())
                                | set(back.slots if back.site == site else ())))
        before = load_kw[site, idx]
        after = before.copy()
        if current.site == site:
            after -= np.isin(idx, current.slots) * problem.facility_kw(j, site)
        if back.site == site:
            after += np.isin(idx, back.slots) * problem.facility_kw(j, site)
        total += _grid_cost(problem, site, idx, after, cost) - _grid_cost(
            problem, site, idx, before, cost)
    delay = problem.objective.delay_weight * float(problem.priority[j]) * problem.slot_hours
    return total + delay * (back.end_slot - current.end_slot)


def _move(problem: Problem, j: int, current: Placement, back: Placement, gpus: np.ndarray,
          load_kw: np.ndarray) -> None:
    for placement, sign in ((current, -1), (back, 1)):
        idx = np.asarray(placement.slots)
        gpus[placement.site, idx] += sign * problem.gpus[j]
        load_kw[placement.site, idx] += sign * problem.facility_kw(j, placement.site)
