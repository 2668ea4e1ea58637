"""The carbon-agnostic FIFO baseline (docs/architecture.md, "The baseline").

Committed (running) jobs first, where they run; then jobs in order of (earliest_start, id);
each is placed contiguously at its home site at the earliest slot at or after its earliest
start where its GPUs (and the site's power cap) fit for its whole duration beside the jobs
placed before it. It may finish after its deadline but not after the horizon; a job that does
not fit at home is tried at its other allowed sites in the order listed; a job that fits
nowhere is left out and reported.
"""

from __future__ import annotations

import numpy as np

from gridshift.optimizer.plan import Placement, Plan
from gridshift.optimizer.problem import Problem


def fifo_baseline(problem: Problem) -> Plan:
    """The FIFO plan; jobs that fit nowhere are in `unscheduled`."""
    free_gpus = problem.gpu_capacity.astype(np.int64).copy()
    free_kw = np.repeat(problem.power_cap_kw[:, None], problem.n_slots, axis=1)
    # Committed (running) jobs first: each has one placement, which must be its own.
    committed = problem.committed if len(problem.committed) else np.zeros(problem.n_jobs, bool)
    order = sorted(range(problem.n_jobs),
                   key=lambda j: (not committed[j], problem.earliest_hours[j],
                                  problem.job_ids[j]))
    plan = Plan()
    for j in order:
        home = int(problem.home_site[j])
        sites = [home] + [s for s in problem.allowed_sites[j] if s != home]
        start_min = int(problem.first_slot[j])
        d = int(problem.duration_slots[j])
        for s in sites:
            kw = problem.facility_kw(j, s)
            start = earliest_fit_start(free_gpus[s], free_kw[s], int(problem.gpus[j]), kw,
                                       start_min, d)
            if start is not None:
                free_gpus[s, start:start + d] -= problem.gpus[j]
                free_kw[s, start:start + d] -= kw
                plan.placements[j] = Placement.contiguous(s, start, d)
                break
        else:
            plan.unscheduled[j] = "does not fit at any allowed site within the horizon (FIFO)"
    return plan


def earliest_fit_start(free_gpus: np.ndarray, free_kw: np.ndarray, gpus: int, kw: float,
                       start_min: int, duration: int) -> int | None:
    """The earliest start at or after ``start_min`` where ``gpus`` GPUs and ``kw`` kW fit
    for ``duration`` slots within the arrays (one site's free GPUs and free kW per slot);
    None where no start does."""
    ok = (free_gpus >= gpus) & (free_kw >= kw - 1e-9)
    # Count of blocked slots in every window of `duration` slots, via prefix sums.
    blocked = np.concatenate([[0], np.cumsum(~ok)])
    starts = np.arange(start_min, len(ok) - duration + 1)
    if len(starts) == 0:
        return None
    fits = blocked[starts + duration] - blocked[starts] == 0
    hits = np.flatnonzero(fits)
    return int(starts[hits[0]]) if len(hits) else None
