"""Random shapes of problem: the solver on instances no benchmark was tuned on.

Each seed draws one instance and one call: the family (tight: bench/tight_instances.py,
capacity binds; generous: bench/instances.py), 3 to 1,200 jobs, 1 to 8 sites, a horizon of
24 hourly to 288 five-minute slots (or a week of hours), how full the fleet is, the
objective (carbon alone, or with cost (prices drawn per hour) and a delay weight), the
request's seed and a time limit of 0.3 to 5 s. Each call runs in a fresh process, as a CLI
call does. Per run it prints the shape, the wall time against the limit, the objective
(kg CO2e and the other terms, through the independent checker), the jobs left out and the
start of the status detail; then a summary: how many plans passed the checker, how many
placed every job, and the spread of wall / limit. A plan that fails the checker fails the
benchmark.

    python bench/random_shapes.py [--seeds 1-40] [--compare-with DIR]

``--compare-with DIR`` runs every seed a second time with DIR's ``gridshift`` package (as
bench/limits.py does) and prints the objective's ratio to the baseline's per run and their
geometric mean.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import statistics
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

JOBS = (3, 10, 25, 60, 150, 300, 700, 1200)
#: (slots, slot minutes)
HORIZONS = ((24, 60), (48, 30), (72, 20), (96, 15), (288, 5), (168, 60))
LIMITS_S = (0.3, 0.5, 1.0, 2.0, 3.0, 5.0)
#: A run is late where it ends more than this long after its limit (seconds, or a share of
#: the limit, whichever is larger): the construction's plan and the checker still take time.
LATE_S, LATE_SHARE = 0.3, 0.1


@dataclasses.dataclass(frozen=True)
class Draw:
    """One seed's instance and call."""

    seed: int
    family: str
    jobs: int
    sites: int
    slots: int
    slot_minutes: int
    fullness: float          # tight: fill; generous: peak utilisation
    limit_s: float
    request_seed: int
    cost_weight: float
    delay_weight: float

    def label(self) -> str:
        weights = ""
        if self.cost_weight or self.delay_weight:
            weights = f", cost {self.cost_weight:g}, delay {self.delay_weight:g}"
        return (f"{self.family} {self.jobs} x {self.sites} x {self.slots} "
                f"({self.slot_minutes} min, {self.fullness:g} full{weights})")


def draw(seed: int) -> Draw:
    """The instance and call of ``seed``."""
    rnd = random.Random(seed)
    family = rnd.choice(["tight", "tight", "generous"])
    sites = rnd.choice([1, 2, 3, 4, 6, 8] if family == "generous" else [3, 4, 5, 6, 8])
    slots, slot_minutes = rnd.choice(HORIZONS)
    fullness = rnd.choice([0.5, 0.75, 0.9, 1.0] if family == "tight" else [0.6, 0.85, 1.0])
    weighted = rnd.random() < 0.3
    return Draw(seed, family, rnd.choice(JOBS), sites, slots, slot_minutes, fullness,
                rnd.choice(LIMITS_S), rnd.randrange(1000),
                rnd.choice([0.0, 0.5]) if weighted else 0.0,
                rnd.choice([0.0, 0.1, 1.0]) if weighted else 0.0)


def request_of(d: Draw) -> dict:
    """The OptimizeRequest of a draw (prices drawn per forecast hour where cost counts)."""
    from instances import InstanceSpec, make_request
    from tight_instances import TightSpec, make_tight_request

    if d.family == "tight":
        request = make_tight_request(TightSpec(f"random-{d.seed}", jobs=d.jobs, sites=d.sites,
                                               slots=d.slots, slot_minutes=d.slot_minutes,
                                               fill=d.fullness, seed=d.seed))
    else:
        request = make_request(InstanceSpec(f"random-{d.seed}", jobs=d.jobs, sites=d.sites,
                                            slots=d.slots, slot_minutes=d.slot_minutes,
                                            peak_utilisation=d.fullness, seed=d.seed))
    if d.cost_weight or d.delay_weight:
        request["objective"] = {"carbon_weight": 1.0, "cost_weight": d.cost_weight,
                                "delay_weight": d.delay_weight}
    if d.cost_weight:
        prices = random.Random(-d.seed)
        for forecast in request["forecasts"]:
            forecast["price_per_mwh"] = [round(30.0 + 60.0 * prices.random(), 2)
                                         for _ in forecast["carbon_intensity"]]
    return request


def run_once(seed: int) -> dict:
    """One call in this process: wall time, objective, checker verdict, jobs left out."""
    from gridshift.optimizer.checker import check_plan
    from gridshift.optimizer.parsing import parse_request
    from gridshift.optimizer.problem import build_problem
    from gridshift.optimizer.solve import solve

    d = draw(seed)
    problem = build_problem(parse_request(request_of(d)))
    options = dataclasses.replace(problem.options, time_limit_seconds=d.limit_s,
                                  random_seed=d.request_seed)
    began = time.monotonic()
    result = solve(dataclasses.replace(problem, options=options))
    wall_s = time.monotonic() - began
    check = check_plan(problem, result.plan)
    return {"wall_s": wall_s, "objective": check.objective, "ok": check.ok,
            "jobs": problem.n_jobs, "unplaced": len(result.plan.unscheduled),
            "detail": result.detail}


def _seeds(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def _late(wall_s: float, limit_s: float) -> bool:
    return wall_s > limit_s + max(LATE_S, LATE_SHARE * limit_s)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1-40", help="a seed or a range, e.g. 1-40")
    parser.add_argument("--compare-with", default=None,
                        help="a gridshift tree to run as the baseline beside this one")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(run_once(args.one)))
        return 0
    if args.warm:
        print(json.dumps(warm_kernels()))
        return 0
    configs = product_and_baseline(__file__, args.compare_with)
    print("| seed | instance | jobs | limit | config | wall | wall / limit | objective "
          "| left out | detail |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    results: dict[str, list[tuple[Draw, dict]]] = {label: [] for label, _ in configs}
    for seed in _seeds(args.seeds):
        d = draw(seed)
        for label, tree in configs:
            r = run_script(__file__, ["--one", str(seed)], tree)
            results[label].append((d, r))
            verdict = "" if r["ok"] else " (checker FAILED)"
            late = " (late)" if _late(r["wall_s"], d.limit_s) else ""
            print(f"| {seed} | {d.label()} | {r['jobs']} | {d.limit_s:g} s | {label} "
                  f"| {r['wall_s']:.2f} s{late} | {r['wall_s'] / d.limit_s:.2f} "
                  f"| {r['objective']:,.2f}{verdict} | {r['unplaced']} "
                  f"| {r['detail'][:60]} |", flush=True)
    for label, runs in results.items():
        print(_summary(label, runs))
    if args.compare_with:
        print(_comparison(results["product"], results["baseline"]))
    return 0 if all(r["ok"] for runs in results.values() for _, r in runs) else 1


def _summary(label: str, runs: list[tuple[Draw, dict]]) -> str:
    ratios = sorted(r["wall_s"] / d.limit_s for d, r in runs)
    late = [d.seed for d, r in runs if _late(r["wall_s"], d.limit_s)]
    p90 = ratios[min(len(ratios) - 1, int(0.9 * len(ratios)))]
    return (f"{label}: {len(runs)} runs; checker passed {sum(r['ok'] for _, r in runs)}; "
            f"every job placed in {sum(r['unplaced'] == 0 for _, r in runs)}; wall / limit "
            f"median {statistics.median(ratios):.2f}, p90 {p90:.2f}, max {ratios[-1]:.2f}; "
            f"late (over {LATE_S:g} s or {LATE_SHARE:.0%} past the limit): "
            f"{', '.join(map(str, late)) or 'none'}")


def _comparison(product: list[tuple[Draw, dict]], baseline: list[tuple[Draw, dict]]) -> str:
    """Objective ratios, product / baseline, over the runs where both placed every job."""
    pairs = [(p, b) for (_, p), (_, b) in zip(product, baseline, strict=True)
             if p["unplaced"] == b["unplaced"] == 0 and p["objective"] > 0 and b["objective"] > 0]
    logs = [math.log(p["objective"] / b["objective"]) for p, b in pairs]
    if not logs:
        return "objective, product / baseline: no run to compare"
    lower = sum(x < -1e-9 for x in logs)
    higher = sum(x > 1e-9 for x in logs)
    return (f"objective, product / baseline: geometric mean {math.exp(statistics.mean(logs)):.4f}"
            f" over {len(logs)} runs ({lower} lower, {higher} higher)")


if __name__ == "__main__":
    raise SystemExit(main())
