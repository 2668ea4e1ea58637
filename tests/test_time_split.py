"""Ruin and recreate on both cores, the day cut in two (optimizer/time_split.py): the halves
never share a job or a slot, joining them adds their gains exactly, the search keeps every
constraint and every job, and a worker that fails costs only its half. Every plan goes
through the independent checker."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import problem_of

from gridshift.optimizer import greedy, time_split
from gridshift.optimizer.accounting import plan_objective
from gridshift.optimizer.checker import check_plan
from gridshift.optimizer.ruin_recreate import ruin_and_recreate

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from tight_instances import TightSpec, make_tight_request  # noqa: E402

SPEC = TightSpec("test-split", jobs=60, sites=3, slots=48, seed=4)


@pytest.fixture(scope="module")
def problem():
    return problem_of(make_tight_request(SPEC))


@pytest.fixture(scope="module")
def start(problem):
    return greedy.earliest_fit_plan(problem)


def test_the_halves_share_no_job_and_cut_only_their_jobs_windows(problem, start) -> None:
    cut = 20
    (early, before), (late, after) = time_split.halves(problem, start, cut)
    assert before.any() and after.any() and not (before & after).any()
    for j, p in start.placements.items():
        assert before[j] == (max(p.slots) < cut) and after[j] == (min(p.slots) >= cut)
    assert (early.last_slot[before] <= cut).all() and (late.first_slot[after] >= cut).all()
    untouched = ~before
    assert (early.last_slot[untouched] == problem.last_slot[untouched]).all()
    assert (early.first_slot == problem.first_slot).all()
    assert (late.last_slot == problem.last_slot).all()
    # Each job's current placement stays inside its cut window.
    for j in np.flatnonzero(before | after):
        p = start.placements[int(j)]
        half = early if before[j] else late
        assert half.first_slot[j] <= min(p.slots) and max(p.slots) < half.last_slot[j]


def test_joining_the_halves_adds_their_gains_exactly(problem, start) -> None:
    """Capacity, power caps, renewables and emissions are per site and slot: what each half
    gains on its own is what the joined plan gains."""
    (early, before), (late, after) = time_split.halves(problem, start, 22)
    ours, _ = ruin_and_recreate(early, start, time.monotonic() + 120, seed=1, movable=before,
                                max_steps=300)
    theirs, _ = ruin_and_recreate(late, start, time.monotonic() + 120, seed=2, movable=after,
                                  max_steps=300)
    base = plan_objective(problem, start)
    gain_early = base - plan_objective(problem, ours)
    gain_late = base - plan_objective(problem, theirs)
    assert gain_early > 0 and gain_late > 0
    # Each half moved only its own jobs, inside its window.
    for plan, mask in ((ours, before), (theirs, after)):
        for j, p in start.placements.items():
            if not mask[j]:
                assert plan.placements[j] == p
    joined = time_split.join(start, [(ours, before), (theirs, after)])
    check = check_plan(problem, joined)
    assert check.ok, check.violations[:5]
    assert plan_objective(problem, joined) == pytest.approx(base - gain_early - gain_late,
                                                            rel=1e-9)


def test_the_search_improves_and_keeps_every_constraint(problem, start) -> None:
    reported: list[tuple[float, float]] = []
    plan, stats = time_split.split_search(
        problem, start, time.monotonic() + 3.0, seed=5,
        on_improve=lambda p, v: reported.append((v, plan_objective(problem, p))))
    check = check_plan(problem, plan)
    assert check.ok, check.violations[:5]
    assert set(plan.placements) == set(start.placements) and not plan.unscheduled
    assert plan_objective(problem, plan) < plan_objective(problem, start)
    assert stats.rounds >= 2 and stats.improved_rounds >= 1
    # Every objective reported is its plan's own, each better than the last.
    assert reported and all(a == pytest.approx(b, rel=1e-9) for a, b in reported)
    assert [a for a, _ in reported] == sorted((a for a, _ in reported), reverse=True)
    assert reported[-1][0] == pytest.approx(plan_objective(problem, plan), rel=1e-9)
    assert "the day cut in two" in stats.summary() and not stats.worker_failures


def test_the_search_stops_when_asked(problem, start) -> None:
    began = time.monotonic()
    plan, stats = time_split.split_search(problem, start, began + 120, seed=1,
                                          stop=lambda: time.monotonic() - began > 1.0)
    assert time.monotonic() - began < 10
    assert check_plan(problem, plan).ok
    assert plan_objective(problem, plan) <= plan_objective(problem, start) + 1e-9


def test_a_failing_worker_costs_only_its_half(problem, start, monkeypatch) -> None:
    from gridshift.optimizer.backends import isolated

    def failing(job, *args, **kwargs):
        raise RuntimeError("ruin_recreate solver process ended without a result")

    monkeypatch.setattr(isolated, "_run_in_worker", failing)
    plan, stats = time_split.split_search(problem, start, time.monotonic() + 2.0, seed=2)
    assert check_plan(problem, plan).ok and set(plan.placements) == set(start.placements)
    assert plan_objective(problem, plan) < plan_objective(problem, start)
    assert len(stats.worker_failures) == stats.rounds >= 1
    assert "the worker's half failed in" in stats.summary()
    assert "process ended without a result" in stats.summary()


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
def test_a_search_moves_only_the_jobs_it_may(problem, start, compiled, monkeypatch) -> None:
    from gridshift.optimizer import insertion_kernels
    from gridshift.optimizer import ruin_recreate as rr

    if compiled and insertion_kernels.kernels() is None:
        pytest.skip("numba unavailable: the compiled loop cannot load")
    monkeypatch.setattr(rr, "COMPILED_LOOP", compiled)
    movable = np.zeros(problem.n_jobs, dtype=bool)
    movable[::3] = True
    plan, stats = ruin_and_recreate(problem, start, time.monotonic() + 120, seed=3,
                                    movable=movable, max_steps=200)
    assert stats.steps == 200 and check_plan(problem, plan).ok
    assert all(plan.placements[j] == p for j, p in start.placements.items() if not movable[j])
    assert any(plan.placements[j] != p for j, p in start.placements.items() if movable[j])
