"""Schedules proposed by clients (ScoreSchedules, ``gridshift score``): what a candidate is, the
plan it stands for, and what scoring says about it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from gridshift.optimizer.errors import FieldViolation, InvalidInputError
from gridshift.optimizer.plan import Placement, Plan
from gridshift.optimizer.problem import Problem

__all__ = ["Candidate", "CandidateAssignment", "CandidateScore", "ScoreTable",
           "candidate_plans"]


@dataclass(frozen=True)
class CandidateAssignment:
    """Where and when a candidate runs one job: one run for a contiguous job, several for an
    interruptible one (each ``(start, end)``, aware datetimes)."""

    job_id: str
    site_id: str
    runs: tuple[tuple[datetime, datetime], ...]
    #: The runs were given one by one (problems are reported per run), not as start and end.
    as_runs: bool = False


@dataclass(frozen=True)
class Candidate:
    name: str
    assignments: tuple[CandidateAssignment, ...]


@dataclass(frozen=True)
class CandidateScore:
    """One candidate's figures: with the point forecast, over the scenarios, and its
    violations (GPU and power over-use, windows and run rules broken, jobs left out)."""

    name: str
    feasible: bool
    emissions_kg: float
    cost: float
    energy_kwh: float
    grid_energy_kwh: float
    expected_kg: float
    p90_kg: float
    cvar95_kg: float
    gpu_overuse_gpu_slots: float
    power_overuse_kwh: float
    rule_violations: int
    unscheduled_jobs: int


@dataclass(frozen=True)
class ScoreTable:
    scores: list[CandidateScore]
    scenarios: int
    device: str


def candidate_plans(problem: Problem, candidates: Sequence[Candidate]) -> list[Plan]:
    """Plans of the candidates; every problem is reported with its field path."""
    jobs = {job_id: j for j, job_id in enumerate(problem.job_ids)}
    sites = {site_id: s for s, site_id in enumerate(problem.site_ids)}
    problems: list[FieldViolation] = []
    plans = []
    for i, candidate in enumerate(candidates):
        plan = Plan()
        for k, a in enumerate(candidate.assignments):
            path = f"candidates[{i}].assignments[{k}]"
            if a.job_id not in jobs:
                problems.append(FieldViolation(f"{path}.job_id", f"unknown job {a.job_id!r}"))
                continue
            if a.site_id not in sites:
                problems.append(FieldViolation(f"{path}.site_id", f"unknown site {a.site_id!r}"))
                continue
            if jobs[a.job_id] in plan.placements:
                problems.append(FieldViolation(f"{path}.job_id", f"job {a.job_id!r} twice"))
                continue
            slots = _slots(problem, a, path, problems)
            if slots:
                plan.placements[jobs[a.job_id]] = Placement(sites[a.site_id], tuple(slots))
        plan.unscheduled = {j: "not in the candidate" for j in range(problem.n_jobs)
                            if j not in plan.placements}
        plans.append(plan)
    if problems:
        raise InvalidInputError(problems)
    return plans


def _slots(problem: Problem, a: CandidateAssignment, path: str,
           problems: list[FieldViolation]) -> list[int]:
    step_s = problem.horizon.slot_minutes * 60
    slots: list[int] = []
    for r, (start, end) in enumerate(a.runs):
        where = f"{path}.runs[{r}]" if a.as_runs else path
        lo = (start - problem.horizon.start).total_seconds() / step_s
        hi = (end - problem.horizon.start).total_seconds() / step_s
        if lo != int(lo) or hi != int(hi):
            problems.append(FieldViolation(where, "start and end must be on slot boundaries"))
        elif not 0 <= lo < hi <= problem.n_slots:
            problems.append(FieldViolation(where, "must lie inside the horizon, end after start"))
        else:
            slots.extend(range(int(lo), int(hi)))
    if len(set(slots)) != len(slots):
        problems.append(FieldViolation(path, "runs overlap"))
        return []
    return sorted(slots)
