import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RiskMeasure(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RISK_MEASURE_UNSPECIFIED: _ClassVar[RiskMeasure]
    EXPECTED: _ClassVar[RiskMeasure]
    P90: _ClassVar[RiskMeasure]
    CVAR95: _ClassVar[RiskMeasure]

class Backend(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BACKEND_AUTO: _ClassVar[Backend]
    CPSAT: _ClassVar[Backend]
    HIGHS: _ClassVar[Backend]
    GREEDY: _ClassVar[Backend]

class PlanStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PLAN_STATUS_UNSPECIFIED: _ClassVar[PlanStatus]
    OPTIMAL: _ClassVar[PlanStatus]
    FEASIBLE: _ClassVar[PlanStatus]
    INFEASIBLE: _ClassVar[PlanStatus]
RISK_MEASURE_UNSPECIFIED: RiskMeasure
EXPECTED: RiskMeasure
P90: RiskMeasure
CVAR95: RiskMeasure
BACKEND_AUTO: Backend
CPSAT: Backend
HIGHS: Backend
GREEDY: Backend
PLAN_STATUS_UNSPECIFIED: PlanStatus
OPTIMAL: PlanStatus
FEASIBLE: PlanStatus
INFEASIBLE: PlanStatus

class Horizon(_message.Message):
    __slots__ = ("start", "slot_minutes", "slots")
    START_FIELD_NUMBER: _ClassVar[int]
    SLOT_MINUTES_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    slot_minutes: int
    slots: int
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., slot_minutes: _Optional[int] = ..., slots: _Optional[int] = ...) -> None: ...

class CapacityWindow(_message.Message):
    __slots__ = ("start", "end", "gpu_capacity")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    GPU_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    gpu_capacity: int
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., gpu_capacity: _Optional[int] = ...) -> None: ...

class Site(_message.Message):
    __slots__ = ("id", "region", "gpu_capacity", "pue", "power_cap_kw", "renewable_kw", "capacity_windows", "latitude", "longitude", "solar_kwp", "wind_kw")
    ID_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    GPU_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    PUE_FIELD_NUMBER: _ClassVar[int]
    POWER_CAP_KW_FIELD_NUMBER: _ClassVar[int]
    RENEWABLE_KW_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    LATITUDE_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    SOLAR_KWP_FIELD_NUMBER: _ClassVar[int]
    WIND_KW_FIELD_NUMBER: _ClassVar[int]
    id: str
    region: str
    gpu_capacity: int
    pue: float
    power_cap_kw: float
    renewable_kw: _containers.RepeatedScalarFieldContainer[float]
    capacity_windows: _containers.RepeatedCompositeFieldContainer[CapacityWindow]
    latitude: float
    longitude: float
    solar_kwp: float
    wind_kw: float
    def __init__(self, id: _Optional[str] = ..., region: _Optional[str] = ..., gpu_capacity: _Optional[int] = ..., pue: _Optional[float] = ..., power_cap_kw: _Optional[float] = ..., renewable_kw: _Optional[_Iterable[float]] = ..., capacity_windows: _Optional[_Iterable[_Union[CapacityWindow, _Mapping]]] = ..., latitude: _Optional[float] = ..., longitude: _Optional[float] = ..., solar_kwp: _Optional[float] = ..., wind_kw: _Optional[float] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "team", "gpus", "power_kw", "duration_minutes", "earliest_start", "deadline", "allowed_sites", "home_site", "interruptible", "min_run_minutes", "priority", "committed_site", "committed_start", "announced_site", "announced_start")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    POWER_KW_FIELD_NUMBER: _ClassVar[int]
    DURATION_MINUTES_FIELD_NUMBER: _ClassVar[int]
    EARLIEST_START_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_SITES_FIELD_NUMBER: _ClassVar[int]
    HOME_SITE_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTIBLE_FIELD_NUMBER: _ClassVar[int]
    MIN_RUN_MINUTES_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_SITE_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_START_FIELD_NUMBER: _ClassVar[int]
    ANNOUNCED_SITE_FIELD_NUMBER: _ClassVar[int]
    ANNOUNCED_START_FIELD_NUMBER: _ClassVar[int]
    id: str
    team: str
    gpus: int
    power_kw: float
    duration_minutes: int
    earliest_start: _timestamp_pb2.Timestamp
    deadline: _timestamp_pb2.Timestamp
    allowed_sites: _containers.RepeatedScalarFieldContainer[str]
    home_site: str
    interruptible: bool
    min_run_minutes: int
    priority: float
    committed_site: str
    committed_start: _timestamp_pb2.Timestamp
    announced_site: str
    announced_start: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., team: _Optional[str] = ..., gpus: _Optional[int] = ..., power_kw: _Optional[float] = ..., duration_minutes: _Optional[int] = ..., earliest_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., allowed_sites: _Optional[_Iterable[str]] = ..., home_site: _Optional[str] = ..., interruptible: _Optional[bool] = ..., min_run_minutes: _Optional[int] = ..., priority: _Optional[float] = ..., committed_site: _Optional[str] = ..., committed_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., announced_site: _Optional[str] = ..., announced_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Forecast(_message.Message):
    __slots__ = ("region", "start", "slot_minutes", "carbon_intensity", "carbon_intensity_p10", "carbon_intensity_p90", "price_per_mwh")
    REGION_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    SLOT_MINUTES_FIELD_NUMBER: _ClassVar[int]
    CARBON_INTENSITY_FIELD_NUMBER: _ClassVar[int]
    CARBON_INTENSITY_P10_FIELD_NUMBER: _ClassVar[int]
    CARBON_INTENSITY_P90_FIELD_NUMBER: _ClassVar[int]
    PRICE_PER_MWH_FIELD_NUMBER: _ClassVar[int]
    region: str
    start: _timestamp_pb2.Timestamp
    slot_minutes: int
    carbon_intensity: _containers.RepeatedScalarFieldContainer[float]
    carbon_intensity_p10: _containers.RepeatedScalarFieldContainer[float]
    carbon_intensity_p90: _containers.RepeatedScalarFieldContainer[float]
    price_per_mwh: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, region: _Optional[str] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., slot_minutes: _Optional[int] = ..., carbon_intensity: _Optional[_Iterable[float]] = ..., carbon_intensity_p10: _Optional[_Iterable[float]] = ..., carbon_intensity_p90: _Optional[_Iterable[float]] = ..., price_per_mwh: _Optional[_Iterable[float]] = ...) -> None: ...

class Objective(_message.Message):
    __slots__ = ("carbon_weight", "cost_weight", "delay_weight", "move_weight")
    CARBON_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    COST_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    DELAY_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    MOVE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    carbon_weight: float
    cost_weight: float
    delay_weight: float
    move_weight: float
    def __init__(self, carbon_weight: _Optional[float] = ..., cost_weight: _Optional[float] = ..., delay_weight: _Optional[float] = ..., move_weight: _Optional[float] = ...) -> None: ...

class Options(_message.Message):
    __slots__ = ("time_limit_seconds", "relative_gap", "workers", "random_seed", "allow_partial", "risk_measure", "scenarios", "backend", "require_forecasts")
    TIME_LIMIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RELATIVE_GAP_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    RANDOM_SEED_FIELD_NUMBER: _ClassVar[int]
    ALLOW_PARTIAL_FIELD_NUMBER: _ClassVar[int]
    RISK_MEASURE_FIELD_NUMBER: _ClassVar[int]
    SCENARIOS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_FORECASTS_FIELD_NUMBER: _ClassVar[int]
    time_limit_seconds: float
    relative_gap: float
    workers: int
    random_seed: int
    allow_partial: bool
    risk_measure: RiskMeasure
    scenarios: int
    backend: Backend
    require_forecasts: bool
    def __init__(self, time_limit_seconds: _Optional[float] = ..., relative_gap: _Optional[float] = ..., workers: _Optional[int] = ..., random_seed: _Optional[int] = ..., allow_partial: _Optional[bool] = ..., risk_measure: _Optional[_Union[RiskMeasure, str]] = ..., scenarios: _Optional[int] = ..., backend: _Optional[_Union[Backend, str]] = ..., require_forecasts: _Optional[bool] = ...) -> None: ...

class OptimizeRequest(_message.Message):
    __slots__ = ("horizon", "sites", "jobs", "forecasts", "objective", "options")
    HORIZON_FIELD_NUMBER: _ClassVar[int]
    SITES_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    FORECASTS_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    horizon: Horizon
    sites: _containers.RepeatedCompositeFieldContainer[Site]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    forecasts: _containers.RepeatedCompositeFieldContainer[Forecast]
    objective: Objective
    options: Options
    def __init__(self, horizon: _Optional[_Union[Horizon, _Mapping]] = ..., sites: _Optional[_Iterable[_Union[Site, _Mapping]]] = ..., jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., forecasts: _Optional[_Iterable[_Union[Forecast, _Mapping]]] = ..., objective: _Optional[_Union[Objective, _Mapping]] = ..., options: _Optional[_Union[Options, _Mapping]] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("job_id", "site_id", "start", "end", "runs")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    site_id: str
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    def __init__(self, job_id: _Optional[str] = ..., site_id: _Optional[str] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ...) -> None: ...

class Unscheduled(_message.Message):
    __slots__ = ("job_id", "reason")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    reason: str
    def __init__(self, job_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Totals(_message.Message):
    __slots__ = ("energy_kwh", "grid_energy_kwh", "emissions_kg", "cost", "wait_hours")
    ENERGY_KWH_FIELD_NUMBER: _ClassVar[int]
    GRID_ENERGY_KWH_FIELD_NUMBER: _ClassVar[int]
    EMISSIONS_KG_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    WAIT_HOURS_FIELD_NUMBER: _ClassVar[int]
    energy_kwh: float
    grid_energy_kwh: float
    emissions_kg: float
    cost: float
    wait_hours: float
    def __init__(self, energy_kwh: _Optional[float] = ..., grid_energy_kwh: _Optional[float] = ..., emissions_kg: _Optional[float] = ..., cost: _Optional[float] = ..., wait_hours: _Optional[float] = ...) -> None: ...

class JobFigures(_message.Message):
    __slots__ = ("job_id", "site_id", "energy_kwh", "grid_energy_kwh", "emissions_kg", "cost", "wait_hours", "baseline_emissions_kg")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    ENERGY_KWH_FIELD_NUMBER: _ClassVar[int]
    GRID_ENERGY_KWH_FIELD_NUMBER: _ClassVar[int]
    EMISSIONS_KG_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    WAIT_HOURS_FIELD_NUMBER: _ClassVar[int]
    BASELINE_EMISSIONS_KG_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    site_id: str
    energy_kwh: float
    grid_energy_kwh: float
    emissions_kg: float
    cost: float
    wait_hours: float
    baseline_emissions_kg: float
    def __init__(self, job_id: _Optional[str] = ..., site_id: _Optional[str] = ..., energy_kwh: _Optional[float] = ..., grid_energy_kwh: _Optional[float] = ..., emissions_kg: _Optional[float] = ..., cost: _Optional[float] = ..., wait_hours: _Optional[float] = ..., baseline_emissions_kg: _Optional[float] = ...) -> None: ...

class SiteProfile(_message.Message):
    __slots__ = ("site_id", "load_kw", "grid_kw", "gpus_used", "emissions_kg", "energy_kwh", "renewable_kw")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    LOAD_KW_FIELD_NUMBER: _ClassVar[int]
    GRID_KW_FIELD_NUMBER: _ClassVar[int]
    GPUS_USED_FIELD_NUMBER: _ClassVar[int]
    EMISSIONS_KG_FIELD_NUMBER: _ClassVar[int]
    ENERGY_KWH_FIELD_NUMBER: _ClassVar[int]
    RENEWABLE_KW_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    load_kw: _containers.RepeatedScalarFieldContainer[float]
    grid_kw: _containers.RepeatedScalarFieldContainer[float]
    gpus_used: _containers.RepeatedScalarFieldContainer[int]
    emissions_kg: float
    energy_kwh: float
    renewable_kw: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, site_id: _Optional[str] = ..., load_kw: _Optional[_Iterable[float]] = ..., grid_kw: _Optional[_Iterable[float]] = ..., gpus_used: _Optional[_Iterable[int]] = ..., emissions_kg: _Optional[float] = ..., energy_kwh: _Optional[float] = ..., renewable_kw: _Optional[_Iterable[float]] = ...) -> None: ...

class SolverInfo(_message.Message):
    __slots__ = ("backend", "objective", "best_bound", "gap", "wall_seconds", "status_detail", "announced_jobs", "moved_jobs")
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVE_FIELD_NUMBER: _ClassVar[int]
    BEST_BOUND_FIELD_NUMBER: _ClassVar[int]
    GAP_FIELD_NUMBER: _ClassVar[int]
    WALL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STATUS_DETAIL_FIELD_NUMBER: _ClassVar[int]
    ANNOUNCED_JOBS_FIELD_NUMBER: _ClassVar[int]
    MOVED_JOBS_FIELD_NUMBER: _ClassVar[int]
    backend: str
    objective: float
    best_bound: float
    gap: float
    wall_seconds: float
    status_detail: str
    announced_jobs: int
    moved_jobs: int
    def __init__(self, backend: _Optional[str] = ..., objective: _Optional[float] = ..., best_bound: _Optional[float] = ..., gap: _Optional[float] = ..., wall_seconds: _Optional[float] = ..., status_detail: _Optional[str] = ..., announced_jobs: _Optional[int] = ..., moved_jobs: _Optional[int] = ...) -> None: ...

class Risk(_message.Message):
    __slots__ = ("expected_kg", "p90_kg", "cvar95_kg", "scenarios", "measure", "candidates", "point_plan_measure_kg", "chosen_measure_kg")
    EXPECTED_KG_FIELD_NUMBER: _ClassVar[int]
    P90_KG_FIELD_NUMBER: _ClassVar[int]
    CVAR95_KG_FIELD_NUMBER: _ClassVar[int]
    SCENARIOS_FIELD_NUMBER: _ClassVar[int]
    MEASURE_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    POINT_PLAN_MEASURE_KG_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_MEASURE_KG_FIELD_NUMBER: _ClassVar[int]
    expected_kg: float
    p90_kg: float
    cvar95_kg: float
    scenarios: int
    measure: RiskMeasure
    candidates: int
    point_plan_measure_kg: float
    chosen_measure_kg: float
    def __init__(self, expected_kg: _Optional[float] = ..., p90_kg: _Optional[float] = ..., cvar95_kg: _Optional[float] = ..., scenarios: _Optional[int] = ..., measure: _Optional[_Union[RiskMeasure, str]] = ..., candidates: _Optional[int] = ..., point_plan_measure_kg: _Optional[float] = ..., chosen_measure_kg: _Optional[float] = ...) -> None: ...

class Provenance(_message.Message):
    __slots__ = ("region", "provider", "issued_at", "stale", "fallback", "detail")
    REGION_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    region: str
    provider: str
    issued_at: _timestamp_pb2.Timestamp
    stale: bool
    fallback: bool
    detail: str
    def __init__(self, region: _Optional[str] = ..., provider: _Optional[str] = ..., issued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stale: _Optional[bool] = ..., fallback: _Optional[bool] = ..., detail: _Optional[str] = ...) -> None: ...

class OptimizeResponse(_message.Message):
    __slots__ = ("plan_id", "status", "assignments", "unscheduled", "totals", "baseline", "savings_kg", "savings_pct", "baseline_unplaced", "jobs", "sites", "solver", "risk", "provenance", "forecasts_used", "savings_basis", "explanations", "degraded", "degraded_reasons")
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    UNSCHEDULED_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    SAVINGS_KG_FIELD_NUMBER: _ClassVar[int]
    SAVINGS_PCT_FIELD_NUMBER: _ClassVar[int]
    BASELINE_UNPLACED_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    SITES_FIELD_NUMBER: _ClassVar[int]
    SOLVER_FIELD_NUMBER: _ClassVar[int]
    RISK_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    FORECASTS_USED_FIELD_NUMBER: _ClassVar[int]
    SAVINGS_BASIS_FIELD_NUMBER: _ClassVar[int]
    EXPLANATIONS_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_REASONS_FIELD_NUMBER: _ClassVar[int]
    plan_id: str
    status: PlanStatus
    assignments: _containers.RepeatedCompositeFieldContainer[Assignment]
    unscheduled: _containers.RepeatedCompositeFieldContainer[Unscheduled]
    totals: Totals
    baseline: Totals
    savings_kg: float
    savings_pct: float
    baseline_unplaced: _containers.RepeatedScalarFieldContainer[str]
    jobs: _containers.RepeatedCompositeFieldContainer[JobFigures]
    sites: _containers.RepeatedCompositeFieldContainer[SiteProfile]
    solver: SolverInfo
    risk: Risk
    provenance: _containers.RepeatedCompositeFieldContainer[Provenance]
    forecasts_used: _containers.RepeatedCompositeFieldContainer[Forecast]
    savings_basis: SavingsBasis
    explanations: _containers.RepeatedScalarFieldContainer[str]
    degraded: bool
    degraded_reasons: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, plan_id: _Optional[str] = ..., status: _Optional[_Union[PlanStatus, str]] = ..., assignments: _Optional[_Iterable[_Union[Assignment, _Mapping]]] = ..., unscheduled: _Optional[_Iterable[_Union[Unscheduled, _Mapping]]] = ..., totals: _Optional[_Union[Totals, _Mapping]] = ..., baseline: _Optional[_Union[Totals, _Mapping]] = ..., savings_kg: _Optional[float] = ..., savings_pct: _Optional[float] = ..., baseline_unplaced: _Optional[_Iterable[str]] = ..., jobs: _Optional[_Iterable[_Union[JobFigures, _Mapping]]] = ..., sites: _Optional[_Iterable[_Union[SiteProfile, _Mapping]]] = ..., solver: _Optional[_Union[SolverInfo, _Mapping]] = ..., risk: _Optional[_Union[Risk, _Mapping]] = ..., provenance: _Optional[_Iterable[_Union[Provenance, _Mapping]]] = ..., forecasts_used: _Optional[_Iterable[_Union[Forecast, _Mapping]]] = ..., savings_basis: _Optional[_Union[SavingsBasis, _Mapping]] = ..., explanations: _Optional[_Iterable[str]] = ..., degraded: _Optional[bool] = ..., degraded_reasons: _Optional[_Iterable[str]] = ...) -> None: ...

class SavingsBasis(_message.Message):
    __slots__ = ("common_jobs", "plan_only_jobs", "baseline_only_jobs", "plan_emissions_kg", "baseline_emissions_kg", "plan_energy_kwh", "baseline_energy_kwh", "plan_jobs", "baseline_jobs")
    COMMON_JOBS_FIELD_NUMBER: _ClassVar[int]
    PLAN_ONLY_JOBS_FIELD_NUMBER: _ClassVar[int]
    BASELINE_ONLY_JOBS_FIELD_NUMBER: _ClassVar[int]
    PLAN_EMISSIONS_KG_FIELD_NUMBER: _ClassVar[int]
    BASELINE_EMISSIONS_KG_FIELD_NUMBER: _ClassVar[int]
    PLAN_ENERGY_KWH_FIELD_NUMBER: _ClassVar[int]
    BASELINE_ENERGY_KWH_FIELD_NUMBER: _ClassVar[int]
    PLAN_JOBS_FIELD_NUMBER: _ClassVar[int]
    BASELINE_JOBS_FIELD_NUMBER: _ClassVar[int]
    common_jobs: int
    plan_only_jobs: int
    baseline_only_jobs: int
    plan_emissions_kg: float
    baseline_emissions_kg: float
    plan_energy_kwh: float
    baseline_energy_kwh: float
    plan_jobs: int
    baseline_jobs: int
    def __init__(self, common_jobs: _Optional[int] = ..., plan_only_jobs: _Optional[int] = ..., baseline_only_jobs: _Optional[int] = ..., plan_emissions_kg: _Optional[float] = ..., baseline_emissions_kg: _Optional[float] = ..., plan_energy_kwh: _Optional[float] = ..., baseline_energy_kwh: _Optional[float] = ..., plan_jobs: _Optional[int] = ..., baseline_jobs: _Optional[int] = ...) -> None: ...
