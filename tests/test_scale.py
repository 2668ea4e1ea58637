"""The fleet-scale pipeline on bench-style instances (bench/instances.py; the embedded profiles
stand in where ../shared/data is absent): large-neighbourhood search and the exact/LNS
portfolio improve on the heuristic and keep the time limit, the Lagrangian rounding places
every job or gives up cleanly, and the Lagrangian bound stays below the LP relaxation's.
Every plan goes through the independent checker."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from conftest import assert_plan_valid, problem_of

from gridshift.optimizer import portfolio
from gridshift.optimizer.accounting import plan_objective
from gridshift.optimizer.checker import check_plan
from gridshift.optimizer.domain import Backend
from gridshift.optimizer.solve import solve

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from instances import InstanceSpec, make_request  # noqa: E402

SPEC = InstanceSpec("test", jobs=90, sites=4, slots=48, seed=5)


@pytest.fixture(scope="module")
def problem():
    return problem_of(make_request(SPEC))


def _solve_with_events(problem, limit_s: float):
    events: list[dict] = []
    began = time.monotonic()
    result = solve(problem, on_progress=events.append, time_limit_s=limit_s)
    return result, events, time.monotonic() - began


@pytest.mark.parametrize("path", ["lns", "portfolio"])
def test_scale_paths_improve_on_the_heuristic_within_the_limit(problem, monkeypatch,
                                                               path: str) -> None:
    """Forced onto the LNS-only path (models too large for the exact backend) or the exact +
    LNS portfolio: the plan checks, is no worse than the heuristic's, incumbents only go down,
    the bound is below the plan and the time limit holds."""
    monkeypatch.setattr(portfolio, "EXACT_ALONE_MAX_COLUMNS", 0)
    if path == "lns":
        monkeypatch.setattr(portfolio, "EXACT_PORTFOLIO_MAX_COLUMNS", 0)
    result, events, wall = _solve_with_events(problem, 4.0)
    assert_plan_valid(result)
    assert result.status == "FEASIBLE" and not result.plan.unscheduled
    heuristic = next(e["objective"] for e in events if e["kind"] == "heuristic")
    assert result.objective <= heuristic + 1e-9
    incumbents = [e["objective"] for e in events if e["kind"] == "incumbent"]
    assert incumbents == sorted(incumbents, reverse=True)
    if path == "lns" and incumbents:
        # Progress values are the plan's own objective (LNS's is shifted by the delay term).
        assert min(incumbents) == pytest.approx(result.objective, rel=1e-9)
    assert 0 < result.best_bound <= result.objective
    assert "bound:" in result.detail
    assert wall < 4.0 + 1.5


def test_lagrangian_rounding_places_every_job_or_none(problem) -> None:
    """Both job orders of the rounding give a plan with every job placed that the checker
    accepts (left-out jobs are retried first, then re-packed), or nothing."""
    from gridshift.optimizer.lagrangian import lagrangian_bound

    jobs = list(range(problem.n_jobs))
    greedy_value = 1e9
    lag = lagrangian_bound(problem, greedy_value, time_budget_s=0.5)
    solve_sub = portfolio.lns_sub_solver(Backend.HIGHS)
    placed = 0
    for by_slack in (True, False):
        plan, cost_s = portfolio._rounding(problem, jobs, lag, by_slack,
                                           time.monotonic() + 10, 0.01, solve_sub)
        assert cost_s > 0
        if plan is None:
            continue
        placed += 1
        assert not plan.unscheduled and set(plan.placements) == set(jobs)
        check = check_plan(problem, plan)
        assert check.ok, check.violations
        assert plan_objective(problem, plan) >= lag.bound - 1e-6
    assert placed >= 1


def test_rounding_without_time_left_gives_up(problem) -> None:
    from gridshift.optimizer.lagrangian import lagrangian_bound

    lag = lagrangian_bound(problem, 1e9, time_budget_s=0.1)
    plan, _ = portfolio._rounding(problem, list(range(problem.n_jobs)), lag, True,
                                  time.monotonic() - 1, 0.01,
                                  portfolio.lns_sub_solver(Backend.HIGHS))
    assert plan is None


def test_lagrangian_bound_is_below_the_lp_relaxation(problem) -> None:
    """The Lagrangian dual relaxes the minimum-run rule too, so it never exceeds the LP bound;
    after enough steps it comes close to it (within 5 % here)."""
    from gridshift.optimizer.backends.highs import solve_highs
    from gridshift.optimizer.lagrangian import lagrangian_bound
    from gridshift.optimizer.milp import build_milp

    lp = solve_highs(build_milp(problem), time_limit_s=60, relative_gap=0, relax=True)
    assert lp.status == "optimal"
    lag = lagrangian_bound(problem, lp.objective * 1.1, time_budget_s=5.0,
                           max_iterations=400)
    assert lag.valid
    assert lag.bound <= lp.objective + 1e-6 * abs(lp.objective)
    assert lag.bound >= 0.95 * lp.objective


@pytest.mark.parametrize("path", ["lns", "portfolio"])
@pytest.mark.parametrize("after_first_plan_s", [0.2, 1.0])
def test_a_cancelled_call_stops_every_phase_at_once(monkeypatch, path: str,
                                                    after_first_plan_s: float) -> None:
    """A stop flag raised once the first plan exists ends the call in whatever phase it is
    (the heuristic's search, the Lagrangian bound, the rounding, the exact search) within about
    a second, on both scale paths: CancelledError, nothing more is computed for a caller who is
    gone. The flag's clock starts at the first plan, not at the call, so that a slow machine
    still building it tests the same phases."""
    from gridshift.optimizer.errors import CancelledError

    monkeypatch.setattr(portfolio, "EXACT_ALONE_MAX_COLUMNS", 0)
    if path == "lns":
        monkeypatch.setattr(portfolio, "EXACT_PORTFOLIO_MAX_COLUMNS", 0)
    busy = problem_of(make_request(InstanceSpec("busy", jobs=300, sites=5, slots=96, seed=5)))
    first_plan_at: list[float] = []

    def note_first_plan(event: dict) -> None:
        if event["kind"] == "first_plan" and not first_plan_at:
            first_plan_at.append(time.monotonic())

    def stop() -> bool:
        return bool(first_plan_at) and time.monotonic() - first_plan_at[0] > after_first_plan_s

    with pytest.raises(CancelledError):
        solve(busy, on_progress=note_first_plan, stop_flag=stop, time_limit_s=60)
    # Without the stop checks the bound and the rounding ran on for 2.6-3 s here.
    assert time.monotonic() - first_plan_at[0] - after_first_plan_s < 1.4


def test_a_call_cancelled_while_its_first_plan_is_built_ends_without_a_plan() -> None:
    """A stop flag already raised when the call starts ends it in construction: CancelledError
    (the caller is gone; there is no plan to give), promptly."""
    from gridshift.optimizer.errors import CancelledError

    busy = problem_of(make_request(InstanceSpec("busy", jobs=300, sites=5, slots=96, seed=5)))
    began = time.monotonic()
    with pytest.raises(CancelledError):
        solve(busy, stop_flag=lambda: True, time_limit_s=60)
    assert time.monotonic() - began < 1.0


def test_lns_takes_no_step_with_too_little_time_left(problem) -> None:
    """Under MIN_STEP_S left, LNS returns the plan as it is and says so (a step would end
    0.2-0.3 s past the deadline); with time, it takes steps and its plan checks."""
    from gridshift.optimizer import greedy
    from gridshift.optimizer.lns import MIN_STEP_S, large_neighbourhood_search

    start = greedy.greedy_plan(problem, 0.2)
    solve_sub = portfolio.lns_sub_solver(Backend.HIGHS)
    plan, stats = large_neighbourhood_search(problem, start, time.monotonic() + MIN_STEP_S / 3,
                                             solve_sub)
    assert stats.iterations == 0 and plan.placements == start.placements
    assert stats.summary() == "LNS: no step (too little time left)"
    plan, stats = large_neighbourhood_search(problem, start, time.monotonic() + 1.0, solve_sub)
    assert stats.iterations >= 1 and stats.summary().startswith("LNS ")
    assert check_plan(problem, plan).ok
    assert plan_objective(problem, plan) <= plan_objective(problem, start) + 1e-6
