"""A day of AI jobs carried out by the Slurm agent on a real one-node Slurm cluster, 60 times
faster than life, and the agent's overhead per sync with 1,000 pending jobs.

**Replay.** One real minute is one hour of the day: a slot of the agent's plan is one minute,
a job's hours are minutes, the carbon intensity of each minute is that hour's real intensity
(EIA-930 2022 hourly series of two regions; the embedded typical days where ../shared/data is
absent). Jobs are a seeded sample of one day of the Philly GPU trace (at most 4 GPUs, 1-6 h,
a 12-hour window to finish), submitted held with the gridshift marker at their arrival, to
partitions ``west,east`` (the first is their home site). The agent syncs every few seconds
with the actual intensities as its forecast (this measures carrying plans out, not
forecasting). Figures: emissions as run (from Slurm's job-completion log: each job's real
start, end and partition, minute by minute) against the same jobs run in submission order at
their home site (the design's FIFO baseline on the same problem), and jobs moved per re-plan.

**Overhead.** 1,000 held jobs (1 GPU, 60 min) pending; one sync with 15-minute slots over
24 h: seconds reading Slurm, planning (the solver's limit included), applying (scontrol),
and a second sync with nothing new.

Needs root and Debian's slurm-wlm and munge (``make test`` installs them):
``python bench/slurm_day.py [--jobs 24] [--seed 1] [--skip-overhead]``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "bench")]

from instances import SHARED_DATA, _series  # noqa: E402
from slurm_cluster import ClusterUnavailable, start_cluster  # noqa: E402

from gridshift.adapters.slurm import SlurmClient  # noqa: E402
from gridshift.app.slurm_sync import SlurmSync, sites_of  # noqa: E402
from gridshift.bootstrap import build_app  # noqa: E402
from gridshift.optimizer.baseline import fifo_baseline  # noqa: E402
from gridshift.settings import load_settings  # noqa: E402

REGIONS = {"west": "US-CAL-CISO", "east": "US-MIDA-PJM"}
DAY = datetime(2022, 5, 10, tzinfo=UTC)
GPU_POWER_KW, PUE, GPUS_PER_SITE = 0.5, 1.2, 4
SITES = [{"id": site, "region": region, "gpu_capacity": GPUS_PER_SITE, "pue": PUE,
          "gpu_power_kw": GPU_POWER_KW} for site, region in REGIONS.items()]


@dataclass
class DayJob:
    arrival_h: float
    hours: int
    gpus: int
    home: str
    slurm_id: str = ""


def day_jobs(n: int, seed: int) -> list[DayJob]:
    """A seeded sample of a day of the Philly trace (or seeded synthetic jobs without it)."""
    rng = np.random.default_rng(seed)
    if SHARED_DATA.exists():
        from gridshift.adapters.datasets import load_trace

        trace = load_trace(SHARED_DATA)
        day = trace[(trace.arrival >= "2017-10-23") & (trace.arrival < "2017-10-24")
                    & (trace.duration_s >= 1800)]
        rows = day.iloc[np.sort(rng.choice(len(day), size=min(n, len(day)), replace=False))]
        arrivals = [(t - t.normalize()).total_seconds() / 3600 for t in rows.arrival]
        hours = [min(6, max(1, math.ceil(d / 3600))) for d in rows.duration_s]
        gpus = [min(GPUS_PER_SITE, int(g)) for g in rows.gpus]
    else:
        arrivals = sorted(rng.uniform(0, 20, n))
        hours = list(rng.integers(1, 7, n))
        gpus = list(rng.choice([1, 2, 4], n))
    return [DayJob(a, h, g, "west" if k % 2 == 0 else "east")
            for k, (a, h, g) in enumerate(zip(arrivals, hours, gpus, strict=True))]


def intensity() -> dict[str, list[float]]:
    """gCO2e/kWh per hour of the day and the three after it, per site."""
    return {site: _series(region, DAY, 96) for site, region in REGIONS.items()}


# -- the replay ----------------------------------------------------------------------------

def replay(cluster, jobs: list[DayJob], ci: dict[str, list[float]], sync_every_s: float,
           time_limit_s: float) -> tuple[dict, dict]:
    """Run the day; Slurm's runs by job id and per-sync move counts."""
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    forecasts = [{"region": REGIONS[s], "start": t0.strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "slot_minutes": 1, "carbon_intensity": ci[s]} for s in REGIONS]
    app = build_app(load_settings(), store=None)
    from gridshift.app.scheduler_plans import planner_plan

    agent = SlurmSync(SlurmClient(slurm_conf=cluster.conf), sites_of(SITES),
                      planner_plan(app.planner, "slurm"), slot_minutes=1, hours=1,
                      time_limit_s=time_limit_s, forecasts=forecasts)
    while datetime.now(UTC) < t0:
        time.sleep(0.5)
    placed: dict[str, tuple[str, datetime]] = {}
    moves: list[int] = []
    pending = list(jobs)
    last_sync = 0.0
    print(f"replaying {len(jobs)} jobs from {t0:%H:%M:%S} UTC (1 min = 1 h)", file=sys.stderr)
    while pending or _active(cluster, jobs):
        hour = (datetime.now(UTC) - t0).total_seconds() / 60
        while pending and pending[0].arrival_h <= hour:
            _submit(cluster, pending.pop(0), t0)
        if time.monotonic() - last_sync >= sync_every_s:
            last_sync = time.monotonic()
            outcome = agent.sync()
            moved = 0
            for d in outcome.decisions:
                if d.action == "moved" and d.start is not None:
                    if d.job_id in placed and placed[d.job_id] != (d.partition, d.start):
                        moved += 1
                    placed[d.job_id] = (d.partition, d.start)
            if outcome.plan_id:
                moves.append(moved)
        if hour > 60:
            raise RuntimeError("the replay did not finish in 60 minutes")
        time.sleep(1.0)
    runs = {r.job_id: r for r in SlurmClient(slurm_conf=cluster.conf).runs(cluster.jobcomp_log)}
    return {"t0": t0, "runs": runs, "placed": placed}, {"moves": moves}


def _submit(cluster, job: DayJob, t0: datetime) -> None:
    other = "east" if job.home == "west" else "west"
    deadline = t0 + timedelta(minutes=job.arrival_h + job.hours + 12)
    job.slurm_id = cluster.submit(
        "--hold", "--comment=gridshift", f"--gres=gpu:{job.gpus}",
        f"--partition={job.home},{other}", f"--time={job.hours}",
        f"--deadline={deadline.astimezone().strftime('%Y-%m-%dT%H:%M:%S')}",
        wrap=f"sleep {job.hours * 60 - 4}")


def _active(cluster, jobs: list[DayJob]) -> bool:
    ids = {j.slurm_id for j in jobs if j.slurm_id}
    return any(j.job_id in ids for j in SlurmClient(slurm_conf=cluster.conf).jobs())


# -- emissions -----------------------------------------------------------------------------

def kg(site: str, start_h: float, end_h: float, gpus: int, ci: dict[str, list[float]]) -> float:
    """kg CO2e of a job on ``site`` from hour ``start_h`` to ``end_h`` of the day (fractional
    hours at each hour's intensity)."""
    total = 0.0
    for k in range(math.floor(start_h), math.ceil(end_h)):
        overlap_h = min(end_h, k + 1) - max(start_h, k)
        total += gpus * GPU_POWER_KW * PUE * overlap_h * ci[site][k] / 1000
    return total


def fifo_kg(jobs: list[DayJob], ci: dict[str, list[float]]) -> dict[int, float]:
    """The design's baseline (submission order, home site, capacity kept) on the same jobs:
    kg CO2e per job (by index in ``jobs``)."""
    request = {"horizon": {"start": DAY.strftime("%Y-%m-%dT%H:%M:%SZ"), "slot_minutes": 60,
                           "slots": 96},
               "sites": [{k: v for k, v in s.items() if k != "gpu_power_kw"} for s in SITES],
               "jobs": [{"id": f"j{k}", "gpus": j.gpus, "power_kw": j.gpus * GPU_POWER_KW,
                         "duration_minutes": 60 * j.hours, "home_site": j.home,
                         "allowed_sites": [j.home],
                         "earliest_start": (DAY + timedelta(hours=math.ceil(j.arrival_h)))
                         .strftime("%Y-%m-%dT%H:%M:%SZ")} for k, j in enumerate(jobs)],
               "forecasts": [{"region": REGIONS[s], "slot_minutes": 60,
                              "carbon_intensity": ci[s]} for s in REGIONS]}
    app = build_app(load_settings(), store=None)
    problem = app.planner.prepare(request)
    plan = fifo_baseline(problem)
    out = {}
    for j, placement in plan.placements.items():
        job = jobs[j]
        first = placement.start_slot
        out[j] = kg(problem.site_ids[placement.site], first, first + job.hours, job.gpus, ci)
    return out


def as_run_kg(jobs: list[DayJob], result: dict, ci: dict[str, list[float]]) -> dict[int, float]:
    """kg CO2e per completed job (by index in ``jobs``), from Slurm's record of its run."""
    t0, runs = result["t0"], result["runs"]
    out = {}
    for j, job in enumerate(jobs):
        run = runs.get(job.slurm_id)
        if run is None or run.state != "COMPLETED":
            continue
        start_h = (run.start - t0).total_seconds() / 60
        end_h = (run.end - t0).total_seconds() / 60
        out[j] = kg(run.partition, start_h, end_h, job.gpus, ci)
    return out


# -- overhead ------------------------------------------------------------------------------

def overhead(cluster, n: int, time_limit_s: float) -> dict[str, float]:
    now = datetime.now(UTC)
    deadline = (now + timedelta(days=3)).astimezone().strftime("%Y-%m-%dT%H:%M:%S")
    t = time.perf_counter()
    for _ in range(n):
        cluster.submit("--hold", "--comment=gridshift", "--gres=gpu:1",
                       "--partition=west,east", "--time=60", f"--deadline={deadline}",
                       wrap="sleep 3600")   # jobs started by the first sync keep running
    submit_s = time.perf_counter() - t
    client = SlurmClient(slurm_conf=cluster.conf)
    timed = {"read_s": 0.0, "plan_s": 0.0}
    original_jobs = client.jobs

    def timed_jobs(*args, **kwargs):
        t = time.perf_counter()
        try:
            return original_jobs(*args, **kwargs)
        finally:
            timed["read_s"] += time.perf_counter() - t

    client.jobs = timed_jobs
    app = build_app(load_settings(), store=None)
    from gridshift.app.scheduler_plans import planner_plan

    plan = planner_plan(app.planner, "slurm")

    def timed_plan(request):
        t = time.perf_counter()
        try:
            return plan(request)
        finally:
            timed["plan_s"] += time.perf_counter() - t

    ci = intensity()
    start = now.replace(minute=0, second=0, microsecond=0)
    forecasts = [{"region": REGIONS[s], "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "slot_minutes": 60, "carbon_intensity": ci[s]} for s in REGIONS]
    agent = SlurmSync(client, sites_of(SITES), timed_plan, slot_minutes=15, hours=24,
                      time_limit_s=time_limit_s, forecasts=forecasts)
    t = time.perf_counter()
    first = agent.sync()
    total_s = time.perf_counter() - t
    out = {"jobs": n, "submit_s": submit_s, "sync_s": total_s, **timed,
           "apply_s": total_s - timed["read_s"] - timed["plan_s"],
           "moved": first.count("moved"), "left": first.count("left")}
    timed.update(read_s=0.0, plan_s=0.0)
    t = time.perf_counter()
    second = agent.sync()
    out["second_sync_s"] = time.perf_counter() - t
    out["second_plan_s"] = timed["plan_s"]
    out["second_changed"] = second.count("moved") + second.count("released")
    out["second_actions"] = dict(Counter(d.action for d in second.decisions))
    moved = [d for d in second.decisions if d.action == "moved"][:3]
    out["second_sample"] = [(d.job_id, d.partition, f"{d.start:%H:%M}", d.commands)
                            for d in moved]
    cluster.run("scancel", "--user=root", check=False)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=24, help="jobs in the replayed day")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sync-every", type=float, default=10.0, metavar="S")
    parser.add_argument("--time-limit", type=float, default=5.0, metavar="S",
                        help="solver limit per sync in the replay (default 5)")
    parser.add_argument("--overhead-jobs", type=int, default=1000)
    parser.add_argument("--skip-replay", action="store_true")
    parser.add_argument("--skip-overhead", action="store_true")
    args = parser.parse_args()
    try:
        cluster = start_cluster()
    except ClusterUnavailable as exc:
        print(f"no Slurm cluster: {exc}", file=sys.stderr)
        return 1
    try:
        if not args.skip_replay:
            _print_replay(cluster, args)
        if not args.skip_overhead:
            o = overhead(cluster, args.overhead_jobs, 10.0)
            print(f"\nagent overhead, {o['jobs']:,} pending jobs (15-min slots, 24 h, solver "
                  f"limit 10 s): sync {o['sync_s']:.1f} s = read {o['read_s']:.1f} s + plan "
                  f"{o['plan_s']:.1f} s + apply {o['apply_s']:.1f} s ({o['moved']} jobs set, "
                  f"{o['left']} left as they are); second sync with nothing new "
                  f"{o['second_sync_s']:.1f} s (plan {o['second_plan_s']:.1f} s, "
                  f"{o['second_changed']} changed); submitting them took {o['submit_s']:.0f} s")
            print(f"second sync's decisions: {o['second_actions']}; e.g. {o['second_sample']}")
    finally:
        cluster.stop()
    return 0


def _print_replay(cluster, args: argparse.Namespace) -> None:
    jobs = day_jobs(args.jobs, args.seed)
    ci = intensity()
    source = "EIA-930 2022" if SHARED_DATA.exists() else "embedded typical days"
    gpu_h = sum(j.gpus * j.hours for j in jobs)
    print(f"{len(jobs)} jobs, {gpu_h} GPU-h on 2 × {GPUS_PER_SITE} GPUs; intensity {source} "
          f"({', '.join(f'{s}={r}' for s, r in REGIONS.items())}), {DAY:%Y-%m-%d}")
    t = time.perf_counter()
    result, stats = replay(cluster, jobs, ci, args.sync_every, args.time_limit)
    wall_min = (time.perf_counter() - t) / 60
    fifo = fifo_kg(jobs, ci)
    ran = as_run_kg(jobs, result, ci)
    common = sorted(set(ran) & set(fifo))     # compared on the jobs both ran
    ran_kg, fifo_total_kg = sum(ran[j] for j in common), sum(fifo[j] for j in common)
    print(f"emissions as run (Slurm's records): {ran_kg:.1f} kg CO2e; submission order at home: "
          f"{fifo_total_kg:.1f} kg CO2e; saving {100 * (1 - ran_kg / fifo_total_kg):.1f} % "
          f"(on the {len(common)} jobs both completed; {wall_min:.0f} min wall)")
    for j, job in enumerate(jobs):
        if j not in ran:
            run = result["runs"].get(job.slurm_id)
            print(f"  job {job.slurm_id} ({job.gpus} GPUs, {job.hours} h, arrived hour "
                  f"{job.arrival_h:.1f}): {run.state if run else 'no record'}")
    moves = stats["moves"]
    print(f"re-plans: {len(moves)}; jobs moved per re-plan: mean {np.mean(moves or [0]):.2f}, "
          f"max {max(moves or [0])} (of {len(jobs)} jobs)")


if __name__ == "__main__":
    sys.exit(main())
