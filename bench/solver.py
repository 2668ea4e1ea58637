"""Solver benchmark on seeded instances with real carbon curves (bench/instances.py).

Per size it prints, in one run: model build time, time to the first plan, objective after
each time limit (default 10 s and 60 s), the bound the product reports, the LP-relaxation
bound and the best solution of a long exact run (both computed once per instance and cached
in bench/.cache), gaps to both, peak memory of the solving processes, and savings against the
FIFO baseline — for the product and, beside it, the plain greedy heuristic and the plain exact
solvers (HiGHS and CP-SAT on the whole model, no warm start). Every plan passes the checker.

    python bench/solver.py [--sizes small medium large xlarge] [--limits 10 60]
                           [--configs product greedy highs-plain cpsat-plain]
                           [--reference-minutes 30]   # computes the missing references
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import math
import multiprocessing
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from instances import SIZES, carbon_source, make_request  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache"
CONFIGS = {
    "product": "gridshift's pipeline (default backend: heuristic; exact + LP-guided restricted "
               "MIPs on small models, exact/LNS portfolio on mid-size ones, Lagrangian rounding "
               "+ LNS beyond; bound)",
    "greedy": "the construction heuristic + local search alone (backend GREEDY)",
    "highs-plain": "HiGHS on the whole time-indexed model, no warm start",
    "cpsat-plain": "CP-SAT on the whole time-indexed model, no warm start",
}
PLAIN_MAX_COLUMNS = 400_000     # plain exact solvers are not even started past this size


def _problem(size: str):
    from gridshift.bootstrap import build_app
    from gridshift.settings import load_settings

    return build_app(load_settings(), store=None).planner.prepare(make_request(SIZES[size]))


def _peak_mb() -> float:
    from gridshift.optimizer.backends.isolated import shutdown

    shutdown()
    return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024


def _run(size: str, config: str, limit: float) -> dict:
    """One configuration on one instance under one time limit, in its own process."""
    import dataclasses

    from gridshift.optimizer.accounting import figures
    from gridshift.optimizer.baseline import fifo_baseline
    from gridshift.optimizer.checker import check_plan
    from gridshift.optimizer.domain import Backend, Options
    from gridshift.optimizer.milp import build_milp
    from gridshift.optimizer.portfolio import estimate_columns
    from gridshift.optimizer.solve import solve

    problem = _problem(size)
    base_kg = figures(problem, fifo_baseline(problem)).totals.emissions_kg
    out = {"size": size, "config": config, "limit": limit, "base_kg": base_kg}
    if config.endswith("-plain"):
        if estimate_columns(problem, list(range(problem.n_jobs))) > PLAIN_MAX_COLUMNS:
            return {**out, "skipped": "model too large to build for a plain exact solve"}
        started = time.monotonic()
        model = build_milp(problem)
        out["build_s"] = time.monotonic() - started
        out.update(_plain(model, config.split("-")[0], limit))
    else:
        first: list[float] = []
        backend = Backend.GREEDY if config == "greedy" else Backend.AUTO
        opts = Options(time_limit_seconds=limit, relative_gap=1e-4, backend=backend)
        result = solve(dataclasses.replace(problem, options=opts),
                       on_progress=lambda e: first.append(e["elapsed_s"])
                       if not first and e["kind"] == "first_plan" else None)
        check = check_plan(problem, result.plan)
        assert check.ok, check.violations
        out.update(first_s=first[0] if first else math.nan, objective=result.objective,
                   bound=result.best_bound, wall_s=result.wall_seconds, status=result.status,
                   kg=check.emissions_kg, detail=result.detail[:160])
    out["peak_mb"] = _peak_mb()
    return out


def _plain(model, backend: str, limit: float) -> dict:
    from gridshift.optimizer.backends.isolated import solve_isolated
    from gridshift.optimizer.checker import check_plan

    first: list[float] = []

    def progress(objective: float, bound: float, elapsed: float, values=None) -> None:
        if not first:
            first.append(elapsed)

    result = solve_isolated(backend, model, time_limit_s=limit, relative_gap=1e-4,
                            on_progress=progress)
    kg = math.nan
    if result.values is not None:
        check = check_plan(model.problem, model.decode(result.values))
        assert check.ok, check.violations
        kg = check.emissions_kg
    return {"first_s": first[0] if first else math.nan, "objective": result.objective,
            "bound": result.best_bound, "wall_s": result.wall_seconds,
            "status": result.status, "kg": kg}


def _reference(size: str, minutes: float | None) -> dict:
    """LP bound and the best of a long exact run, cached per instance."""
    from gridshift.optimizer.backends.highs import solve_highs
    from gridshift.optimizer.backends.isolated import solve_isolated
    from gridshift.optimizer.milp import build_milp

    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"{size}-seed{SIZES[size].seed}.json"
    cached = json.loads(path.read_text()) if path.exists() else {}
    if minutes and ("lp" not in cached or "best" not in cached):
        from gridshift.optimizer.portfolio import estimate_columns

        problem = _problem(size)
        # Too large for a plain exact solve: only the LP, by interior point (one thread).
        lp_only = estimate_columns(problem, list(range(problem.n_jobs))) > PLAIN_MAX_COLUMNS
        model = build_milp(problem)
        if "lp" not in cached:
            lp = solve_highs(model, time_limit_s=60 * minutes, relative_gap=0, relax=True,
                             workers=1 if lp_only else 0,
                             lp_solver="ipm" if lp_only else "choose")
            cached["lp"] = lp.best_bound if lp.status == "optimal" else None
            cached["lp_s"] = lp.wall_seconds
            cached["lp_method"] = "interior point" if lp_only else "HiGHS default"
        if "best" not in cached and not lp_only:
            best = solve_isolated("highs", model, time_limit_s=60 * minutes, relative_gap=1e-6)
            cached["best"] = best.objective if best.values is not None else None
            cached["best_bound"] = best.best_bound
            cached["best_minutes"] = minutes
        path.write_text(json.dumps(cached, indent=2))
    return cached


def _fmt(x, spec: str = ",.1f") -> str:
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def _gap(objective, bound) -> str:
    if objective is None or bound is None or not math.isfinite(objective or math.nan) \
            or not math.isfinite(bound):
        return "—"
    return f"{100 * (objective - bound) / abs(objective):.2f} %"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["small", "medium"], choices=list(SIZES))
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--limits", nargs="+", type=float, default=[10.0])
    parser.add_argument("--reference-minutes", type=float, default=None,
                        help="compute missing LP bounds / long exact runs (minutes each)")
    args = parser.parse_args()
    print(f"carbon curves: {carbon_source()}; objective = emissions in kg CO2e; "
          f"time limits {', '.join(f'{x:g} s' for x in args.limits)}")
    ctx = multiprocessing.get_context("spawn")
    for size in args.sizes:
        spec = SIZES[size]
        with cf.ProcessPoolExecutor(1, mp_context=ctx, max_tasks_per_child=1) as pool:
            ref = pool.submit(_reference, size, args.reference_minutes).result()
        print(f"\n## {size}: {spec.jobs} jobs, {spec.sites} sites, {spec.slots} slots, peak "
              f"utilisation {spec.peak_utilisation:.0%}; LP bound {_fmt(ref.get('lp'))} kg; "
              + (f"best of a {ref['best_minutes']:g}-min exact run {_fmt(ref.get('best'))} kg"
                 if ref.get("best_minutes") else "no long exact run (model too large for one)"))
        print("| config | limit s | build s | first plan s | wall s | status | objective kg | "
              "reported bound | gap to own bound | gap to LP | gap to best | peak MB | "
              "savings vs FIFO |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for config in args.configs:
            for limit in args.limits if config != "greedy" else args.limits[:1]:
                with cf.ProcessPoolExecutor(1, mp_context=ctx, max_tasks_per_child=1) as pool:
                    r = pool.submit(_run, size, config, limit).result()
                if "skipped" in r:
                    print(f"| {config} | {limit:g} | — | — | — | {r['skipped']} | — | — | — | — "
                          f"| — | — | — |", flush=True)
                    continue
                obj = r.get("objective")
                savings = 100 * (r["base_kg"] - r["kg"]) / r["base_kg"] if r["base_kg"] else 0
                print(f"| {config} | {limit:g} | {_fmt(r.get('build_s'), '.2f')} | "
                      f"{_fmt(r['first_s'], '.2f')} | {_fmt(r['wall_s'], '.2f')} | "
                      f"{r['status']} | {_fmt(obj)} | "
                      f"{_fmt(r['bound'])} | {_gap(obj, r['bound'])} | "
                      f"{_gap(obj, ref.get('lp'))} | {_gap(obj, ref.get('best'))} | "
                      f"{r['peak_mb']:.0f} | {_fmt(savings, '.1f')} % |", flush=True)
    print("\nconfigs: " + "; ".join(f"{k}: {v}" for k, v in CONFIGS.items() if k in args.configs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
