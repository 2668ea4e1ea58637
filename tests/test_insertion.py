"""The insertion step of the construction and of ruin and recreate (optimizer/greedy.py) against
straightforward references on random small problems: a plain version of the insertion (costs
over the whole horizon, the DP over slots written state by state) must choose exactly the same
placement at exactly the same cost, ties included, and brute force over every placement must
find no cheaper one."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import numpy as np
import pytest

from gridshift.optimizer import greedy, insertion_kernels
from gridshift.optimizer.domain import Horizon, Objective, Options
from gridshift.optimizer.plan import Placement
from gridshift.optimizer.problem import Problem


def _random_problem(rng: np.random.Generator, n_slots: int, n_jobs: int) -> Problem:
    """Few sites and slots, whole-number intensities (so that ties are common), renewables,
    power caps, negative prices and delay weights in some draws."""
    n_sites = int(rng.integers(1, 5))
    capacity = rng.integers(4, 12, (n_sites, 1)) * np.ones((1, n_slots), dtype=np.int64)
    capacity[rng.random(capacity.shape) < 0.1] //= 2
    durations = rng.integers(1, 7, n_jobs)
    first = rng.integers(0, n_slots - 1, n_jobs)
    last = np.minimum(n_slots, first + durations + rng.integers(-1, 8, n_jobs))
    last = np.maximum(last, first + 1)
    interruptible = rng.random(n_jobs) < 0.6
    min_run = np.where(interruptible, [int(rng.integers(1, d + 1)) for d in durations],
                       durations)
    allowed = []
    for _ in range(n_jobs):
        sites = rng.permutation(n_sites)[:int(rng.integers(1, n_sites + 1))]
        allowed.append(tuple(int(s) for s in (sites if rng.random() < 0.5 else np.sort(sites))))
    priced = rng.random() < 0.3
    return Problem(
        horizon=Horizon(datetime(2026, 6, 15, tzinfo=UTC), 60, n_slots),
        objective=Objective(carbon_weight=1.0, cost_weight=0.5 if priced else 0.0,
                            delay_weight=float(rng.choice([0.0, 0.0, 0.3]))),
        options=Options(), site_ids=tuple(f"s{s}" for s in range(n_sites)),
        site_regions=tuple(f"r{s}" for s in range(n_sites)),
        gpu_capacity=capacity,
        pue=rng.choice([1.0, 1.1, 1.25], n_sites),
        power_cap_kw=np.where(rng.random(n_sites) < 0.5, np.inf, rng.integers(4, 20, n_sites)),
        renewable_kw=np.where(rng.random((n_sites, n_slots)) < 0.5, 0.0,
                              rng.integers(0, 6, (n_sites, n_slots)).astype(float)),
        ci_g_per_kwh=rng.integers(100, 104, (n_sites, n_slots)).astype(float),
        price_per_mwh=(rng.integers(-20, 60, (n_sites, n_slots)).astype(float) if priced
                       else np.zeros((n_sites, n_slots))),
        job_ids=tuple(f"j{j}" for j in range(n_jobs)), job_teams=("t",) * n_jobs,
        gpus=rng.integers(1, 5, n_jobs), power_kw=rng.choice([0.5, 1.0, 1.7, 2.5], n_jobs),
        duration_minutes=durations * 60, duration_slots=durations.astype(np.int64),
        first_slot=first.astype(np.int64), last_slot=last.astype(np.int64),
        earliest_hours=first.astype(float), allowed_sites=tuple(allowed),
        home_site=np.array([a[0] for a in allowed]), interruptible=interruptible,
        min_run_slots=min_run.astype(np.int64), priority=rng.choice([1.0, 2.0], n_jobs),
        forecasts=())


def _random_placement(rng: np.random.Generator, problem: Problem, j: int) -> Placement:
    """Anywhere in the window (fitting or not), in pieces for some jobs."""
    site = int(rng.choice(problem.allowed_sites[j]))
    window = range(int(problem.first_slot[j]), int(problem.last_slot[j]))
    count = min(len(window), int(problem.duration_slots[j]))
    return Placement(site, tuple(sorted(int(t) for t in rng.choice(window, count, replace=False))))


def _loaded_state(rng: np.random.Generator, problem: Problem) -> greedy._State:
    state = greedy._State.empty(problem)
    for j in range(problem.n_jobs):
        if rng.random() < 0.6:
            state.apply(j, _random_placement(rng, problem, j), +1)
    return state


# The plain version of the insertion, kept as the reference.

# Per-slot marginal costs were not changed by the faster insertion: the live function is the
# reference's too.
_reference_site_costs = greedy._site_costs


def _reference_delay(problem, j, end_slots):
    w = problem.objective.delay_weight * float(problem.priority[j])
    return w * end_slots * problem.slot_hours


def _reference_contiguous(problem, j, sites, cost, ok):
    d = int(problem.duration_slots[j])
    lo, hi = int(problem.first_slot[j]), int(problem.last_slot[j])
    starts = np.arange(lo, hi - d + 1)
    if len(starts) == 0:
        return None
    k = len(sites)
    cum = np.concatenate([np.zeros((k, 1)), np.cumsum(cost, axis=1)], axis=1)
    blocked = np.concatenate([np.zeros((k, 1), dtype=np.int64), np.cumsum(~ok, axis=1)], axis=1)
    window_cost = cum[:, starts + d] - cum[:, starts] + _reference_delay(problem, j, starts + d)
    window_cost[blocked[:, starts + d] - blocked[:, starts] > 0] = np.inf
    best = int(np.argmin(window_cost))
    row, col = divmod(best, len(starts))
    if not np.isfinite(window_cost[row, col]):
        return None
    return (Placement.contiguous(int(sites[row]), int(starts[col]), d),
            float(window_cost[row, col]))


def _reference_interruptible(problem, j, sites, cost, ok):
    """Per (site, slots chosen), idle or in a run of at least m slots, one slot at a time,
    every state by hand: a run starts as a block of m slots (their costs summed left to
    right) from the idle state m slots back, then grows one slot at a time."""
    d, m = int(problem.duration_slots[j]), int(problem.min_run_slots[j])
    lo, hi = int(problem.first_slot[j]), int(problem.last_slot[j])
    k = len(sites)
    idle = [np.full((k, d + 1), np.inf)]         # idle[i]: before slot lo + i
    idle[0][:, 0] = 0.0
    run = np.full((k, d + 1), np.inf)
    ended, started = [], []
    for i, t in enumerate(range(lo, hi)):
        new_idle, new_run = np.full((k, d + 1), np.inf), np.full((k, d + 1), np.inf)
        came_from_run = np.zeros((k, d + 1), dtype=bool)
        began = np.zeros((k, d + 1), dtype=bool)
        for r, c in itertools.product(range(k), range(d + 1)):
            came_from_run[r, c] = run[r, c] < idle[i][r, c]
            new_idle[r, c] = run[r, c] if came_from_run[r, c] else idle[i][r, c]
            go_on = run[r, c - 1] + (cost[r, t] if ok[r, t] else np.inf) if c >= 1 else np.inf
            begin = np.inf
            if c >= m and i + 1 >= m and ok[r, t - m + 1:t + 1].all():
                window = cost[r, t - m + 1]
                for a in range(t - m + 2, t + 1):
                    window += cost[r, a]
                begin = idle[i + 1 - m][r, c - m] + window
            began[r, c] = begin < go_on
            new_run[r, c] = begin if began[r, c] else go_on
            if c == d:
                new_run[r, c] += _reference_delay(problem, j, np.array([t + 1]))[0]
        idle.append(new_idle)
        run = new_run
        ended.append(came_from_run)
        started.append(began)
    running = run[:, d] < idle[-1][:, d]
    totals = np.where(running, run[:, d], idle[-1][:, d])
    row = int(np.argmin(totals))
    if not np.isfinite(totals[row]):
        return None
    chosen, c, i, is_running = [], d, hi - lo - 1, bool(running[row])
    while c > 0:
        if not is_running:
            is_running = bool(ended[i][row, c])
            i -= 1
        elif started[i][row, c]:
            chosen.extend(lo + i - a for a in range(m))
            c, i, is_running = c - m, i - m, False
        else:
            chosen.append(lo + i)
            c, i = c - 1, i - 1
    return Placement(int(sites[row]), tuple(sorted(chosen))), float(totals[row])


def _reference_best(problem, state, j):
    sites = np.asarray(problem.allowed_sites[j], dtype=np.int64)
    cost, ok = _reference_site_costs(problem, state, j, sites)
    if greedy._splittable(problem, j):
        return _reference_interruptible(problem, j, sites, cost, ok)
    return _reference_contiguous(problem, j, sites, cost, ok)


def _brute_force_cost(problem, state, j) -> float | None:
    """The cheapest placement's cost over every site and every set of slots whose runs are
    all at least min_run long (one run for a job that may not split)."""
    d, m = int(problem.duration_slots[j]), int(problem.min_run_slots[j])
    lo, hi = int(problem.first_slot[j]), int(problem.last_slot[j])
    best = None
    for s in problem.allowed_sites[j]:
        cost, ok = _reference_site_costs(problem, state, j, np.array([s]))
        for slots in itertools.combinations(range(lo, hi), d):
            runs = Placement(s, slots).runs()
            if any(b - a < m for a, b in runs) or not ok[0, list(slots)].all():
                continue
            value = float(cost[0, list(slots)].sum()
                          + _reference_delay(problem, j, np.array([slots[-1] + 1]))[0])
            best = value if best is None else min(best, value)
    return best


@pytest.fixture(params=["numpy", "compiled"])
def insertion_path(request, monkeypatch) -> str:
    """Each test below runs on greedy.py's NumPy insertion and on the compiled kernels."""
    if request.param == "compiled":
        compiled = insertion_kernels.kernels()
        if compiled is None:
            pytest.skip("numba kernels unavailable here (see the warning logged)")
        monkeypatch.setattr(insertion_kernels, "loaded", compiled)
    else:
        monkeypatch.setattr(insertion_kernels, "loaded", None)
    return request.param


@pytest.mark.parametrize("seed", range(40))
def test_insertion_matches_the_plain_version_exactly(seed: int, insertion_path: str) -> None:
    rng = np.random.default_rng(seed)
    problem = _random_problem(rng, n_slots=int(rng.integers(6, 30)), n_jobs=12)
    state = _loaded_state(rng, problem)
    splittable = 0
    for j in range(problem.n_jobs):
        expected = _reference_best(problem, state, j)
        assert greedy.best_placement(problem, state, j) == expected, j
        splittable += greedy._splittable(problem, j)
        if expected is not None:   # a second state from the first, as in a search
            state.apply(j, expected[0], +1)
    assert splittable > 0 or seed % 5


@pytest.mark.parametrize("seed", range(25))
def test_insertion_is_optimal_by_brute_force(seed: int, insertion_path: str) -> None:
    rng = np.random.default_rng(1000 + seed)
    problem = _random_problem(rng, n_slots=int(rng.integers(5, 11)), n_jobs=8)
    state = _loaded_state(rng, problem)
    for j in range(problem.n_jobs):
        found = greedy.best_placement(problem, state, j)
        brute = _brute_force_cost(problem, state, j)
        assert (found is None) == (brute is None), j
        if found is not None:
            assert found[1] == pytest.approx(brute, abs=1e-9)
            # The placement fits and costs what it says.
            cost, ok = _reference_site_costs(problem, state, j, np.array([found[0].site]))
            slots = list(found[0].slots)
            assert ok[0, slots].all() and len(slots) == problem.duration_slots[j]
            assert found[1] == pytest.approx(float(
                cost[0, slots].sum()
                + _reference_delay(problem, j, np.array([found[0].end_slot]))[0]), abs=1e-9)


@pytest.mark.parametrize("seed", range(10))
def test_state_updates_and_options_match_index_arrays(seed: int, insertion_path: str) -> None:
    """apply() (slices for contiguous placements) and feasible_options as with index arrays."""
    rng = np.random.default_rng(2000 + seed)
    problem = _random_problem(rng, n_slots=24, n_jobs=15)
    state = greedy._State.empty(problem)
    free, load = state.free_gpus.copy(), state.load_kw.copy()
    for j in range(problem.n_jobs):
        p = _random_placement(rng, problem, j)
        state.apply(j, p, +1)
        free[p.site, list(p.slots)] -= problem.gpus[j]
        load[p.site, list(p.slots)] += problem.facility_kw(j, p.site)
        for k in range(problem.n_jobs):
            sites = np.asarray(problem.allowed_sites[k])
            lo, hi, d = problem.first_slot[k], problem.last_slot[k], problem.duration_slots[k]
            ok = (free[sites, lo:hi] >= problem.gpus[k]) & (
                load[sites, lo:hi] + problem.power_kw[k] * problem.pue[sites][:, None]
                <= problem.power_cap_kw[sites][:, None] + 1e-9)
            if greedy._splittable(problem, k):
                expected = int(np.maximum(0, ok.sum(axis=1) - d + 1).sum())
            else:
                expected = sum(ok[r, a:a + d].all() for r in range(len(sites))
                               for a in range(hi - lo - d + 1))
            assert greedy.feasible_options(problem, state, k) == expected
    np.testing.assert_array_equal(state.free_gpus, free)
    np.testing.assert_array_equal(state.load_kw, load)


def test_without_numba_the_search_runs_on_numpy(monkeypatch, caplog) -> None:
    """Where numba cannot load (missing, or no writable cache), a warning is logged and the
    insertion, and a search built on it, run on NumPy: the same plans."""
    import time

    from gridshift.optimizer.checker import check_plan
    from gridshift.optimizer.ruin_recreate import ruin_and_recreate

    def no_numba():
        raise ImportError("No module named 'numba'")

    monkeypatch.setattr(insertion_kernels, "_tried", False)
    monkeypatch.setattr(insertion_kernels, "loaded", None)
    monkeypatch.setattr(insertion_kernels, "_compile", no_numba)
    assert insertion_kernels.kernels() is None
    assert insertion_kernels.loaded is None
    assert "compiled insertion kernels unavailable (ImportError" in caplog.text
    rng = np.random.default_rng(7)
    problem = _random_problem(rng, n_slots=16, n_jobs=10)
    plan = greedy.greedy_plan(problem, time_budget_s=0.2)
    better, stats = ruin_and_recreate(problem, plan, time.monotonic() + 0.3, seed=1)
    assert stats.steps > 0
    # The search moves the jobs placed; the ones the construction left out stay out.
    better.unscheduled.update(plan.unscheduled)
    check = check_plan(problem, better)
    assert check.ok, check.violations[:3]


def test_a_search_waits_only_a_share_of_its_time_for_kernels_still_compiling(monkeypatch
                                                                           ) -> None:
    """Without numba's disk cache the kernels compile for about 30 s: a 2.5-second search
    waits for them at most KERNELS_WAIT_SHARE of its time, runs on NumPy meanwhile and keeps
    its deadline; the kernels go on loading in the background."""
    import threading
    import time

    from gridshift.optimizer import ruin_recreate as rr
    from gridshift.optimizer.checker import check_plan

    compiled = insertion_kernels.kernels()
    if compiled is None:
        pytest.skip("numba kernels unavailable here (see the warning logged)")
    release = threading.Event()

    def slow_compile():
        release.wait(30)
        return compiled

    monkeypatch.setattr(insertion_kernels, "_tried", False)
    monkeypatch.setattr(insertion_kernels, "loaded", None)
    monkeypatch.setattr(insertion_kernels, "_compile", slow_compile)
    monkeypatch.setattr(insertion_kernels, "_warming", threading.Event())
    monkeypatch.setattr(insertion_kernels, "_done", threading.Event())
    rng = np.random.default_rng(8)
    problem = _random_problem(rng, n_slots=16, n_jobs=12)
    plan = greedy.greedy_plan(problem, time_budget_s=0.2)
    began = time.monotonic()
    try:
        better, stats = rr.ruin_and_recreate(problem, plan, began + 2.5, seed=1)
        took = time.monotonic() - began
        assert insertion_kernels.loaded is None and stats.steps > 0
        assert took < 2.5 + 1.0
    finally:
        release.set()
    assert insertion_kernels._done.wait(30) and insertion_kernels.loaded is compiled
    better.unscheduled.update(plan.unscheduled)
    assert check_plan(problem, better).ok


@pytest.mark.parametrize("seed", range(12))
def test_compiled_recreation_matches_numpy_step_by_step(seed: int, monkeypatch) -> None:
    """Ruin and recreate's steps on the compiled recreation (one kernel call per recreation,
    batched moves in and out) and on NumPy's job-by-job loop: after every step the same
    placements, the same objective and exactly the same free GPUs and loads, whether the
    step completed, stopped early over its limit, or was undone."""
    from gridshift.optimizer import ruin_recreate as rr

    compiled = insertion_kernels.kernels()
    if compiled is None:
        pytest.skip("numba kernels unavailable here (see the warning logged)")
    monkeypatch.setattr(insertion_kernels, "loaded", None)
    rng = np.random.default_rng(3000 + seed)
    problem = _random_problem(rng, n_slots=int(rng.integers(8, 20)), n_jobs=40)
    plan = greedy.greedy_plan(problem, time_budget_s=0.1, seed=seed)
    schedules = {"numpy": rr._Schedule(problem, plan), "compiled": rr._Schedule(problem, plan)}
    rngs = {name: np.random.default_rng(seed) for name in schedules}
    outcomes = set()
    for step in range(60):
        placed = np.flatnonzero(schedules["numpy"].site >= 0)
        if len(placed) < 2:
            break
        jobs = rng.choice(placed, min(len(placed), int(rng.integers(2, 7))), replace=False)
        limit = (schedules["numpy"].objective() + float(rng.normal(0.0, 5.0))
                 if step % 3 else float("inf"))
        undo = rng.random() < 0.4
        results = {}
        for name, sched in schedules.items():
            insertion_kernels.loaded = compiled if name == "compiled" else None
            value, previous = rr._step(problem, sched, jobs, rngs[name], limit)
            if value is not None and (value > limit or undo):
                rr._restore(sched, previous)
            results[name] = value
        insertion_kernels.loaded = None
        outcomes.add("undone" if results["numpy"] is None else
                     "over" if results["numpy"] > limit else "done")
        assert results["numpy"] == results["compiled"], step
        a, b = schedules["numpy"], schedules["compiled"]
        assert a.placements == b.placements, step
        np.testing.assert_array_equal(a.state.free_gpus, b.state.free_gpus)
        np.testing.assert_array_equal(a.state.load_kw, b.state.load_kw)
        np.testing.assert_array_equal(a.lo[a.site >= 0], b.lo[b.site >= 0])
        np.testing.assert_array_equal(a.hi[a.site >= 0], b.hi[b.site >= 0])
    assert "done" in outcomes


@pytest.mark.parametrize("seed", range(15))
def test_compiled_feasible_options_match_numpy(seed: int) -> None:
    """The compiled count of a job's placements left (one call for many jobs, as ruin and
    recreate orders a recreation) is greedy.feasible_options's, on random loaded states."""
    from gridshift.optimizer.ruin_recreate import _JobTable

    compiled = insertion_kernels.kernels()
    if compiled is None:
        pytest.skip("numba kernels unavailable here (see the warning logged)")
    rng = np.random.default_rng(4000 + seed)
    problem = _random_problem(rng, n_slots=int(rng.integers(4, 24)), n_jobs=20)
    state = _loaded_state(rng, problem)
    jobs = rng.permutation(problem.n_jobs).astype(np.int64)
    out = np.full(len(jobs), -1, dtype=np.int64)
    compiled.feasible_options(state.free_gpus, state.load_kw, _JobTable(problem).arrays, jobs,
                              out)
    expected = [greedy.feasible_options(problem, state, int(j)) for j in jobs]
    assert out.tolist() == expected
    assert 0 in expected or any(expected)
