"""The compiled, slot-indexed form of a request that every solver, baseline and checker reads.

Site arrays are indexed [s, t]; job arrays [j]. A job may occupy slots in [first_slot,
last_slot) (earliest start rounded up, deadline rounded down) and needs `duration_slots`
whole slots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from gridshift.forecasting.alignment import align_to_slots
from gridshift.optimizer.domain import Forecast, Horizon, Objective, Options, Request
from gridshift.optimizer.errors import FieldViolation, InvalidInputError
from gridshift.optimizer.parsing import duration_slots, window_slots


@dataclass(frozen=True)
class Problem:
    """Numeric arrays of one planning problem (see module docstring)."""

    horizon: Horizon
    objective: Objective
    options: Options
    site_ids: tuple[str, ...]
    site_regions: tuple[str, ...]
    gpu_capacity: np.ndarray        # [S, T] int
    pue: np.ndarray                 # [S]
    power_cap_kw: np.ndarray        # [S], inf where no cap
    renewable_kw: np.ndarray        # [S, T]
    ci_g_per_kwh: np.ndarray        # [S, T]
    price_per_mwh: np.ndarray       # [S, T], zeros where no price is known
    job_ids: tuple[str, ...]
    job_teams: tuple[str, ...]
    gpus: np.ndarray                # [J] int
    power_kw: np.ndarray            # [J] IT power
    duration_minutes: np.ndarray    # [J] int
    duration_slots: np.ndarray      # [J] int
    first_slot: np.ndarray          # [J] int
    last_slot: np.ndarray           # [J] int, exclusive
    earliest_hours: np.ndarray      # [J] earliest_start - horizon.start, in hours
    allowed_sites: tuple[tuple[int, ...], ...]   # per job, in the order listed
    home_site: np.ndarray           # [J] int
    interruptible: np.ndarray       # [J] bool
    min_run_slots: np.ndarray       # [J] int, >= 1
    priority: np.ndarray            # [J]
    forecasts: tuple[Forecast, ...]  # the series used, one per region
    #: [J] bool: running or committed jobs (fixed where they run; see parsing._committed).
    committed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    #: job -> (site, start slot) an earlier plan announced (objective.move_weight).
    announced: dict[int, tuple[int, int]] = field(default_factory=dict)

    @property
    def n_sites(self) -> int:
        return len(self.site_ids)

    @property
    def n_slots(self) -> int:
        return self.horizon.slots

    @property
    def n_jobs(self) -> int:
        return len(self.job_ids)

    @property
    def slot_hours(self) -> float:
        return self.horizon.slot_hours

    def facility_kw(self, job: int, site: int) -> float:
        """Facility power (IT power x PUE) of a job running at a site."""
        return float(self.power_kw[job] * self.pue[site])

    def grid_cost_per_kwh(self) -> np.ndarray:
        """Weighted objective per kWh drawn from the grid, [S, T]: carbon (kg) and cost terms."""
        w = self.objective
        return (w.carbon_weight * self.ci_g_per_kwh + w.cost_weight * self.price_per_mwh) / 1000.0

    def slot_time(self, slot: int) -> datetime:
        return self.horizon.slot_start(slot)


def build_problem(request: Request, forecasts: list[Forecast] | None = None) -> Problem:
    """Compile a validated request; `forecasts` are the series per region to use (default: the
    request's own). Raises InvalidInputError when a site's region has no covering series."""
    h = request.horizon
    by_region = {f.region: f for f in (forecasts if forecasts is not None else request.forecasts)}
    violations: list[FieldViolation] = []
    S, T = len(request.sites), h.slots
    ci = np.zeros((S, T))
    price = np.zeros((S, T))
    used: dict[str, Forecast] = {}
    for s, site in enumerate(request.sites):
        series = by_region.get(site.region)
        if series is None:
            violations.append(FieldViolation(
                f"sites[{s}].region", f"no forecast for region {site.region!r}"))
            continue
        try:
            ci[s] = align_to_slots(series.carbon_intensity, series.start, series.slot_minutes,
                                   h.start, h.slot_minutes, T)
            if series.price_per_mwh:
                price[s] = align_to_slots(series.price_per_mwh, series.start,
                                          series.slot_minutes, h.start, h.slot_minutes, T)
        except ValueError as exc:
            violations.append(FieldViolation(f"sites[{s}].region",
                                             f"forecast for {site.region!r}: {exc}"))
        used[site.region] = series
    if violations:
        raise InvalidInputError(violations)
    return _assemble(request, ci, price, tuple(used.values()))


def _site_capacity(request: Request) -> np.ndarray:
    h = request.horizon
    cap = np.zeros((len(request.sites), h.slots), dtype=np.int64)
    slot_edges = [h.slot_start(t) for t in range(h.slots + 1)]
    for s, site in enumerate(request.sites):
        cap[s, :] = site.gpu_capacity
        for w in site.capacity_windows:
            # A slot that overlaps a maintenance window at all gets the lowered capacity.
            for t in range(h.slots):
                if slot_edges[t] < w.end and w.start < slot_edges[t + 1]:
                    cap[s, t] = min(cap[s, t], w.gpu_capacity)
    return cap


def _assemble(request: Request, ci: np.ndarray, price: np.ndarray,
              used: tuple[Forecast, ...]) -> Problem:
    h = request.horizon
    site_index = {s.id: i for i, s in enumerate(request.sites)}
    allowed, home, first, last, dur, min_run = [], [], [], [], [], []
    for job in request.jobs:
        sites = tuple(site_index[s] for s in job.allowed_sites) or tuple(range(len(site_index)))
        allowed.append(sites)
        home.append(site_index[job.home_site] if job.home_site else sites[0])
        f, la = window_slots(h, job.earliest_start, job.deadline)
        first.append(f)
        last.append(la)
        d = duration_slots(h, job.duration_minutes)
        dur.append(d)
        run = duration_slots(h, job.min_run_minutes) if job.interruptible else d
        min_run.append(max(1, min(run, d)))
    renewable = np.zeros((len(request.sites), h.slots))
    for s, site in enumerate(request.sites):
        if site.renewable_kw:
            renewable[s] = site.renewable_kw
    jobs = request.jobs
    return Problem(
        horizon=h, objective=request.objective, options=request.options,
        site_ids=tuple(s.id for s in request.sites),
        site_regions=tuple(s.region for s in request.sites),
        gpu_capacity=_site_capacity(request),
        pue=np.array([s.pue for s in request.sites], dtype=float),
        power_cap_kw=np.array([s.power_cap_kw if s.power_cap_kw else np.inf
                               for s in request.sites]),
        renewable_kw=renewable, ci_g_per_kwh=ci, price_per_mwh=price,
        job_ids=tuple(j.id for j in jobs), job_teams=tuple(j.team for j in jobs),
        gpus=np.array([j.gpus for j in jobs], dtype=np.int64),
        power_kw=np.array([j.power_kw for j in jobs], dtype=float),
        duration_minutes=np.array([j.duration_minutes for j in jobs], dtype=np.int64),
        duration_slots=np.array(dur, dtype=np.int64),
        first_slot=np.array(first, dtype=np.int64), last_slot=np.array(last, dtype=np.int64),
        earliest_hours=np.array([(j.earliest_start - h.start).total_seconds() / 3600
                                 for j in jobs], dtype=float),
        allowed_sites=tuple(allowed), home_site=np.array(home, dtype=np.int64),
        interruptible=np.array([j.interruptible for j in jobs], dtype=bool),
        min_run_slots=np.array(min_run, dtype=np.int64),
        priority=np.array([j.priority for j in jobs], dtype=float),
        forecasts=used,
        committed=np.array([j.committed for j in jobs], dtype=bool),
        announced=_announced(request, site_index),
    )


def _announced(request: Request, site_index: dict[str, int]) -> dict[int, tuple[int, int]]:
    """Announced (site, start slot) per job, for those announced on a slot of the horizon."""
    h = request.horizon
    out = {}
    for j, job in enumerate(request.jobs):
        if job.announced_start is None or job.announced_site not in site_index:
            continue
        slot = math.floor((job.announced_start - h.start).total_seconds()
                          / (h.slot_minutes * 60) + 1e-9)
        if 0 <= slot < h.slots:
            out[j] = (site_index[job.announced_site], slot)
    return out
