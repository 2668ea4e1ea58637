"""Blend a provider's forecast with the seasonal model of recent actuals (forecast combination).

A provider's average-intensity forecast and the seasonal model of :mod:`forecasting.extension`
fitted on the region's recorded actuals are two estimates of the same series with errors of
their own, both calibrated in :mod:`forecasting.uncertainty`: the provider's by
:func:`uncertainty.model_for` (GB NESO 48-h forecasts: sigma 0.11 at the current hour, 0.19 at
13 h, 0.24 at 29 h) and the seasonal model's by :data:`uncertainty.SEASONAL_EXTENSION_MODEL`
(EIA-930 and German backtests: 0.058 one hour after the last actual, 0.15 at 9.5 h, 0.21 at
24 h). By these calibrations the seasonal model (hour-of-day profile plus the latest anomaly)
is the better of the two at every lead, clearly so near the last actual, so it carries 55-80 % of
the weight. The blend takes, slot by slot, the inverse-variance weighted mean of the two in log
space (Bates-Granger combination, errors taken as independent)::

    w = sigma_seasonal(lead_s)^2 / (sigma_provider(lead_p)^2 + sigma_seasonal(lead_s)^2)
    blended = provider^w * seasonal^(1 - w)

``lead_p`` is the slot's lead from the forecast's issue time, ``lead_s`` from the end of the
actuals. The blended band (p10/p90) has the combined sigma
``sqrt(w^2 sigma_p^2 + (1 - w)^2 sigma_s^2)``.

When it applies: only to average-intensity forecasts (the seasonal model's calibration is for
average intensity; WattTime's marginal MOER and the embedded typical profile are left as they
are), and only with at least ``min_history_h`` (7 days) of finite actuals within the
``profile_days`` (14) before the issue time: the seasonal model was calibrated with a full
profile, and on the real GB NESO vintages, with only 12-35 h of actuals before them, it was far
worse than calibrated (RMS log error 0.60-0.77 against the forecast's 0.23-0.29). Otherwise the
forecast is returned unchanged with the reason. The blended forecast's ``detail`` says what was
blended and the provider's weight.

Pure: numpy and the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np

from forecasting import uncertainty
from forecasting.extension import fit_seasonal
from forecasting.series import Forecast

__all__ = ["Blend", "blend_with_actuals", "provider_weight"]

MIN_HISTORY_H = 7 * 24.0
PROFILE_DAYS = 14


@dataclass(frozen=True)
class Blend:
    """The outcome of :func:`blend_with_actuals`: the forecast to use, whether it was blended,
    and a one-line note for provenance (what was blended, or why not)."""

    forecast: Forecast
    applied: bool
    note: str


def provider_weight(provider_lead_h: np.ndarray, seasonal_lead_h: np.ndarray,
                    provider_model: uncertainty.ErrorModel,
                    seasonal_model: uncertainty.ErrorModel = uncertainty.SEASONAL_EXTENSION_MODEL,
                    ) -> np.ndarray:
    """The provider forecast's weight per slot (0..1): inverse-variance of the two errors."""
    var_p = provider_model.sigma_log(provider_lead_h) ** 2
    var_s = seasonal_model.sigma_log(seasonal_lead_h) ** 2
    total = var_p + var_s
    return np.where(total > 0, var_s / np.where(total > 0, total, 1.0), 0.5)


def blend_with_actuals(forecast: Forecast, actuals: Forecast | None, *,
                       issued_at: datetime | None = None, profile_days: int = PROFILE_DAYS,
                       min_history_h: float = MIN_HISTORY_H) -> Blend:
    """Blend ``forecast`` with the seasonal model fitted on ``actuals`` (see the module
    docstring). ``actuals`` are observed values (any step, NaN where missing); only those
    before the issue time (``issued_at``, else the forecast's own, else its start) are used."""
    reason = _not_applicable(forecast)
    if reason:
        return Blend(forecast, False, reason)
    issued = issued_at or forecast.issued_at or forecast.start
    history = _history_before(actuals, issued, profile_days)
    if history is None or _finite_hours(history) < min_history_h:
        have = 0.0 if history is None else _finite_hours(history)
        return Blend(forecast, False, f"not blended: {have:.0f} h of actuals before the issue "
                                      f"time, {min_history_h:g} h needed")
    values, start, step = history
    model = fit_seasonal(values, start, step, profile_days=profile_days)
    history_end = start + timedelta(minutes=step * len(values))
    return _blend(forecast, model.predict(forecast.start, forecast.slot_minutes,
                                          len(forecast.carbon_intensity)),
                  issued, history_end)


def _not_applicable(forecast: Forecast) -> str:
    if len(forecast.carbon_intensity) == 0:
        return "not blended: empty forecast"
    if uncertainty.model_for(forecast) is not uncertainty.DEFAULT:
        return (f"not blended: {forecast.provider} is not an average-intensity provider "
                "forecast")
    return ""


def _history_before(actuals: Forecast | None, issued: datetime,
                    profile_days: int) -> tuple[np.ndarray, datetime, int] | None:
    """The actuals in [issued - profile_days, issued), trimmed to their last finite value."""
    if actuals is None or len(actuals.carbon_intensity) == 0 or actuals.slot_minutes <= 0:
        return None
    step = actuals.slot_minutes
    values = np.asarray(actuals.carbon_intensity, dtype=float)
    offset_min = (issued - actuals.start).total_seconds() / 60.0
    end = min(len(values), int(offset_min // step))
    first = max(0, end - int(profile_days * 1440 // step))
    values = values[first:end]
    finite = np.flatnonzero(np.isfinite(values))
    if len(finite) == 0:
        return None
    values = values[:finite[-1] + 1]
    return values, actuals.start + timedelta(minutes=step * first), step


def _finite_hours(history: tuple[np.ndarray, datetime, int]) -> float:
    values, _, step = history
    return float(np.isfinite(values).sum()) * step / 60.0


def _blend(forecast: Forecast, seasonal: np.ndarray, issued: datetime,
           history_end: datetime) -> Blend:
    step = forecast.slot_minutes
    n = len(forecast.carbon_intensity)
    provider = np.asarray(forecast.carbon_intensity, dtype=float)
    provider_lead = uncertainty.lead_hours(issued, forecast.start, step, n)
    seasonal_lead = uncertainty.lead_hours(history_end, forecast.start, step, n)
    model = uncertainty.model_for(forecast)
    weight = provider_weight(provider_lead, seasonal_lead, model)
    usable = np.isfinite(provider) & (provider > 0) & (seasonal > 0)
    blended = np.where(usable, np.exp(weight * np.log(np.where(usable, provider, 1.0))
                                      + (1 - weight) * np.log(np.where(usable, seasonal, 1.0))),
                       provider)
    sigma = np.sqrt((weight * model.sigma_log(provider_lead)) ** 2
                    + ((1 - weight) * uncertainty.SEASONAL_EXTENSION_MODEL
                       .sigma_log(seasonal_lead)) ** 2)
    sigma = np.where(usable, sigma, model.sigma_log(provider_lead))
    note = (f"blended with the seasonal model of actuals up to {history_end:%Y-%m-%d %H:%M} "
            f"UTC (weight of the provider's forecast {weight[0]:.2f} in the first slot .. "
            f"{weight[-1]:.2f} in the last)")
    detail = "; ".join(x for x in (forecast.detail, note) if x)
    out = replace(
        forecast, carbon_intensity=tuple(float(v) for v in blended),
        carbon_intensity_p10=tuple(float(v) for v in blended * np.exp(-uncertainty.Z90 * sigma)),
        carbon_intensity_p90=tuple(float(v) for v in blended * np.exp(uncertainty.Z90 * sigma)),
        detail=detail)
    return Blend(out, True, note)
