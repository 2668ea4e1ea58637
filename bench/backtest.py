"""Backtest benchmark: the policy comparison of `gridshift backtest` on a real week.

Prints, per region (default US-CAL-CISO and DE, the week of 2022-10-24 / 2020-10-26, i.e.
the Philly trace week of 2017-10-23), the table of gridshift.backtest: actual emissions per
policy, savings against run-now, the share of the perfect-foresight savings, late jobs, mean
wait and the wall time per planning window (mean and max). Then a verdict on the target
(gridshift >= 95 % of the perfect-foresight savings and better than every other policy) and,
unless --no-sensitivity, what moves it: other forecast-error seeds, the seasonal-extension
error model (fitted on these very series) instead of the default average-CI model,
independent forecast vintages instead of one evolving history, decisions every 6 h instead of
every hour, and a tighter capacity (run-now peak at 200 % of capacity, so capacity binds).

Run: ``python bench/backtest.py [--regions US-CAL-CISO DE] [--days 7] [--time-limit 5]
[-o out/]``. Skipped, with a message, when ../shared/data (or $GRIDSHIFT_SHARED_DATA) is
absent. Takes about 5-10 minutes on two cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gridshift import backtest  # noqa: E402

TARGET_SHARE_PCT = 95.0
COMPARED = ("run-now", "lowest-window", "gridshift", "perfect-foresight")


def _verdict(result: backtest.BacktestResult) -> str:
    table = result.table.set_index("policy")
    share = table.loc["gridshift", "share_of_pf_pct"]
    others = table.drop(index=["gridshift", "perfect-foresight"])["emissions_kg"]
    margin = others.min() - table.loc["gridshift", "emissions_kg"]
    best = others.idxmin()
    met = share >= TARGET_SHARE_PCT and margin > 0
    than = f"{margin:,.1f} kg less" if margin > 0 else f"{-margin:,.1f} kg more"
    return (f"target {'MET' if met else 'NOT MET'}: gridshift reaches {share:.1f} % of the "
            f"perfect-foresight savings (target {TARGET_SHARE_PCT:.0f} %) and emits {than} "
            f"than the best other policy ({best})")


def _walls(result: backtest.BacktestResult) -> str:
    windows = result.windows
    parts = []
    for policy in ("gridshift", "perfect-foresight"):
        wall = windows.loc[windows["policy"] == policy, "wall_s"]
        status = windows.loc[windows["policy"] == policy, "status"]
        parts.append(f"{policy} {wall.mean():.2f} s mean / {wall.max():.2f} s max over "
                     f"{len(wall)} windows ({(status == 'OPTIMAL').sum()} proven optimal)")
    return "wall time per planning window: " + "; ".join(parts)


def main_table(args: argparse.Namespace, region: str) -> None:
    began = time.perf_counter()
    result = backtest.run_backtest(region, days=args.days, time_limit_s=args.time_limit,
                                   seed=args.seed)
    print(backtest.describe(result))
    print(backtest.format_table(result))
    print(_walls(result))
    print(_verdict(result))
    print(f"({result.checks_passed} checker passes; {time.perf_counter() - began:.0f} s)")
    if args.output_dir:
        for path in backtest.write_outputs(result, args.output_dir):
            print(f"wrote {path}")
    print()


def _shares(region: str, args: argparse.Namespace, **options) -> str:
    result = backtest.run_backtest(region, days=args.days, time_limit_s=args.time_limit,
                                   policies=COMPARED, **options)
    table = result.table.set_index("policy")
    pf = table.loc["perfect-foresight", "savings_pct"]
    return (f"PF saves {pf:5.2f} %; share of PF: gridshift "
            f"{table.loc['gridshift', 'share_of_pf_pct']:5.1f} %, lowest-window "
            f"{table.loc['lowest-window', 'share_of_pf_pct']:5.1f} %; late jobs "
            f"{int(table.loc['gridshift', 'late_jobs'])} / "
            f"{int(table.loc['lowest-window', 'late_jobs'])}")


def sensitivity(args: argparse.Namespace, region: str) -> None:
    print(f"{region}: sensitivity (run-now, lowest-window, gridshift, perfect foresight)")
    for seed in range(args.seed + 1, args.seed + 4):
        print(f"  forecast seed {seed:<3}                   {_shares(region, args, seed=seed)}")
    print(f"  seasonal-extension error model     "
          f"{_shares(region, args, seed=args.seed, forecast_model='seasonal-extension')}")
    print(f"  independent forecast vintages      "
          f"{_shares(region, args, seed=args.seed, vintages='independent')}")
    print(f"  decisions every 6 h                "
          f"{_shares(region, args, seed=args.seed, decision_hours=6)}")
    print(f"  capacity: run-now peak at 200 %    "
          f"{_shares(region, args, seed=args.seed, utilisation=2.0)}")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", nargs="+", default=["US-CAL-CISO", "DE"])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--time-limit", type=float, default=5.0, metavar="S",
                        help="gridshift's time limit per window (perfect foresight: twice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-sensitivity", action="store_true")
    parser.add_argument("-o", "--output-dir", help="also write tables and charts here")
    args = parser.parse_args()
    data_dir = backtest.shared_data_dir()
    if not (data_dir / "philly-adaptdl" / "philly.csv").exists():
        print(f"bench/backtest.py: skipped: trace and carbon series not found under {data_dir} "
              "(only present in the development tree; set GRIDSHIFT_SHARED_DATA)")
        return 0
    began = time.perf_counter()
    for region in args.regions:
        main_table(args, region)
    if not args.no_sensitivity:
        for region in args.regions:
            sensitivity(args, region)
    print(f"total {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
