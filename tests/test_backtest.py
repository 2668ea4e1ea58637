"""`gridshift backtest` on a small slice of the real trace and carbon series: every policy's
schedules pass the independent checker, perfect foresight is the lowest, run-now and FIFO keep
their definitions, and the outputs are written. Skipped when ../shared/data is absent."""

from __future__ import annotations

import argparse
import os
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gridshift.app import backtest
from gridshift.app.backtest.context import build_context
from gridshift.app.backtest.forecasts import DecisionForecasts
from gridshift.forecasting.blend import HISTORY_DAYS

DATA = Path(os.environ.get("GRIDSHIFT_SHARED_DATA")
            or Path(__file__).resolve().parents[2] / "shared" / "data")
REGION = "US-CAL-CISO"


@pytest.fixture(scope="module")
def data_dir() -> Path:
    if not (DATA / "philly-adaptdl" / "philly.csv").exists():
        reason = f"shared data not available: {DATA} (only present in the development tree)"
        print(reason)
        pytest.skip(reason)
    return DATA


def _inputs(data_dir: Path) -> backtest.ReplayInputs:
    return backtest.load_inputs(backtest.SeriesSource(REGION), backtest.TraceSource(), data_dir)


def _run(data_dir: Path, **options) -> backtest.BacktestResult:
    settings = {"days": 1, "time_limit_s": 1.0, "seed": 3, "max_jobs": 24, **options}
    return backtest.run_backtest(REGION, date(2022, 10, 25), data_dir=data_dir, **settings)


@pytest.fixture(scope="module")
def default_result(data_dir: Path) -> backtest.BacktestResult:
    """Default capacity sizing and cadence on 24 jobs spread over one day."""
    return _run(data_dir)


@pytest.fixture(scope="module")
def ample_result(data_dir: Path) -> backtest.BacktestResult:
    """Hourly decisions and capacity for every job at once: nothing ever waits for GPUs."""
    probe = _run(data_dir, policies=("run-now",))
    total_gpus = sum(j.gpus for j in probe.jobs)
    return _run(data_dir, decision_hours=1, capacity_gpus=total_gpus)


def test_every_schedule_passes_the_checker(default_result: backtest.BacktestResult) -> None:
    result = default_result
    windows = result.windows
    # one check per decision window (run-now: its one global plan) plus one final check each
    windowed = int((windows["policy"] != "run-now").sum())
    assert result.checks_passed == windowed + len(backtest.DEFAULT_POLICIES)
    assert list(result.table["policy"]) == [*backtest.DEFAULT_POLICIES, backtest.PF_ROW]
    energy = result.table["energy_kwh"]                   # the same jobs everywhere
    assert energy.to_numpy() == pytest.approx([energy.iloc[0]] * len(energy), rel=1e-12)
    assert result.starts.notna().all().all()
    for policy in backtest.DEFAULT_POLICIES:
        assert set(windows.loc[windows["policy"] == policy, "jobs"]).isdisjoint({0})


def test_jobs_start_after_arrival_and_at_most_capacity(
        default_result: backtest.BacktestResult) -> None:
    result = default_result
    arrivals = {j.id: j.arrival for j in result.jobs}
    for policy in backtest.DEFAULT_POLICIES:
        for job_id, start in result.starts[policy].items():
            assert start >= arrivals[job_id]
    gridshift = result.table.set_index("policy").loc["gridshift"]
    assert gridshift["late_jobs"] == 0
    assert gridshift["windows"] >= 1 and gridshift["wall_s_per_window_max"] > 0


def test_tight_capacity_and_short_slack_are_checked(data_dir: Path) -> None:
    """Capacity at a third of the run-now peak and 2 h of slack: jobs run late; every policy's
    windows still pass the checker (late jobs with relaxed deadlines) and lateness is counted
    against the real deadlines."""
    result = _run(data_dir, utilisation=3.0, slack_h=2.0)
    table = result.table.set_index("policy")
    assert table["late_jobs"].max() > 0
    deadlines = {j.id: (j.deadline, j.duration_slots) for j in result.jobs}
    for policy in backtest.DEFAULT_POLICIES:
        late = sum(start + pd.Timedelta(hours=deadlines[job][1]) > deadlines[job][0]
                   for job, start in result.starts[policy].items())
        assert late == table.loc[policy, "late_jobs"], policy


def test_perfect_foresight_is_lowest(ample_result: backtest.BacktestResult) -> None:
    emissions = ample_result.table.set_index("policy")["emissions_kg"]
    best = emissions["perfect-foresight"]
    for policy, value in emissions.items():
        assert best <= value * (1 + 1e-3) + 1e-9, policy
    assert emissions["gridshift"] < emissions["run-now"]
    share = ample_result.table.set_index("policy")["share_of_pf_pct"]
    assert share["perfect-foresight"] == pytest.approx(100.0)


def test_fifo_hourly_equals_run_now(data_dir: Path) -> None:
    """Run-now is FIFO by arrival; FIFO planned every hour is the same schedule, also when
    capacity binds (run-now peak at 150 % of capacity)."""
    result = _run(data_dir, decision_hours=1, utilisation=1.5, max_jobs=40,
                  policies=("run-now", "fifo"))
    waits = result.starts["run-now"] - pd.Series({j.id: j.arrival for j in result.jobs})
    assert waits.max() > pd.Timedelta(hours=1)            # capacity did bind
    pd.testing.assert_series_equal(result.starts["run-now"], result.starts["fifo"],
                                   check_names=False)
    emissions = result.table.set_index("policy")["emissions_kg"]
    assert emissions["fifo"] == pytest.approx(emissions["run-now"], rel=1e-12)


def test_trace_is_moved_by_whole_weeks(default_result: backtest.BacktestResult) -> None:
    result = default_result
    assert result.trace_start == date(2017, 10, 24)
    assert (result.config.start - result.trace_start).days % 7 == 0
    assert backtest.default_start("CISO") == date(2022, 10, 24)
    assert backtest.default_start("de").weekday() == date(2017, 10, 23).weekday()
    for job in result.jobs:
        assert job.power_kw == pytest.approx(0.7 * job.gpus)
        assert 30 <= job.duration_minutes <= 24 * 60


def test_outputs_are_written(default_result: backtest.BacktestResult, tmp_path: Path) -> None:
    from matplotlib.image import imread

    paths = backtest.write_outputs(default_result, tmp_path)
    assert [p.suffix for p in paths] == [".csv", ".md", ".png"]
    table = pd.read_csv(paths[0])
    assert list(table["policy"]) == [*backtest.DEFAULT_POLICIES, backtest.PF_ROW]
    assert "| gridshift |" in paths[1].read_text(encoding="utf-8")
    image = imread(paths[2])
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_cli_entry_point(data_dir: Path, tmp_path: Path, capsys,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    from gridshift.cli.backtest import add_arguments, run

    monkeypatch.setenv("GRIDSHIFT_SHARED_DATA", str(data_dir))
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--region", "ciso", "--days", "1", "--start", "2022-10-27",
                              "--time-limit", "1", "-o", str(tmp_path)])
    assert run(args) == 0
    out = capsys.readouterr().out
    assert "perfect-foresight" in out and "wall_s_per_window_mean" in out
    assert "every forecast-driven policy alike" in out and "blended with the seasonal" in out
    assert (tmp_path / "backtest-US-CAL-CISO-2022-10-27.png").exists()
    assert not parser.parse_args(["--no-blend"]).blend
    bad = parser.parse_args(["--region", "nowhere"])
    assert run(bad) == 2


def test_forecast_vintages_evolve_or_are_drawn_afresh(data_dir: Path) -> None:
    """Evolving vintages: the forecasts of one valid hour issued an hour apart differ by one
    small innovation; independent vintages differ by a whole fresh error."""
    spreads = {}
    for vintages in backtest.VINTAGES:
        cfg = backtest.BacktestConfig(REGION, date(2022, 10, 25), days=1, seed=3, max_jobs=24,
                                      decision_hours=1, vintages=vintages)
        ctx, _ = build_context(cfg, _inputs(data_dir))
        first, second = ctx.forecast(5, 5), ctx.forecast(6, 6)
        np.testing.assert_array_equal(first, ctx.forecast(5, 5))     # cached, deterministic
        # Hours 6 .. 30: leads 1..25 in the first vintage, 0..24 in the second.
        spreads[vintages] = np.std(np.log(first[1:26] / second[:25]))
        assert (first > 0).all() and len(first) == ctx.total_h - 5
    assert spreads["evolving"] < 0.5 * spreads["independent"]


def test_unknown_vintages_option_is_refused(data_dir: Path) -> None:
    with pytest.raises(ValueError, match="vintages"):
        _run(data_dir, vintages="psychic")


def test_gridshift_plans_on_the_forecast_blended_with_published_actuals(data_dir: Path) -> None:
    """gridshift's decision-time series is the forecast blended with the seasonal model of
    the actuals published by then (one hour's delay): closer to the actual series than the raw
    forecast, unchanged by anything after the decision, and off with ``blend=False``."""
    cfg = backtest.BacktestConfig(REGION, date(2022, 10, 25), days=1, seed=3, max_jobs=24)
    ctx, _ = build_context(cfg, _inputs(data_dir))
    assert len(ctx.past) == HISTORY_DAYS * 24 and np.isfinite(ctx.past).all()
    raw_error, blend_error = [], []
    for k in range(0, 48, 6):
        raw, blended = ctx.forecast(k, k), ctx.product_forecast(k, k)
        truth = ctx.actual[k:]
        raw_error.append(np.sqrt(np.mean(np.log(raw[:24] / truth[:24]) ** 2)))
        blend_error.append(np.sqrt(np.mean(np.log(blended[:24] / truth[:24]) ** 2)))
        # The actual of the hour before the decision is not yet published: changing it does
        # not change the decision's series; changing the hour before that does.
        for hour, same in ((k - 1, True), (k - 2, False)):
            if hour < 0:
                continue
            changed = ctx.actual.copy()
            changed[hour] *= 3.0
            moved = DecisionForecasts(cfg, ctx.origin, changed, ctx.past).decision(k, k).values
            assert np.allclose(moved, blended) == same, (k, hour)
    assert np.mean(blend_error) < np.mean(raw_error)
    off = backtest.BacktestConfig(REGION, date(2022, 10, 25), days=1, seed=3, max_jobs=24,
                                  blend=False)
    ctx_off, _ = build_context(off, _inputs(data_dir))
    np.testing.assert_array_equal(ctx_off.product_forecast(5, 5), ctx_off.forecast(5, 5))


def test_perfect_leads_make_gridshift_forecast_exact_there_only(data_dir: Path) -> None:
    """The lead-value diagnostic: with ``perfect_leads_h=(2, 6)`` gridshift's series is the
    actual intensity 2..5 h ahead and the blended forecast everywhere else; a perfect forecast
    at every lead reproduces perfect foresight; an empty band is refused."""
    base = dict(region=REGION, start=date(2022, 10, 25), days=1, seed=3, max_jobs=24)
    ctx, _ = build_context(backtest.BacktestConfig(**base), _inputs(data_dir))
    exact, _ = build_context(backtest.BacktestConfig(**base, perfect_leads_h=(2, 6)),
                             _inputs(data_dir))
    blended, diagnostic = ctx.product_forecast(7, 7), exact.product_forecast(7, 7)
    np.testing.assert_array_equal(diagnostic[2:6], ctx.actual[9:13])
    np.testing.assert_array_equal(np.delete(diagnostic, range(2, 6)),
                                  np.delete(blended, range(2, 6)))
    assert not np.allclose(blended[2:6], ctx.actual[9:13])
    result = _run(data_dir, perfect_leads_h=(0, 10_000), no_regret_z=None,
                  policies=("run-now", "gridshift", "rolling-foresight"))
    table = result.table.set_index("policy")["emissions_kg"]
    assert table["gridshift"] == pytest.approx(table["rolling-foresight"], rel=1e-6)
    with pytest.raises(ValueError, match="perfect_leads_h"):
        _run(data_dir, perfect_leads_h=(4, 4))
