"""The no-regret rule's loss budget in a replay (gridshift/app/backtest/regret.py): the stake
comes from the jobs' energy at the intensity published before the replay, settled bets are
counted with the actual series once published, started and waiting bets per scenario. Built
on a synthetic replay: no shared data needed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from gridshift.app.backtest.config import BacktestConfig, TraceJob
from gridshift.app.backtest.context import Context, Ledger, Window
from gridshift.app.backtest.regret import RegretBudget, stake_kg
from gridshift.app.backtest.replay import replay

ORIGIN = datetime(2030, 1, 7, tzinfo=UTC)
HOURS = 48


def _job(name: str, first_h: int, hours: int, power_kw: float = 2.0) -> TraceJob:
    arrival = ORIGIN + timedelta(hours=first_h)
    return TraceJob(id=name, arrival=arrival, duration_minutes=60 * hours, gpus=1,
                    power_kw=power_kw, deadline=arrival + timedelta(hours=hours + 12),
                    arrival_h=float(first_h), first_h=first_h, duration_slots=hours,
                    deadline_h=first_h + hours + 12)


def _context(jobs: list[TraceJob]) -> Context:
    """Actual intensity 100 gCO2e/kWh by day (hours 6-17), 300 by night; 200 before."""
    hour_of_day = np.arange(HOURS) % 24
    actual = np.where((hour_of_day >= 6) & (hour_of_day < 18), 100.0, 300.0)
    cfg = BacktestConfig("TEST", date(2030, 1, 7), days=1, pue=1.5, actuals_delay_h=1)
    return Context(cfg, ORIGIN, HOURS, actual, jobs, capacity=8, past=np.full(21 * 24, 200.0))


def test_the_stake_is_the_jobs_energy_at_the_intensity_published_before() -> None:
    jobs = [_job("a", 0, 2), _job("b", 3, 4, power_kw=1.0)]
    ctx = _context(jobs)
    # (2 kW x 2 h + 1 kW x 4 h) x PUE 1.5 = 12 kWh at 200 g/kWh
    assert stake_kg(ctx) == pytest.approx(2.4)
    assert RegretBudget.for_replay(ctx, 0.5).budget_kg == pytest.approx(0.012)


def test_bets_in_play_settle_with_the_actuals_and_waiting_counts_per_scenario() -> None:
    """Decision at hour 10. Job a arrived at hour 0 (night, 300) and ran 6-8 (day, 100): its
    hours both ways are published by hour 9, so it settled: it saved 2 kW x 1.5 x 2 h x 200 g
    = 1.2 kg. Job b arrived at 5, started at 8 and runs to 12: hours 8, 9 published or
    carried (100), 10-11 from the scenarios. Job c arrived at 4 and still waits: its
    arrival hours 4-5 are night (300), now it would run 10-11."""
    a, b, c = _job("a", 0, 2), _job("b", 5, 4), _job("c", 4, 2, power_kw=1.0)
    ctx = _context([a, b, c])
    ledger = Ledger.empty(HOURS)
    ledger.commit(a, 6, ctx.cfg.pue)
    ledger.commit(b, 8, ctx.cfg.pue)
    window = Window(0, 10, 24, [c], np.full(24, 8), ledger=ledger)
    scenarios = np.stack([np.full((1, 24), 100.0), np.full((1, 24), 160.0)])   # [2, 1, 24]
    budget = RegretBudget.for_replay(ctx, 1.0)
    in_play = budget.in_play_kg(window, scenarios)
    assert budget.settled_kg == pytest.approx(1.2)
    # b: arrival hours 5 (night 300), 6-8 (day 100) -> 600 g; placed 8-11: 100 + 100 + 2 x s
    b_kg = 3.0 * (600.0 - (200.0 + 2 * np.array([100.0, 160.0]))) / 1000.0
    # c: arrival hours 4-5 (night 300 x 2); now 10-11: 2 x s
    c_kg = 1.5 * (600.0 - 2 * np.array([100.0, 160.0])) / 1000.0
    assert in_play == pytest.approx(1.2 + b_kg + c_kg)
    # A second call does not settle a twice.
    assert budget.in_play_kg(window, scenarios) == pytest.approx(in_play)
    assert budget.settled_kg == pytest.approx(1.2)
    # Only open bets are kept: a is settled and gone, b stays until its hours are published,
    # and a job committed later is read in at the next decision.
    assert list(budget._open) == ["b"]
    d = _job("d", 9, 1)
    ledger.commit(d, 12, ctx.cfg.pue)
    later = Window(1, 16, 24, [], np.full(24, 8), ledger=ledger)
    budget.in_play_kg(later, scenarios)
    # By hour 15 published: b (8-11, arrival 5-8) settles: 3 x (600 - 400) g; d (12, arrival 9)
    # settles: 3 x (100 - 100) g.
    assert list(budget._open) == [] and budget._read == 3
    assert budget.settled_kg == pytest.approx(1.2 + 0.6)


def test_the_budget_is_validated_before_the_replay_starts() -> None:
    for bad in (-1.0, float("nan")):
        cfg = BacktestConfig("TEST", date(2030, 1, 7), no_regret_budget_pct=bad)
        with pytest.raises(ValueError, match="no_regret_budget_pct"):
            replay(cfg, None)      # checked before the inputs are read


def test_the_rule_is_summed_up_alike_in_a_replay_and_a_sweep() -> None:
    from gridshift.app.backtest.config import no_regret_summary

    assert no_regret_summary(None, 1.0) == "off"
    assert no_regret_summary(2.0, 0.0) == "z 2"
    assert no_regret_summary(2.0, 1.0) == "z 2, loss budget 1 % of the stake"
    assert no_regret_summary(0.5, None) == "z 0.5"
