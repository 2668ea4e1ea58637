"""Readers of the research data sets gridshift is calibrated and backtested on.

One module for every file format of the public data in the shared data folder (its
``SOURCES.md`` describes each file and its licence): the GB NESO forecast vintages, WattTime
CAISO forecasts and actuals, the EIA-930 balancing-authority hours, the German 15-minute
series and the Microsoft Philly GPU trace. The core (``gridshift.forecasting``,
``gridshift.optimizer``) loads no files: calibration, profile derivation and the backtest get
their frames and series from here. Where the folder is comes from the settings
(``GRIDSHIFT_SHARED_DATA``).
"""

from __future__ import annotations

import functools
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from gridshift.forecasting import calibration, extension
from gridshift.forecasting.series import Forecast

__all__ = [
    "EIA_CODES",
    "calibration_sets",
    "load_carbon_series",
    "load_hourly_actuals",
    "load_trace",
    "load_uk_tracking",
    "load_watttime_caiso",
    "read_de_quarter_hours",
    "read_eia_hours",
    "read_gb_national_half_hours",
]

#: gridshift region -> EIA-930 balancing-authority code of its file.
EIA_CODES = {"US-CAL-CISO": "CISO", "US-TEX-ERCO": "ERCO", "US-MIDA-PJM": "PJM",
             "US-NW-BPAT": "BPAT", "US-NY-NYIS": "NYIS", "US-MIDW-MISO": "MISO"}


def read_eia_hours(data_dir: Path, code: str) -> pd.DataFrame:
    """One balancing authority's EIA-930 2022 hours: ``timestamp`` (UTC), net generation by
    fuel (MWh) and ``avg_CI`` (gCO2e/kWh), as published."""
    frame = pd.read_csv(Path(data_dir) / "sustaindc-eia" / f"{code}_NG_&_avgCI.csv")
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame


def read_de_quarter_hours(data_dir: Path) -> pd.DataFrame:
    """Germany's 15-minute average intensity: ``time`` (UTC; the file's naive timestamps are
    UTC) and ``DE`` (gCO2e/kWh)."""
    frame = pd.read_csv(Path(data_dir) / "vessim" / "carbon_intensity.csv")
    frame["time"] = pd.to_datetime(frame["time"]).dt.tz_localize("UTC")
    return frame


def read_gb_national_half_hours(data_dir: Path) -> pd.DataFrame:
    """GB national average intensity per half-hour from the NESO tracking files: ``time``
    (UTC, the half-hour's start), ``intensity`` (gCO2/kWh) and ``actual`` (True where it is
    the published actual; False where no actual was published and the latest forecast issued
    before the half-hour stands in), over the span of the actuals."""
    root = Path(data_dir) / "uk-carbon-intensity-forecast-tracking"
    actuals = pd.concat([pd.read_csv(f) for f in sorted((root / "national_pt24h").glob("*.csv"))])
    actuals["from"] = pd.to_datetime(actuals["from"], utc=True)
    actuals = actuals.dropna(subset=["intensity.actual"]).drop_duplicates("from")
    by_time = actuals.set_index("from")["intensity.actual"].astype(float).sort_index()
    forecasts: dict[pd.Timestamp, float] = {}
    for path in sorted((root / "national_fw48h").glob("*.csv")):   # oldest vintage first
        issued = pd.Timestamp(path.stem.replace("Z", ""), tz="UTC")
        vintage = pd.read_csv(path)
        for when, value in zip(pd.to_datetime(vintage["from"], utc=True),
                               vintage["intensity.forecast"].astype(float), strict=True):
            if when >= issued:
                forecasts[when] = value   # a later vintage replaces an earlier one
    grid = pd.date_range(by_time.index[0].floor("h"), by_time.index[-1], freq="30min")
    values = [by_time.get(t, forecasts.get(t, np.nan)) for t in grid]
    return pd.DataFrame({"time": grid, "intensity": np.asarray(values, dtype=float),
                         "actual": [t in by_time.index for t in grid]})


def load_uk_tracking(data_dir: Path) -> pd.DataFrame:
    """GB national 48-h forecast vintages (fw48h) joined with the pt24h actuals: columns
    issued_at, valid_at, forecast, actual."""
    root = Path(data_dir) / "uk-carbon-intensity-forecast-tracking"
    actual_files = sorted((root / "national_pt24h").glob("*.csv"))
    actuals = pd.concat([pd.read_csv(f) for f in actual_files])
    actuals["from"] = pd.to_datetime(actuals["from"], utc=True)
    actuals = actuals.dropna(subset=["intensity.actual"]).drop_duplicates("from")
    by_time = actuals.set_index("from")["intensity.actual"]
    frames = []
    for path in sorted((root / "national_fw48h").glob("*.csv")):
        vintage = pd.read_csv(path)
        valid_at = pd.to_datetime(vintage["from"], utc=True)
        frames.append(pd.DataFrame({
            "issued_at": pd.Timestamp(path.stem.replace("Z", ""), tz="UTC"),
            "valid_at": valid_at,
            "forecast": vintage["intensity.forecast"].astype(float),
            "actual": valid_at.map(by_time).astype(float),
        }))
    return pd.concat(frames, ignore_index=True).dropna(subset=["actual"])


def load_watttime_caiso(data_dir: Path) -> pd.DataFrame:
    """WattTime CAISO_NORTH MOER forecasts (5-65 min ahead) joined with the actuals."""
    path = Path(data_dir) / "vessim" / "watttime2023_casio-north.zip"
    with zipfile.ZipFile(path) as archive:
        with archive.open("watttime2023_casio-north_actual.csv") as handle:
            actual = pd.read_csv(handle)
        with archive.open("watttime2023_casio-north_forecast.csv") as handle:
            forecast = pd.read_csv(handle)
    by_time = pd.Series(actual["value"].to_numpy(float),
                        index=pd.to_datetime(actual["point_time"], utc=True))
    valid_at = pd.to_datetime(forecast["point_time"], utc=True)
    frame = pd.DataFrame({
        "issued_at": pd.to_datetime(forecast["generated_at"], utc=True),
        "valid_at": valid_at,
        "forecast": forecast["value"].astype(float),
        "actual": valid_at.map(by_time).astype(float),
    })
    return frame.dropna(subset=["actual"]).reset_index(drop=True)


def _regular(times: pd.Series, values: np.ndarray, step_minutes: int, region: str,
             provider: str) -> Forecast:
    """A Forecast holding actuals on a regular grid (missing steps are NaN)."""
    series = pd.Series(values, index=pd.DatetimeIndex(times)).sort_index()
    series = series[~series.index.duplicated()]
    grid = pd.date_range(series.index[0], series.index[-1], freq=f"{step_minutes}min")
    series = series.reindex(grid)
    return Forecast(region=region, start=grid[0].to_pydatetime(), slot_minutes=step_minutes,
                    carbon_intensity=tuple(series.to_numpy(float)), provider=provider)


def load_hourly_actuals(data_dir: Path) -> dict[str, Forecast]:
    """Real carbon-intensity actuals as Forecast-shaped series (NaN where missing): EIA-930 2022
    hourly ``avg_CI`` of six US balancing authorities (``EIA-CISO``, ...) and Germany 2020
    (15 min, ``DE``)."""
    series: dict[str, Forecast] = {}
    for code in EIA_CODES.values():
        frame = read_eia_hours(data_dir, code)
        series[f"EIA-{code}"] = _regular(frame["timestamp"], frame["avg_CI"].to_numpy(float),
                                         60, f"EIA-{code}", "actuals:EIA-930")
    frame = read_de_quarter_hours(data_dir)
    series["DE"] = _regular(frame["time"], frame["DE"].to_numpy(float), 15, "DE",
                            "actuals:vessim-DE")
    return series


def calibration_sets(data_dir: Path) -> dict[str, pd.DataFrame]:
    """Forecast-vs-actual vintages per calibrated model name, as
    :func:`gridshift.forecasting.calibration.refit_default_models` takes them."""
    actuals = load_hourly_actuals(data_dir)
    eia = {f"EIA-{code}": region for region, code in EIA_CODES.items()}
    return {
        "average-ci": load_uk_tracking(data_dir),
        "moer": load_watttime_caiso(data_dir),
        "seasonal-extension": pd.concat(
            [extension.backtest_vintages(series, horizon_h=168, every_h=25).assign(source=name)
             for name, series in actuals.items()], ignore_index=True),
        "typical-profile": calibration.typical_profile_vintages(
            {region: actuals[name] for name, region in eia.items()}),
    }


@functools.lru_cache(maxsize=16)
def load_carbon_series(region: str, data_dir: Path) -> pd.Series:
    """Hourly actual intensity (gCO2e/kWh) of a backtest region (``DE`` or an EIA region) on
    a UTC index, gaps interpolated."""
    if region == "DE":
        frame = read_de_quarter_hours(data_dir)
        series = frame.set_index("time")["DE"].resample("1h").mean()
    else:
        frame = read_eia_hours(data_dir, EIA_CODES[region])
        series = frame.set_index("timestamp")["avg_CI"].resample("1h").mean()
    return series.interpolate(limit_direction="both").astype(float)


@functools.lru_cache(maxsize=4)
def load_trace(data_dir: Path) -> pd.DataFrame:
    """The Philly trace: ``arrival`` (UTC), ``duration_s``, ``gpus``, sorted by arrival."""
    frame = pd.read_csv(Path(data_dir) / "philly-adaptdl" / "philly.csv")
    local = pd.to_datetime(frame["timestamp"])
    arrival = local.dt.tz_localize("America/Los_Angeles", ambiguous=False,
                                   nonexistent="shift_forward").dt.tz_convert("UTC")
    out = pd.DataFrame({"arrival": arrival, "duration_s": frame["duration"].astype(float),
                        "gpus": frame["num_gpus"].astype(int)})
    return out.sort_values("arrival", kind="stable").reset_index(drop=True)
