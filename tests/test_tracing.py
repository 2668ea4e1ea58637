"""OpenTelemetry tracing, exercised through a real gRPC server on a loopback port: one SERVER
span per call (its parent the caller's W3C traceparent), child spans for each step of a plan and
each phase of the solve, error status on failed calls; spans exported to a real OTLP/gRPC
collector and to the console; and nothing breaks with tracing off or opentelemetry absent."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from conftest import (
    PROJECT_ROOT,
    checked_planner_plan,
    hours,
    job,
    make_app,
    prepare,
    settings_for_tests,
    small_request,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from gridshift.adapters.codec import plan_from_response
from gridshift.adapters.grpc_client import SchedulerClient
from gridshift.adapters.store import PlanStore
from gridshift.adapters.tracing import NO_TRACING, TracingConfig, build_tracing
from gridshift.api.v1 import optimize_pb2 as pb
from gridshift.optimizer.checker import check_plan
from gridshift.optimizer.errors import InvalidInputError
from gridshift.service.servicer import start_server
from gridshift.settings import ServerSettings, load_settings

OPTIMIZE = "gridshift.api.v1.Scheduler/Optimize"
STEPS = {"gridshift.decode", "gridshift.validate", "gridshift.site_supply",
         "gridshift.forecasts", "gridshift.compile", "gridshift.solve", "gridshift.store"}
PHASES = {"gridshift.solve.diagnosis", "gridshift.solve.construction",
          "gridshift.solve.explanation", "gridshift.solve.improvement",
          "gridshift.solve.check", "gridshift.solve.baseline", "gridshift.solve.risk"}


def two_team_request() -> dict:
    request = small_request(slots=8, ci=[300, 250, 120, 80, 90, 200, 280, 320])
    request["sites"].append({"id": "b", "region": "R", "gpu_capacity": 4, "pue": 1.2})
    request["jobs"] = [job("j1", gpus=4, power_kw=3, duration_minutes=120, team="research"),
                       job("j2", gpus=2, power_kw=1.5, duration_minutes=180, interruptible=True,
                           min_run_minutes=60, deadline=hours(8), team="applied")]
    return request


def assert_checked(request: dict, response: pb.OptimizeResponse) -> None:
    """The plan the server returned, verified by the independent checker."""
    problem = prepare(request)
    check = check_plan(problem, plan_from_response(problem, response))
    assert check.ok, check.violations
    assert response.totals.emissions_kg == pytest.approx(check.emissions_kg, rel=1e-9)
    assert len(response.assignments) + len(response.unscheduled) == problem.n_jobs


@contextmanager
def traced_server(tmp_path: Path) -> Iterator[tuple[str, InMemorySpanExporter]]:
    """A server with a plan store and tracing on, its spans kept in memory."""
    exporter = InMemorySpanExporter()
    store = PlanStore(f"sqlite:///{tmp_path / 'plans.sqlite'}")
    app = make_app(store=store, tracing=build_tracing(TracingConfig(enabled=True),
                                                      exporter=exporter))
    server = start_server(app, ServerSettings(port=0), observer=app.metrics)
    try:
        yield f"127.0.0.1:{server.port}", exporter
    finally:
        server.server.stop(0).wait()
        app.close()
        store.close()


def by_name(spans) -> dict:
    named: dict = {}
    for span in spans:
        assert span.name not in named, f"two spans named {span.name}"
        named[span.name] = span
    return named


def children_of(spans, parent) -> set[str]:
    return {s.name for s in spans if s.parent is not None
            and s.parent.span_id == parent.context.span_id}


def test_an_optimize_call_is_a_span_with_its_steps_and_solve_phases(tmp_path: Path) -> None:
    request = two_team_request()
    with traced_server(tmp_path) as (target, exporter), SchedulerClient(target) as client:
        response = client.optimize(request, timeout=60, request_id="trace-me")
        spans = exporter.get_finished_spans()
    assert_checked(request, response)
    named = by_name(spans)
    call = named[OPTIMIZE]
    assert call.kind == SpanKind.SERVER and call.parent is None
    assert call.status.status_code == StatusCode.UNSET
    assert call.resource.attributes["service.name"] == "gridshift"
    attributes = dict(call.attributes)
    assert attributes["rpc.system"] == "grpc"
    assert attributes["rpc.service"] == "gridshift.api.v1.Scheduler"
    assert attributes["rpc.method"] == "Optimize"
    assert attributes["rpc.grpc.status_code"] == 0
    assert attributes["gridshift.status"] == "OK"
    assert attributes["gridshift.request_id"] == "trace-me"
    assert attributes["gridshift.principal"] == "anonymous"
    assert attributes["gridshift.jobs"] == 2 and attributes["gridshift.sites"] == 2
    assert attributes["gridshift.slots"] == 8
    assert attributes["gridshift.teams"] == "applied,research"
    assert attributes["gridshift.request_bytes"] == client.to_request(request).ByteSize()
    assert attributes["gridshift.plan_id"] == response.plan_id
    assert attributes["gridshift.queued_seconds"] >= 0
    # Every step of the plan is a child of the call, every phase of the solve a child of the
    # solve, all in one trace and within their parent's time.
    assert children_of(spans, call) == STEPS
    solve = named["gridshift.solve"]
    assert children_of(spans, solve) == PHASES
    assert {s.context.trace_id for s in spans} == {call.context.trace_id}
    for span in spans:
        if span is not call:
            parent = call if span.name in STEPS else solve
            assert parent.start_time <= span.start_time <= span.end_time <= parent.end_time, \
                span.name
        assert span.status.status_code == StatusCode.UNSET, span.name
    order = sorted(PHASES - {"gridshift.solve.risk"}, key=lambda n: named[n].start_time)
    assert order == ["gridshift.solve.diagnosis", "gridshift.solve.construction",
                     "gridshift.solve.explanation", "gridshift.solve.improvement",
                     "gridshift.solve.check", "gridshift.solve.baseline"]
    solved = dict(solve.attributes)
    assert solved["gridshift.status"] == pb.PlanStatus.Name(response.status)
    assert solved["gridshift.objective"] == pytest.approx(response.solver.objective)
    assert solved["gridshift.unplaced"] == 0
    assert [e.name for e in solve.events][:2] == ["first_plan", "heuristic"]
    assert all("gridshift.objective" in e.attributes for e in solve.events)
    validate = dict(named["gridshift.validate"].attributes)
    assert validate == {"gridshift.jobs": 2, "gridshift.sites": 2, "gridshift.slots": 8}
    assert dict(named["gridshift.forecasts"].attributes)["gridshift.regions"] == 1
    stored = dict(named["gridshift.store"].attributes)
    assert stored["gridshift.stored"] is True
    assert stored["gridshift.plan_id"] == response.plan_id


def test_a_callers_traceparent_becomes_the_parent_of_the_call_span(tmp_path: Path) -> None:
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    request = two_team_request()
    with traced_server(tmp_path) as (target, exporter), SchedulerClient(target) as client:
        response = client.stub.Optimize(
            client.to_request(request), timeout=60,
            metadata=(("traceparent", f"00-{trace_id}-{parent_id}-01"),))
        spans = exporter.get_finished_spans()
    assert_checked(request, response)
    call = by_name(spans)[OPTIMIZE]
    assert call.parent is not None and call.parent.is_remote
    assert call.parent.span_id == int(parent_id, 16)
    assert {s.context.trace_id for s in spans} == {int(trace_id, 16)}


def test_a_rejected_request_gives_an_error_span(tmp_path: Path) -> None:
    bad = two_team_request()
    bad["jobs"][0]["gpus"] = 0
    with traced_server(tmp_path) as (target, exporter), SchedulerClient(target) as client:
        with pytest.raises(grpc.RpcError) as failed:
            client.optimize(bad, timeout=60)
        spans = exporter.get_finished_spans()
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    named = by_name(spans)
    call = named[OPTIMIZE]
    assert call.status.status_code == StatusCode.ERROR
    assert call.status.description.startswith("INVALID_ARGUMENT: invalid request: jobs[0].gpus")
    assert dict(call.attributes)["rpc.grpc.status_code"] == 3   # INVALID_ARGUMENT
    assert dict(call.attributes)["gridshift.status"] == "INVALID_ARGUMENT"
    validate = named["gridshift.validate"]
    assert validate.status.status_code == StatusCode.ERROR
    assert validate.status.description.startswith("InvalidInputError")
    assert [e.name for e in validate.events] == ["exception"]
    # Validation failed: nothing after it ran.
    assert children_of(spans, call) == {"gridshift.decode", "gridshift.validate"}


def test_a_streamed_call_traces_its_solve_from_the_worker_thread(tmp_path: Path) -> None:
    request = two_team_request()
    with traced_server(tmp_path) as (target, exporter), SchedulerClient(target) as client:
        events = list(client.stream_optimize(request, timeout=60))
        spans = exporter.get_finished_spans()
    assert_checked(request, events[-1].result)
    named = by_name(spans)
    call = named["gridshift.api.v1.Scheduler/StreamOptimize"]
    assert dict(call.attributes)["rpc.grpc.status_code"] == 0
    assert children_of(spans, call) == STEPS
    assert children_of(spans, named["gridshift.solve"]) == PHASES


def test_health_checks_make_no_spans(tmp_path: Path) -> None:
    with traced_server(tmp_path) as (target, exporter), SchedulerClient(target) as client:
        assert client.health() == "SERVING"
        assert exporter.get_finished_spans() == ()


def test_with_tracing_off_the_service_plans_as_before(tmp_path: Path) -> None:
    app = make_app()
    assert app.tracing is NO_TRACING and app.planner.tracing is NO_TRACING
    request = two_team_request()
    server = start_server(app, ServerSettings(port=0))
    try:
        with SchedulerClient(f"127.0.0.1:{server.port}") as client:
            response = client.optimize(request, timeout=60)
            with pytest.raises(grpc.RpcError) as failed:
                client.optimize(dict(request, jobs=[job("j1", gpus=0)]), timeout=60)
    finally:
        server.server.stop(0).wait()
    assert_checked(request, response)
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_without_opentelemetry_tracing_falls_back_to_none(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """opentelemetry absent (every opentelemetry module unimportable): switched on, tracing
    says so in the log and the service plans without spans."""
    for name in [m for m in sys.modules if m.split(".")[0] == "opentelemetry"] + [
            "opentelemetry"]:
        monkeypatch.setitem(sys.modules, name, None)
    settings = settings_for_tests(GRIDSHIFT_TRACING_ENABLED="on")
    with caplog.at_level(logging.WARNING, logger="gridshift.tracing"):
        app = make_app(settings=settings)
    assert app.tracing is NO_TRACING
    assert "pip install 'gridshift[tracing]'" in caplog.text
    request = two_team_request()
    server = start_server(app, ServerSettings(port=0))
    try:
        with SchedulerClient(f"127.0.0.1:{server.port}") as client:
            response = client.optimize(request, timeout=60)
    finally:
        server.server.stop(0).wait()
    monkeypatch.undo()
    assert_checked(request, response)


NO_OTEL_PLAN = """
import importlib.abc, json, sys

class NoOpenTelemetry(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "opentelemetry":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

if sys.argv[1] == "blocked":
    sys.meta_path.insert(0, NoOpenTelemetry())
from gridshift.bootstrap import build_app
from gridshift.settings import load_settings
import gridshift.service.servicer, gridshift.cli

settings = load_settings(environ=json.loads(sys.argv[2]))
app = build_app(settings, store=None)
request = json.loads(sys.argv[3])
outcome = app.planner.plan(request, store=False)
print(json.dumps({"status": outcome.result.status, "tracing": app.tracing.enabled,
                  "otel": sorted(m for m in sys.modules if m.startswith("opentelemetry"))}))
"""


@pytest.mark.parametrize("blocked, tracing", [("blocked", "on"), ("free", "off")])
def test_gridshift_imports_and_plans_without_opentelemetry(tmp_path: Path, blocked: str,
                                                           tracing: str) -> None:
    """A fresh process: with opentelemetry not importable and tracing switched on, planning
    works (tracing off); with tracing off, opentelemetry is never imported at all."""
    env = {"GRIDSHIFT_DATA_DIR": str(tmp_path), "HOME": str(tmp_path),
           "GRIDSHIFT_TRACING_ENABLED": tracing}
    done = subprocess.run([sys.executable, "-c", NO_OTEL_PLAN, blocked, json.dumps(env),
                           json.dumps(two_team_request())], capture_output=True, text=True,
                          timeout=240, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer == {"status": "OPTIMAL", "tracing": False, "otel": []}
    if blocked == "blocked":
        assert "no spans are made" in done.stderr


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace collector on a loopback port: keeps what it is sent."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.received = threading.Event()

    def Export(self, request, context):  # noqa: N802 - the OTLP service's method name
        self.requests.append(request)
        self.received.set()
        return trace_service_pb2.ExportTraceServiceResponse()


def test_spans_reach_an_otlp_collector(tmp_path: Path) -> None:
    collector = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        settings = settings_for_tests(
            tmp_path, GRIDSHIFT_TRACING_ENABLED="on", GRIDSHIFT_TRACING_EXPORTER="otlp",
            GRIDSHIFT_TRACING_ENDPOINT=f"http://127.0.0.1:{port}",
            GRIDSHIFT_TRACING_SERVICE_NAME="gridshift-test", GRIDSHIFT_STORE="off")
        app = make_app(settings=settings)
        assert app.tracing.enabled
        request = two_team_request()
        outcome = app.planner.plan(request, source="test")
        app.close()    # exports what the batch processor still holds
        assert collector.received.wait(10)
    finally:
        server.stop(0).wait()
    assert_plan_checked(outcome.result)
    spans = [(resource, span) for r in collector.requests for resource in [r.resource_spans]
             for rs in resource for ss in rs.scope_spans for span in ss.spans]
    names = {span.name for _resource, span in spans}
    assert {"gridshift.plan", "gridshift.validate", "gridshift.forecasts", "gridshift.solve",
            "gridshift.solve.improvement", "gridshift.store"} <= names
    service_names = {a.value.string_value for r in collector.requests for rs in r.resource_spans
                     for a in rs.resource.attributes if a.key == "service.name"}
    assert service_names == {"gridshift-test"}


def assert_plan_checked(result) -> None:
    check = check_plan(result.problem, result.plan)
    assert check.ok, check.violations
    assert result.figures.totals.emissions_kg == pytest.approx(check.emissions_kg, rel=1e-9)


def test_the_cli_writes_its_spans_to_the_console(tmp_path: Path) -> None:
    request_file, output = tmp_path / "request.json", tmp_path / "response.json"
    request = two_team_request()
    request_file.write_text(json.dumps(request))
    env = dict(os.environ, GRIDSHIFT_DATA_DIR=str(tmp_path / "data"),
               GRIDSHIFT_TRACING_ENABLED="on", GRIDSHIFT_TRACING_EXPORTER="console")
    done = subprocess.run([sys.executable, "-m", "gridshift.cli", "plan", str(request_file),
                           "-o", str(output), "--quiet", "--no-store"], capture_output=True,
                          text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    response = pb.OptimizeResponse()
    from google.protobuf import json_format

    json_format.Parse(output.read_text(), response)
    assert_checked(request, response)
    decoder, text, spans = json.JSONDecoder(), done.stdout, []
    position = 0
    while (start := text.find("{", position)) >= 0:
        span, position = decoder.raw_decode(text, start)
        spans.append(span)
    named = {span["name"]: span for span in spans}
    root = named["gridshift.plan"]
    assert root["parent_id"] is None and root["attributes"]["gridshift.source"] == "cli"
    assert named["gridshift.solve"]["parent_id"] == root["context"]["span_id"]
    assert named["gridshift.solve.construction"]["parent_id"] == \
        named["gridshift.solve"]["context"]["span_id"]


def test_tracing_settings_from_file_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "gridshift.toml"
    config.write_text('[tracing]\nenabled = true\nexporter = "console"\nsample_ratio = 0.25\n'
                      'service_name = "planner-eu"\n')
    settings = load_settings(config, environ={"GRIDSHIFT_TRACING_ENDPOINT": "http://c:4317",
                                              "GRIDSHIFT_TRACING_EXPORTER": "OTLP"})
    assert settings.tracing == TracingConfig(enabled=True, exporter="otlp",
                                             endpoint="http://c:4317",
                                             service_name="planner-eu", sample_ratio=0.25)
    assert load_settings(environ={}).tracing == TracingConfig()
    assert not TracingConfig().enabled
    with pytest.raises(InvalidInputError) as refused:
        load_settings(config, environ={"GRIDSHIFT_TRACING_EXPORTER": "jaeger",
                                       "GRIDSHIFT_TRACING_SAMPLE_RATIO": "1.5"})
    problems = {v.field: v.problem for v in refused.value.violations}
    assert "GRIDSHIFT_TRACING_SAMPLE_RATIO" in problems
    with pytest.raises(InvalidInputError) as refused:
        load_settings(config, environ={"GRIDSHIFT_TRACING_EXPORTER": "jaeger"})
    assert [v.field for v in refused.value.violations] == ["GRIDSHIFT_TRACING_EXPORTER"]
    assert "otlp, console, none" in refused.value.violations[0].problem


def test_a_sample_ratio_of_zero_makes_no_spans_unless_the_caller_sampled(tmp_path: Path
                                                                        ) -> None:
    exporter = InMemorySpanExporter()
    app = make_app(tracing=build_tracing(TracingConfig(enabled=True, sample_ratio=0.0),
                                         exporter=exporter))
    server = start_server(app, ServerSettings(port=0))
    request = two_team_request()
    try:
        with SchedulerClient(f"127.0.0.1:{server.port}") as client:
            assert_checked(request, client.optimize(request, timeout=60))
            assert exporter.get_finished_spans() == ()
            sampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            assert_checked(request, client.stub.Optimize(
                client.to_request(request), timeout=60, metadata=(("traceparent", sampled),)))
    finally:
        server.server.stop(0).wait()
    assert OPTIMIZE in {span.name for span in exporter.get_finished_spans()}


def test_a_scheduler_integrations_plan_is_one_trace() -> None:
    """The Slurm agent's and the Ray gate's plans: a gridshift.plan root span over the steps."""
    exporter = InMemorySpanExporter()
    app = make_app(tracing=build_tracing(TracingConfig(enabled=True), exporter=exporter))
    plan = checked_planner_plan(app.planner, "slurm")
    _plan_id, placed, left = plan(two_team_request())
    assert set(placed) == {"j1", "j2"} and not left and len(plan.made) == 1
    spans = exporter.get_finished_spans()
    root = by_name(spans)["gridshift.plan"]
    assert root.parent is None and dict(root.attributes) == {"gridshift.source": "slurm"}
    assert children_of(spans, root) == STEPS - {"gridshift.decode"}
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}
