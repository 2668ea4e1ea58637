"""Interoperability: a second gRPC implementation, sharing no code with ours, talks to the server.

tests/interop/client.js uses Node.js @grpc/grpc-js + @grpc/proto-loader and loads only the
.proto files under protos/. It calls Optimize and StreamOptimize on a real server started here
(in-process, port 0) and prints what it got as JSON; the plans are then rebuilt here and
verified by the independent checker, and compared with the Python client's answer.

Needs `node` and tests/interop/node_modules (`make test` runs `npm ci --prefix tests/interop`
when npm is installed); skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PROJECT_ROOT, START, hours, job, make_app, prepare, small_request
from google.protobuf import json_format

from gridshift.adapters.codec import plan_from_response
from gridshift.adapters.grpc_client import SchedulerClient
from gridshift.api.v1 import optimize_pb2 as pb
from gridshift.optimizer.checker import check_plan
from gridshift.optimizer.solve import solve
from gridshift.service.servicer import RunningServer, start_server
from gridshift.settings import ServerSettings

INTEROP_DIR = PROJECT_ROOT / "tests" / "interop"
CLIENT_JS = INTEROP_DIR / "client.js"
NODE = shutil.which("node")
# Generous: a cold Node start plus two solves on a loaded 2-core machine.
NODE_TIMEOUT_S = 180
CALL_DEADLINE_S = 120

if NODE is None:
    pytest.skip("node is not installed: the Node.js interop client cannot run",
                allow_module_level=True)
if not (INTEROP_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir():
    pytest.skip("tests/interop/node_modules is absent: run `npm ci --prefix tests/interop` "
                "(make test does it when npm is installed)", allow_module_level=True)


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    running = start_server(make_app(), ServerSettings(port=0, max_concurrent_solves=2))
    try:
        yield running
    finally:
        running.drain(grace_seconds=0).wait(timeout=30)


def interop_request() -> dict:
    """Several jobs on two sites with their own inline forecasts; small enough to be proven
    optimal in well under a second, so both clients must get the same emissions. Site b is
    cleaner and its power cap (a proto3 `optional` field) binds."""
    slots = 12
    return small_request(
        slots=slots,
        sites=[{"id": "a", "region": "R", "gpu_capacity": 8},
               {"id": "b", "region": "S", "gpu_capacity": 4, "pue": 1.2, "power_cap_kw": 3.0}],
        forecasts=[
            {"region": "R", "start": START, "slot_minutes": 60,
             "carbon_intensity": [100.0 + 10 * t for t in range(slots)]},
            {"region": "S", "start": START, "slot_minutes": 60,
             "carbon_intensity": [90.0 - 2 * t for t in range(slots)]},
        ],
        jobs=[
            job("train-1", gpus=4, power_kw=3.0, duration_minutes=120),
            job("eval-2", gpus=2, deadline=hours(6)),
            job("ft-3", gpus=4, power_kw=2.5, duration_minutes=180, interruptible=True,
                min_run_minutes=60),
            job("etl-4", gpus=1, earliest_start=hours(2), allowed_sites=["b"]),
            job("big-5", gpus=8, power_kw=6.0, duration_minutes=60, allowed_sites=["a"]),
            job("batch-6", gpus=2, power_kw=1.5, duration_minutes=120, earliest_start=hours(3),
                deadline=hours(10), priority=2.0),
        ])


def run_node(target: str, request: Any, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request), encoding="utf-8")
    return subprocess.run([NODE, str(CLIENT_JS), target, str(path),
                           "--deadline-s", str(CALL_DEADLINE_S)],
                          cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=NODE_TIMEOUT_S)


def node_results(server: RunningServer, request: dict, tmp_path: Path) -> dict:
    proc = run_node(f"127.0.0.1:{server.port}", request, tmp_path)
    assert proc.returncode == 0, f"node client failed ({proc.returncode}): {proc.stderr}"
    return json.loads(proc.stdout)


def to_response(obj: dict) -> pb.OptimizeResponse:
    """The Node client's JSON (proto field names, enum names, RFC 3339 timestamps) as a
    message; unknown or mistyped fields fail here."""
    return json_format.ParseDict(obj, pb.OptimizeResponse())


def assert_plan_checks(request: dict, response: pb.OptimizeResponse) -> None:
    problem = prepare(request)
    assert pb.PlanStatus.Name(response.status) == "OPTIMAL", response.solver.status_detail
    assert not response.unscheduled
    assert sorted(a.job_id for a in response.assignments) == sorted(
        j["id"] for j in request["jobs"])
    check = check_plan(problem, plan_from_response(problem, response))
    assert check.ok, check.violations
    assert response.totals.emissions_kg == pytest.approx(check.emissions_kg, rel=1e-9, abs=1e-9)
    assert response.totals.energy_kwh == pytest.approx(check.energy_kwh, rel=1e-9, abs=1e-9)
    assert response.solver.objective == pytest.approx(check.objective, rel=1e-9, abs=1e-9)


def test_node_client_optimize_and_stream(server: RunningServer, tmp_path: Path) -> None:
    request = interop_request()
    out = node_results(server, request, tmp_path)

    unary = to_response(out["optimize"])
    streamed = to_response(out["stream"]["result"])
    assert_plan_checks(request, unary)
    assert_plan_checks(request, streamed)

    events = out["stream"]["events"]
    assert events.count("result") == 1 and events[-1] == "result", events
    assert events.index("result") >= 1, "no progress event came before the result"
    progress = out["stream"]["progress"]
    assert len(progress) == events.count("progress") >= 1
    for p in progress:
        assert p["kind"] in {"first_plan", "heuristic", "incumbent"}, p
        assert p["elapsed_seconds"] >= 0, p
        if p["kind"] != "incumbent":   # exact figures of heuristic plans: never below the end
            assert p["objective"] >= streamed.solver.objective - 1e-9, p

    with SchedulerClient(f"127.0.0.1:{server.port}") as client:
        python = client.optimize(request, timeout=CALL_DEADLINE_S)
    assert python.status == pb.OPTIMAL
    for response in (unary, streamed):
        assert abs(response.totals.emissions_kg - python.totals.emissions_kg) <= 1e-6
        assert abs(response.baseline.emissions_kg - python.baseline.emissions_kg) <= 1e-6
    assert unary.plan_id and streamed.plan_id and unary.plan_id != streamed.plan_id

    # The comparison is sensitive to the optional field: without the cap the optimum differs.
    uncapped = json.loads(json.dumps(request))
    del uncapped["sites"][1]["power_cap_kw"]
    assert solve(prepare(uncapped)).figures.totals.emissions_kg < \
        python.totals.emissions_kg - 1e-3


def test_node_client_timestamps_with_offsets_and_camel_case(server: RunningServer,
                                                           tmp_path: Path) -> None:
    """Timestamps written with a UTC offset and fractional seconds, and lowerCamel field names,
    reach the server as the same instants: the plan matches the canonical request's."""
    request = interop_request()
    variant = json.loads(json.dumps(request))
    variant["horizon"]["start"] = "2026-06-15T02:00:00.000+02:00"      # = START
    etl = next(j for j in variant["jobs"] if j["id"] == "etl-4")
    etl["earliestStart"] = "2026-06-14T21:30:00-04:30"                # = hours(2)
    del etl["earliest_start"]
    etl["allowedSites"] = etl.pop("allowed_sites")
    out = node_results(server, variant, tmp_path)
    canonical = node_results(server, request, tmp_path)["optimize"]
    response = to_response(out["optimize"])
    assert_plan_checks(request, response)
    assert response.totals.emissions_kg == pytest.approx(canonical["totals"]["emissions_kg"],
                                                         abs=1e-6)
    etl_assignment = next(a for a in response.assignments if a.job_id == "etl-4")
    assert etl_assignment.site_id == "b"
    assert etl_assignment.start.ToJsonString() >= hours(2)


def test_node_client_sees_invalid_argument(server: RunningServer, tmp_path: Path) -> None:
    """Invalid input is INVALID_ARGUMENT with the field path, for a foreign client too."""
    request = small_request(jobs=[job("bad", gpus=-1)])
    proc = run_node(f"127.0.0.1:{server.port}", request, tmp_path)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    error = json.loads(proc.stderr.strip().splitlines()[-1])["error"]
    assert error["code"] == "INVALID_ARGUMENT", error
    assert "jobs[0].gpus" in error["details"], error
