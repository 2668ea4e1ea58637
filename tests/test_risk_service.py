"""Risk in every response, risk-aware plan choice, and ScoreSchedules over gRPC and the CLI."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
from conftest import PROJECT_ROOT, job, make_app, prepare, small_request
from google.protobuf import json_format

from gridshift.adapters.codec import plan_from_response, to_response
from gridshift.adapters.grpc_client import SchedulerClient
from gridshift.api.v1 import optimize_pb2 as pb
from gridshift.api.v1 import scoring_pb2
from gridshift.app.risk import ci_scenarios, solve_with_risk
from gridshift.optimizer.checker import check_plan
from gridshift.optimizer.parsing import scenario_count_problem
from gridshift.service.servicer import start_server
from gridshift.settings import ServerSettings


def request_with_uncertainty(**options) -> dict:
    ci = [300, 240, 150, 120, 160, 230, 290, 320, 310, 260, 200, 250]
    request = small_request(slots=12, ci=ci)
    request["forecasts"][0]["carbon_intensity_p10"] = [0.7 * v for v in ci]
    request["forecasts"][0]["carbon_intensity_p90"] = [v * (1.1 + 0.08 * t)
                                                       for t, v in enumerate(ci)]
    request["sites"].append({"id": "b", "region": "R", "gpu_capacity": 8, "pue": 1.3})
    request["jobs"] = [job(f"j{i}", gpus=4, power_kw=3 + i, duration_minutes=60 * (1 + i % 3),
                           interruptible=i % 2 == 1, min_run_minutes=60) for i in range(6)]
    request["options"].update(options)
    return request


def test_scenarios_follow_the_forecast_band() -> None:
    problem = prepare(request_with_uncertainty())
    scenarios = ci_scenarios(problem, 400, seed=3)
    assert scenarios.shape == (400, 2, 12)
    assert (scenarios >= 0).all()
    p10 = np.array(request_with_uncertainty()["forecasts"][0]["carbon_intensity_p10"])
    p90 = np.array(request_with_uncertainty()["forecasts"][0]["carbon_intensity_p90"])
    inside = ((scenarios[:, 0, :] >= p10) & (scenarios[:, 0, :] <= p90)).mean()
    assert 0.7 < inside < 0.9
    # Sites in one region share their scenario.
    assert np.array_equal(scenarios[:, 0, :], scenarios[:, 1, :])


def test_every_response_carries_risk() -> None:
    outcome = make_app().planner.plan(request_with_uncertainty())
    response = to_response(outcome.result, outcome.plan_id)
    risk = response.risk
    assert risk.scenarios == 32
    assert 0 < risk.expected_kg <= risk.cvar95_kg
    assert risk.p90_kg <= risk.cvar95_kg + 1e-9


@pytest.mark.parametrize("measure", ["EXPECTED", "P90", "CVAR95"])
def test_risk_measure_chooses_no_worse_plan(measure: str) -> None:
    problem = prepare(request_with_uncertainty(risk_measure=measure, random_seed=5))
    result = solve_with_risk(problem)
    assert check_plan(problem, result.plan).ok
    risk = result.risk
    assert risk["measure"] == measure and risk["candidates"] > 5
    assert risk["chosen_measure_kg"] <= risk["point_plan_measure_kg"] + 1e-9
    key = {"EXPECTED": "expected_kg", "P90": "p90_kg", "CVAR95": "cvar95_kg"}[measure]
    assert risk[key] == pytest.approx(risk["chosen_measure_kg"])


@pytest.fixture
def server() -> str:
    running = start_server(make_app(), ServerSettings(port=0))
    try:
        yield f"127.0.0.1:{running.port}"
    finally:
        running.server.stop(0).wait()


def score_request(problem: dict,
                  plans: list[pb.OptimizeResponse]) -> scoring_pb2.ScoreSchedulesRequest:
    request = scoring_pb2.ScoreSchedulesRequest(scenarios=64, seed=1)
    json_format.ParseDict(problem, request.problem)
    for k, response in enumerate(plans):
        request.candidates.add(name=f"plan-{k}", assignments=response.assignments)
    return request


def test_score_schedules_over_grpc(server: str) -> None:
    problem = request_with_uncertainty()
    with SchedulerClient(server) as client:
        good = client.optimize(problem, timeout=60)
        assert good.risk.scenarios == 32
        crowded = copy.deepcopy(good)
        for a in crowded.assignments:      # everything at site a from slot 0: over capacity
            a.site_id = "a"
            length = (a.end.seconds - a.start.seconds)
            a.start.seconds = good.assignments[0].start.seconds - 3600 * 100
            a.start.FromJsonString("2026-06-15T00:00:00Z")
            a.end.seconds = a.start.seconds + length
            del a.runs[:]
        response = client.stub.ScoreSchedules(score_request(problem, [good, crowded]), timeout=60)
    first, second = response.scores
    assert response.scenarios == 64 and response.device == "cpu"
    assert first.feasible and not second.feasible
    assert second.gpu_overuse_gpu_slots > 0
    problem_obj = prepare(problem)
    check = check_plan(problem_obj, plan_from_response(problem_obj, good))
    assert check.ok
    assert first.emissions_kg == pytest.approx(check.emissions_kg, rel=1e-9)
    assert first.risk.expected_kg <= first.risk.cvar95_kg


def test_bad_candidates_are_invalid_argument(server: str) -> None:
    problem = request_with_uncertainty()
    request = scoring_pb2.ScoreSchedulesRequest()
    json_format.ParseDict(problem, request.problem)
    candidate = request.candidates.add(name="bad")
    candidate.assignments.add(job_id="nope", site_id="a")
    ok = candidate.assignments.add(job_id="j0", site_id="a")
    ok.start.FromJsonString("2026-06-15T00:30:00Z")
    ok.end.FromJsonString("2026-06-15T01:30:00Z")
    with SchedulerClient(server) as client, pytest.raises(grpc.RpcError) as caught:
        client.stub.ScoreSchedules(request, timeout=60)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "candidates[0].assignments[0].job_id" in caught.value.details()
    assert "candidates[0].assignments[1]" in caught.value.details()


def test_score_cli(tmp_path: Path) -> None:
    problem = request_with_uncertainty()
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(problem))
    plan_file = tmp_path / "plan.json"
    subprocess.run([sys.executable, "-m", "gridshift.cli", "plan", str(request_file), "-o",
                    str(plan_file), "-q"], check=True, cwd=PROJECT_ROOT)
    done = subprocess.run([sys.executable, "-m", "gridshift.cli", "score", str(request_file),
                           str(plan_file), "--format", "json", "--device", "cpu",
                           "--scenarios", "16"], capture_output=True, text=True,
                          cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr
    scores = json.loads(done.stdout)["scores"]
    written = json.loads(plan_file.read_text())
    assert scores[0]["feasible"] is True
    assert scores[0]["emissions_kg"] == pytest.approx(written["totals"]["emissions_kg"],
                                                     rel=1e-9)
    gpu = subprocess.run([sys.executable, "-m", "gridshift.cli", "score", str(request_file),
                          str(plan_file), "--device", "gpu"], capture_output=True, text=True,
                         cwd=PROJECT_ROOT)
    try:
        import cupy  # noqa: F401
    except ImportError:
        assert gpu.returncode == 2 and "Traceback" not in gpu.stderr
        assert "GPU" in gpu.stderr or "gpu" in gpu.stderr


def test_too_many_scenarios_are_invalid_argument_not_out_of_memory(server: str) -> None:
    """Scenario counts that would fill the server's memory are refused up front, for
    Optimize (options.scenarios) and ScoreSchedules (scenarios); the server keeps serving."""
    problem = request_with_uncertainty()
    greedy = {**problem, "options": {**problem.get("options", {}), "scenarios": 2**31 - 1}}
    request = scoring_pb2.ScoreSchedulesRequest(scenarios=50_000)
    json_format.ParseDict(problem, request.problem)
    request.candidates.add(name="empty")
    with SchedulerClient(server) as client:
        with pytest.raises(grpc.RpcError) as optimize_error:
            client.optimize(greedy, timeout=60)
        with pytest.raises(grpc.RpcError) as score_error:
            client.stub.ScoreSchedules(request, timeout=60)
        assert client.health() == "SERVING"
    assert optimize_error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "options.scenarios: at most 10,000, got 2,147,483,647" in (
        optimize_error.value.details())
    assert score_error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "scenarios: at most 10,000, got 50,000" in score_error.value.details()


def test_scenario_budget_counts_sites_and_slots() -> None:
    assert scenario_count_problem(10_000, 2, 12) == ""
    assert scenario_count_problem(10_001, 2, 12) == "at most 10,000, got 10,001"
    message = scenario_count_problem(9_000, 10, 20_000)
    assert "9,000 scenarios x 10 site(s) x 20,000 slots" in message
    assert "50,000,000 values" in message
    assert scenario_count_problem(250, 10, 20_000) == ""
