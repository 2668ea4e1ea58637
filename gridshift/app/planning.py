"""Planning: a request (the protobuf JSON mapping, as a dict) → a validated problem with its
forecasts and on-site supply resolved → a solve with risk → a kept plan.

The one composition of "plan a request and store it", used by the CLI, the gRPC service and
nightly runs. The store-failure policy lives here, once: a plan is never lost because the plan
store failed. The plan is returned (and written, and sent) as usual, the failure is logged with
the plan id, and the outcome says ``stored=False`` with the reason, which the entry points show
(a warning on the console, a note in the response's status detail).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from gridshift.adapters.forecast_service import ForecastService, resolve_concurrently
from gridshift.adapters.renewables import SiteSupply
from gridshift.adapters.tracing import NO_TRACING, NoTracing, Tracing
from gridshift.app.plans import PlanArchive
from gridshift.app.risk import solve_with_risk
from gridshift.forecasting.series import Forecast
from gridshift.forecasting.sources import ForecastSource
from gridshift.optimizer.domain import Request
from gridshift.optimizer.errors import (
    CancelledError,
    FieldViolation,
    InvalidInputError,
    UpstreamUnavailableError,
)
from gridshift.optimizer.parsing import check_site_supply, parse_request
from gridshift.optimizer.problem import Problem, build_problem
from gridshift.optimizer.solve import SolveResult

__all__ = ["PlanOutcome", "Planner", "resolve_forecasts", "with_overrides"]

log = logging.getLogger("gridshift.planning")

#: The solve every plan goes through: (problem, on_progress, stop_flag, time_limit_s, device).
SolveFn = Callable[..., SolveResult]


@dataclass
class PlanOutcome:
    """A solved request: the checked result, its plan id, and whether the store kept it."""

    result: SolveResult
    plan_id: str
    stored: bool = False
    #: Why the plan was not stored ("" when it was, or storing is off).
    store_error: str = ""


class Planner:
    """Plans requests with one forecast service, one site-supply source and one plan archive
    (None: plans are not stored)."""

    def __init__(self, forecasts: ForecastService | ForecastSource, site_supply: SiteSupply,
                 archive: PlanArchive | None = None, *, device: str = "auto",
                 solve: SolveFn = solve_with_risk) -> None:
        self.forecasts = forecasts
        self.site_supply = site_supply
        self.archive = archive
        self.device = device
        self._solve = solve
        #: Metrics (gridshift.adapters.metrics.Metrics): plans kept, store latency, emissions.
        self.metrics: Any = None
        #: Spans of each step (validate, site_supply, forecasts, compile, solve and its phases,
        #: store) under the caller's current span (gridshift.adapters.tracing).
        self.tracing: Tracing | NoTracing = NO_TRACING

    def prepare(self, data: Any, sources: Sequence[ForecastSource] | None = None, *,
                time_budget_s: float | None = None,
                stop_flag: Callable[[], bool] | None = None) -> Problem:
        """Validate a request dict and compile it with forecasts and site supply resolved
        (from ``sources`` when given, else the forecast service, whose regions are resolved
        concurrently within its time budget, cut to ``time_budget_s`` when given: a caller's
        deadline). ``stop_flag`` (the caller gave up) is asked during validation and between
        the phases: CancelledError then. A site's supply derived from its plant is held to
        the limits of a given one."""
        tracing = self.tracing
        with tracing.span("validate") as span:
            request = parse_request(data, stop=stop_flag)
            span.set(jobs=len(request.jobs), sites=len(request.sites),
                     slots=request.horizon.slots)
        with tracing.span("site_supply"):
            request, supply_notes = self.site_supply.fill(request)
            check_site_supply(request.sites)
        _check_stop(stop_flag, "its site supply was being resolved")
        if sources is None:
            service = self.forecasts
            sources = [service.within(service.deadline(time_budget_s))
                       if isinstance(service, ForecastService) else service]
        with tracing.span("forecasts", time_budget_s=time_budget_s) as span:
            forecasts = resolve_forecasts(request, list(sources))
            span.set(regions=len(forecasts),
                     degraded=sum(1 for f in forecasts if f.degraded_reason()))
        _check_stop(stop_flag, "its forecasts were being resolved")
        with tracing.span("compile"):
            problem = build_problem(request, forecasts)
        if supply_notes:
            problem = replace(problem, forecasts=problem.forecasts + tuple(supply_notes))
        if request.options.require_forecasts:
            _refuse_fallbacks(problem)
        return problem

    def solve(self, problem: Problem, *, time_limit_s: float | None = None,
              on_progress: Callable[[dict], None] | None = None,
              stop_flag: Callable[[], bool] | None = None) -> SolveResult:
        """The checked plan of a prepared problem, with risk over forecast scenarios."""
        with self.tracing.span("solve", time_limit_s=time_limit_s) as span:
            result = self._solve(problem, on_progress=self.tracing.phase_sink(on_progress),
                                 stop_flag=stop_flag, time_limit_s=time_limit_s,
                                 device=self.device)
            span.set(status=result.status, backend=result.backend, objective=result.objective,
                     gap=result.gap, unplaced=len(result.plan.unscheduled))
            return result

    def keep(self, result: SolveResult, data: Any, source: str,
             run_key: str | None = None) -> PlanOutcome:
        """Give the plan its id and store it (the module's store-failure policy)."""
        with self.tracing.span("store", source=source) as span:
            outcome = self._keep(result, data, source, run_key)
            span.set(plan_id=outcome.plan_id, stored=outcome.stored,
                     store_error=outcome.store_error or None)
            return outcome

    def _keep(self, result: SolveResult, data: Any, source: str,
              run_key: str | None) -> PlanOutcome:
        plan_id = uuid.uuid4().hex
        if self.archive is None:
            outcome = PlanOutcome(result, plan_id)
            self._observe(outcome, None)
            return outcome
        started = time.monotonic()
        try:
            self.archive.save(result, data, plan_id, source, run_key)
        except Exception as exc:  # noqa: BLE001 - the policy: log, report, keep the plan
            log.error("plan %s was not stored: %s", plan_id, exc, exc_info=True)
            outcome = PlanOutcome(result, plan_id, stored=False,
                                  store_error=f"{type(exc).__name__}: {exc}")
        else:
            outcome = PlanOutcome(result, plan_id, stored=True)
        self._observe(outcome, time.monotonic() - started)
        return outcome

    def _observe(self, outcome: PlanOutcome, store_seconds: float | None) -> None:
        if self.metrics is not None:
            self.metrics.plan_kept(outcome.result, outcome.stored, store_seconds)

    def plan(self, data: Any, *, time_limit_s: float | None = None, backend: str | None = None,
             require_forecasts: bool = False,
             on_progress: Callable[[dict], None] | None = None,
             stop_flag: Callable[[], bool] | None = None, source: str = "cli",
             store: bool = True) -> PlanOutcome:
        """Plan a request dict end to end; overrides are applied before validation."""
        data = with_overrides(data, time_limit_s=time_limit_s, backend=backend,
                              require_forecasts=require_forecasts)
        with self.tracing.span("plan", source=source):
            problem = self.prepare(data)
            result = self.solve(problem, on_progress=on_progress, stop_flag=stop_flag)
            if not store:
                return PlanOutcome(result, uuid.uuid4().hex)
            return self.keep(result, data, source)


def _check_stop(stop_flag: Callable[[], bool] | None, during: str) -> None:
    if stop_flag is not None and stop_flag():
        raise CancelledError(f"the call ended while {during}")


def _refuse_fallbacks(problem: Problem) -> None:
    """``options.require_forecasts``: UpstreamUnavailableError naming every region (or site)
    whose series is a fallback, a profile or stale."""
    reasons = [f"{f.region}: {why}" for f in problem.forecasts if (why := f.degraded_reason())]
    if reasons:
        raise UpstreamUnavailableError(
            "options.require_forecasts: no current forecast for " + "; ".join(reasons))


def resolve_forecasts(request: Request, sources: list[ForecastSource]) -> list[Forecast]:
    """The request's forecasts plus, for each site region without one, the first source that
    answers (regions resolved concurrently).

    Raises InvalidInputError naming the sites whose region no source knows (every source
    answered with a KeyError: no provider configured, no embedded profile) or that need prices
    no series has; UpstreamUnavailableError naming what was tried when a region's sources know
    it but none could answer (an outage is not the request's fault)."""
    h = request.horizon
    by_region: dict[str, Forecast] = {f.region: f for f in request.forecasts}
    missing = [site.region for site in request.sites if site.region not in by_region]
    failures: dict[str, list[LookupError]] = {region: [] for region in missing}
    for source in sources:
        pending = [region for region in dict.fromkeys(missing) if region not in by_region]
        if not pending:
            break
        answers = resolve_concurrently(source, pending, h.start, h.slots, h.slot_minutes)
        for region, answer in answers.items():
            if isinstance(answer, Forecast):
                by_region[region] = answer
            else:
                failures[region].append(answer)
    violations: list[FieldViolation] = []
    unavailable: dict[str, str] = {}
    for i, site in enumerate(request.sites):
        if site.region not in by_region:
            errors = failures[site.region]
            reasons = "; ".join(str(e) for e in errors)
            if all(isinstance(e, KeyError) for e in errors):
                violations.append(FieldViolation(
                    f"sites[{i}].region", f"no forecast for region {site.region!r} in the "
                    f"request, and no forecast source has one ({reasons})"))
            elif site.region not in unavailable:
                unavailable[site.region] = f"region {site.region!r} (sites[{i}]): {reasons}"
            continue
        if request.objective.cost_weight > 0 and not by_region[site.region].price_per_mwh:
            violations.append(FieldViolation(
                f"sites[{i}].region", f"objective.cost_weight > 0 needs prices for region "
                f"{site.region!r}; add a forecast with price_per_mwh"))
    if violations:
        raise InvalidInputError(violations)
    if unavailable:
        raise UpstreamUnavailableError("no forecast could be had for "
                                       + "; ".join(unavailable.values()))
    return list(by_region.values())


def problem_as_planned(data: Any, forecasts: Sequence[Forecast],
                       supply_kw: dict[str, Sequence[float]]) -> Problem:
    """The problem a plan was made for, from the request and what the planner used: its
    forecast series (in their native step) and each site's on-site supply. Nothing is fetched:
    a client checks a server's plan with this."""
    request = parse_request(data)
    sites = tuple(replace(site, renewable_kw=tuple(float(v) for v in supply_kw[site.id]))
                  if supply_kw.get(site.id) else site for site in request.sites)
    request = replace(request, sites=sites, forecasts=())
    return build_problem(request, [f for f in forecasts if f.carbon_intensity])


def with_overrides(data: Any, *, time_limit_s: float | None = None,
                   backend: str | None = None, require_forecasts: bool = False) -> Any:
    """Copy of a request dict with options overridden (left alone if it is not a dict)."""
    if not isinstance(data, dict) or (time_limit_s is None and backend is None
                                      and not require_forecasts):
        return data
    if not isinstance(data.get("options") or {}, dict):
        return data  # malformed options: left for the validator to report
    data = dict(data)
    options = dict(data.get("options") or {})
    if time_limit_s is not None:
        options.pop("timeLimitSeconds", None)
        options["time_limit_seconds"] = time_limit_s
    if backend is not None:
        options["backend"] = {"auto": "BACKEND_AUTO"}.get(backend.lower(), backend.upper())
    if require_forecasts:
        options.pop("requireForecasts", None)
        options["require_forecasts"] = True
    data["options"] = options
    return data
