"""LP-guided restricted MIPs (optimizer/lp_guided.py): the restricted models keep what they
must, reduced-cost restriction at the LP gap keeps an optimum (the textbook reduced-cost
fixing argument, checked against the exact optimum), and the search only improves, reports
each improvement in order, honours its deadline and stop flag, and returns checked plans."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_plan_valid, problem_of

from gridshift.optimizer import greedy
from gridshift.optimizer.accounting import plan_objective
from gridshift.optimizer.backends import BackendResult
from gridshift.optimizer.backends.highs import solve_highs
from gridshift.optimizer.backends.isolated import solve_isolated
from gridshift.optimizer.checker import check_plan
from gridshift.optimizer.lp_guided import WEAK_LP_ROUNDS, _Guide, lp_guided_search
from gridshift.optimizer.milp import KIND_R, KIND_X, KIND_Y, build_milp
from gridshift.optimizer.solve import solve

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from instances import InstanceSpec, make_request  # noqa: E402


def _lp(model):
    return solve_highs(model, time_limit_s=30, relative_gap=0.0, workers=1, relax=True)


def _solve_lp(model, limit_s: float):
    return solve_isolated("highs", model, time_limit_s=limit_s, relative_gap=0.0, workers=1,
                          relax=True)


def _solve_sub(model, hint, limit_s: float, stop, seed: int):
    return solve_isolated("highs", model, time_limit_s=limit_s, relative_gap=1e-6, workers=1,
                          hint=hint, stop_flag=stop, seed=seed)


@pytest.fixture(scope="module")
def busy():
    """An instance whose whole model HiGHS does not close in seconds."""
    return problem_of(make_request(InstanceSpec("guided", jobs=120, sites=4, slots=96, seed=5)))


def test_lp_relaxations_carry_reduced_costs(busy) -> None:
    model = build_milp(busy)
    lp = _lp(model)
    assert lp.status == "optimal" and lp.reduced_costs is not None
    assert lp.reduced_costs.shape == (model.n_cols,)
    # Complementary slackness: a column strictly between its bounds has zero reduced cost.
    inside = (lp.values > 1e-6) & (lp.values < model.upper - 1e-6)
    assert np.abs(lp.reduced_costs[inside]).max() < 1e-6
    mip = solve_highs(model, time_limit_s=0.5, relative_gap=1e-4, workers=1)
    assert mip.reduced_costs is None


def test_restricted_models_keep_the_lp_support_the_hint_and_the_cheap_columns(busy) -> None:
    model = build_milp(busy)
    lp = _lp(model)
    guide = _Guide(model, lp)
    hint = model.encode(greedy.greedy_plan(busy, 0.3))
    restricted = guide.restricted(0.05, hint)
    kept = restricted.upper > 0
    assign = np.isin(model.kind, (KIND_X, KIND_Y, KIND_R))
    assert kept[lp.values > 1e-6].all() and kept[hint > 0.5].all() and kept[~assign].all()
    cheap = lp.reduced_costs <= 0.05 * lp.objective / busy.n_jobs
    assert (kept[assign] == (cheap | (lp.values > 1e-6) | (hint > 0.5))[assign]).all()
    assert 0 < kept[assign].sum() < assign.sum()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_restriction_at_the_lp_gap_keeps_an_optimal_plan(seed: int) -> None:
    """Columns whose reduced cost exceeds (optimum - LP) appear in no optimal plan, so the
    model restricted to the others has the same optimum."""
    problem = problem_of(make_request(InstanceSpec("tiny", jobs=14, sites=3, slots=24,
                                                   seed=seed)))
    model = build_milp(problem)
    exact = solve_highs(model, time_limit_s=60, relative_gap=1e-9, workers=1)
    assert exact.status == "optimal"
    lp = _lp(model)
    gap = exact.objective - lp.objective
    fraction = (gap + 1e-6) * problem.n_jobs / lp.objective
    empty = np.zeros(model.n_cols)
    restricted = _Guide(model, lp).restricted(fraction, empty)
    narrow = solve_highs(restricted, time_limit_s=60, relative_gap=1e-9, workers=1)
    assert narrow.status == "optimal"
    assert narrow.objective == pytest.approx(exact.objective, rel=1e-6, abs=1e-6)
    assert check_plan(problem, restricted.decode(narrow.values)).ok
    assert (restricted.upper == 0).any()


def test_the_search_improves_in_order_and_returns_checked_plans(busy) -> None:
    model = build_milp(busy)
    start = greedy.greedy_plan(busy, 0.3)
    start_value = plan_objective(busy, start)
    reported: list[float] = []
    began = time.monotonic()
    result = lp_guided_search(busy, model, [start], began + 4.0, _solve_lp, _solve_sub,
                              on_improve=lambda plan, value: reported.append(value),
                              parallel=2)
    assert time.monotonic() - began < 4.0 + 1.5
    assert check_plan(busy, result.plan).ok and not result.plan.unscheduled
    value = plan_objective(busy, result.plan)
    assert result.rounds >= 2
    assert result.lp_bound <= value + 1e-9
    assert reported == sorted(reported, reverse=True)
    if reported:
        assert reported[-1] == pytest.approx(value, rel=1e-12)
        assert value < start_value
    else:
        assert value == pytest.approx(start_value)


def test_a_stop_flag_ends_the_search(busy) -> None:
    model = build_milp(busy)
    start = greedy.greedy_plan(busy, 0.3)
    began = time.monotonic()
    result = lp_guided_search(busy, model, [start], began + 30.0, _solve_lp, _solve_sub,
                              stop=lambda: time.monotonic() - began > 1.0)
    assert time.monotonic() - began < 2.5
    assert check_plan(busy, result.plan).ok


def test_the_pipeline_runs_the_search_beside_the_exact_backend(busy) -> None:
    """Small models the exact backend does not close at once get the search on the other
    core; the plan is the better of the two and checks, the bound is valid."""
    events: list[dict] = []
    result = solve(busy, on_progress=events.append, time_limit_s=4.0)
    assert_plan_valid(result)
    assert "LP-guided search" in result.detail
    incumbents = [e["objective"] for e in events if e["kind"] == "incumbent"]
    assert incumbents == sorted(incumbents, reverse=True)
    assert min(incumbents) == pytest.approx(result.objective, rel=1e-9)
    # The limit holds; the margin covers a loaded 2-core machine (HiGHS's grace to stop).
    assert result.wall_seconds < 4.0 + 1.0


def test_a_stalled_search_stops_after_its_rounds_without_improvement(busy) -> None:
    """With ``stall_rounds``, rounds that improve nothing end the search long before its
    deadline (the portfolio then gives the time to ruin and recreate)."""
    model = build_milp(busy)
    start = greedy.greedy_plan(busy, 0.3)
    calls: list[int] = []

    def no_better(model, hint, limit_s, stop, seed):     # the start back: no improvement
        calls.append(seed)
        return BackendResult("feasible", hint.copy(), float("nan"), float("-inf"), 0.0)

    began = time.monotonic()
    result = lp_guided_search(busy, model, [start], began + 30.0, _solve_lp, no_better,
                              parallel=1, stall_rounds=3)
    assert len(calls) == 3 and result.rounds == 3 and result.improved == 0
    assert time.monotonic() - began < 15.0
    assert result.plan == start and check_plan(busy, result.plan).ok


@pytest.mark.parametrize("weak_lp_gap, rounds", [(0.0, WEAK_LP_ROUNDS), (1e9, 4)])
def test_a_plan_far_above_the_lp_ends_the_search_after_its_first_rounds(
        busy, weak_lp_gap: float, rounds: int) -> None:
    """With ``weak_lp_gap``, a thread whose best plan stays more than that share above the LP
    after WEAK_LP_ROUNDS rounds stops (here any gap at all: 0.0); a plan within it goes on
    until its stall limit."""
    model = build_milp(busy)
    start = greedy.greedy_plan(busy, 0.3)
    calls: list[int] = []

    def no_better(model, hint, limit_s, stop, seed):
        calls.append(seed)
        return BackendResult("feasible", hint.copy(), float("nan"), float("-inf"), 0.0)

    result = lp_guided_search(busy, model, [start], time.monotonic() + 30.0, _solve_lp,
                              no_better, parallel=1, stall_rounds=4, weak_lp_gap=weak_lp_gap)
    assert plan_objective(busy, start) > result.lp_bound      # a gap to judge
    assert len(calls) == rounds
    assert result.plan == start
