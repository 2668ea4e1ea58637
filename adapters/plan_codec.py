"""Protobuf messages for stored plans and carbon reports."""

from __future__ import annotations

import json
import math

from google.protobuf import json_format

from gridshift.adapters.codec import timestamp
from gridshift.adapters.store import PlanRecord
from gridshift.api.v1 import optimize_pb2 as pb
from gridshift.api.v1 import plans_pb2


def summary_of(record: PlanRecord) -> plans_pb2.PlanSummary:
    status = pb.PlanStatus.Value(record.status) if record.status in pb.PlanStatus.keys() else 0
    return plans_pb2.PlanSummary(
        plan_id=record.plan_id, created_at=timestamp(record.created_at), source=record.source,
        status=status, horizon_start=timestamp(record.horizon_start),
        horizon_end=timestamp(record.horizon_end),
        emissions_kg=record.emissions_kg, baseline_emissions_kg=record.baseline_emissions_kg,
        energy_kwh=record.energy_kwh, run_key=record.run_key or "", jobs=len(record.jobs))


def get_plan_response(record: PlanRecord) -> plans_pb2.GetPlanResponse:
    response = plans_pb2.GetPlanResponse(summary=summary_of(record))
    json_format.ParseDict(record.request, response.request, ignore_unknown_fields=True)
    json_format.ParseDict(record.response, response.response, ignore_unknown_fields=True)
    return response


def report_response(report) -> plans_pb2.GetCarbonReportResponse:
    response = plans_pb2.GetCarbonReportResponse(
        summary_json=json.dumps(report.summary, default=str), accounting=report.statement,
        content_type=report.content_type, document=report.document, plans=report.plans)
    for row in report.rows.itertuples(index=False):
        actual = float(row.emissions_kg_actual)
        response.rows.add(
            day=str(row.day)[:10], team=str(row.team), site=str(row.site),
            region=str(row.region), energy_kwh=float(row.energy_kwh),
            grid_energy_kwh=float(row.grid_energy_kwh),
            emissions_kg_forecast=float(row.emissions_kg_forecast),
            emissions_kg_actual=actual if math.isfinite(actual) else 0.0,
            has_actual=math.isfinite(actual), actual_coverage=float(row.actual_coverage),
            baseline_emissions_kg=float(row.baseline_emissions_kg),
            run_now_emissions_kg=float(row.run_now_emissions_kg))
    return response
