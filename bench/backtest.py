"""Backtest benchmark: the policy comparison of `gridshift backtest` on a real week.

Prints, per region (default US-CAL-CISO and DE, the week of 2022-10-24 / 2020-10-26, i.e.
the Philly trace week of 2017-10-23), the table of gridshift.app.backtest: actual emissions per
policy, savings against run-now, the share of the perfect-foresight savings, late jobs, mean
wait and the wall time per planning window (mean and max). Then the shares with further
forecast-error seeds and a verdict on the target (gridshift >= 95 % of the perfect-foresight
savings and better than every other policy) on their mean, since one seed is one draw of the
forecast error; and, unless --no-sensitivity, what the forecast blend contributes (gridshift
on the raw forecast, and the lowest window given the blended forecast too, over the same seeds)
and what moves the figures: the seasonal-extension
error model (fitted on these very series) instead of the default average-CI model,
independent forecast vintages instead of one evolving history, decisions every 6 h instead of
every hour, and a tighter capacity (run-now peak at 200 % of capacity, so capacity binds).

Run: ``python bench/backtest.py [--regions US-CAL-CISO DE] [--days 7] [--time-limit 5]
[-o out/]``; ``--summary-regions US-CAL-CISO US-TEX-ERCO ... DE`` prints one line per region
instead (perfect-foresight savings, the shares of gridshift blended and raw and of the lowest
window, how often gridshift beats every other policy). Skipped, with a message, when
../shared/data (or $GRIDSHIFT_SHARED_DATA) is absent. Takes about 15 minutes on two cores (the
summary about 2 minutes per region). ``--lead-value`` prints instead, per region, gridshift's
share when its forecast is exact in the next 4 or 12 h or from 4 or 12 h ahead on (the value of
perfect information at those leads: where the forecast error costs).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from gridshift.app import backtest

TARGET_SHARE_PCT = 95.0
COMPARED = ("run-now", "lowest-window", "gridshift")   # the reference row is always there
DATA = Path(os.environ.get("GRIDSHIFT_SHARED_DATA")
            or Path(__file__).resolve().parents[2] / "shared" / "data")


def _share_row(result: backtest.BacktestResult) -> dict[str, float]:
    table = result.table.set_index("policy")
    return {"gridshift": float(table.loc["gridshift", "share_of_pf_pct"]),
            "lowest-window": float(table.loc["lowest-window", "share_of_pf_pct"]),
            "margin_kg": float(table.drop(index=["gridshift", "perfect-foresight"])
                               ["emissions_kg"].min() - table.loc["gridshift", "emissions_kg"])}


def _verdict(rows: list[dict[str, float]]) -> str:
    """The target on the mean over forecast-error seeds (one seed is one draw of the error)."""
    gs = [r["gridshift"] for r in rows]
    lw = [r["lowest-window"] for r in rows]
    margin = sum(r["margin_kg"] for r in rows) / len(rows)
    share = sum(gs) / len(gs)
    met = share >= TARGET_SHARE_PCT and margin > 0
    than = f"{margin:,.1f} kg less" if margin > 0 else f"{-margin:,.1f} kg more"
    wins = sum(r["margin_kg"] > 0 for r in rows)
    return (f"over {len(rows)} forecast-error seeds: gridshift {share:.1f} % of the "
            f"perfect-foresight savings (min {min(gs):.1f}, max {max(gs):.1f}), lowest-window "
            f"{sum(lw) / len(lw):.1f} % (min {min(lw):.1f}, max {max(lw):.1f}); gridshift emits "
            f"{than} than the best other policy on average and beats every other policy with "
            f"{wins} of {len(rows)} seeds\n"
            f"target {'MET' if met else 'NOT MET'}: mean share {share:.1f} % (target "
            f"{TARGET_SHARE_PCT:.0f} %) and {'less' if margin > 0 else 'not less'} than every "
            "other policy")


def _walls(result: backtest.BacktestResult) -> str:
    windows = result.windows
    parts = []
    for policy in ("gridshift",):
        wall = windows.loc[windows["policy"] == policy, "wall_s"]
        status = windows.loc[windows["policy"] == policy, "status"]
        parts.append(f"{policy} {wall.mean():.2f} s mean / {wall.max():.2f} s max over "
                     f"{len(wall)} windows ({(status == 'OPTIMAL').sum()} proven optimal)")
    return "wall time per planning window: " + "; ".join(parts)


def main_table(args: argparse.Namespace, region: str) -> None:
    began = time.perf_counter()
    result = backtest.run_backtest(
        region, data_dir=DATA, days=args.days, time_limit_s=args.time_limit,
        seed=args.seed)
    print(backtest.describe(result))
    print(backtest.format_table(result))
    print(_walls(result))
    print(f"({result.checks_passed} checker passes; {time.perf_counter() - began:.0f} s)")
    if args.output_dir:
        for path in backtest.write_outputs(result, args.output_dir):
            print(f"wrote {path}")
    rows = [_share_row(result)]
    for seed in range(args.seed + 1, args.seed + args.seeds):
        other = backtest.run_backtest(
            region, data_dir=DATA, days=args.days, time_limit_s=args.time_limit,
            seed=seed, policies=COMPARED)
        rows.append(_share_row(other))
        print(f"  forecast seed {seed}: gridshift {rows[-1]['gridshift']:5.1f} %, "
              f"lowest-window {rows[-1]['lowest-window']:5.1f} % of the PF savings")
    print(_verdict(rows))
    print()


def _shares(region: str, args: argparse.Namespace, **options) -> str:
    result = backtest.run_backtest(
        region, data_dir=DATA, days=args.days, time_limit_s=args.time_limit,
        policies=COMPARED, **options)
    table = result.table.set_index("policy")
    pf = table.loc["perfect-foresight", "savings_pct"]
    return (f"PF saves {pf:5.2f} %; share of PF: gridshift "
            f"{table.loc['gridshift', 'share_of_pf_pct']:5.1f} %, lowest-window "
            f"{table.loc['lowest-window', 'share_of_pf_pct']:5.1f} %; late jobs "
            f"{int(table.loc['gridshift', 'late_jobs'])} / "
            f"{int(table.loc['lowest-window', 'late_jobs'])}")


def _share(result: backtest.BacktestResult, policy: str) -> float:
    return float(result.table.set_index("policy").loc[policy, "share_of_pf_pct"])


def _spread(values: list[float]) -> str:
    return f"{sum(values) / len(values):5.1f} % ({min(values):.1f}-{max(values):.1f})"


def blend_contribution(args: argparse.Namespace, region: str) -> None:
    """What the forecast blend contributes, over the same seeds as the verdict: gridshift on
    the raw forecast, and the lowest window given the blended forecast too."""
    raw, lowest_blended, gridshift = [], [], []
    for seed in range(args.seed, args.seed + args.seeds):
        off = backtest.run_backtest(
            region, data_dir=DATA, days=args.days, time_limit_s=args.time_limit,
            seed=seed, policies=COMPARED, blend=False)
        both = backtest.run_backtest(
            region, data_dir=DATA, days=args.days, time_limit_s=args.time_limit,
            seed=seed, policies=COMPARED)
        raw.append(_share(off, "gridshift"))
        lowest_blended.append(_share(both, "lowest-window"))
        gridshift.append(_share(both, "gridshift"))
    print(f"{region}: the forecast blend, share of the PF savings over {args.seeds} seeds, "
          "mean (min-max)")
    print(f"  gridshift (blended forecast)             {_spread(gridshift)}")
    print(f"  gridshift on the raw forecast            {_spread(raw)}")
    print(f"  lowest-window (the same blended forecast) {_spread(lowest_blended)}")
    print()


#: (label, (first, end) lead hours from the decision, end exclusive) at which --lead-value
#: makes gridshift's forecast exact.
LEAD_BANDS = (("nowhere (the blended forecast)", None),
              ("the next 4 h", (0, 4)),
              ("the next 12 h", (0, 12)),
              ("from 4 h ahead on", (4, 10_000)),
              ("from 12 h ahead on", (12, 10_000)))


def lead_value(args: argparse.Namespace, region: str) -> None:
    """Where the forecast error costs: gridshift's share of the PF savings when its forecast is
    exact at some leads (the value of perfect information there), over the seeds."""
    print(f"{region}: gridshift with its forecast exact at some leads, share of the PF savings "
          f"over {args.seeds} seeds, mean (min-max)")
    for label, band in LEAD_BANDS:
        shares = [_share(backtest.run_backtest(
            region, days=args.days, time_limit_s=args.time_limit, seed=seed,
            policies=(backtest.REFERENCE_POLICY, "gridshift"),
            perfect_leads_h=band), "gridshift")
            for seed in range(args.seed, args.seed + args.seeds)]
        print(f"  exact {label:<31} {_spread(shares)}", flush=True)
    print()


def region_summary(args: argparse.Namespace, regions: list[str]) -> None:
    """One line per region over the verdict's seeds: perfect-foresight savings, gridshift's
    share (blended and raw forecast), the lowest window's, and how often gridshift beats every
    other policy."""
    print(f"share of the perfect-foresight savings over {args.seeds} seeds, mean (min-max)")
    print(f"{'region':<13} {'PF saves':>8}  {'gridshift':<21} {'gridshift, raw':<21} "
          f"{'lowest-window':<21} beats all")
    for region in regions:
        blended, raw, lowest, wins, pf = [], [], [], 0, 0.0
        for seed in range(args.seed, args.seed + args.seeds):
            on = backtest.run_backtest(
                region, data_dir=DATA, days=args.days, time_limit_s=args.time_limit,
                seed=seed, policies=backtest.DEFAULT_POLICIES)
            off = backtest.run_backtest(
                region, data_dir=DATA, days=args.days, time_limit_s=args.time_limit,
                seed=seed, policies=COMPARED, blend=False)
            row = _share_row(on)
            blended.append(row["gridshift"])
            lowest.append(row["lowest-window"])
            wins += row["margin_kg"] > 0
            raw.append(_share(off, "gridshift"))
            pf = float(on.table.set_index("policy").loc["perfect-foresight", "savings_pct"])
        print(f"{region:<13} {pf:7.2f} %  {_spread(blended):<21} {_spread(raw):<21} "
              f"{_spread(lowest):<21} {wins} of {args.seeds}", flush=True)
    print()


def sensitivity(args: argparse.Namespace, region: str) -> None:
    print(f"{region}: sensitivity (run-now, lowest-window, gridshift, perfect foresight)")
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
    parser.add_argument("--seed", type=int, default=0, help="first forecast-error seed")
    parser.add_argument("--seeds", type=int, default=4,
                        help="forecast-error seeds the verdict averages over (default 4)")
    parser.add_argument("--no-sensitivity", action="store_true")
    parser.add_argument("--lead-value", action="store_true",
                        help="instead of the tables: gridshift with its forecast exact at some "
                             "leads, i.e. where the forecast error costs (about 7 minutes per "
                             "region)")
    parser.add_argument("--summary-regions", nargs="+", metavar="REGION",
                        help="instead of the tables: one summary line per region (e.g. all "
                             "seven series), over the same seeds")
    parser.add_argument("-o", "--output-dir", help="also write tables and charts here")
    args = parser.parse_args()
    data_dir = DATA
    if not (data_dir / "philly-adaptdl" / "philly.csv").exists():
        print(f"bench/backtest.py: skipped: trace and carbon series not found under {data_dir} "
              "(only present in the development tree; set GRIDSHIFT_SHARED_DATA)")
        return 0
    began = time.perf_counter()
    if args.summary_regions:
        region_summary(args, args.summary_regions)
        print(f"total {time.perf_counter() - began:.0f} s")
        return 0
    if args.lead_value:
        for region in args.regions:
            lead_value(args, region)
        print(f"total {time.perf_counter() - began:.0f} s")
        return 0
    for region in args.regions:
        main_table(args, region)
    if not args.no_sensitivity:
        for region in args.regions:
            blend_contribution(args, region)
            sensitivity(args, region)
    print(f"total {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
