"""Blend a provider's forecast with the seasonal model of recent actuals (forecast combination).

A provider's average-intensity forecast and the seasonal model of :mod:`forecasting.extension`
fitted on the region's recorded actuals are two estimates of the same series with errors of
their own, both calibrated in :mod:`forecasting.uncertainty`: the provider's by
:func:`uncertainty.model_for` (GB NESO 48-h forecasts: sigma 0.11 at the current hour, 0.19 at
13 h, 0.24 at 29 h) and the seasonal model's by :data:`uncertainty.SEASONAL_EXTENSION_MODEL`
(EIA-930 and German backtests: 0.058 one hour after the last actual, 0.15 at 9.5 h, 0.21 at 24
h). By these calibrations the seasonal model (hour-of-day profile plus the latest anomaly) is
the better of the two at every lead, clearly so near the last actual. The seasonal model's error
differs much between regions (on the first half of the German 2020 series it is about twice the
pooled calibration; a solar-driven series is more regular than a wind-driven one), so it is
measured on the region's own actuals before each blend: :func:`seasonal_error_scale` replays the
seasonal model on the last 7 days of them (origins every 6 h, 24 h ahead) and scales the
calibrated sigma by its RMS error over the calibrated one. The blend takes, slot by slot, the
inverse-variance weighted mean of the two in log space (Bates-Granger combination, errors taken
as independent)::

    w = (k sigma_seasonal(lead_s))^2 / (sigma_provider(lead_p)^2 + (k sigma_seasonal(lead_s))^2)
    blended = provider^w * seasonal^(1 - w)        (k: the measured scale, 1 when unmeasured)

``lead_p`` is the slot's lead from the forecast's issue time, ``lead_s`` from the end of the
actuals. The blended band (p10/p90) has the combined sigma ``sqrt(w^2 sigma_p^2 + (1 - w)^2 (k
sigma_s)^2)``.

When it applies: only to average-intensity forecasts (the seasonal model's calibration is for
average intensity; WattTime's marginal MOER and the embedded typical profile are left as they
are), and only with at least ``min_history_h`` (7 days) of finite actuals within the
``profile_days`` (14) before the issue time (the blend reads 21 days: the week before those
feeds the measurement's earliest fits): the seasonal model was calibrated with a full profile,
and on the real GB NESO vintages, with only 12-35 h of actuals before them, it was far worse
than calibrated (RMS log error 0.60-0.77 against the forecast's 0.23-0.29). Otherwise the
forecast is returned unchanged with the reason. The blended forecast's ``detail`` says what was
blended and the provider's weight.

Pure: numpy and the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np

from gridshift.forecasting import uncertainty
from gridshift.forecasting.extension import fit_seasonal
from gridshift.forecasting.series import Forecast

__all__ = ["HISTORY_DAYS", "Blend", "blend_with_actuals", "provider_weight",
           "seasonal_error_scale"]

MIN_HISTORY_H = 7 * 24.0
PROFILE_DAYS = 14
#: Days of the most recent actuals on which the seasonal model's own error is measured.
CALIBRATION_DAYS = 7
CALIBRATION_HORIZON_H = 24.0
CALIBRATION_EVERY_H = 6.0
#: Days of actuals the blend reads: the profile's and, before them, the calibration's.
HISTORY_DAYS = PROFILE_DAYS + CALIBRATION_DAYS


@dataclass(frozen=True)
class Blend:
    """The outcome of :func:`blend_with_actuals`: the forecast to use, whether it was blended,
    and a one-line note for provenance (what was blended, or why not)."""

    forecast: Forecast
    applied: bool
    note: str


def provider_weight(provider_lead_h: np.ndarray, seasonal_lead_h: np.ndarray,
                    provider_model: uncertainty.ErrorModel, seasonal_scale: float = 1.0,
                    seasonal_model: uncertainty.ErrorModel = uncertainty.SEASONAL_EXTENSION_MODEL,
                    ) -> np.ndarray:
    """The provider forecast's weight per slot (0..1): inverse-variance of the two errors, the
    seasonal model's calibrated sigma times ``seasonal_scale``."""
    var_p = provider_model.sigma_log(provider_lead_h) ** 2
    var_s = (seasonal_scale * seasonal_model.sigma_log(seasonal_lead_h)) ** 2
    total = var_p + var_s
    return np.where(total > 0, var_s / np.where(total > 0, total, 1.0), 0.5)


def seasonal_error_scale(values: np.ndarray, start: datetime, step_minutes: int, *,
                         profile_days: int = PROFILE_DAYS,
                         calibration_days: int = CALIBRATION_DAYS,
                         horizon_h: float = CALIBRATION_HORIZON_H,
                         every_h: float = CALIBRATION_EVERY_H) -> float | None:
    """How much the seasonal model errs on this region's own recent actuals, relative to its
    calibration: the RMS log error of its forecasts from origins every ``every_h`` in the last
    ``calibration_days`` (each fitted on up to ``profile_days`` before the origin, at least 7
    days; ``horizon_h`` ahead, verified by the actuals) over the RMS of the calibrated sigma at
    the same leads. Clipped to 0.5..3; None with fewer than 4 usable origins."""
    values = np.asarray(values, dtype=float)
    per_h = 60.0 / step_minutes
    horizon, every = int(round(horizon_h * per_h)), max(1, int(round(every_h * per_h)))
    min_fit, fit = int(round(7 * 24 * per_h)), int(round(profile_days * 24 * per_h))
    first = len(values) - horizon - int(round(calibration_days * 24 * per_h))
    lead_var = uncertainty.SEASONAL_EXTENSION_MODEL.sigma_log(
        np.arange(horizon) * step_minutes / 60.0) ** 2
    squared, expected, origins = 0.0, 0.0, 0
    for origin in range(len(values) - horizon, max(first, min_fit) - 1, -every):
        known = values[max(0, origin - fit):origin]
        truth = values[origin:origin + horizon]
        if np.isfinite(known).sum() < min_fit * 0.9:
            continue
        known_start = start + timedelta(minutes=step_minutes * (origin - len(known)))
        predicted = fit_seasonal(known, known_start, step_minutes,
                                 profile_days=profile_days).predict(
            start + timedelta(minutes=step_minutes * origin), step_minutes, horizon)
        ok = np.isfinite(truth) & (truth > 0) & (predicted > 0)
        if ok.sum() < horizon // 2:
            continue
        squared += float((np.log(truth[ok] / predicted[ok]) ** 2).sum())
        expected += float(lead_var[ok].sum())
        origins += 1
    if origins < 4 or expected <= 0:
        return None
    return float(np.clip(np.sqrt(squared / expected), 0.5, 3.0))


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
    history = _history_before(actuals, issued, profile_days + CALIBRATION_DAYS)
    if history is None or _finite_hours(history, profile_days) < min_history_h:
        have = 0.0 if history is None else _finite_hours(history, profile_days)
        return Blend(forecast, False, f"not blended: {have:.0f} h of actuals before the issue "
                                      f"time, {min_history_h:g} h needed")
    values, start, step = history
    model = fit_seasonal(values, start, step, profile_days=profile_days)
    history_end = start + timedelta(minutes=step * len(values))
    scale = seasonal_error_scale(values, start, step, profile_days=profile_days)
    return _blend(forecast, model.predict(forecast.start, forecast.slot_minutes,
                                          len(forecast.carbon_intensity)),
                  issued, history_end, scale)


def _not_applicable(forecast: Forecast) -> str:
    if len(forecast.carbon_intensity) == 0:
        return "not blended: empty forecast"
    if uncertainty.model_for(forecast) is not uncertainty.DEFAULT:
        return (f"not blended: {forecast.provider} is not an average-intensity provider "
                "forecast")
    return ""


def _history_before(actuals: Forecast | None, issued: datetime,
                    days: int) -> tuple[np.ndarray, datetime, int] | None:
    """The actuals in [issued - days, issued), trimmed to their last finite value."""
    if actuals is None or len(actuals.carbon_intensity) == 0 or actuals.slot_minutes <= 0:
        return None
    step = actuals.slot_minutes
    values = np.asarray(actuals.carbon_intensity, dtype=float)
    offset_min = (issued - actuals.start).total_seconds() / 60.0
    end = min(len(values), int(offset_min // step))
    first = max(0, end - int(days * 1440 // step))
    values = values[first:end]
    finite = np.flatnonzero(np.isfinite(values))
    if len(finite) == 0:
        return None
    values = values[:finite[-1] + 1]
    return values, actuals.start + timedelta(minutes=step * first), step


def _finite_hours(history: tuple[np.ndarray, datetime, int], days: int) -> float:
    """Hours of finite actuals in the last ``days`` of the history."""
    values, _, step = history
    recent = values[-int(days * 1440 // step):]
    return float(np.isfinite(recent).sum()) * step / 60.0


def _blend(forecast: Forecast, seasonal: np.ndarray, issued: datetime,
           history_end: datetime, scale: float | None) -> Blend:
    step = forecast.slot_minutes
    n = len(forecast.carbon_intensity)
    provider = np.asarray(forecast.carbon_intensity, dtype=float)
    provider_lead = uncertainty.lead_hours(issued, forecast.start, step, n)
    seasonal_lead = uncertainty.lead_hours(history_end, forecast.start, step, n)
    model = uncertainty.model_for(forecast)
    weight = provider_weight(provider_lead, seasonal_lead, model, scale or 1.0)
    usable = np.isfinite(provider) & (provider > 0) & (seasonal > 0)
    blended = np.where(usable, np.exp(weight * np.log(np.where(usable, provider, 1.0))
                                      + (1 - weight) * np.log(np.where(usable, seasonal, 1.0))),
                       provider)
    sigma = np.sqrt((weight * model.sigma_log(provider_lead)) ** 2
                    + ((1 - weight) * (scale or 1.0) * uncertainty.SEASONAL_EXTENSION_MODEL
                       .sigma_log(seasonal_lead)) ** 2)
    sigma = np.where(usable, sigma, model.sigma_log(provider_lead))
    measured = (f"its error on the last {CALIBRATION_DAYS} days of them {scale:.2f} x the "
                "calibrated" if scale is not None else "its calibrated error (too few actuals "
                "to measure it)")
    note = (f"blended with the seasonal model of actuals up to {history_end:%Y-%m-%d %H:%M} "
            f"UTC ({measured}; weight of the provider's forecast {weight[0]:.2f} in the first "
            f"slot .. {weight[-1]:.2f} in the last)")
    detail = "; ".join(x for x in (forecast.detail, note) if x)
    out = replace(
        forecast, carbon_intensity=tuple(float(v) for v in blended),
        carbon_intensity_p10=tuple(float(v) for v in blended * np.exp(-uncertainty.Z90 * sigma)),
        carbon_intensity_p90=tuple(float(v) for v in blended * np.exp(uncertainty.Z90 * sigma)),
        detail=detail)
    return Blend(out, True, note)
