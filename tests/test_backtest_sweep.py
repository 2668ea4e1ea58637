"""Backtest sweeps (issue 18): independent replays (weeks x series x seeds) on a real local Ray
cluster give the same numbers as in this process; the aggregate (shares, weeks worse than
run-now, weeks ahead of the lowest window) and the outputs; `gridshift backtest --weeks`.
Every replay's schedules pass the independent checker (a replay raises otherwise)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from gridshift.app import backtest
from gridshift.app.backtest.sweep import (
    aggregate,
    merge_sweeps,
    plan_sweep,
    ray_executor,
    run_sweep,
    weekly_rows,
)
from gridshift.app.backtest.sweep_report import format_sweep, sweep_json, write_sweep_outputs

DATA = Path(os.environ.get("GRIDSHIFT_SHARED_DATA")
            or Path(__file__).resolve().parents[2] / "shared" / "data")
SMALL = {"time_limit_s": 1.0, "max_jobs": 16, "reference_time_limit_s": 10.0}


@pytest.fixture(scope="module")
def data_dir() -> Path:
    if not (DATA / "philly-adaptdl" / "philly.csv").exists():
        pytest.skip(f"shared data not available: {DATA} (only present in the development tree)")
    return DATA


@pytest.fixture(scope="module")
def planned(data_dir: Path) -> tuple[list, dict]:
    """Two series x two days x two seeds of one-day replays."""
    sources = [backtest.SeriesSource("US-CAL-CISO"), backtest.SeriesSource("DE")]
    inputs = {s.region: backtest.load_inputs(s, backtest.TraceSource(), data_dir)
              for s in sources}
    specs = plan_sweep(sources, inputs, None, 2, range(2), days=1, **SMALL)
    return specs, inputs


@pytest.fixture(scope="module")
def sequential_result(planned: tuple[list, dict]):
    specs, inputs = planned
    return run_sweep(specs, inputs)


def test_sweep_plan_and_aggregate(planned: tuple[list, dict], sequential_result) -> None:
    specs, _ = planned
    assert len(specs) == 8 and len({s.label for s in specs}) == 8
    assert [s.start.isoformat() for s in specs[:4]] == ["2022-10-24"] * 2 + ["2022-10-25"] * 2
    result = sequential_result
    assert not result.skipped and len(result.replays) == 8
    table = result.table.set_index(["region", "policy"])
    assert set(table.index.get_level_values(0)) == {"US-CAL-CISO", "DE"}
    assert (table["replays"] == 4).all()
    pf = table.xs("perfect-foresight", level="policy")
    assert list(pf["share_of_pf_pct"]) == pytest.approx([100.0, 100.0])
    weekly = weekly_rows(result.replays)
    assert (weekly["share_of_pf_pct"].dropna() <= 100.0 + 1e-9).all()
    # The aggregate share is savings over reference savings summed over the replays.
    gs = weekly[(weekly["region"] == "DE") & (weekly["policy"] == "gridshift")]
    expected = 100.0 * gs["savings_kg"].sum() / gs["pf_savings_kg"].sum()
    assert table.loc[("DE", "gridshift"), "share_of_pf_pct"] == pytest.approx(expected)
    run_now = weekly[(weekly["region"] == "DE") & (weekly["policy"] == "run-now")]
    worse = 100.0 * (gs["emissions_kg"].to_numpy()
                     > run_now["emissions_kg"].to_numpy() * (1 + 1e-9)).mean()
    assert table.loc[("DE", "gridshift"), "worse_than_run_now_pct"] == pytest.approx(worse)
    assert "gridshift" in format_sweep(result)
    pd.testing.assert_frame_equal(aggregate(result.replays), result.table)


def _replay(start: str, run_now_kg: float, pf_kg: float, gridshift_kg: float) -> dict:
    """A replay's summary as the sweep keeps it, with three policies."""
    def row(kg: float) -> dict:
        saved = run_now_kg - kg
        pf_saved = run_now_kg - pf_kg
        return {"emissions_kg": kg, "savings_vs_run_now_kg": saved,
                "savings_vs_run_now_pct": 100.0 * saved / run_now_kg,
                "share_of_pf_savings_pct": 100.0 * saved / pf_saved if pf_saved else None}
    return {"label": f"R {start}", "key": f"R|{start}", "region": "R", "start": start,
            "seed": 0, "skipped": None, "reference": {"bound_kg": pf_kg,
                                                      "kind": "offline-optimum"},
            "policies": {"run-now": row(run_now_kg), "gridshift": row(gridshift_kg),
                         "perfect-foresight": row(pf_kg)}}


def test_a_week_where_perfect_foresight_saves_almost_nothing_has_no_weekly_share() -> None:
    """27.2 kg run-now, 27.19 kg perfect foresight, 32.1 kg gridshift (a year of DE weeks held
    one like it: its share read -667,989 %): left out of the weekly distribution, counted in
    the aggregate share and in the regret measures."""
    replays = [_replay("2020-06-01", 100.0, 80.0, 85.0),
               _replay("2020-06-08", 27.2, 27.19, 32.1),
               _replay("2020-06-15", 200.0, 150.0, 160.0)]
    row = aggregate(replays).set_index("policy").loc["gridshift"]
    assert row["replays"] == 3 and row["share_weeks"] == 2
    assert row["weekly_share_min"] == pytest.approx(75.0)      # 15 of 20 kg; 40 of 50 is 80
    assert row["weekly_share_median"] == pytest.approx(77.5)
    saved, pf_saved = 15.0 + (27.2 - 32.1) + 40.0, 20.0 + 0.01 + 50.0
    assert row["share_of_pf_pct"] == pytest.approx(100.0 * saved / pf_saved)
    assert row["worse_than_run_now_pct"] == pytest.approx(100.0 / 3)
    assert row["worst_excess_pct"] == pytest.approx(100.0 * (32.1 - 27.2) / 27.2)


def test_sweeps_run_in_parts_merge_into_one(sequential_result) -> None:
    """A year run series by series: the parts' sweep.json documents merge into the same
    aggregate as the whole; a replay held twice is refused."""
    whole = sweep_json(sequential_result)
    first = {**whole, "replays": whole["replays"][:3]}
    rest = {**whole, "replays": whole["replays"][3:]}
    merged = merge_sweeps([json.loads(json.dumps(first)), json.loads(json.dumps(rest))])
    pd.testing.assert_frame_equal(merged.table, sequential_result.table)
    assert len(merged.replays) == 8
    with pytest.raises(ValueError, match="same replay twice"):
        merge_sweeps([first, first])


def test_the_sweep_on_ray_gives_the_same_numbers(planned: tuple[list, dict],
                                                 sequential_result, tmp_path: Path) -> None:
    """A local Ray cluster started for the sweep (two workers): every replay's emissions per
    policy equal the sequential run's; progress is reported per replay."""
    pytest.importorskip("ray")
    specs, inputs = planned
    seen: list[tuple[int, int]] = []
    with ray_executor(None, 2) as executor:
        assert "local Ray cluster" in executor.description
        on_ray = run_sweep(specs, inputs, executor, name="ray", workers=2,
                           on_replay=lambda done, total, _: seen.append((done, total)))
    assert seen == [(i, 8) for i in range(1, 9)]
    for a, b in zip(sequential_result.replays, on_ray.replays, strict=True):
        assert a["label"] == b["label"]
        for policy, row in a["policies"].items():
            assert b["policies"][policy]["emissions_kg"] == row["emissions_kg"], \
                (a["label"], policy)
    pd.testing.assert_frame_equal(sequential_result.table, on_ray.table)
    paths = write_sweep_outputs(on_ray, tmp_path)
    assert [p.name for p in paths] == ["sweep.csv", "sweep-weekly.csv", "sweep.md",
                                       "sweep.json", "sweep.png"]
    assert json.loads(paths[3].read_text())["executor"] == "ray"


def test_cli_sweep_without_ray(data_dir: Path, tmp_path: Path, capsys,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    from gridshift.cli.backtest import add_arguments, run

    monkeypatch.setenv("GRIDSHIFT_SHARED_DATA", str(data_dir))
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--region", "ciso", "--weeks", "2", "--days", "1", "--seeds", "2",
                              "--time-limit", "1", "--reference-time-limit", "10", "--no-ray",
                              "--format", "json", "-o", str(tmp_path)])
    assert run(args) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert len(out["replays"]) == 4 and out["executor"] == "sequential"
    assert "[4/4] US-CAL-CISO" in captured.err
    rows = {(r["region"], r["policy"]): r for r in out["aggregate"]}
    assert rows[("US-CAL-CISO", "gridshift")]["replays"] == 4
    assert (tmp_path / "sweep.png").exists()


def test_cli_sets_the_no_regret_z_per_series(data_dir: Path, tmp_path: Path, capsys,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """--no-regret-z NYIS=3 sets that series' z (short names as --region takes them), the
    others keep --no-regret-z Z; the header says each; an unknown series is named."""
    from gridshift.cli.backtest import add_arguments, run

    monkeypatch.setenv("GRIDSHIFT_SHARED_DATA", str(data_dir))
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    common = ["--weeks", "1", "--days", "1", "--time-limit", "1", "--reference-time-limit",
              "10", "--no-ray", "-o", str(tmp_path)]
    args = parser.parse_args(["--region", "nyis", "--region", "pjm", "--no-regret-z", "1.5",
                              "--no-regret-z", "NYIS=3", "--format", "json", *common])
    assert run(args) == 0
    out = json.loads(capsys.readouterr().out)
    z = {r["region"]: r["no_regret_z"] for r in out["replays"]}
    assert z == {"US-NY-NYIS": 3.0, "US-MIDA-PJM": 1.5}
    args = parser.parse_args(["--region", "nyis", "--region", "pjm", "--no-regret-z",
                              "US-MIDA-PJM=off", *common])
    assert run(args) == 0
    header = capsys.readouterr().out.splitlines()[:4]
    assert any("no-regret rule: US-MIDA-PJM off; US-NY-NYIS z 2, loss budget 1 %" in line
               for line in header), header
    args = parser.parse_args(["--region", "nyis", "--no-regret-z", "ERCO=3", *common])
    assert run(args) == 2
    assert "'ERCO' is not one of this run's series (US-NY-NYIS)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["--no-regret-z", "=3"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _ray_head(temp_root: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """A real Ray head (`ray start --head --block`, no dashboard, its own ports and temporary
    folder), stopped by signalling its process group (never `ray stop`); yields its address
    and process."""
    ray_bin = Path(sys.executable).parent / "ray"
    if not ray_bin.exists():
        pytest.skip("the `ray` command is not installed beside this Python")
    temp = tempfile.mkdtemp(prefix="gsbt", dir="/tmp")          # short: Ray's socket paths
    port = _free_port()
    ports = [f"--{name}={_free_port()}" for name in (
        "ray-client-server-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
        "metrics-export-port", "runtime-env-agent-port", "node-manager-port",
        "object-manager-port")]
    with open(temp_root / "head.log", "w") as log:
        process = subprocess.Popen(
            [str(ray_bin), "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
             "--include-dashboard=false", f"--temp-dir={temp}", "--disable-usage-stats",
             *ports],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and process.poll() is None:
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.5)
            else:
                raise RuntimeError("the Ray head did not come up:\n"
                                   + (temp_root / "head.log").read_text()[-2000:])
            yield f"127.0.0.1:{port}", process
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
            shutil.rmtree(temp, ignore_errors=True)


def test_cli_sweep_on_a_running_ray_cluster(data_dir: Path, tmp_path: Path, capsys,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """`--ray-address` runs the sweep on a Ray cluster that is already up (a real local head
    started with `ray start --head`), which the sweep leaves running."""
    pytest.importorskip("ray")
    from gridshift.cli.backtest import add_arguments, run

    monkeypatch.setenv("GRIDSHIFT_SHARED_DATA", str(data_dir))
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with _ray_head(tmp_path) as (address, process):
        args = parser.parse_args(["--region", "de", "--weeks", "2", "--days", "1",
                                  "--time-limit", "1", "--reference-time-limit", "10",
                                  "--ray-address", address, "--workers", "2",
                                  "--format", "json", "-o", str(tmp_path)])
        assert run(args) == 0
        captured = capsys.readouterr()
        out = json.loads(captured.out)
        assert out["executor"] == "ray" and len(out["replays"]) == 2
        assert f"the Ray cluster at {address}" in captured.err
        assert process.poll() is None                       # left running


def test_the_sweep_header_names_the_series_whose_rule_differs() -> None:
    from gridshift.app.backtest.sweep_report import _rules_by_region

    def replay(region: str, z: float | None) -> dict:
        return {"region": region, "no_regret_z": z, "no_regret_budget_pct": 1.0}

    same = [replay("DE", 2.0), replay("US-MIDA-PJM", 2.0)]
    assert _rules_by_region(same) == "z 2, loss budget 1 % of the stake"
    mixed = [*same, replay("US-NY-NYIS", 3.0), replay("US-NY-NYIS", 3.0)]
    assert _rules_by_region(mixed) == ("US-NY-NYIS z 3, loss budget 1 % of the stake; "
                                       "elsewhere z 2, loss budget 1 % of the stake")


@pytest.mark.parametrize("with_template", [True, False], ids=["template", "older-rows"])
def test_the_sweep_header_names_every_forecast_error_seed(with_template: bool) -> None:
    """A sweep over seeds (or merged ones) names them all, not the first replay's alone: from
    the replays' forecast template, or for rows written before it, from the description."""
    from datetime import date

    from gridshift.app.backtest.config import BacktestConfig
    from gridshift.app.backtest.sweep_report import _forecasts

    def replay(seed: int, model: str = "average-ci", vintages: bool = False) -> dict:
        cfg = BacktestConfig(region="DE", start=date(2020, 1, 6), seed=seed,
                             forecast_model=model, forecast_vintages=vintages)
        row = {"seed": seed, "forecast": cfg.forecast_source}
        if with_template:
            row["forecast_template"] = cfg.forecast_template
        return row

    assert _forecasts([replay(0), replay(0)]) == replay(0)["forecast"]
    both = _forecasts([replay(2), replay(0), replay(1)])
    assert "seeds 0, 1, 2)" in both and "seed 2" not in both
    assert both == replay(0)["forecast"].replace("seed 0", "seeds 0, 1, 2")
    # Descriptions that differ in more than the seed are all given.
    perfect = replay(0, "perfect")
    assert _forecasts([replay(0), perfect]) == f"{replay(0)['forecast']}; {perfect['forecast']}"
    # A forecast that does not depend on the seed is named once, whatever the seeds.
    real = _forecasts([replay(0, vintages=True), replay(3, vintages=True)])
    assert real == replay(0, vintages=True)["forecast"] and "seed" not in real


@pytest.mark.parametrize(("option", "value", "expected"), [
    ("--weeks", "0", "--weeks: must be a whole number >= 1, got 0"),
    ("--seeds", "0", "--seeds: must be a whole number >= 1, got 0"),
    ("--workers", "0", "--workers: must be a whole number >= 1, got 0"),
    ("--decision-hours", "0", "--decision-hours: must be a whole number >= 1, got 0"),
    ("--days", "1.5", "--days: must be a whole number >= 1, got '1.5'"),
    ("--seed", "-1", "--seed: must be a whole number >= 0, got -1"),
    ("--pue", "nan", "--pue: must be a finite number >= 1"),
    ("--gpu-kw", "0", "--gpu-kw: must be a finite number > 0"),
    ("--utilisation", "-1", "--utilisation: must be a finite number > 0"),
    ("--time-limit", "inf", "--time-limit: must be a finite number > 0"),
    ("--slack-hours", "-1", "--slack-hours: must be a finite number >= 0"),
])
def test_cli_refuses_out_of_range_options(option: str, value: str, expected: str,
                                          capsys) -> None:
    """Each option is checked where it is parsed, naming the option: none reaches the replay
    as a silent default (--weeks 0 and --seeds 0 used to run one) or an internal error
    (--decision-hours 0 divided by zero)."""
    from gridshift.cli.backtest import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args([option, value])
    assert exit_info.value.code == 2
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "expected"), [
    (["--end", "2022-02-01"], "--end needs --start"),
    (["--start", "2022-02-01", "--end", "2022-01-01"], "must be after --start"),
    (["--start", "2022-01-03", "--end", "2022-01-06"], "holds no whole replay of 7 day(s)"),
    (["--start", "2022-01-03", "--end", "2022-03-01", "--weeks", "2"], "--weeks or --end"),
])
def test_cli_refuses_a_period_that_says_nothing(argv: list[str], expected: str, capsys,
                                                tmp_path: Path) -> None:
    from gridshift.cli.backtest import add_arguments, run

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert run(parser.parse_args([*argv, "-o", str(tmp_path)])) == 2
    assert expected in capsys.readouterr().err
