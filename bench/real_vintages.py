"""Backtests on a grid's real forecast vintages (issue 18), beside the synthetic error model.

The shared data holds one month of a grid signal together with the forecasts issued at the
time: WattTime's marginal MOER for CAISO_NORTH, 2023-06-08 .. 07-08, every 5 minutes, with a
forecast issued every 5 minutes for 5 to 65 minutes ahead (``vessim/watttime2023_casio-north
.zip``). This benchmark unpacks it into a temporary directory in the layouts ``gridshift
backtest`` reads (``--carbon-csv``: ``timestamp``, ``carbon_intensity``; ``--forecasts``:
``region``, ``valid_at``, ``value``, ``issued_at``), replays its whole weeks (from Monday
2023-06-12) twice with the same seeds, as two sweeps:

- **real vintages**: every forecast-driven policy plans on the latest values WattTime had
  issued by each decision, continued past their hour by the seasonal model of the actuals
  published by then (what ``gridshift backtest --forecasts`` does);
- **synthetic**: the same weeks on the calibrated synthetic error model, as the year-long
  sweeps of the built-in series use it;

and prints both aggregate tables, the targets' verdicts and the weeks side by side (share of
the perfect-foresight savings, emissions against run-now). Every reference is the offline
optimum (or its relaxation's bound) and every schedule passes the independent checker, as in
every backtest.

Run: ``python bench/real_vintages.py [--seeds 4] [--workers 2] [--no-ray] [-o DIR]``.
Skipped, with a message, when ../shared/data (or $GRIDSHIFT_SHARED_DATA) is absent.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import zipfile
from contextlib import nullcontext
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
from backtest_sweep import print_progress

from gridshift.app import backtest
from gridshift.app.backtest.sweep import ReplaySpec, SweepResult, ray_executor, run_sweep
from gridshift.app.backtest.sweep_report import format_sweep, write_sweep_outputs

DATA = Path(os.environ.get("GRIDSHIFT_SHARED_DATA")
            or Path(__file__).resolve().parents[2] / "shared" / "data")
ZIP = DATA / "vessim" / "watttime2023_casio-north.zip"
REGION = "CAISO_NORTH"
FIRST_MONDAY = date(2023, 6, 12)
TARGET_SHARE_PCT, MAX_WORSE_WEEKS_PCT, MAX_EXCESS_PCT, MIN_AHEAD_PCT = 90.0, 5.0, 1.0, 75.0


def unpack(zip_path: Path, out_dir: Path) -> tuple[Path, Path]:
    """The zip's actuals and forecasts as ``--carbon-csv`` and ``--forecasts`` files."""
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        actual_name = next(n for n in names if n.endswith("_actual.csv"))
        forecast_name = next(n for n in names if n.endswith("_forecast.csv"))
        with archive.open(actual_name) as handle:
            actual = pd.read_csv(handle)
        with archive.open(forecast_name) as handle:
            forecast = pd.read_csv(handle)
    carbon_csv, vintages_csv = out_dir / "caiso_north.csv", out_dir / "caiso_north_vintages.csv"
    actual.rename(columns={"point_time": "timestamp", "value": "carbon_intensity"}).to_csv(
        carbon_csv, index=False)
    pd.DataFrame({"region": REGION, "valid_at": forecast["point_time"],
                  "value": forecast["value"], "issued_at": forecast["generated_at"]}).to_csv(
        vintages_csv, index=False)
    return carbon_csv, vintages_csv


def mondays(series: pd.Series, days: int = 7) -> list[date]:
    """Mondays from FIRST_MONDAY whose week lies within the series (a replay whose deadlines
    run past its end is skipped by the sweep, which says so)."""
    end = series.index.max()
    weeks, day = [], FIRST_MONDAY
    while pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=days) <= end:
        weeks.append(day)
        day += timedelta(weeks=1)
    return weeks


def targets(name: str, result: SweepResult) -> str:
    """gridshift's measures against the issue's targets, one line."""
    gs = result.table.set_index("policy").loc["gridshift"]
    share, worse = gs["share_of_pf_pct"], gs["worse_than_run_now_pct"]
    excess, ahead = gs["worst_excess_pct"], gs["ahead_of_lowest_pct"]
    verdict = [("share", share >= TARGET_SHARE_PCT),
               ("regret", worse <= MAX_WORSE_WEEKS_PCT and excess <= MAX_EXCESS_PCT),
               ("lead", ahead >= MIN_AHEAD_PCT)]
    met = ", ".join(f"{what} {'MET' if ok else 'MISSED'}" for what, ok in verdict)
    return (f"{name}: gridshift share {share:.1f} %; worse than run-now in {worse:.1f} % of "
            f"replays (at most {excess:.2f} %); ahead of the lowest window in {ahead:.1f} %: "
            f"{met}")


def side_by_side(results: dict[str, SweepResult]) -> pd.DataFrame:
    """Per week and seed: each sweep's gridshift and lowest-window shares."""
    rows: dict[tuple[str, int], dict[str, object]] = {}
    for name, result in results.items():
        for replay in result.replays:
            if replay.get("skipped"):
                continue
            row = rows.setdefault((replay["start"], replay["seed"]),
                                  {"week": replay["start"], "seed": replay["seed"]})
            for policy in ("gridshift", "lowest-window"):
                share = replay["policies"][policy]["share_of_pf_savings_pct"]
                row[f"{name}: {policy} %"] = "-" if share is None else f"{share:.1f}"
    return pd.DataFrame(list(rows.values()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-ray", action="store_true", help="replays one after another")
    parser.add_argument("-o", "--output-dir", default="real-vintages")
    args = parser.parse_args()
    if not ZIP.exists():
        print(f"bench/real_vintages.py: skipped: no {ZIP}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        carbon_csv, vintages_csv = unpack(ZIP, Path(tmp))
        sources = {"real vintages": backtest.SeriesSource(REGION, str(carbon_csv),
                                                          str(vintages_csv)),
                   "synthetic": backtest.SeriesSource(REGION, str(carbon_csv), None)}
        trace = backtest.TraceSource()
        inputs = {name: {REGION: backtest.load_inputs(source, trace, DATA)}
                  for name, source in sources.items()}
        weeks = mondays(inputs["synthetic"][REGION].series)
        executor = nullcontext(None) if args.no_ray else ray_executor(None, args.workers)
        results: dict[str, SweepResult] = {}
        with executor as ray:
            for name, source in sources.items():
                specs = [ReplaySpec(source, week, seed) for week in weeks
                         for seed in range(args.seeds)]
                where = "one after another" if ray is None else ray.description
                print(f"{name}: {len(specs)} replays ({len(weeks)} weeks from "
                      f"{weeks[0]} x {args.seeds} seeds) {where}", file=sys.stderr, flush=True)
                run = {} if ray is None else {"executor": ray, "name": "ray",
                                              "workers": args.workers}
                results[name] = run_sweep(specs, inputs[name], on_replay=print_progress, **run)
    for name, result in results.items():
        print(f"\n## {REGION}, {name}\n{format_sweep(result)}")
        for path in write_sweep_outputs(result, Path(args.output_dir) / name.replace(" ", "-")):
            print(f"wrote {path}")
    print()
    for name, result in results.items():
        print(targets(name, result))
    print("\n" + side_by_side(results).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
