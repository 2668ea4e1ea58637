"""The planning use case, wired to concrete sources: request dict → validated problem with
forecasts filled in → solve → canonical response. Shared by the CLI and (later) the server."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from gridshift.api.v1 import optimize_pb2 as pb
from gridshift.forecasting.series import Forecast
from gridshift.forecasting.sources import ForecastSource
from gridshift.forecasts import ForecastService, configured_service, fill_site_renewables
from gridshift.optimizer.domain import Request
from gridshift.optimizer.errors import FieldViolation, InvalidInputError
from gridshift.optimizer.parsing import parse_request
from gridshift.optimizer.problem import Problem, build_problem
from gridshift.optimizer.solve import SolveResult

# The solve used for plans: the optimizer's, plus risk over forecast scenarios.
from gridshift.risk import solve_with_risk as solve


@dataclass
class PlanOutcome:
    result: SolveResult
    response: pb.OptimizeResponse


def default_sources() -> list[ForecastSource]:
    """The forecast sources used when a request carries no forecast for a region: the
    configured provider chains (see gridshift/forecasts.py), ending in the embedded profile."""
    return [default_forecast_service()]


_service: ForecastService | None = None


def default_forecast_service() -> ForecastService:
    """The process-wide forecast service (configured by `configure_forecasts`)."""
    global _service
    if _service is None:
        _service = configured_service()
    return _service


def configure_forecasts(service: ForecastService) -> None:
    """Install the forecast service used by requests without inline forecasts."""
    global _service
    _service = service


def resolve_forecasts(request: Request, sources: list[ForecastSource]) -> list[Forecast]:
    """The request's forecasts plus, for each site region without one, the first source that
    answers. Raises InvalidInputError naming the sites whose region no source covers."""
    h = request.horizon
    by_region = {f.region: f for f in request.forecasts}
    violations: list[FieldViolation] = []
    for i, site in enumerate(request.sites):
        if site.region in by_region:
            continue
        reasons = []
        for source in sources:
            try:
                by_region[site.region] = source.forecast(site.region, h.start, h.slots,
                                                         h.slot_minutes)
                break
            except LookupError as exc:
                reasons.append(str(exc))
        else:
            violations.append(FieldViolation(
                f"sites[{i}].region", f"no forecast for region {site.region!r} in the request, "
                f"and no forecast source has one ({'; '.join(reasons)})"))
            continue
        if request.objective.cost_weight > 0 and not by_region[site.region].price_per_mwh:
            violations.append(FieldViolation(
                f"sites[{i}].region", f"objective.cost_weight > 0 needs prices for region "
                f"{site.region!r}; add a forecast with price_per_mwh"))
    if violations:
        raise InvalidInputError(violations)
    return list(by_region.values())


def prepare(data: dict[str, Any], sources: list[ForecastSource] | None = None) -> Problem:
    """Validate a request dict and compile it with forecasts and site renewables resolved."""
    request = parse_request(data)
    request, renewable_notes = fill_site_renewables(request)
    forecasts = resolve_forecasts(request, default_sources() if sources is None else sources)
    problem = build_problem(request, forecasts)
    if renewable_notes:
        problem = replace(problem, forecasts=problem.forecasts + tuple(renewable_notes))
    return problem


def plan(data: dict[str, Any], *, time_limit_s: float | None = None, backend: str | None = None,
         on_progress: Callable[[dict], None] | None = None,
         stop_flag: Callable[[], bool] | None = None) -> PlanOutcome:
    """Plan a request dict end to end; CLI overrides are applied before validation."""
    data = apply_overrides(data, time_limit_s=time_limit_s, backend=backend)
    problem = prepare(data)
    result = solve(problem, on_progress=on_progress, stop_flag=stop_flag)
    from gridshift.adapters.codec import to_response

    return PlanOutcome(result=result, response=to_response(result))


def apply_overrides(data: Any, *, time_limit_s: float | None = None,
                    backend: str | None = None) -> Any:
    """Copy of a request dict with options overridden (left alone if it is not a dict)."""
    if not isinstance(data, dict) or (time_limit_s is None and backend is None):
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
    data["options"] = options
    return data


__all__ = ["PlanOutcome", "plan", "prepare", "resolve_forecasts", "default_sources"]
