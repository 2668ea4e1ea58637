"""A solver worker counts a job's time limit from when the parent sent it: a worker started
for the job spends a few tenths of a second importing its solvers before it reads the job,
and a 1-2 s call cannot spare them."""

from __future__ import annotations

import time

import pytest

from gridshift.optimizer.backends.worker import _time_left


def test_the_time_spent_before_the_job_was_read_comes_off_its_limit() -> None:
    options = _time_left({"time_limit_s": 2.0, "sent_at": time.monotonic() - 0.5, "seed": 3})
    assert options["time_limit_s"] == pytest.approx(1.5, abs=0.1)
    assert options["seed"] == 3 and "sent_at" not in options


def test_a_job_sent_long_ago_still_gets_a_moment() -> None:
    options = _time_left({"time_limit_s": 1.0, "sent_at": time.monotonic() - 30.0})
    assert options["time_limit_s"] == 0.05


def test_a_job_without_a_send_time_keeps_its_limit() -> None:
    assert _time_left({"time_limit_s": 2.0}) == {"time_limit_s": 2.0}
    assert _time_left({"sent_at": time.monotonic()}) == {}


def test_the_parent_stamps_each_job_with_its_send_time(monkeypatch) -> None:
    """solve_isolated sends through _run_in_worker, which stamps the job with the time it
    was sent; a real worker takes the stamp off before the solver sees the options, and
    solves the model (its plan checked)."""
    from conftest import job, problem_of, small_request

    from gridshift.optimizer.backends import isolated
    from gridshift.optimizer.checker import check_plan
    from gridshift.optimizer.milp import build_milp

    sent: list[dict] = []
    real_acquire = isolated._acquire

    def recording_acquire():
        worker = real_acquire()
        real_send = worker.send

        def send(job) -> None:
            sent.append(job[2])
            real_send(job)

        worker.send = send
        return worker

    monkeypatch.setattr(isolated, "_acquire", recording_acquire)
    problem = problem_of(small_request(jobs=[job("a", gpus=4, duration_minutes=120),
                                             job("b", gpus=6)]))
    model = build_milp(problem, list(range(problem.n_jobs)))
    before = time.monotonic()
    result = isolated.solve_isolated("highs", model, time_limit_s=5.0, relative_gap=0.0,
                                     workers=1)
    assert result.status == "optimal", result.detail
    plan = model.checked_decode(result.values)
    assert plan is not None and check_plan(problem, plan).ok
    assert len(sent) == 1 and sent[0]["time_limit_s"] == 5.0
    assert before <= sent[0]["sent_at"] <= time.monotonic()


def _solved_without_the_exact_backend(monkeypatch, **pipeline_settings):
    """A 30-job solve under 2 s with the whole model in a worker process
    (ISOLATE_MIN_COLUMNS 0) and ``pipeline_settings`` set in optimizer/solve.py; checks that
    its plan (the search's) is valid, places every job, and that the detail says the exact
    backend did not run. The result."""
    import dataclasses
    import sys
    from pathlib import Path

    from conftest import assert_plan_valid, problem_of

    import gridshift.optimizer.solve as pipeline
    from gridshift.optimizer.domain import Options

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from instances import InstanceSpec, make_request

    monkeypatch.setattr(pipeline, "ISOLATE_MIN_COLUMNS", 0)
    for name, value in pipeline_settings.items():
        monkeypatch.setattr(pipeline, name, value)
    problem = problem_of(make_request(InstanceSpec("t", jobs=30, sites=2, slots=24, seed=4)))
    result = pipeline.solve(dataclasses.replace(problem,
                                                options=Options(time_limit_seconds=2.0)))
    assert_plan_valid(result)
    assert not result.plan.unscheduled
    assert result.detail.startswith("HiGHS: not run (")
    return result


def test_no_worker_is_started_for_the_whole_model_without_time_to_use_it(monkeypatch) -> None:
    """Where building the whole model left less than EXACT_IN_WORKER_MIN_S, no worker is
    started for it (its start-up alone would overrun the call); the detail says so, and the
    plan (the search's) checks."""
    from gridshift.optimizer.backends import isolated

    started: list[str] = []
    real = isolated._run_in_worker

    def recording(job, *args, **kwargs):
        started.append(job[0])
        return real(job, *args, **kwargs)

    monkeypatch.setattr(isolated, "_run_in_worker", recording)
    _solved_without_the_exact_backend(monkeypatch, EXACT_IN_WORKER_MIN_S=1e9)
    assert "highs" not in started


def test_the_whole_model_is_not_built_without_time_to_build_and_solve_it(monkeypatch) -> None:
    """Where the model's estimated build time (BUILD_S_PER_COLUMN per column) and
    EXACT_IN_WORKER_MIN_S exceed the time left, the model is not even built (a 1 s call on
    1,000 jobs built one for 1.3 s past its limit); the detail says why, and the plan (the
    search's) checks."""
    import gridshift.optimizer.solve as pipeline

    built: list[int] = []
    real = pipeline.build_milp

    def recording(problem, jobs):
        built.append(len(jobs))
        return real(problem, jobs)

    monkeypatch.setattr(pipeline, "build_milp", recording)
    result = _solved_without_the_exact_backend(monkeypatch, BUILD_S_PER_COLUMN=1.0)
    assert "s to build the model and 0.3 s at least to run it)" in result.detail.split(";")[0]
    assert built == []


def test_an_exact_run_past_its_deadline_says_no_time_was_left_not_a_negative_time() -> None:
    """A construction that overran the call's deadline left "-0.09 s" in the detail; the time
    left is said as 0.00 s, and no model is built."""
    from conftest import problem_of, small_request

    import gridshift.optimizer.solve as pipeline
    from gridshift.optimizer.domain import Backend
    from gridshift.optimizer.plan import Plan

    problem = problem_of(small_request())
    result, plan = pipeline._exact(problem, list(range(problem.n_jobs)), 10 ** 6, Plan(),
                                   Backend.HIGHS, time.monotonic() - 0.5, None,
                                   lambda *a, **k: None)
    assert plan is None and result.status == "no_solution"
    assert "(0.00 s left, about 25.0 s to build the model and 0.3 s at least to run it)" \
        in result.detail, result.detail


def test_an_exact_backend_that_did_not_run_leaves_the_search_its_time(monkeypatch) -> None:
    """Only a proof of optimality ends the search beside the exact backend early: where the
    whole model was not even built for want of time, the search (a probe of ruin and
    recreate under a short limit) still runs. It used to be stopped at once, as if the
    exact backend had proven its plan, and the call returned the construction's plan."""
    import gridshift.optimizer.portfolio as portfolio

    # The search starts beside the exact backend at once, as it does beside a model of
    # 2,000 columns or more (this one has 366).
    monkeypatch.setattr(portfolio, "SEARCH_AT_ONCE_MIN_COLUMNS", 0)
    result = _solved_without_the_exact_backend(monkeypatch, BUILD_S_PER_COLUMN=1.0)
    assert "recreations in a probe" in result.detail, result.detail
    assert "no time for a probe step" not in result.detail, result.detail
