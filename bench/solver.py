"""Solver benchmark: heuristic and exact backends on seeded instances with real carbon curves.

Prints, per instance size and configuration: model build time, time to the first feasible
plan, objective after the time limit (10 s by default), the best bound the product reports,
the LP-relaxation bound and the gap to it, peak memory of the solving process, and savings
against the FIFO baseline. Each configuration runs in a fresh process so peak memory is its
own. Run: `make bench` or `python bench/solver.py [--sizes small medium] [--time-limit 10]`.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import math
import multiprocessing
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from instances import SIZES, carbon_source, make_request  # noqa: E402

CONFIGS = {
    "greedy": "construction heuristic + local search (product, backend GREEDY)",
    "highs": "product pipeline, HiGHS warm-started from the heuristic",
    "cpsat": "product pipeline, CP-SAT warm-started from the heuristic",
    "highs-cold": "plain HiGHS on the model, no warm start",
    "cpsat-cold": "plain CP-SAT on the model, no warm start",
}


def _run(size: str, config: str, time_limit: float) -> dict:
    """One configuration on one instance, in its own process."""
    import dataclasses

    from gridshift.planning import prepare
    from optimizer.accounting import figures
    from optimizer.baseline import fifo_baseline
    from optimizer.checker import check_plan
    from optimizer.domain import Backend, Options
    from optimizer.milp import build_milp
    from optimizer.solve import solve

    problem = prepare(make_request(SIZES[size]))
    base_kg = figures(problem, fifo_baseline(problem)).totals.emissions_kg
    started = time.monotonic()
    model = build_milp(problem)
    build_s = time.monotonic() - started
    out = {"size": size, "config": config, "build_s": build_s, "base_kg": base_kg}
    if config.endswith("-cold"):
        out.update(_cold(model, config.split("-")[0], time_limit))
    else:
        first: list[float] = []
        backend = {"greedy": Backend.GREEDY, "highs": Backend.HIGHS, "cpsat": Backend.CPSAT}[config]
        opts = Options(time_limit_seconds=time_limit, relative_gap=1e-4, backend=backend)
        result = solve(dataclasses.replace(problem, options=opts),
                       on_progress=lambda e: first.append(e["elapsed_s"]) if not first else None)
        check = check_plan(problem, result.plan)
        assert check.ok, check.violations
        out.update(first_s=first[0] if first else math.nan, objective=result.objective,
                   bound=result.best_bound, wall_s=result.wall_seconds, status=result.status,
                   kg=result.figures.totals.emissions_kg)
    # Exact solves run in worker processes: count the largest of this process and them.
    from optimizer.backends.isolated import shutdown

    shutdown()
    out["peak_mb"] = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                         resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return out


def _cold(model, backend: str, time_limit: float) -> dict:
    from optimizer.backends.cpsat import solve_cpsat
    from optimizer.backends.highs import solve_highs
    from optimizer.checker import check_plan

    first: list[float] = []

    def progress(objective: float, bound: float, elapsed: float, values=None) -> None:
        if not first:
            first.append(elapsed)

    solver = solve_highs if backend == "highs" else solve_cpsat
    result = solver(model, time_limit_s=time_limit, relative_gap=1e-4, on_progress=progress)
    kg = math.nan
    if result.values is not None:
        plan = model.decode(result.values)
        check = check_plan(model.problem, plan)
        assert check.ok, check.violations
        kg = check.emissions_kg
    return {"first_s": first[0] if first else math.nan, "objective": result.objective,
            "bound": result.best_bound, "wall_s": result.wall_seconds,
            "status": result.status, "kg": kg}


def _lp_bound(size: str) -> tuple[float, float]:
    from gridshift.planning import prepare
    from optimizer.backends.highs import solve_highs
    from optimizer.milp import build_milp

    model = build_milp(prepare(make_request(SIZES[size])))
    result = solve_highs(model, time_limit_s=600, relative_gap=0, relax=True)
    return result.best_bound, result.wall_seconds


def _fmt(x: float, spec: str = ",.1f") -> str:
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["small", "medium"], choices=list(SIZES))
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--time-limit", type=float, default=10.0)
    args = parser.parse_args()
    print(f"carbon curves: {carbon_source()}; time limit {args.time_limit:g} s; "
          f"objective = emissions in kg CO2e")
    ctx = multiprocessing.get_context("spawn")
    for size in args.sizes:
        spec = SIZES[size]
        print(f"\n## {size}: {spec.jobs} jobs, {spec.sites} sites, {spec.slots} slots, "
              f"peak utilisation ~{spec.peak_utilisation:.0%}")
        with cf.ProcessPoolExecutor(1, mp_context=ctx, max_tasks_per_child=1) as pool:
            lp, lp_s = pool.submit(_lp_bound, size).result()
        print(f"LP relaxation bound {_fmt(lp)} kg (HiGHS, {lp_s:.1f} s)")
        print("| config | build s | first plan s | wall s | status | objective kg | "
              "reported bound | gap to own bound | gap to LP | peak MB | savings vs FIFO |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for config in args.configs:
            with cf.ProcessPoolExecutor(1, mp_context=ctx, max_tasks_per_child=1) as pool:
                r = pool.submit(_run, size, config, args.time_limit).result()
            obj, bound = r["objective"], r["bound"]
            own_gap = (obj - bound) / obj if obj and math.isfinite(bound) else math.nan
            lp_gap = (obj - lp) / obj if obj else math.nan
            savings = 100 * (r["base_kg"] - r["kg"]) / r["base_kg"]
            print(f"| {config} | {r['build_s']:.2f} | {_fmt(r['first_s'], '.2f')} | "
                  f"{r['wall_s']:.2f} | {r['status']} | {_fmt(obj)} | {_fmt(bound)} | "
                  f"{_fmt(100 * own_gap, '.2f')} % | {_fmt(100 * lp_gap, '.2f')} % | "
                  f"{r['peak_mb']:.0f} | {_fmt(savings, '.1f')} % |", flush=True)
    print("\nconfigs: " + "; ".join(f"{k}: {v}" for k, v in CONFIGS.items() if k in args.configs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
