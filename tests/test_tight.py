"""Tight nights (bench/tight_instances.py): GPU capacity binds and every deadline is what a
first-come-first-served schedule needs. The pipeline places every job (the cost-first
constructions cannot, the earliest-fit one can), ruin and recreate improves the plan and
never breaks a constraint, and the search skips LP guidance where capacity binds. Every plan
goes through the independent checker; nothing here depends on how fast the machine is."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import pytest
from conftest import assert_plan_valid, problem_of

from gridshift.optimizer import greedy, insertion_kernels, portfolio
from gridshift.optimizer.accounting import plan_objective
from gridshift.optimizer.baseline import fifo_baseline
from gridshift.optimizer.checker import check_plan
from gridshift.optimizer.domain import Options
from gridshift.optimizer.ruin_recreate import ruin_and_recreate
from gridshift.optimizer.solve import solve

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from tight_instances import TightSpec, make_tight_request  # noqa: E402

SPEC = TightSpec("test-tight", jobs=60, sites=3, slots=48, seed=3)


@pytest.fixture(scope="module")
def problem():
    return problem_of(make_tight_request(SPEC))


def _solved(problem, limit_s: float) -> tuple:
    """The pipeline on `problem` under `limit_s`, its plan through the checker: (the result,
    the heuristic's objective, the progress events)."""
    events: list[dict] = []
    result = solve(dataclasses.replace(problem, options=Options(time_limit_seconds=limit_s)),
                   on_progress=events.append)
    assert_plan_valid(result)
    heuristic = next(e["objective"] for e in events if e["kind"] == "heuristic")
    return result, heuristic, events


def test_the_instance_is_tight(problem) -> None:
    """FIFO places every job by its deadline, and no job has more slack than FIFO needed."""
    fifo = fifo_baseline(problem)
    assert not fifo.unscheduled and problem.n_jobs >= 50
    assert check_plan(problem, fifo).ok
    assert all(p.end_slot == problem.last_slot[j] for j, p in fifo.placements.items())


def test_earliest_fit_places_every_job_within_its_deadline(problem) -> None:
    plan = greedy.earliest_fit_plan(problem)
    assert not plan.unscheduled
    check = check_plan(problem, plan)
    assert check.ok, check.violations[:5]


def test_earliest_fit_takes_only_the_jobs_asked_for(problem) -> None:
    jobs = set(range(0, problem.n_jobs, 2))
    plan = greedy.earliest_fit_plan(problem, jobs)
    assert set(plan.placements) | set(plan.unscheduled) == jobs


def test_the_heuristic_places_every_job_of_a_tight_night(problem) -> None:
    plan = greedy.greedy_plan(problem, 0.5, seed=0)
    assert not plan.unscheduled
    assert check_plan(problem, plan).ok
    assert plan_objective(problem, plan) <= plan_objective(problem, fifo_baseline(problem))


@pytest.fixture(params=["compiled", "numpy"])
def search_loop(request, monkeypatch):
    """Ruin and recreate's loop, compiled (optimizer/annealing_jit.py) or step by step."""
    from gridshift.optimizer import insertion_kernels
    from gridshift.optimizer import ruin_recreate as rr

    compiled = request.param == "compiled"
    if compiled and insertion_kernels.kernels() is None:
        pytest.skip("numba unavailable: the compiled loop cannot load")
    monkeypatch.setattr(rr, "COMPILED_LOOP", compiled)
    return request.param


def test_ruin_and_recreate_improves_and_keeps_every_constraint(problem, search_loop) -> None:
    start = greedy.greedy_plan(problem, 0.5, seed=0)
    reported: list[tuple[float, float]] = []

    def on_improve(plan, objective: float) -> None:
        reported.append((objective, plan_objective(problem, plan)))

    plan, stats = ruin_and_recreate(problem, start, time.monotonic() + 120, seed=1,
                                    max_steps=400, on_improve=on_improve)
    check = check_plan(problem, plan)
    assert check.ok, check.violations[:5]
    assert set(plan.placements) == set(start.placements)
    assert plan_objective(problem, plan) <= plan_objective(problem, start) + 1e-9
    assert stats.steps == 400
    # Improvements reported are the plans' own objectives, each better than the last.
    assert all(a == pytest.approx(b, rel=1e-9) for a, b in reported)
    assert [a for a, _ in reported] == sorted((a for a, _ in reported), reverse=True)
    if reported:
        assert reported[-1][1] == pytest.approx(plan_objective(problem, plan), rel=1e-9)
    # Capacity binds here: some recreations find no room and are undone.
    assert stats.failed > 0
    assert "ruin and recreate:" in stats.summary()


def test_ruin_and_recreate_stops_when_asked(problem, search_loop) -> None:
    start = greedy.greedy_plan(problem, 0.5, seed=0)
    plan, stats = ruin_and_recreate(problem, start, time.monotonic() + 120, stop=lambda: True)
    assert stats.steps == 0
    assert plan.placements == start.placements


def test_a_tight_night_is_planned_with_every_job_and_capacity_binding_is_said(problem) -> None:
    """The pipeline (exact backend beside the search): every job placed, the plan checked, no
    worse than the heuristic's; the detail says LP guidance was skipped because capacity
    binds, and what ruin and recreate did."""
    result, heuristic, events = _solved(problem, 4.0)
    assert result.status in ("FEASIBLE", "OPTIMAL") and not result.plan.unscheduled
    assert result.objective <= heuristic + 1e-9
    incumbents = [e["objective"] for e in events if e["kind"] == "incumbent"]
    assert incumbents == sorted(incumbents, reverse=True)
    if result.status == "FEASIBLE" and "ruin and recreate" in result.detail:
        assert "LP-guided search skipped: capacity binds" in result.detail
        # The whole model gave its core to a second search, after the LP bound.
        assert "whole model stopped: capacity binds" in result.detail
        assert "stopped where capacity binds" in result.detail
        assert "cancelled" not in result.detail
        assert "a second search in a worker process: ruin and recreate" in result.detail
        assert result.best_bound > 0 and result.objective >= result.best_bound - 1e-6


def test_a_second_search_in_a_worker_process_improves_and_keeps_every_constraint(
        problem) -> None:
    from gridshift.optimizer.backends.isolated import recreate_isolated

    start = greedy.greedy_plan(problem, 0.5, seed=0)
    reported: list[tuple[float, float]] = []
    searched = recreate_isolated(
        problem, start, time_limit_s=1.5, seed=3,
        on_improve=lambda p, v: reported.append((v, plan_objective(problem, p))))
    plan, summary = searched.plan, searched.summary
    assert searched.failure is None
    check = check_plan(problem, plan)
    assert check.ok, check.violations[:5]
    assert set(plan.placements) == set(start.placements)
    assert plan_objective(problem, plan) <= plan_objective(problem, start) + 1e-9
    assert summary.startswith("ruin and recreate:")
    assert all(a == pytest.approx(b, rel=1e-9) for a, b in reported)
    assert [a for a, _ in reported] == sorted((a for a, _ in reported), reverse=True)


def test_a_second_search_stops_when_asked_with_its_best_plan(problem) -> None:
    from gridshift.optimizer.backends.isolated import recreate_isolated

    start = greedy.greedy_plan(problem, 0.5, seed=0)
    began = time.monotonic()
    searched = recreate_isolated(problem, start, time_limit_s=120, seed=3,
                                 stop_flag=lambda: time.monotonic() - began > 1.0)
    plan, summary = searched.plan, searched.summary
    assert time.monotonic() - began < 10
    assert summary == "second search cancelled"
    assert check_plan(problem, plan).ok and set(plan.placements) == set(start.placements)
    assert plan_objective(problem, plan) <= plan_objective(problem, start) + 1e-9


def test_generous_instances_keep_lp_guidance(monkeypatch) -> None:
    """Where every recreation finds room, the LP-guided rounds run as before."""
    from instances import InstanceSpec, make_request

    p = problem_of(make_request(InstanceSpec("t", jobs=60, sites=3, slots=48, seed=2)))
    called: list[int] = []

    def fake_guided(problem, jobs, starts, backend, until, stopped, emit, **limits):
        from gridshift.optimizer.lp_guided import GuidedResult

        called.append(len(starts))
        while time.monotonic() < until:          # rounds until the deadline
            time.sleep(0.01)
        return GuidedResult(starts[0], float("-inf"), 1, 0, "LP-guided search: faked")

    monkeypatch.setattr(portfolio, "_guided", fake_guided)
    plan = greedy.greedy_plan(p, 0.5, seed=0)
    found = portfolio._local_and_guided(p, list(range(p.n_jobs)), plan,
                                        portfolio.Backend.HIGHS, time.monotonic() + 1.5,
                                        lambda: False, lambda *a, **k: None)
    assert called == [1]
    assert found.detail == "LP-guided search: faked"
    assert check_plan(p, found.plan).ok
    assert plan_objective(p, found.plan) <= plan_objective(p, plan) + 1e-9


def test_time_a_stalled_lp_guided_search_leaves_goes_to_ruin_and_recreate(monkeypatch) -> None:
    """Where the LP-guided search returns early (its LP not solved in time, or its rounds
    stalled), ruin and recreate improves its plan for the time left."""
    from instances import InstanceSpec, make_request

    p = problem_of(make_request(InstanceSpec("t", jobs=60, sites=3, slots=48, seed=2)))
    stall: list = []

    def fake_guided(problem, jobs, starts, backend, until, stopped, emit, **limits):
        from gridshift.optimizer.lp_guided import GuidedResult

        stall.append(limits["stall_rounds"])
        return GuidedResult(starts[0], float("-inf"), 0, 0,
                            "LP-guided search: LP not solved in time")

    monkeypatch.setattr(portfolio, "_guided", fake_guided)
    plan = greedy.greedy_plan(p, 0.5, seed=0)
    reported: list[float] = []
    began = time.monotonic()
    found = portfolio._local_and_guided(
        p, list(range(p.n_jobs)), plan, portfolio.Backend.HIGHS, began + 2.5, lambda: False,
        lambda kind, **data: reported.append(data["objective"]))
    assert stall == [portfolio.GUIDED_STALL_ROUNDS]
    assert found.detail.startswith("LP-guided search: LP not solved in time; then ruin and "
                                   "recreate: ")
    assert time.monotonic() - began < 2.5 + 1.0
    assert check_plan(p, found.plan).ok and not found.plan.unscheduled
    value = plan_objective(p, found.plan)
    assert value < plan_objective(p, plan)
    assert reported and reported[-1] == pytest.approx(value, rel=1e-9)


def test_the_first_plan_reported_places_every_job(problem) -> None:
    """The first construction leaves jobs out here; the first plan reported is the
    earliest-fit schedule, which does not."""
    first: list = []
    greedy.greedy_plan(problem, 0.5, seed=0, on_first_plan=first.append)
    assert len(first) == 1 and not first[0].unscheduled
    assert check_plan(problem, first[0]).ok


def test_the_portfolio_path_gives_ruin_and_recreate_the_time_where_capacity_binds(
        problem, monkeypatch) -> None:
    """Forced onto the exact + LNS portfolio path (models of 25,000-120,000 columns): where
    capacity binds, ruin and recreate then LNS run instead of the whole model; the plan
    checks and is no worse than the heuristic's."""
    monkeypatch.setattr(portfolio, "EXACT_ALONE_MAX_COLUMNS", 0)
    # The probe's full 60 steps however slow the machine (the verdict is a share of them).
    monkeypatch.setattr(portfolio, "PROBE_MAX_S", 5.0)
    result, heuristic, _ = _solved(problem, 6.0)
    assert result.status == "FEASIBLE" and not result.plan.unscheduled
    assert result.objective <= heuristic + 1e-9
    assert "capacity binds" in result.detail and "then LNS" in result.detail
    assert "ruin and recreate on both cores, the day cut in two" in result.detail
    assert "bound:" in result.detail


def test_the_portfolio_path_runs_ruin_and_recreate_first_where_capacity_does_not_bind(
        monkeypatch) -> None:
    """A generous instance forced onto the portfolio path: the probe finds room for every
    recreation, and ruin and recreate on both cores still runs before LNS (the whole model
    does not); the plan checks and beats the heuristic's."""
    from instances import InstanceSpec, make_request

    generous = problem_of(make_request(InstanceSpec("t", jobs=60, sites=3, slots=48, seed=2)))
    monkeypatch.setattr(portfolio, "EXACT_ALONE_MAX_COLUMNS", 0)
    result, heuristic, _ = _solved(generous, 6.0)
    assert not result.plan.unscheduled
    assert result.objective < heuristic
    assert result.detail.startswith("capacity does not bind (0 of ")
    assert "ruin and recreate on both cores, the day cut in two" in result.detail
    assert "then LNS" in result.detail and "portfolio:" not in result.detail


def test_the_search_before_lns_is_skipped_where_its_set_up_would_not_fit(monkeypatch) -> None:
    """Where each job's ideal cost (the search's set-up) would take too much of the time
    left, LNS runs from the probe's plan at once, and the limit holds."""
    from instances import InstanceSpec, make_request

    generous = problem_of(make_request(InstanceSpec("t", jobs=60, sites=3, slots=48, seed=2)))
    monkeypatch.setattr(portfolio, "EXACT_ALONE_MAX_COLUMNS", 0)
    monkeypatch.setattr(portfolio, "RECREATE_SETUP_S_PER_CELL", 1.0)
    timed = dataclasses.replace(generous, options=Options(time_limit_seconds=3.0))
    result = solve(timed)
    assert_plan_valid(result)
    assert "day cut in two" not in result.detail and "LNS" in result.detail
    assert result.wall_seconds < 3.0 + 1.0


def test_a_failing_second_search_costs_only_itself(problem, monkeypatch) -> None:
    """A worker that dies under the second search: the plan still comes, from the search in
    this process, checked, and the detail says the second search failed."""
    from gridshift.optimizer.backends import isolated

    real = isolated._run_in_worker

    def failing(job, *args, **kwargs):
        if job[0] == "ruin_recreate":
            raise RuntimeError("ruin_recreate solver process ended without a result")
        return real(job, *args, **kwargs)

    monkeypatch.setattr(isolated, "_run_in_worker", failing)
    # The probe's full 60 steps however slow the machine (the verdict is a share of them).
    monkeypatch.setattr(portfolio, "PROBE_MAX_S", 5.0)
    timed = dataclasses.replace(problem, options=Options(time_limit_seconds=6.0))
    result = solve(timed)
    assert_plan_valid(result)
    assert not result.plan.unscheduled
    assert "whole model stopped: capacity binds" in result.detail
    assert "second search failed (ruin_recreate solver process ended" in result.detail


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
def test_a_recreation_sure_to_be_rejected_stops_early_and_is_undone(problem, monkeypatch,
                                                                    compiled) -> None:
    """The annealing's test is drawn before a step: a recreation whose jobs already cost more
    than the step may add stops at once, and undoing the step restores the plan exactly
    (on the compiled recreation and on NumPy's)."""
    import numpy as np

    from gridshift.optimizer import insertion_kernels
    from gridshift.optimizer import ruin_recreate as rr

    if compiled and insertion_kernels.kernels() is None:
        pytest.skip("numba unavailable: the compiled recreation cannot load")
    if not compiled:
        monkeypatch.setattr(insertion_kernels, "loaded", None)
    start = greedy.greedy_plan(problem, 0.5, seed=0)
    sched = rr._Schedule(problem, start)
    before = sched.objective()
    free_before = sched.state.free_gpus.copy()
    jobs = np.array(sorted(start.placements)[:8])
    rng = np.random.default_rng(0)
    value, previous = rr._step(problem, sched, jobs, rng, limit=before - 1e6)
    # The first job put back already costs more than allowed: the other seven stay out.
    assert value == float("inf") and int((sched.site[jobs] >= 0).sum()) == 1
    rr._restore(sched, previous)
    assert sched.placements == start.placements
    assert (sched.state.free_gpus == free_before).all()
    assert sched.objective() == pytest.approx(before, rel=1e-12)
    # Without a limit the same step completes: every job back, an objective to judge.
    value, previous = rr._step(problem, sched, jobs, np.random.default_rng(0))
    assert value is None or (value < float("inf") and set(sched.placements) == set(
        start.placements))


def test_partial_sort_and_site_bits_pick_what_a_full_sort_and_matrix_product_would(
        problem) -> None:
    """The ruin's shortcuts: the few smallest by a partial sort, smallest first, as a full
    sort would give them; two jobs share a site by their site bits iff they do by the
    boolean matrix product."""
    import numpy as np

    from gridshift.optimizer import ruin_recreate as rr

    rng = np.random.default_rng(5)
    for n, size in [(2000, 30), (40, 3), (5, 10), (1, 1), (7, 0)]:
        values = rng.normal(size=n)
        values[rng.random(n) < 0.2] = np.inf
        assert rr._smallest(values, size).tolist() == np.argsort(values, kind="stable")[
            :size].tolist()
    ruiner = rr._Ruiner(problem, rng)
    allowed, bits = ruiner.allowed, ruiner.site_bits
    assert bits is not None and len({len(a) for a in problem.allowed_sites}) > 1
    for j in range(problem.n_jobs):
        assert (((bits & bits[j]) != 0) == (allowed @ allowed[j] > 0)).all()


@pytest.mark.parametrize("left_out, restart_wins", [(1, True), (6, False)])
def test_a_restart_still_runs_where_the_first_construction_left_few_jobs_out(
        monkeypatch, left_out: int, restart_wins: bool) -> None:
    """Where the first construction leaves a few jobs out (at most 2 %: xlarge's 20 of
    10,000), a restart with them first still runs, even past the budget and although the
    earliest-fit schedule places every job, and its cheaper plan wins; where it leaves many
    out (a tight night's 18-27 %), the earliest-fit schedule is the plan to beat at once."""
    from instances import InstanceSpec, make_request

    from gridshift.optimizer.plan import Plan

    p = problem_of(make_request(InstanceSpec("t", jobs=60, sites=3, slots=48, seed=2)))
    full = greedy.construct(p, greedy.job_orders(p, 0)[0], None, None)
    fitted = greedy.earliest_fit_plan(p, None)
    assert not full.unscheduled and not fitted.unscheduled
    assert plan_objective(p, fitted) > plan_objective(p, full)
    calls: list[list[int]] = []

    def first_leaves_jobs_out(problem, order, jobs, stop, views=None):
        calls.append(list(order))
        if len(calls) > 1:
            return full
        out = set(order[:left_out])
        return Plan({j: pl for j, pl in full.placements.items() if j not in out},
                    dict.fromkeys(out, "no room"))

    monkeypatch.setattr(greedy, "construct", first_leaves_jobs_out)
    plan = greedy.greedy_plan(p, 0.0, seed=0)
    assert check_plan(p, plan).ok and not plan.unscheduled
    if restart_wins:
        assert len(calls) == 2 and calls[1][:left_out] == calls[0][:left_out]
        assert plan_objective(p, plan) <= plan_objective(p, full) + 1e-9
    else:
        assert len(calls) == 1
        assert plan_objective(p, plan) <= plan_objective(p, fitted) + 1e-9
        assert plan_objective(p, plan) > plan_objective(p, full)


def _kernel_loads(monkeypatch) -> list[str]:
    """Record, in the order they happen, the first plan's event and each early kernel load."""
    from gridshift.optimizer import insertion_kernels

    seen: list[str] = []
    real = insertion_kernels.kernels_within

    def recorded(timeout_s: float):
        seen.append(f"load within {timeout_s:.2f} s")
        return real(timeout_s)

    monkeypatch.setattr(insertion_kernels, "kernels_within", recorded)
    return seen


def test_a_large_model_loads_the_kernels_right_after_its_first_plan(problem,
                                                                     monkeypatch) -> None:
    """Above the size where the exact backend runs alone, the compiled kernels are loaded as
    soon as the first plan is out (never before it), with a wait bounded by the limit."""
    import gridshift.optimizer.solve as pipeline

    monkeypatch.setattr(pipeline, "EARLY_KERNELS_MIN_COLUMNS", 1)
    seen = _kernel_loads(monkeypatch)
    limit = 3.0
    result = solve(dataclasses.replace(problem, options=Options(time_limit_seconds=limit)),
                   on_progress=lambda e: seen.append(e["kind"]) if e["kind"] == "first_plan"
                   else None)
    assert_plan_valid(result)
    expected = f"load within {pipeline.EARLY_KERNELS_WAIT_SHARE * limit:.2f} s"
    assert seen[:2] == ["first_plan", expected]


@pytest.mark.parametrize("columns, limit", [(None, 3.0), (1, 1.0)])
def test_small_models_and_short_limits_do_not_load_the_kernels_early(problem, monkeypatch,
                                                                      columns, limit) -> None:
    """A model below that size, or a limit under EARLY_KERNELS_MIN_LIMIT_S, goes on with its
    construction without waiting for the kernels (ruin and recreate may still ask later)."""
    import gridshift.optimizer.solve as pipeline

    if columns is not None:
        monkeypatch.setattr(pipeline, "EARLY_KERNELS_MIN_COLUMNS", columns)
    jobs = list(range(problem.n_jobs))
    assert (portfolio.estimate_columns(problem, jobs) < pipeline.EARLY_KERNELS_MIN_COLUMNS
            or limit < pipeline.EARLY_KERNELS_MIN_LIMIT_S)
    seen = _kernel_loads(monkeypatch)
    pipeline._load_kernels_early(problem, jobs, limit, time.monotonic() + limit)
    assert seen == []


def test_a_first_plan_past_the_deadline_does_not_wait_for_the_kernels(problem, monkeypatch
                                                                      ) -> None:
    """A model large enough, under a long enough limit, whose first plan came after the
    call's deadline: it is returned as it is, without waiting for the kernels."""
    import gridshift.optimizer.solve as pipeline

    monkeypatch.setattr(pipeline, "EARLY_KERNELS_MIN_COLUMNS", 1)
    seen = _kernel_loads(monkeypatch)
    jobs = list(range(problem.n_jobs))
    pipeline._load_kernels_early(problem, jobs, 3.0, time.monotonic() - 0.1)
    assert seen == []
    pipeline._load_kernels_early(problem, jobs, 3.0, time.monotonic() + 3.0)
    assert seen == [f"load within {pipeline.EARLY_KERNELS_WAIT_SHARE * 3.0:.2f} s"]


def _short_limit_search(monkeypatch) -> None:
    """The small fixtures as if they were medium models (the exact backend in a worker
    process, the search beside it), with the probe's full 60 steps however slow the
    machine (its verdict is a share of them)."""
    import gridshift.optimizer.solve as pipeline

    monkeypatch.setattr(portfolio, "SEARCH_AT_ONCE_MIN_COLUMNS", 0)
    monkeypatch.setattr(pipeline, "ISOLATE_MIN_COLUMNS", 0)
    monkeypatch.setattr(portfolio, "PROBE_MAX_S", 5.0)


def test_the_first_pass_shows_how_many_jobs_cost_first_insertion_leaves_out(problem) -> None:
    """greedy_plan hands over its first construction as it is: on the tight night it leaves
    jobs out (the earliest-fit schedule then places them all), on a generous one none."""
    from instances import InstanceSpec, make_request

    first: list = []
    plan = greedy.greedy_plan(problem, 0.5, seed=0, on_first_pass=first.append)
    assert len(first) == 1 and not plan.unscheduled
    assert len(first[0].unscheduled) > portfolio.CONSTRUCTION_BINDS_SHARE * problem.n_jobs
    generous = problem_of(make_request(InstanceSpec("t", jobs=60, sites=3, slots=48, seed=2)))
    first.clear()
    greedy.greedy_plan(generous, 0.5, seed=0, on_first_pass=first.append)
    assert len(first) == 1 and not first[0].unscheduled


def test_under_a_short_limit_the_whole_model_is_not_built_where_the_construction_binds(
        problem, monkeypatch) -> None:
    """Under a limit too short for the LP-guided rounds, a construction whose first pass left
    many jobs out already shows that capacity binds: the whole model is not built (its build
    would take the interpreter from the search) and ruin and recreate gets all the time."""
    import gridshift.optimizer.solve as pipeline

    _short_limit_search(monkeypatch)

    def no_model(*args, **kwargs):
        raise AssertionError("the whole model was built")
    monkeypatch.setattr(pipeline, "build_milp", no_model)
    warmed: list[int] = []
    monkeypatch.setattr(insertion_kernels, "warm_up", lambda: warmed.append(1))
    result, heuristic, _ = _solved(problem, 1.5)
    assert warmed == []     # no later search: nothing loads in the background
    assert not result.plan.unscheduled
    assert result.objective <= heuristic + 1e-9
    assert "HiGHS: not run (under a short limit, capacity binds: the construction's first " \
           "pass left " in result.detail
    assert "ruin and recreate: " in result.detail and "probe" not in result.detail
    assert "bound: Lagrangian relaxation" in result.detail
    assert result.best_bound <= result.objective


@pytest.mark.parametrize("warm_up", [True, False])
def test_a_short_search_loads_the_kernels_for_a_later_one_unless_told_none_follows(
        problem, monkeypatch, warm_up: bool) -> None:
    warmed: list[int] = []
    monkeypatch.setattr(insertion_kernels, "warm_up", lambda: warmed.append(1))
    start = greedy.greedy_plan(problem, 0.5, seed=0)
    plan, _ = ruin_and_recreate(problem, start, time.monotonic() + 0.2, seed=1,
                                warm_up=warm_up)
    assert check_plan(problem, plan).ok
    assert warmed == ([1] if warm_up else [])


def test_under_a_short_limit_ruin_and_recreate_runs_where_capacity_binds(
        problem, monkeypatch) -> None:
    """Under a limit too short for the LP-guided rounds, where the construction does not tell
    (its first pass placed enough jobs), the probe runs beside the exact backend; where
    capacity binds, the exact backend stops and ruin and recreate gets the time (no second
    search in a worker: no time to start one)."""
    _short_limit_search(monkeypatch)
    monkeypatch.setattr(portfolio, "CONSTRUCTION_BINDS_SHARE", 1.0)
    result, heuristic, _ = _solved(problem, 1.5)
    assert not result.plan.unscheduled
    assert result.objective <= heuristic + 1e-9
    assert "stopped where capacity binds" in result.detail
    assert "under a short limit, capacity binds (" in result.detail
    assert "ruin and recreate:" in result.detail and "second search" not in result.detail


def test_under_a_short_limit_the_exact_backend_keeps_the_time_where_capacity_does_not_bind(
        monkeypatch) -> None:
    """A generous instance under the same short limit: the probe finds room for every
    recreation, stops there, and the exact backend runs on alone."""
    from instances import InstanceSpec, make_request

    _short_limit_search(monkeypatch)
    generous = problem_of(make_request(InstanceSpec("t", jobs=60, sites=3, slots=48, seed=2)))
    result = solve(dataclasses.replace(generous, options=Options(time_limit_seconds=1.5)))
    assert_plan_valid(result)
    assert "ruin and recreate: a probe only (capacity does not bind (0 of " in result.detail
    assert "stopped where capacity binds" not in result.detail


def test_a_probe_that_had_no_time_for_a_step_says_so_instead_of_a_verdict() -> None:
    """A call whose probe got no step (0 of 0 recreations) does not claim that capacity does
    not bind: the detail says there was no time, and what was assumed."""
    from gridshift.optimizer.ruin_recreate import RecreateStats

    nothing = RecreateStats()
    assert not portfolio._capacity_binds(nothing)
    assert portfolio._probe_verdict(nothing) == ("no time for a probe step: capacity taken "
                                                 "not to bind")
    assert portfolio._probe_verdict(RecreateStats(steps=60, failed=20)) == (
        "capacity binds (20 of 60 recreations in a probe found no room)")
    assert portfolio._probe_verdict(RecreateStats(steps=60, failed=0)).startswith(
        "capacity does not bind (0 of 60 ")
