"""Time-limit benchmark: how long a call with a short ``time_limit_seconds`` really takes, on
shapes of problem beyond the solver benchmark's (thousands of jobs, many sites, week-long
horizons at fine slots, tight and generous fleets).

Each run is a fresh process (as a CLI call is: no compiled kernels loaded yet), solving one
generated instance under one limit. Per run it prints the wall time, its ratio to the limit,
the objective (kg CO2e, through the independent checker) and the start of the status detail.
A plan that fails the checker fails the benchmark.

    python bench/limits.py [--limits 1 3 10] [--shapes NAME ...] [--compare-with DIR]

``--compare-with DIR`` runs every shape and limit a second time with DIR's ``gridshift``
package (as bench/tight.py does), so a baseline is measured in the same run: the figures to
quote are the ratios' differences, not absolute times.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline_tree import (  # noqa: E402
    product_and_baseline,
    run_script,
    use_tree_from_environment,
    warm_kernels,
)

use_tree_from_environment()

#: name -> (family, jobs, sites, slots, slot minutes, seed): "tight" is bench/tight_instances.py
#: (capacity binds), "generous" bench/instances.py.
SHAPES = {
    "tight-200x5x96": ("tight", 200, 5, 96, 15, 1),
    "tight-120x5x288": ("tight", 120, 5, 288, 5, 7),
    "tight-800x4x96": ("tight", 800, 4, 96, 15, 9),
    "tight-2000x6x96": ("tight", 2000, 6, 96, 15, 1),
    "generous-300x4x96": ("generous", 300, 4, 96, 15, 5),
    "generous-1000x6x96": ("generous", 1000, 6, 96, 15, 2),
    "generous-2000x10x96": ("generous", 2000, 10, 96, 15, 5),
    "generous-5000x3x48h": ("generous", 5000, 3, 48, 60, 2),
    "generous-400x30x96": ("generous", 400, 30, 96, 15, 3),
    "generous-300x3x2016": ("generous", 300, 3, 2016, 5, 2),
}


def _request(shape: str) -> dict:
    from instances import InstanceSpec, make_request
    from tight_instances import TightSpec, make_tight_request

    family, jobs, sites, slots, slot_minutes, seed = SHAPES[shape]
    if family == "tight":
        return make_tight_request(TightSpec(shape, jobs=jobs, sites=sites, slots=slots,
                                            slot_minutes=slot_minutes, seed=seed))
    return make_request(InstanceSpec(shape, jobs=jobs, sites=sites, slots=slots,
                                     slot_minutes=slot_minutes, seed=seed))


def run_once(shape: str, limit_s: float) -> dict:
    """One call under ``limit_s`` in this process: wall time, objective, checker verdict."""
    from gridshift.optimizer.checker import check_plan
    from gridshift.optimizer.domain import Options
    from gridshift.optimizer.parsing import parse_request
    from gridshift.optimizer.problem import build_problem
    from gridshift.optimizer.solve import solve

    problem = build_problem(parse_request(_request(shape)))
    began = time.monotonic()
    result = solve(dataclasses.replace(problem, options=Options(time_limit_seconds=limit_s)))
    wall_s = time.monotonic() - began
    check = check_plan(problem, result.plan)
    return {"wall_s": wall_s, "objective_kg": check.objective, "ok": check.ok,
            "unplaced": len(result.plan.unscheduled), "detail": result.detail}


def _in_subprocess(args: list[str], tree: str | None) -> dict:
    return run_script(__file__, args, tree)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limits", nargs="+", type=float, default=[1.0, 3.0, 10.0])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--compare-with", default=None,
                        help="a gridshift tree to run as the baseline beside this one")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_once(args.one[0], float(args.one[1]))))
        return 0
    if args.warm:
        print(json.dumps(warm_kernels()))
        return 0
    configs = product_and_baseline(__file__, args.compare_with)
    print("| shape (jobs x sites x slots) | limit | config | wall | wall / limit | objective "
          "| detail |")
    print("|---|---|---|---|---|---|---|")
    failed, worst = 0, {label: 0.0 for label, _ in configs}
    for shape in args.shapes:
        for limit_s in args.limits:
            for label, tree in configs:
                r = _in_subprocess(["--one", shape, str(limit_s)], tree)
                ratio = r["wall_s"] / limit_s
                worst[label] = max(worst[label], ratio)
                failed += not r["ok"]
                verdict = "" if r["ok"] else " (checker FAILED)"
                print(f"| {shape} | {limit_s:g} s | {label} | {r['wall_s']:.2f} s | {ratio:.2f} "
                      f"| {r['objective_kg']:,.2f} kg{verdict} | {r['detail'][:70]} |",
                      flush=True)
    print("largest wall / limit: " + ", ".join(f"{k} {v:.2f}" for k, v in worst.items()))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
