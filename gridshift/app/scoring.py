"""Scoring client-proposed schedules: every candidate scored in one batch with the point forecast
and over sampled forecast scenarios (NumPy or CuPy, see ``gridshift.optimizer.scoring``) — the
ScoreSchedules RPC and ``gridshift score``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gridshift.app.planning import Planner
from gridshift.app.risk import DEFAULT_SCENARIOS, ci_scenarios
from gridshift.optimizer.errors import FieldViolation, InvalidInputError
from gridshift.optimizer.parsing import scenario_count_problem
from gridshift.optimizer.scoring.candidates import from_plans
from gridshift.optimizer.scoring.risk import risk_measures
from gridshift.optimizer.scoring.schedules import (
    Candidate,
    CandidateScore,
    ScoreTable,
    candidate_plans,
)
from gridshift.optimizer.scoring.scorer import score

__all__ = ["MAX_CANDIDATES", "score_candidates"]

MAX_CANDIDATES = 100_000


def score_candidates(planner: Planner, request: Any, candidates: Sequence[Candidate],
                     scenarios: int = 0, seed: int = 0) -> ScoreTable:
    """Score every candidate for the problem of ``request`` (a request dict) with the point
    forecast and over ``scenarios`` sampled ones (0: the default)."""
    if not candidates:
        raise InvalidInputError([FieldViolation("candidates", "at least one is required")])
    if len(candidates) > MAX_CANDIDATES:
        raise InvalidInputError([FieldViolation("candidates", f"more than {MAX_CANDIDATES}")])
    if scenarios < 0:
        raise InvalidInputError([FieldViolation("scenarios", "negative")])
    problem = planner.prepare(request)
    n = scenarios or DEFAULT_SCENARIOS
    too_many = scenario_count_problem(n, problem.n_sites, problem.n_slots)
    if too_many:
        raise InvalidInputError([FieldViolation("scenarios", too_many)])
    batch = from_plans(problem, candidate_plans(problem, candidates))
    point = score(problem, batch, device=planner.device)
    spread = score(problem, batch, ci_scenarios(problem, n, seed), device=planner.device)
    expected, p90, cvar = risk_measures(spread.emissions_kg)
    unscheduled = np.asarray(point.unscheduled)
    scores = [CandidateScore(
        name=candidate.name or f"candidate-{b}", feasible=bool(point.feasible[b]),
        emissions_kg=float(point.emissions_kg[b, 0]), cost=float(point.cost[b]),
        energy_kwh=float(point.energy_kwh[b]), grid_energy_kwh=float(point.grid_energy_kwh[b]),
        expected_kg=float(expected[b]), p90_kg=float(p90[b]), cvar95_kg=float(cvar[b]),
        gpu_overuse_gpu_slots=float(point.gpu_overuse[b]),
        power_overuse_kwh=float(point.power_overuse_kwh[b]),
        rule_violations=int(point.window_violations[b]), unscheduled_jobs=int(unscheduled[b]))
        for b, candidate in enumerate(candidates)]
    return ScoreTable(scores, n, point.device)
