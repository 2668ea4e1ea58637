"""On-site renewable supply from weather: a PVWatts-like PV model and a wind power curve.

Pure numpy; inputs are arrays of equal length (one value per time step), outputs are power in
kW, never negative. NaN inputs give NaN outputs (the caller applies its gap policy).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "PV_GAMMA_PER_K",
    "PV_NOCT_C",
    "PV_SYSTEM_LOSSES",
    "WIND_CUT_IN_M_S",
    "WIND_CUT_OUT_M_S",
    "WIND_RATED_M_S",
    "cell_temperature_c",
    "pv_power_kw",
    "wind_power_kw",
]

#: Power temperature coefficient of crystalline-silicon modules, 1/K. PVWatts v5 uses -0.0047
#: for its "standard" module (Dobos 2014, NREL/TP-6A20-62641, table 3); -0.004 is the round
#: figure of typical c-Si datasheets (-0.35 .. -0.45 %/K).
PV_GAMMA_PER_K = -0.004
#: Reference cell temperature of the rating (STC), degrees C.
PV_T_REF_C = 25.0
#: Irradiance of the rating (STC), W/m^2.
PV_G_REF_W_M2 = 1000.0
#: Nominal operating cell temperature, degrees C (typical c-Si datasheet value, 45 +- 3).
PV_NOCT_C = 45.0
#: PVWatts v5 default system losses (soiling 2, shading 3, snow 0, mismatch 2, wiring 2,
#: connections 0.5, light-induced degradation 1.5, nameplate 1, availability 3 %: 14.08 %
#: combined; Dobos 2014, table 6), as a fraction.
PV_SYSTEM_LOSSES = 0.14
#: Generic utility-scale turbine power curve (IEC 61400-12 style), m/s at hub height.
WIND_CUT_IN_M_S = 3.0
WIND_RATED_M_S = 12.0
WIND_CUT_OUT_M_S = 25.0


def cell_temperature_c(irradiance_w_m2: np.ndarray, temp_air_c: np.ndarray) -> np.ndarray:
    """Cell temperature (degrees C) by the NOCT model (Ross 1980):
    ``T_cell = T_air + G * (NOCT - 20) / 800`` with G in W/m^2 and NOCT = 45 degrees C
    (NOCT conditions: 800 W/m^2, 20 degrees C air, 1 m/s wind)."""
    irradiance = np.asarray(irradiance_w_m2, dtype=float)
    return np.asarray(temp_air_c, dtype=float) + irradiance * (PV_NOCT_C - 20.0) / 800.0


def pv_power_kw(ghi_w_m2: np.ndarray, temp_air_c: np.ndarray | None, kwp: float, *,
                gamma_per_k: float = PV_GAMMA_PER_K,
                losses: float = PV_SYSTEM_LOSSES) -> np.ndarray:
    """PV output (kW) of an array of ``kwp`` kW-peak (DC at STC), PVWatts-like:

        P = kwp * G / 1000 * (1 + gamma * (T_cell - 25)) * (1 - losses),  clipped at >= 0

    ``ghi_w_m2`` is the irradiance on the modules in W/m^2 (global horizontal for flat arrays;
    pass plane-of-array irradiance for tilted ones). ``temp_air_c`` (degrees C) gives the cell
    temperature through :func:`cell_temperature_c`; None means no temperature correction
    (cell at 25 degrees C). Inverter limits are not modelled.
    Source: Dobos, "PVWatts Version 5 Manual", NREL/TP-6A20-62641 (2014), eq. 1-2.
    """
    if kwp < 0:
        raise ValueError(f"kwp must be >= 0, got {kwp}")
    irradiance = np.asarray(ghi_w_m2, dtype=float)
    if temp_air_c is None:
        derate = np.ones_like(irradiance)
    else:
        cell = cell_temperature_c(irradiance, temp_air_c)
        derate = 1.0 + gamma_per_k * (cell - PV_T_REF_C)
    power = kwp * irradiance / PV_G_REF_W_M2 * derate * (1.0 - losses)
    return np.maximum(power, 0.0)


def wind_power_kw(wind_speed_m_s: np.ndarray, rated_kw: float, *,
                  cut_in_m_s: float = WIND_CUT_IN_M_S, rated_m_s: float = WIND_RATED_M_S,
                  cut_out_m_s: float = WIND_CUT_OUT_M_S) -> np.ndarray:
    """Turbine output (kW) from hub-height wind speed (m/s) by a standard power curve:
    0 below cut-in (3 m/s); ``rated_kw * (v^3 - v_in^3) / (v_rated^3 - v_in^3)`` from cut-in to
    rated speed (12 m/s; a cubic ramp, kinetic power grows with v^3); ``rated_kw`` from rated
    speed up to cut-out (25 m/s, inclusive); 0 above cut-out (storm shutdown).
    Speeds measured at 10 m must be scaled to hub height by the caller (e.g. the power law
    ``v_hub = v_10 * (h / 10) ** (1/7)``).
    """
    if rated_kw < 0:
        raise ValueError(f"rated_kw must be >= 0, got {rated_kw}")
    if not 0 <= cut_in_m_s < rated_m_s <= cut_out_m_s:
        raise ValueError("need 0 <= cut_in_m_s < rated_m_s <= cut_out_m_s")
    speed = np.asarray(wind_speed_m_s, dtype=float)
    ramp = (speed**3 - cut_in_m_s**3) / (rated_m_s**3 - cut_in_m_s**3)
    power = np.select(
        [speed < cut_in_m_s, speed < rated_m_s, speed <= cut_out_m_s],
        [0.0, rated_kw * ramp, rated_kw],
        default=0.0,
    )
    return np.where(np.isnan(speed), np.nan, power)
