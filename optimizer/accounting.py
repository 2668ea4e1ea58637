"""Vectorised figures of a plan: totals, per-job attribution and per-site load profiles.

Grid energy in a slot is attributed to the jobs running at the site in proportion to their
facility power, so per-job emissions add up to the site's.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy as np

from gridshift.optimizer.plan import Plan
from gridshift.optimizer.problem import Problem


@dataclass(frozen=True)
class Totals:
    energy_kwh: float = 0.0
    grid_energy_kwh: float = 0.0
    emissions_kg: float = 0.0
    cost: float = 0.0
    wait_hours: float = 0.0
    weighted_wait_hours: float = 0.0

    def objective(self, problem: Problem) -> float:
        w = problem.objective
        return (w.carbon_weight * self.emissions_kg + w.cost_weight * self.cost
                + w.delay_weight * self.weighted_wait_hours)


@dataclass(frozen=True)
class JobFigures:
    job: int
    site: int
    energy_kwh: float
    grid_energy_kwh: float
    emissions_kg: float
    cost: float
    wait_hours: float


@dataclass(frozen=True)
class PlanFigures:
    totals: Totals
    jobs: dict[int, JobFigures]
    load_kw: np.ndarray      # [S, T] facility load
    grid_kw: np.ndarray      # [S, T]
    gpus_used: np.ndarray    # [S, T]


def site_loads(problem: Problem, plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    """GPUs used and facility load in kW per [site, slot]."""
    gpus = np.zeros((problem.n_sites, problem.n_slots), dtype=np.int64)
    it_kw = np.zeros((problem.n_sites, problem.n_slots))
    job, site, slot = _occupancy(plan)
    # np.add.at adds in element order: each cell's sum is taken in the plan's order.
    np.add.at(gpus, (site, slot), problem.gpus[job])
    np.add.at(it_kw, (site, slot), problem.power_kw[job])
    return gpus, it_kw * problem.pue[:, None]


def _occupancy(plan: Plan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(job, site, slot) of every slot every placement occupies, in the plan's order."""
    placements = plan.placements.values()
    lengths = np.fromiter((len(p.slots) for p in placements), dtype=np.int64,
                          count=len(plan.placements))
    slot = np.fromiter(chain.from_iterable(p.slots for p in placements), dtype=np.int64,
                       count=int(lengths.sum()))
    job = np.repeat(np.fromiter(plan.placements, dtype=np.int64, count=len(lengths)), lengths)
    site = np.repeat(np.fromiter((p.site for p in placements), dtype=np.int64,
                                 count=len(lengths)), lengths)
    return job, site, slot


def wait_hours(problem: Problem, job: int, end_slot: int) -> float:
    """end - earliest_start - duration, in hours."""
    return (end_slot * problem.slot_hours - float(problem.earliest_hours[job])
            - float(problem.duration_minutes[job]) / 60.0)


def figures(problem: Problem, plan: Plan) -> PlanFigures:
    """Totals, per-job and per-site figures of a plan (docs/architecture.md, "The problem")."""
    gpus, load_kw = site_loads(problem, plan)
    grid_kw = np.maximum(0.0, load_kw - problem.renewable_kw)
    hours = problem.slot_hours
    # Share of each slot's grid draw per kW of facility load (0 where there is no load).
    grid_share = np.divide(grid_kw, load_kw, out=np.zeros_like(load_kw), where=load_kw > 0)
    jobs: dict[int, JobFigures] = {}
    for j, p in plan.placements.items():
        idx = np.asarray(p.slots, dtype=np.int64)
        kw = problem.facility_kw(j, p.site)
        job_grid_kwh = kw * grid_share[p.site, idx] * hours
        jobs[j] = JobFigures(
            job=j, site=p.site, energy_kwh=kw * len(idx) * hours,
            grid_energy_kwh=float(job_grid_kwh.sum()),
            emissions_kg=float((job_grid_kwh * problem.ci_g_per_kwh[p.site, idx]).sum() / 1000),
            cost=float((job_grid_kwh * problem.price_per_mwh[p.site, idx]).sum() / 1000),
            wait_hours=wait_hours(problem, j, p.end_slot))
    return PlanFigures(totals=_totals(problem, plan, load_kw, grid_kw), jobs=jobs,
                       load_kw=load_kw, grid_kw=grid_kw, gpus_used=gpus)


def plan_totals(problem: Problem, plan: Plan) -> Totals:
    """The plan's totals alone: :func:`figures`' totals, without the per-job figures (the
    search compares plans by them many times a call)."""
    _, load_kw = site_loads(problem, plan)
    grid_kw = np.maximum(0.0, load_kw - problem.renewable_kw)
    return _totals(problem, plan, load_kw, grid_kw)


def _totals(problem: Problem, plan: Plan, load_kw: np.ndarray, grid_kw: np.ndarray) -> Totals:
    hours = problem.slot_hours
    job = np.fromiter(plan.placements, dtype=np.int64, count=len(plan.placements))
    end = np.fromiter((p.end_slot for p in plan.placements.values()), dtype=np.int64,
                      count=len(job))
    # As wait_hours, element by element; summed one after another in the plan's order, so
    # that the totals are the same to the last bit however they are asked for.
    waits = end * hours - problem.earliest_hours[job] - problem.duration_minutes[job] / 60.0
    total_wait = weighted_wait = 0.0
    for wait, weighted in zip(waits.tolist(), (problem.priority[job] * waits).tolist(),
                              strict=True):
        total_wait += wait
        weighted_wait += weighted
    return Totals(
        energy_kwh=float(load_kw.sum() * hours),
        grid_energy_kwh=float(grid_kw.sum() * hours),
        emissions_kg=float((grid_kw * problem.ci_g_per_kwh).sum() * hours / 1000),
        cost=float((grid_kw * problem.price_per_mwh).sum() * hours / 1000),
        wait_hours=total_wait, weighted_wait_hours=weighted_wait)


def plan_objective(problem: Problem, plan: Plan) -> float:
    """The request's objective (carbon, cost and delay weights) of a plan."""
    return plan_totals(problem, plan).objective(problem)


@dataclass(frozen=True)
class Savings:
    """The plan against the baseline, on the same work: the jobs both place.

    When both place every job this is totals against totals. When either leaves jobs out
    (``allow_partial``, or the baseline finding no room within the horizon), emissions are
    compared on the jobs both place, each job's own share of its sites' grid draw (the per-job
    attribution above); the energy each side places is reported beside, so that a plan that
    emits more because it places more work is not read as a loss.
    """

    common_jobs: int
    plan_only_jobs: int
    baseline_only_jobs: int
    plan_emissions_kg: float          # of the jobs both place
    baseline_emissions_kg: float      # of the jobs both place
    plan_energy_kwh: float            # facility energy of every job the plan places
    baseline_energy_kwh: float        # ... the baseline places

    @property
    def saved_kg(self) -> float:
        return self.baseline_emissions_kg - self.plan_emissions_kg

    @property
    def saved_pct(self) -> float:
        return (100.0 * self.saved_kg / self.baseline_emissions_kg
                if self.baseline_emissions_kg else 0.0)

    @property
    def same_jobs(self) -> bool:
        return not self.plan_only_jobs and not self.baseline_only_jobs


def savings(plan: PlanFigures, baseline: PlanFigures) -> Savings:
    """The plan's savings against the baseline on the jobs both place (see :class:`Savings`)."""
    common = plan.jobs.keys() & baseline.jobs.keys()
    same = len(common) == len(plan.jobs) == len(baseline.jobs)
    return Savings(
        common_jobs=len(common), plan_only_jobs=len(plan.jobs.keys() - common),
        baseline_only_jobs=len(baseline.jobs.keys() - common),
        plan_emissions_kg=plan.totals.emissions_kg if same else
        sum(plan.jobs[j].emissions_kg for j in common),
        baseline_emissions_kg=baseline.totals.emissions_kg if same else
        sum(baseline.jobs[j].emissions_kg for j in common),
        plan_energy_kwh=plan.totals.energy_kwh, baseline_energy_kwh=baseline.totals.energy_kwh)


@dataclass(frozen=True)
class RunFigures:
    """One run of a job: a contiguous stretch of slots at one site (a contiguous job has
    one), with the energy and emissions of those slots (the per-job attribution above)."""

    job: int
    site: int
    start_slot: int
    end_slot: int
    energy_kwh: float
    grid_energy_kwh: float
    emissions_kg: float


def run_figures(problem: Problem, plan: Plan) -> list[RunFigures]:
    """Every run of every placed job, in job then time order (what a dispatcher acts on)."""
    _, load_kw = site_loads(problem, plan)
    grid_kw = np.maximum(0.0, load_kw - problem.renewable_kw)
    grid_share = np.divide(grid_kw, load_kw, out=np.zeros_like(load_kw), where=load_kw > 0)
    hours = problem.slot_hours
    out = []
    for j, p in sorted(plan.placements.items(), key=lambda item: problem.job_ids[item[0]]):
        kw = problem.facility_kw(j, p.site)
        for lo, hi in p.runs():
            grid_kwh = kw * grid_share[p.site, lo:hi] * hours
            out.append(RunFigures(
                job=j, site=p.site, start_slot=lo, end_slot=hi, energy_kwh=kw * (hi - lo) * hours,
                grid_energy_kwh=float(grid_kwh.sum()),
                emissions_kg=float((grid_kwh * problem.ci_g_per_kwh[p.site, lo:hi]).sum()
                                   / 1000)))
    return out
