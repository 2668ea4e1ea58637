"""A batch of B candidate schedules in array form, and conversions to and from `Plan`.

Contiguous jobs are described by `site[b, j]` and `start[b, j]`: the job occupies
`duration_slots[j]` consecutive slots from `start`. The jobs listed in `interruptible_jobs`
are described by `site[b, j]` and a run mask `run_mask[b, i, t]` (True where job
`interruptible_jobs[i]` runs in slot t); their `start` entry is informational (first slot).
A negative site means the job is not scheduled in that candidate.

The arrays may be NumPy or CuPy arrays (candidates generated on the GPU stay there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gridshift.optimizer.plan import Placement, Plan
from gridshift.optimizer.problem import Problem
from gridshift.optimizer.scoring.device import to_numpy

NOT_SCHEDULED = -1
UNSCHEDULED_REASON = "not scheduled in this candidate"


@dataclass(frozen=True)
class CandidateBatch:
    """B candidate schedules of one problem (see the module docstring)."""

    site: Any                 # [B, J] int, NOT_SCHEDULED (-1) = not scheduled
    start: Any                # [B, J] int, first slot of contiguous jobs
    run_mask: Any             # [B, Ji, T] bool, slots where interruptible job i runs
    interruptible_jobs: Any   # [Ji] int, job index of each run_mask row

    def __post_init__(self) -> None:
        if self.site.ndim != 2 or self.site.shape != self.start.shape:
            raise ValueError(f"site {self.site.shape} and start {self.start.shape} must both "
                             "be [B, J]")
        n_jobs = len(self.interruptible_jobs)
        if self.run_mask.ndim != 3 or self.run_mask.shape[:2] != (self.site.shape[0], n_jobs):
            raise ValueError(f"run_mask {self.run_mask.shape} must be [B, Ji, T] with "
                             f"B={self.site.shape[0]}, Ji={n_jobs}")

    @property
    def n_candidates(self) -> int:
        return int(self.site.shape[0])

    @property
    def n_jobs(self) -> int:
        return int(self.site.shape[1])

    def check_matches(self, problem: Problem) -> None:
        """Raise ValueError when the batch's shapes do not fit `problem`."""
        if self.site.dtype.kind != "i" or self.start.dtype.kind != "i":
            raise ValueError("site and start must be signed integer arrays")
        if self.n_jobs != problem.n_jobs:
            raise ValueError(f"batch has {self.n_jobs} jobs, problem has {problem.n_jobs}")
        if self.run_mask.shape[2] != problem.n_slots:
            raise ValueError(f"run_mask has {self.run_mask.shape[2]} slots, problem has "
                             f"{problem.n_slots}")
        jobs = np.asarray(to_numpy(self.interruptible_jobs))
        if jobs.size and (jobs.min() < 0 or jobs.max() >= problem.n_jobs
                          or np.unique(jobs).size != jobs.size):
            raise ValueError("interruptible_jobs must be distinct job indices in [0, J)")


def empty_batch(problem: Problem, n_candidates: int, dtype: Any = np.int32) -> CandidateBatch:
    """All jobs unscheduled; masks for the problem's interruptible jobs (NumPy arrays).

    `dtype` is the integer type of `site` and `start`: 32-bit halves the memory traffic and
    lets the scorer use 32-bit index arithmetic.
    """
    jobs = np.flatnonzero(problem.interruptible).astype(np.int64)
    shape = (n_candidates, problem.n_jobs)
    return CandidateBatch(
        site=np.full(shape, NOT_SCHEDULED, dtype=dtype),
        start=np.zeros(shape, dtype=dtype),
        run_mask=np.zeros((n_candidates, jobs.size, problem.n_slots), dtype=bool),
        interruptible_jobs=jobs)


def from_plans(problem: Problem, plans: list[Plan]) -> CandidateBatch:
    """Stack plans into a batch. Jobs without a placement become NOT_SCHEDULED.

    Raises ValueError for what the batch cannot hold: a negative site, a non-interruptible
    job whose slots are not `duration_slots` consecutive slots, or an interruptible job's slot
    outside the horizon.
    """
    batch = empty_batch(problem, len(plans))
    row_of = {int(j): i for i, j in enumerate(batch.interruptible_jobs)}
    for b, plan in enumerate(plans):
        for j, placement in plan.placements.items():
            _put(problem, batch, b, j, placement, row_of.get(j))
    return batch


def _put(problem: Problem, batch: CandidateBatch, b: int, j: int, placement: Placement,
         row: int | None) -> None:
    slots = list(placement.slots)
    if placement.site < 0:
        raise ValueError(f"job {problem.job_ids[j]}: negative site {placement.site}")
    batch.site[b, j] = placement.site
    batch.start[b, j] = slots[0] if slots else 0
    if row is not None:
        if any(t < 0 or t >= problem.n_slots for t in slots):
            raise ValueError(f"job {problem.job_ids[j]}: slot outside the horizon")
        batch.run_mask[b, row, slots] = True
        return
    contiguous = list(range(slots[0], slots[0] + int(problem.duration_slots[j]))) if slots else []
    if not slots or slots != contiguous:
        raise ValueError(f"job {problem.job_ids[j]}: not {problem.duration_slots[j]} "
                         "consecutive slots; a batch cannot represent it")


def to_plan(problem: Problem, batch: CandidateBatch, b: int) -> Plan:
    """Candidate `b` as a Plan; NOT_SCHEDULED jobs are listed as unscheduled."""
    site = np.asarray(to_numpy(batch.site[b]))
    start = np.asarray(to_numpy(batch.start[b]))
    masks = np.asarray(to_numpy(batch.run_mask[b]))
    row_of = {int(j): i for i, j in enumerate(to_numpy(batch.interruptible_jobs))}
    plan = Plan()
    for j in range(problem.n_jobs):
        s = int(site[j])
        if s < 0:
            plan.unscheduled[j] = UNSCHEDULED_REASON
        elif j in row_of:
            slots = tuple(int(t) for t in np.flatnonzero(masks[row_of[j]]))
            plan.placements[j] = Placement(s, slots)
        else:
            plan.placements[j] = Placement.contiguous(s, int(start[j]),
                                                      int(problem.duration_slots[j]))
    return plan
