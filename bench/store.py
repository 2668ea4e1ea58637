"""Plan store benchmark: what storing a plan adds to solving it.

For 1,000 and 5,000 jobs (bench/instances.py, 10 sites, 96 hourly slots) the request is
solved with the greedy backend (the fastest path a plan can take), then stored in a fresh
SQLite plan store in one transaction: the record built from the solver's result (one pass
over the jobs), its request, response and forecast snapshot. Prints the median of ``--repeat``
runs of each and the ratio store / solve (target at 5,000 jobs: under 10 %).

    .venv/bin/python bench/store.py [--jobs 1000 5000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from instances import InstanceSpec, make_request  # noqa: E402

from gridshift.adapters.plan_record import plan_record  # noqa: E402
from gridshift.adapters.store import PlanStore  # noqa: E402
from gridshift.bootstrap import build_app  # noqa: E402
from gridshift.settings import load_settings  # noqa: E402


def measure(jobs: int, repeat: int) -> tuple[float, float, float]:
    """Median seconds of (greedy solve, record build, store transaction)."""
    request = make_request(InstanceSpec(f"store-{jobs}", jobs=jobs, sites=10, slots=96))
    request["options"] = {"backend": "GREEDY", "time_limit_seconds": 60}
    planner = build_app(load_settings(), store=None).planner
    solves, records, saves = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        store = PlanStore(f"sqlite:///{Path(folder) / 'bench.sqlite'}")
        for k in range(repeat):
            problem = planner.prepare(request)
            started = time.perf_counter()
            result = planner.solve(problem)
            solves.append(time.perf_counter() - started)
            started = time.perf_counter()
            record = plan_record(result, request, f"plan-{jobs}-{k}", "bench")
            records.append(time.perf_counter() - started)
            started = time.perf_counter()
            store.save(record)
            saves.append(time.perf_counter() - started)
        store.close()
    return statistics.median(solves), statistics.median(records), statistics.median(saves)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("| jobs | greedy solve s | build record s | store transaction s | storing / solve |")
    print("| --- | --- | --- | --- | --- |")
    for jobs in args.jobs:
        solve_s, record_s, save_s = measure(jobs, args.repeat)
        print(f"| {jobs:,} | {solve_s:.3f} | {record_s:.3f} | {save_s:.3f} | "
              f"{100 * (record_s + save_s) / solve_s:.1f} % |", flush=True)


if __name__ == "__main__":
    main()
