"""Ruin and recreate's compiled loop (optimizer/annealing_jit.py), part by part: its
generator, its draws without replacement and partial sort against NumPy's, each ruin kind and
recreation order, a step and its undoing against the schedule's own bookkeeping, and whole
searches (reproducible from the seed, every plan through the independent checker)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import problem_of

from gridshift.optimizer import greedy, insertion_kernels
from gridshift.optimizer import ruin_recreate as rr
from gridshift.optimizer.accounting import plan_objective
from gridshift.optimizer.checker import check_plan
from gridshift.optimizer.recreation_status import DONE, OVER, STUCK

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from tight_instances import TightSpec, make_tight_request  # noqa: E402

if insertion_kernels.kernels() is None:
    pytest.skip("numba unavailable: the compiled loop cannot load (see the warning logged)",
                allow_module_level=True)

from gridshift.optimizer import annealing_jit as aj  # noqa: E402

SPEC = TightSpec("test-anneal", jobs=60, sites=3, slots=48, seed=5)


@pytest.fixture(scope="module")
def problem():
    return problem_of(make_tight_request(SPEC))


@pytest.fixture(scope="module")
def start(problem):
    return greedy.greedy_plan(problem, 0.5, seed=0)


def _loop(problem, plan, seed: int = 0, movable=None) -> rr._CompiledLoop:
    sched = rr._Schedule(problem, plan, movable)
    ruiner = rr._Ruiner(problem, np.random.default_rng(0))
    return rr._CompiledLoop(insertion_kernels.loaded, sched, ruiner, seed)


def _rng(seed: int) -> np.ndarray:
    return np.array([seed], dtype=np.uint64)


def test_the_generator_is_uniform_and_reproducible() -> None:
    state = _rng(11)
    draws = np.array([aj.uniform(state) for _ in range(40_000)])
    assert ((draws >= 0.0) & (draws < 1.0)).all()
    assert abs(draws.mean() - 0.5) < 0.01 and abs(draws.var() - 1 / 12) < 0.005
    again = _rng(11)
    assert [aj.uniform(again) for _ in range(5)] == draws[:5].tolist()
    other = _rng(12)
    assert [aj.uniform(other) for _ in range(5)] != draws[:5].tolist()
    state = _rng(3)
    counts = np.bincount([aj.integers(state, 2, 7) for _ in range(25_000)], minlength=7)
    assert counts[:2].sum() == 0 and (np.abs(counts[2:] / 25_000 - 0.2) < 0.015).all()
    state = _rng(4)
    logs = np.log([aj.lognormal(state, 0.0, 0.5) for _ in range(20_000)])
    assert abs(logs.mean()) < 0.02 and abs(logs.std() - 0.5) < 0.02


def test_the_ruins_noise_tables_follow_their_distributions() -> None:
    exps, logs = aj.EXPONENTIAL_QUANTILES, np.log(aj.LOGNORMAL_HALF_QUANTILES)
    assert len(exps) == len(logs) == 1 << aj.NOISE_BITS
    assert aj.NOISE_BITS * aj.NOISE_PER_DRAW <= 64
    assert (np.diff(exps) > 0).all() and (np.diff(logs) > 0).all()
    assert abs(exps.mean() - 1.0) < 0.01 and abs(np.median(exps) - np.log(2)) < 0.01
    assert abs(logs.mean()) < 1e-9 and abs(logs.std() - 0.5) < 0.01


def test_sample_draws_distinct_candidates_each_as_likely() -> None:
    state = _rng(5)
    hits = np.zeros(10)
    for _ in range(5_000):
        candidates = np.arange(100, 110, dtype=np.int64)
        drawn = aj.sample(state, candidates, 10, 3)
        assert drawn == 3 and len(set(candidates[:3].tolist())) == 3
        hits[candidates[:3] - 100] += 1
    assert (np.abs(hits / 5_000 - 0.3) < 0.03).all()
    few = np.array([4, 9], dtype=np.int64)
    assert aj.sample(state, few, 2, 5) == 2 and few.tolist() == [4, 9]


@pytest.mark.parametrize("seed", range(6))
def test_smallest_picks_what_a_full_sort_would(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=int(rng.integers(1, 200)))
    values[rng.random(values.size) < 0.2] = np.inf
    ids = rng.permutation(1000)[:values.size].astype(np.int64)
    size = int(rng.integers(1, 40))
    out = np.zeros(values.size, dtype=np.int64)
    filled = aj.smallest(values, ids, values.size, size, out)
    finite = np.flatnonzero(np.isfinite(values))
    expected = ids[finite[np.argsort(values[finite], kind="stable")][:size]]
    assert out[:filled].tolist() == expected.tolist()


def test_the_objective_is_the_schedules(problem, start) -> None:
    loop = _loop(problem, start)
    assert loop.objective() == pytest.approx(loop.sched.objective(), rel=1e-12)


@pytest.mark.parametrize("kind", range(len(rr.RUIN_KINDS)), ids=rr.RUIN_KINDS)
def test_each_ruin_takes_distinct_placed_movable_jobs(problem, start, kind: int) -> None:
    movable = np.ones(problem.n_jobs, dtype=bool)
    movable[::4] = False
    loop = _loop(problem, start, movable=movable)
    weights = np.zeros(len(rr.RUIN_KINDS))
    weights[kind] = 1.0
    state, used_kinds = _rng(kind), set()
    for size in [3, 8, 20, 30] * 10:
        used, count = aj.pick(state, loop.arrays, loop.table, loop.ruin, weights, size,
                              loop.work)
        used_kinds.add(int(used))
        jobs = loop.work[0][:count]
        assert 2 <= count <= size
        assert len(set(jobs.tolist())) == count
        assert (loop.sched.site[jobs] >= 0).all() and movable[jobs].all()
    assert kind in used_kinds


def test_the_worst_ruin_picks_as_often_as_the_step_by_step_loops(problem, start) -> None:
    """The worst ruin's noise comes from a table in the compiled loop and from NumPy's
    lognormal in the Python one: each job is picked about as often by either."""
    loop = _loop(problem, start)
    ruiner = rr._Ruiner(problem, np.random.default_rng(7))
    weights = np.zeros(len(rr.RUIN_KINDS))
    weights[rr.RUIN_KINDS.index("worst")] = 1.0
    compiled, stepwise, state = np.zeros(problem.n_jobs), np.zeros(problem.n_jobs), _rng(7)
    for _ in range(2_000):
        _, count = aj.pick(state, loop.arrays, loop.table, loop.ruin, weights, 6, loop.work)
        compiled[loop.work[0][:count]] += 1
        stepwise[ruiner._worst(loop.sched, 6)] += 1
    assert np.corrcoef(compiled, stepwise)[0, 1] > 0.97
    assert (compiled > 0).sum() > 12                 # noisy: not always the same six


@pytest.mark.parametrize("order_kind", range(len(rr.RECREATE_ORDERS)), ids=rr.RECREATE_ORDERS)
def test_each_recreation_order_is_a_permutation_in_its_order(problem, start,
                                                             order_kind: int) -> None:
    loop = _loop(problem, start)
    sched = loop.sched
    jobs = np.array(sorted(start.placements)[:12], dtype=np.int64)
    sched.take_out(jobs)
    aj.recreate_order(_rng(order_kind), loop.arrays, loop.table, order_kind, jobs, loop.work)
    order = loop.work[4][:12]
    assert sorted(order.tolist()) == jobs.tolist()
    if rr.RECREATE_ORDERS[order_kind] == "fewest_options":
        options = [greedy.feasible_options(problem, sched.state, int(j)) for j in order]
        assert options == sorted(options)
    if rr.RECREATE_ORDERS[order_kind] == "tight_first":
        slack = (problem.last_slot - problem.first_slot - problem.duration_slots)[order]
        assert (np.diff(slack) >= -1).all()      # ties broken by a draw in [0, 1)


def _fresh_state(problem, sched) -> tuple[np.ndarray, np.ndarray]:
    """Free GPUs and loads recomputed from the schedule's placements alone."""
    state = greedy._State.empty(problem)
    for j, p in sched.placements.items():
        state.apply(j, p, +1)
    return state.free_gpus, state.load_kw


@pytest.mark.parametrize("seed", range(8))
def test_a_compiled_step_keeps_the_books_and_its_undoing_restores_the_plan(problem, start,
                                                                          seed: int) -> None:
    """After a step (done, over its limit, or stuck and undone) the fleet's free GPUs and
    loads are those of the placements, the objective is the schedule's; undoing a step
    restores every placement and every array exactly."""
    loop = _loop(problem, start)
    sched, rng = loop.sched, np.random.default_rng(seed)
    state, outcomes = _rng(seed), set()
    for round_ in range(40):
        placed = np.flatnonzero(sched.site >= 0)
        jobs = np.sort(rng.choice(placed, int(rng.integers(3, 15)), replace=False))
        before = (sched.placements, sched.state.free_gpus.copy(), sched.state.load_kw.copy(),
                  sched.lo.copy(), sched.hi.copy())
        objective = loop.objective()
        limit = objective + (float(rng.normal(0.0, 3.0)) if round_ % 2 else np.inf)
        value, status = aj.step(state, loop.arrays, loop.table, int(rng.integers(4)), jobs,
                                limit, rr.RETRIES, loop.work)
        outcomes.add(int(status))
        if status == DONE:
            assert set(sched.placements) == set(before[0])
            assert value == pytest.approx(sched.objective(), rel=1e-12)
            free, load = _fresh_state(problem, sched)
            np.testing.assert_array_equal(sched.state.free_gpus, free)
            np.testing.assert_allclose(sched.state.load_kw, load, atol=1e-9)
            assert check_plan(problem, sched.plan()).ok
        if status == STUCK:
            assert sched.placements == before[0]
        if status != STUCK and (status == OVER or round_ % 3 == 0):
            aj.restore(loop.arrays, jobs, loop.work[8], loop.work[9], loop.work[1])
            assert sched.placements == before[0]
            np.testing.assert_array_equal(sched.state.free_gpus, before[1])
            np.testing.assert_allclose(sched.state.load_kw, before[2], atol=1e-9)
            np.testing.assert_array_equal(sched.lo, before[3])
            np.testing.assert_array_equal(sched.hi, before[4])
    assert DONE in outcomes


def test_a_compiled_search_is_reproducible_from_its_seed(problem, start, monkeypatch) -> None:
    monkeypatch.setattr(rr, "COMPILED_LOOP", True)
    # 300 steps under a 120 s deadline stay at the start temperature: the cool one, so that
    # they improve on the start (a hot start accepts nearly every step).
    monkeypatch.setattr(rr, "START_TEMPERATURE", rr.COOL_START)

    def search(seed: int):
        return rr.ruin_and_recreate(problem, start, time.monotonic() + 120, seed=seed,
                                    max_steps=300)

    (a, stats_a), (b, _), (c, _) = search(4), search(4), search(5)
    assert stats_a.steps == 300
    assert a.placements == b.placements
    assert a.placements != c.placements
    for plan in (a, c):
        check = check_plan(problem, plan)
        assert check.ok, check.violations[:5]
        assert plan_objective(problem, plan) < plan_objective(problem, start)


def test_the_compiled_search_keeps_to_its_deadline(problem, start, monkeypatch) -> None:
    """Chunks of about CHUNK_S: a 2.5-second search ends within a fraction of a second of its
    deadline, having made many steps, and reports improvements as it goes."""
    monkeypatch.setattr(rr, "COMPILED_LOOP", True)
    reported: list[float] = []
    began = time.monotonic()
    plan, stats = rr.ruin_and_recreate(problem, start, began + 2.5, seed=1,
                                       on_improve=lambda p, v: reported.append(v))
    assert time.monotonic() - began < 2.5 + 1.5
    assert stats.steps > 100 and reported
    assert reported[-1] == pytest.approx(plan_objective(problem, plan), rel=1e-9)
    assert check_plan(problem, plan).ok


@pytest.mark.parametrize("seed", range(10))
def test_compiled_searches_on_varied_problems_report_their_plans_objectives(seed: int,
                                                                            monkeypatch) -> None:
    """Random small problems (delay weights, interruptible jobs, renewables, power caps,
    negative prices, jobs the construction left out): each plan the compiled loop reports
    carries its own objective, the search never worsens the plan, and every plan passes
    the checker."""
    from test_insertion import _random_problem

    monkeypatch.setattr(rr, "COMPILED_LOOP", True)
    rng = np.random.default_rng(500 + seed)
    problem = _random_problem(rng, n_slots=int(rng.integers(12, 24)), n_jobs=30)
    plan = greedy.greedy_plan(problem, time_budget_s=0.2, seed=seed)
    reported: list[tuple[float, float]] = []

    def on_improve(better, value: float) -> None:
        better.unscheduled.update(plan.unscheduled)
        reported.append((value, plan_objective(problem, better)))

    better, stats = rr.ruin_and_recreate(problem, plan, time.monotonic() + 120, seed=seed,
                                         max_steps=300, on_improve=on_improve)
    better.unscheduled.update(plan.unscheduled)
    check = check_plan(problem, better)
    assert check.ok, check.violations[:3]
    assert set(better.placements) == set(plan.placements)
    assert stats.steps in (0, 300)
    assert plan_objective(problem, better) <= plan_objective(problem, plan) + 1e-9
    assert all(a == pytest.approx(b, rel=1e-9, abs=1e-9) for a, b in reported)
    if reported:
        assert reported[-1][1] == pytest.approx(plan_objective(problem, better), rel=1e-9)


def test_the_annealing_starts_hot_up_to_a_fleet_of_two_thousand_jobs() -> None:
    """Per job of mean objective: START_TEMPERATURE up to HOT_START_MAX_JOBS jobs, COOL_START
    above (measured cooler starts do better on 10,000 jobs), the same end either way."""
    from gridshift.optimizer import ruin_recreate as rr

    hot, cold = rr.temperatures_for(1000.0, 200)
    assert hot == pytest.approx(rr.START_TEMPERATURE * 5.0)
    assert cold == pytest.approx(rr.END_TEMPERATURE * 5.0)
    assert rr.temperatures_for(1000.0, rr.HOT_START_MAX_JOBS)[0] == pytest.approx(
        rr.START_TEMPERATURE * 1000.0 / rr.HOT_START_MAX_JOBS)
    big_hot, big_cold = rr.temperatures_for(10_000.0, 10_000)
    assert big_hot == pytest.approx(rr.COOL_START) and big_cold == pytest.approx(rr.END_TEMPERATURE)
    assert rr.COOL_START < rr.START_TEMPERATURE
