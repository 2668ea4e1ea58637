from gridshift.api.v1 import optimize_pb2 as _optimize_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CandidateSchedule(_message.Message):
    __slots__ = ("name", "assignments")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    assignments: _containers.RepeatedCompositeFieldContainer[_optimize_pb2.Assignment]
    def __init__(self, name: _Optional[str] = ..., assignments: _Optional[_Iterable[_Union[_optimize_pb2.Assignment, _Mapping]]] = ...) -> None: ...

class ScoreSchedulesRequest(_message.Message):
    __slots__ = ("problem", "candidates", "scenarios", "seed")
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    SCENARIOS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    problem: _optimize_pb2.OptimizeRequest
    candidates: _containers.RepeatedCompositeFieldContainer[CandidateSchedule]
    scenarios: int
    seed: int
    def __init__(self, problem: _Optional[_Union[_optimize_pb2.OptimizeRequest, _Mapping]] = ..., candidates: _Optional[_Iterable[_Union[CandidateSchedule, _Mapping]]] = ..., scenarios: _Optional[int] = ..., seed: _Optional[int] = ...) -> None: ...

class CandidateScore(_message.Message):
    __slots__ = ("name", "feasible", "emissions_kg", "cost", "energy_kwh", "grid_energy_kwh", "risk", "gpu_overuse_gpu_slots", "power_overuse_kwh", "rule_violations", "unscheduled_jobs")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FEASIBLE_FIELD_NUMBER: _ClassVar[int]
    EMISSIONS_KG_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    ENERGY_KWH_FIELD_NUMBER: _ClassVar[int]
    GRID_ENERGY_KWH_FIELD_NUMBER: _ClassVar[int]
    RISK_FIELD_NUMBER: _ClassVar[int]
    GPU_OVERUSE_GPU_SLOTS_FIELD_NUMBER: _ClassVar[int]
    POWER_OVERUSE_KWH_FIELD_NUMBER: _ClassVar[int]
    RULE_VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    UNSCHEDULED_JOBS_FIELD_NUMBER: _ClassVar[int]
    name: str
    feasible: bool
    emissions_kg: float
    cost: float
    energy_kwh: float
    grid_energy_kwh: float
    risk: _optimize_pb2.Risk
    gpu_overuse_gpu_slots: float
    power_overuse_kwh: float
    rule_violations: int
    unscheduled_jobs: int
    def __init__(self, name: _Optional[str] = ..., feasible: _Optional[bool] = ..., emissions_kg: _Optional[float] = ..., cost: _Optional[float] = ..., energy_kwh: _Optional[float] = ..., grid_energy_kwh: _Optional[float] = ..., risk: _Optional[_Union[_optimize_pb2.Risk, _Mapping]] = ..., gpu_overuse_gpu_slots: _Optional[float] = ..., power_overuse_kwh: _Optional[float] = ..., rule_violations: _Optional[int] = ..., unscheduled_jobs: _Optional[int] = ...) -> None: ...

class ScoreSchedulesResponse(_message.Message):
    __slots__ = ("scores", "scenarios", "device")
    SCORES_FIELD_NUMBER: _ClassVar[int]
    SCENARIOS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    scores: _containers.RepeatedCompositeFieldContainer[CandidateScore]
    scenarios: int
    device: str
    def __init__(self, scores: _Optional[_Iterable[_Union[CandidateScore, _Mapping]]] = ..., scenarios: _Optional[int] = ..., device: _Optional[str] = ...) -> None: ...
