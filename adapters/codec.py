"""Translate between the protobuf API (gridshift.api.v1) and the domain.

Requests go proto → dict (the JSON mapping, proto field names) → optimizer.parsing, so the
gRPC and file paths share one validator. Results go SolveResult → OptimizeResponse.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from gridshift.api.v1 import optimize_pb2 as pb
from gridshift.forecasting.series import Forecast
from gridshift.optimizer.accounting import PlanFigures, Totals, savings
from gridshift.optimizer.errors import FieldViolation, InvalidInputError
from gridshift.optimizer.solve import SolveResult


def request_to_dict(request: pb.OptimizeRequest) -> dict[str, Any]:
    """The JSON-mapping dict of a request message, with proto field names; InvalidInputError
    when a field cannot be expressed in it (a Timestamp outside 0001..9999 or with negative
    nanos)."""
    try:
        return json_format.MessageToDict(request, preserving_proto_field_name=True)
    except (json_format.SerializeToJsonError, ValueError) as exc:
        raise InvalidInputError([FieldViolation("", f"malformed request: {exc}")]) from None


def response_to_json(response: pb.OptimizeResponse) -> str:
    """Protobuf JSON mapping of a response, proto field names, indented."""
    return json_format.MessageToJson(response, preserving_proto_field_name=True, indent=2)


def response_from_json(text: str) -> pb.OptimizeResponse:
    return json_format.Parse(text, pb.OptimizeResponse())


def timestamp(value: datetime) -> Timestamp:
    """A protobuf Timestamp of an aware datetime (stored in UTC)."""
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts


def _totals(t: Totals) -> pb.Totals:
    return pb.Totals(energy_kwh=t.energy_kwh, grid_energy_kwh=t.grid_energy_kwh,
                     emissions_kg=t.emissions_kg, cost=t.cost, wait_hours=t.wait_hours)


def _finite(x: float, default: float = 0.0) -> float:
    return x if math.isfinite(x) else default


def to_response(result: SolveResult, plan_id: str | None = None, *,
                per_job: bool = True) -> pb.OptimizeResponse:
    """Build the canonical response for a solve result (``per_job=False``: without the
    assignments and per-job figures, which :func:`response_dict` writes itself)."""
    p = result.problem
    response = pb.OptimizeResponse(plan_id=plan_id or uuid.uuid4().hex,
                                   status=pb.PlanStatus.Value(result.status))
    if per_job:
        times = [timestamp(p.slot_time(t)) for t in range(p.n_slots + 1)]
        for j in sorted(result.plan.placements, key=lambda k: p.job_ids[k]):
            placement = result.plan.placements[j]
            a = response.assignments.add(job_id=p.job_ids[j],
                                         site_id=p.site_ids[placement.site])
            a.start.CopyFrom(times[placement.start_slot])
            a.end.CopyFrom(times[placement.end_slot])
            for lo, hi in placement.runs():
                a.runs.add(start=times[lo], end=times[hi])
    for j in sorted(result.plan.unscheduled, key=lambda k: p.job_ids[k]):
        response.unscheduled.add(job_id=p.job_ids[j], reason=result.plan.unscheduled[j])
    if result.status != "INFEASIBLE":
        _add_figures(response, result, per_job)
    if result.risk:
        risk = dict(result.risk)
        measure = risk.pop("measure", None)
        response.risk.CopyFrom(pb.Risk(**risk))
        if measure:
            response.risk.measure = pb.RiskMeasure.Value(measure)
    response.solver.CopyFrom(pb.SolverInfo(
        backend=result.backend, objective=_finite(result.objective),
        best_bound=_finite(result.best_bound), gap=_finite(result.gap, 1.0),
        wall_seconds=result.wall_seconds, status_detail=result.detail))
    if result.stability is not None:
        response.solver.announced_jobs = result.stability.announced
        response.solver.moved_jobs = result.stability.moved
    response.explanations.extend(result.explanations)
    reasons = degraded_reasons(p.forecasts)
    response.degraded = bool(reasons)
    response.degraded_reasons.extend(reasons)
    response.provenance.extend(provenance(f) for f in p.forecasts)
    response.forecasts_used.extend(forecast_message(f) for f in p.forecasts
                                   if f.carbon_intensity)
    return response


def forecast_message(f: Forecast) -> pb.Forecast:
    """A series as the request's Forecast message (its own start and step)."""
    message = pb.Forecast(region=f.region, slot_minutes=f.slot_minutes,
                          carbon_intensity=f.carbon_intensity,
                          carbon_intensity_p10=f.carbon_intensity_p10,
                          carbon_intensity_p90=f.carbon_intensity_p90,
                          price_per_mwh=f.price_per_mwh)
    message.start.CopyFrom(timestamp(f.start))
    return message


def forecasts_used_of(response: pb.OptimizeResponse) -> list[Forecast]:
    """The series a plan was made with (``forecasts_used``), with the provenance of each
    region's series."""
    by_region = {p.region: p for p in response.provenance}
    out = []
    for m in response.forecasts_used:
        prov = by_region.get(m.region)
        out.append(Forecast(
            region=m.region, start=m.start.ToDatetime(tzinfo=UTC), slot_minutes=m.slot_minutes,
            carbon_intensity=tuple(m.carbon_intensity),
            carbon_intensity_p10=tuple(m.carbon_intensity_p10),
            carbon_intensity_p90=tuple(m.carbon_intensity_p90),
            price_per_mwh=tuple(m.price_per_mwh),
            provider=prov.provider if prov else "unknown",
            stale=bool(prov and prov.stale), fallback=bool(prov and prov.fallback)))
    return out


def site_supply_of(response: pb.OptimizeResponse) -> dict[str, list[float]]:
    """Each site's on-site supply (kW per slot) that the plan used."""
    return {s.site_id: list(s.renewable_kw) for s in response.sites if s.renewable_kw}


def degraded_reasons(forecasts) -> list[str]:
    """``region: why`` for every series a plan rests on that is less than a current
    forecast (see :meth:`Forecast.degraded_reason`)."""
    return [f"{f.region}: {why}" for f in forecasts if (why := f.degraded_reason())]


def provenance(f) -> pb.Provenance:
    """Where a series came from: provider, issue time, stale / fallback flags, detail."""
    prov = pb.Provenance(region=f.region, provider=f.provider, stale=f.stale,
                         fallback=f.fallback, detail=provenance_detail(f))
    if f.issued_at is not None:
        prov.issued_at.CopyFrom(timestamp(f.issued_at))
    return prov


def provenance_detail(f) -> str:
    """Human note on where a series came from."""
    parts = []
    if f.provider == "request":
        parts.append("inline in the request")
    elif f.typical_profile:
        parts.append("embedded typical-day profile (month x hour), not a forecast")
    if f.stale:
        parts.append("stale: served from the cache after the provider failed")
    if f.detail:
        parts.append(f.detail)
    return "; ".join(parts)


def _add_figures(response: pb.OptimizeResponse, result: SolveResult, per_job: bool) -> None:
    p, fig, base = result.problem, result.figures, result.baseline_figures
    response.totals.CopyFrom(_totals(fig.totals))
    response.baseline.CopyFrom(_totals(base.totals))
    saved = savings(fig, base)
    response.savings_kg = saved.saved_kg
    response.savings_pct = saved.saved_pct
    response.savings_basis.CopyFrom(pb.SavingsBasis(
        common_jobs=saved.common_jobs, plan_only_jobs=saved.plan_only_jobs,
        baseline_only_jobs=saved.baseline_only_jobs,
        plan_emissions_kg=saved.plan_emissions_kg,
        baseline_emissions_kg=saved.baseline_emissions_kg,
        plan_energy_kwh=saved.plan_energy_kwh, baseline_energy_kwh=saved.baseline_energy_kwh,
        plan_jobs=len(fig.jobs), baseline_jobs=len(base.jobs)))
    response.baseline_unplaced.extend(sorted(p.job_ids[j] for j in result.baseline.unscheduled))
    for j in sorted(fig.jobs, key=lambda k: p.job_ids[k]) if per_job else ():
        jf = fig.jobs[j]
        response.jobs.add(job_id=p.job_ids[j], site_id=p.site_ids[jf.site],
                          energy_kwh=jf.energy_kwh, grid_energy_kwh=jf.grid_energy_kwh,
                          emissions_kg=jf.emissions_kg, cost=jf.cost, wait_hours=jf.wait_hours,
                          baseline_emissions_kg=_baseline_job_kg(base, j))
    for s, site_id in enumerate(p.site_ids):
        response.sites.add(site_id=site_id, load_kw=fig.load_kw[s].tolist(),
                           grid_kw=fig.grid_kw[s].tolist(),
                           gpus_used=fig.gpus_used[s].astype(int).tolist(),
                           emissions_kg=float((fig.grid_kw[s] * p.ci_g_per_kwh[s]).sum()
                                              * p.slot_hours / 1000),
                           energy_kwh=float(fig.load_kw[s].sum() * p.slot_hours),
                           renewable_kw=p.renewable_kw[s].tolist()
                           if p.renewable_kw[s].any() else [])


def response_dict(result: SolveResult, plan_id: str) -> dict[str, Any]:
    """``MessageToDict(to_response(result, plan_id), preserving_proto_field_name=True)``,
    with the per-job parts built directly: what the plan store keeps, in one pass over the jobs
    (MessageToDict alone took 0.25 s for a 5,000-job plan). A test holds the two equal."""
    out = json_format.MessageToDict(to_response(result, plan_id, per_job=False),
                                    preserving_proto_field_name=True)
    p = result.problem
    when = [timestamp(p.slot_time(t)).ToJsonString() for t in range(p.n_slots + 1)]
    assignments = []
    for j in sorted(result.plan.placements, key=lambda k: p.job_ids[k]):
        placement = result.plan.placements[j]
        assignments.append({
            "job_id": p.job_ids[j], "site_id": p.site_ids[placement.site],
            "start": when[placement.start_slot], "end": when[placement.end_slot],
            "runs": [{"start": when[lo], "end": when[hi]} for lo, hi in placement.runs()]})
    if assignments:
        out["assignments"] = assignments
    if result.status != "INFEASIBLE" and result.figures.jobs:
        fig, base = result.figures, result.baseline_figures
        out["jobs"] = [_without_defaults({
            "job_id": p.job_ids[j], "site_id": p.site_ids[fig.jobs[j].site],
            "energy_kwh": fig.jobs[j].energy_kwh, "grid_energy_kwh": fig.jobs[j].grid_energy_kwh,
            "emissions_kg": fig.jobs[j].emissions_kg, "cost": fig.jobs[j].cost,
            "wait_hours": fig.jobs[j].wait_hours,
            "baseline_emissions_kg": _baseline_job_kg(base, j)})
            for j in sorted(fig.jobs, key=lambda k: p.job_ids[k])]
    return out


def _without_defaults(fields: dict[str, Any]) -> dict[str, Any]:
    """The JSON mapping: fields at their default (0, "") left out (-0.0 is not the default),
    NaN and infinities as strings."""
    out = {}
    for key, value in fields.items():
        if isinstance(value, float):
            if value == 0 and math.copysign(1.0, value) > 0:
                continue
            out[key] = value if math.isfinite(value) else _JSON_SPECIAL[str(value)]
        elif value not in (0, ""):
            out[key] = value
    return out


_JSON_SPECIAL = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _baseline_job_kg(base: PlanFigures, j: int) -> float:
    jf = base.jobs.get(j)
    return jf.emissions_kg if jf else 0.0


def plan_from_response(problem, response: pb.OptimizeResponse):
    """Rebuild a Plan from a response's assignments (to re-check a remote plan locally)."""

    from gridshift.optimizer.plan import Placement, Plan

    job_index = {job_id: j for j, job_id in enumerate(problem.job_ids)}
    site_index = {site_id: s for s, site_id in enumerate(problem.site_ids)}
    step_s = problem.horizon.slot_minutes * 60

    def slot_of(ts: Timestamp) -> int:
        offset = ts.ToDatetime(tzinfo=UTC) - problem.horizon.start
        return round(offset.total_seconds() / step_s)

    plan = Plan()
    for a in response.assignments:
        slots: list[int] = []
        for run in a.runs or [pb.Run(start=a.start, end=a.end)]:
            slots.extend(range(slot_of(run.start), slot_of(run.end)))
        plan.placements[job_index[a.job_id]] = Placement(site_index[a.site_id], tuple(slots))
    for u in response.unscheduled:
        plan.unscheduled[job_index[u.job_id]] = u.reason
    return plan
