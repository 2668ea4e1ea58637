"""Peak memory of one planning call, by size: the figures behind the per-call memory estimate
(gridshift.service.servicer.call_memory_estimate) and the README's Reliability section.

Each size runs in a fresh process: the request message is parsed from its bytes and goes the
service's way (request dict, validation, forecasts, solve with the time limit given, response,
plan record stored in SQLite); the process's peak RSS growth over its start is reported beside
the estimate.

    .venv/bin/python bench/memory.py [--sizes 1000x4x96 10000x4x96] [--time-limit 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta


def request(jobs: int, sites: int, slots: int, time_limit: float) -> dict:
    start = datetime(2026, 6, 15, tzinfo=UTC)
    ts = lambda t: (start + timedelta(hours=t)).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    return {
        "horizon": {"start": ts(0), "slot_minutes": 60, "slots": slots},
        "sites": [{"id": f"s{i}", "region": "GB", "gpu_capacity": 10 * jobs // sites + 8}
                  for i in range(sites)],
        "jobs": [{"id": f"job-{j:07d}", "team": "t", "gpus": 1 + j % 4,
                  "power_kw": 0.7 * (1 + j % 4), "duration_minutes": 60 * (1 + j % 3),
                  "deadline": ts(slots)} for j in range(jobs)],
        "forecasts": [{"region": "GB", "start": ts(0), "slot_minutes": 60,
                       "carbon_intensity": [200 + 50 * ((t % 24) > 12) for t in range(slots)]}],
        "options": {"time_limit_seconds": time_limit, "backend": "GREEDY"},
    }


def one(spec: str, time_limit: float) -> dict:
    """Runs in the child: one call's peak RSS growth."""
    jobs, sites, slots = (int(x) for x in spec.split("x"))
    from google.protobuf import json_format

    from gridshift.adapters.codec import request_to_dict, to_response
    from gridshift.adapters.store import PlanStore
    from gridshift.api.v1 import optimize_pb2 as pb
    from gridshift.bootstrap import build_app
    from gridshift.service.servicer import call_memory_estimate
    from gridshift.settings import load_settings

    raw = json_format.ParseDict(request(jobs, sites, slots, time_limit),
                                pb.OptimizeRequest()).SerializeToString()
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(environ={"GRIDSHIFT_DATA_DIR": tmp, "HOME": tmp})
        app = build_app(settings, store=PlanStore(f"sqlite:///{tmp}/plans.sqlite"))
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        message = pb.OptimizeRequest.FromString(raw)
        data = request_to_dict(message)
        problem = app.planner.prepare(data)
        result = app.planner.solve(problem)
        response = to_response(result)
        outcome = app.planner.keep(result, data, "grpc")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"size": spec, "request_mib": round(len(raw) / 2**20, 2),
            "response_mib": round(response.ByteSize() / 2**20, 2), "status": result.status,
            "stored": outcome.stored, "peak_growth_mib": round((peak - base) / 2**20),
            "estimate_mib": round(call_memory_estimate(len(raw), jobs, sites, slots) / 2**20)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["1000x4x96", "10000x4x96",
                                                       "50000x2x48", "2000x8x672"])
    parser.add_argument("--time-limit", type=float, default=5.0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one(args.child, args.time_limit)))
        return
    print(f"{'jobs x sites x slots':<22} {'request':>9} {'response':>9} {'peak RSS +':>11} "
          f"{'estimate':>9}  status")
    for spec in args.sizes:
        done = subprocess.run([sys.executable, __file__, "--child", spec, "--time-limit",
                               str(args.time_limit)], capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{spec:<22} failed: {done.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{r['size']:<22} {r['request_mib']:>7.2f}MB {r['response_mib']:>7.2f}MB "
              f"{r['peak_growth_mib']:>9}MB {r['estimate_mib']:>7}MB  {r['status']}"
              f"{'' if r['stored'] else ' (not stored)'}")


if __name__ == "__main__":
    main()
