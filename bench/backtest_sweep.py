"""Backtest sweep benchmark (issue 18): weekly replays over many series and seeds on Ray, the
aggregate table with the targets' verdicts, and the Ray overhead.

Run: ``python bench/backtest_sweep.py [--regions US-CAL-CISO DE ...] [--weeks 13]
[--every 1] [--seeds 4] [--workers 2] [-o out/]``: replays ``--weeks`` weeks (every
``--every``-th week from each series' first Monday in January, or from ``--start``) x seeds
per series on a local Ray cluster started for the run (``--ray-address`` for another), prints
the aggregate table and, per series, the targets: gridshift >= 90 % of the perfect-foresight
savings in aggregate; worse than run-now in <= 5 % of weeks and never by more than 1 %; ahead
of the per-job lowest window (same forecast) in >= 75 % of weeks.

``--merge DIR [DIR ...]``: instead, merges sweeps already run in parts (each DIR holds a
``sweep.json``, e.g. a year run one series at a time with ``gridshift backtest --weeks 52``)
into one aggregate table, chart and the targets' verdicts, written to ``-o``.

``--overhead N``: instead, runs the same N replays one after another in this process, then on
a local Ray cluster with 1 and with 2 workers, and prints the wall times, the overhead of
Ray with one worker against the sequential run, and the throughput (replays per minute); the
numbers of the three runs are compared (they must be equal). Skipped, with a message, when
../shared/data (or $GRIDSHIFT_SHARED_DATA) is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from gridshift.app import backtest
from gridshift.app.backtest.sweep import ReplaySpec, merge_sweeps, ray_executor, run_sweep
from gridshift.app.backtest.sweep_report import format_sweep, write_sweep_outputs

DATA = Path(os.environ.get("GRIDSHIFT_SHARED_DATA")
            or Path(__file__).resolve().parents[2] / "shared" / "data")
ALL_REGIONS = ("US-CAL-CISO", "US-TEX-ERCO", "US-MIDA-PJM", "US-NW-BPAT", "US-NY-NYIS",
               "US-MIDW-MISO", "DE")
TARGET_SHARE_PCT, MAX_WORSE_WEEKS_PCT, MAX_EXCESS_PCT, MIN_AHEAD_PCT = 90.0, 5.0, 1.0, 75.0


def _first_monday(year: int) -> date:
    day = date(year, 1, 1)
    return day + timedelta(days=(7 - day.weekday()) % 7)


def plan(regions: list[str], inputs: dict, weeks: int, every: int, seeds: int,
         start: date | None, **settings) -> list[ReplaySpec]:
    """Weekly replays: ``weeks`` weeks, every ``every``-th, per region and seed."""
    frozen = tuple(sorted(settings.items()))
    specs = []
    for region in regions:
        source = backtest.SeriesSource(region)
        first = backtest.data.series_start(start, inputs[region].series) if start else \
            _first_monday(backtest.SERIES_YEAR[region])
        for k in range(weeks):
            day = first + timedelta(weeks=k * every)
            specs += [ReplaySpec(source, day, seed, 7, frozen) for seed in range(seeds)]
    return specs


def verdicts(table: pd.DataFrame) -> list[str]:
    """Per region: the targets met or missed."""
    out = []
    rows = table.set_index(["region", "policy"])
    for region in dict.fromkeys(table["region"]):
        gs = rows.loc[(region, "gridshift")]
        share_ok = gs["share_of_pf_pct"] >= TARGET_SHARE_PCT
        worse_ok = gs["worse_than_run_now_pct"] <= MAX_WORSE_WEEKS_PCT and \
            gs["worst_excess_pct"] <= MAX_EXCESS_PCT
        ahead_ok = gs["ahead_of_lowest_pct"] >= MIN_AHEAD_PCT
        out.append(
            f"{region}: share {gs['share_of_pf_pct']:.1f} % {'MET' if share_ok else 'MISSED'}; "
            f"worse than run-now in {gs['worse_than_run_now_pct']:.1f} % of weeks, at most "
            f"{gs['worst_excess_pct']:.2f} % {'MET' if worse_ok else 'MISSED'}; ahead of the "
            f"lowest window in {gs['ahead_of_lowest_pct']:.1f} % "
            f"{'MET' if ahead_ok else 'MISSED'}")
    return out


def print_progress(done: int, total: int, summary: dict) -> None:
    """One line on stderr per finished replay (a sweep's ``on_replay``)."""
    if summary.get("skipped"):
        print(f"[{done}/{total}] {summary['label']}: skipped ({summary['skipped']})",
              file=sys.stderr, flush=True)
        return
    share = summary["policies"]["gridshift"]["share_of_pf_savings_pct"]
    text = "-" if share is None else f"{share:.1f} %"
    print(f"[{done}/{total}] {summary['label']}: gridshift {text} ({summary['wall_s']:.1f} s)",
          file=sys.stderr, flush=True)


def overhead(specs: list[ReplaySpec], inputs: dict) -> None:
    """Sequential vs Ray with 1 and 2 workers on the same replays."""
    runs = {}
    began = time.perf_counter()
    runs["sequential"] = run_sweep(specs, inputs)
    runs["sequential"].wall_s = time.perf_counter() - began
    for workers in (1, 2):
        began = time.perf_counter()          # the cluster's start counts
        with ray_executor(None, workers) as executor:
            result = run_sweep(specs, inputs, executor, name="ray", workers=workers)
        result.wall_s = time.perf_counter() - began
        runs[f"ray, {workers} worker(s)"] = result
    base = runs["sequential"]
    for name, result in runs.items():
        same = all(a["policies"][p]["emissions_kg"] == b["policies"][p]["emissions_kg"]
                   for a, b in zip(base.replays, result.replays, strict=True)
                   for p in a.get("policies", {}))
        print(f"{name:<22} {result.wall_s:7.1f} s  {result.throughput_per_min:6.2f} replays/min"
              f"  overhead vs sequential {100 * (result.wall_s / base.wall_s - 1):+6.1f} %"
              f"  same numbers: {same}")


def merge(directories: list[str], output_dir: str) -> int:
    """One table, chart and verdicts of sweeps run in parts."""
    documents = [json.loads((Path(d) / "sweep.json").read_text(encoding="utf-8"))
                 for d in directories]
    result = merge_sweeps(documents)
    print(format_sweep(result))
    for line in verdicts(result.table):
        print(line)
    for path in write_sweep_outputs(result, output_dir):
        print(f"wrote {path}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", nargs="+", default=list(ALL_REGIONS))
    parser.add_argument("--weeks", type=int, default=13)
    parser.add_argument("--every", type=int, default=1, help="every N-th week")
    parser.add_argument("--start", type=date.fromisoformat)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ray-address")
    parser.add_argument("--no-regret-z", help="gridshift's no-regret z, or off (default: the "
                        "backtest's default)")
    parser.add_argument("--compare-z", metavar="Z|off",
                        help="then the same replays with gridshift at this z (run-now, "
                             "lowest-window and gridshift only)")
    parser.add_argument("--overhead", type=int, metavar="N",
                        help="measure the Ray overhead on N replays instead")
    parser.add_argument("--merge", nargs="+", metavar="DIR",
                        help="merge the sweep.json of sweeps run in parts instead")
    parser.add_argument("-o", "--output-dir", default="backtest-sweep")
    args = parser.parse_args()
    if args.merge:
        return merge(args.merge, args.output_dir)
    if not (DATA / "philly-adaptdl" / "philly.csv").exists():
        print(f"bench/backtest_sweep.py: skipped: no shared data under {DATA}")
        return 0
    trace = backtest.TraceSource()
    inputs = {r: backtest.load_inputs(backtest.SeriesSource(r), trace, DATA)
              for r in args.regions}
    settings = {} if args.no_regret_z is None else {
        "no_regret_z": None if args.no_regret_z == "off" else float(args.no_regret_z)}
    specs = plan(args.regions, inputs, args.weeks, args.every, args.seeds, args.start,
                 **settings)
    if args.overhead:
        overhead(specs[:args.overhead], inputs)
        return 0
    variant = None
    if args.compare_z is not None:
        z = None if args.compare_z == "off" else float(args.compare_z)
        variant = plan(args.regions, inputs, args.weeks, args.every, args.seeds, args.start,
                       no_regret_z=z, policies=("run-now", "lowest-window", "gridshift"))
    with ray_executor(args.ray_address, args.workers) as executor:
        print(f"{len(specs)} replays on {executor.description}", file=sys.stderr, flush=True)
        result = run_sweep(specs, inputs, executor, name="ray", workers=args.workers,
                           on_replay=print_progress)
        print(format_sweep(result), flush=True)
        for line in verdicts(result.table):
            print(line, flush=True)
        for path in write_sweep_outputs(result, args.output_dir):
            print(f"wrote {path}", flush=True)
        if variant:
            print(f"\nthe same replays with gridshift at no-regret z {args.compare_z}:",
                  flush=True)
            other = run_sweep(variant, inputs, executor, name="ray", workers=args.workers,
                              on_replay=print_progress)
            print(format_sweep(other))
            for line in verdicts(other.table):
                print(line)
            for path in write_sweep_outputs(other, Path(args.output_dir) / "compare-z"):
                print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
