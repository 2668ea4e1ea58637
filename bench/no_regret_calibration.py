"""How sure is "sure"? The no-regret rule's scenarios against a year of actuals (issue 18).

The no-regret rule keeps a shift when its saving over the forecast scenarios has a mean of at
least ``z`` standard deviations (``t = mean / std >= z``). With calibrated scenarios and a
normal error, a bet at ``t >= 2`` loses in at most 2.3 % of cases, at ``t >= 3`` in 0.13 %.
This benchmark measures how often such bets lost on the actual intensity: for every series, a
year of weekly replays (the backtest's decision forecasts: synthetic vintages with seed
``--seeds``, pooled, blended with the published actuals, and their p10/p90 band), a decision every
``--every-h`` hours, and per decision a job of ``--hours`` hours that could run now (lead 0)
or at a later lead of 1..24 h:

- **every bet**: each later lead is one bet (run later instead of now);
- **the planner's bet**: the lead with the lowest forecast (the bet a planner makes: the
  lowest of many noisy hours is more often low by error than by fact).

Each bet's ``t`` is computed as the rule does, over ``--scenarios`` scenarios drawn from the
decision forecast's band (``forecasting.uncertainty.forecast_scenarios``: split normal through
p10/p50/p90 with the error model's AR(1) correlation), and it lost if the actual intensity
made running later dirtier. Printed per series: the share of bets lost among those at
``t >= 1, 2, 3`` (the normal's promise beside it), and the standard deviation of the actual
saving standardised by the scenarios' mean and std (1 where the band is calibrated overall),
and the smallest z (on a grid of 2 to 4 by 0.25) at which the planner's bets lost no more
often than a normal promises at z 2 (2.3 %): a z for ``gridshift backtest --no-regret-z`` on
that grid, chosen on one year and to be checked on the next.

Run: ``python bench/no_regret_calibration.py [--regions DE ...] [--seeds 0 1 2 3] [--hours 1 4]
[--start 2022-01-03] [--weeks 52]``.
Skipped, with a message, when ../shared/data (or $GRIDSHIFT_SHARED_DATA) is absent.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from gridshift.app import backtest
from gridshift.app.backtest.config import SLOT_MINUTES, BacktestError
from gridshift.app.backtest.context import Context, build_context
from gridshift.app.backtest.forecasts import DecisionForecast
from gridshift.app.backtest.replay import config_for
from gridshift.forecasting.series import Forecast
from gridshift.forecasting.uncertainty import forecast_scenarios

DATA = Path(os.environ.get("GRIDSHIFT_SHARED_DATA")
            or Path(__file__).resolve().parents[2] / "shared" / "data")
ALL_REGIONS = ("DE", "US-CAL-CISO", "US-MIDA-PJM", "US-MIDW-MISO", "US-NW-BPAT", "US-NY-NYIS",
               "US-TEX-ERCO")
MAX_LEAD_H = 24
T_LEVELS = (1.0, 2.0, 3.0)
#: The z whose promise a series' z is sought for, and the z tried for it.
PROMISE_Z = 2.0
Z_GRID = tuple(np.round(np.arange(2.0, 4.01, 0.25), 2))


@dataclass
class Bets:
    """Bets of one kind: their t (scenario mean / std of the saving) and actual saving."""

    t: list[float] = field(default_factory=list)
    actual: list[float] = field(default_factory=list)
    standardised: list[float] = field(default_factory=list)

    def add(self, saving_per_scenario: np.ndarray, actual_saving: float) -> None:
        mean, std = float(saving_per_scenario.mean()), float(saving_per_scenario.std())
        if std > 0:
            self.t.append(mean / std)
            self.actual.append(actual_saving)
            self.standardised.append((actual_saving - mean) / std)

    def lost_pct(self, z: float) -> tuple[int, float]:
        """(bets at t >= z, % of them that lost on actuals)."""
        t, actual = np.array(self.t), np.array(self.actual)
        sure = t >= z
        return int(sure.sum()), float(np.mean(actual[sure] < 0) * 100) if sure.any() else math.nan


def z_keeping_promise(bets: Bets, promise_z: float = PROMISE_Z) -> str:
    """The smallest z on :data:`Z_GRID` at which bets at ``t >= z`` lost no more often than a
    normal promises at ``promise_z`` (2.3 % at 2), with the bets it rests on."""
    promise = _normal_loss_pct(promise_z)
    for z in Z_GRID:
        count, lost = bets.lost_pct(z)
        if count and lost <= promise:
            return f"{z:g} ({count:,} bets)"
    return f"> {Z_GRID[-1]:g}"


def decision_scenarios(ctx: Context, seen: DecisionForecast, start_h: int, n: int,
                       seed: int) -> np.ndarray:
    """[n, hours] scenarios of the decision forecast ``seen`` at hour ``start_h``
    (gCO2e/kWh)."""
    forecast = Forecast(region=ctx.cfg.region, start=ctx.time(start_h),
                        slot_minutes=SLOT_MINUTES, carbon_intensity=tuple(seen.values),
                        carbon_intensity_p10=tuple(seen.p10),
                        carbon_intensity_p90=tuple(seen.p90), provider="backtest-forecast",
                        issued_at=ctx.time(start_h))
    return forecast_scenarios(forecast, n, seed)


def measure_week(ctx: Context, every_h: int, hours: int, n: int,
                 every: Bets, planner: Bets) -> None:
    """Add the bets of one replay week's decisions."""
    for k, start_h in enumerate(range(0, 7 * 24, every_h)):
        seen = ctx.decision_forecast(k, start_h)
        sc = decision_scenarios(ctx, seen, start_h, n, ctx.cfg.seed * 1_000 + k)
        leads = min(MAX_LEAD_H, sc.shape[1] - hours)
        if leads < 1:
            continue
        window = np.cumsum(np.concatenate([np.zeros((n, 1)), sc], axis=1), axis=1)
        per_lead = window[:, hours:hours + leads + 1] - window[:, :leads + 1]   # [n, lead]
        actual = np.cumsum(np.concatenate([[0.0], ctx.actual[start_h:]]))
        actual_per_lead = actual[hours:hours + leads + 1] - actual[:leads + 1]
        for lead in range(1, leads + 1):
            every.add(per_lead[:, 0] - per_lead[:, lead],
                      float(actual_per_lead[0] - actual_per_lead[lead]))
        forecast_sums = np.convolve(seen.values, np.ones(hours), mode="valid")[:leads + 1]
        best = 1 + int(np.argmin(forecast_sums[1:]))
        planner.add(per_lead[:, 0] - per_lead[:, best],
                    float(actual_per_lead[0] - actual_per_lead[best]))


def measure_series(region: str, seed: int, weeks: int, every_h: int, hours: int,
                   n: int, start: date = date(2022, 1, 3),
                   into: tuple[Bets, Bets] | None = None) -> int:
    """Add the bets of ``weeks`` weeks from ``start`` (moved into the series' year) of one
    series and forecast-error seed to ``into`` (every bet, the planner's bets); the weeks
    measured."""
    source = backtest.SeriesSource(region)
    inputs = backtest.data.load_inputs(source, backtest.TraceSource(), DATA)
    first = backtest.data.series_start(start, inputs.series)
    every, planner = into if into is not None else (Bets(), Bets())
    measured = 0
    for week in range(weeks):
        cfg = config_for(source, inputs, first + timedelta(days=7 * week), 7, seed=seed)
        try:
            ctx, _ = build_context(cfg, inputs)
        except BacktestError:
            continue             # the series ends, or no trace jobs that week
        measure_week(ctx, every_h, hours, n, every, planner)
        measured += 1
    return measured


def _normal_loss_pct(z: float) -> float:
    return 50.0 * math.erfc(z / math.sqrt(2.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", nargs="+", default=list(ALL_REGIONS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3],
                        help="forecast-error seeds, pooled (default 0 1 2 3: one seed's year "
                             "of bets is one draw of a slowly varying error, and the share "
                             "lost varies several-fold between seeds)")
    parser.add_argument("--start", type=date.fromisoformat, default=date(2022, 1, 3),
                        help="first Monday (moved into each series' year; default 2022-01-03)")
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--every-h", type=int, default=6)
    parser.add_argument("--hours", type=int, nargs="+", default=[1, 4],
                        help="job lengths in hours (default 1 and 4)")
    parser.add_argument("--scenarios", type=int, default=64)
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"skipped: no shared data at {DATA} (set GRIDSHIFT_SHARED_DATA)")
        return 0
    promise = " | ".join(f"{_normal_loss_pct(z):.2f} %" for z in T_LEVELS)
    head = " | ".join(f"t >= {z:g}" for z in T_LEVELS)
    seeds = " ".join(map(str, args.seeds))
    print(f"Share of bets lost on actuals, seeds {seeds} pooled, a decision every "
          f"{args.every_h} h, {args.scenarios} scenarios; a normal, calibrated band promises: "
          f"{promise}\n")
    print(f"| series | job | weeks | bets | every bet: {head} | planner's bet: {head} | "
          f"std of standardised saving | z keeping z {PROMISE_Z:g}'s promise (planner's bets) |")
    print("|---|---|---|---|" + "---|" * (2 * len(T_LEVELS)) + "---|---|")
    for region in args.regions:
        for hours in args.hours:
            every, planner, weeks = Bets(), Bets(), 0
            for seed in args.seeds:
                weeks += measure_series(region, seed, args.weeks, args.every_h, hours,
                                        args.scenarios, args.start, into=(every, planner))
            cells = [_cell(b, z) for b in (every, planner) for z in T_LEVELS]
            print(f"| {region} | {hours} h | {weeks} | {len(every.t):,} | " + " | ".join(cells)
                  + f" | {np.std(every.standardised):.2f} | {z_keeping_promise(planner)} |",
                  flush=True)
    return 0


def _cell(bets: Bets, z: float) -> str:
    count, lost = bets.lost_pct(z)
    return f"{lost:.1f} % of {count:,}" if count else "—"


if __name__ == "__main__":
    sys.exit(main())
