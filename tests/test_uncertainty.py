"""Uncertainty: bands and scenarios grow with lead time; fitting recovers a known error law;
the shipped constants are reproducible from the real data and cover ~80 % held out."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from conftest import needs_shared_data

from gridshift.forecasting import calibration as cal
from gridshift.forecasting import uncertainty as u
from gridshift.forecasting.series import Forecast
from gridshift.forecasting.sources import EmbeddedProfileSource

T0 = datetime(2026, 6, 15, tzinfo=UTC)


def _forecast(n=96, step=30, **extra) -> Forecast:
    values = tuple(200.0 + 50.0 * np.sin(np.arange(n) * 2 * np.pi * step / 1440.0))
    return Forecast(region="GB", start=T0, slot_minutes=step, carbon_intensity=values,
                    issued_at=T0, provider="uk-carbon-intensity", **extra)


def test_default_sigma_is_positive_and_non_decreasing_in_lead():
    for model in (u.DEFAULT, u.MOER_MODEL, u.SEASONAL_EXTENSION_MODEL, u.TYPICAL_PROFILE_MODEL):
        sigma = model.sigma_log(np.linspace(0, 200, 401))
        assert (sigma > 0).all()
        assert (np.diff(sigma) >= -1e-12).all()


def test_quantiles_bracket_the_forecast_and_widen_with_lead():
    f = _forecast()
    p10, p50, p90 = u.quantiles(np.array(f.carbon_intensity), T0, T0, 30)
    np.testing.assert_allclose(p50, f.carbon_intensity)
    assert (p10 <= p50).all() and (p50 <= p90).all()
    rel_width = (p90 - p10) / p50
    assert rel_width[-1] > rel_width[0]
    # Issued a day earlier: every slot is 24 h further ahead, so the band is wider.
    p10_old, _, p90_old = u.quantiles(np.array(f.carbon_intensity), T0 - timedelta(days=1),
                                      T0, 30)
    assert ((p90_old - p10_old) >= (p90 - p10) - 1e-9).all()


def test_lead_hours_counts_from_issue_time_and_clips_at_zero():
    lead = u.lead_hours(T0 + timedelta(hours=1), T0, 30, 4)
    np.testing.assert_allclose(lead, [0, 0, 0, 0.5])
    np.testing.assert_allclose(u.lead_hours(None, T0, 60, 3), [0, 1, 2])


def test_scenarios_are_deterministic_non_negative_and_match_the_band():
    f = _forecast()
    values = np.array(f.carbon_intensity)
    sims = u.scenarios(values, T0, T0, 30, n=4000, seed=7)
    assert sims.shape == (4000, 96)
    assert (sims >= 0).all()
    np.testing.assert_array_equal(sims, u.scenarios(values, T0, T0, 30, n=4000, seed=7))
    p10, _, p90 = u.quantiles(values, T0, T0, 30)
    inside = ((sims >= p10) & (sims <= p90)).mean()
    assert inside == pytest.approx(0.8, abs=0.02)


def test_scenarios_are_correlated_in_time_as_the_model_says():
    model = replace(u.DEFAULT, corr_time_h=2.0)
    values = np.full(48, 100.0)
    sims = u.scenarios(values, T0, T0, 30, n=3000, seed=1, model=model)
    z = np.log(sims / 100.0) / model.sigma_log(u.lead_hours(T0, T0, 30, 48))
    lag1 = np.corrcoef(z[:, 10], z[:, 11])[0, 1]
    assert lag1 == pytest.approx(np.exp(-0.5 / 2.0), abs=0.05)


def test_scenarios_of_zero_length_and_bad_n():
    assert u.scenarios(np.zeros(0), None, T0, 60, n=3, seed=0).shape == (3, 0)
    with pytest.raises(ValueError):
        u.scenarios(np.ones(3), None, T0, 60, n=-1, seed=0)


def test_with_quantiles_fills_missing_and_keeps_the_providers_own():
    f = _forecast()
    filled = u.with_quantiles(f)
    assert len(filled.carbon_intensity_p10) == len(filled.carbon_intensity_p90) == 96
    own = replace(f, carbon_intensity_p10=tuple(v - 1 for v in f.carbon_intensity),
                  carbon_intensity_p90=tuple(v + 1 for v in f.carbon_intensity))
    assert u.with_quantiles(own) is own
    half = replace(f, carbon_intensity_p90=own.carbon_intensity_p90)
    result = u.with_quantiles(half)
    assert result.carbon_intensity_p90 == own.carbon_intensity_p90
    assert len(result.carbon_intensity_p10) == 96


def test_model_for_picks_by_what_the_series_is_not_its_provider_name():
    typical = EmbeddedProfileSource().forecast("DE", T0, 24, 60)
    assert u.model_for(typical) is u.TYPICAL_PROFILE_MODEL
    forecast = replace(typical, typical_profile=False, provider="watttime")
    assert u.model_for(forecast) is u.DEFAULT                  # a name decides nothing
    assert u.model_for(replace(forecast, signal="marginal")) is u.MOER_MODEL
    assert u.model_for(replace(forecast, provider="electricitymaps")) is u.DEFAULT


def test_forecast_scenarios_follow_the_providers_band():
    f = _forecast()
    band = replace(f, carbon_intensity_p10=tuple(v * 0.5 for v in f.carbon_intensity),
                   carbon_intensity_p90=tuple(v * 1.2 for v in f.carbon_intensity))
    sims = u.forecast_scenarios(band, n=4000, seed=3)
    assert (sims >= 0).all()
    below = (sims < np.array(band.carbon_intensity_p10)).mean()
    above = (sims > np.array(band.carbon_intensity_p90)).mean()
    assert below == pytest.approx(0.1, abs=0.03)
    assert above == pytest.approx(0.1, abs=0.03)
    assert u.forecast_scenarios(f, n=5, seed=3).shape == (5, 96)


def _synthetic_vintages(seed: int, n_vintages: int = 120) -> pd.DataFrame:
    """Vintages with a known law: sigma(L) = 0.05 + 0.04 sqrt(L), AR(1) tau = 3 h, 1-h steps."""
    rng = np.random.default_rng(seed)
    rows = []
    phi = np.exp(-1.0 / 3.0)
    for v in range(n_vintages):
        issued = T0 + timedelta(hours=6 * v)
        lead = np.arange(48, dtype=float)
        z = np.empty(48)
        z[0] = rng.standard_normal()
        for t in range(1, 48):
            z[t] = phi * z[t - 1] + np.sqrt(1 - phi**2) * rng.standard_normal()
        forecast = 100 + 50 * rng.random(48)
        actual = forecast * np.exp((0.05 + 0.04 * np.sqrt(lead)) * z)
        rows.append(pd.DataFrame({"issued_at": issued,
                                  "valid_at": [issued + timedelta(hours=h) for h in range(48)],
                                  "forecast": forecast, "actual": actual}))
    return pd.concat(rows, ignore_index=True)


def test_fit_recovers_a_known_error_law_and_calibrates_out_of_sample():
    model = cal.fit_error_model(_synthetic_vintages(0), "synthetic")
    for lead in (2.0, 10.0, 30.0):
        assert model.sigma_log(lead) == pytest.approx(0.05 + 0.04 * np.sqrt(lead), rel=0.15)
    assert model.corr_time_h == pytest.approx(3.0, rel=0.25)
    assert cal.calibration(model, _synthetic_vintages(1)) == pytest.approx(0.8, abs=0.03)
    rows = cal.coverage_by_lead(model, _synthetic_vintages(1), [0, 12, 24, 48])
    assert [r[:2] for r in rows] == [(0, 12), (12, 24), (24, 48)]
    assert all(abs(r[3] - 0.8) < 0.06 for r in rows)


def test_fit_and_model_validation_errors():
    with pytest.raises(ValueError, match="columns"):
        cal.fit_error_model(pd.DataFrame({"forecast": [1.0]}))
    with pytest.raises(ValueError, match="at least"):
        cal.fit_error_model(_synthetic_vintages(0, 1).head(5))
    with pytest.raises(ValueError):
        u.ErrorModel("bad", (1.0, 0.5), (0.1, 0.2), 0.0)
    with pytest.raises(ValueError):
        u.ErrorModel("bad", (1.0,), (0.1, 0.2), 0.0)


def test_split_by_issue_time_keeps_held_out_after_fit():
    fit, held = cal.split_by_issue_time(_synthetic_vintages(0, 20))
    assert held["valid_at"].min() > fit["valid_at"].max()
    assert fit["issued_at"].max() < held["issued_at"].min()


def test_shipped_constants_are_reproducible_from_the_real_data():
    needs_shared_data("uk-carbon-intensity-forecast-tracking")
    needs_shared_data("vessim", "watttime2023_casio-north.zip")
    needs_shared_data("sustaindc-eia")
    from conftest import SHARED_DATA

    from gridshift.adapters.datasets import calibration_sets

    refit = cal.refit_default_models(calibration_sets(SHARED_DATA))
    shipped = {"average-ci": u.AVERAGE_CI_MODEL, "moer": u.MOER_MODEL,
               "seasonal-extension": u.SEASONAL_EXTENSION_MODEL,
               "typical-profile": u.TYPICAL_PROFILE_MODEL}
    for key, model in shipped.items():
        assert refit[key].model == model, key
        # Held-out p10-p90 coverage near the nominal 80 % (GB: only 4 vintages).
        assert 0.65 <= refit[key].held_out_coverage <= 0.95, key


def test_evolving_vintages_keep_the_models_spread_by_lead():
    """Each vintage of the evolving history has the model's sigma at every lead."""
    model = u.DEFAULT
    errors = np.stack([u.evolving_log_errors(model, 40, 60, seed=s) for s in range(600)])
    leads = np.arange(40)
    by_lead = errors[:, 30, leads[:31]].std(axis=0)       # valid hour 30, issued 0..30 h before
    np.testing.assert_allclose(by_lead, model.sigma_log(leads[:31] * 1.0),
                               rtol=0.12)


def test_evolving_vintages_share_their_error_and_are_deterministic():
    """Two vintages' errors for one valid hour correlate by sigma(short) / sigma(long) (one
    evolving error, not independent draws); the same seed gives the same history."""
    model = u.DEFAULT
    errors = np.stack([u.evolving_log_errors(model, 40, 60, seed=s) for s in range(800)])
    near, far = errors[:, 35, 2], errors[:, 35, 30]
    expected = float(model.sigma_log(2.0) / model.sigma_log(30.0))
    assert np.corrcoef(near, far)[0, 1] == pytest.approx(expected, abs=0.08)
    # Within one vintage, consecutive valid hours follow the AR(1) correlation.
    same_vintage = np.corrcoef(errors[:, 20, 10], errors[:, 21, 11])[0, 1]
    assert same_vintage == pytest.approx(model.step_correlation(60), abs=0.08)
    np.testing.assert_array_equal(u.evolving_log_errors(model, 12, 60, seed=5),
                                  u.evolving_log_errors(model, 12, 60, seed=5))
    assert u.evolving_log_errors(model, 0, 60, seed=5).shape == (0, 0)
