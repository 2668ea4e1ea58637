"""A realistic demo OptimizeRequest: one day of AI work on four US sites.

:func:`demo_request` returns the protobuf JSON mapping (snake_case field names, RFC 3339
timestamps) of a ``gridshift.api.v1.OptimizeRequest``; it solves nothing. Everything comes from
data embedded in the project: carbon intensity and solar shape from ``forecasting.profiles``
(EIA-930 typical days), job sizes and durations from a summary of the Microsoft Philly GPU trace
(constants below), prices from a synthetic shape. The result is deterministic for a given seed.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from gridshift.forecasting.profiles import typical_intensity, typical_solar_cf

__all__ = ["DEFAULT_DAY", "demo_request", "peak_gpu_share"]

DEFAULT_DAY = date(2026, 6, 15)
SLOT_MINUTES = 60
SLOTS = 24
N_JOBS = 60

# --- Job-size and duration shape: the Microsoft Philly GPU trace ---------------------------------
# Source: msr-fiddle/philly-traces (CC BY 4.0), as the job list of the Pollux OSDI'21 artifact,
# petuum/adaptdl @ de25dcc90c350b8ade3a710e437a651a8d2efae6, simulator/traces/philly.csv
# (82,247 jobs, 2017-09-04 .. 2017-12-22). Summarised once, offline, with pandas; the trace is not
# read at run time.
#
# fmt: off
# Share of jobs by num_gpus, whole trace (for reference: 93 % of jobs use one GPU).
PHILLY_JOB_SHARE_BY_GPUS: tuple[tuple[int, float], ...] = (
    (1, 0.93167), (2, 0.02210), (4, 0.02274), (8, 0.01998), (12, 0.00009),
    (16, 0.00242), (24, 0.00009), (32, 0.00081), (64, 0.00007), (128, 0.00004),
)
# Share of GPU time (duration x num_gpus) by num_gpus among the 28,981 jobs that ran 30 min ..
# 12 h, the durations this demo schedules. Demo jobs are drawn from this distribution: a batch
# handed to a scheduler of flexible work carries the trace's GPU-time mix, not its long tail of
# short one-GPU debugging jobs.
PHILLY_GPU_TIME_SHARE_BY_GPUS: tuple[tuple[int, float], ...] = (
    (1, 0.58449), (2, 0.01465), (4, 0.13463), (8, 0.20578), (12, 0.00018),
    (16, 0.02962), (32, 0.01735), (64, 0.00787), (128, 0.00544),
)
# Duration quantiles (seconds) of the jobs that ran 30 min .. 12 h, by job size (num_gpus = 1,
# 2..4, >= 5): larger jobs run longer. Whole-trace durations for comparison: median 1,144 s,
# P90 11,265 s, P95 43,646 s, max 4,628,226 s.
PHILLY_DURATION_QUANTILE_LEVELS: tuple[float, ...] = (
    0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0,
)
PHILLY_DURATION_S_QUANTILES: tuple[tuple[int, tuple[int, ...]], ...] = (
    # (smallest num_gpus of the bucket, quantiles at the levels above)
    (1, (1800, 1920, 2022, 2454, 3490, 5997, 12852, 19831, 43127)),  # 27,736 jobs
    (2, (1829, 2546, 4002, 6399, 14850, 25432, 33962, 37080, 42956)),  # 685 jobs
    (5, (1854, 2259, 3091, 5030, 12392, 21846, 31158, 35353, 43046)),  # 560 jobs
)
# fmt: on
# Philly (2017) GPU counts are scaled up to today's node-granular LLM-era jobs and capped at half
# the largest site. The factor is a modelling choice, sized so that the batch fills about 60-80 %
# of the fleet's GPUs at its peak when every job starts as early as it may.
GPU_SCALE = 16
MAX_JOB_GPUS = 256
# Peak share of the fleet's GPUs when every job runs from its earliest start (on the slot grid).
# Draws outside the band are redrawn (deterministically, from the same generator), so the plan is
# feasible but capacity still matters.
PEAK_GPU_SHARE_BAND = (0.6, 0.8)
MAX_DRAWS = 50
MIN_DURATION_MINUTES = 30
MAX_DURATION_MINUTES = 12 * 60

# H100-class IT power per GPU at full load, including the GPU's share of host, network and
# storage; scaled down a little for lighter work.
KW_PER_GPU = 0.7
KIND_POWER_FACTOR: dict[str, float] = {"train": 1.0, "ft": 0.95, "infer-batch": 0.85, "eval": 0.8}

# --- Sites ----------------------------------------------------------------------------------------
CA_SOLAR_KWP = 400.0
SITES: tuple[dict[str, Any], ...] = (
    {"id": "ca-west", "region": "US-CAL-CISO", "gpu_capacity": 512, "pue": 1.15},
    {
        "id": "tx-central",
        "region": "US-TEX-ERCO",
        "gpu_capacity": 384,
        "pue": 1.3,
        "power_cap_kw": 300.0,
    },
    {"id": "or-hydro", "region": "US-NW-BPAT", "gpu_capacity": 256, "pue": 1.1},
    {"id": "va-east", "region": "US-MIDA-PJM", "gpu_capacity": 512, "pue": 1.25},
)
WEST_SITES = ["ca-west", "or-hydro"]  # data residency: US west coast only
CENTRAL_EAST_SITES = ["va-east", "tx-central"]  # data residency: ads logs stay off the west coast

# Where each team's carbon-agnostic scheduler runs unrestricted jobs (site, weight).
TEAM_HOME_SITES: dict[str, tuple[tuple[str, float], ...]] = {
    "research": (("ca-west", 0.5), ("or-hydro", 0.3), ("va-east", 0.2)),
    "applied": (("va-east", 0.5), ("tx-central", 0.3), ("ca-west", 0.2)),
    "search": (("ca-west", 0.4), ("va-east", 0.4), ("tx-central", 0.2)),
    "ads": (("va-east", 0.5), ("tx-central", 0.5)),
}

# --- Synthetic day-ahead prices -------------------------------------------------------------------
# SYNTHETIC: no price data is embedded. The shape is a plausible wholesale day-ahead curve in
# local time (overnight low, morning ramp, evening peak, a midday solar dip where solar is large),
# scaled by a per-region level in USD/MWh, with 3 % seeded noise. Not a forecast of any market.
# region: (level USD/MWh, UTC offset of local standard time in hours, solar dip, evening peak)
PRICE_SHAPE: dict[str, tuple[float, int, float, float]] = {
    "US-CAL-CISO": (58.0, -8, 0.45, 0.80),
    "US-TEX-ERCO": (42.0, -6, 0.25, 1.00),
    "US-NW-BPAT": (36.0, -8, 0.10, 0.35),
    "US-MIDA-PJM": (52.0, -5, 0.05, 0.45),
}

# Name parts of the job ids, by kind ("train-llm-7b-01", "ft-ranker-03", ...).
JOB_NAMES: dict[str, tuple[str, ...]] = {
    "train": ("llm-3b", "llm-7b", "vit-l", "llm-13b"),
    "train-large": ("llm-13b", "llm-34b", "moe-8x7b"),
    "ft": ("code-assist", "support-bot", "ranker", "summarizer", "sql-gen", "translation"),
    "infer-batch": ("embeddings", "captions", "query-rewrite", "ctr-scores", "doc-summaries"),
    "eval": ("mmlu", "safety", "regression", "long-context", "humaneval", "multilingual"),
}


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _us_dst(day: date) -> bool:
    """Whether US daylight saving time is in effect on ``day`` (rule since 2007)."""
    march_first = date(day.year, 3, 1)
    second_sunday_march = march_first + timedelta(days=(6 - march_first.weekday()) % 7 + 7)
    november_first = date(day.year, 11, 1)
    first_sunday_november = november_first + timedelta(days=(6 - november_first.weekday()) % 7)
    return second_sunday_march <= day < first_sunday_november


def _price_per_mwh(region: str, day: date, rng: np.random.Generator) -> list[float]:
    """Synthetic day-ahead price for the 24 UTC hours of ``day`` (see PRICE_SHAPE)."""
    level, std_offset_h, solar_dip, evening_peak = PRICE_SHAPE[region]
    offset_h = std_offset_h + (1 if _us_dst(day) else 0)
    local_h = (np.arange(SLOTS) + 0.5 + offset_h) % 24

    def bump(centre_h: float, width_h: float) -> np.ndarray:
        distance = np.minimum(np.abs(local_h - centre_h), 24 - np.abs(local_h - centre_h))
        return np.exp(-0.5 * (distance / width_h) ** 2)

    shape = (
        0.75
        + 0.30 * bump(8.0, 2.0)
        + evening_peak * bump(19.0, 2.2)
        - solar_dip * bump(13.0, 2.5)
        - 0.10 * bump(3.5, 2.5)
    )
    noise = 1.0 + 0.03 * rng.standard_normal(SLOTS)
    return [round(float(v), 2) for v in np.maximum(level * shape * noise, 5.0)]


def _sample_duration_minutes(philly_gpus: int, rng: np.random.Generator) -> int:
    """Draw a duration from the Philly quantiles of the job's size bucket (log-linear)."""
    quantiles = next(q for low, q in reversed(PHILLY_DURATION_S_QUANTILES) if philly_gpus >= low)
    log_s = np.interp(rng.random(), PHILLY_DURATION_QUANTILE_LEVELS, np.log(quantiles))
    minutes = int(round(math.exp(float(log_s)) / 60.0))
    return min(max(minutes, MIN_DURATION_MINUTES), MAX_DURATION_MINUTES)


def _kind_and_team(gpus: int, rng: np.random.Generator) -> tuple[str, str]:
    if gpus >= 128:
        return "train", str(rng.choice(["research", "applied"], p=[0.75, 0.25]))
    if gpus >= 64:
        return "ft", str(rng.choice(["applied", "search", "ads"], p=[0.5, 0.25, 0.25]))
    if gpus >= 32:
        kind = str(rng.choice(["ft", "eval"]))
        return kind, str(rng.choice(["applied", "research"]))
    if rng.random() < 0.6:
        return "infer-batch", str(rng.choice(["search", "ads", "applied"], p=[0.4, 0.4, 0.2]))
    return "eval", str(rng.choice(["research", "applied"], p=[0.6, 0.4]))


def _job_name(kind: str, gpus: int, rng: np.random.Generator) -> str:
    # Bigger allocations train bigger models.
    names = JOB_NAMES["train-large" if kind == "train" and gpus >= 256 else kind]
    return str(rng.choice(names))


def _sites(day_start: datetime) -> list[dict[str, Any]]:
    sites = [dict(site) for site in SITES]
    solar_cf = typical_solar_cf("US-CAL-CISO", day_start, SLOTS, SLOT_MINUTES)
    sites[0]["renewable_kw"] = [round(float(CA_SOLAR_KWP * cf), 1) for cf in solar_cf]
    return sites


def _jobs(day_start: datetime, rng: np.random.Generator) -> list[dict[str, Any]]:
    size_values = np.array([g for g, _ in PHILLY_GPU_TIME_SHARE_BY_GPUS])
    size_p = np.array([p for _, p in PHILLY_GPU_TIME_SHARE_BY_GPUS])
    size_p = size_p / size_p.sum()
    horizon_h = SLOTS * SLOT_MINUTES // 60
    counters: dict[str, int] = {}
    drafts: list[dict[str, Any]] = []
    for _ in range(N_JOBS):
        philly_gpus = int(rng.choice(size_values, p=size_p))
        gpus = min(philly_gpus * GPU_SCALE, MAX_JOB_GPUS)
        duration_min = _sample_duration_minutes(philly_gpus, rng)
        kind, team = _kind_and_team(gpus, rng)
        counters[kind] = counters.get(kind, 0) + 1
        job_id = f"{kind}-{_job_name(kind, gpus, rng)}-{counters[kind]:02d}"

        # Window: whole hours from the first slot boundary at or after earliest_start, so the
        # job fits its window on the hourly grid too. Some deadlines are tight (0-2 h of
        # slack), most leave 6-20 h, all end within the horizon.
        duration_slots_h = math.ceil(duration_min / 60)
        tight = rng.random() < 0.2
        min_slack_h = 0 if tight else min(6, horizon_h - duration_slots_h)
        latest_start_h = horizon_h - duration_slots_h - min_slack_h
        start_min = int(rng.uniform(0, latest_start_h * 60) // 15 * 15)
        first_slot_h = math.ceil(start_min / 60)
        room_h = horizon_h - first_slot_h - duration_slots_h
        slack_h = int(rng.integers(0, 3)) if tight else int(rng.integers(6, 21))
        slack_h = min(slack_h, room_h)
        deadline_h = first_slot_h + duration_slots_h + slack_h

        if gpus <= 128 and team in ("research", "search") and rng.random() < 0.3:
            allowed = list(WEST_SITES)
        elif gpus <= 128 and team == "ads" and rng.random() < 0.5:
            allowed = list(CENTRAL_EAST_SITES)
        else:
            allowed = []
        homes = [(s, w) for s, w in TEAM_HOME_SITES[team] if not allowed or s in allowed]
        if not homes:
            homes = [(allowed[0], 1.0)]
        weights = np.array([w for _, w in homes])
        home = homes[int(rng.choice(len(homes), p=weights / weights.sum()))][0]

        job: dict[str, Any] = {
            "id": job_id,
            "team": team,
            "gpus": gpus,
            "power_kw": round(gpus * KW_PER_GPU * KIND_POWER_FACTOR[kind], 1),
            "duration_minutes": duration_min,
            "earliest_start": _rfc3339(day_start + timedelta(minutes=start_min)),
            "deadline": _rfc3339(day_start + timedelta(hours=deadline_h)),
        }
        if allowed:
            job["allowed_sites"] = allowed
        job["home_site"] = home
        job["interruptible"] = False
        job["priority"] = 2.0 if tight else (0.5 if kind == "eval" else 1.0)
        drafts.append(job)

    # About a third interruptible (checkpointed training, resumable batch work), each long
    # enough for at least two runs of min_run_minutes.
    eligible = [i for i, job in enumerate(drafts) if job["duration_minutes"] >= 120]
    n_interruptible = min(len(eligible), round(N_JOBS / 3))
    for i in sorted(rng.choice(eligible, size=n_interruptible, replace=False).tolist()):
        job = drafts[i]
        choices = [m for m in (60, 90, 120) if 2 * m <= job["duration_minutes"]]
        job["interruptible"] = True
        job["min_run_minutes"] = int(rng.choice(choices))
        job["priority"] = job.pop("priority")  # keep the proto's field order
    return drafts


def peak_gpu_share(jobs: list[dict[str, Any]], day_start: datetime, gpu_capacity: int) -> float:
    """Peak of the GPUs in use / ``gpu_capacity`` when every job runs from its earliest start.

    Jobs occupy whole hourly slots from the first slot boundary at or after earliest_start.
    """
    gpus_in_use = np.zeros(SLOTS)
    for job in jobs:
        start = datetime.fromisoformat(job["earliest_start"].replace("Z", "+00:00"))
        first_slot = math.ceil((start - day_start).total_seconds() / (SLOT_MINUTES * 60))
        n_slots = math.ceil(job["duration_minutes"] / SLOT_MINUTES)
        gpus_in_use[first_slot : first_slot + n_slots] += job["gpus"]
    return float(gpus_in_use.max()) / gpu_capacity


def _draw_jobs(
    day_start: datetime, gpu_capacity: int, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """Draw job lists until the run-now peak lies in PEAK_GPU_SHARE_BAND (else the closest)."""
    low, high = PEAK_GPU_SHARE_BAND
    best: list[dict[str, Any]] = []
    best_miss = math.inf
    for _ in range(MAX_DRAWS):
        jobs = _jobs(day_start, rng)
        peak = peak_gpu_share(jobs, day_start, gpu_capacity)
        miss = max(low - peak, peak - high, 0.0)
        if miss < best_miss:
            best, best_miss = jobs, miss
        if miss == 0.0:
            break
    return best


def demo_request(day: date | None = None, seed: int = 7) -> dict[str, Any]:
    """The JSON mapping of an OptimizeRequest for one realistic day of AI work.

    Horizon: 24 hourly slots from 00:00 UTC of ``day`` (default 2026-06-15). Four sites in four
    regions (``ca-west`` with on-site solar, ``tx-central`` with a power cap, ``or-hydro``,
    ``va-east``), one forecast per region (typical-day carbon intensity and a synthetic price),
    and ~60 jobs shaped like the Microsoft Philly trace. Objective: carbon only.

    Deterministic: the same ``day`` and ``seed`` give the same request. Nothing is solved.
    """
    day = day or DEFAULT_DAY
    day_start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    rng = np.random.default_rng(seed)
    sites = _sites(day_start)
    forecasts = [
        {
            "region": site["region"],
            "start": _rfc3339(day_start),
            "slot_minutes": SLOT_MINUTES,
            "carbon_intensity": [
                round(float(v), 1)
                for v in typical_intensity(site["region"], day_start, SLOTS, SLOT_MINUTES)
            ],
            "price_per_mwh": _price_per_mwh(site["region"], day, rng),
        }
        for site in sites
    ]
    jobs = _draw_jobs(day_start, sum(site["gpu_capacity"] for site in sites), rng)
    return {
        "horizon": {"start": _rfc3339(day_start), "slot_minutes": SLOT_MINUTES, "slots": SLOTS},
        "sites": sites,
        "jobs": jobs,
        "forecasts": forecasts,
        "objective": {"carbon_weight": 1.0},
        "options": {"time_limit_seconds": 30.0, "relative_gap": 0.01, "random_seed": seed},
    }
