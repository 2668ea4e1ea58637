"""PV and wind models: the documented formulas, and PV against NREL PVWatts' hourly output."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import needs_shared_data

from gridshift.forecasting.renewables import cell_temperature_c, pv_power_kw, wind_power_kw


def test_pv_at_standard_conditions_is_kwp_less_system_losses():
    assert pv_power_kw(np.array([1000.0]), None, 10.0)[0] == pytest.approx(10.0 * 0.86)
    assert pv_power_kw(np.array([500.0]), None, 10.0)[0] == pytest.approx(5.0 * 0.86)


def test_pv_temperature_derating():
    ghi = np.array([800.0, 800.0])
    cold, hot = pv_power_kw(ghi, np.array([0.0, 35.0]), 1.0)
    assert hot < cold
    cell = cell_temperature_c(ghi, np.array([20.0, 20.0]))
    assert cell[0] == pytest.approx(45.0)  # NOCT by definition
    expected = 0.8 * (1 - 0.004 * (45.0 - 25.0)) * 0.86
    assert pv_power_kw(np.array([800.0]), np.array([20.0]), 1.0)[0] == pytest.approx(expected)


def test_pv_is_never_negative_and_keeps_nan():
    out = pv_power_kw(np.array([0.0, -5.0, np.nan, 200.0]), np.array([10.0, 10.0, 10.0, 10.0]),
                      4.0)
    assert out[0] == 0.0 and out[1] == 0.0 and np.isnan(out[2]) and out[3] > 0
    with pytest.raises(ValueError):
        pv_power_kw(np.array([1.0]), None, -1.0)


def test_wind_power_curve():
    speeds = np.array([0.0, 2.9, 3.0, 7.5, 12.0, 20.0, 25.0, 25.1, 40.0, np.nan])
    out = wind_power_kw(speeds, 2000.0)
    ramp = (7.5**3 - 27.0) / (12.0**3 - 27.0)
    np.testing.assert_allclose(out[:9], [0, 0, 0, 2000 * ramp, 2000, 2000, 2000, 0, 0])
    assert np.isnan(out[9])
    curve = wind_power_kw(np.linspace(0, 25, 251), 1.0)
    assert (np.diff(curve) >= 0).all() and curve.max() == 1.0
    with pytest.raises(ValueError):
        wind_power_kw(speeds, 1.0, cut_in_m_s=13.0)


def test_pv_matches_pvwatts_hourly_output():
    """NREL PVWatts, 4 kW-DC open rack at Denver (pvlib's test file): fed the plane-of-array
    irradiance and air temperature, the model's annual DC energy is within 3 % and its hourly
    output correlates > 0.99 with PVWatts' DC output (after PVWatts' 14.08 % losses)."""
    path = needs_shared_data("pvlib", "pvwatts_8760_rackmount.csv")
    table = pd.read_csv(path, skiprows=17).iloc[:8760]
    poa = table["Plane of Array Irradiance (W/m^2)"].to_numpy(float)
    air = table["Ambient Temperature (C)"].to_numpy(float)
    pvwatts_dc_kw = table["DC Array Output (W)"].to_numpy(float) / 1000.0
    model = pv_power_kw(poa, air, 4.0)
    assert model.sum() == pytest.approx(pvwatts_dc_kw.sum(), rel=0.03)
    assert np.corrcoef(model, pvwatts_dc_kw)[0, 1] > 0.99
