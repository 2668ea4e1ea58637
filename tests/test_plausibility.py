"""The unit plausibility rule (forecasting/plausibility.py): kg/kWh read as g/kWh is refused, and
no real series in ../shared/data is (every day and every hour of them, against the embedded
profile of its region)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA, needs_shared_data

from gridshift.forecasting.plausibility import KnownLevel, unit_error
from gridshift.forecasting.profiles import typical_intensity
from gridshift.forecasting.series import AVERAGE, MARGINAL, Forecast

T0 = datetime(2026, 6, 15, tzinfo=UTC)
PROFILE = KnownLevel(250.0, "embedded typical profile")


def series(values, signal: str = AVERAGE, slot_minutes: int = 60) -> Forecast:
    return Forecast("R", T0, slot_minutes, tuple(float(v) for v in values), signal=signal)


def test_a_day_in_kg_per_kwh_is_refused_without_a_known_level() -> None:
    kg = series(0.26 + 0.05 * np.sin(np.arange(24)))
    assert "24 h in a row below 1 gCO2e/kWh" in unit_error(kg)
    # Half a day is not a whole day: with nothing to compare it with, it passes.
    assert unit_error(series(kg.carbon_intensity[:12])) is None
    # A gap inside the day does not break it; 5-min steps count by time.
    gappy = series([*kg.carbon_intensity[:10], float("nan"), *kg.carbon_intensity[11:]])
    assert unit_error(gappy) is not None
    assert unit_error(series(np.full(288, 0.3), slot_minutes=5)) is not None
    assert unit_error(series(np.full(287, 0.3), slot_minutes=5)) is None


def test_the_level_ratio_refuses_kg_and_mg_and_keeps_clean_grids() -> None:
    assert "below the region's known level of 250" in unit_error(series([0.25] * 6), PROFILE)
    assert "x the region's known level" in unit_error(series([5200.0] * 6), PROFILE)
    # A clean hydro grid against its own level, a windy day at a third of the typical level.
    assert unit_error(series([22.0] * 24), KnownLevel(60.0, "profile")) is None
    assert unit_error(series([85.0] * 24), PROFILE) is None
    assert unit_error(series([13.0] * 6), PROFILE) is None          # 19x below: kept
    assert unit_error(series([12.0] * 6), PROFILE) is not None      # 21x below: refused


def test_marginal_rates_may_be_zero_for_hours_not_for_a_day() -> None:
    curtailed = series([0.0] * 6, signal=MARGINAL)
    assert unit_error(curtailed, PROFILE) is None
    assert unit_error(series([0.0] * 24, signal=MARGINAL), PROFILE) is not None
    assert unit_error(series([6000.0] * 6, signal=MARGINAL), PROFILE) is not None


def _hourly(values: pd.Series) -> pd.Series:
    return values.sort_index().resample("1h").mean().dropna()


def _real_series() -> dict[str, list[tuple[str, pd.Series, str]]]:
    from gridshift.adapters import datasets

    found: list[tuple[str, pd.Series, str]] = []
    for region, code in datasets.EIA_CODES.items():
        frame = datasets.read_eia_hours(SHARED_DATA, code)
        found.append((region, _hourly(frame.set_index("timestamp")["avg_CI"]), AVERAGE))
    de = datasets.read_de_quarter_hours(SHARED_DATA)
    found.append(("DE", _hourly(de.set_index("time")["DE"]), AVERAGE))
    gb = datasets.read_gb_national_half_hours(SHARED_DATA)
    found.append(("GB", _hourly(gb.set_index("time")["intensity"]), AVERAGE))
    wt = datasets.load_watttime_caiso(SHARED_DATA).drop_duplicates("valid_at")
    found.append(("US-CAL-CISO", _hourly(wt.set_index("valid_at")["actual"]), MARGINAL))
    return found


def test_no_real_day_or_hour_in_the_shared_data_is_refused() -> None:
    """EIA-930 2022 (6 balancing authorities), Germany 2020, GB March 2023 (NESO) and
    WattTime CAISO_NORTH MOER 2023, each day and each hour against its region's embedded
    profile over the same hours: nothing is refused (the closest is a factor of ~7.5, the PJM
    glitch hours of October 2022, against the rule's 20)."""
    needs_shared_data("sustaindc-eia")
    needs_shared_data("uk-carbon-intensity-forecast-tracking")
    needs_shared_data("vessim", "watttime2023_casio-north.zip")
    refused = []
    for region, values, signal in _real_series():
        start = values.index[0].to_pydatetime()
        hours = int((values.index[-1] - values.index[0]) / timedelta(hours=1)) + 1
        profile = pd.Series(typical_intensity(region, start, hours, 60),
                            index=pd.date_range(values.index[0], periods=hours, freq="h"))
        level = profile.reindex(values.index).to_numpy(float)
        data = values.to_numpy(float)
        days = values.index.floor("D")
        windows = [slice(i, i + 1) for i in range(len(data))]
        windows += [slice(int(np.argmax(days == d)), int(len(days) - np.argmax(days[::-1] == d)))
                    for d in days.unique()]
        for window in windows:
            forecast = Forecast(region, values.index[window.start].to_pydatetime(), 60,
                                tuple(data[window]), signal=signal)
            problem = unit_error(forecast, KnownLevel(float(level[window].mean()), "profile"))
            if problem:
                refused.append(f"{region} {values.index[window.start]}: {problem}")
    assert not refused, refused[:5]


@pytest.mark.parametrize("sample", ["carbon_intensity_history.json"])
def test_the_recorded_electricity_maps_day_is_kept(sample: str) -> None:
    import json

    body = json.loads(needs_shared_data("electricitymaps-api", sample).read_text())
    values = [item["carbonIntensity"] for item in body["history"]]
    start = datetime.fromisoformat(body["history"][0]["datetime"].replace("Z", "+00:00"))
    level = float(np.mean(typical_intensity("DE", start, len(values), 60)))
    assert unit_error(Forecast("DE", start, 60, tuple(map(float, values))),
                      KnownLevel(level, "profile")) is None
