"""ScoreSchedules and `gridshift score`: client-proposed schedules scored in one batch over
forecast scenarios (NumPy or CuPy, see optimizer/scoring)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import Any

import numpy as np

from gridshift.adapters.codec import request_to_dict
from gridshift.api.v1 import optimize_pb2 as pb
from gridshift.api.v1 import scoring_pb2
from gridshift.optimizer.errors import FieldViolation, InvalidInputError
from gridshift.optimizer.parsing import scenario_count_problem
from gridshift.optimizer.plan import Placement, Plan
from gridshift.optimizer.problem import Problem
from gridshift.optimizer.scoring.candidates import from_plans
from gridshift.optimizer.scoring.risk import risk_measures
from gridshift.optimizer.scoring.scorer import score
from gridshift.risk import DEFAULT_SCENARIOS, ci_scenarios

MAX_CANDIDATES = 100_000


def candidate_plans(problem: Problem, candidates) -> list[Plan]:
    """Plans from CandidateSchedule messages; every problem is reported with its field path."""
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


def _slots(problem: Problem, a, path: str, problems: list[FieldViolation]) -> list[int]:
    step_s = problem.horizon.slot_minutes * 60
    runs = list(a.runs) or [pb.Run(start=a.start, end=a.end)]
    slots: list[int] = []
    for r, run in enumerate(runs):
        where = f"{path}.runs[{r}]" if a.runs else path
        lo = (run.start.ToDatetime(tzinfo=UTC) - problem.horizon.start).total_seconds() / step_s
        hi = (run.end.ToDatetime(tzinfo=UTC) - problem.horizon.start).total_seconds() / step_s
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


def score_schedules(request: scoring_pb2.ScoreSchedulesRequest,
                    prepare: Callable[[dict[str, Any]], Problem],
                    device: str | None = None) -> scoring_pb2.ScoreSchedulesResponse:
    """Score every candidate with the point forecast and over `scenarios` sampled ones."""
    if not request.candidates:
        raise InvalidInputError([FieldViolation("candidates", "at least one is required")])
    if len(request.candidates) > MAX_CANDIDATES:
        raise InvalidInputError([FieldViolation("candidates", f"more than {MAX_CANDIDATES}")])
    if request.scenarios < 0:
        raise InvalidInputError([FieldViolation("scenarios", "negative")])
    problem = prepare(request_to_dict(request.problem))
    n = request.scenarios or DEFAULT_SCENARIOS
    too_many = scenario_count_problem(n, problem.n_sites, problem.n_slots)
    if too_many:
        raise InvalidInputError([FieldViolation("scenarios", too_many)])
    plans = candidate_plans(problem, request.candidates)
    batch = from_plans(problem, plans)
    point = score(problem, batch, device=device)
    spread = score(problem, batch, ci_scenarios(problem, n, request.seed), device=device)
    expected, p90, cvar = risk_measures(spread.emissions_kg)
    response = scoring_pb2.ScoreSchedulesResponse(scenarios=n, device=point.device)
    for b, candidate in enumerate(request.candidates):
        response.scores.add(
            name=candidate.name or f"candidate-{b}", feasible=bool(point.feasible[b]),
            emissions_kg=float(point.emissions_kg[b, 0]), cost=float(point.cost[b]),
            energy_kwh=float(point.energy_kwh[b]),
            grid_energy_kwh=float(point.grid_energy_kwh[b]),
            risk=pb.Risk(expected_kg=float(expected[b]), p90_kg=float(p90[b]),
                         cvar95_kg=float(cvar[b]), scenarios=n),
            gpu_overuse_gpu_slots=float(point.gpu_overuse[b]),
            power_overuse_kwh=float(point.power_overuse_kwh[b]),
            rule_violations=int(point.window_violations[b]),
            unscheduled_jobs=int(np.asarray(point.unscheduled)[b]))
    return response
