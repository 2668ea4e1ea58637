"""Risk-aware plan selection: build a pool of candidate plans around the solver's plan, score
them all over forecast scenarios in one batch, and keep the best feasible one by the chosen
risk measure (expected, P90 or CVaR95 emissions)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from gridshift.optimizer import greedy
from gridshift.optimizer.plan import Plan
from gridshift.optimizer.problem import Problem
from gridshift.optimizer.scoring.candidates import from_plans
from gridshift.optimizer.scoring.risk import risk_measures
from gridshift.optimizer.scoring.scorer import score

MEASURES = ("EXPECTED", "P90", "CVAR95")


@dataclass
class Selection:
    plan: Plan
    candidates: int
    point_plan_value_kg: float      # the measure for the first (point-forecast) plan
    chosen_value_kg: float
    expected_kg: float
    p90_kg: float
    cvar95_kg: float


def plan_risk(problem: Problem, plan: Plan, ci_scenarios: np.ndarray,
              device: str | None = None) -> tuple[float, float, float]:
    """(expected, P90, CVaR95) emissions in kg of one plan over the scenarios."""
    scores = score(problem, from_plans(problem, [plan]), ci_scenarios, device=device)
    expected, p90, cvar = risk_measures(scores.emissions_kg)
    return float(expected[0]), float(p90[0]), float(cvar[0])


def _with_ci(problem: Problem, ci: np.ndarray) -> Problem:
    return dataclasses.replace(problem, ci_g_per_kwh=ci)


def candidate_pool(problem: Problem, point_plan: Plan, ci_scenarios: np.ndarray, seed: int,
                   extra: list[Plan] | None = None, greedy_variants: int = 6,
                   moves: int = 40) -> list[Plan]:
    """The point-forecast plan first, then: plans the heuristic makes for the scenarios'
    mean, P90 and upper-tail intensity; randomised greedy variants; and neighbourhood moves
    (one job re-placed where a sampled scenario says it is cheapest) around the point plan."""
    rng = np.random.default_rng(seed)
    pool = [point_plan, *(extra or [])]
    for ci in (ci_scenarios.mean(axis=0), np.percentile(ci_scenarios, 90, axis=0),
               np.sort(ci_scenarios, axis=0)[-max(1, len(ci_scenarios) // 20):].mean(axis=0)):
        pool.append(greedy.greedy_plan(_with_ci(problem, ci), 0.2, seed))
    for k in range(greedy_variants):
        order = greedy.job_orders(problem, seed + 1 + k, randomised=1)[-1]
        pool.append(greedy.construct(problem, order, set(point_plan.placements)))
    pool += _moves(problem, point_plan, ci_scenarios, rng, moves)
    return [p for p in pool if not p.unscheduled or set(p.unscheduled) ==
            set(point_plan.unscheduled)]


def _moves(problem: Problem, plan: Plan, ci_scenarios: np.ndarray, rng: np.random.Generator,
           count: int) -> list[Plan]:
    jobs = list(plan.placements)
    out = []
    for _ in range(count if jobs else 0):
        scenario = _with_ci(problem, ci_scenarios[rng.integers(len(ci_scenarios))])
        state = greedy._State.empty(scenario)
        for j, p in plan.placements.items():
            state.apply(j, p, +1)
        j = int(rng.choice(jobs))
        state.apply(j, plan.placements[j], -1)
        found = greedy.best_placement(scenario, state, j)
        if found is not None and found[0] != plan.placements[j]:
            moved = Plan(dict(plan.placements), dict(plan.unscheduled))
            moved.placements[j] = found[0]
            out.append(moved)
    return out


def select(problem: Problem, pool: list[Plan], ci_scenarios: np.ndarray, measure: str,
           device: str | None = None) -> Selection:
    """The feasible plan of the pool with the lowest `measure`; pool[0] is the point plan."""
    if measure not in MEASURES:
        raise ValueError(f"unknown risk measure {measure!r}")
    scores = score(problem, from_plans(problem, pool), ci_scenarios, device=device)
    expected, p90, cvar = risk_measures(scores.emissions_kg)
    value = {"EXPECTED": expected, "P90": p90, "CVAR95": cvar}[measure]
    ranked = np.where(scores.feasible, value, np.inf)
    ranked[0] = value[0]            # the solver's plan is valid by construction (checked)
    best = int(np.argmin(ranked))
    return Selection(plan=pool[best], candidates=len(pool),
                     point_plan_value_kg=float(value[0]), chosen_value_kg=float(value[best]),
                     expected_kg=float(expected[best]), p90_kg=float(p90[best]),
                     cvar95_kg=float(cvar[best]))
