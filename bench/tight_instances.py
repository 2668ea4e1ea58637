"""Seeded *tight* benchmark instances: a busy fleet's night, where GPU capacity binds.

Unlike bench/instances.py (capacity at 85 % of a reference schedule's peak, generous
windows), these are built the way a new user's busy night looks:

- a day of 15-minute slots (96), starting at 00:00 UTC (the US evening) on a day of 2022
  that the seed picks; carbon intensity from the real hourly EIA-930 series in
  ../shared/data (embedded typical-day profiles where that folder is absent);
- durations from 30 minutes to 8 hours (log-uniform, whole minutes in 5-minute steps);
  GPUs per job node-granular (1-32); a quarter of the jobs interruptible (runs of at least
  30 or 60 minutes); a fifth restricted to two sites (data residency);
- arrivals: a queue waiting at the start of the night (a third of the jobs), the rest
  spread over the first two thirds of the horizon;
- each site's GPU capacity sized so that the GPU-hours of the jobs homed there fill
  ``fill`` (75 %) of it over the horizon (rounded up to whole 8-GPU nodes);
- on-site solar at the first and third site (peak 30 % of the site's full-load power, at
  local noon), a facility power cap at the second (90 % of its full-load power);
- each job's deadline exactly the end that a first-come-first-served schedule (the product's
  FIFO baseline) gives it: no looser than what FIFO needs, so FIFO is feasible and every
  instance can place all its jobs. Jobs FIFO cannot place within the horizon are dropped
  (a few per instance), which is why a 200-job spec may give 198 jobs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from instances import GPU_SIZES, GPU_WEIGHTS, _series, _ts

TIGHT_REGIONS = ["US-CAL-CISO", "US-TEX-ERCO", "US-MIDA-PJM", "US-NW-BPAT", "US-MIDW-MISO",
                 "US-NY-NYIS"]
# Hours behind UTC of each region's local noon (solar peak at 12:00 local).
UTC_OFFSET_H = {"US-CAL-CISO": -8, "US-TEX-ERCO": -6, "US-MIDA-PJM": -5, "US-NW-BPAT": -8,
                "US-MIDW-MISO": -6, "US-NY-NYIS": -5}
SOLAR_SITES = (0, 2)
CAPPED_SITE = 1


@dataclass(frozen=True)
class TightSpec:
    """One tight instance: jobs asked for, sites, slots, slot length, fill and seed."""

    name: str
    jobs: int
    sites: int
    slots: int = 96
    slot_minutes: int = 15
    fill: float = 0.75          # GPU-hours of a site's home jobs / its GPU-hours over the day
    seed: int = 1


TIGHT_SIZES = {
    "tight-medium": TightSpec("tight-medium", jobs=200, sites=5),
    "tight-large": TightSpec("tight-large", jobs=2000, sites=6),
}
#: Seeds of the tight-medium family the benchmark reports (tight-large: the first).
TIGHT_SEEDS = (1, 2, 3, 4, 5)


def tight_spec(size: str, seed: int) -> TightSpec:
    """The spec of `size` with another seed."""
    from dataclasses import replace

    return replace(TIGHT_SIZES[size], seed=seed)


def make_tight_request(spec: TightSpec) -> dict:
    """The OptimizeRequest (JSON-mapping dict) of a tight instance."""
    rng = np.random.default_rng(10_000 + spec.seed)
    start = datetime(2022, 1, 1, tzinfo=UTC) + timedelta(days=int(rng.integers(0, 360)))
    regions = [TIGHT_REGIONS[i % len(TIGHT_REGIONS)] for i in range(spec.sites)]
    jobs = _jobs(spec, rng)
    sites = _sites(spec, rng, regions, jobs)
    hours = math.ceil(spec.slots * spec.slot_minutes / 60)
    forecasts = [{"region": r, "start": _ts(start), "slot_minutes": 60,
                  "carbon_intensity": _series(r, start, hours)} for r in dict.fromkeys(regions)]
    request = {"horizon": {"start": _ts(start), "slot_minutes": spec.slot_minutes,
                           "slots": spec.slots},
               "sites": sites, "jobs": [_with_times(j, start, spec) for j in jobs],
               "forecasts": forecasts}
    return _deadlines_from_fifo(request, start, spec)


def _jobs(spec: TightSpec, rng: np.random.Generator) -> list[dict]:
    jobs = []
    weights = rng.dirichlet(np.full(spec.sites, 4.0))
    for i in range(spec.jobs):
        gpus = int(rng.choice(GPU_SIZES, p=GPU_WEIGHTS))
        minutes = int(5 * round(math.exp(rng.uniform(math.log(30), math.log(480))) / 5))
        dur_slots = math.ceil(minutes / spec.slot_minutes)
        latest = spec.slots - dur_slots
        first = 0 if rng.random() < 1 / 3 else int(rng.integers(0, max(1, min(
            latest, 2 * spec.slots // 3)) + 1))
        job = {"id": f"job-{i:05d}", "gpus": gpus,
               "power_kw": round(gpus * float(rng.uniform(0.55, 0.8)), 3),
               "duration_minutes": minutes, "_first": first}
        if rng.random() < 0.25 and dur_slots >= 4:
            job["interruptible"] = True
            job["min_run_minutes"] = int(rng.choice([30, 60]))
        if rng.random() < 0.2 and spec.sites > 2:
            picks = rng.choice(spec.sites, size=2, replace=False)
            job["allowed_sites"] = [f"site-{int(s)}" for s in picks]
            job["home_site"] = job["allowed_sites"][0]
        else:
            job["home_site"] = f"site-{int(rng.choice(spec.sites, p=weights))}"
        jobs.append(job)
    return jobs


def _sites(spec: TightSpec, rng: np.random.Generator, regions: list[str],
           jobs: list[dict]) -> list[dict]:
    gpu_hours = np.zeros(spec.sites)
    biggest = np.zeros(spec.sites)
    for j in jobs:
        s = int(j["home_site"].split("-")[1])
        gpu_hours[s] += j["gpus"] * j["duration_minutes"] / 60
        biggest[s] = max(biggest[s], j["gpus"])
    horizon_h = spec.slots * spec.slot_minutes / 60
    sites = []
    for s, region in enumerate(regions):
        capacity = max(biggest[s], gpu_hours[s] / (spec.fill * horizon_h))
        # At least one node: a site no job calls home (a spec of a handful of jobs) would
        # otherwise get no GPUs and a power cap of 0 kW, which a request may not have.
        capacity = int(8 * math.ceil(max(capacity, 1) / 8))
        pue = round(float(rng.uniform(1.08, 1.4)), 2)
        site = {"id": f"site-{s}", "region": region, "gpu_capacity": capacity, "pue": pue}
        full_kw = capacity * 0.7 * pue
        if s in SOLAR_SITES:
            t = np.arange(spec.slots) * spec.slot_minutes / 60 + 0.5 * spec.slot_minutes / 60
            local_h = (t + UTC_OFFSET_H[region]) % 24
            shape = np.clip(np.cos((local_h - 12) / 12 * math.pi), 0, None) ** 1.5
            site["renewable_kw"] = [round(float(v), 2) for v in 0.3 * full_kw * shape]
        if s == CAPPED_SITE:
            site["power_cap_kw"] = round(0.9 * full_kw, 1)
        sites.append(site)
    return sites


def _with_times(job: dict, start: datetime, spec: TightSpec) -> dict:
    out = {k: v for k, v in job.items() if not k.startswith("_")}
    out["earliest_start"] = _ts(start + job["_first"] * timedelta(minutes=spec.slot_minutes))
    return out


def _deadlines_from_fifo(request: dict, start: datetime, spec: TightSpec) -> dict:
    """Each job's deadline set to its FIFO end; jobs FIFO cannot place are dropped."""
    from gridshift.optimizer.baseline import fifo_baseline
    from gridshift.optimizer.parsing import parse_request
    from gridshift.optimizer.problem import build_problem

    problem = build_problem(parse_request(request))
    fifo = fifo_baseline(problem)
    step = timedelta(minutes=spec.slot_minutes)
    kept = []
    for j, job in enumerate(request["jobs"]):
        placement = fifo.placements.get(j)
        if placement is None:
            continue
        kept.append({**job, "deadline": _ts(start + placement.end_slot * step)})
    return {**request, "jobs": kept}
