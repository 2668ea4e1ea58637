"""Stable re-planning: a job whose start was announced by an earlier plan stays there unless
moving it is worth ``objective.move_weight``.

After the search, each job the plan moves away from its announced (site, start slot) is put
back there when that fits beside the other jobs (GPUs, power cap, its window) and costs at
most ``move_weight`` more objective (kg CO2e with the default weights). Moving a job back only
changes the load of the sites and slots it leaves and takes, so each trial is priced on those
slots alone; the checker verifies the result like any plan.

An announced job the plan leaves out (capacity binds and jobs alike compete for it: which of
them the search keeps is arbitrary) takes its announced place back from a job that was not
announced, when that leaves out no more jobs and no more GPU-hours and costs at most
``move_weight`` more: otherwise a re-plan with nothing new could swap which of many identical
jobs run.

Where every place is full of alike jobs, a re-plan can return them permuted, and no single
move puts one back; a moved announced job then swaps with the job in its announced place when
both fit and the swap costs at most ``move_weight`` per job it puts back.
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
    weight = problem.objective.move_weight
    if not problem.announced or weight <= 0:
        announced = {j: a for j, a in problem.announced.items() if j in plan.placements}
        return plan, Stability(len(announced), _moved(plan, announced))
    gpus, load_kw = site_loads(problem, plan)
    cost = problem.grid_cost_per_kwh()
    placements, unscheduled = dict(plan.placements), dict(plan.unscheduled)
    restored = _take_back_left_out(problem, placements, unscheduled, gpus, load_kw, cost,
                                   weight, deadline)
    announced = {j: a for j, a in problem.announced.items() if j in placements}
    changed = True
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
        if not changed and time.monotonic() < deadline:
            swapped = _swap_back(problem, placements, announced, gpus, load_kw, cost, weight,
                                 deadline)
            restored += swapped
            changed = swapped > 0
    kept = Plan(placements=placements, unscheduled=unscheduled)
    return kept, Stability(len(announced), _moved(kept, announced), restored)


def _swap_back(problem: Problem, placements: dict[int, Placement],
               announced: dict[int, tuple[int, int]], gpus: np.ndarray, load_kw: np.ndarray,
               cost: np.ndarray, weight: float, deadline: float) -> int:
    """Moved announced jobs whose announced place is taken: each swaps with a job there that is
    not at its own announced place, when both fit and the swap costs at most ``move_weight``
    per job it puts back; how many jobs went back.

    Where capacity is full of alike jobs, a re-plan may return them permuted: a single move
    cannot undo a cycle (every place in it is taken), but each swap puts one job back for good,
    so a cycle of k jobs is undone in k - 1 swaps."""
    back_count = 0
    for j in sorted(announced, key=lambda j: problem.job_ids[j]):
        if time.monotonic() >= deadline:
            break
        site, start = announced[j]
        mine = placements[j]
        if (mine.site, mine.start_slot) == (site, start):
            continue
        back = Placement.contiguous(site, start, int(problem.duration_slots[j]))
        if not _allowed(problem, j, back):
            continue
        for k in _occupants(problem, placements, back, j):
            theirs = placements[k]
            if _at_announced(k, theirs, announced):
                continue    # would move a job that is where it was announced
            there = Placement.contiguous(mine.site, mine.start_slot,
                                         int(problem.duration_slots[k]))
            if not _allowed(problem, k, there):
                continue
            gained = 1 + _at_announced(k, there, announced)
            if _try_swap(problem, (j, mine, back), (k, theirs, there), gpus, load_kw, cost,
                         weight * gained):
                placements[j], placements[k] = back, there
                back_count += gained
                break
    return back_count


def _occupants(problem: Problem, placements: dict[int, Placement], back: Placement,
               exclude: int) -> list[int]:
    """Placed jobs other than ``exclude`` that are not committed (a running job is never
    moved or left out) and run at ``back``'s site in its slots."""
    slots = set(back.slots)
    committed = problem.committed
    return sorted((k for k, p in placements.items()
                   if k != exclude and p.site == back.site and slots.intersection(p.slots)
                   and not (len(committed) and committed[k])),
                  key=lambda k: problem.job_ids[k])


def _at_announced(k: int, placement: Placement, announced: dict[int, tuple[int, int]]) -> bool:
    return announced.get(k) == (placement.site, placement.start_slot)


def _try_swap(problem: Problem, first: tuple[int, Placement, Placement],
              second: tuple[int, Placement, Placement], gpus: np.ndarray, load_kw: np.ndarray,
              cost: np.ndarray, allowance: float) -> bool:
    """Move both jobs (each given as job, from, to) when both fit and the objective grows by at
    most ``allowance``; otherwise leave the loads as they were. Whether it moved them."""
    (j, j_from, j_to), (k, k_from, k_to) = first, second
    touched = [j_from, j_to, k_from, k_to]
    before = _grid_cost_of(problem, load_kw, cost, touched)
    nowhere = Placement(j_from.site, ())
    _move(problem, j, j_from, nowhere, gpus, load_kw)
    _move(problem, k, k_from, nowhere, gpus, load_kw)
    placed = []
    for job_index, to in ((j, j_to), (k, k_to)):
        if not _fits(problem, job_index, to, nowhere, gpus, load_kw):
            break
        _move(problem, job_index, nowhere, to, gpus, load_kw)
        placed.append((job_index, to))
    if len(placed) == 2:
        delta = _grid_cost_of(problem, load_kw, cost, touched) - before \
            + _delay(problem, j, j_to) - _delay(problem, j, j_from) \
            + _delay(problem, k, k_to) - _delay(problem, k, k_from)
        if delta <= allowance + 1e-9:
            return True
    for job_index, to in placed:
        _move(problem, job_index, to, nowhere, gpus, load_kw)
    _move(problem, j, nowhere, j_from, gpus, load_kw)
    _move(problem, k, nowhere, k_from, gpus, load_kw)
    return False


def _take_back_left_out(problem: Problem, placements: dict[int, Placement],
                        unscheduled: dict[int, str], gpus: np.ndarray, load_kw: np.ndarray,
                        cost: np.ndarray, weight: float, deadline: float) -> int:
    """Announced jobs the plan leaves out take their announced place back from a job that was
    not announced (see the module docstring); how many did."""
    taken = 0
    left = sorted((j for j in problem.announced if j in unscheduled and j not in placements),
                  key=lambda j: problem.job_ids[j])
    for j in left:
        if time.monotonic() >= deadline:
            break
        site, start = problem.announced[j]
        back = Placement.contiguous(site, start, int(problem.duration_slots[j]))
        nowhere = Placement(site, ())
        j_gpu_slots = problem.gpus[j] * problem.duration_slots[j] * problem.slot_hours
        for k in _rivals(problem, placements, back):
            k_gpu_slots = problem.gpus[k] * problem.duration_slots[k] * problem.slot_hours
            if k_gpu_slots > j_gpu_slots + 1e-9:
                continue    # more GPU-hours would be left out
            theirs = placements[k]
            before = _grid_cost_of(problem, load_kw, cost, [theirs, back])
            _move(problem, k, theirs, nowhere, gpus, load_kw)
            if _fits(problem, j, back, nowhere, gpus, load_kw):
                _move(problem, j, nowhere, back, gpus, load_kw)
                if _grid_cost_of(problem, load_kw, cost, [theirs, back]) - before \
                        + _delay(problem, j, back) - _delay(problem, k, theirs) <= weight:
                    placements[j] = back
                    del placements[k]
                    unscheduled.pop(j)
                    unscheduled[k] = (f"left out: capacity binds, and its place went to job "
                                      f"{problem.job_ids[j]}, announced there before")
                    taken += 1
                    break
                _move(problem, j, back, nowhere, gpus, load_kw)
            _move(problem, k, nowhere, theirs, gpus, load_kw)
    return taken


def _rivals(problem: Problem, placements: dict[int, Placement], back: Placement) -> list[int]:
    """Placed jobs that were neither announced nor committed and run at ``back``'s site in its
    slots."""
    return [k for k in _occupants(problem, placements, back, exclude=-1)
            if k not in problem.announced]


def _grid_cost_of(problem: Problem, load_kw: np.ndarray, cost: np.ndarray,
                  placements: list[Placement]) -> float:
    """Grid cost of the slots the placements touch, at the current loads."""
    total = 0.0
    for site in {p.site for p in placements}:
        idx = np.asarray(sorted({t for p in placements if p.site == site for t in p.slots}))
        total += _grid_cost(problem, site, idx, load_kw[site, idx], cost)
    return total


def _delay(problem: Problem, j: int, placement: Placement) -> float:
    return problem.objective.delay_weight * float(problem.priority[j]) * problem.slot_hours \
        * placement.end_slot


def _moved(plan: Plan, announced: dict[int, tuple[int, int]]) -> int:
    return sum(1 for j, (site, start) in announced.items()
               if (plan.placements[j].site, plan.placements[j].start_slot) != (site, start))


def _allowed(problem: Problem, j: int, placement: Placement) -> bool:
    """Whether the contiguous ``placement`` is at a site job ``j`` may use, inside its window."""
    return placement.site in problem.allowed_sites[j] \
        and problem.first_slot[j] <= placement.start_slot \
        and placement.end_slot <= problem.last_slot[j]


def _fits(problem: Problem, j: int, back: Placement, current: Placement, gpus: np.ndarray,
          load_kw: np.ndarray) -> bool:
    """Whether ``back`` is allowed and fits once ``current`` is vacated."""
    if not _allowed(problem, j, back):
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
        if not placement.slots:
            continue    # nowhere: a job taken out or put in
        idx = np.asarray(placement.slots)
        gpus[placement.site, idx] += sign * problem.gpus[j]
        load_kw[placement.site, idx] += sign * problem.facility_kw(j, placement.site)
