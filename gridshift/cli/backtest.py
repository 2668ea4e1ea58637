"""`gridshift backtest`: its options, the run per region with a progress bar, and exit codes."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

from gridshift.app.backtest.config import (
    FORECAST_MODELS,
    POLICIES,
    SERIES_YEAR,
    VINTAGES,
    BacktestError,
)
from gridshift.app.backtest.data import canonical_region
from gridshift.app.backtest.replay import run_backtest
from gridshift.app.backtest.report import describe, format_table, write_outputs
from gridshift.cli.common import settings_of
from gridshift.cli.flags import add_config_flag


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `gridshift backtest` options."""
    parser.add_argument("--region", action="append", metavar="REGION",
                        help="region (repeatable; default US-CAL-CISO and DE): "
                             f"{', '.join(SERIES_YEAR)} or the short name (CISO, ERCO, ...)")
    parser.add_argument("--start", type=date.fromisoformat, metavar="YYYY-MM-DD",
                        help="first day, moved by whole weeks into each series' year "
                             "(default 2022-10-24 for EIA regions, 2020-10-26 for DE)")
    parser.add_argument("--days", type=int, default=7, help="days of the trace (default 7)")
    parser.add_argument("--slack-hours", type=float, default=12.0,
                        help="deadline = arrival + duration + slack (default 12)")
    parser.add_argument("--time-limit", type=float, default=5.0, metavar="S",
                        help="solver time limit per window, seconds (default 5; perfect "
                             "foresight gets twice as long)")
    parser.add_argument("--seed", type=int, default=0, help="forecast-error and solver seed")
    parser.add_argument("--decision-hours", type=int, default=1,
                        help="hours between planning decisions (default 1)")
    parser.add_argument("--forecast-model", choices=tuple(FORECAST_MODELS),
                        default="average-ci", help="decision-time forecast error model")
    parser.add_argument("--vintages", choices=VINTAGES, default="evolving",
                        help="forecasts of successive decisions: one evolving history "
                             "(default) or independent errors per decision")
    parser.add_argument("--utilisation", type=float, default=0.9,
                        help="run-now peak demand / capacity (default 0.9)")
    parser.add_argument("--no-blend", dest="blend", action="store_false",
                        help="gridshift plans on the raw decision-time forecast instead of "
                             "blending it with the seasonal model of the actuals published "
                             "by then (forecasting.blend, the product's default)")
    parser.add_argument("--blend-others", action="store_true",
                        help="give the lowest-window and Let's-Wait-Awhile policies the same "
                             "blended forecast (to separate forecasting from joint planning)")
    add_config_flag(parser)
    parser.add_argument("-o", "--output-dir", default="backtest",
                        help="where the tables (CSV, Markdown) and charts go (default ./backtest)")


def run(args: argparse.Namespace) -> int:
    """Run the backtest per region, print the tables and write the outputs. Exit codes: 0 done,
    2 invalid options or data missing, 1 a schedule failed the checker."""
    data_dir = settings_of(args).shared_data_dir
    if not (data_dir / "philly-adaptdl" / "philly.csv").exists():
        print(f"gridshift backtest: the trace and carbon series are not under {data_dir} "
              "(set GRIDSHIFT_SHARED_DATA)", file=sys.stderr)
        return 2
    try:
        for region in [canonical_region(r) for r in (args.region or ["US-CAL-CISO", "DE"])]:
            _main_region(args, region, data_dir)
    except (ValueError, OSError) as exc:
        print(f"gridshift backtest: {exc}", file=sys.stderr)
        return 2
    except BacktestError as exc:
        print(f"gridshift backtest: {exc}", file=sys.stderr)
        return 1
    return 0


def _main_region(args: argparse.Namespace, region: str, data_dir: Path) -> None:
    options = {"decision_hours": getattr(args, "decision_hours", 1),
               "forecast_model": getattr(args, "forecast_model", "average-ci"),
               "utilisation": getattr(args, "utilisation", 0.9),
               "vintages": getattr(args, "vintages", "evolving"),
               "blend": getattr(args, "blend", True),
               "blend_others": getattr(args, "blend_others", False)}
    estimate = (len(POLICIES) - 1) * (args.days * 24 + 48) // options["decision_hours"]
    with _progress_bar(region, estimate) as tick:
        result = run_backtest(region, args.start, args.days, slack_h=args.slack_hours,
                              time_limit_s=args.time_limit, seed=args.seed,
                              data_dir=data_dir, on_window=tick, **options)
    print(describe(result))
    print(format_table(result))
    for path in write_outputs(result, args.output_dir):
        print(f"wrote {path}")
    print()


@contextlib.contextmanager
def _progress_bar(region: str, total: int) -> Iterator[Callable[[str], None]]:
    """A tqdm bar over decision windows when stderr is a terminal; silent otherwise."""
    if not sys.stderr.isatty():
        yield lambda policy: None
        return
    from tqdm import tqdm

    bar = tqdm(total=total, desc=f"backtest {region}", unit="window", file=sys.stderr,
               leave=False)

    def tick(policy: str) -> None:
        bar.set_postfix_str(policy, refresh=False)
        bar.update(1)

    try:
        yield tick
    finally:
        bar.close()
