import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from gridshift.api.v1 import optimize_pb2 as _optimize_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetForecastRequest(_message.Message):
    __slots__ = ("regions", "start", "end", "slot_minutes")
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    SLOT_MINUTES_FIELD_NUMBER: _ClassVar[int]
    regions: _containers.RepeatedScalarFieldContainer[str]
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    slot_minutes: int
    def __init__(self, regions: _Optional[_Iterable[str]] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., slot_minutes: _Optional[int] = ...) -> None: ...

class RegionForecast(_message.Message):
    __slots__ = ("region", "start", "slot_minutes", "carbon_intensity", "carbon_intensity_p10", "carbon_intensity_p90", "price_per_mwh", "provenance")
    REGION_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    SLOT_MINUTES_FIELD_NUMBER: _ClassVar[int]
    CARBON_INTENSITY_FIELD_NUMBER: _ClassVar[int]
    CARBON_INTENSITY_P10_FIELD_NUMBER: _ClassVar[int]
    CARBON_INTENSITY_P90_FIELD_NUMBER: _ClassVar[int]
    PRICE_PER_MWH_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    region: str
    start: _timestamp_pb2.Timestamp
    slot_minutes: int
    carbon_intensity: _containers.RepeatedScalarFieldContainer[float]
    carbon_intensity_p10: _containers.RepeatedScalarFieldContainer[float]
    carbon_intensity_p90: _containers.RepeatedScalarFieldContainer[float]
    price_per_mwh: _containers.RepeatedScalarFieldContainer[float]
    provenance: _optimize_pb2.Provenance
    def __init__(self, region: _Optional[str] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., slot_minutes: _Optional[int] = ..., carbon_intensity: _Optional[_Iterable[float]] = ..., carbon_intensity_p10: _Optional[_Iterable[float]] = ..., carbon_intensity_p90: _Optional[_Iterable[float]] = ..., price_per_mwh: _Optional[_Iterable[float]] = ..., provenance: _Optional[_Union[_optimize_pb2.Provenance, _Mapping]] = ...) -> None: ...

class RegionUnavailable(_message.Message):
    __slots__ = ("region", "reason")
    REGION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    region: str
    reason: str
    def __init__(self, region: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class GetForecastResponse(_message.Message):
    __slots__ = ("forecasts", "unavailable")
    FORECASTS_FIELD_NUMBER: _ClassVar[int]
    UNAVAILABLE_FIELD_NUMBER: _ClassVar[int]
    forecasts: _containers.RepeatedCompositeFieldContainer[RegionForecast]
    unavailable: _containers.RepeatedCompositeFieldContainer[RegionUnavailable]
    def __init__(self, forecasts: _Optional[_Iterable[_Union[RegionForecast, _Mapping]]] = ..., unavailable: _Optional[_Iterable[_Union[RegionUnavailable, _Mapping]]] = ...) -> None: ...

class FindBestWindowRequest(_message.Message):
    __slots__ = ("regions", "duration_minutes", "window_start", "window_end")
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    DURATION_MINUTES_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_FIELD_NUMBER: _ClassVar[int]
    regions: _containers.RepeatedScalarFieldContainer[str]
    duration_minutes: int
    window_start: _timestamp_pb2.Timestamp
    window_end: _timestamp_pb2.Timestamp
    def __init__(self, regions: _Optional[_Iterable[str]] = ..., duration_minutes: _Optional[int] = ..., window_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., window_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WindowPoint(_message.Message):
    __slots__ = ("start", "mean_g_per_kwh")
    START_FIELD_NUMBER: _ClassVar[int]
    MEAN_G_PER_KWH_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    mean_g_per_kwh: float
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., mean_g_per_kwh: _Optional[float] = ...) -> None: ...

class RegionBestWindow(_message.Message):
    __slots__ = ("region", "start", "end", "mean_g_per_kwh", "curve", "provenance")
    REGION_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    MEAN_G_PER_KWH_FIELD_NUMBER: _ClassVar[int]
    CURVE_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    region: str
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    mean_g_per_kwh: float
    curve: _containers.RepeatedCompositeFieldContainer[WindowPoint]
    provenance: _optimize_pb2.Provenance
    def __init__(self, region: _Optional[str] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., mean_g_per_kwh: _Optional[float] = ..., curve: _Optional[_Iterable[_Union[WindowPoint, _Mapping]]] = ..., provenance: _Optional[_Union[_optimize_pb2.Provenance, _Mapping]] = ...) -> None: ...

class FindBestWindowResponse(_message.Message):
    __slots__ = ("regions", "best", "unavailable")
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    BEST_FIELD_NUMBER: _ClassVar[int]
    UNAVAILABLE_FIELD_NUMBER: _ClassVar[int]
    regions: _containers.RepeatedCompositeFieldContainer[RegionBestWindow]
    best: RegionBestWindow
    unavailable: _containers.RepeatedCompositeFieldContainer[RegionUnavailable]
    def __init__(self, regions: _Optional[_Iterable[_Union[RegionBestWindow, _Mapping]]] = ..., best: _Optional[_Union[RegionBestWindow, _Mapping]] = ..., unavailable: _Optional[_Iterable[_Union[RegionUnavailable, _Mapping]]] = ...) -> None: ...
