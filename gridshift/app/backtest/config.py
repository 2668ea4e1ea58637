"""Backtest settings and results: the policies, the carbon series and trace constants,
:class:`BacktestConfig`, :class:`TraceJob` and :class:`BacktestResult`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import pandas as pd

from gridshift.forecasting.uncertainty import DEFAULT, SEASONAL_EXTENSION_MODEL, ErrorModel

POLICIES = ("run-now", "fifo", "lowest-window", "lets-wait-awhile", "gridshift",
            "perfect-foresight")
REFERENCE_POLICY = "run-now"
EIA_FILES = {
    "US-CAL-CISO": "CISO_NG_&_avgCI.csv", "US-TEX-ERCO": "ERCO_NG_&_avgCI.csv",
    "US-MIDA-PJM": "PJM_NG_&_avgCI.csv", "US-NW-BPAT": "BPAT_NG_&_avgCI.csv",
    "US-NY-NYIS": "NYIS_NG_&_avgCI.csv", "US-MIDW-MISO": "MISO_NG_&_avgCI.csv",
}
SERIES_YEAR = {**{r: 2022 for r in EIA_FILES}, "DE": 2020}
TRACE_YEAR = 2017
DEFAULT_TRACE_WEEK = date(2017, 10, 23)
MIN_DURATION_S, MAX_DURATION_S = 30 * 60, 24 * 3600
SLOT_MINUTES = 60
SITE_ID = "site"
#: Decision-time forecast error models: the calibrated average-intensity model (the default),
#: the seasonal-extension model backtested on these very series, or none (perfect forecasts).
FORECAST_MODELS: dict[str, ErrorModel | None] = {
    "average-ci": DEFAULT, "seasonal-extension": SEASONAL_EXTENSION_MODEL, "perfect": None,
}

#: How forecasts issued at successive decisions relate: ``evolving`` (the default) draws one
#: consistent history of vintages (forecasting.uncertainty.evolving_log_errors), ``independent``
#: draws every decision's forecast error afresh.
VINTAGES = ("evolving", "independent")


class BacktestError(RuntimeError):
    """A schedule failed the independent checker, or the data cannot hold the replay."""


@dataclass(frozen=True)
class BacktestConfig:
    """One replay: region, week and the policy parameters (see the module docstring)."""

    region: str
    start: date
    days: int = 7
    slack_h: float = 12.0
    time_limit_s: float = 5.0
    pf_time_limit_s: float | None = None
    seed: int = 0
    decision_hours: int = 1
    max_shift_h: float = 8.0
    utilisation: float = 0.9
    gpu_kw: float = 0.7
    margin_h: int = 24
    trace_start: date | None = None
    max_jobs: int | None = None
    capacity_gpus: int | None = None
    forecast_model: str = "average-ci"
    vintages: str = "evolving"
    blend: bool = True
    blend_others: bool = False
    actuals_delay_h: int = 1
    perfect_leads_h: tuple[int, int] | None = None

    @property
    def pf_limit_s(self) -> float:
        return 2.0 * self.time_limit_s if self.pf_time_limit_s is None else self.pf_time_limit_s


@dataclass(frozen=True)
class TraceJob:
    """A trace job mapped onto the carbon year; ``*_h`` are hours after the replay's start."""

    id: str
    arrival: datetime
    duration_minutes: int
    gpus: int
    power_kw: float
    deadline: datetime
    arrival_h: float
    first_h: int          # first whole hour at or after arrival
    duration_slots: int
    deadline_h: int       # deadline rounded down to the hour


@dataclass
class BacktestResult:
    """The comparison table and what it was computed from."""

    config: BacktestConfig
    trace_start: date
    capacity_gpus: int
    jobs: list[TraceJob]
    table: pd.DataFrame             # one row per policy
    hourly_kg: pd.DataFrame         # actual emissions per hour, one column per policy
    starts: pd.DataFrame            # start time per job (rows) and policy (columns)
    windows: pd.DataFrame           # one row per decision window and policy
    checks_passed: int = 0


def replay_origin(cfg: BacktestConfig) -> datetime:
    """Hour 0 of the replay: UTC midnight of ``cfg.start``."""
    return datetime(cfg.start.year, cfg.start.month, cfg.start.day, tzinfo=UTC)
