"""Fitting and checking forecast error models (:class:`forecasting.uncertainty.ErrorModel`)
on forecast-vs-actual data.

:func:`fit_error_model` fits the sigma table (per lead-time bucket, the 0.8 quantile of the
absolute log error over 1.2816, made non-decreasing by isotonic regression) and the AR(1)
correlation time; :func:`calibration` and :func:`coverage_by_lead` score a model on held-out
data (p10-p90 coverage); :func:`split_by_issue_time` and :func:`leave_one_vintage_out` make
the held-out sets. :func:`refit_default_models` reproduces the constants shipped in
:mod:`forecasting.uncertainty` from the real data sets, which
``gridshift.adapters.datasets`` reads (``bench/forecast.py`` prints them).

Pure: numpy, pandas and the standard library; no file is read here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from gridshift.forecasting.series import Forecast
from gridshift.forecasting.uncertainty import (
    AVERAGE_CI_MODEL,
    MOER_MODEL,
    SEASONAL_EXTENSION_MODEL,
    TYPICAL_PROFILE_MODEL,
    Z90,
    ErrorModel,
)

__all__ = [
    "Calibrated",
    "calibration",
    "coverage_by_lead",
    "fit_error_model",
    "leave_one_vintage_out",
    "refit_default_models",
    "split_by_issue_time",
    "typical_profile_vintages",
]

_VINTAGE_COLUMNS = ("issued_at", "valid_at", "forecast", "actual")


def _vintage_arrays(vintages: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(lead_h, log error) of valid rows of a vintages-vs-actuals frame."""
    missing = [c for c in _VINTAGE_COLUMNS if c not in vintages.columns]
    if missing:
        raise ValueError(f"vintages frame lacks columns {missing}; needs {_VINTAGE_COLUMNS}")
    forecast = vintages["forecast"].to_numpy(dtype=float)
    actual = vintages["actual"].to_numpy(dtype=float)
    ok = np.isfinite(forecast) & np.isfinite(actual) & (forecast > 0) & (actual > 0)
    lead = (vintages["valid_at"] - vintages["issued_at"]).dt.total_seconds().to_numpy() / 3600.0
    return np.maximum(lead[ok], 0.0), np.log(actual[ok] / forecast[ok])


def _pool_adjacent_violators(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least-squares non-decreasing fit of ``y`` (isotonic regression)."""
    blocks: list[list[float]] = []  # [mean, weight, size]
    for value, weight in zip(y, w, strict=True):
        blocks.append([float(value), float(weight), 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, n2 = blocks.pop()
            m1, w1, n1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    return np.concatenate([np.full(int(n), m) for m, _, n in blocks])


def _bucket_sigmas(lead_h: np.ndarray, log_err: np.ndarray, max_buckets: int,
                   min_count: int) -> tuple[np.ndarray, np.ndarray]:
    """Lead knots (h) and 80 %-coverage sigmas (isotonic in lead) of lead buckets.

    Buckets start evenly spaced in log(1 + lead); neighbours are merged until each holds at
    least ``min_count`` pairs (a short last one joins its predecessor)."""
    order = np.argsort(lead_h, kind="stable")
    lead, err = lead_h[order], np.abs(log_err[order])
    lo, hi = np.log1p(lead[0]), np.log1p(lead[-1])
    edges = np.expm1(np.linspace(lo, hi, max_buckets + 1))[1:-1] if hi - lo > 1e-9 else []
    cuts = np.searchsorted(lead, edges, side="left").tolist() + [len(lead)]
    groups: list[tuple[int, int]] = []
    begin = 0
    for cut in cuts:
        if cut - begin >= min_count:
            groups.append((begin, cut))
            begin = cut
    if begin < len(lead):
        groups[-1:] = [(groups[-1][0] if groups else 0, len(lead))]
    knots = np.array([np.sqrt(lead[a:b]).mean() ** 2 for a, b in groups])
    sigmas = np.array([np.quantile(err[a:b], 0.8) / Z90 for a, b in groups])
    counts = np.array([b - a for a, b in groups], dtype=float)
    return knots, _pool_adjacent_violators(sigmas, counts)


def _corr_time_h(vintages: pd.DataFrame, model: ErrorModel) -> float:
    """AR(1) correlation time (h) of standardised errors of consecutive slots of one vintage,
    estimated per ``source`` at its own step and averaged weighted by pairs."""
    frame = vintages.dropna(subset=["forecast", "actual"])
    frame = frame[(frame["forecast"] > 0) & (frame["actual"] > 0)]
    groups = frame.groupby("source", sort=True) if "source" in frame.columns else [("", frame)]
    taus, weights = [], []
    for _, group in groups:
        tau, pairs = _corr_time_one(group.sort_values(["issued_at", "valid_at"]), model)
        if pairs >= 3:
            taus.append(tau)
            weights.append(pairs)
    return float(np.average(taus, weights=weights)) if taus else 0.0


def _corr_time_one(frame: pd.DataFrame, model: ErrorModel) -> tuple[float, int]:
    """(correlation time h, pairs) of one source's vintages (sorted by issue, valid time)."""
    lead = (frame["valid_at"] - frame["issued_at"]).dt.total_seconds().to_numpy() / 3600.0
    z = np.log(frame["actual"].to_numpy(float) / frame["forecast"].to_numpy(float))
    z = np.clip(z / np.maximum(model.sigma_log(lead), 1e-6), -4.0, 4.0)
    issued = frame["issued_at"].to_numpy(dtype="datetime64[ns]")
    valid = frame["valid_at"].to_numpy(dtype="datetime64[ns]")
    same = issued[1:] == issued[:-1]
    dt_h = np.diff(valid).astype("timedelta64[s]").astype(float) / 3600
    if not same.any():
        return 0.0, 0
    step_h = float(dt_h[same].min())
    pairs = same & np.isclose(dt_h, step_h)
    if pairs.sum() < 3 or step_h <= 0:
        return 0.0, 0
    phi = float(np.corrcoef(z[:-1][pairs], z[1:][pairs])[0, 1])
    phi = min(max(phi, 0.01), 0.999)
    return -step_h / math.log(phi), int(pairs.sum())


def fit_error_model(vintages: pd.DataFrame, name: str = "fitted", *, max_buckets: int = 12,
                    min_count: int = 30) -> ErrorModel:
    """Fit an :class:`ErrorModel` to forecast vintages vs actuals.

    ``vintages`` has one row per (issue, valid time): ``issued_at``, ``valid_at`` (tz-aware
    timestamps), ``forecast`` and ``actual`` (same unit, > 0). Leads are bucketed evenly in
    log(1 + lead), neighbours merged until each bucket has ``min_count`` pairs; each bucket's
    sigma puts 80 % of its absolute log errors inside the p10-p90 band; sigmas are made
    non-decreasing in lead by isotonic regression. The AR(1) correlation time comes from
    consecutive slots of a vintage; an optional ``source`` column names independent series.
    """
    lead_h, log_err = _vintage_arrays(vintages)
    if len(lead_h) < min_count:
        raise ValueError(f"need at least {min_count} forecast/actual pairs, got {len(lead_h)}")
    knots, sigmas = _bucket_sigmas(lead_h, log_err, max_buckets, min_count)
    model = ErrorModel(name, tuple(round(float(k), 3) for k in knots),
                       tuple(round(float(s), 4) for s in sigmas), 0.0)
    return replace(model, corr_time_h=round(_corr_time_h(vintages, model), 3))


def calibration(model: ErrorModel, held_out: pd.DataFrame) -> float:
    """Share of actuals inside the model's [p10, p90] band on ``held_out`` vintages."""
    lead_h, log_err = _vintage_arrays(held_out)
    if len(lead_h) == 0:
        raise ValueError("held-out frame has no valid forecast/actual pairs")
    return float(np.mean(np.abs(log_err) <= Z90 * model.sigma_log(lead_h)))


def coverage_by_lead(model: ErrorModel, held_out: pd.DataFrame,
                     edges_h: Iterable[float]) -> list[tuple[float, float, int, float]]:
    """[(lead_from_h, lead_to_h, n, p10-p90 coverage)] per lead bucket of ``held_out``."""
    lead_h, log_err = _vintage_arrays(held_out)
    inside = np.abs(log_err) <= Z90 * model.sigma_log(lead_h)
    edges = list(edges_h)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (lead_h >= lo) & (lead_h < hi)
        if sel.any():
            rows.append((lo, hi, int(sel.sum()), float(inside[sel].mean())))
    return rows


def split_by_issue_time(vintages: pd.DataFrame, fraction: float = 0.5,
                        ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fit, held-out) split of each ``source`` (one series when there is no such column): the
    vintages issued in the first ``fraction`` of its issue-time span, and the later ones whose
    valid times are all after the fit part's last valid time."""
    if "source" in vintages.columns and vintages["source"].nunique() > 1:
        parts = [split_by_issue_time(group, fraction)
                 for _, group in vintages.groupby("source", sort=True)]
        return (pd.concat([p[0] for p in parts], ignore_index=True),
                pd.concat([p[1] for p in parts], ignore_index=True))
    issued = vintages["issued_at"]
    cut = issued.min() + (issued.max() - issued.min()) * fraction
    fit = vintages[issued <= cut]
    rest = vintages[issued > cut]
    return fit, rest[rest["valid_at"] > fit["valid_at"].max()]


def leave_one_vintage_out(vintages: pd.DataFrame, name: str = "fold",
                          **fit_options: int) -> tuple[float, int]:
    """(p10-p90 coverage, pairs) over all vintages, each scored by a model fitted on the others.

    For data sets with few vintages (the GB tracking files); valid times of different vintages
    overlap, so this is a weaker test than a time split."""
    inside = 0.0
    pairs = 0
    for issued_at in sorted(vintages["issued_at"].unique()):
        held = vintages["issued_at"] == issued_at
        model = fit_error_model(vintages[~held], name, **fit_options)
        n = len(_vintage_arrays(vintages[held])[0])
        inside += calibration(model, vintages[held]) * n
        pairs += n
    return inside / pairs, pairs


@dataclass(frozen=True)
class Calibrated:
    """A refitted model and its coverage on data it was not fitted on."""

    model: ErrorModel
    held_out_coverage: float
    held_out_pairs: int
    method: str


# --- The shipped constants ---------------------------------------------------------------------


def typical_profile_vintages(actuals: dict[str, Forecast]) -> pd.DataFrame:
    """The embedded typical profile as a 'forecast' (lead 0) of each hour of real actuals,
    keyed by the region whose profile is used (``US-CAL-CISO``, ...)."""
    from gridshift.forecasting import profiles

    frames = []
    for region, series in actuals.items():
        n = len(series.carbon_intensity)
        typical = profiles.typical_intensity(region, series.start, n, series.slot_minutes)
        valid = pd.date_range(series.start, periods=n, freq=f"{series.slot_minutes}min")
        frames.append(pd.DataFrame({"issued_at": valid, "valid_at": valid, "forecast": typical,
                                    "actual": np.asarray(series.carbon_intensity),
                                    "source": region}))
    return pd.concat(frames, ignore_index=True)


def refit_default_models(sets: dict[str, pd.DataFrame]) -> dict[str, Calibrated]:
    """Refit the shipped constants from the calibration sets (deterministic; the shared data's
    are read by ``gridshift.adapters.datasets.calibration_sets``).

    ``average-ci`` (4 GB vintages) is fitted on all of them and scored leave-one-vintage-out;
    the others are fitted on the first half by issue time of each series and scored on the rest.
    """
    names = {"average-ci": AVERAGE_CI_MODEL.name, "moer": MOER_MODEL.name,
             "seasonal-extension": SEASONAL_EXTENSION_MODEL.name,
             "typical-profile": TYPICAL_PROFILE_MODEL.name}
    fitted = {}
    for key, vintages in sets.items():
        if key == "average-ci":
            coverage, pairs = leave_one_vintage_out(vintages, names[key])
            fitted[key] = Calibrated(fit_error_model(vintages, names[key]), coverage, pairs,
                                     "leave-one-vintage-out")
            continue
        fit, held_out = split_by_issue_time(vintages)
        model = fit_error_model(fit, names[key])
        fitted[key] = Calibrated(model, calibration(model, held_out), len(held_out),
                                 "time split 50/50 per series")
    return fitted
