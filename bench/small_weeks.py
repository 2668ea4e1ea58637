"""The no-regret rule on the year's small weeks, and what a setting costs elsewhere (issue 18).

A year of weekly replays cycles through the trace's weeks; one of them holds 13 jobs, all
arriving in the replay's last three hours, and decides the "never more than 1 % worse than
run-now" target: any shift in it is one bet, with nothing to average it out. This benchmark
replays, per series and seed, every week of the year whose job count lies in ``--jobs MIN
MAX`` (default the small weeks: 1..100 jobs), under each ``--variant`` (a no-regret Z and loss
budget, as ``gridshift backtest --no-regret-z Z --no-regret-budget PCT`` sets them), with the
policies run-now, the per-job lowest window and gridshift, and prints per variant:

- the weeks in which gridshift emitted more than run-now, those more than 1 % above it, and
  the worst excess (% of run-now's emissions);
- gridshift's share of the perfect-foresight savings summed over those weeks (the reference is
  the offline optimum, as in every backtest), overall and per series;
- the weeks in which gridshift was ahead of the per-job lowest window.

Every figure is the sweep's own (``gridshift.app.backtest.sweep``: the replays run as a sweep,
the figures from its weekly table), so they read as the year's sweeps do.

Run it with ``--jobs 101 1000`` on a few series for a setting's cost in ordinary weeks.

Run: ``python bench/small_weeks.py [--regions DE US-NY-NYIS ...] [--seeds 0 1 2 3]
[--jobs 1 100] [--variant 2:1 --variant 2:0.5 --variant 3:1]``.
Skipped, with a message, when ../shared/data (or $GRIDSHIFT_SHARED_DATA) is absent.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from gridshift.app.backtest.config import SERIES_YEAR, BacktestError
from gridshift.app.backtest.context import build_context
from gridshift.app.backtest.data import ReplayInputs, SeriesSource, TraceSource, load_inputs
from gridshift.app.backtest.replay import config_for
from gridshift.app.backtest.sweep import ReplaySpec, run_sweep, weekly_rows

DATA = Path(os.environ.get("GRIDSHIFT_SHARED_DATA")
            or Path(__file__).resolve().parents[2] / "shared" / "data")
POLICIES = ("run-now", "lowest-window", "gridshift")


def small_weeks(region: str, inputs: ReplayInputs, first: date, weeks: int,
                jobs: tuple[int, int]) -> list[tuple[date, int]]:
    """(start, jobs) of the year's weeks whose job count lies within ``jobs``."""
    source = SeriesSource(region, None, None)
    found = []
    for k in range(weeks):
        try:
            cfg = config_for(source, inputs, first + timedelta(weeks=k), 7)
            n = len(build_context(cfg, inputs)[0].jobs)
        except BacktestError:
            continue        # a week of the trace without jobs of 30 min .. 24 h
        if jobs[0] <= n <= jobs[1]:
            found.append((cfg.start, n))
    return found


def replay_weeks(weeks: dict[str, list[tuple[date, int]]], inputs: dict[str, ReplayInputs],
                 seeds: list[int], z: float, budget_pct: float) -> pd.DataFrame:
    """gridshift's rows of the sweep's weekly table (:func:`.sweep.weekly_rows`: emissions,
    savings, perfect foresight's savings, excess over run-now, ahead of the lowest window)
    for every week and seed, under one rule setting."""
    settings = tuple(sorted({"policies": POLICIES, "no_regret_z": z,
                             "no_regret_budget_pct": budget_pct}.items()))
    specs = [ReplaySpec(SeriesSource(region, None, None), start, seed, 7, settings)
             for region, found in weeks.items() for start, _ in found for seed in seeds]
    weekly = weekly_rows(run_sweep(specs, inputs).replays)
    return weekly[weekly["policy"] == "gridshift"]


def summary(rows: pd.DataFrame) -> dict:
    """The regret, share and lead figures of gridshift's weekly rows, by the sweep's
    definitions (worse than run-now, excess in % of run-now, share of perfect foresight's
    savings summed, ahead of the per-job lowest window)."""
    worse = rows.loc[rows["worse_than_run_now"], "excess_pct"]
    possible = rows["pf_savings_kg"].sum()
    return {"replays": len(rows), "worse": len(worse),
            "worse_over_1pct": int((worse > 1.0).sum()),
            "worst_excess_pct": float(worse.max()) if len(worse) else 0.0,
            "share_pct": 100.0 * rows["savings_kg"].sum() / possible if possible > 0
            else float("nan"),
            "ahead": int(rows["ahead_of_lowest"].sum())}


def _variant(text: str) -> tuple[float, float]:
    z, _, budget = text.partition(":")
    return float(z), float(budget or 1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", nargs="+", default=list(SERIES_YEAR))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--jobs", type=int, nargs=2, default=[1, 100], metavar=("MIN", "MAX"),
                        help="the weeks replayed: those with MIN..MAX jobs (default 1 100)")
    parser.add_argument("--start", type=date.fromisoformat, default=date(2022, 1, 3),
                        help="first Monday (moved into each series' year; default 2022-01-03)")
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--variant", type=_variant, action="append", metavar="Z:BUDGET",
                        help="a rule setting, Z and loss budget in %% (repeatable; default "
                             "2:1, the backtest's default)")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"skipped: no shared data at {DATA} (set GRIDSHIFT_SHARED_DATA)")
        return 0
    variants = args.variant or [(2.0, 1.0)]
    inputs = {r: load_inputs(SeriesSource(r, None, None), TraceSource(None), DATA)
              for r in args.regions}
    weeks = {r: small_weeks(r, inputs[r], args.start, args.weeks, tuple(args.jobs))
             for r in args.regions}
    print(f"Weeks of {args.jobs[0]}..{args.jobs[1]} jobs, seeds "
          f"{' '.join(map(str, args.seeds))}: " + ", ".join(
              f"{r} {len(w)}" for r, w in weeks.items()), flush=True)
    print("\n| Z : budget | replays | worse than run-now (of which > 1 %; at most) | share of "
          "perfect foresight | per series | ahead of lowest window |\n|---|---|---|---|---|---|")
    for z, budget in variants:
        began = time.perf_counter()
        rows = replay_weeks(weeks, inputs, args.seeds, z, budget)
        s = summary(rows)
        per_series = " / ".join(f"{r} {summary(g)['share_pct']:.1f}"
                                for r, g in rows.groupby("region", sort=False))
        print(f"| {z:g} : {budget:g} % | {s['replays']} | {s['worse']} ({s['worse_over_1pct']}; "
              f"{s['worst_excess_pct']:.2f} %) | {s['share_pct']:.1f} % | {per_series} | "
              f"{s['ahead']} of {s['replays']} |", flush=True)
        print(f"  ({time.perf_counter() - began:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
