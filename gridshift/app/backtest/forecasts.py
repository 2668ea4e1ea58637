"""The forecasts a replay's policies plan on: what was known at each decision time.

The raw forecast issued at decision hour ``d`` for the hours from ``d`` on is one of:

- **synthetic** (no vintages given): the actual series times the calibrated forecast error
  model (``forecast_model``; default the average-intensity model fitted on GB NESO 48-h
  forecasts), with ``vintages="evolving"`` one consistent history of vintages
  (:func:`forecasting.uncertainty.evolving_log_errors`, seed ``seed``: the error of a valid
  hour shrinks as it approaches), with ``"independent"`` a fresh error per decision
  (``forecasting.uncertainty.scenarios``, seed ``seed * 100_000 + decision index``);
  ``perfect``: the actual series.
- **real vintages** (a forecast file): for every valid time the latest value issued at or
  before ``d`` (never one issued later), as hourly means over the whole hours they cover from
  ``d``; past their end the seasonal model of the actuals published by then continues it
  (:func:`forecasting.extension.extend`).

Every forecast-driven policy plans on the same decision forecast: the raw forecast blended with
the seasonal model of the actuals published by then (:mod:`forecasting.blend`; the actual of
an hour is published ``actuals_delay_h`` after it ends; the 21 days before the replay are
known from the start), or the raw forecast with ``blend=False``. It carries a p10/p90 band
(the blend's, or the error model's by lead) from which the no-regret rule draws scenarios. A
perfect forecast is not blended and has no band.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from gridshift.app.backtest.config import FORECAST_MODELS, SLOT_MINUTES, BacktestConfig
from gridshift.forecasting.alignment import align_to_slots
from gridshift.forecasting.blend import blend_with_actuals
from gridshift.forecasting.extension import extend
from gridshift.forecasting.series import Forecast
from gridshift.forecasting.uncertainty import (
    DEFAULT,
    evolving_log_errors,
    quantiles,
    scenarios,
)


@dataclass(frozen=True)
class DecisionForecast:
    """The series a forecast-driven policy sees at a decision, from the decision hour on:
    point values and the p10/p90 band (gCO2e/kWh; the band equals the values when exact)."""

    values: np.ndarray
    p10: np.ndarray
    p90: np.ndarray


@dataclass
class DecisionForecasts:
    """The forecasts of one replay (see the module docstring), drawn once and cached."""

    cfg: BacktestConfig
    origin: datetime
    actual: np.ndarray                # [total_h] actual intensity from the origin
    past: np.ndarray                  # actual intensity in the days before the origin
    vintages: pd.DataFrame | None = None
    _raw: dict[int, np.ndarray] = field(default_factory=dict)
    _decided: dict[int, DecisionForecast] = field(default_factory=dict)
    _log_errors: np.ndarray | None = None

    @property
    def total_h(self) -> int:
        return len(self.actual)

    def time(self, hour: int) -> datetime:
        return self.origin + timedelta(hours=hour)

    @property
    def exact(self) -> bool:
        """Whether the forecasts are the actual series (the ``perfect`` model)."""
        return not self.cfg.forecast_vintages and FORECAST_MODELS[self.cfg.forecast_model] \
            is None

    def raw(self, k: int, start_h: int) -> np.ndarray:
        """The raw forecast issued at decision ``k`` (hour ``start_h``) for [start_h, total_h)."""
        if self.exact:
            return self.actual[start_h:]
        if self.cfg.forecast_vintages:
            if k not in self._raw:
                self._raw[k] = self._from_vintages(start_h)
            return self._raw[k]
        model = FORECAST_MODELS[self.cfg.forecast_model]
        if self.cfg.vintages == "evolving":
            if self._log_errors is None:
                self._log_errors = evolving_log_errors(model, self.total_h, SLOT_MINUTES,
                                                       seed=self.cfg.seed)
            valid = np.arange(start_h, self.total_h)
            return self.actual[start_h:] * np.exp(self._log_errors[valid, valid - start_h])
        if k not in self._raw:
            self._raw[k] = scenarios(
                self.actual[start_h:], issued_at=self.time(start_h), start=self.time(start_h),
                step_minutes=SLOT_MINUTES, n=1, seed=self.cfg.seed * 100_000 + k,
                model=model)[0]
        return self._raw[k]

    def decision(self, k: int, start_h: int) -> DecisionForecast:
        """What every forecast-driven policy plans on at decision ``k`` (hour ``start_h``)."""
        if k not in self._decided:
            self._decided[k] = self._decide(k, start_h)
        return self._decided[k]

    # -- internals -------------------------------------------------------------------------

    def _published(self, start_h: int) -> Forecast:
        """The actuals published by hour ``start_h`` (the days before the origin included)."""
        known_h = start_h - self.cfg.actuals_delay_h
        history = np.concatenate([self.past, self.actual[:max(known_h, 0)]])
        return Forecast(region=self.cfg.region, start=self.time(-len(self.past)),
                        slot_minutes=SLOT_MINUTES, carbon_intensity=tuple(history),
                        provider="actuals")

    def _decide(self, k: int, start_h: int) -> DecisionForecast:
        values = self.raw(k, start_h)
        if self.exact:
            return DecisionForecast(values, values, values)
        issued = self.time(start_h)
        if self.cfg.blend:
            forecast = Forecast(region=self.cfg.region, start=issued, slot_minutes=SLOT_MINUTES,
                                carbon_intensity=tuple(values), provider="backtest-forecast",
                                issued_at=issued)
            blend = blend_with_actuals(forecast, self._published(start_h))
            if blend.applied:
                out = blend.forecast
                return DecisionForecast(*(np.asarray(v, dtype=float) for v in (
                    out.carbon_intensity, out.carbon_intensity_p10, out.carbon_intensity_p90)))
        model = DEFAULT if self.cfg.forecast_vintages else FORECAST_MODELS[self.cfg.forecast_model]
        p10, _, p90 = quantiles(values, issued, issued, SLOT_MINUTES, model)
        return DecisionForecast(np.asarray(values, dtype=float), p10, p90)

    def _from_vintages(self, start_h: int) -> np.ndarray:
        """The latest vintage values known at ``start_h``, hourly, continued by the seasonal
        model of the published actuals past their end."""
        issued = self.time(start_h)
        until = self.time(self.total_h)
        known = self._covered_hours(issued)
        history = self._published(start_h)
        if len(known) == 0:
            last = np.asarray(history.carbon_intensity, dtype=float)
            finite = last[np.isfinite(last)]
            known = finite[-1:] if len(finite) else self.actual[start_h:start_h + 1]
        head = Forecast(region=self.cfg.region, start=issued, slot_minutes=SLOT_MINUTES,
                        carbon_intensity=tuple(float(v) for v in known),
                        provider="forecast-vintages", issued_at=issued)
        full = extend(head, until, history, fill_quantiles=False).forecast
        return np.asarray(full.carbon_intensity[:self.total_h - start_h], dtype=float)

    def _covered_hours(self, issued: datetime) -> np.ndarray:
        """Hourly means of the latest values issued at or before ``issued``, over the whole
        hours from ``issued`` that they cover without a gap."""
        frame = self.vintages
        stamp = pd.Timestamp(issued)
        known = frame.iloc[:int(frame["issued_at"].searchsorted(stamp, side="right"))]
        known = known[known["valid_at"] >= stamp - pd.Timedelta(hours=1)]
        if known.empty:
            return np.zeros(0)
        latest = known.drop_duplicates("valid_at", keep="last").sort_values("valid_at")
        times = latest["valid_at"]
        step_min = float(np.diff((times - times.iloc[0]) / pd.Timedelta(minutes=1)).min()) \
            if len(times) > 1 \
            else 60.0
        step = pd.Timedelta(minutes=step_min)
        grid = pd.date_range(times.iloc[0], times.iloc[-1], freq=step)
        values = latest.set_index("valid_at")["value"].reindex(grid)
        if stamp < grid[0] or step_min <= 0 or step_min != int(step_min):
            return np.zeros(0)
        gap = np.flatnonzero(values.isna().to_numpy() & (grid >= stamp))
        end = grid[gap[0]] if len(gap) else grid[-1] + step
        hours = int((end - stamp) / pd.Timedelta(hours=1))
        if hours <= 0:
            return np.zeros(0)
        return align_to_slots(values.to_numpy(float), grid[0].to_pydatetime(), int(step_min),
                              issued, SLOT_MINUTES, hours)
