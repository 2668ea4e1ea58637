"""A construction that takes the whole time limit: past the call's deadline at most one restart
(where the best plan is the earliest-fit schedule), no improvement phase after it, and a detail
that says so."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

from conftest import assert_plan_valid, problem_of

from gridshift.optimizer import greedy
from gridshift.optimizer.accounting import plan_objective
from gridshift.optimizer.checker import check_plan
from gridshift.optimizer.domain import Options

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from instances import InstanceSpec, make_request  # noqa: E402


def _problem():
    return problem_of(make_request(InstanceSpec("t", jobs=120, sites=3, slots=48, seed=5)))


def _passes_leave_one_out(monkeypatch, passes: int) -> list[int]:
    """greedy.construct whose first ``passes`` calls leave one placed job out (as a fleet
    too full for the insertion order would; one of 120 is few enough for a restart,
    greedy.FEW_LEFT_OUT_SHARE); the calls' count."""
    real = greedy.construct
    calls: list[int] = []

    def construct(problem, order, jobs=None, stop=None, views=None):
        plan = real(problem, order, jobs, stop, views)
        calls.append(len(plan.unscheduled))
        if len(calls) <= passes and plan.placements:
            j = next(iter(plan.placements))
            del plan.placements[j]
            plan.unscheduled[j] = "no room (simulated)"
        return plan

    monkeypatch.setattr(greedy, "construct", construct)
    return calls


def test_past_the_deadline_one_restart_replaces_the_earliest_fit_schedule(monkeypatch
                                                                          ) -> None:
    """The first pass leaves a job out and the earliest-fit schedule places every job, but
    saves next to nothing against FIFO: past the call's deadline, one restart still runs,
    and its plan (every job placed, cheaper) is the one returned."""
    problem = _problem()
    calls = _passes_leave_one_out(monkeypatch, 1)
    plan = greedy.greedy_plan(problem, time_budget_s=0.0, restarts_until=time.monotonic() - 1)
    assert len(calls) == 2
    fitted = greedy.earliest_fit_plan(problem)
    assert not plan.unscheduled and check_plan(problem, plan).ok
    assert plan_objective(problem, plan) < plan_objective(problem, fitted)


def test_past_the_deadline_no_second_restart(monkeypatch) -> None:
    """The late restart leaves a job out again: past the deadline no second one runs (the
    earliest-fit schedule is returned); with no deadline (or time left) the second runs."""
    problem = _problem()
    calls = _passes_leave_one_out(monkeypatch, 2)
    plan = greedy.greedy_plan(problem, time_budget_s=0.0, restarts_until=time.monotonic() - 1)
    assert len(calls) == 2
    assert not plan.unscheduled and check_plan(problem, plan).ok
    for until in (None, time.monotonic() + 60):
        calls = _passes_leave_one_out(monkeypatch, 2)
        plan = greedy.greedy_plan(problem, time_budget_s=0.0, restarts_until=until)
        assert len(calls) == 3, until
        assert not plan.unscheduled and check_plan(problem, plan).ok


def test_a_construction_past_the_limit_returns_its_plan_at_once(monkeypatch) -> None:
    """The construction outlasts the limit (thousands of jobs under a 1 s limit): no
    improvement phase runs after it; the plan checks and the detail says what happened."""
    import gridshift.optimizer.solve as pipeline

    limit_s = 0.5
    real = greedy.greedy_plan

    def slow(problem, *args, **kwargs):
        plan = real(problem, *args, **kwargs)
        time.sleep(limit_s)
        return plan

    monkeypatch.setattr(greedy, "greedy_plan", slow)
    problem = _problem()
    began = time.monotonic()
    result = pipeline.solve(dataclasses.replace(
        problem, options=Options(time_limit_seconds=limit_s)))
    wall_s = time.monotonic() - began
    assert_plan_valid(result)
    assert result.detail.startswith("construction heuristic: no time was left to improve")
    assert "the construction alone took the whole time limit (0.5 s)" in result.detail
    assert wall_s < limit_s + 2.0
