"""Horizon extension: a seasonal model past the provider's horizon, labelled as such."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from conftest import SHARED_DATA, needs_shared_data

from gridshift.adapters.datasets import load_hourly_actuals
from gridshift.forecasting import extension
from gridshift.forecasting.series import Forecast

T0 = datetime(2026, 6, 15, tzinfo=UTC)


def _daily(hours_of_day: np.ndarray) -> np.ndarray:
    return 200.0 + 80.0 * np.sin(2 * np.pi * hours_of_day / 24.0)


def _forecast(days=3.0, step=30, start=T0, level=0.0, **extra) -> Forecast:
    n = int(days * 1440 / step)
    hod = (np.arange(n) * step + step / 2) / 60.0
    return Forecast(region="R", start=start, slot_minutes=step,
                    carbon_intensity=tuple(_daily(hod) + level), provider="p", issued_at=start,
                    **extra)


def test_nothing_to_extend_returns_the_forecast_unlabelled():
    f = _forecast()
    result = extension.extend(f, f.end - timedelta(hours=1))
    assert result.forecast is f
    assert result.extended_from is None
    assert result.detail == ""


def test_extension_reproduces_the_daily_pattern_and_is_labelled():
    f = _forecast(days=3)
    until = f.end + timedelta(hours=47, minutes=10)
    result = extension.extend(f, until)
    ext = result.forecast
    assert result.extended_from == f.end
    assert "extended by seasonal model from 2026-06-18T00:00:00Z" in result.detail
    assert ext.end >= until and ext.end - until < timedelta(minutes=30)
    assert ext.carbon_intensity[: len(f.carbon_intensity)] == f.carbon_intensity
    added = np.array(ext.carbon_intensity[len(f.carbon_intensity):])
    hod = (np.arange(len(added)) * 30 + 15) / 60.0
    # Hourly profile of a smooth curve: within the within-hour variation of the truth.
    np.testing.assert_allclose(added, _daily(hod), atol=12.0)
    assert ext.provider == f.provider and ext.issued_at == f.issued_at


def test_recent_anomaly_decays_towards_the_profile():
    base = np.array(_forecast(days=14).carbon_intensity)
    base[-4:] += 100.0  # the last two hours are 100 g above the usual
    f = replace(_forecast(days=14), carbon_intensity=tuple(base))
    added = np.array(extension.extend(f, f.end + timedelta(days=7)).forecast
                     .carbon_intensity[len(base):])
    truth = _daily((np.arange(len(added)) * 30 + 15) / 60.0)
    excess = added - truth
    assert excess[0] == pytest.approx(100.0 * 13 / 14, abs=15)  # profile absorbs 1/14 of it
    assert excess[-1] < 10.0
    assert excess[0] > excess[48] > excess[-1]


def test_history_feeds_the_profile_when_the_forecast_is_short():
    history = _forecast(days=14, step=60, start=T0 - timedelta(days=14))
    short = _forecast(days=0.25, step=15)  # 6 h of 15-min data, no full day
    result = extension.extend(short, short.end + timedelta(days=2), history=history)
    added = np.array(result.forecast.carbon_intensity[len(short.carbon_intensity):])
    hod = (6 * 60 + np.arange(len(added)) * 15 + 7.5) / 60.0
    np.testing.assert_allclose(added[96:], _daily(hod[96:]), atol=15.0)


def test_prices_and_bands_are_extended():
    f = _forecast(price_per_mwh=tuple(50.0 + i % 48 for i in range(144)))
    ext = extension.extend(f, f.end + timedelta(days=1)).forecast
    n = len(ext.carbon_intensity)
    assert len(ext.price_per_mwh) == len(ext.carbon_intensity_p10) == n
    ci, p10, p90 = (np.array(x) for x in (ext.carbon_intensity, ext.carbon_intensity_p10,
                                          ext.carbon_intensity_p90))
    assert (p10 <= ci).all() and (ci <= p90).all() and (p10 >= 0).all()
    rel = ((p90 - p10) / ci)[len(f.carbon_intensity):]
    assert (np.diff(rel) >= -1e-9).all()  # the extended band never narrows
    assert rel[0] >= ((p90 - p10) / ci)[len(f.carbon_intensity) - 1] - 1e-9


def test_provider_band_is_kept_and_no_band_when_not_asked():
    f = _forecast()
    own = replace(f, carbon_intensity_p10=tuple(v - 5 for v in f.carbon_intensity),
                  carbon_intensity_p90=tuple(v + 5 for v in f.carbon_intensity))
    ext = extension.extend(own, own.end + timedelta(hours=6), fill_quantiles=False).forecast
    assert ext.carbon_intensity_p10[: len(own.carbon_intensity)] == own.carbon_intensity_p10
    bare = extension.extend(f, f.end + timedelta(hours=6), fill_quantiles=False).forecast
    assert bare.carbon_intensity_p10 == () and bare.price_per_mwh == ()


def test_gaps_and_non_negativity():
    values = np.array(_forecast(days=2).carbon_intensity) - 190.0
    values[10:20] = np.nan
    f = replace(_forecast(days=2), carbon_intensity=tuple(values))
    added = np.array(extension.extend(f, f.end + timedelta(days=1)).forecast.carbon_intensity)
    assert np.isfinite(added[len(values):]).all()
    assert (added[len(values):] >= 0).all()


def test_errors():
    empty = replace(_forecast(), carbon_intensity=())
    with pytest.raises(ValueError, match="empty"):
        extension.extend(empty, T0 + timedelta(days=1))
    nan = replace(_forecast(days=1), carbon_intensity=(float("nan"),) * 48)
    with pytest.raises(ValueError, match="finite"):
        extension.extend(nan, T0 + timedelta(days=2))


def test_backtest_beats_persistence_on_a_daily_series():
    n = 24 * 40
    rng = np.random.default_rng(0)
    values = _daily(np.arange(n) + 0.5) + rng.normal(0, 5, n)
    actuals = Forecast("R", T0, 60, tuple(values))
    frame = extension.backtest_vintages(actuals, horizon_h=48, every_h=13)
    assert list(frame.columns) == ["issued_at", "valid_at", "forecast", "persistence", "actual"]
    lead = (frame["valid_at"] - frame["issued_at"]).dt.total_seconds() / 3600
    far = lead >= 6
    seasonal = (frame["forecast"] - frame["actual"]).abs()[far].mean()
    persistence = (frame["persistence"] - frame["actual"]).abs()[far].mean()
    assert seasonal < 0.3 * persistence


def test_seasonal_extension_beats_persistence_on_real_eia_data():
    needs_shared_data("sustaindc-eia", "CISO_NG_&_avgCI.csv")
    series = load_hourly_actuals(SHARED_DATA)["EIA-CISO"]
    frame = extension.backtest_vintages(series, horizon_h=72, every_h=49).dropna()
    lead = (frame["valid_at"] - frame["issued_at"]).dt.total_seconds() / 3600
    for lo, hi in ((6, 24), (24, 72)):
        sel = (lead >= lo) & (lead < hi)
        seasonal = (frame["forecast"] - frame["actual"]).abs()[sel].mean()
        persistence = (frame["persistence"] - frame["actual"]).abs()[sel].mean()
        assert seasonal < 0.7 * persistence, (lo, hi, seasonal, persistence)
