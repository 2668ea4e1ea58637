"""Solver benchmark on the tight family (bench/tight_instances.py): nights when capacity binds.

Per instance it prints, in one run: the FIFO baseline, the product's first plan (objective and
when it came), the product's plan at each time limit (default 10, 60 and 300 s; the CLI's
defaults otherwise), the reference (the best plan known for the instance: the best of every
product run this benchmark ever made on it, including ``--reference-seconds`` runs), the LP
bound (HiGHS's LP relaxation of the whole model) and the gaps. Every plan passes the
independent checker. References and LP bounds are cached in bench/.cache/tight-*.json.

    python bench/tight.py [--sizes tight-medium tight-large] [--seeds 1 2 3 4 5]
                          [--limits 10 60 300] [--reference-seconds 600]
                          [--compare-with DIR]   # the same runs with another source tree

``--compare-with DIR`` runs every limit a second time with DIR's ``gridshift`` package (laid
out as installed, e.g. made from ``git archive`` of an older commit, with ``optimizer/``,
``forecasting/`` and ``adapters/`` copied under ``gridshift/``) ahead of the editable install,
so a baseline is measured in the same run on the same machine. Solver worker processes still
import the installed tree's backends.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline_tree import run_script, use_tree_from_environment  # noqa: E402

use_tree_from_environment()

from tight_instances import TIGHT_SEEDS, TIGHT_SIZES, make_tight_request, tight_spec  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache"


def _problem(size: str, seed: int):
    from gridshift.optimizer.parsing import parse_request
    from gridshift.optimizer.problem import build_problem

    return build_problem(parse_request(make_tight_request(tight_spec(size, seed))))


def run_once(size: str, seed: int, limit: float) -> dict:
    """The product (CLI defaults) on one instance under one limit; the plan checked."""
    import dataclasses

    from gridshift.optimizer.accounting import plan_objective
    from gridshift.optimizer.baseline import fifo_baseline
    from gridshift.optimizer.checker import check_plan
    from gridshift.optimizer.domain import Options
    from gridshift.optimizer.solve import solve

    problem = _problem(size, seed)
    events: list[dict] = []
    began = time.monotonic()
    result = solve(dataclasses.replace(problem, options=Options(time_limit_seconds=limit)),
                   on_progress=events.append)
    wall = time.monotonic() - began
    check = check_plan(problem, result.plan)
    assert check.ok, check.violations[:5]
    assert not result.plan.unscheduled, "every tight instance can place all its jobs"
    # The first plan with every job placed (a first construction that leaves jobs out is
    # no plan for this instance).
    first = next((e for e in events if e.get("objective") is not None
                  and not e.get("unplaced")), None)
    within_1s = [e["objective"] for e in events if e.get("objective") is not None
                 and not e.get("unplaced") and e["elapsed_s"] <= 1.0]
    return {"jobs": problem.n_jobs, "fifo": plan_objective(problem, fifo_baseline(problem)),
            "objective": check.objective, "bound": result.best_bound, "wall_s": wall,
            "first": first["objective"] if first else math.nan,
            "first_s": first["elapsed_s"] if first else math.nan,
            "best_1s": min(within_1s) if within_1s else math.nan,
            "detail": result.detail}


def lp_bound(size: str, seed: int) -> dict:
    """HiGHS's LP relaxation of the whole model (interior point on one thread for large)."""
    from gridshift.optimizer.backends.highs import solve_highs
    from gridshift.optimizer.milp import build_milp

    problem = _problem(size, seed)
    model = build_milp(problem)
    big = model.n_cols > 200_000
    lp = solve_highs(model, time_limit_s=3600, relative_gap=0, relax=True,
                     workers=1 if big else 0, lp_solver="ipm" if big else "choose")
    return {"lp": lp.best_bound if lp.status == "optimal" else None, "lp_s": lp.wall_seconds,
            "columns": model.n_cols}


def _in_subprocess(what: str, args: list, tree: str | None = None) -> dict:
    return run_script(__file__, ["--one", what, json.dumps(args)], tree)


def _cache(size: str, seed: int) -> tuple[Path, dict]:
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"{size}-seed{seed}.json"
    return path, (json.loads(path.read_text()) if path.exists() else {})


def _remember(size: str, seed: int, objective: float, source: str) -> dict:
    """Keep the best plan objective ever seen on the instance (the reference)."""
    path, cached = _cache(size, seed)
    if objective < cached.get("best", math.inf):
        cached.update(best=objective, best_source=source)
        path.write_text(json.dumps(cached, indent=2))
    return cached


def _fmt(x, spec: str = ",.1f") -> str:
    return "—" if x is None or not math.isfinite(x) else format(x, spec)


def _pct(value, ref) -> str:
    if value is None or ref is None or not (math.isfinite(value) and math.isfinite(ref)):
        return "—"
    return f"{100 * (value - ref) / abs(ref):+.2f} %"


def _instance(size: str, seed: int, limits: list[float], reference_s: float | None,
              tree: str | None, label: str) -> list[dict]:
    path, cached = _cache(size, seed)
    if "lp" not in cached:
        cached.update(_in_subprocess("lp", [size, seed]))
        path.write_text(json.dumps(cached, indent=2))
    if reference_s:
        ref_run = _in_subprocess("run", [size, seed, reference_s])
        _remember(size, seed, ref_run["objective"], f"product, {reference_s:g} s")
    runs = []
    for limit in limits:
        r = _in_subprocess("run", [size, seed, limit], tree)
        r.update(limit=limit, config=label)
        _remember(size, seed, r["objective"], f"{label}, {limit:g} s")
        runs.append(r)
        print(f"  {size} seed {seed} {label} {limit:g} s: {r['objective']:,.1f} "
              f"(first {r['first']:,.1f} at {r['first_s']:.2f} s; wall {r['wall_s']:.1f} s) "
              f"{r['detail'][:400]}", file=sys.stderr, flush=True)
    return runs


def _table(size: str, seed: int, runs: list[dict], limits: list[float]) -> str:
    _, cached = _cache(size, seed)
    ref, lp = cached.get("best"), cached.get("lp")
    first = runs[0]
    by_limit = {r["limit"]: r["objective"] for r in runs}
    cells = [f"{size} s{seed} ({first['jobs']} jobs)", runs[0]["config"], _fmt(first["fifo"]),
             f"{_fmt(first['first'])} ({first['first_s']:.2f} s)", _fmt(first["best_1s"])]
    cells += [_fmt(by_limit.get(x)) for x in limits]
    cells += [_fmt(ref), _fmt(lp), _pct(first["first"], ref), _pct(first["best_1s"], ref)]
    cells += [_pct(by_limit.get(x), ref) for x in limits]
    cells += [_pct(by_limit.get(x), lp) for x in limits]
    return "| " + " | ".join(cells) + " |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["tight-medium"], choices=list(TIGHT_SIZES))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(TIGHT_SEEDS))
    parser.add_argument("--limits", nargs="+", type=float, default=[10.0, 60.0, 300.0])
    parser.add_argument("--reference-seconds", type=float, default=None,
                        help="first run the product this long per instance (reference runs)")
    parser.add_argument("--compare-with", default=None,
                        help="a gridshift tree to run as the baseline beside this one")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        what, call = args.one[0], json.loads(args.one[1])
        print(json.dumps(run_once(*call) if what == "run" else lp_bound(*call)))
        return 0
    limits = args.limits
    head = (["instance", "config", "FIFO", "first plan", "best by 1 s"]
            + [f"{x:g} s" for x in limits]
            + ["reference", "LP bound", "first vs ref", "1 s vs ref"]
            + [f"{x:g} s vs ref" for x in limits]
            + [f"{x:g} s vs LP" for x in limits])
    rows = []
    for size in args.sizes:
        for seed in args.seeds:
            configs = [("product", None)] + ([("baseline", args.compare_with)]
                                             if args.compare_with else [])
            results = [_instance(size, seed, limits, args.reference_seconds if k == 0 else None,
                                 tree, label) for k, (label, tree) in enumerate(configs)]
            rows += [_table(size, seed, runs, limits) for runs in results]
    print("objective = kg CO2e; reference = best plan of any run of this benchmark on the "
          "instance (see bench/.cache); LP = HiGHS LP relaxation of the whole model")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
