"""Forecast uncertainty: p10/p50/p90 bands and sampled scenarios whose spread grows with lead time.

The error model is multiplicative (log space): the actual value ``y`` of a slot forecast ``f``
at lead time ``L`` hours is ``y = f * exp(sigma(L) * z)``, where ``sigma(L)`` is a non-decreasing
piecewise-linear table in sqrt(L) (held flat beyond its last knot) and ``z`` is a standard normal
variable, correlated across consecutive slots by an AR(1) process with correlation time
``corr_time_h`` (correlation ``exp(-dt / corr_time_h)`` between slots ``dt`` hours apart). The
median (p50) is the point forecast; p10/p90 are ``f * exp(-/+ 1.2816 * sigma(L))``. Scenarios
are non-negative by construction.

``sigma`` is calibrated so that 80 % of the absolute log errors fall inside the band (the 0.8
quantile of ``|log(actual / forecast)|`` divided by 1.2816, per lead-time bucket); this targets
the p10-p90 coverage directly and is robust to the heavy tails of real forecast errors.

A provider's own p10/p90 always win over the model: :func:`with_quantiles` keeps them and
:func:`forecast_scenarios` samples a split-normal between them.

The shipped constants were fitted by :func:`forecasting.calibration.refit_default_models` on
real forecast-vs-actual data in ``../shared/data`` (the first half by issue time of each series,
or, for the four GB vintages, all of them, scored leave-one-vintage-out);
:func:`forecasting.calibration.calibration` on the data left out gives the held-out p10-p90
coverage (see ``bench/forecast.py``).

Pure: numpy, pandas and the standard library.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np

from gridshift.forecasting.series import MARGINAL, Forecast

__all__ = [
    "AVERAGE_CI_MODEL",
    "DEFAULT",
    "MOER_MODEL",
    "SEASONAL_EXTENSION_MODEL",
    "TYPICAL_PROFILE_MODEL",
    "Z90",
    "ErrorModel",
    "evolving_log_errors",
    "forecast_scenarios",
    "lead_hours",
    "model_for",
    "quantiles",
    "scenarios",
    "with_quantiles",
]

#: The standard normal 0.9 quantile: p10/p90 lie this many sigmas from the median.
Z90 = 1.2815515655446004


@dataclass(frozen=True)
class ErrorModel:
    """Log-space forecast error whose spread grows with lead time (see the module docstring).

    ``sigma(lead)`` is a piecewise-linear table in sqrt(lead): linear between knots, held at the
    first value before the first knot and at the last value beyond the last one (no growth is
    extrapolated past the calibrated range).

    Attributes:
        name: what the model describes and where it was calibrated.
        lead_knots_h: increasing lead times of the table, hours.
        sigma_knots_log: log-space sigma at each knot (dimensionless; 0.1 is about +-10 %),
            non-decreasing.
        corr_time_h: AR(1) correlation time of the errors across valid times, hours.
    """

    name: str
    lead_knots_h: tuple[float, ...]
    sigma_knots_log: tuple[float, ...]
    corr_time_h: float

    def __post_init__(self) -> None:
        if not self.lead_knots_h or len(self.lead_knots_h) != len(self.sigma_knots_log):
            raise ValueError("an ErrorModel needs as many sigma knots as lead knots (>= 1)")
        if any(b < a for a, b in zip(self.lead_knots_h, self.lead_knots_h[1:], strict=False)):
            raise ValueError("lead_knots_h must be increasing")
        if min(self.sigma_knots_log) < 0 or min(self.lead_knots_h) < 0:
            raise ValueError("lead knots and sigmas must be >= 0")

    def sigma_log(self, lead_h: np.ndarray | float) -> np.ndarray:
        """Log-space sigma at each lead time (hours; negative leads count as 0)."""
        root = np.sqrt(np.maximum(np.asarray(lead_h, dtype=float), 0.0))
        return np.interp(root, np.sqrt(self.lead_knots_h), self.sigma_knots_log)

    def step_correlation(self, step_minutes: float) -> float:
        """AR(1) coefficient between consecutive slots ``step_minutes`` apart."""
        if self.corr_time_h <= 0:
            return 0.0
        return math.exp(-(step_minutes / 60.0) / self.corr_time_h)


# --- Calibrated constants -------------------------------------------------------------------
# Obtained with forecasting.calibration.refit_default_models() (deterministic; the held-out
# coverage it returns is printed by bench/forecast.py). Lead knots in hours, sigmas in log space.
#
# AVERAGE_CI_MODEL: GB national average carbon intensity, NESO Carbon Intensity API 48-h
#   forecasts (nmpowell/carbon-intensity-forecast-tracking: 4 vintages issued 2023-03-14 03:31 ..
#   2023-03-15 16:01 UTC) vs the API's actuals, leads 0-48 h; fitted on all 4 vintages, held-out
#   coverage by leave-one-vintage-out. The default for average-intensity providers.
AVERAGE_CI_MODEL = ErrorModel(
    name="average-ci: GB NESO 48-h forecasts vs actuals, 2023-03",
    lead_knots_h=(1.627, 6.418, 13.014, 20.512, 29.162, 40.646),
    sigma_knots_log=(0.1109, 0.1423, 0.1914, 0.2305, 0.2421, 0.33),
    corr_time_h=12.38,
)
# MOER_MODEL: WattTime CAISO_NORTH marginal emissions (MOER) 5-65 min forecasts vs actuals
#   (vessim's watttime2023_casio-north.zip), fitted on issues 2023-06-08 .. 06-23 (first half).
MOER_MODEL = ErrorModel(
    name="moer: WattTime CAISO_NORTH 5-65 min forecasts vs actuals, 2023-06",
    lead_knots_h=(
        0.083, 0.167, 0.25, 0.333, 0.417, 0.5, 0.583, 0.667, 0.75, 0.833, 0.917, 1.041,
    ),
    sigma_knots_log=(
        0.168, 0.1929, 0.2203, 0.2235, 0.2546, 0.2755, 0.3125, 0.3312, 0.3666, 0.3666,
        0.3721, 0.4042,
    ),
    corr_time_h=0.398,
)
# SEASONAL_EXTENSION_MODEL: forecasting.extension's seasonal model backtested on EIA-930 2022
#   hourly average CI (CISO, ERCO, PJM, BPAT, NYIS, MISO) and Germany 2020 (15 min), origins
#   every 25 h in the first half of each series, leads 0-168 h from the last known value.
SEASONAL_EXTENSION_MODEL = ErrorModel(
    name="seasonal-extension: hour-of-day profile backtests, EIA-930 2022 + DE 2020",
    lead_knots_h=(
        0.019, 0.996, 1.993, 3.532, 5.973, 9.517, 15.088, 23.999, 37.46, 57.93, 89.651,
        137.985,
    ),
    sigma_knots_log=(
        0.0395, 0.0579, 0.0828, 0.1057, 0.1337, 0.1536, 0.1778, 0.213, 0.238, 0.2639,
        0.2761, 0.2761,
    ),
    corr_time_h=59.224,
)
# TYPICAL_PROFILE_MODEL: the embedded month x hour typical-day profile vs the EIA-930 2022
#   hourly actuals it summarises (first half of each series); lead-independent.
TYPICAL_PROFILE_MODEL = ErrorModel(
    name="typical-profile: embedded month x hour profile vs EIA-930 2022 actuals",
    lead_knots_h=(0.0,),
    sigma_knots_log=(0.1358,),
    corr_time_h=0.0,
)
#: The model used when nothing better is known: average carbon intensity forecasts.
DEFAULT = AVERAGE_CI_MODEL


# --- Bands and scenarios ----------------------------------------------------------------------


def lead_hours(issued_at: datetime | None, start: datetime, step_minutes: float,
               n: int) -> np.ndarray:
    """Lead time (hours, >= 0) of the start of each of ``n`` slots; ``issued_at=None`` means the
    series was issued at ``start``."""
    if step_minutes <= 0:
        raise ValueError(f"step_minutes must be > 0, got {step_minutes}")
    origin_h = 0.0 if issued_at is None else (start - issued_at).total_seconds() / 3600.0
    return np.maximum(origin_h + np.arange(n) * (step_minutes / 60.0), 0.0)


def quantiles(values: np.ndarray, issued_at: datetime | None, start: datetime,
              step_minutes: int, model: ErrorModel = DEFAULT,
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p10, p50, p90) of a point forecast under ``model``; p50 is the forecast itself.

    ``values`` (>= 0, e.g. gCO2e/kWh) hold on consecutive slots of ``step_minutes`` from
    ``start``; the lead of a slot is measured from ``issued_at`` to the slot's start.
    """
    p50 = np.maximum(np.asarray(values, dtype=float), 0.0)
    sigma = model.sigma_log(lead_hours(issued_at, start, step_minutes, len(p50)))
    return p50 * np.exp(-Z90 * sigma), p50, p50 * np.exp(Z90 * sigma)


def _ar1_normals(n: int, length: int, phi: float, rng: np.random.Generator) -> np.ndarray:
    """[n, length] standard normal paths with lag-1 correlation ``phi`` (stationary start)."""
    shocks = rng.standard_normal((n, length))
    if length == 0 or phi == 0.0:
        return shocks
    innovation = math.sqrt(max(1.0 - phi * phi, 0.0))
    paths = np.empty_like(shocks)
    paths[:, 0] = shocks[:, 0]
    for t in range(1, length):
        paths[:, t] = phi * paths[:, t - 1] + innovation * shocks[:, t]
    return paths


def scenarios(values: np.ndarray, issued_at: datetime | None, start: datetime,
              step_minutes: int, n: int, seed: int, model: ErrorModel = DEFAULT) -> np.ndarray:
    """``n`` sampled paths [n, len(values)] around a point forecast (non-negative).

    Each path is ``values * exp(sigma(lead) * z)`` with ``z`` an AR(1) standard normal path, so
    the per-slot median is the forecast and errors persist over ``model.corr_time_h``.
    Deterministic for a given ``seed``.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    point = np.maximum(np.asarray(values, dtype=float), 0.0)
    sigma = model.sigma_log(lead_hours(issued_at, start, step_minutes, len(point)))
    rng = np.random.default_rng(seed)
    z = _ar1_normals(n, len(point), model.step_correlation(step_minutes), rng)
    return point[None, :] * np.exp(sigma[None, :] * z)


def evolving_log_errors(model: ErrorModel, length: int, step_minutes: int,
                        seed: int) -> np.ndarray:
    """Log errors of a sequence of forecast vintages that evolve consistently (the martingale
    model of forecast evolution): ``E[v, L]`` is the error of valid slot ``v`` in the forecast
    issued ``L`` slots before it, so the forecast issued at slot ``i`` is
    ``actual[v] * exp(E[v, v - i])``.

    The error of a valid slot at lead ``L`` is the sum of independent innovations for leads
    ``0 .. L`` with variances ``sigma(l)^2 - sigma(l-1)^2``; moving the issue time one slot
    closer reveals (removes) one innovation. So each vintage has exactly ``model``'s spread by
    lead and its AR(1) correlation across valid times (each innovation layer is an AR(1) path),
    and the same valid slot's errors in two vintages correlate by ``sigma(L2) / sigma(L1)``
    rather than not at all: real forecasts issued hours apart share most of their error (GB
    NESO 48-h vintages 12-36 h apart: 0.77-0.98). Deterministic for a given ``seed``.
    """
    if length <= 0:
        return np.zeros((0, 0))
    lead = np.arange(length) * (step_minutes / 60.0)
    variance = np.diff(np.concatenate([[0.0], model.sigma_log(lead) ** 2]))
    rng = np.random.default_rng(seed)
    layers = _ar1_normals(length, length, model.step_correlation(step_minutes), rng)  # [l, v]
    return np.cumsum(np.sqrt(np.maximum(variance, 0.0))[:, None] * layers, axis=0).T


def _has_band(forecast: Forecast) -> bool:
    n = len(forecast.carbon_intensity)
    return n > 0 and len(forecast.carbon_intensity_p10) == n == len(forecast.carbon_intensity_p90)


def forecast_scenarios(forecast: Forecast, n: int, seed: int,
                       model: ErrorModel | None = None) -> np.ndarray:
    """Scenarios [n, slots] of a Forecast's carbon intensity.

    When the provider gave p10/p90, each slot is a split-normal through (p10, p50, p90) with the
    model's AR(1) correlation; otherwise :func:`scenarios` with ``model`` (default
    :func:`model_for`).
    """
    model = model or model_for(forecast)
    if not _has_band(forecast):
        return scenarios(np.asarray(forecast.carbon_intensity), forecast.issued_at,
                         forecast.start, forecast.slot_minutes, n, seed, model)
    p50 = np.asarray(forecast.carbon_intensity, dtype=float)
    low = np.maximum(p50 - np.asarray(forecast.carbon_intensity_p10, dtype=float), 0.0)
    high = np.maximum(np.asarray(forecast.carbon_intensity_p90, dtype=float) - p50, 0.0)
    rng = np.random.default_rng(seed)
    z = _ar1_normals(n, len(p50), model.step_correlation(forecast.slot_minutes), rng)
    spread = np.where(z < 0, low[None, :], high[None, :]) / Z90
    return np.maximum(p50[None, :] + z * spread, 0.0)


def model_for(forecast: Forecast) -> ErrorModel:
    """The calibrated model that fits a forecast's provider.

    A typical-day profile gets :data:`TYPICAL_PROFILE_MODEL`, a marginal signal (WattTime's
    MOER) :data:`MOER_MODEL`, every average-intensity forecast :data:`DEFAULT`. The source sets
    both flags (:attr:`Forecast.typical_profile`, :attr:`Forecast.signal`).
    """
    if forecast.typical_profile:
        return TYPICAL_PROFILE_MODEL
    if forecast.signal == MARGINAL:
        return MOER_MODEL
    return DEFAULT


def with_quantiles(forecast: Forecast, model: ErrorModel | None = None) -> Forecast:
    """The forecast with p10/p90 filled where missing (the provider's own bands are kept).

    ``model=None`` picks :func:`model_for` the forecast's provider.
    """
    n = len(forecast.carbon_intensity)
    has_p10 = len(forecast.carbon_intensity_p10) == n
    has_p90 = len(forecast.carbon_intensity_p90) == n
    if n == 0 or (has_p10 and has_p90):
        return forecast
    p10, _, p90 = quantiles(np.asarray(forecast.carbon_intensity), forecast.issued_at,
                            forecast.start, forecast.slot_minutes, model or model_for(forecast))
    return replace(
        forecast,
        carbon_intensity_p10=(forecast.carbon_intensity_p10 if has_p10
                              else tuple(float(v) for v in p10)),
        carbon_intensity_p90=(forecast.carbon_intensity_p90 if has_p90
                              else tuple(float(v) for v in p90)),
    )
