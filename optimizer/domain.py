"""Typed domain objects of an optimize request, as parsed from the canonical schema.

Times are timezone-aware UTC datetimes; powers in kW; durations in minutes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from gridshift.forecasting.series import Forecast

__all__ = ["Forecast"]  # re-exported: the optimizer reads forecasting's series type


class RiskMeasure(Enum):
    """How forecast uncertainty is scored when choosing among candidate plans."""

    UNSPECIFIED = "RISK_MEASURE_UNSPECIFIED"
    EXPECTED = "EXPECTED"
    P90 = "P90"
    CVAR95 = "CVAR95"


class Backend(Enum):
    """Which solver produces the plan. AUTO is the measured default (see README)."""

    AUTO = "BACKEND_AUTO"
    CPSAT = "CPSAT"
    HIGHS = "HIGHS"
    GREEDY = "GREEDY"

    @property
    def exact_solver_name(self) -> str:
        """The solver that runs the whole model for this choice, as details name it: CP-SAT
        for CPSAT, HiGHS for every other."""
        return "CP-SAT" if self is Backend.CPSAT else "HiGHS"


@dataclass(frozen=True)
class Horizon:
    start: datetime
    slot_minutes: int
    slots: int

    @property
    def end(self) -> datetime:
        return self.start + timedelta(minutes=self.slot_minutes * self.slots)

    @property
    def slot_hours(self) -> float:
        return self.slot_minutes / 60.0

    def slot_start(self, slot: int) -> datetime:
        return self.start + timedelta(minutes=self.slot_minutes * slot)


@dataclass(frozen=True)
class CapacityWindow:
    start: datetime
    end: datetime
    gpu_capacity: int


@dataclass(frozen=True)
class Site:
    id: str
    region: str
    gpu_capacity: int
    pue: float = 1.0
    power_cap_kw: float | None = None
    renewable_kw: tuple[float, ...] = ()
    capacity_windows: tuple[CapacityWindow, ...] = ()
    latitude: float = 0.0
    longitude: float = 0.0
    solar_kwp: float = 0.0
    wind_kw: float = 0.0


@dataclass(frozen=True)
class Job:
    id: str
    gpus: int
    power_kw: float
    duration_minutes: int
    earliest_start: datetime
    deadline: datetime
    allowed_sites: tuple[str, ...] = ()
    home_site: str = ""
    interruptible: bool = False
    min_run_minutes: int = 0
    priority: float = 1.0
    team: str = ""
    #: Running or committed: its site and start are fixed (the window and allowed sites are
    #: set to exactly its slots at that site when parsed), it only takes capacity and power.
    committed: bool = False
    #: Where and when the job was announced to start by an earlier plan (``move_weight``
    #: makes moving it cost that much).
    announced_site: str = ""
    announced_start: datetime | None = None


@dataclass(frozen=True)
class Objective:
    """Weights of carbon (per kg), cost (per currency unit) and delay (per priority-hour), and
    what moving a job away from its announced site and start costs (per job, in objective
    units: kg CO2e with the default weights)."""

    carbon_weight: float = 1.0
    cost_weight: float = 0.0
    delay_weight: float = 0.0
    move_weight: float = 0.0


DEFAULT_TIME_LIMIT_SECONDS = 10.0
DEFAULT_RELATIVE_GAP = 1e-4


@dataclass(frozen=True)
class Options:
    time_limit_seconds: float = DEFAULT_TIME_LIMIT_SECONDS
    relative_gap: float = DEFAULT_RELATIVE_GAP
    workers: int = 0
    random_seed: int = 0
    allow_partial: bool = False
    risk_measure: RiskMeasure = RiskMeasure.UNSPECIFIED
    scenarios: int = 0
    backend: Backend = Backend.AUTO
    #: Refuse to plan on a fallback (embedded profile, another source) or stale series.
    require_forecasts: bool = False


@dataclass(frozen=True)
class Request:
    """A validated optimize request."""

    horizon: Horizon
    sites: tuple[Site, ...]
    jobs: tuple[Job, ...]
    forecasts: tuple[Forecast, ...] = ()
    objective: Objective = field(default_factory=Objective)
    options: Options = field(default_factory=Options)
