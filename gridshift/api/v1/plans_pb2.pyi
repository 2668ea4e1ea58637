import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from gridshift.api.v1 import optimize_pb2 as _optimize_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PlanSummary(_message.Message):
    __slots__ = ("plan_id", "created_at", "source", "status", "horizon_start", "horizon_end", "emissions_kg", "baseline_emissions_kg", "energy_kwh", "run_key", "jobs")
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HORIZON_START_FIELD_NUMBER: _ClassVar[int]
    HORIZON_END_FIELD_NUMBER: _ClassVar[int]
    EMISSIONS_KG_FIELD_NUMBER: _ClassVar[int]
    BASELINE_EMISSIONS_KG_FIELD_NUMBER: _ClassVar[int]
    ENERGY_KWH_FIELD_NUMBER: _ClassVar[int]
    RUN_KEY_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    plan_id: str
    created_at: _timestamp_pb2.Timestamp
    source: str
    status: _optimize_pb2.PlanStatus
    horizon_start: _timestamp_pb2.Timestamp
    horizon_end: _timestamp_pb2.Timestamp
    emissions_kg: float
    baseline_emissions_kg: float
    energy_kwh: float
    run_key: str
    jobs: int
    def __init__(self, plan_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source: _Optional[str] = ..., status: _Optional[_Union[_optimize_pb2.PlanStatus, str]] = ..., horizon_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., horizon_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., emissions_kg: _Optional[float] = ..., baseline_emissions_kg: _Optional[float] = ..., energy_kwh: _Optional[float] = ..., run_key: _Optional[str] = ..., jobs: _Optional[int] = ...) -> None: ...

class GetPlanRequest(_message.Message):
    __slots__ = ("plan_id",)
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    plan_id: str
    def __init__(self, plan_id: _Optional[str] = ...) -> None: ...

class GetPlanResponse(_message.Message):
    __slots__ = ("summary", "request", "response")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    summary: PlanSummary
    request: _optimize_pb2.OptimizeRequest
    response: _optimize_pb2.OptimizeResponse
    def __init__(self, summary: _Optional[_Union[PlanSummary, _Mapping]] = ..., request: _Optional[_Union[_optimize_pb2.OptimizeRequest, _Mapping]] = ..., response: _Optional[_Union[_optimize_pb2.OptimizeResponse, _Mapping]] = ...) -> None: ...

class ListPlansRequest(_message.Message):
    __slots__ = ("start", "end", "team", "site", "status", "page_size", "page_token")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    team: str
    site: str
    status: _optimize_pb2.PlanStatus
    page_size: int
    page_token: str
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., team: _Optional[str] = ..., site: _Optional[str] = ..., status: _Optional[_Union[_optimize_pb2.PlanStatus, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPlansResponse(_message.Message):
    __slots__ = ("plans", "next_page_token")
    PLANS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    plans: _containers.RepeatedCompositeFieldContainer[PlanSummary]
    next_page_token: str
    def __init__(self, plans: _Optional[_Iterable[_Union[PlanSummary, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetCarbonReportRequest(_message.Message):
    __slots__ = ("start", "end", "team", "site", "format", "list_superseded")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    LIST_SUPERSEDED_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    team: str
    site: str
    format: str
    list_superseded: bool
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., team: _Optional[str] = ..., site: _Optional[str] = ..., format: _Optional[str] = ..., list_superseded: _Optional[bool] = ...) -> None: ...

class ReportRow(_message.Message):
    __slots__ = ("day", "team", "site", "region", "energy_kwh", "grid_energy_kwh", "emissions_kg_forecast", "emissions_kg_actual", "has_actual", "actual_coverage", "baseline_emissions_kg", "run_now_emissions_kg")
    DAY_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    ENERGY_KWH_FIELD_NUMBER: _ClassVar[int]
    GRID_ENERGY_KWH_FIELD_NUMBER: _ClassVar[int]
    EMISSIONS_KG_FORECAST_FIELD_NUMBER: _ClassVar[int]
    EMISSIONS_KG_ACTUAL_FIELD_NUMBER: _ClassVar[int]
    HAS_ACTUAL_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_COVERAGE_FIELD_NUMBER: _ClassVar[int]
    BASELINE_EMISSIONS_KG_FIELD_NUMBER: _ClassVar[int]
    RUN_NOW_EMISSIONS_KG_FIELD_NUMBER: _ClassVar[int]
    day: str
    team: str
    site: str
    region: str
    energy_kwh: float
    grid_energy_kwh: float
    emissions_kg_forecast: float
    emissions_kg_actual: float
    has_actual: bool
    actual_coverage: float
    baseline_emissions_kg: float
    run_now_emissions_kg: float
    def __init__(self, day: _Optional[str] = ..., team: _Optional[str] = ..., site: _Optional[str] = ..., region: _Optional[str] = ..., energy_kwh: _Optional[float] = ..., grid_energy_kwh: _Optional[float] = ..., emissions_kg_forecast: _Optional[float] = ..., emissions_kg_actual: _Optional[float] = ..., has_actual: _Optional[bool] = ..., actual_coverage: _Optional[float] = ..., baseline_emissions_kg: _Optional[float] = ..., run_now_emissions_kg: _Optional[float] = ...) -> None: ...

class GetCarbonReportResponse(_message.Message):
    __slots__ = ("rows", "summary_json", "accounting", "content_type", "document", "plans")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_JSON_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTING_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    PLANS_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[ReportRow]
    summary_json: str
    accounting: str
    content_type: str
    document: bytes
    plans: int
    def __init__(self, rows: _Optional[_Iterable[_Union[ReportRow, _Mapping]]] = ..., summary_json: _Optional[str] = ..., accounting: _Optional[str] = ..., content_type: _Optional[str] = ..., document: _Optional[bytes] = ..., plans: _Optional[int] = ...) -> None: ...
