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
- the weeks in which gridshift was ahead of (or level with) the per-job lowest window.

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
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from gridshift.app.backtest.config import SERIES_YEAR, BacktestError
from gridshift.app.backtest.context import build_context
from gridshift.app.backtest.data import ReplayInputs, SeriesSource, TraceSource, load_inputs
from gridshift.app.backtest.replay import config_for, replay

DATA = Path(os.environ.get("GRIDSHIFT_SHARED_DATA")
            or Path(__file__).resolve().parents[2] / "shared" / "data")
POLICIES = ("run-now", "lowest-window", "gridshift")


@dataclass
class WeekResult:
    """One replay's emissions (kg CO2e) per policy and the reference's."""

    region: str
    start: date
    seed: int
    jobs: int
    run_now_kg: float
    lowest_kg: float
    gridshift_kg: float
    reference_kg: float

    @property
    def excess_pct(self) -> float:
        """gridshift above run-now, % of run-now's emissions (negative: a saving)."""
        return 100.0 * (self.gridshift_kg / self.run_now_kg - 1.0)


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


def replay_week(region: str, inputs: ReplayInputs, start: date, seed: int, z: float,
                budget_pct: float) -> WeekResult:
    """One week under one rule setting."""
    cfg = config_for(SeriesSource(region, None, None), inputs, start, 7, seed=seed,
                     no_regret_z=z, no_regret_budget_pct=budget_pct)
    result = replay(cfg, inputs, policies=POLICIES)
    kg = result.table.set_index("policy")["emissions_kg"]
    return WeekResult(region, cfg.start, seed, len(result.jobs), float(kg["run-now"]),
                      float(kg["lowest-window"]), float(kg["gridshift"]),
                      float(result.reference.plan_kg))


def summary(results: list[WeekResult]) -> dict:
    """The regret, share and lead figures of a list of replays."""
    worse = [r.excess_pct for r in results if r.gridshift_kg > r.run_now_kg * (1 + 1e-9)]
    saved = sum(r.run_now_kg - r.gridshift_kg for r in results)
    possible = sum(r.run_now_kg - r.reference_kg for r in results)
    return {"replays": len(results), "worse": len(worse),
            "worse_over_1pct": sum(e > 1.0 for e in worse),
            "worst_excess_pct": max(worse, default=0.0),
            "share_pct": 100.0 * saved / possible if possible > 0 else float("nan"),
            "ahead": sum(r.gridshift_kg <= r.lowest_kg + 1e-9 for r in results)}


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
        results = [replay_week(r, inputs[r], start, seed, z, budget)
                   for r in args.regions for start, _ in weeks[r] for seed in args.seeds]
        s = summary(results)
        per_series = " / ".join(
            f"{r} {summary([x for x in results if x.region == r])['share_pct']:.1f}"
            for r in args.regions)
        print(f"| {z:g} : {budget:g} % | {s['replays']} | {s['worse']} ({s['worse_over_1pct']}; "
              f"{s['worst_excess_pct']:.2f} %) | {s['share_pct']:.1f} % | {per_series} | "
              f"{s['ahead']} of {s['replays']} |", flush=True)
        print(f"  ({time.perf_counter() - began:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
