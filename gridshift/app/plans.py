"""Stored plans: saving every plan (gRPC, CLI, nightly), reading them back, listing them, and
rebuilding them with the actual intensity for reports."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from gridshift.adapters.plan_record import forecasts_of, plan_of, plan_record
from gridshift.adapters.store import ActualSeries, JobRun, PlanFilter, PlanRecord, PlanStore
from gridshift.forecasting.series import Forecast
from gridshift.optimizer.baseline import fifo_baseline
from gridshift.optimizer.errors import FieldViolation, InvalidInputError
from gridshift.optimizer.parsing import parse_request
from gridshift.optimizer.plan import Placement, Plan
from gridshift.optimizer.problem import Problem, build_problem
from gridshift.optimizer.reporting import ReportPlan, actual_intensity
from gridshift.optimizer.solve import SolveResult

__all__ = ["PlanArchive", "check_period"]

log = logging.getLogger("gridshift.plans")


class PlanArchive:
    """The plan store as the use cases see it. The store is opened on first use (a command
    that never touches it never opens the database)."""

    def __init__(self, open_store: Callable[[], PlanStore]) -> None:
        self._open_store = open_store
        self._store: PlanStore | None = None
        self._lock = threading.Lock()

    @property
    def store(self) -> PlanStore:
        with self._lock:
            if self._store is None:
                self._store = self._open_store()
            return self._store

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()

    def save(self, result: SolveResult, request: Any, plan_id: str, source: str,
             run_key: str | None = None) -> str:
        """Store a plan in one transaction; returns the stored plan id (a stored run key's plan
        when ``run_key`` is stored already). Raises StoreError / ValueError."""
        return self.store.save(plan_record(result, request, plan_id, source, run_key))

    def get(self, plan_id: str) -> PlanRecord | None:
        return self.store.get(plan_id)

    def resolve(self, id_or_prefix: str) -> PlanRecord | None:
        """The plan with this id, or the one plan whose id starts with it; None when none
        does; InvalidInputError naming the candidates when several do."""
        exact = self.store.get(id_or_prefix)
        if exact is not None or not id_or_prefix:
            return exact
        found = self.store.ids_starting_with(id_or_prefix, limit=6)
        if len(found) > 1:
            shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
            raise InvalidInputError([FieldViolation(
                "plan_id", f"prefix {id_or_prefix!r} matches several plans ({shown}); give "
                           "more characters")])
        return self.store.get(found[0]) if found else None

    def find_by_run_key(self, run_key: str) -> PlanRecord | None:
        return self.store.find_by_run_key(run_key)

    def list(self, flt: PlanFilter, page_size: int, page_token: str | None
             ) -> tuple[list[PlanRecord], str | None]:
        """One page of plans, newest first; InvalidInputError for a bad page token."""
        check_period(flt.start, flt.end)
        try:
            return self.store.list(flt, page_size, page_token)
        except ValueError as exc:
            raise InvalidInputError([FieldViolation("page_token", str(exc))]) from None

    def report_plan(self, record: PlanRecord) -> ReportPlan | None:
        """A stored plan rebuilt for reporting: the problem (with the forecasts it used), its
        plan, the FIFO baseline, the actual intensity stored for its regions, and which of its
        jobs newer plans re-planned. None for plans without assignments (infeasible)."""
        if record.status == "INFEASIBLE":
            return None
        problem = build_problem(parse_request(record.request), forecasts_of(record))
        plan = plan_of(problem, record)
        index = {job_id: j for j, job_id in enumerate(problem.job_ids)}
        superseded = {index[row.job_id]: row.superseded_by for row in record.jobs
                      if row.superseded_by and row.job_id in index}
        return ReportPlan.of(record.plan_id, problem, plan, fifo_baseline(problem),
                             actual_ci_g_per_kwh=self._actuals(problem),
                             superseded_by=superseded,
                             risk=dict((record.response or {}).get("risk", {})),
                             as_run=self._as_run(problem, plan))

    def _as_run(self, problem: Problem, plan: Plan) -> Plan | None:
        """The plan's jobs where and when they really ran (recorded runs, within the
        horizon); None when no run of them is recorded."""
        runs = self.store.runs([problem.job_ids[j] for j in plan.placements])
        if not runs:
            return None
        jobs = {job_id: j for j, job_id in enumerate(problem.job_ids)}
        sites = {site_id: s for s, site_id in enumerate(problem.site_ids)}
        step = problem.horizon.slot_minutes * 60
        slots: dict[int, tuple[int, set[int]]] = {}
        for run in runs:
            if run.job_id not in jobs or run.site_id not in sites:
                continue
            lo = (run.start - problem.horizon.start).total_seconds() / step
            hi = (run.end - problem.horizon.start).total_seconds() / step
            covered = set(range(max(0, math.floor(lo)), min(problem.n_slots, math.ceil(hi))))
            if covered:
                site, taken = slots.setdefault(jobs[run.job_id], (sites[run.site_id], set()))
                taken |= covered
        return Plan(placements={j: Placement(site, tuple(sorted(taken)))
                                for j, (site, taken) in slots.items()})

    def save_runs(self, runs: list[JobRun]) -> int:
        """Record how jobs really ran (read back from the scheduler)."""
        return self.store.save_runs(runs)

    def report_plans(self, start: datetime | None, end: datetime | None,
                     team: str | None = None, site: str | None = None,
                     unreadable: list[dict[str, str]] | None = None) -> list[ReportPlan]:
        """Every stored plan overlapping the period (all pages), rebuilt for reporting. A plan
        that no longer reads back as a valid request (stored before a check it fails was
        added) is left out and, with ``unreadable``, listed there with the reason."""
        out, token = [], None
        flt = PlanFilter(start=start, end=end, team=team or None, site=site or None)
        while True:
            records, token = self.store.list(flt, 500, token, full=True)
            for record in records:
                try:
                    rp = self.report_plan(record)
                except InvalidInputError as exc:
                    why = "; ".join(map(str, exc.violations[:3]))
                    log.warning("plan %s left out of the report: %s", record.plan_id, why)
                    if unreadable is not None:
                        unreadable.append({"plan_id": record.plan_id, "reason": why})
                    continue
                if rp is not None:
                    out.append(rp)
            if not token:
                return out

    def _actuals(self, problem: Problem) -> np.ndarray | None:
        h = problem.horizon
        history = []
        for region in dict.fromkeys(problem.site_regions):
            series = self.store.actual_series(region, h.start - timedelta(hours=1),
                                              h.end + timedelta(hours=1))
            if series is not None:
                history.append(series)
        return actual_intensity(problem, history) if history else None

    def actual_series(self, region: str, start: datetime, end: datetime) -> Forecast | None:
        """Recorded actuals of a region as a regular series (the forecast blend's input)."""
        return self.store.actual_series(region, start, end)

    def save_actuals(self, series: list[ActualSeries]) -> int:
        return self.store.save_actuals(series)


def check_period(start: datetime | None, end: datetime | None) -> None:
    """InvalidInputError when both ends of a query period are set and ``end`` is not after
    ``start`` (ListPlans, carbon reports; the CLI's --from/--to)."""
    if start is not None and end is not None and end <= start:
        raise InvalidInputError([FieldViolation(
            "end", f"{end.isoformat()} is not after start {start.isoformat()} "
                   "(on the command line: --to is not after --from)")])
