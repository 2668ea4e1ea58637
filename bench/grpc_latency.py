"""gRPC latency benchmark: Optimize through a real server against the same solve in-process.

A `gridshift serve --port 0 --max-concurrent-solves N` process is started on loopback (N = the
largest client count); 1 and 8 concurrent clients (threads, each with its own channel and its
own connection) call Optimize on a 50-job request with inline forecasts (bench/instances.py,
real carbon curves where ../shared/data exists). In the same run the same request is solved
in-process (the planner's prepare and solve) with the same concurrency (a
thread pool). Prints a markdown table of p50 / p99 latency and throughput per backend, client
count and path, and the service overhead: gRPC p50 / in-process p50.

Phases alternate (in-process, gRPC, in-process, gRPC, ...) so that slow drift of the machine
hits both paths alike. p99 is nearest-rank: with a few dozen calls it is close to the maximum.

Run: `make bench-grpc` or `python bench/grpc_latency.py [--calls 24] [--clients 1 8]
[--backends auto greedy] [--jobs 50 --sites 3 --slots 24]`.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from instances import InstanceSpec, carbon_source, make_request  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = {"auto": "BACKEND_AUTO", "highs": "HIGHS", "cpsat": "CPSAT", "greedy": "GREEDY"}
START_TIMEOUT_S = 120
CALL_TIMEOUT_S = 120


@dataclass
class Phase:
    """Latencies and solver wall times of one (backend, clients, path) cell."""

    latencies: list[float] = field(default_factory=list)
    solve_s: list[float] = field(default_factory=list)
    # Latency minus the solver's own wall time: request handling, encoding and transport.
    other_s: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    emissions: set[float] = field(default_factory=set)
    wall_s: float = 0.0

    def add(self, other: Phase) -> None:
        self.latencies += other.latencies
        self.solve_s += other.solve_s
        self.other_s += other.other_s
        for k, v in other.statuses.items():
            self.statuses[k] = self.statuses.get(k, 0) + v
        self.emissions |= other.emissions
        self.wall_s += other.wall_s


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def build_request(args: argparse.Namespace, backend: str) -> dict:
    spec = InstanceSpec("grpc-latency", jobs=args.jobs, sites=args.sites, slots=args.slots,
                        seed=args.seed)
    request = make_request(spec)
    request["options"] = {"time_limit_seconds": args.time_limit,
                          "relative_gap": args.relative_gap, "backend": BACKENDS[backend]}
    return request


# --- the server process ------------------------------------------------------------------------


class ServerProcess:
    """`gridshift serve` in its own process on a free loopback port."""

    def __init__(self, max_concurrent: int) -> None:
        env = {k: v for k, v in os.environ.items() if k != "GRIDSHIFT_LOG_LEVEL"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gridshift.cli", "serve", "--host", "127.0.0.1", "--port", "0",
             "--max-concurrent-solves", str(max_concurrent), "--log-level", "WARNING"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.process.stdout.readline()),
                         daemon=True).start()
        try:
            line = lines.get(timeout=START_TIMEOUT_S)
        except queue.Empty:
            self.stop()
            raise RuntimeError("gridshift serve did not start in time") from None
        if not line.startswith("gridshift serving on "):
            self.stop()
            raise RuntimeError(f"gridshift serve did not start: {line!r}")
        self.target = line.rsplit(" ", 1)[1].strip()

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def grpc_caller(target: str, request: dict) -> tuple[Callable[[], tuple[str, float, float]],
                                                    Callable[[], None]]:
    """A call function on a channel of its own (a local subchannel pool, so every client has
    its own TCP connection, as separate client processes would)."""
    import grpc

    from gridshift.adapters.grpc_client import MAX_MESSAGE_BYTES, SchedulerClient
    from gridshift.api.v1 import optimize_pb2 as pb
    from gridshift.api.v1 import scheduler_pb2_grpc

    channel = grpc.insecure_channel(target, options=[
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.use_local_subchannel_pool", 1)])
    stub = scheduler_pb2_grpc.SchedulerStub(channel)
    message = SchedulerClient.to_request(request)

    def call() -> tuple[str, float, float]:
        response = stub.Optimize(message, timeout=CALL_TIMEOUT_S, wait_for_ready=True)
        return (pb.PlanStatus.Name(response.status), response.solver.wall_seconds,
                round(response.totals.emissions_kg, 6))

    return call, channel.close


def inprocess_caller(request: dict) -> tuple[Callable[[], tuple[str, float, float]],
                                             Callable[[], None]]:
    from gridshift.adapters.codec import to_response
    from gridshift.bootstrap import build_app
    from gridshift.settings import load_settings

    planner = build_app(load_settings(), store=None).planner

    def call() -> tuple[str, float, float]:
        # The server's pipeline without the network: solve, risk scoring, response building.
        result = planner.solve(planner.prepare(request))
        to_response(result)
        return result.status, result.wall_seconds, round(result.figures.totals.emissions_kg, 6)

    return call, lambda: None


def run_phase(make_caller: Callable[[], tuple[Callable, Callable]], clients: int,
              calls_per_client: int) -> Phase:
    """`clients` threads, each with its own caller, each making `calls_per_client` calls."""
    callers = [make_caller() for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)

    def client(call: Callable[[], tuple[str, float, float]]) -> Phase:
        phase = Phase()
        barrier.wait()
        for _ in range(calls_per_client):
            t0 = time.perf_counter()
            status, solve_s, kg = call()
            latency = time.perf_counter() - t0
            phase.latencies.append(latency)
            phase.solve_s.append(solve_s)
            phase.other_s.append(latency - solve_s)
            phase.statuses[status] = phase.statuses.get(status, 0) + 1
            phase.emissions.add(kg)
        return phase

    total = Phase()
    try:
        with cf.ThreadPoolExecutor(clients) as pool:
            futures = [pool.submit(client, call) for call, _ in callers]
            barrier.wait()
            started = time.perf_counter()
            for f in futures:
                total.add(f.result())
            total.wall_s = time.perf_counter() - started
    finally:
        for _, close in callers:
            close()
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--calls", type=int, default=32,
                        help="measured calls per (backend, clients, path), split over clients")
    parser.add_argument("--rounds", type=int, default=4,
                        help="alternating in-process / gRPC rounds the calls are split into")
    parser.add_argument("--backends", nargs="+", default=["auto", "greedy"],
                        choices=list(BACKENDS))
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--sites", type=int, default=3)
    parser.add_argument("--slots", type=int, default=24)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--relative-gap", type=float, default=1e-4)
    args = parser.parse_args()

    server = ServerProcess(max(args.clients))
    print(f"server: gridshift serve on {server.target}, --max-concurrent-solves "
          f"{max(args.clients)}; {os.cpu_count()} CPU(s); Python {sys.version.split()[0]}; "
          f"load average {_loadavg()}")
    print(f"request: {args.jobs} jobs, {args.sites} sites, {args.slots} hourly slots, inline "
          f"forecasts ({carbon_source()}); time limit {args.time_limit:g} s, relative gap "
          f"{args.relative_gap:g}")
    rows = []
    overheads = []
    try:
        for backend in args.backends:
            request = build_request(args, backend)
            for clients in args.clients:
                per_round = max(1, math.ceil(args.calls / clients / args.rounds))
                paths = {"in-process": lambda r=request: inprocess_caller(r),
                         "gRPC": lambda r=request: grpc_caller(server.target, r)}
                results = {name: Phase() for name in paths}
                for make in paths.values():   # warm-up: one call per client, not counted
                    run_phase(make, clients, 1)
                for _ in range(args.rounds):
                    for name, make in paths.items():
                        results[name].add(run_phase(make, clients, per_round))
                for name, phase in results.items():
                    rows.append((backend, clients, name, phase))
                p50 = {name: percentile(ph.latencies, 50) for name, ph in results.items()}
                overheads.append((backend, clients, p50["gRPC"], p50["in-process"]))
    finally:
        code = server.stop()
    print()
    print("| backend | clients | path | calls | p50 ms | p99 ms | calls/s | solver wall p50 ms | "
          "non-solve p50 ms | status | emissions kg |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for backend, clients, name, ph in rows:
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(ph.statuses.items()))
        kg = ", ".join(f"{x:,.3f}" for x in sorted(ph.emissions))
        print(f"| {backend} | {clients} | {name} | {len(ph.latencies)} | "
              f"{1000 * percentile(ph.latencies, 50):.0f} | "
              f"{1000 * percentile(ph.latencies, 99):.0f} | "
              f"{len(ph.latencies) / ph.wall_s:.2f} | {1000 * percentile(ph.solve_s, 50):.0f} | "
              f"{1000 * percentile(ph.other_s, 50):.1f} | {statuses} | {kg} |")
    print()
    print("| backend | clients | gRPC p50 ms | in-process p50 ms | service overhead "
          "(gRPC / in-process p50) |")
    print("|---|---|---|---|---|")
    for backend, clients, grpc_p50, local_p50 in overheads:
        ratio = grpc_p50 / local_p50
        print(f"| {backend} | {clients} | {1000 * grpc_p50:.0f} | {1000 * local_p50:.0f} | "
              f"{ratio:.3f} ({100 * (ratio - 1):+.1f} %) |")
    print("\nsolver wall: the solve's own wall time (SolveResult.wall_seconds, as the server "
          "reports it in solver.wall_seconds); non-solve: latency minus solver wall, per call "
          "(in-process: prepare; gRPC: transport, proto <-> dict, prepare, response building).")
    print(f"load average at the end: {_loadavg()} (other processes on the machine add noise)")
    print(f"server exited with code {code} after SIGTERM")
    return 0


if __name__ == "__main__":
    sys.exit(main())
