"""Backtests on one's own data and with an honest, even comparison (issue 18): a user's carbon
CSV (any step from 5 min to 1 h, any year), a nightly jobs file, a nightly sites file, real
forecast vintages, `--format json`; the reference is the offline optimum (or its relaxation's
bound) so no share exceeds 100 %; every forecast-driven policy sees the same forecast. Every
schedule of every replay passes the independent checker (the replay raises otherwise)."""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gridshift.adapters.backtest_inputs import read_carbon_csv, read_site
from gridshift.app import backtest
from gridshift.app.backtest.context import build_context
from gridshift.app.backtest.policies import policy_spec
from gridshift.optimizer.errors import InvalidInputError

DATA = Path(os.environ.get("GRIDSHIFT_SHARED_DATA")
            or Path(__file__).resolve().parents[2] / "shared" / "data")
REGION = "US-CAL-CISO"
START = date(2022, 10, 25)
SMALL = {"days": 1, "time_limit_s": 1.0, "seed": 3, "max_jobs": 24,
         "reference_time_limit_s": 10.0}


@pytest.fixture(scope="module")
def data_dir() -> Path:
    if not (DATA / "philly-adaptdl" / "philly.csv").exists():
        pytest.skip(f"shared data not available: {DATA} (only present in the development tree)")
    return DATA


def _write_csv(path: Path, series: pd.Series, step_min: int) -> None:
    """``series`` (hourly) as a CSV at ``step_min`` steps (each hour's value repeated)."""
    index = pd.date_range(series.index[0], series.index[-1] + pd.Timedelta(minutes=60 - step_min),
                          freq=f"{step_min}min")
    values = series.reindex(index, method="ffill")
    pd.DataFrame({"timestamp": index.strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "carbon_intensity": values.to_numpy()}).to_csv(path, index=False)


@pytest.fixture(scope="module")
def own_csv(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CISO series around the test week as a user's 15-minute CSV."""
    series = backtest.carbon_series(REGION, data_dir)
    part = series[(series.index >= pd.Timestamp("2022-09-20", tz="UTC"))
                  & (series.index < pd.Timestamp("2022-11-10", tz="UTC"))]
    path = tmp_path_factory.mktemp("own") / "my-grid.csv"
    _write_csv(path, part, 15)
    return path


def test_own_csv_replays_like_the_built_in_series(data_dir: Path, own_csv: Path) -> None:
    """The same intensities read from a user's 15-min CSV under another name give the same
    replay as the built-in series."""
    # (no-regret off: its scenarios are seeded by the region's name)
    built_in = backtest.run_backtest(REGION, START, data_dir=data_dir, no_regret_z=None,
                                     **SMALL)
    own = backtest.run_backtest("MY-GRID", START, data_dir=data_dir, csv_path=str(own_csv),
                                no_regret_z=None, **SMALL)
    assert own.config.region == "MY-GRID"
    ours = own.table.set_index("policy")["emissions_kg"]
    theirs = built_in.table.set_index("policy")["emissions_kg"]
    pd.testing.assert_series_equal(ours, theirs, rtol=1e-9)


def test_carbon_csv_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("timestamp,carbon_intensity\n2023-01-01T00:00Z,100\n2023-01-01T02:00Z,90\n")
    with pytest.raises(InvalidInputError, match="step between rows is 120 min"):
        read_carbon_csv(path)
    path.write_text("time,ci\n2023-01-01T00:00Z,100\n")
    with pytest.raises(InvalidInputError, match="missing"):
        read_carbon_csv(path)
    for second_value, expected in (("-3", "negative at line 3"),
                                   ("1e308", "above 10000 gCO2e/kWh at line 3"),
                                   ("inf", "not a finite number at line 3")):
        path.write_text("timestamp,carbon_intensity\n2023-01-01T00:00Z,100\n"
                        f"2023-01-01T00:05Z,{second_value}\n2023-01-01T00:10Z,100\n")
        with pytest.raises(InvalidInputError, match=expected):
            read_carbon_csv(path)
    # 5-minute steps with a gap: hourly means, the gap interpolated.
    times = pd.date_range("2031-03-01", periods=36, freq="5min", tz="UTC").delete([14])
    pd.DataFrame({"timestamp": times.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
                  "carbon_intensity": np.r_[np.full(11, 100.0), np.full(24, 200.0)]}
                 ).to_csv(path, index=False)
    hourly = read_carbon_csv(path)
    assert list(hourly.index) == list(pd.date_range("2031-03-01", periods=3, freq="1h",
                                                    tz="UTC"))
    assert hourly.iloc[1] == pytest.approx(200.0) and hourly.iloc[0] < 200.0


def test_jobs_and_sites_files(data_dir: Path, own_csv: Path, tmp_path: Path) -> None:
    """Arrivals, durations, GPUs, power and deadlines from a nightly jobs file; capacity, PUE
    and power cap from a nightly sites file."""
    t0 = datetime(2022, 10, 25, tzinfo=UTC)
    jobs = [{"id": f"j{i}", "gpus": 1 + i % 4, "power_kw": 0.6 * (1 + i % 4),
             "duration_minutes": 60 + 30 * (i % 5),
             "earliest_start": (t0 + timedelta(hours=i, minutes=7)).isoformat(),
             **({"deadline": (t0 + timedelta(hours=i + 20)).isoformat()} if i % 2 else {})}
            for i in range(12)]
    (tmp_path / "jobs.json").write_text(json.dumps({"jobs": jobs}))
    (tmp_path / "sites.json").write_text(json.dumps({"sites": [
        {"id": "other", "region": "X", "gpu_capacity": 1},
        {"id": "dc-1", "region": "MY-GRID", "gpu_capacity": 6, "pue": 1.2,
         "power_cap_kw": 6.0}]}))
    site = read_site(tmp_path / "sites.json", "MY-GRID")
    assert site == {"site_id": "dc-1", "capacity_gpus": 6, "pue": 1.2, "power_cap_kw": 6.0}
    result = backtest.run_backtest("MY-GRID", START, days=1, data_dir=data_dir,
                                   csv_path=str(own_csv), jobs_path=str(tmp_path / "jobs.json"),
                                   time_limit_s=1.0, **site)
    assert len(result.jobs) == 12 and result.capacity_gpus == 6
    by_id = {j.id: j for j in result.jobs}
    assert by_id["job-00001"].deadline == t0 + timedelta(hours=21)       # the file's own
    assert by_id["job-00000"].deadline == t0 + timedelta(minutes=7 + 60, hours=12)
    assert by_id["job-00003"].power_kw == pytest.approx(2.4)
    table = result.table.set_index("policy")
    assert table.loc["gridshift", "emissions_kg"] <= table.loc["run-now", "emissions_kg"]
    with pytest.raises(InvalidInputError, match="no site with region 'NOWHERE'"):
        read_site(tmp_path / "sites.json", "NOWHERE")


def test_tight_capacity_shares_never_exceed_100(data_dir: Path) -> None:
    """Where capacity binds (run-now peak at twice the capacity), the rolling re-plan on the
    actual series is not optimal; the reference (offline optimum with every arrival known)
    is at most its emissions and at most every policy's, so no share exceeds 100 %."""
    result = backtest.run_backtest(REGION, START, data_dir=data_dir, utilisation=2.0,
                                   slack_h=6.0, max_jobs=40,
                                   policies=(*backtest.DEFAULT_POLICIES, "rolling-foresight"),
                                   **{k: v for k, v in SMALL.items() if k != "max_jobs"})
    ref = result.reference
    assert ref is not None and ref.kind in backtest.REFERENCE_KINDS
    table = result.table.set_index("policy")
    assert (table["emissions_kg"] >= ref.bound_kg - 1e-6).all()
    assert (table["share_of_pf_pct"].dropna() <= 100.0 + 1e-9).all()
    assert table.loc["rolling-foresight", "emissions_kg"] >= ref.bound_kg - 1e-6
    assert ref.kind.replace("-", " ") in backtest.describe(result)


def test_every_forecast_policy_sees_the_same_forecast(data_dir: Path) -> None:
    inputs = backtest.load_inputs(backtest.SeriesSource(REGION), backtest.TraceSource(),
                                  data_dir)
    cfg = backtest.BacktestConfig(REGION, START, days=1, seed=3, max_jobs=24)
    ctx, _ = build_context(cfg, inputs)
    from gridshift.app.backtest.context import Window

    w = Window(7, 7, 30, ctx.jobs[:3], np.full(30, ctx.capacity))
    seen = [policy_spec(ctx, p)[1](w) for p in backtest.FORECAST_POLICIES]
    for other in seen[1:]:
        np.testing.assert_array_equal(other.values, seen[0].values)
    rules = backtest.BacktestResult.__dataclass_fields__["rules"]
    assert rules is not None
    result = backtest.run_backtest(REGION, START, data_dir=data_dir, **SMALL)
    for policy in backtest.DEFAULT_POLICIES:
        assert policy in result.rules
    assert "12 h slack" in result.rules["gridshift"]


def test_real_forecast_vintages_replace_the_error_model(data_dir: Path, own_csv: Path,
                                                        tmp_path: Path) -> None:
    """With a vintages file, each decision plans on the latest values issued by then (never
    one issued later): here a forecast issued every 6 h that is the actual series plus a
    constant +50 g/kWh per vintage offset."""
    actual = read_carbon_csv(own_csv)
    rows = []
    for issue in pd.date_range("2022-10-24", "2022-10-27", freq="6h", tz="UTC"):
        offset = 50.0 * (issue.hour // 6 + 1)
        valid = pd.date_range(issue, periods=48, freq="1h")
        rows += [{"region": "MY-GRID", "valid_at": v.isoformat(), "issued_at": issue.isoformat(),
                  "value": float(actual.get(v, 300.0)) + offset} for v in valid]
    (tmp_path / "vintages.csv").write_text(pd.DataFrame(rows).to_csv(index=False))
    source = backtest.SeriesSource("MY-GRID", str(own_csv), str(tmp_path / "vintages.csv"))
    inputs = backtest.load_inputs(source, backtest.TraceSource(), data_dir)
    cfg = backtest.config_for(source, inputs, START, 1, seed=3, max_jobs=24, blend=False)
    assert cfg.forecast_vintages and "real forecast vintages" in cfg.forecast_source
    ctx, _ = build_context(cfg, inputs)
    # Decision hour 8 of 2022-10-25: the vintage issued at 06:00 (offset +100) is the latest.
    seen = ctx.forecast(8, 8)
    np.testing.assert_allclose(seen[:20], ctx.actual[8:28] + 100.0)
    result = backtest.replay(cfg, inputs)
    assert result.table.set_index("policy").loc["gridshift", "late_jobs"] == 0


def test_json_output(data_dir: Path, own_csv: Path, tmp_path: Path, capsys,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`gridshift backtest --carbon-csv PATH --region NAME --format json`: per policy the
    emissions, savings against run-now and FIFO, the share of the perfect-foresight savings,
    and the reference's kind."""
    from gridshift.cli.backtest import add_arguments, run

    monkeypatch.setenv("GRIDSHIFT_SHARED_DATA", str(data_dir))
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--carbon-csv", str(own_csv), "--region", "MY-GRID", "--days",
                              "1", "--start", "2022-10-25", "--time-limit", "1",
                              "--reference-time-limit", "10", "--format", "json",
                              "-o", str(tmp_path)])
    assert run(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["region"] == "MY-GRID"
    assert out["reference"]["kind"] in backtest.REFERENCE_KINDS
    for policy in (*backtest.DEFAULT_POLICIES, backtest.PF_ROW):
        row = out["policies"][policy]
        assert {"emissions_kg", "savings_vs_run_now_kg", "savings_vs_fifo_kg",
                "share_of_pf_savings_pct", "rule"} <= set(row)
        share = row["share_of_pf_savings_pct"]
        assert share is None or share <= 100.0 + 1e-9
    assert out["policies"]["run-now"]["savings_vs_run_now_kg"] == 0.0
    bad = parser.parse_args(["--carbon-csv", str(own_csv), "--carbon-csv", str(own_csv),
                             "--region", "A"])
    assert run(bad) == 2


def test_no_regret_rule_in_a_replay(data_dir: Path) -> None:
    """On by default (z 2 with a loss budget of 1 % of the stake); off with z None; without a
    budget each window's shifts are judged alone, and a stricter z keeps fewer shifts. Every
    window plan passes the checker (the replay raises otherwise)."""
    default = backtest.run_backtest(REGION, START, data_dir=data_dir, **SMALL)
    assert (default.config.no_regret_z, default.config.no_regret_budget_pct) == (2.0, 1.0)
    assert sum(default.no_regret.values()) > 0
    assert "2-sigma bad case" in default.rules["gridshift"]
    off = backtest.run_backtest(REGION, START, data_dir=data_dir, no_regret_z=None, **SMALL)
    assert sum(off.no_regret.values()) == 0 and "no-regret rule off" in off.rules["gridshift"]
    alone = {"no_regret_budget_pct": 0.0, **SMALL}
    loose = backtest.run_backtest(REGION, START, data_dir=data_dir, no_regret_z=0.0, **alone)
    strict = backtest.run_backtest(REGION, START, data_dir=data_dir, no_regret_z=3.0, **alone)
    assert sum(loose.no_regret.values()) > 0
    assert strict.no_regret["kept"] <= loose.no_regret["kept"]
    assert strict.no_regret["pulled_back"] >= loose.no_regret["pulled_back"]
    assert "3 standard deviations" in strict.rules["gridshift"]


def test_a_power_cap_holds_for_jobs_of_unequal_kw_per_gpu(data_dir: Path, own_csv: Path,
                                                          tmp_path: Path) -> None:
    """A site of 8 GPUs capped at 3.5 kW, 1-GPU jobs at 1 kW and 4-GPU jobs at 1.6 kW: held
    to the highest kW per GPU (the old rule), a 4-GPU job fit nowhere. Commitments now reach
    each window's request as running jobs, so every policy's schedule keeps both the GPUs
    and the cap at every hour, and each window's plan passed the checker with them."""
    t0 = datetime(2022, 10, 25, tzinfo=UTC)
    jobs = [{"id": f"j{i}", "gpus": 4 if i % 2 else 1, "power_kw": 1.6 if i % 2 else 1.0,
             "duration_minutes": 60 + 60 * (i % 3),
             "earliest_start": (t0 + timedelta(hours=i // 2, minutes=5)).isoformat()}
            for i in range(12)]
    (tmp_path / "jobs.json").write_text(json.dumps({"jobs": jobs}))
    result = backtest.run_backtest("MY-GRID", START, days=1, data_dir=data_dir,
                                   csv_path=str(own_csv), jobs_path=str(tmp_path / "jobs.json"),
                                   time_limit_s=1.0, capacity_gpus=8, pue=1.0,
                                   power_cap_kw=3.5)
    assert result.checks_passed > 0
    by_id = {j.id: j for j in result.jobs}
    origin = datetime(START.year, START.month, START.day, tzinfo=UTC)
    for policy in result.starts.columns:
        kw, gpus = np.zeros(24 * 8), np.zeros(24 * 8, dtype=int)
        for job_id, start in result.starts[policy].items():
            job = by_id[job_id]
            hour = int((pd.Timestamp(start) - origin).total_seconds() // 3600)
            kw[hour:hour + job.duration_slots] += job.power_kw
            gpus[hour:hour + job.duration_slots] += job.gpus
        assert kw.max() <= 3.5 + 1e-9, policy
        assert gpus.max() <= 8, policy
    # The cap binds: two 4-GPU jobs (3.2 kW) never run beside a 1-GPU one.
    table = result.table.set_index("policy")
    assert table.loc["gridshift", "emissions_kg"] <= table.loc["run-now", "emissions_kg"] + 1e-9


def test_the_loss_budget_guards_a_near_empty_week(data_dir: Path) -> None:
    """DE, week of 2020-06-08: 13 jobs arrive together on Sunday night, when the actual
    intensity is at its lowest of the coming day, and the blended forecast says Monday noon is
    cleaner. Without the rule gridshift emits far more than run-now (more than 10 %); with the
    default rule (z 2, loss budget 1 % of the stake) no more than 1 %, and each window plan
    still passes the checker (the replay raises otherwise)."""
    week = {"days": 7, "seed": 0, "time_limit_s": 1.0}
    off = backtest.run_backtest("DE", date(2020, 6, 8), data_dir=data_dir, no_regret_z=None,
                                **week)
    guarded = backtest.run_backtest("DE", date(2020, 6, 8), data_dir=data_dir, **week)

    def excess_pct(result: backtest.BacktestResult) -> float:
        table = result.table.set_index("policy")
        return -float(table.loc["gridshift", "savings_pct"])

    assert len(off.jobs) == 13 and excess_pct(off) > 10.0
    assert excess_pct(guarded) <= 1.0
    assert guarded.no_regret["pulled_back"] > 0
    assert "loss budget" in guarded.rules["gridshift"] and "1 % of the replay's stake" in \
        guarded.rules["gridshift"]


def test_a_grids_own_forecast_vintages_watttime(data_dir: Path, tmp_path: Path) -> None:
    """WattTime's CAISO_NORTH MOER of June 2023 with the forecasts it issued then (5-min
    values, issued every 5 min for 5..65 min ahead, times as "2023-06-08 00:00:00+00:00"),
    unpacked as `bench/real_vintages.py` does: the decision hour's forecast is the hourly mean
    of the latest values issued by the decision (each 5-min value holding until the next),
    and the replay's schedules pass the checker with no job late."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import real_vintages

    if not real_vintages.ZIP.exists():
        pytest.skip(f"no {real_vintages.ZIP}")
    carbon_csv, vintages_csv = real_vintages.unpack(real_vintages.ZIP, tmp_path)
    source = backtest.SeriesSource(real_vintages.REGION, str(carbon_csv), str(vintages_csv))
    inputs = backtest.load_inputs(source, backtest.TraceSource(), data_dir)
    cfg = backtest.config_for(source, inputs, date(2023, 6, 13), 1, seed=0, max_jobs=24,
                              blend=False, time_limit_s=1.0, reference_time_limit_s=10.0)
    assert cfg.forecast_vintages and "real forecast vintages" in cfg.forecast_source
    ctx, _ = build_context(cfg, inputs)
    raw = pd.read_csv(vintages_csv, parse_dates=["valid_at", "issued_at"])
    for hour in (3, 11, 20):
        decision = ctx.time(hour)
        known = raw[raw["issued_at"] <= decision].sort_values("issued_at")
        latest = known.drop_duplicates("valid_at", keep="last").set_index("valid_at")["value"]
        expected = latest.reindex(pd.date_range(decision, periods=12, freq="5min")).mean()
        assert ctx.forecast(hour, hour)[0] == pytest.approx(expected, rel=1e-9)
        assert abs(expected - ctx.actual[hour]) > 1e-6      # a forecast, not the actual
    result = backtest.replay(cfg, inputs)
    assert (result.table["late_jobs"] == 0).all()
