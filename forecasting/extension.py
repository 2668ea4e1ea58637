"""Extend a forecast past its provider's horizon with a seasonal model fitted on history.

The model (chosen by backtests on EIA-930 2022 and Germany 2020 hourly carbon intensity, see
``bench/forecast.py``): the mean by UTC hour of day over the last ``profile_days`` (14) days of
history + forecast, plus the anomaly of the last hour before the extension origin (forecast minus
profile), decaying as ``exp(-lead_h / anomaly_tau_h)`` with ``anomaly_tau_h`` = 36 h. Against
persistence it roughly halves the error from 3 h to 7 days ahead (MAE 0.06-0.14 vs 0.11-0.19 of
the mean level); a weekday term and shorter profiles did not help on that data.

The extended part is labelled: :func:`extend` returns an :class:`Extension` whose
``extended_from`` is the origin (the provider's last covered instant) and whose ``detail`` is the
text the caller puts into provenance ("extended by seasonal model from ...").

Gap policy: NaN values are ignored when the profile is built (an hour needs at least 30 covered
minutes); hours of day with no data take the mean of all data.

Pure: numpy, pandas and the standard library.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from gridshift.forecasting import uncertainty
from gridshift.forecasting.series import Forecast

__all__ = ["Extension", "SeasonalModel", "backtest_vintages", "extend", "fit_seasonal"]

_MIN_PER_HOUR = 60.0
_MIN_PER_DAY = 1440.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SeasonalModel:
    """A fitted seasonal model: ``value(t) = profile[hour_utc(t)] + anomaly * exp(-lead/tau)``.

    Attributes:
        hourly_profile: (24,) mean value by UTC hour of day (the series' unit).
        anomaly: value minus profile over the last hour before ``origin``.
        anomaly_at: the instant the anomaly refers to (middle of that last hour).
        anomaly_tau_h: e-folding time of the anomaly, hours.
    """

    hourly_profile: np.ndarray
    anomaly: float
    anomaly_at: datetime
    anomaly_tau_h: float

    def predict(self, start: datetime, step_minutes: float, n: int) -> np.ndarray:
        """Time-weighted model value over each of ``n`` slots of ``step_minutes`` from ``start``
        (clipped at >= 0)."""
        ref = _minutes(self.anomaly_at.astimezone(UTC).replace(hour=0, minute=0, second=0,
                                                               microsecond=0))
        edges = _minutes(start) - ref + np.arange(n + 1) * float(step_minutes)
        profile = np.diff(_periodic_integral(self.hourly_profile, edges)) / step_minutes
        mid_h = (edges[:-1] + step_minutes / 2.0 - (_minutes(self.anomaly_at) - ref)) / 60.0
        decay = np.exp(-np.maximum(mid_h, 0.0) / self.anomaly_tau_h)
        return np.maximum(profile + self.anomaly * decay, 0.0)


@dataclass(frozen=True)
class Extension:
    """A forecast extended past its provider's horizon.

    ``extended_from`` is None when nothing was added; otherwise slots from it on come from the
    seasonal model (``method``), and ``detail`` is the provenance note.
    """

    forecast: Forecast
    extended_from: datetime | None
    method: str = ""

    @property
    def detail(self) -> str:
        """Provenance note, empty when nothing was extended."""
        if self.extended_from is None:
            return ""
        stamp = self.extended_from.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"extended by seasonal model from {stamp} ({self.method})"


def _minutes(moment: datetime) -> float:
    """Minutes since the Unix epoch (tz-aware datetimes only)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"datetime {moment!r} must be timezone-aware (UTC)")
    return (moment - _EPOCH).total_seconds() / 60.0


def _periodic_integral(hourly: np.ndarray, x_min: np.ndarray) -> np.ndarray:
    """Integral (value x minutes) from 0 to ``x_min`` of the 24-h periodic hourly step profile;
    ``x_min`` counts from a UTC midnight."""
    day = np.concatenate([[0.0], np.cumsum(hourly * _MIN_PER_HOUR)])
    whole_days = np.floor(x_min / _MIN_PER_DAY)
    within = x_min - whole_days * _MIN_PER_DAY
    return whole_days * day[-1] + np.interp(within, np.arange(25) * _MIN_PER_HOUR, day)


def _hourly(series: Forecast) -> tuple[np.ndarray, np.ndarray]:
    """(epoch hour index, time-weighted mean) of every UTC hour with >= 30 covered minutes."""
    values = np.asarray(series.carbon_intensity, dtype=float)
    return _hourly_of(values, series.start, series.slot_minutes)


def _hourly_of(values: np.ndarray, start: datetime,
               step_minutes: float) -> tuple[np.ndarray, np.ndarray]:
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    valid = np.isfinite(values)
    knots = _minutes(start) + np.arange(len(values) + 1) * float(step_minutes)
    value_int = np.concatenate([[0.0], np.cumsum(np.where(valid, values, 0.0) * step_minutes)])
    cover_int = np.concatenate([[0.0], np.cumsum(valid * float(step_minutes))])
    first, last = math.floor(knots[0] / 60.0), math.ceil(knots[-1] / 60.0)
    hours = np.arange(first, last, dtype=np.int64)
    edges = np.arange(first, last + 1) * _MIN_PER_HOUR
    covered = np.diff(np.interp(edges, knots, cover_int))
    total = np.diff(np.interp(edges, knots, value_int))
    keep = covered >= 30.0 - 1e-9
    return hours[keep], total[keep] / covered[keep]


def _merge(history: Forecast | None, forecast_hours: tuple[np.ndarray, np.ndarray],
           ) -> tuple[np.ndarray, np.ndarray]:
    """Hourly history and forecast combined; history (actuals) wins where both exist."""
    hours, means = forecast_hours
    if history is None or not history.carbon_intensity:
        return hours, means
    past_hours, past = _hourly(history)
    all_hours = np.union1d(hours, past_hours)
    merged = np.full(len(all_hours), np.nan)
    merged[np.searchsorted(all_hours, hours)] = means
    merged[np.searchsorted(all_hours, past_hours)] = past
    return all_hours, merged


def _profile(hours: np.ndarray, means: np.ndarray, origin_h: float, days: int) -> np.ndarray:
    """(24,) mean by UTC hour of day over the ``days`` days before ``origin_h``."""
    sel = (hours >= origin_h - 24 * days) & (hours < origin_h) & np.isfinite(means)
    if not sel.any():
        raise ValueError("no finite values in the history to fit a seasonal model on")
    hod = hours[sel] % 24
    sums = np.bincount(hod, weights=means[sel], minlength=24)
    counts = np.bincount(hod, minlength=24)
    profile = np.full(24, float(means[sel].mean()))
    profile[counts > 0] = sums[counts > 0] / counts[counts > 0]
    return profile


def _recent_mean(values: np.ndarray, start: datetime, step_minutes: float,
                 origin: datetime) -> tuple[float, datetime]:
    """Time-weighted mean of the finite values in the last hour before ``origin``, and the
    middle of that interval."""
    span_min = min(_MIN_PER_HOUR, step_minutes * len(values))
    n_tail = max(1, math.ceil(span_min / step_minutes))
    tail = values[-n_tail:]
    tail_start = origin - timedelta(minutes=step_minutes * n_tail)
    knots = np.arange(n_tail + 1) * float(step_minutes)
    valid = np.isfinite(tail)
    value_int = np.concatenate([[0.0], np.cumsum(np.where(valid, tail, 0.0) * step_minutes)])
    cover_int = np.concatenate([[0.0], np.cumsum(valid * float(step_minutes))])
    a = knots[-1] - span_min
    covered = cover_int[-1] - np.interp(a, knots, cover_int)
    mid = tail_start + timedelta(minutes=(a + knots[-1]) / 2.0)
    if covered <= 0:
        return math.nan, mid
    return float((value_int[-1] - np.interp(a, knots, value_int)) / covered), mid


def fit_seasonal(values: np.ndarray, start: datetime, step_minutes: float,
                 history: Forecast | None = None, *, profile_days: int = 14,
                 anomaly_tau_h: float = 36.0) -> SeasonalModel:
    """Fit the seasonal model on ``values`` (slots of ``step_minutes`` from ``start``) and the
    optional ``history`` (actuals before them, any step); the origin is the end of ``values``."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        raise ValueError("cannot extend an empty series")
    if profile_days < 1 or anomaly_tau_h <= 0:
        raise ValueError("profile_days must be >= 1 and anomaly_tau_h > 0")
    origin = start + timedelta(minutes=step_minutes * len(values))
    hours, means = _merge(history, _hourly_of(values, start, step_minutes))
    profile = _profile(hours, means, _minutes(origin) / 60.0, profile_days)
    recent, recent_at = _recent_mean(values, start, step_minutes, origin)
    model = SeasonalModel(profile, 0.0, recent_at, anomaly_tau_h)
    if not math.isfinite(recent):
        return model
    span_min = min(_MIN_PER_HOUR, step_minutes * len(values))
    at_recent = model.predict(recent_at - timedelta(minutes=span_min / 2.0), span_min, 1)[0]
    return replace(model, anomaly=recent - float(at_recent))


def _method(profile_days: int, anomaly_tau_h: float) -> str:
    return (f"{profile_days}-day UTC hour-of-day profile + last-hour anomaly decaying over "
            f"{anomaly_tau_h:g} h")


def extend(forecast: Forecast, until: datetime, history: Forecast | None = None, *,
           profile_days: int = 14, anomaly_tau_h: float = 36.0,
           fill_quantiles: bool = True) -> Extension:
    """Extend ``forecast`` at its own step until it covers ``until``.

    The seasonal model is fitted on ``history`` (actuals, optional, any step) and the forecast
    itself. Prices, when present, are extended the same way from the forecast's own prices.
    With ``fill_quantiles`` (or when the forecast has p10/p90) the result carries p10/p90 over
    all slots: the provider's part keeps its own band (or gets :func:`uncertainty.model_for`'s),
    the extended part gets :data:`uncertainty.SEASONAL_EXTENSION_MODEL`'s, combined with the
    provider's end-of-horizon spread (decaying with the anomaly; never narrowing with lead).
    """
    if until.tzinfo is None or until.utcoffset() is None:
        raise ValueError("until must be a timezone-aware datetime (UTC)")
    step = forecast.slot_minutes
    n = len(forecast.carbon_intensity)
    missing_min = (until - forecast.end).total_seconds() / 60.0
    if missing_min <= 0:
        return Extension(forecast, None)
    n_ext = math.ceil(missing_min / step - 1e-9)
    model = fit_seasonal(np.asarray(forecast.carbon_intensity), forecast.start, step, history,
                         profile_days=profile_days, anomaly_tau_h=anomaly_tau_h)
    origin = forecast.end
    added = model.predict(origin, step, n_ext)
    extended = replace(forecast, carbon_intensity=forecast.carbon_intensity + _floats(added))
    if len(forecast.price_per_mwh) == n:
        price_model = fit_seasonal(np.asarray(forecast.price_per_mwh), forecast.start, step,
                                   profile_days=profile_days, anomaly_tau_h=anomaly_tau_h)
        extended = replace(extended, price_per_mwh=forecast.price_per_mwh
                           + _floats(price_model.predict(origin, step, n_ext)))
    else:
        extended = replace(extended, price_per_mwh=())
    extended = _with_band(forecast, extended, added, origin, anomaly_tau_h, fill_quantiles)
    return Extension(extended, origin, _method(profile_days, anomaly_tau_h))


def _floats(values: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def _with_band(original: Forecast, extended: Forecast, added: np.ndarray, origin: datetime,
               anomaly_tau_h: float, fill: bool) -> Forecast:
    """p10/p90 over the whole extended forecast (or none, when not asked and not given)."""
    base = uncertainty.with_quantiles(original)
    if not (fill or base is original):
        return replace(extended, carbon_intensity_p10=(), carbon_intensity_p90=())
    p50_end, p90_end = base.carbon_intensity[-1], base.carbon_intensity_p90[-1]
    sigma_end = 0.0
    if math.isfinite(p50_end) and math.isfinite(p90_end) and p50_end > 0:
        sigma_end = math.log(max(p90_end, p50_end) / p50_end) / uncertainty.Z90
    step = original.slot_minutes
    lead_h = np.arange(len(added)) * step / 60.0
    seasonal = uncertainty.SEASONAL_EXTENSION_MODEL.sigma_log(lead_h)
    # The provider's end-of-horizon error carries over through the decaying anomaly; the band
    # never narrows with lead.
    sigma = np.maximum.accumulate(
        np.sqrt(seasonal**2 + (sigma_end * np.exp(-lead_h / anomaly_tau_h)) ** 2))
    return replace(
        extended,
        carbon_intensity_p10=base.carbon_intensity_p10
        + _floats(added * np.exp(-uncertainty.Z90 * sigma)),
        carbon_intensity_p90=base.carbon_intensity_p90
        + _floats(added * np.exp(uncertainty.Z90 * sigma)),
    )


def backtest_vintages(actuals: Forecast, horizon_h: float = 168.0, every_h: float = 25.0, *,
                      profile_days: int = 14, anomaly_tau_h: float = 36.0) -> pd.DataFrame:
    """Backtest the seasonal extension on a series of actuals.

    At origins every ``every_h`` hours (after ``profile_days`` of warm-up), the model sees only
    the preceding ``profile_days`` of actuals and extends ``horizon_h`` hours. Returns one row
    per (origin, slot): ``issued_at`` (origin), ``valid_at``, ``forecast`` (seasonal),
    ``persistence`` (last finite known value) and ``actual``.
    """
    step = actuals.slot_minutes
    values = np.asarray(actuals.carbon_intensity, dtype=float)
    warmup = int(round(profile_days * _MIN_PER_DAY / step))
    horizon = int(round(horizon_h * 60.0 / step))
    stride = max(1, int(round(every_h * 60.0 / step)))
    rows: dict[str, list[np.ndarray]] = {k: [] for k in ("issued", "valid", "fc", "pers", "act")}
    for i in range(warmup, len(values) - horizon + 1, stride):
        known = values[i - warmup:i]
        finite = known[np.isfinite(known)]
        if len(finite) == 0:
            continue
        start = actuals.start + timedelta(minutes=step * (i - warmup))
        model = fit_seasonal(known, start, step, profile_days=profile_days,
                             anomaly_tau_h=anomaly_tau_h)
        origin = actuals.start + timedelta(minutes=step * i)
        rows["fc"].append(model.predict(origin, step, horizon))
        rows["pers"].append(np.full(horizon, finite[-1]))
        rows["act"].append(values[i:i + horizon])
        rows["issued"].append(np.full(horizon, _minutes(origin)))
        rows["valid"].append(_minutes(origin) + np.arange(horizon) * float(step))
    if not rows["fc"]:
        raise ValueError("series too short for a backtest: needs profile_days + horizon_h")
    flat = {k: np.concatenate(v) for k, v in rows.items()}
    return pd.DataFrame({
        "issued_at": pd.to_datetime(flat["issued"], unit="m", utc=True),
        "valid_at": pd.to_datetime(flat["valid"], unit="m", utc=True),
        "forecast": flat["fc"], "persistence": flat["pers"], "actual": flat["act"],
    })
