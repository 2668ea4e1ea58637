"""What a hostile or careless client found (issue 16), through real channels to a real server
on a loopback port: unparseable messages, accepted-but-unreportable requests, cancelled calls
storing plans, records GetPlan cannot return, bounds on memory, abandoned calls holding slots,
log lines without request ids, drain, p10 above p90, control characters in ids, reflection v1."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from conftest import PROJECT_ROOT, job, make_app, small_request
from google.protobuf import json_format

from gridshift.adapters.grpc_client import SchedulerClient
from gridshift.adapters.store import PlanStore
from gridshift.api.v1 import optimize_pb2 as pb
from gridshift.api.v1 import plans_pb2
from gridshift.service.errors import RequestIdFilter
from gridshift.service.servicer import start_server
from gridshift.settings import ServerSettings

sys.path.insert(0, str(PROJECT_ROOT / "bench"))
from fuzz import SERVICE, fuzz, valid_messages  # noqa: E402
from instances import SIZES, make_request  # noqa: E402


@contextmanager
def running(app=None, **settings) -> Iterator[str]:
    server = start_server(app or make_app(), ServerSettings(port=0, **settings))
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        server.server.stop(0).wait()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[PlanStore]:
    plan_store = PlanStore(f"sqlite:///{tmp_path / 'plans.sqlite'}")
    yield plan_store
    plan_store.close()


def message(request: dict) -> pb.OptimizeRequest:
    return json_format.ParseDict(request, pb.OptimizeRequest())


def slow_request(time_limit_s: float) -> dict:
    request = make_request(SIZES["medium"])
    request["options"] = {"time_limit_seconds": time_limit_s, "relative_gap": 1e-9}
    return request


def stored_plans(target: str) -> int:
    with SchedulerClient(target) as client:
        return len(client.stub.ListPlans(plans_pb2.ListPlansRequest(page_size=100),
                                         timeout=30).plans)


# -- 1. messages that cannot be parsed ------------------------------------------------------

@pytest.mark.parametrize("payload", [b"\xff\xff\xff\xff", b"\x0a\x04\xff\xfe\xc3\x28",
                                     b"\x9b\x06" * 150, b"\x1a\xff\xff\xff\xff\x07x"],
                         ids=["random", "invalid-utf8", "groups-past-100-levels", "truncated"])
def test_unparseable_messages_are_invalid_argument_on_every_method(payload: bytes) -> None:
    with running() as target, grpc.insecure_channel(target) as channel:
        for name in valid_messages():
            with pytest.raises(grpc.RpcError) as caught:
                if name == "StreamOptimize":
                    list(channel.unary_stream(SERVICE + name)(payload, timeout=10))
                else:
                    channel.unary_unary(SERVICE + name)(payload, timeout=10)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
            assert "malformed message" in caught.value.details()


def test_fuzzed_calls_never_answer_internal(store: PlanStore) -> None:
    with running(make_app(store=store), max_queued_solves=32) as target:
        codes = fuzz(target, calls=240, seed=7, timeout=10)
        with SchedulerClient(target) as client:
            assert client.health() == "SERVING"
    bad = {k: n for k, n in codes.items() if k[2] in ("INTERNAL", "UNKNOWN")}
    assert not bad, bad
    assert sum(n for k, n in codes.items() if k[2] == "INVALID_ARGUMENT") > 100


# -- 3. what is accepted can be reported on --------------------------------------------------

def test_a_plant_beyond_the_supply_limit_is_refused_and_reports_keep_working(
        store: PlanStore) -> None:
    """solar_kwp 2e7 with no renewable_kw was planned and stored; afterwards every carbon
    report of that day failed. Now it is refused as the same renewable_kw would be."""
    request = small_request(slots=24, ci=[300.0] * 24)
    request["jobs"] = [job("j1", team="research", power_kw=3)]
    with running(make_app(store=store)) as target, SchedulerClient(target) as client:
        refused = dict(request, sites=[dict(request["sites"][0], solar_kwp=2e7)])
        with pytest.raises(grpc.RpcError) as caught:
            client.optimize(refused, timeout=30)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "sites[0].solar_kwp" in caught.value.details()
        accepted = dict(request, sites=[dict(request["sites"][0], solar_kwp=9e6)])
        client.optimize(accepted, timeout=30)
        report = plans_pb2.GetCarbonReportRequest(format="json", team="research")
        report.start.FromJsonString("2026-06-15T00:00:00Z")
        report.end.FromJsonString("2026-06-16T00:00:00Z")
        answer = client.stub.GetCarbonReport(report, timeout=60)
    assert answer.plans == 1


# -- 6. a plan nobody received is not stored -------------------------------------------------

def test_a_cancelled_call_stores_no_plan_and_frees_its_slot(store: PlanStore) -> None:
    with running(make_app(store=store), max_concurrent_solves=1, max_queued_solves=0) as target, \
            SchedulerClient(target) as client:
        call = client.stub.Optimize.future(message(slow_request(30)), timeout=60)
        time.sleep(2.0)
        assert call.cancel()
        time.sleep(1.5)
        started = time.monotonic()
        request = small_request()
        request["jobs"] = [job("quick")]
        client.optimize(request, timeout=30)
        assert time.monotonic() - started < 5
        assert stored_plans(target) == 1     # the quick one only


# -- 7. everything stored can be read back ---------------------------------------------------

def test_a_plan_getplan_could_not_return_is_not_stored(store: PlanStore) -> None:
    request = small_request(slots=96, ci=[200.0 + t for t in range(96)])
    request["horizon"]["slot_minutes"] = 15
    request["forecasts"][0]["slot_minutes"] = 15
    request["sites"][0]["gpu_capacity"] = 400
    request["jobs"] = [job(f"job-{i:04d}", duration_minutes=60) for i in range(300)]
    request["options"] = {"time_limit_seconds": 5, "backend": "GREEDY"}
    with running() as target, SchedulerClient(target) as client:
        size = client.optimize(request, timeout=60).ByteSize()
    # Request and response each fit the limit; together (GetPlan's answer) they do not.
    limit = max(size, message(request).ByteSize()) + 2048
    with running(make_app(store=store), max_message_bytes=limit) as target, \
            SchedulerClient(target) as client:
        response = client.optimize(request, timeout=60)
        assert stored_plans(target) == 0
    assert "not stored: its record would be" in response.solver.status_detail
    assert "message limit" in response.solver.status_detail


# -- 5. memory bounds ------------------------------------------------------------------------

def test_requests_past_the_per_call_bounds_are_refused_naming_the_limit() -> None:
    request = small_request(slots=24, ci=[100.0] * 24)
    request["jobs"] = [job(f"j{i}") for i in range(50)]
    with running(max_cells_per_call=1000) as target, SchedulerClient(target) as client:
        with pytest.raises(grpc.RpcError) as caught:
            client.optimize(request, timeout=30)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "max_cells_per_call" in caught.value.details()
    with running(max_request_bytes=1024) as target, SchedulerClient(target) as client:
        with pytest.raises(grpc.RpcError) as caught:
            client.optimize(request, timeout=30)
        assert "max_request_bytes" in caught.value.details()
    # Two calls of about 33 MiB each do not fit a 48 MiB budget together: the second is
    # refused at once while the first runs.
    with running(memory_budget_bytes=48 * 1024**2) as target, \
            SchedulerClient(target) as client:
        first = client.stub.Optimize.future(message(slow_request(20)), timeout=60)
        time.sleep(1.0)
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as caught:
            client.optimize(request, timeout=30)
        assert time.monotonic() - started < 1.0
        first.cancel()
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "memory_budget_bytes" in caught.value.details()


# -- 4. abandoned calls free their slots, validation included --------------------------------

def test_a_call_abandoned_while_its_request_is_validated_stops_at_once() -> None:
    request = small_request(slots=24, ci=[100.0] * 24)
    request["sites"][0]["gpu_capacity"] = 10**6
    request["jobs"] = [job(f"job-{i:06d}") for i in range(60_000)]
    request["options"] = {"time_limit_seconds": 60}
    big = message(request)
    with running(max_concurrent_solves=1, max_queued_solves=4) as target, \
            SchedulerClient(target) as client:
        abandoned = [client.stub.Optimize.future(big, timeout=2.0) for _ in range(3)]
        for call in abandoned:
            with pytest.raises(grpc.RpcError):
                call.result()
        time.sleep(0.5)
        quick = small_request()
        quick["jobs"] = [job("quick")]
        started = time.monotonic()
        client.optimize(quick, timeout=30)
        waited = time.monotonic() - started
    assert waited < 4.0, f"abandoned calls held the only slot for {waited:.1f} s"


# -- 8. the smaller ones ---------------------------------------------------------------------

def test_stream_optimize_log_lines_carry_the_request_id() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("gridshift.server")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        request = small_request()
        request["jobs"] = [job("j1"), job("j2", gpus=2)]
        with running() as target, SchedulerClient(target) as client:
            list(client.stub.StreamOptimize(message(request), timeout=30,
                                            metadata=(("x-request-id", "stream-77"),)))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    solved = [r for r in records if r.getMessage().startswith("solved")]
    assert solved and all(r.request_id == "stream-77" for r in solved)


@pytest.mark.parametrize(("change", "path"), [
    (lambda r: r["jobs"].append(job("bad\x00id")), "jobs[0].id"),
    (lambda r: r["jobs"].append(job("del\x7fid")), "jobs[0].id"),
    (lambda r: r["jobs"].append(job("line\nbreak")), "jobs[0].id"),
    (lambda r: r["jobs"].append(job("admin\u202egnp.exe")), "jobs[0].id"),
    (lambda r: r["jobs"].append(job("ok", team="ops\u2066x")), "jobs[0].team"),
    (lambda r: r["forecasts"][0].update(carbon_intensity_p10=[200.0] * 8,
                                        carbon_intensity_p90=[150.0] * 8),
     "forecasts[0].carbon_intensity_p10[0]"),
], ids=["nul", "del", "newline", "bidi-override", "bidi-isolate", "p10-above-p90"])
def test_control_characters_and_crossed_quantiles_are_refused(change, path: str) -> None:
    request = small_request()
    change(request)
    with running() as target, SchedulerClient(target) as client:
        with pytest.raises(grpc.RpcError) as caught:
            client.optimize(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert path in caught.value.details()


def test_reflection_v1_answers_and_reflection_can_be_switched_off() -> None:
    from grpc_reflection.v1alpha import reflection_pb2

    ask = reflection_pb2.ServerReflectionRequest(list_services="").SerializeToString()
    path = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
    with running() as target, grpc.insecure_channel(target) as channel:
        [raw] = list(channel.stream_stream(path)(iter([ask]), timeout=10))
    names = {s.name for s in reflection_pb2.ServerReflectionResponse.FromString(
        raw).list_services_response.service}
    assert {"gridshift.api.v1.Scheduler", "grpc.reflection.v1.ServerReflection"} <= names
    with running(reflection=False) as target, grpc.insecure_channel(target) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            list(channel.stream_stream(path)(iter([ask]), timeout=10))
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_after_sigterm_health_says_not_serving_before_the_port_closes(tmp_path: Path) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "gridshift.cli", "serve", "--port", "0", "--grace", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=PROJECT_ROOT,
        env={**__import__("os").environ, "GRIDSHIFT_SHUTDOWN_DELAY_S": "3",
             "GRIDSHIFT_DATA_DIR": str(tmp_path)})
    try:
        line = server.stdout.readline()
        assert "serving on" in line, server.stderr.read()
        target = line.strip().rsplit(" ", 1)[-1]
        with SchedulerClient(target, retries=False) as client:
            assert client.health() == "SERVING"
            server.send_signal(signal.SIGTERM)
            time.sleep(0.8)
            assert client.health() == "NOT_SERVING"
            with pytest.raises(grpc.RpcError) as refused:
                client.stub.Optimize(message(small_request()), timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        stderr = server.stderr.read()
        server.stdout.close()
        server.stderr.close()
    audit = [json.loads(x) for x in stderr.splitlines() if '"gridshift.audit"' in x]
    assert any(entry["code"] == "UNAVAILABLE" for entry in audit)
