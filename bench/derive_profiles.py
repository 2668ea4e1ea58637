"""Derive ``typical_profiles.csv``: typical-day grid profiles by (month, UTC hour).

Developer script, not part of the package: it reproduces the embedded profiles from the shared
data (the files are read by ``gridshift.adapters.datasets``). Run it from the repository root
with the shared data checkout next to it (``../shared/data``, or ``GRIDSHIFT_SHARED_DATA``)::

    .venv/bin/python bench/derive_profiles.py [--data-dir ../shared/data] [--output FILE]

Sources and licences (see ``../shared/data/SOURCES.md`` for commits and git blob ids):

* EIA-930 hourly balancing-authority data for 2022 (U.S. Energy Information Administration;
  U.S.-government public data), as redistributed in HewlettPackard/dc-rl ("SustainDC", MIT
  licence) @ a92b4755aca560e34a98d14028dda629eb968482, files
  ``data/CarbonIntensity/{CISO,ERCO,PJM,BPAT,NYIS,MISO}_NG_&_avgCI.csv``: timestamp (UTC), net
  generation by fuel (WND, SUN, WAT, OIL, NG, COL, NUC, OTH; MWh per hour) and ``avg_CI``
  (gCO2e/kWh, a generation-weighted mean of IPCC AR5 life-cycle factors).
* Germany, average grid carbon intensity, 15-minute resolution, 2019-12-20 .. 2021-01-09, from
  dos-group/vessim (MIT licence, "Copyright 2024 Philipp Wiesner") @ 47430ec2,
  ``examples/data/carbon_intensity.csv`` (column ``DE``, gCO2e/kWh; naive timestamps, UTC
  inferred). The values come from ENTSO-E production data (dos-group/lets-wait-awhile).
* Great Britain (``GB``), national average carbon intensity per half-hour, 2023-03-14 03:00 ..
  2023-03-17 03:00 UTC: the NESO Carbon Intensity API (``api.carbonintensity.org.uk``, CC BY
  4.0) as scraped by nmpowell/carbon-intensity-forecast-tracking (MIT licence, "Copyright (c)
  2023 Nick Powell") @ 91212edb, ``data/national_pt24h/*.csv`` (the published actuals) and, for
  the five half-hours without a published actual, the latest ``data/national_fw48h/*.csv``
  forecast issued before them. Only these three days exist in the shared data, so every month
  gets the same hour-of-day profile (each hour the mean of its six half-hours).

Output columns (long format, one row per region x month x UTC hour):
``region,month,hour_utc,ci_g_per_kwh,solar_share,wind_share,solar_cf``

* ``ci_g_per_kwh``: mean carbon intensity, rounded to 0.1 g/kWh.
* ``solar_share`` / ``wind_share``: mean of SUN / total and WND / total net generation (EIA
  regions only; empty for DE).
* ``solar_cf``: mean of SUN / (the region's 2022 maximum hourly SUN), a normalised solar
  capacity-factor shape in 0..1 (EIA regions with solar only; empty for DE and for NYIS, whose
  EIA-930 SUN column is 0 all year).

Cleaning: rows with an empty ``avg_CI`` or an empty fuel column are dropped, as are the
implausible PJM values (< 100 g/kWh on 2022-10-01/02, EIA data glitches).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from gridshift.adapters.datasets import (
    EIA_CODES,
    read_de_quarter_hours,
    read_eia_hours,
    read_gb_national_half_hours,
)
from gridshift.settings import load_settings

DE_REGION = "DE"
GB_REGION = "GB"
#: The whole days of GB data used: 72 h, so that every UTC hour has six half-hours.
GB_DAYS = ("2023-03-14T03:00Z", "2023-03-17T03:00Z")
FUEL_COLUMNS = ["WND", "SUN", "WAT", "OIL", "NG", "COL", "NUC", "OTH"]
OUTPUT_COLUMNS = [
    "region",
    "month",
    "hour_utc",
    "ci_g_per_kwh",
    "solar_share",
    "wind_share",
    "solar_cf",
]
PJM_GLITCH_DATES = ("2022-10-01", "2022-10-02")
PJM_GLITCH_MAX_G_PER_KWH = 100.0

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "forecasting" / "data" / \
    "typical_profiles.csv"


def _full_index() -> pd.MultiIndex:
    """All (month, hour_utc) pairs, so that every region has 12 x 24 rows."""
    return pd.MultiIndex.from_product([range(1, 13), range(24)], names=["month", "hour_utc"])


def eia_profile(region: str, raw: pd.DataFrame) -> pd.DataFrame:
    """Typical-day profile of one EIA-930 balancing authority (its hours as read)."""
    data = raw.dropna(subset=["avg_CI", *FUEL_COLUMNS]).copy()
    if region == "US-MIDA-PJM":
        day = data["timestamp"].dt.strftime("%Y-%m-%d")
        glitch = day.isin(PJM_GLITCH_DATES) & (data["avg_CI"] < PJM_GLITCH_MAX_G_PER_KWH)
        data = data[~glitch]
    fuels = data[FUEL_COLUMNS].clip(lower=0.0)
    total_mwh = fuels.sum(axis=1)
    data = data[total_mwh > 0]
    fuels = fuels.loc[data.index]
    total_mwh = total_mwh.loc[data.index]
    sun_max_mwh = float(fuels["SUN"].max())
    frame = pd.DataFrame(
        {
            "month": data["timestamp"].dt.month,
            "hour_utc": data["timestamp"].dt.hour,
            "ci_g_per_kwh": data["avg_CI"],
            "solar_share": fuels["SUN"] / total_mwh,
            "wind_share": fuels["WND"] / total_mwh,
            "solar_cf": fuels["SUN"] / sun_max_mwh if sun_max_mwh > 0 else np.nan,
        }
    )
    means = frame.groupby(["month", "hour_utc"]).mean().reindex(_full_index())
    means.insert(0, "region", region)
    return means.reset_index()


def de_profile(raw: pd.DataFrame) -> pd.DataFrame:
    """Typical-day profile of Germany (carbon intensity only; no generation mix)."""
    data = raw.dropna(subset=["DE"])
    frame = pd.DataFrame(
        {
            "month": data["time"].dt.month,
            "hour_utc": data["time"].dt.hour,
            "ci_g_per_kwh": data["DE"],
        }
    )
    means = frame.groupby(["month", "hour_utc"]).mean().reindex(_full_index())
    means["solar_share"] = np.nan
    means["wind_share"] = np.nan
    means["solar_cf"] = np.nan
    means.insert(0, "region", DE_REGION)
    return means.reset_index()


def gb_profile(raw: pd.DataFrame) -> pd.DataFrame:
    """Typical-day profile of Great Britain: the mean of each UTC hour over the three days of
    NESO national data, the same in every month (there is no other month to go by)."""
    start, end = (pd.Timestamp(t) for t in GB_DAYS)
    data = raw[(raw["time"] >= start) & (raw["time"] < end)].dropna(subset=["intensity"])
    by_hour = data.groupby(data["time"].dt.hour)["intensity"].mean()
    if len(by_hour) != 24:
        raise SystemExit(f"GB data lacks hours: {sorted(set(range(24)) - set(by_hour.index))}")
    index = _full_index()
    means = pd.DataFrame({"ci_g_per_kwh": by_hour.reindex(index.get_level_values("hour_utc"))
                          .to_numpy()}, index=index)
    means["solar_share"] = np.nan
    means["wind_share"] = np.nan
    means["solar_cf"] = np.nan
    means.insert(0, "region", GB_REGION)
    return means.reset_index()


def derive(data_dir: Path) -> pd.DataFrame:
    """Build the long table of all regions."""
    parts = [eia_profile(region, read_eia_hours(data_dir, code))
             for region, code in EIA_CODES.items()]
    parts.append(de_profile(read_de_quarter_hours(data_dir)))
    parts.append(gb_profile(read_gb_national_half_hours(data_dir)))
    table = pd.concat(parts, ignore_index=True)[OUTPUT_COLUMNS]
    if table["ci_g_per_kwh"].isna().any():
        missing = table[table["ci_g_per_kwh"].isna()][["region", "month", "hour_utc"]]
        raise SystemExit(f"profile cells without data:\n{missing}")
    table["ci_g_per_kwh"] = table["ci_g_per_kwh"].round(1)
    for column in ("solar_share", "wind_share", "solar_cf"):
        table[column] = table[column].round(4)
    return table


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="the shared data folder (default: the settings')")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    table = derive(args.data_dir or load_settings().shared_data_dir)
    table.to_csv(args.output, index=False, lineterminator="\n")
    size_bytes = args.output.stat().st_size
    print(f"wrote {args.output} ({len(table)} rows, {size_bytes} bytes)")


if __name__ == "__main__":
    main()
