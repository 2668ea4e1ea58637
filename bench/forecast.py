"""Forecasting benchmark: FindBestWindow latency, horizon-extension accuracy, band calibration.

Prints
1. FindBestWindow p50/p99 latency for 3 regions x 48 h of 5-minute data (wall clock and thread
   CPU time), against a brute-force scan of the same requests in the same run (ratio);
2. the seasonal extension's MAE by lead-time bucket against persistence and against the
   provider's own forecast, on the real series in ../shared/data: GB NESO 48-h vintages (the
   provider's first 24 h extended to 48 h), WattTime CAISO_NORTH (the provider's 65-min forecast
   extended to 24 h) and EIA-930 2022 / Germany 2020 hourly actuals (extension vs persistence);
3. the p10-p90 coverage of the calibrated error models on data they were not fitted on.

Run: ``python bench/forecast.py [--reps 3000]``. Sections 2-3 are skipped, with a note, when
../shared/data (or $GRIDSHIFT_SHARED_DATA) is absent.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from gridshift.adapters import datasets
from gridshift.forecasting import calibration, extension, uncertainty
from gridshift.forecasting.best_window import find_best_window
from gridshift.forecasting.series import Forecast
from gridshift.settings import load_settings

T0 = datetime(2023, 6, 20, tzinfo=UTC)
WINDOW_H = 48
STEP_MIN = 5


# --- 1. FindBestWindow latency ---------------------------------------------------------------


def _latency_series(data_dir: Path) -> dict[str, Forecast]:
    """3 regions x 48 h of 5-min data: WattTime CAISO_NORTH actuals when present (3 different
    days), else a synthetic daily curve with noise."""
    n = WINDOW_H * 60 // STEP_MIN
    zip_path = data_dir / "vessim" / "watttime2023_casio-north.zip"
    if zip_path.exists():
        import zipfile

        with zipfile.ZipFile(zip_path) as archive:
            with archive.open("watttime2023_casio-north_actual.csv") as handle:
                values = pd.read_csv(handle)["value"].to_numpy(float)
        chunks = [values[i * 3 * n:i * 3 * n + n] for i in range(3)]
    else:
        rng = np.random.default_rng(0)
        t = np.arange(n) * STEP_MIN / 60.0
        chunks = [300 + 100 * np.sin(2 * np.pi * (t + 4 * i) / 24) + rng.normal(0, 10, n)
                  for i in range(3)]
    return {f"region-{i}": Forecast(f"region-{i}", T0, STEP_MIN, tuple(c))
            for i, c in enumerate(chunks)}


def _brute_force(series: dict[str, Forecast], duration_min: float, start: datetime,
                 end: datetime) -> dict[str, tuple[datetime, float]]:
    """Plain scan: every candidate start, its mean by summing each slot's overlap."""
    best = {}
    for region, f in series.items():
        values = np.asarray(f.carbon_intensity)
        step = f.slot_minutes
        lo = np.arange(len(values)) * step
        offset = (start - f.start).total_seconds() / 60.0
        last = (end - f.start).total_seconds() / 60.0 - duration_min
        candidates = [offset] + [k * step for k in range(len(values)) if offset < k * step <= last]
        means = []
        for s in candidates:
            overlap = np.clip(np.minimum(lo + step, s + duration_min) - np.maximum(lo, s), 0, None)
            means.append(float(np.dot(values, overlap) / duration_min))
        k = int(np.argmin(means))
        best[region] = (f.start + timedelta(minutes=candidates[k]), means[k])
    return best


def _timed(fn, reps: int) -> tuple[np.ndarray, np.ndarray]:
    wall, cpu = np.empty(reps), np.empty(reps)
    for i in range(reps):
        w0, c0 = time.perf_counter(), time.thread_time()
        fn()
        wall[i], cpu[i] = time.perf_counter() - w0, time.thread_time() - c0
    return wall * 1e3, cpu * 1e3


def bench_best_window(data_dir: Path, reps: int) -> None:
    """Section 1."""
    series = _latency_series(data_dir)
    end = T0 + timedelta(hours=WINDOW_H)
    duration = 180

    def fast():
        return find_best_window(series, duration, T0, end)

    def brute():
        return _brute_force(series, duration, T0, end)

    result, reference = fast(), brute()
    for region, (start, mean) in reference.items():
        assert result.regions[region].start == start, region
        assert abs(result.regions[region].mean_intensity_g_per_kwh - mean) < 1e-6 * mean
    fast_wall, fast_cpu = _timed(fast, reps)
    brute_wall, brute_cpu = _timed(brute, max(20, reps // 100))
    n = len(next(iter(series.values())).carbon_intensity)
    print(f"\n## FindBestWindow: 3 regions x {WINDOW_H} h of {STEP_MIN}-min data "
          f"({n} values each), duration {duration} min, {reps} reps")
    print("| implementation | p50 wall ms | p99 wall ms | p50 CPU ms | p99 CPU ms |")
    print("| --- | --- | --- | --- | --- |")
    for name, wall, cpu in (("find_best_window (prefix sums)", fast_wall, fast_cpu),
                            ("brute-force scan", brute_wall, brute_cpu)):
        print(f"| {name} | {np.percentile(wall, 50):.3f} | {np.percentile(wall, 99):.3f} | "
              f"{np.percentile(cpu, 50):.3f} | {np.percentile(cpu, 99):.3f} |")
    ratio = np.percentile(brute_wall, 50) / np.percentile(fast_wall, 50)
    verdict = "met" if np.percentile(fast_wall, 99) < 5.0 else "NOT met"
    print(f"brute-force / prefix-sum p50 ratio: {ratio:.0f}x; target p99 < 5 ms: {verdict}; "
          "answers agree")


# --- 2. Extension accuracy --------------------------------------------------------------------


def _mae_table(title: str, frame: pd.DataFrame, columns: dict[str, str],
               edges_h: list[float]) -> None:
    """MAE (gCO2e/kWh) of each named column vs ``actual`` per lead bucket."""
    lead = (frame["valid_at"] - frame["issued_at"]).dt.total_seconds() / 3600.0
    print(f"\n### {title}")
    print("| lead (h) | n | " + " | ".join(columns) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in columns) + " |")
    for lo, hi in zip(edges_h[:-1], edges_h[1:], strict=True):
        sel = (lead >= lo) & (lead < hi) & frame["actual"].notna()
        if not sel.any():
            continue
        cells = []
        for column in columns.values():
            ok = sel & frame[column].notna()
            cells.append(f"{(frame[column] - frame['actual']).abs()[ok].mean():.1f}"
                         if ok.any() else "-")
        print(f"| {lo:g}-{hi:g} | {int(sel.sum())} | " + " | ".join(cells) + " |")


def _uk_frame(data_dir: Path, provider_h: float = 24.0) -> pd.DataFrame:
    """Each GB vintage truncated to ``provider_h`` and extended to 48 h."""
    vintages = datasets.load_uk_tracking(data_dir)
    root = data_dir / "uk-carbon-intensity-forecast-tracking"
    full = {}
    for path in sorted((root / "national_fw48h").glob("*.csv")):
        table = pd.read_csv(path)
        full[pd.Timestamp(path.stem.replace("Z", ""), tz="UTC")] = table
    actuals = vintages.drop_duplicates("valid_at").set_index("valid_at")["actual"].sort_index()
    rows = []
    for issued, table in full.items():
        start = pd.Timestamp(table["from"].iloc[0]).tz_convert("UTC").to_pydatetime()
        values = table["intensity.forecast"].to_numpy(float)
        n_given = int(provider_h * 2)
        given = Forecast("GB", start, 30, tuple(values[:n_given]), provider="nesco",
                         issued_at=issued.to_pydatetime())
        past = actuals[actuals.index < issued - pd.Timedelta(minutes=30)]
        history = None if past.empty else Forecast(
            "GB", past.index[0].to_pydatetime(), 30,
            tuple(past.reindex(pd.date_range(past.index[0], past.index[-1], freq="30min"))),
            provider="actuals")
        extended = extension.extend(given, start + timedelta(hours=48), history).forecast
        valid = pd.date_range(start, periods=96, freq="30min")
        rows.append(pd.DataFrame({
            "issued_at": issued, "valid_at": valid[n_given:],
            "seasonal": extended.carbon_intensity[n_given:96],
            "provider": values[n_given:96], "persistence": values[n_given - 1],
            "actual": valid[n_given:].map(actuals)}))
    return pd.concat(rows, ignore_index=True)


def _watttime_frame(data_dir: Path, every_h: int = 1, horizon_h: int = 24) -> pd.DataFrame:
    """WattTime's 5-65 min forecast at each hourly issue, extended to ``horizon_h``."""
    vintages = datasets.load_watttime_caiso(data_dir)
    actual = (vintages.drop_duplicates("valid_at").set_index("valid_at")["actual"]
              .sort_index())
    grid = pd.date_range(actual.index[0], actual.index[-1], freq="5min")
    actual = actual.reindex(grid)
    first_issue = grid[0] + pd.Timedelta(days=7)
    rows = []
    for issued, group in vintages.groupby("issued_at"):
        if issued < first_issue or issued.minute != 0 or issued.hour % every_h:
            continue
        group = group.sort_values("valid_at")
        start = group["valid_at"].iloc[0].to_pydatetime()
        given = Forecast("CAISO_NORTH", start, 5, tuple(group["forecast"]),
                         provider="watttime", issued_at=issued.to_pydatetime())
        past = actual[(actual.index < issued) & (actual.index >= issued - pd.Timedelta(days=14))]
        history = Forecast("CAISO_NORTH", past.index[0].to_pydatetime(), 5, tuple(past),
                           provider="actuals")
        ext = extension.extend(given, issued.to_pydatetime() + timedelta(hours=horizon_h),
                               history).forecast
        valid = pd.date_range(start, periods=len(ext.carbon_intensity), freq="5min")
        last_actual = past.dropna().iloc[-1]
        provider = np.full(len(valid), np.nan)
        provider[:len(group)] = group["forecast"].to_numpy()
        rows.append(pd.DataFrame({
            "issued_at": issued, "valid_at": valid, "seasonal": ext.carbon_intensity,
            "provider": provider, "persistence": last_actual,
            "persist_provider": group["forecast"].iloc[-1],
            "actual": actual.reindex(valid).to_numpy()}))
    frame = pd.concat(rows, ignore_index=True)
    frame.loc[frame["provider"].notna(), "seasonal"] = np.nan  # provider's own part
    return frame


def _hourly_frame(data_dir: Path) -> pd.DataFrame:
    frames = [extension.backtest_vintages(series, horizon_h=168, every_h=13).assign(source=name)
              for name, series in datasets.load_hourly_actuals(data_dir).items()]
    return pd.concat(frames, ignore_index=True)


def bench_extension(data_dir: Path) -> None:
    """Section 2."""
    print("\n## Horizon extension: MAE (gCO2e/kWh; WattTime: MOER g/kWh) by lead time")
    _mae_table("GB NESO 48-h vintages: provider's first 24 h given, 24-48 h extended "
               "(4 vintages; history: actuals before issue)", _uk_frame(data_dir),
               {"seasonal extension": "seasonal", "provider's own 24-48 h forecast": "provider",
                "persistence (last given value)": "persistence"}, [24, 30, 36, 42, 48])
    _mae_table("WattTime CAISO_NORTH MOER: provider's 5-65 min forecast, extended to 24 h "
               "(hourly issues after a 7-day warm-up)", _watttime_frame(data_dir),
               {"provider (<= 65 min)": "provider", "seasonal extension": "seasonal",
                "persistence (last actual)": "persistence",
                "persistence (last provider value)": "persist_provider"},
               [0, 1.1, 3, 6, 12, 24.1])
    hourly = _hourly_frame(data_dir)
    _mae_table("EIA-930 2022 (6 BAs, hourly) + Germany 2020 (15 min): extension from the last "
               "actual (origins every 13 h)", hourly,
               {"seasonal extension": "forecast", "persistence": "persistence"},
               [0, 1, 3, 6, 12, 24, 48, 96, 168])


# --- 3. Calibration ---------------------------------------------------------------------------


def bench_calibration(data_dir: Path) -> None:
    """Section 3."""
    sets = datasets.calibration_sets(data_dir)
    refit = calibration.refit_default_models(sets)
    shipped = {"average-ci": uncertainty.AVERAGE_CI_MODEL, "moer": uncertainty.MOER_MODEL,
               "seasonal-extension": uncertainty.SEASONAL_EXTENSION_MODEL,
               "typical-profile": uncertainty.TYPICAL_PROFILE_MODEL}
    print("\n## Calibration: share of actuals inside p10-p90 on data not fitted on "
          "(nominal 0.80)")
    print("| model | held-out coverage | pairs | method | shipped constants reproduced |")
    print("| --- | --- | --- | --- | --- |")
    for key, result in refit.items():
        print(f"| {key} | {result.held_out_coverage:.3f} | {result.held_out_pairs} | "
              f"{result.method} | {result.model == shipped[key]} |")
    for key, edges in (("moer", [0, 0.26, 0.51, 0.76, 1.1]),
                       ("seasonal-extension", [0, 6, 24, 72, 169])):
        _, held_out = calibration.split_by_issue_time(sets[key])
        rows = calibration.coverage_by_lead(shipped[key], held_out, edges)
        text = ", ".join(f"{lo:g}-{hi:g} h: {cov:.3f}" for lo, hi, _, cov in rows)
        print(f"{key} held-out coverage by lead: {text}")


def main() -> None:
    """Run all sections."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3000, help="FindBestWindow repetitions")
    args = parser.parse_args()
    data_dir = load_settings().shared_data_dir
    print(f"# gridshift forecasting benchmark ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)")
    bench_best_window(data_dir, args.reps)
    if not data_dir.exists():
        print(f"\n(shared data not found at {data_dir}: extension and calibration skipped)")
        return
    bench_extension(data_dir)
    bench_calibration(data_dir)


if __name__ == "__main__":
    main()
