"""Seeded benchmark instances on real carbon curves.

Carbon intensity comes from the real hourly 2022 EIA-930 series of six US balancing
authorities and the German 15-min series in ../shared/data (the development tree); where that
folder is absent, the embedded typical-day profiles stand in (and the bench says so).
Each site's capacity is sized so that a feasible reference schedule (every job at its home site
at its earliest start) peaks at `peak_utilisation` of it; every instance can place all jobs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
REGIONS = ["US-CAL-CISO", "US-TEX-ERCO", "US-MIDA-PJM", "US-NW-BPAT", "DE", "US-MIDW-MISO",
           "US-NY-NYIS"]
# Job sizes in GPUs and their weights (node-granular, shaped like the Philly trace's GPU time).
GPU_SIZES = np.array([1, 2, 4, 8, 16, 32])
GPU_WEIGHTS = np.array([0.30, 0.10, 0.20, 0.25, 0.10, 0.05])


@dataclass(frozen=True)
class InstanceSpec:
    name: str
    jobs: int
    sites: int
    slots: int
    slot_minutes: int = 60
    peak_utilisation: float = 0.85   # of each site's reference-schedule peak
    seed: int = 1


SIZES = {
    "small": InstanceSpec("small", jobs=20, sites=3, slots=48),
    "medium": InstanceSpec("medium", jobs=200, sites=5, slots=96),
    "large": InstanceSpec("large", jobs=2000, sites=10, slots=96),
    "xlarge": InstanceSpec("xlarge", jobs=10000, sites=10, slots=168),
}


def carbon_source() -> str:
    return "EIA-930 2022 / DE 2020 real series" if SHARED_DATA.exists() else \
        "embedded typical-day profiles (../shared/data absent)"


def _real_series(region: str, start: datetime, hours: int) -> np.ndarray | None:
    """The region's real hourly series from ``start`` (the backtest's loader), or None where
    the shared data is absent or does not cover the window."""
    if not SHARED_DATA.exists():
        return None
    from gridshift.adapters.datasets import load_carbon_series

    series = load_carbon_series(region, SHARED_DATA)
    window = series[(series.index >= start) & (series.index < start + timedelta(hours=hours))]
    values = window.to_numpy(dtype=float)
    return values if len(values) == hours and np.isfinite(values).all() else None


def _series(region: str, start: datetime, hours: int) -> list[float]:
    real = _real_series(region, start, hours)
    if real is None:
        from gridshift.forecasting.profiles import typical_intensity

        real = typical_intensity(region, start, hours, 60)
    return [round(float(v), 2) for v in real]


def make_request(spec: InstanceSpec) -> dict:
    """The OptimizeRequest (JSON-mapping dict) of a benchmark instance."""
    rng = np.random.default_rng(spec.seed)
    year = 2020 if "DE" in REGIONS[:spec.sites] else 2022
    start = datetime(year, 5, 10, tzinfo=UTC)
    hours = math.ceil(spec.slots * spec.slot_minutes / 60)
    # More sites than regions: regions repeat (several sites in one grid region).
    regions = [REGIONS[i % len(REGIONS)] for i in range(spec.sites)]
    jobs = _jobs(spec, rng, regions)
    weights = rng.dirichlet(np.full(spec.sites, 4.0))
    for j in jobs:
        allowed = [int(x.split("-")[1]) for x in j.get("allowed_sites", [])]
        home = allowed[0] if allowed else int(rng.choice(spec.sites, p=weights))
        j["home_site"] = f"site-{home}"
    peak_gpus, peak_kw = _reference_peaks(jobs, spec)
    sites = []
    for s, region in enumerate(regions):
        capacity = int(max(32, math.ceil(peak_gpus[s] / spec.peak_utilisation)))
        site = {"id": f"site-{s}", "region": region, "gpu_capacity": capacity,
                "pue": round(float(rng.uniform(1.08, 1.4)), 2)}
        if s == 0:   # one site with on-site solar
            t = np.arange(spec.slots) * spec.slot_minutes / 60.0
            solar = np.clip(np.sin((t % 24 - 13) / 12 * math.pi + math.pi / 2), 0, None)
            site["renewable_kw"] = [round(float(v), 2)
                                    for v in 0.25 * capacity * 0.7 * solar]
        if s == 1:   # a facility power cap that binds now and then
            site["power_cap_kw"] = round(site["pue"] * max(peak_kw[s] / 0.9, 8.0), 1)
        sites.append(site)
    forecasts = [{"region": r, "start": _ts(start), "slot_minutes": 60,
                  "carbon_intensity": _series(r, start, hours)} for r in dict.fromkeys(regions)]
    return {"horizon": {"start": _ts(start), "slot_minutes": spec.slot_minutes,
                        "slots": spec.slots},
            "sites": sites, "jobs": [_with_times(j, start, spec) for j in jobs],
            "forecasts": forecasts}


def _jobs(spec: InstanceSpec, rng: np.random.Generator, regions: list[str]) -> list[dict]:
    jobs = []
    for i in range(spec.jobs):
        gpus = int(rng.choice(GPU_SIZES, p=GPU_WEIGHTS))
        dur_slots = int(np.clip(rng.lognormal(math.log(4), 0.6), 1, spec.slots // 3))
        slack = int(rng.integers(0, max(1, spec.slots // 3)))
        first = int(rng.integers(0, spec.slots - dur_slots - slack + 1))
        job = {"id": f"job-{i:05d}", "gpus": gpus,
               "power_kw": round(gpus * float(rng.uniform(0.55, 0.8)), 3),
               "_first": first, "_dur": dur_slots, "_last": first + dur_slots + slack}
        if rng.random() < 0.3 and dur_slots >= 3:
            job["interruptible"] = True
            job["min_run_minutes"] = spec.slot_minutes * 2
        if rng.random() < 0.2 and spec.sites > 2:
            picks = rng.choice(spec.sites, size=2, replace=False)
            job["allowed_sites"] = [f"site-{int(s)}" for s in picks]
        jobs.append(job)
    return jobs


def _reference_peaks(jobs: list[dict], spec: InstanceSpec) -> tuple[np.ndarray, np.ndarray]:
    """Peak GPUs and IT kW per site with every job at its home site at its earliest start: a
    feasible reference schedule, so every instance can place all its jobs, and capacity =
    peak / peak_utilisation."""
    gpus = np.zeros((spec.sites, spec.slots))
    kw = np.zeros((spec.sites, spec.slots))
    for j in jobs:
        s = int(j["home_site"].split("-")[1])
        gpus[s, j["_first"]:j["_first"] + j["_dur"]] += j["gpus"]
        kw[s, j["_first"]:j["_first"] + j["_dur"]] += j["power_kw"]
    return gpus.max(axis=1), kw.max(axis=1)


def _with_times(job: dict, start: datetime, spec: InstanceSpec) -> dict:
    step = timedelta(minutes=spec.slot_minutes)
    out = {k: v for k, v in job.items() if not k.startswith("_")}
    out["duration_minutes"] = job["_dur"] * spec.slot_minutes
    out["earliest_start"] = _ts(start + job["_first"] * step)
    out["deadline"] = _ts(start + job["_last"] * step)
    return out


def _ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")
