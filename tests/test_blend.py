"""gridshift.forecasting.blend: a provider's average-intensity forecast blended with the seasonal
model of recorded actuals — better than either input where their errors are what the
calibrations say, only actuals published before the issue time are used, and it stays out of
the way where it does not apply (marginal signals, the embedded profile, too little history)."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from gridshift.forecasting import uncertainty
from gridshift.forecasting.blend import (
    HISTORY_DAYS,
    MIN_HISTORY_H,
    blend_with_actuals,
    provider_weight,
    seasonal_error_scale,
)
from gridshift.forecasting.extension import fit_seasonal
from gridshift.forecasting.series import Forecast

ISSUED = datetime(2026, 3, 16, 0, 0, tzinfo=UTC)
HOURS = 48


def truth(hours: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A solar-shaped daily cycle with slow weather (AR(1) in log space) on top."""
    daily = 300.0 * (1.0 - 0.45 * np.clip(np.sin(2 * np.pi * (hours % 24 - 6) / 24), 0, None))
    weather = np.zeros(len(hours))
    for i in range(1, len(hours)):
        weather[i] = 0.97 * weather[i - 1] + 0.02 * rng.standard_normal()
    return daily * np.exp(weather)


def series(values: np.ndarray, start: datetime, provider: str, issued: datetime | None = None,
           ) -> Forecast:
    return Forecast(region="DE", start=start, slot_minutes=60,
                    carbon_intensity=tuple(float(v) for v in values), provider=provider,
                    issued_at=issued)


def case(seed: int, history_days: int = 14, provider: str = "electricitymaps"):
    """(actuals before ISSUED, provider forecast from ISSUED, the true values it forecasts)."""
    rng = np.random.default_rng(seed)
    hours = np.arange(-history_days * 24, HOURS, dtype=float)
    values = truth(hours, rng)
    past, future = values[:history_days * 24], values[history_days * 24:]
    sigma = uncertainty.DEFAULT.sigma_log(np.arange(HOURS, dtype=float))
    noise = np.cumsum(rng.standard_normal(HOURS)) / np.sqrt(np.arange(1, HOURS + 1))
    forecast = future * np.exp(sigma * noise)
    return (series(past, ISSUED - timedelta(days=history_days), "actuals"),
            series(forecast, ISSUED, provider, ISSUED), future)


def rms_log_error(values, future: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.log(np.asarray(values) / future) ** 2)))


def test_blend_beats_the_provider_forecast_where_the_errors_are_as_calibrated() -> None:
    gains = []
    for seed in range(6):
        actuals, forecast, future = case(seed)
        blend = blend_with_actuals(forecast, actuals)
        assert blend.applied and "blended with the seasonal model" in blend.forecast.detail
        gains.append(rms_log_error(forecast.carbon_intensity, future)
                     - rms_log_error(blend.forecast.carbon_intensity, future))
    assert min(gains) > 0, gains


def test_blended_values_lie_between_the_inputs_and_the_band_is_narrower() -> None:
    actuals, forecast, _ = case(1)
    blended = blend_with_actuals(forecast, actuals).forecast
    provider = np.asarray(forecast.carbon_intensity)
    seasonal = fit_seasonal(np.asarray(actuals.carbon_intensity), actuals.start, 60).predict(
        ISSUED, 60, HOURS)
    b = np.asarray(blended.carbon_intensity)
    assert (b >= np.minimum(provider, seasonal) - 1e-9).all()
    assert (b <= np.maximum(provider, seasonal) + 1e-9).all()
    p10, p90 = np.asarray(blended.carbon_intensity_p10), np.asarray(blended.carbon_intensity_p90)
    assert (p10 < b).all() and (b < p90).all()
    raw_p10, _, raw_p90 = uncertainty.quantiles(provider, ISSUED, ISSUED, 60)
    assert (np.log(p90 / p10) < np.log(raw_p90 / raw_p10)).all()
    assert blended.provider == forecast.provider and blended.issued_at == forecast.issued_at


def test_the_seasonal_model_weighs_most_near_the_last_actual() -> None:
    lead = np.arange(48, dtype=float)
    fresh = provider_weight(lead, lead + 1, uncertainty.DEFAULT)
    stale = provider_weight(lead, lead + 24, uncertainty.DEFAULT)
    assert ((fresh > 0) & (fresh < 1)).all()
    assert fresh[0] < 0.3 and (stale > fresh).all()


def test_actuals_after_the_issue_time_are_not_used() -> None:
    actuals, forecast, future = case(2)
    leaked_values = np.concatenate([actuals.carbon_intensity, future * 5.0])
    leaked = series(leaked_values, actuals.start, "actuals")
    np.testing.assert_allclose(blend_with_actuals(forecast, leaked).forecast.carbon_intensity,
                               blend_with_actuals(forecast, actuals).forecast.carbon_intensity)


@pytest.mark.parametrize(("provider", "what"), [("watttime", {"signal": "marginal"}),
                                               ("embedded-typical-profile",
                                                {"typical_profile": True})])
def test_marginal_signals_and_the_embedded_profile_are_left_alone(provider: str,
                                                                  what: dict) -> None:
    actuals, forecast, _ = case(3, provider=provider)
    forecast = replace(forecast, **what)
    blend = blend_with_actuals(forecast, actuals)
    assert not blend.applied and blend.forecast == forecast
    assert provider in blend.note


def test_too_little_history_leaves_the_forecast_unchanged() -> None:
    days = math.floor(MIN_HISTORY_H / 24) - 1
    actuals, forecast, _ = case(4, history_days=days)
    blend = blend_with_actuals(forecast, actuals)
    assert not blend.applied and blend.forecast == forecast
    assert f"{days * 24} h of actuals" in blend.note
    assert not blend_with_actuals(forecast, None).applied


def test_gaps_in_the_actuals_are_tolerated() -> None:
    actuals, forecast, future = case(5)
    values = np.asarray(actuals.carbon_intensity)
    values[::5] = np.nan                        # a fifth of the hours missing
    values[-3:] = np.nan                        # and the latest hours not yet published
    gappy = series(values, actuals.start, "actuals")
    blend = blend_with_actuals(forecast, gappy)
    assert blend.applied and np.isfinite(blend.forecast.carbon_intensity).all()
    assert (rms_log_error(blend.forecast.carbon_intensity, future)
            < rms_log_error(forecast.carbon_intensity, future))


def _cycle_with_weather(days: int, weather_sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hours = np.arange(days * 24, dtype=float)
    daily = 300.0 * (1.0 - 0.45 * np.clip(np.sin(2 * np.pi * (hours % 24 - 6) / 24), 0, None))
    weather = np.zeros(len(hours))
    for i in range(1, len(hours)):
        weather[i] = 0.9 * weather[i - 1] + weather_sigma * rng.standard_normal()
    return daily * np.exp(weather)


def test_the_seasonal_models_error_is_measured_on_the_regions_own_actuals() -> None:
    start = ISSUED - timedelta(days=HISTORY_DAYS)
    scales = [seasonal_error_scale(_cycle_with_weather(HISTORY_DAYS, sigma, 7), start, 60)
              for sigma in (0.005, 0.05, 0.15)]
    assert all(s is not None for s in scales)
    assert scales[0] < scales[1] < scales[2], scales
    assert scales[0] < 1.0 < scales[2]
    # Eight days are too few to replay it from four origins with a week to fit each on.
    assert seasonal_error_scale(_cycle_with_weather(8, 0.05, 7), start, 60) is None


def test_a_seasonal_model_that_errs_more_weighs_less() -> None:
    _, forecast, _ = case(6)
    moved, first_weight = {}, {}
    for sigma in (0.005, 0.15):
        values = _cycle_with_weather(HISTORY_DAYS, sigma, 8)
        actuals = series(values, ISSUED - timedelta(days=HISTORY_DAYS), "actuals")
        blend = blend_with_actuals(forecast, actuals)
        assert blend.applied and "x the calibrated" in blend.note
        moved[sigma] = np.mean(np.abs(np.log(np.asarray(blend.forecast.carbon_intensity)
                                             / np.asarray(forecast.carbon_intensity))))
        first_weight[sigma] = float(blend.note.split("provider's forecast ")[1].split()[0])
    assert first_weight[0.15] > first_weight[0.005]
    assert moved[0.15] < moved[0.005]
