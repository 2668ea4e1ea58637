from gridshift.api.v1 import forecast_pb2 as _forecast_pb2
from gridshift.api.v1 import optimize_pb2 as _optimize_pb2
from gridshift.api.v1 import plans_pb2 as _plans_pb2
from gridshift.api.v1 import scoring_pb2 as _scoring_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OptimizeProgress(_message.Message):
    __slots__ = ("kind", "objective", "best_bound", "has_bound", "gap", "elapsed_seconds")
    KIND_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVE_FIELD_NUMBER: _ClassVar[int]
    BEST_BOUND_FIELD_NUMBER: _ClassVar[int]
    HAS_BOUND_FIELD_NUMBER: _ClassVar[int]
    GAP_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    objective: float
    best_bound: float
    has_bound: bool
    gap: float
    elapsed_seconds: float
    def __init__(self, kind: _Optional[str] = ..., objective: _Optional[float] = ..., best_bound: _Optional[float] = ..., has_bound: _Optional[bool] = ..., gap: _Optional[float] = ..., elapsed_seconds: _Optional[float] = ...) -> None: ...

class OptimizeEvent(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: OptimizeProgress
    result: _optimize_pb2.OptimizeResponse
    def __init__(self, progress: _Optional[_Union[OptimizeProgress, _Mapping]] = ..., result: _Optional[_Union[_optimize_pb2.OptimizeResponse, _Mapping]] = ...) -> None: ...
