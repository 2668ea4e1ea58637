"""Backtest settings and results: the policies and their rules, the built-in carbon series and
trace constants, :class:`BacktestConfig`, :class:`TraceJob`, :class:`Reference` and
:class:`BacktestResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pandas as pd

from gridshift.forecasting.uncertainty import DEFAULT, SEASONAL_EXTENSION_MODEL, ErrorModel

#: Every policy a replay can run; ``rolling-foresight`` (the solver re-planning hourly on the
#: actual series, without knowing future arrivals) is a diagnostic, not run by default.
POLICIES = ("run-now", "fifo", "lowest-window", "lets-wait-awhile", "gridshift",
            "rolling-foresight")
DEFAULT_POLICIES = POLICIES[:-1]
#: The policies that plan on the decision-time forecast: all get the same one.
FORECAST_POLICIES = ("lowest-window", "lets-wait-awhile", "gridshift")
REFERENCE_POLICY = "run-now"
#: The row of the perfect-foresight reference in a replay's table.
PF_ROW = "perfect-foresight"
EIA_FILES = {
    "US-CAL-CISO": "CISO_NG_&_avgCI.csv", "US-TEX-ERCO": "ERCO_NG_&_avgCI.csv",
    "US-MIDA-PJM": "PJM_NG_&_avgCI.csv", "US-NW-BPAT": "BPAT_NG_&_avgCI.csv",
    "US-NY-NYIS": "NYIS_NG_&_avgCI.csv", "US-MIDW-MISO": "MISO_NG_&_avgCI.csv",
}
SERIES_YEAR = {**{r: 2022 for r in EIA_FILES}, "DE": 2020}
DEFAULT_TRACE_WEEK = date(2017, 10, 23)
MIN_DURATION_S, MAX_DURATION_S = 30 * 60, 24 * 3600
SLOT_MINUTES = 60
SITE_ID = "site"
#: Decision-time forecast error models: the calibrated average-intensity model (the default),
#: the seasonal-extension model backtested on these very series, or none (perfect forecasts).
#: Real forecast vintages (``BacktestConfig.forecast_vintages``) replace the model.
FORECAST_MODELS: dict[str, ErrorModel | None] = {
    "average-ci": DEFAULT, "seasonal-extension": SEASONAL_EXTENSION_MODEL, "perfect": None,
}

#: How forecasts issued at successive decisions relate: ``evolving`` (the default) draws one
#: consistent history of vintages (forecasting.uncertainty.evolving_log_errors), ``independent``
#: draws every decision's forecast error afresh.
VINTAGES = ("evolving", "independent")
#: Reference kinds: the offline optimum proven within OPTIMAL_GAP, or the best bound of its
#: relaxation where it was not solved that closely.
REFERENCE_KINDS = ("offline-optimum", "relaxation-bound")
OPTIMAL_GAP = 1e-4


class BacktestError(RuntimeError):
    """A schedule failed the independent checker, or the data cannot hold the replay."""


@dataclass(frozen=True)
class BacktestConfig:
    """One replay: series, week, site and the policy parameters (see the package docstring).

    ``region`` names the carbon series (and the site's region); ``capacity_gpus`` None sizes
    the capacity from the trace (``utilisation``); ``power_cap_kw`` None is no cap;
    ``no_regret_z`` and ``no_regret_budget_pct``: the no-regret rule (default z 2 with a loss
    budget of 1 % of the replay's stake, :mod:`.regret`; budget 0 judges each decision alone,
    which at z 1 cost 3-37 points of the perfect-foresight savings on 6 of 7 series in the
    README's sweep; z None switches the rule off); ``forecast_vintages`` True plans on
    the real forecast vintages of the replay's inputs instead of the synthetic error model.
    """

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
    actuals_delay_h: int = 1
    perfect_leads_h: tuple[int, int] | None = None
    site_id: str = SITE_ID
    pue: float = 1.0
    power_cap_kw: float | None = None
    no_regret_z: float | None = 2.0
    no_regret_budget_pct: float = 1.0
    scenarios: int = 64
    reference_time_limit_s: float = 60.0
    forecast_vintages: bool = False

    @property
    def pf_limit_s(self) -> float:
        """The rolling-foresight policy's time limit per window."""
        return 2.0 * self.time_limit_s if self.pf_time_limit_s is None else self.pf_time_limit_s

    @property
    def forecast_source(self) -> str:
        """What the forecast-driven policies plan on, in words."""
        return self.forecast_template.replace("{seeds}", f"seed {self.seed}")

    @property
    def forecast_template(self) -> str:
        """:attr:`forecast_source` with ``{seeds}`` where it names the error model's seed
        (none where the forecast does not depend on it): replays that differ only in the
        seed share it, and a sweep names all their seeds in it."""
        if self.forecast_vintages:
            raw = "the real forecast vintages known at each decision"
        elif self.forecast_model == "perfect":
            raw = "the actual series (perfect forecasts)"
        else:
            raw = (f"the actual series times the calibrated {self.forecast_model} error "
                   f"({self.vintages} vintages, {{seeds}})")
        if not self.blend:
            return raw
        return (f"{raw}, blended with the seasonal model of the actuals published "
                f"{self.actuals_delay_h} h after each hour")


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

    @property
    def due_h(self) -> int:
        """The deadline hour, or the first hour it can finish by when that is later."""
        return max(self.deadline_h, self.first_h + self.duration_slots)


@dataclass(frozen=True)
class Reference:
    """The perfect-foresight reference: the offline optimum over the whole replay with the
    actual intensity and every arrival known, or a proven bound on it.

    ``bound_kg`` is a proven lower bound on the emissions of every schedule that keeps the
    reference's deadlines (the optimum's own value when ``kind`` is ``offline-optimum``);
    savings against run-now are measured against it, so no share exceeds 100 %.
    ``relaxed_jobs``: jobs whose deadline the reference relaxed because some evaluated
    schedule (run-now, or a policy) finished them later.
    """

    kind: str
    bound_kg: float
    plan_kg: float
    gap_pct: float
    wall_s: float
    relaxed_jobs: int
    detail: str
    due_h: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        if self.kind == "offline-optimum":
            what = (f"offline optimum {self.bound_kg:,.1f} kg CO2e (proven within "
                    f"{self.gap_pct:.3f} %)")
        else:
            what = (f"relaxation bound {self.bound_kg:,.1f} kg CO2e (best schedule found "
                    f"{self.plan_kg:,.1f} kg, gap {self.gap_pct:.2f} %; shares are lower "
                    "bounds)")
        relaxed = (f"; deadlines of {self.relaxed_jobs} job(s) relaxed to cover late schedules"
                   if self.relaxed_jobs else "")
        return f"perfect foresight = {what}, {self.wall_s:.1f} s{relaxed}"


@dataclass
class BacktestResult:
    """The comparison table and what it was computed from."""

    config: BacktestConfig
    trace_start: date
    capacity_gpus: int
    jobs: list[TraceJob]
    table: pd.DataFrame             # one row per policy, then the reference's
    hourly_kg: pd.DataFrame         # actual emissions per hour, one column per policy
    starts: pd.DataFrame            # start time per job (rows) and policy (columns)
    windows: pd.DataFrame           # one row per decision window and policy
    reference: Reference | None = None
    rules: dict[str, str] = field(default_factory=dict)
    checks_passed: int = 0
    no_regret: dict[str, int] = field(default_factory=dict)


def replay_origin(cfg: BacktestConfig) -> datetime:
    """Hour 0 of the replay: UTC midnight of ``cfg.start``."""
    return datetime(cfg.start.year, cfg.start.month, cfg.start.day, tzinfo=UTC)


def no_regret_summary(z: float | None, budget_pct: float | None) -> str:
    """The no-regret rule in a few words for headers: "off", "z 2", or "z 2, loss budget 1 %
    of the stake"."""
    if z is None:
        return "off"
    budget = f", loss budget {budget_pct:g} % of the stake" if budget_pct else ""
    return f"z {z:g}{budget}"
