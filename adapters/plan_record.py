"""The plan store's record of a solved request, built from the solver's result in one pass
over the jobs (no per-job searches of the response), and the plan of a stored record."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format

from gridshift.adapters.codec import plan_from_response, response_dict
from gridshift.adapters.store.records import (
    JobRow,
    PlanRecord,
    forecast_from_snapshot,
    forecast_snapshot,
)
from gridshift.api.v1 import optimize_pb2 as pb
from gridshift.forecasting.series import Forecast
from gridshift.optimizer.plan import Plan
from gridshift.optimizer.problem import Problem
from gridshift.optimizer.solve import SolveResult

__all__ = ["forecasts_of", "plan_of", "plan_record"]


def plan_record(result: SolveResult, request: Any, plan_id: str, source: str,
                run_key: str | None = None) -> PlanRecord:
    """The record of ``result`` (the plan of ``request``, a request dict) under ``plan_id``."""
    p = result.problem
    response = response_dict(result, plan_id)
    figures, base = result.figures, result.baseline_figures
    jobs = []
    if result.status != "INFEASIBLE":
        for j, placement in result.plan.placements.items():
            jf = figures.jobs[j]
            baseline = base.jobs.get(j)
            jobs.append(JobRow(
                job_id=p.job_ids[j], team=p.job_teams[j] or "", site_id=p.site_ids[jf.site],
                start=p.slot_time(placement.start_slot), end=p.slot_time(placement.end_slot),
                energy_kwh=jf.energy_kwh, grid_energy_kwh=jf.grid_energy_kwh,
                emissions_kg=jf.emissions_kg,
                baseline_emissions_kg=baseline.emissions_kg if baseline else 0.0))
    totals = response.get("totals", {})
    return PlanRecord(
        plan_id=plan_id, created_at=datetime.now(UTC), source=source, status=result.status,
        horizon_start=p.horizon.start, horizon_end=p.horizon.end,
        request=_as_solved(request, p), response=response,
        forecasts=[forecast_snapshot(f) for f in p.forecasts if f.carbon_intensity],
        provenance=response.get("provenance", []),
        emissions_kg=float(totals.get("emissions_kg", 0.0)),
        baseline_emissions_kg=float(response.get("baseline", {}).get("emissions_kg", 0.0)),
        energy_kwh=float(totals.get("energy_kwh", 0.0)), run_key=run_key, jobs=jobs)


def _as_solved(request: Any, problem: Problem) -> Any:
    """The request with the renewable supply the solve used filled in for sites that had only
    solar_kwp / wind_kw, so a stored plan re-scores exactly as it was planned."""
    if not isinstance(request, dict) or not isinstance(request.get("sites"), list):
        return request
    sites = []
    for s, site in enumerate(request["sites"]):
        site = dict(site)
        if not (site.get("renewable_kw") or site.get("renewableKw")) and \
                problem.renewable_kw[s].any():
            site["renewable_kw"] = [float(v) for v in problem.renewable_kw[s]]
        sites.append(site)
    return {**request, "sites": sites}


def forecasts_of(record: PlanRecord) -> list[Forecast]:
    """The forecast series a stored plan was made with."""
    return [forecast_from_snapshot(f) for f in record.forecasts]


def plan_of(problem: Problem, record: PlanRecord) -> Plan:
    """The plan of a stored record, for the problem rebuilt from its request and forecasts."""
    response = json_format.ParseDict(record.response, pb.OptimizeResponse(),
                                     ignore_unknown_fields=True)
    return plan_from_response(problem, response)
