"""Tracing overhead: Optimize latency on the demo request with tracing off and on.

Two servers run in this process on loopback ports, one without tracing and one with tracing on
and its spans sent by OTLP/gRPC to a collector on a third loopback port (a minimal one that
only counts what it receives). Calls alternate between them (off, on, off, on, ...) so that
drift of the machine hits both alike; every plan is checked by the independent checker.
Prints the median and p90 latency of each and the ratio of the medians.

Run: `python bench/tracing_overhead.py [--calls 15] [--time-limit 30]` (needs the `tracing`
extra).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from gridshift.adapters.codec import plan_from_response
from gridshift.adapters.grpc_client import SchedulerClient
from gridshift.adapters.tracing import TracingConfig, build_tracing
from gridshift.app.demo import demo_request
from gridshift.bootstrap import build_app
from gridshift.optimizer.checker import check_plan
from gridshift.service.servicer import start_server
from gridshift.settings import ServerSettings, load_settings


class CountingCollector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP trace collector that counts the spans it receives."""

    def __init__(self) -> None:
        self.spans = 0
        self._lock = threading.Lock()

    def Export(self, request, context):  # noqa: N802 - the OTLP service's method name
        with self._lock:
            self.spans += sum(len(ss.spans) for rs in request.resource_spans
                              for ss in rs.scope_spans)
        return trace_service_pb2.ExportTraceServiceResponse()


def main() -> int:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=15, help="calls per configuration")
    parser.add_argument("--time-limit", type=float, default=30.0, help="solver time limit (s)")
    args = parser.parse_args()

    collector = CountingCollector()
    collector_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, collector_server)
    collector_port = collector_server.add_insecure_port("127.0.0.1:0")
    collector_server.start()

    data_dir = Path(tempfile.mkdtemp(prefix="gridshift-trace-bench-"))
    settings = load_settings(environ={"GRIDSHIFT_DATA_DIR": str(data_dir),
                                      "HOME": str(data_dir), "GRIDSHIFT_STORE": "off"})
    traced = TracingConfig(enabled=True, exporter="otlp",
                           endpoint=f"http://127.0.0.1:{collector_port}")
    apps = {"off": build_app(settings),
            "on": build_app(settings, tracing=build_tracing(traced))}
    servers = {name: start_server(app, ServerSettings(port=0, max_concurrent_solves=1))
               for name, app in apps.items()}
    request = demo_request()
    request["options"]["time_limit_seconds"] = args.time_limit
    problem = apps["off"].planner.prepare(request)
    latencies: dict[str, list[float]] = {name: [] for name in apps}
    try:
        clients = {name: SchedulerClient(f"127.0.0.1:{server.port}")
                   for name, server in servers.items()}
        for client in clients.values():     # warm-up, not counted
            client.optimize(request, timeout=300)
        for _ in range(args.calls):
            for name, client in clients.items():
                began = time.perf_counter()
                response = client.optimize(request, timeout=300)
                latencies[name].append(time.perf_counter() - began)
                check = check_plan(problem, plan_from_response(problem, response))
                assert check.ok, check.violations[:3]
        for client in clients.values():
            client.close()
    finally:
        for server in servers.values():
            server.server.stop(0).wait()
        for app in apps.values():
            app.close()
        collector_server.stop(0).wait()

    print(f"demo request ({len(request['jobs'])} jobs, {len(request['sites'])} sites), "
          f"{args.calls} calls each, time limit {args.time_limit:g} s; "
          f"{collector.spans} spans received by the collector\n")
    print("| tracing | median (s) | p90 (s) |\n| --- | ---: | ---: |")
    for name, values in latencies.items():
        p90 = sorted(values)[max(0, round(0.9 * len(values)) - 1)]
        print(f"| {name} | {statistics.median(values):.3f} | {p90:.3f} |")
    ratio = statistics.median(latencies["on"]) / statistics.median(latencies["off"])
    print(f"\nmedian latency, tracing on / off: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
