"""Plain records of the plan store (no SQL here): what a stored plan is, and how to ask for some.

Every datetime is timezone-aware; the store hands them back in UTC. ``request`` and ``response``
are the protobuf JSON mappings of OptimizeRequest / OptimizeResponse (``MessageToDict``), and
``forecasts`` / ``provenance`` lists of JSON objects: all four are stored as JSON, so they must be
JSON values (str, int, float except NaN/inf, bool, None, list, dict with str keys) — put times in
them as ISO 8601 strings (:func:`forecast_snapshot` does this for a forecast series).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gridshift.adapters.providers.registry import signal_of
from gridshift.forecasting.series import Forecast

__all__ = ["ActualSeries", "GateSubmission", "JobRow", "JobRun", "PlanFilter", "PlanRecord",
           "forecast_from_snapshot", "forecast_snapshot", "regular_series"]


@dataclass
class JobRow:
    """One job of a stored plan: where and when it runs, and what it costs."""

    job_id: str
    team: str
    site_id: str
    start: datetime
    end: datetime
    energy_kwh: float
    grid_energy_kwh: float
    emissions_kg: float
    baseline_emissions_kg: float
    #: The newer plan that re-planned this job; None while this row is the job's current plan.
    superseded_by: str | None = None

    def state(self, now: datetime) -> str:
        """``superseded`` (re-planned by a newer plan), else ``planned``, ``started`` or
        ``done`` by its planned times against ``now``."""
        if self.superseded_by:
            return "superseded"
        if now >= self.end:
            return "done"
        return "started" if now >= self.start else "planned"


@dataclass(frozen=True)
class JobRun:
    """A job as it really ran (the scheduler's record): its site, start and end."""

    job_id: str
    site_id: str
    start: datetime
    end: datetime
    source: str = "slurm"


@dataclass
class GateSubmission:
    """A job given to a job gate (the Ray gate) instead of straight to its scheduler.

    ``spec`` is the submission as given (entrypoint, GPUs, duration estimate, deadline, allowed
    clusters, ...; JSON values). ``state`` is ``waiting`` (held by the gate), ``submitted``
    (handed to the scheduler), ``running`` or ``done``; ``cluster`` and ``planned_start`` are
    where and when the gate plans (or planned) to hand it over, ``submitted_at`` when it did.
    """

    submission_id: str
    created_at: datetime
    spec: dict[str, Any]
    state: str = "waiting"
    cluster: str = ""
    planned_start: datetime | None = None
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    scheduler_status: str = ""
    plan_id: str = ""
    note: str = ""


@dataclass
class PlanRecord:
    """A stored plan: the request, the response, the forecasts it used, and a few indexed facts.

    ``source`` says who made it ("grpc", "cli", "nightly", ...), ``status`` is the solve status
    ("OPTIMAL", "FEASIBLE", "INFEASIBLE", ...). ``run_key`` (date + input hash) makes nightly runs
    idempotent: a second plan with the same key is not stored. Records listed without payloads
    (``PlanStore.list(..., full=False)``) have empty ``request``, ``response`` and ``forecasts``.
    """

    plan_id: str
    created_at: datetime
    source: str
    status: str
    horizon_start: datetime
    horizon_end: datetime
    request: dict[str, Any]
    response: dict[str, Any]
    forecasts: list[dict[str, Any]]
    provenance: list[dict[str, Any]]
    emissions_kg: float
    baseline_emissions_kg: float
    energy_kwh: float
    run_key: str | None = None
    jobs: list[JobRow] = field(default_factory=list)


@dataclass(frozen=True)
class PlanFilter:
    """Which plans to list; every criterion that is set must hold.

    ``start``/``end``: plans whose horizon overlaps ``[start, end)`` (either may be open);
    ``team`` / ``site``: plans with at least one job of that team / at that site;
    ``status``: plans with that status.
    """

    start: datetime | None = None
    end: datetime | None = None
    team: str | None = None
    site: str | None = None
    status: str | None = None


@dataclass(frozen=True)
class ActualSeries:
    """Observed carbon intensity (gCO2e/kWh) of a region: one value per slot from ``start``.

    NaN values are gaps: they are not stored (and do not overwrite a stored value).
    """

    region: str
    start: datetime
    slot_minutes: int
    carbon_intensity: list[float]
    provider: str


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"datetime {moment!r} must be timezone-aware")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _floats(values: Any) -> list[float | None]:
    return [None if math.isnan(float(v)) else float(v) for v in values]


def forecast_from_snapshot(snapshot: dict[str, Any]) -> Forecast:
    """The Forecast of a :func:`forecast_snapshot` (snapshots written before series carried
    their signal get the one their provider publishes)."""
    def when(text: str | None) -> datetime | None:
        return datetime.fromisoformat(text) if text else None

    def floats(values: Any) -> tuple[float, ...]:
        return tuple(float("nan") if v is None else float(v) for v in values or ())

    provider = snapshot.get("provider", "")
    return Forecast(region=snapshot["region"], start=when(snapshot["start"]),
                    slot_minutes=int(snapshot["slot_minutes"]),
                    carbon_intensity=floats(snapshot["carbon_intensity"]),
                    carbon_intensity_p10=floats(snapshot.get("p10")),
                    carbon_intensity_p90=floats(snapshot.get("p90")),
                    price_per_mwh=floats(snapshot.get("price_per_mwh")),
                    provider=provider, issued_at=when(snapshot.get("issued_at")),
                    stale=bool(snapshot.get("stale")), fallback=bool(snapshot.get("fallback")),
                    detail=snapshot.get("detail", ""),
                    signal=snapshot.get("signal") or signal_of(provider),
                    typical_profile=bool(snapshot.get("typical_profile")))


def regular_series(region: str, points: list[tuple[datetime, float]]) -> Forecast | None:
    """Stored actual points as a regular series (gaps as NaN); None with fewer than two."""
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


def forecast_snapshot(forecast: Any) -> dict[str, Any]:
    """The JSON snapshot of a :class:`forecasting.series.Forecast` kept with a plan.

    Keys: region, start, slot_minutes, carbon_intensity, p10, p90, price_per_mwh, provider,
    issued_at, stale, fallback, detail, signal, typical_profile; times as ISO 8601 UTC strings
    ("...Z"), NaN as null.
    """
    return {
        "region": forecast.region,
        "start": _iso(forecast.start),
        "slot_minutes": int(forecast.slot_minutes),
        "carbon_intensity": _floats(forecast.carbon_intensity),
        "p10": _floats(forecast.carbon_intensity_p10),
        "p90": _floats(forecast.carbon_intensity_p90),
        "price_per_mwh": _floats(forecast.price_per_mwh),
        "provider": forecast.provider,
        "issued_at": _iso(forecast.issued_at),
        "stale": bool(forecast.stale),
        "fallback": bool(forecast.fallback),
        "detail": getattr(forecast, "detail", ""),
        "signal": forecast.signal,
        "typical_profile": bool(forecast.typical_profile),
    }
