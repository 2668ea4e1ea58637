"""The gRPC service, exercised through real channels to a real server on a loopback port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from conftest import PROJECT_ROOT, hours, job, make_app, prepare, small_request
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from gridshift.adapters.codec import plan_from_response
from gridshift.adapters.grpc_client import SchedulerClient
from gridshift.api.v1 import optimize_pb2 as pb
from gridshift.optimizer.checker import check_plan
from gridshift.service.servicer import start_server
from gridshift.settings import ServerSettings

sys.path.insert(0, str(PROJECT_ROOT / "bench"))
from instances import SIZES, make_request  # noqa: E402


@contextmanager
def running(app=None, **settings) -> Iterator[str]:
    server = start_server(app or make_app(), ServerSettings(port=0, **settings))
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        server.server.stop(0).wait()


def request_of_three_jobs() -> dict:
    request = small_request(slots=8, ci=[300, 250, 120, 80, 90, 200, 280, 320])
    request["sites"].append({"id": "b", "region": "R", "gpu_capacity": 4, "pue": 1.2})
    request["jobs"] = [job("j1", gpus=4, power_kw=3, duration_minutes=120),
                       job("j2", gpus=8, power_kw=6, duration_minutes=60, allowed_sites=["a"]),
                       job("j3", gpus=2, power_kw=1.5, duration_minutes=180, interruptible=True,
                           min_run_minutes=60, deadline=hours(8))]
    return request


def slow_request(time_limit_s: float) -> dict:
    """The medium benchmark instance: an exact solve does not finish within seconds."""
    request = make_request(SIZES["medium"])
    request["options"] = {"time_limit_seconds": time_limit_s, "relative_gap": 1e-9}
    return request


def assert_checked(request: dict, response: pb.OptimizeResponse) -> None:
    problem = prepare(request)
    check = check_plan(problem, plan_from_response(problem, response))
    assert check.ok, check.violations
    assert response.totals.emissions_kg == pytest.approx(check.emissions_kg, rel=1e-9)
    assert len(response.assignments) + len(response.unscheduled) == problem.n_jobs


def test_optimize_returns_a_checked_plan() -> None:
    request = request_of_three_jobs()
    with running() as target, SchedulerClient(target) as client:
        response = client.optimize(request, timeout=30)
    assert pb.PlanStatus.Name(response.status) == "OPTIMAL"
    assert_checked(request, response)
    assert response.baseline.emissions_kg >= response.totals.emissions_kg - 1e-9


def test_stream_optimize_sends_progress_then_the_final_plan() -> None:
    request = request_of_three_jobs()
    with running() as target, SchedulerClient(target) as client:
        events = list(client.stream_optimize(request, timeout=30))
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[-1] == "result" and kinds.count("result") == 1
    progress = [e.progress for e in events if e.WhichOneof("event") == "progress"]
    assert progress, "no progress before the result"
    elapsed = [p.elapsed_seconds for p in progress]
    assert elapsed == sorted(elapsed)
    assert_checked(request, events[-1].result)
    assert events[-1].result.totals.emissions_kg <= progress[0].objective + 1e-9


def test_health_and_reflection() -> None:
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    with running() as target, SchedulerClient(target) as client:
        assert client.health() == "SERVING"
        assert client.health("gridshift.api.v1.Scheduler") == "SERVING"
        database = ProtoReflectionDescriptorDatabase(client.channel)
        services = set(database.get_services())
        assert "gridshift.api.v1.Scheduler" in services
        assert "grpc.health.v1.Health" in services
        symbol = database.FindFileContainingSymbol("gridshift.api.v1.Scheduler")
        assert any(s.name == "Scheduler" for s in symbol.service)


def refused(request: dict, timeout: float = 30) -> grpc.RpcError:
    """The error an Optimize call with ``request`` fails with; the server still serves."""
    with running() as target, SchedulerClient(target) as client:
        with pytest.raises(grpc.RpcError) as caught:
            client.optimize(request, timeout=timeout)
        assert client.health() == "SERVING"
    return caught.value


def test_extreme_numbers_are_invalid_argument_not_nan_or_internal() -> None:
    """Values at the float limits (which once gave NaN emissions or an OverflowError) are
    refused with their field paths, and the server keeps serving."""
    request = request_of_three_jobs()
    request["forecasts"][0]["carbon_intensity"][0] = 1e308
    request["jobs"][0]["power_kw"] = 1.7e308
    request["sites"][0]["pue"] = 1e308
    error = refused(request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    for path in ("forecasts[0].carbon_intensity[0]", "jobs[0].power_kw", "sites[0].pue"):
        assert path in error.details()


def test_invalid_request_is_invalid_argument_with_every_field_path() -> None:
    request = request_of_three_jobs()
    request["jobs"][0]["gpus"] = 0
    request["jobs"][1]["deadline"] = hours(-1)
    request["sites"][1]["pue"] = 0.5
    error = refused(request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    for path in ("jobs[0].gpus", "jobs[1].deadline", "sites[1].pue"):
        assert path in error.details()
    status = rpc_status.from_call(error)
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    assert {v.field for v in bad.field_violations} >= {"jobs[0].gpus", "sites[1].pue"}


def test_unexpected_error_is_internal_without_internals() -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("secret connection string postgres://user:pw@db")

    with running(make_app(solve=broken)) as target, SchedulerClient(target) as client:
        with pytest.raises(grpc.RpcError) as caught:
            client.optimize(request_of_three_jobs(), timeout=30, request_id="req-42")
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in caught.value.details() and "postgres" not in caught.value.details()
    assert "req-42" in caught.value.details()


def test_infeasible_is_a_normal_answer_naming_the_job() -> None:
    request = request_of_three_jobs()
    request["jobs"].append(job("huge", gpus=64))
    with running() as target, SchedulerClient(target) as client:
        response = client.optimize(request, timeout=30)
    assert pb.PlanStatus.Name(response.status) == "INFEASIBLE"
    assert [u.job_id for u in response.unscheduled] == ["huge"]
    assert "64 GPUs" in response.unscheduled[0].reason


def test_short_deadline_returns_a_feasible_plan_in_time() -> None:
    request = slow_request(time_limit_s=60)
    with running() as target, SchedulerClient(target) as client:
        client.health()
        started = time.monotonic()
        response = client.optimize(request, timeout=4.0)
        elapsed = time.monotonic() - started
    assert elapsed < 4.0
    assert pb.PlanStatus.Name(response.status) == "FEASIBLE"
    assert response.solver.gap > 0
    assert_checked(request, response)


def test_overload_is_resource_exhausted_at_once() -> None:
    with running(max_concurrent_solves=1, max_queued_solves=0) as target, \
            SchedulerClient(target) as first, SchedulerClient(target) as second:
        call = first.stub.Optimize.future(
            json_format.ParseDict(slow_request(20), pb.OptimizeRequest()), timeout=30)
        time.sleep(1.5)
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as caught:
            second.optimize(request_of_three_jobs(), timeout=30)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert time.monotonic() - started < 1.0
        call.cancel()


def test_cancellation_frees_the_worker() -> None:
    with running(max_concurrent_solves=1, max_queued_solves=0) as target, \
            SchedulerClient(target) as client:
        call = client.stub.Optimize.future(
            json_format.ParseDict(slow_request(60), pb.OptimizeRequest()), timeout=90)
        time.sleep(2.0)
        assert call.cancel()
        time.sleep(1.0)   # the solver is stopped within a second of the cancellation
        started = time.monotonic()
        response = client.optimize(request_of_three_jobs(), timeout=30)
        assert time.monotonic() - started < 3.0
    assert pb.PlanStatus.Name(response.status) == "OPTIMAL"


def test_sigterm_drains_an_in_flight_call(tmp_path: Path) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "gridshift.cli", "serve", "--port", "0", "--grace", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=PROJECT_ROOT)
    try:
        line = server.stdout.readline()
        assert "serving on" in line, server.stderr.read()
        target = line.strip().rsplit(" ", 1)[-1]
        request = slow_request(time_limit_s=4)
        outcome: dict = {}

        def call() -> None:
            with SchedulerClient(target) as client:
                outcome["response"] = client.optimize(request, timeout=60)

        worker = threading.Thread(target=call)
        worker.start()
        time.sleep(1.5)
        server.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with SchedulerClient(target, retries=False) as late:
            with pytest.raises(grpc.RpcError) as refused:
                late.stub.Optimize(json_format.ParseDict(request_of_three_jobs(),
                                                         pb.OptimizeRequest()), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        worker.join(timeout=60)
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        stderr = server.stderr.read()
        server.stdout.close()
        server.stderr.close()
    response = outcome["response"]
    assert pb.PlanStatus.Name(response.status) in ("OPTIMAL", "FEASIBLE")
    assert_checked(request, response)
    logs = [json.loads(x) for x in stderr.splitlines() if x.startswith("{")]
    assert any("draining" in entry["message"] for entry in logs)
    assert any(entry.get("request_id", "-") != "-" for entry in logs)


def test_thousands_of_problems_still_arrive_as_invalid_argument() -> None:
    """The status travels in trailing metadata, which clients cap: 6,000 violations came back
    as RESOURCE_EXHAUSTED ("metadata size exceeds hard limit"). Now the first ten are listed
    with their paths, then how many more there are."""
    request = small_request(slots=3000, ci=[-1.0] * 3000)
    request["horizon"]["slot_minutes"] = 5
    request["forecasts"][0]["slot_minutes"] = 5
    error = refused(request, timeout=60)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "forecasts[0].carbon_intensity[0]: negative" in error.details()
    assert "... and 2990 more problem(s)" in error.details()
    bad = error_details_pb2.BadRequest()
    assert rpc_status.from_call(error).details[0].Unpack(bad)
    assert len(bad.field_violations) == 10


@pytest.mark.parametrize("field", ["horizon.start", "deadline"])
def test_timestamp_a_message_cannot_express_is_invalid_argument(field: str) -> None:
    """A Timestamp beyond year 9999 or with negative nanos failed the request's conversion and
    came back as INTERNAL, for Optimize and StreamOptimize alike."""
    message = pb.OptimizeRequest()
    json_format.ParseDict(request_of_three_jobs(), message)
    if field == "horizon.start":
        message.horizon.start.seconds = 253402300800 * 10
    else:
        message.jobs[0].deadline.nanos = -5
    with running() as target, SchedulerClient(target) as client:
        for call in (lambda: client.stub.Optimize(message, timeout=30),
                     lambda: list(client.stub.StreamOptimize(message, timeout=30))):
            with pytest.raises(grpc.RpcError) as caught:
                call()
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "malformed request" in caught.value.details()
        assert client.health() == "SERVING"


def test_plan_with_server_checks_against_the_forecasts_the_server_used(tmp_path: Path) -> None:
    """Only the server reaches the forecast provider (a loopback UK Carbon Intensity); the
    client's own provider address refuses every connection. `gridshift plan --server` checks
    the server's plan against the series the response carries, fetches nothing, and writes
    the plan (it used to retry its own fetch for ~11 s, exit 2 and write nothing)."""
    from conftest import settings_for_tests
    from providers.fake_servers import UKCarbonIntensityServer, fast_client

    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    request = {"horizon": {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "slots": 12},
               "sites": [{"id": "lon", "region": "GB", "gpu_capacity": 8},
                         {"id": "sfo", "region": "US-CAL-CISO", "gpu_capacity": 4,
                          "solar_kwp": 40.0}],
               "jobs": [job("a", gpus=4, power_kw=3, duration_minutes=120),
                        job("b", gpus=4, power_kw=2, duration_minutes=180,
                            interruptible=True, min_run_minutes=60)],
               "options": {"time_limit_seconds": 10}}
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(request))
    with UKCarbonIntensityServer(use_samples=False) as uk:
        settings = settings_for_tests(tmp_path, GRIDSHIFT_UKCI_URL=uk.url)
        app = make_app(settings=settings, http_factory=lambda p: fast_client(p))
        with running(app) as target:
            served = uk.count()
            started = time.monotonic()
            done = subprocess.run(
                [sys.executable, "-m", "gridshift.cli", "plan", str(request_file), "--server",
                 target, "-o", str(tmp_path / "plan.json")], cwd=tmp_path, text=True,
                capture_output=True, timeout=120,
                env={**os.environ, "GRIDSHIFT_UKCI_URL": "http://127.0.0.1:1",
                     "GRIDSHIFT_DATA_DIR": str(tmp_path / "client")})
            took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert "plan passes the independent checker" in done.stderr
    assert uk.count() > served        # the server asked the provider, the client did not
    response = json_format.Parse((tmp_path / "plan.json").read_text(), pb.OptimizeResponse())
    (used,) = [f for f in response.forecasts_used if f.region == "GB"]
    assert len(used.carbon_intensity) >= 12
    assert [p.provider for p in response.provenance if p.region == "GB"] == \
        ["uk-carbon-intensity"]
    # The on-site solar supply the server derived (and planned with) travels too.
    assert [s.site_id for s in response.sites if any(s.renewable_kw)] == ["sfo"]
    assert took < 20


def test_server_log_lines_carry_rfc3339_times_with_their_zone() -> None:
    code = ("import logging\nfrom gridshift.service.server import configure_json_logging\n"
            "configure_json_logging('INFO')\nlogging.getLogger('gridshift.server').info('hi')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    line = json.loads(done.stderr.strip().splitlines()[-1])
    when = datetime.fromisoformat(line["time"])
    assert when.tzinfo is not None and line["time"].endswith("+00:00"), line["time"]
    assert "T" in line["time"] and line["message"] == "hi"
