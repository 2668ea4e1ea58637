"""Stored plans: saving every plan (gRPC, CLI, nightly) and turning stored plans back into
problems and plans for reports."""

from __future__ import annotations

import logging
import os
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from google.protobuf import json_format

from gridshift.adapters.codec import plan_from_response
from gridshift.adapters.store import PlanFilter, PlanRecord, PlanStore
from gridshift.adapters.store.records import JobRow, forecast_snapshot
from gridshift.api.v1 import optimize_pb2 as pb
from gridshift.forecasting.series import Forecast
from gridshift.optimizer.baseline import fifo_baseline
from gridshift.optimizer.errors import FieldViolation, InvalidInputError
from gridshift.optimizer.parsing import parse_request
from gridshift.optimizer.problem import build_problem
from gridshift.optimizer.reporting import ReportPlan
from gridshift.optimizer.solve import SolveResult

log = logging.getLogger("gridshift.plans")
_store: PlanStore | None = None
_lock = threading.Lock()


def default_store() -> PlanStore:
    """The process-wide store: GRIDSHIFT_DB_URL, else SQLite in the data directory."""
    global _store
    with _lock:
        if _store is None:
            _store = PlanStore()
        return _store


def set_store(store: PlanStore | None) -> None:
    global _store
    with _lock:
        _store = store


def storing_enabled() -> bool:
    return os.environ.get("GRIDSHIFT_STORE", "on").lower() not in ("off", "0", "false", "no")


def record_of(result: SolveResult, response: pb.OptimizeResponse, request: dict[str, Any],
              source: str, run_key: str | None = None) -> PlanRecord:
    """The store record of a solved request."""
    p = result.problem
    response_dict = json_format.MessageToDict(response, preserving_proto_field_name=True)
    jobs = []
    for jf in response.jobs:
        a = next(x for x in response.assignments if x.job_id == jf.job_id)
        j = p.job_ids.index(jf.job_id)
        jobs.append(JobRow(job_id=jf.job_id, team=p.job_teams[j] or "", site_id=jf.site_id,
                           start=a.start.ToDatetime(tzinfo=UTC), end=a.end.ToDatetime(tzinfo=UTC),
                           energy_kwh=jf.energy_kwh, grid_energy_kwh=jf.grid_energy_kwh,
                           emissions_kg=jf.emissions_kg,
                           baseline_emissions_kg=jf.baseline_emissions_kg))
    return PlanRecord(
        plan_id=response.plan_id, created_at=datetime.now(UTC), source=source,
        status=pb.PlanStatus.Name(response.status), horizon_start=p.horizon.start,
        horizon_end=p.horizon.end, request=_as_solved(request, p), response=response_dict,
        forecasts=[forecast_snapshot(f) for f in p.forecasts if f.carbon_intensity],
        provenance=response_dict.get("provenance", []),
        emissions_kg=response.totals.emissions_kg,
        baseline_emissions_kg=response.baseline.emissions_kg,
        energy_kwh=response.totals.energy_kwh, run_key=run_key, jobs=jobs)


def _as_solved(request: dict[str, Any], problem) -> dict[str, Any]:
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


def save(result: SolveResult, response: pb.OptimizeResponse, request: dict[str, Any],
         source: str, run_key: str | None = None, store: PlanStore | None = None) -> str | None:
    """Store a plan (one transaction) in `store`, or in the default store unless storing is
    switched off. A store failure is logged, never fails the plan."""
    if store is None:
        if not storing_enabled():
            return None
        store = default_store()
    try:
        return store.save(record_of(result, response, request, source, run_key))
    except Exception:  # noqa: BLE001 - the plan is still returned; the failure is logged
        log.exception("could not store plan %s", response.plan_id)
        return None


def _forecast_of(snapshot: dict[str, Any]) -> Forecast:
    def when(text: str | None) -> datetime | None:
        return datetime.fromisoformat(text) if text else None

    def floats(values) -> tuple[float, ...]:
        return tuple(float("nan") if v is None else float(v) for v in values or ())

    return Forecast(region=snapshot["region"], start=when(snapshot["start"]),
                    slot_minutes=int(snapshot["slot_minutes"]),
                    carbon_intensity=floats(snapshot["carbon_intensity"]),
                    carbon_intensity_p10=floats(snapshot.get("p10")),
                    carbon_intensity_p90=floats(snapshot.get("p90")),
                    price_per_mwh=floats(snapshot.get("price_per_mwh")),
                    provider=snapshot.get("provider", ""),
                    issued_at=when(snapshot.get("issued_at")),
                    stale=bool(snapshot.get("stale")), fallback=bool(snapshot.get("fallback")),
                    detail=snapshot.get("detail", ""))


def report_plan(record: PlanRecord, store: PlanStore) -> ReportPlan | None:
    """A stored plan rebuilt for reporting: the problem (with the forecasts it used), its plan,
    the FIFO baseline and the actual intensity stored for its regions. None for plans without
    assignments (infeasible)."""
    if record.status == "INFEASIBLE":
        return None
    request = parse_request(record.request)
    problem = build_problem(request, [_forecast_of(f) for f in record.forecasts])
    response = json_format.ParseDict(record.response, pb.OptimizeResponse(),
                                     ignore_unknown_fields=True)
    plan = plan_from_response(problem, response)
    actual = _actuals(problem, store)
    return ReportPlan.of(record.plan_id, problem, plan, fifo_baseline(problem),
                         actual_ci_g_per_kwh=actual)


def _actuals(problem, store: PlanStore) -> np.ndarray | None:
    from gridshift.optimizer.reporting import actual_intensity

    h = problem.horizon
    history = []
    for region in dict.fromkeys(problem.site_regions):
        points = store.actuals(region, h.start - timedelta(hours=1), h.end + timedelta(hours=1))
        series = regular_series(region, points)
        if series is not None:
            history.append(series)
    return actual_intensity(problem, history) if history else None


def check_period(start: datetime | None, end: datetime | None) -> None:
    """InvalidInputError when both ends of a query period are set and ``end`` is not after
    ``start`` (ListPlans, carbon reports; the CLI's --from/--to)."""
    if start is not None and end is not None and end <= start:
        raise InvalidInputError([FieldViolation(
            "end", f"{end.isoformat()} is not after start {start.isoformat()} "
                   "(on the command line: --to is not after --from)")])


def regular_series(region: str, points: list[tuple[datetime, float]]) -> Forecast | None:
    """Stored actual points as a regular series (gaps as NaN)."""
    if len(points) < 2:
        return None
    times = [t for t, _ in points]
    step = min((b - a) for a, b in zip(times, times[1:], strict=False))
    step_min = int(step.total_seconds() // 60)
    if step_min <= 0:
        return None
    n = int((times[-1] - times[0]).total_seconds() // 60 // step_min) + 1
    values = [float("nan")] * n
    for t, v in points:
        values[int((t - times[0]).total_seconds() // 60 // step_min)] = v
    return Forecast(region=region, start=times[0], slot_minutes=step_min,
                    carbon_intensity=tuple(values), provider="actuals")


def plans_for_report(store: PlanStore, start: datetime | None, end: datetime | None,
                     team: str | None = None, site: str | None = None) -> list[ReportPlan]:
    """Every stored plan overlapping the period (all pages), rebuilt for reporting."""
    out, token = [], None
    flt = PlanFilter(start=start, end=end, team=team or None, site=site or None)
    while True:
        records, token = store.list(flt, 500, token, full=True)
        out += [rp for r in records if (rp := report_plan(r, store)) is not None]
        if not token:
            return out


class PlanService:
    """What the gRPC servicer calls for stored plans and reports (proto in, proto out)."""

    def __init__(self, store: PlanStore | None = None) -> None:
        self._store = store

    @property
    def store(self) -> PlanStore:
        return self._store or default_store()

    def save(self, result: SolveResult, response: pb.OptimizeResponse, request: dict[str, Any],
             source: str) -> None:
        save(result, response, request, source, store=self._store)

    def get(self, plan_id: str):
        from gridshift.adapters.plan_codec import get_plan_response

        record = self.store.get(plan_id)
        return None if record is None else get_plan_response(record)

    def list(self, request):
        from gridshift.adapters.forecast_codec import timestamp_or_none
        from gridshift.adapters.plan_codec import summary_of
        from gridshift.api.v1 import plans_pb2

        if request.status and request.status not in pb.PlanStatus.values():
            raise InvalidInputError([FieldViolation(
                "status", f"unknown value {request.status} (one of "
                          f"{', '.join(pb.PlanStatus.keys()[1:])})")])
        status = pb.PlanStatus.Name(request.status) if request.status else None
        start, end = timestamp_or_none(request, "start"), timestamp_or_none(request, "end")
        check_period(start, end)
        flt = PlanFilter(start=start, end=end, team=request.team or None,
                         site=request.site or None, status=status)
        try:
            records, token = self.store.list(flt, request.page_size or 50,
                                             request.page_token or None)
        except ValueError as exc:
            raise InvalidInputError([FieldViolation("page_token", str(exc))]) from None
        return plans_pb2.ListPlansResponse(plans=[summary_of(r) for r in records],
                                           next_page_token=token or "")

    def report(self, request):
        from gridshift.adapters.forecast_codec import timestamp_or_none
        from gridshift.adapters.plan_codec import report_response
        from gridshift.carbon_report import build_report

        report = build_report(self.store, timestamp_or_none(request, "start"),
                              timestamp_or_none(request, "end"), request.team or None,
                              request.site or None, request.format or "json")
        return report_response(report)
