"""Oversubscribed nights: more GPU-hours asked for than the sites have.

The generator (:func:`oversubscribed_request`, also used by tests/test_oversubscribed.py) makes
a day of 15-minute slots at a few sites whose GPU capacity covers only ``1 / demand_ratio`` of
the GPU-hours the jobs ask for; ``options.allow_partial`` is set, so the plan leaves jobs out.
Run as a script, it plans instances with `gridshift plan --time-limit L` (the real command, in
a subprocess) and prints, per seed: wall time against the limit, the size of stderr, how many
jobs the plan and the FIFO baseline place (and their facility energy), the savings on the jobs
both place, and whether the plan passes the independent checker.

    .venv/bin/python bench/oversubscribed.py [--seeds 1 2 3] [--time-limit 10]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from instances import REGIONS, _series  # noqa: E402

GPU_SIZES = (1, 2, 4, 8)
GPU_WEIGHTS = (0.3, 0.3, 0.25, 0.15)


def oversubscribed_request(seed: int = 1, jobs: int = 300, sites: int = 3, slots: int = 96,
                           slot_minutes: int = 15, demand_ratio: float = 1.7,
                           time_limit_s: float = 10.0) -> dict:
    """An OptimizeRequest (JSON-mapping dict) whose jobs ask for ``demand_ratio`` times the
    GPU-slots the sites have over the horizon; durations 30 min to 8 h, windows from tight to
    the whole day, a fifth of the jobs bound to two sites, a quarter interruptible."""
    rng = np.random.default_rng(seed)
    start = datetime(2022, 6, 13, tzinfo=UTC)
    step = timedelta(minutes=slot_minutes)
    out_jobs, demand = [], 0.0
    for i in range(jobs):
        gpus = int(rng.choice(GPU_SIZES, p=GPU_WEIGHTS))
        duration = int(np.clip(rng.lognormal(math.log(8), 0.7), 2, 32))
        first = int(rng.integers(0, slots - duration + 1))
        slack = int(rng.integers(0, slots - first - duration + 1))
        job = {"id": f"job-{i:04d}", "team": ("research", "applied", "eval")[i % 3],
               "gpus": gpus, "power_kw": round(gpus * float(rng.uniform(0.55, 0.8)), 3),
               "duration_minutes": duration * slot_minutes,
               "earliest_start": _ts(start + first * step),
               "deadline": _ts(start + (first + duration + slack) * step)}
        if rng.random() < 0.25 and duration >= 4:
            job["interruptible"] = True
            job["min_run_minutes"] = 2 * slot_minutes
        if rng.random() < 0.2 and sites > 2:
            picks = rng.choice(sites, size=2, replace=False)
            job["allowed_sites"] = [f"site-{int(s)}" for s in picks]
        demand += gpus * duration
        out_jobs.append(job)
    capacity = max(8, round(demand / demand_ratio / (sites * slots)))
    regions = [REGIONS[s % len(REGIONS)] for s in range(sites)]
    hours = math.ceil(slots * slot_minutes / 60)
    return {
        "horizon": {"start": _ts(start), "slot_minutes": slot_minutes, "slots": slots},
        "sites": [{"id": f"site-{s}", "region": regions[s], "gpu_capacity": capacity,
                   "pue": 1.2} for s in range(sites)],
        "jobs": out_jobs,
        "forecasts": [{"region": r, "start": _ts(start), "slot_minutes": 60,
                       "carbon_intensity": _series(r, start, hours)}
                      for r in dict.fromkeys(regions)],
        "options": {"allow_partial": True, "time_limit_seconds": time_limit_s},
    }


def _ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def run_cli(request: dict, time_limit_s: float, folder: Path) -> dict:
    """`gridshift plan --time-limit` on the request: wall time, exit code, stderr, response."""
    path = folder / "request.json"
    path.write_text(json.dumps(request))
    command = [sys.executable, "-m", "gridshift.cli", "plan", str(path), "--time-limit",
               str(time_limit_s), "--no-store", "-o", str(folder / "plan.json")]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - started
    response = json.loads((folder / "plan.json").read_text()) if done.returncode == 0 else {}
    return {"wall_s": wall, "code": done.returncode, "stderr": done.stderr,
            "response": response}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--jobs", type=int, default=300)
    args = parser.parse_args()
    print(f"# oversubscribed: {args.jobs} jobs, 3 sites, 96 x 15-min slots, demand 1.7x "
          f"capacity, allow_partial, --time-limit {args.time_limit:g}")
    print("| seed | wall s | stderr KB | plan jobs (kWh) | baseline jobs (kWh) | common jobs | "
          "plan kg | baseline kg | saves on common jobs | status |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for seed in args.seeds:
        request = oversubscribed_request(seed, jobs=args.jobs, time_limit_s=args.time_limit)
        with tempfile.TemporaryDirectory() as folder:
            run = run_cli(request, args.time_limit, Path(folder))
        r = run["response"]
        basis = r.get("savings_basis", {})
        print(f"| {seed} | {run['wall_s']:.1f} | {len(run['stderr'].encode()) / 1024:.1f} | "
              f"{len(r.get('assignments', []))} ({basis.get('plan_energy_kwh', 0):,.0f}) | "
              f"{basis.get('baseline_jobs', 0)} ({basis.get('baseline_energy_kwh', 0):,.0f}) | "
              f"{basis.get('common_jobs', 0)} | {basis.get('plan_emissions_kg', 0):,.1f} | "
              f"{basis.get('baseline_emissions_kg', 0):,.1f} | "
              f"{r.get('savings_kg', 0):,.1f} kg ({r.get('savings_pct', 0):.1f} %) | "
              f"{r.get('status', 'exit ' + str(run['code']))} |", flush=True)


if __name__ == "__main__":
    main()
