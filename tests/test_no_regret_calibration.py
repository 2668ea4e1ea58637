"""bench/no_regret_calibration.py: how often a bet the no-regret rule's scenarios call sure
loses on the actual intensity."""

from __future__ import annotations

import sys
from datetime import date

import numpy as np
import pytest
from conftest import PROJECT_ROOT, SHARED_DATA, needs_shared_data

sys.path.insert(0, str(PROJECT_ROOT / "bench"))
import no_regret_calibration as calibration  # noqa: E402


def test_a_bet_counts_by_its_t_and_loses_by_the_actual_saving() -> None:
    bets = calibration.Bets()
    rng = np.random.default_rng(0)
    bets.add(10.0 + rng.normal(size=64), actual_saving=-1.0)     # t about 10, lost
    bets.add(1.5 + rng.normal(size=64), actual_saving=2.0)       # t about 1.5, won
    bets.add(np.full(64, 3.0), actual_saving=-5.0)               # no spread: no t, left out
    assert len(bets.t) == 2
    assert bets.lost_pct(3.0) == (1, 100.0)
    assert bets.lost_pct(1.0) == (2, 50.0)
    assert bets.lost_pct(20.0)[0] == 0


def test_a_week_of_decisions_yields_every_lead_with_its_actual_saving(monkeypatch) -> None:
    needs_shared_data()
    monkeypatch.setattr(calibration, "DATA", SHARED_DATA)
    from gridshift.app import backtest
    from gridshift.app.backtest.context import build_context
    from gridshift.app.backtest.replay import config_for

    source = backtest.SeriesSource("DE")
    inputs = backtest.data.load_inputs(source, backtest.TraceSource(), SHARED_DATA)
    first = backtest.data.series_start(date(2022, 3, 7), inputs.series)
    ctx, _ = build_context(config_for(source, inputs, first, 7, seed=3), inputs)
    every, planner = calibration.Bets(), calibration.Bets()
    calibration.measure_week(ctx, every_h=24, hours=2, n=32, every=every, planner=planner)
    expected = [ctx.actual[h:h + 2].sum() - ctx.actual[h + lead:h + lead + 2].sum()
                for h in range(0, 7 * 24, 24) for lead in range(1, calibration.MAX_LEAD_H + 1)]
    assert len(every.actual) == len(expected) == 7 * 24      # the band is never flat here
    assert every.actual == pytest.approx(expected)
    assert len(planner.t) == 7 and set(planner.actual) <= set(every.actual)
    assert np.isfinite(every.t).all()


def test_the_z_keeping_the_promise_is_the_smallest_on_the_grid_that_does() -> None:
    bets = calibration.Bets()
    bets.t, bets.actual = [2.1, 2.2, 2.6, 3.1, 3.2], [-1.0, 1.0, -1.0, 1.0, 2.0]
    assert calibration.z_keeping_promise(bets) == "2.75 (2 bets)"     # none lost from 2.75
    bets.actual[-1] = -1.0                   # from 3, one of two lost; above 3.2, no bets
    assert calibration.z_keeping_promise(bets) == "> 4"
