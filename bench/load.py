"""Load held: N clients (threads, each with its own channel) call the service for D seconds,
a mix of Optimize (a 20-job request, greedy, 2 s limit), ListPlans and GetForecast, against a
`gridshift serve` process on loopback (its own data directory, a SQLite store). Prints the
status codes, latency percentiles per method, and the server's peak RSS.

    .venv/bin/python bench/load.py [--clients 50] [--seconds 60]

RESOURCE_EXHAUSTED is the expected answer of an overloaded server (solve slots and the queue
full: answered at once); INTERNAL or UNKNOWN would be bugs.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fuzz import optimize_request  # noqa: E402

from gridshift.adapters.grpc_client import SchedulerClient  # noqa: E402
from gridshift.api.v1 import forecast_pb2, plans_pb2  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def requests() -> dict:
    optimize = optimize_request()
    base = optimize.jobs[0]
    del optimize.jobs[:]
    optimize.sites[0].gpu_capacity = 64
    for i in range(20):
        added = optimize.jobs.add()
        added.CopyFrom(base)
        added.id = f"job-{i:02d}"
    optimize.options.time_limit_seconds = 2
    forecast = forecast_pb2.GetForecastRequest(regions=["US-CAL-CISO"], slot_minutes=60)
    forecast.start.FromJsonString("2026-06-15T00:00:00Z")
    forecast.end.FromJsonString("2026-06-16T00:00:00Z")
    return {"Optimize": optimize, "ListPlans": plans_pb2.ListPlansRequest(page_size=20),
            "GetForecast": forecast}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered) + 0.5)) - 1))]


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, GRIDSHIFT_DATA_DIR=tmp, GRIDSHIFT_LOG_LEVEL="WARNING")
        server = subprocess.Popen([sys.executable, "-m", "gridshift.cli", "serve", "--port", "0",
                                   "--max-concurrent-solves", "2", "--max-queued-solves", "16"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                  cwd=ROOT, env=env)
        try:
            target = server.stdout.readline().strip().rsplit(" ", 1)[-1]
            messages = requests()
            codes: Counter = Counter()
            latency: dict[str, list[float]] = defaultdict(list)
            lock = threading.Lock()
            stop_at = time.monotonic() + args.seconds

            def client(seed: int) -> None:
                rng = random.Random(seed)
                with SchedulerClient(target, retries=False) as c:
                    calls = {"Optimize": c.stub.Optimize, "ListPlans": c.stub.ListPlans,
                             "GetForecast": c.stub.GetForecast}
                    while time.monotonic() < stop_at:
                        name = rng.choices(list(calls), weights=(6, 2, 2))[0]
                        started = time.monotonic()
                        try:
                            calls[name](messages[name], timeout=30, wait_for_ready=True)
                            code = "OK"
                        except grpc.RpcError as exc:
                            code = exc.code().name
                        took = time.monotonic() - started
                        with lock:
                            codes[(name, code)] += 1
                            latency[f"{name} {code}"].append(took)
                        if code == "RESOURCE_EXHAUSTED":
                            time.sleep(0.2 + rng.random() * 0.3)   # back off, as clients should

            threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            rss = peak_rss_mib(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=60)
    total = sum(codes.values())
    print(f"{args.clients} clients, {args.seconds:.0f} s: {total} calls, "
          f"{total / args.seconds:.1f}/s; server peak RSS {rss:,.0f} MiB")
    by_code: Counter = Counter()
    for (_name, code), n in codes.items():
        by_code[code] += n
    print("codes: " + ", ".join(f"{c} {n}" for c, n in by_code.most_common()))
    print(f"{'method and code':<32} {'calls':>6} {'p50 s':>7} {'p95 s':>7} {'p99 s':>7}")
    for key in sorted(latency):
        values = latency[key]
        print(f"{key:<32} {len(values):>6} {percentile(values, 0.5):>7.3f} "
              f"{percentile(values, 0.95):>7.3f} {percentile(values, 0.99):>7.3f}")


if __name__ == "__main__":
    main()
