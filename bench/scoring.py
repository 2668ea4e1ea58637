"""Benchmark of the batch scorer (optimizer.scoring) against a per-job Python loop.

    python bench/scoring.py [--device cpu|gpu|auto] [--sizes 1000,10000,100000]
                            [--scenarios 1,32] [--jobs 2000] [--max-seconds 30]

A synthetic problem (J jobs, 5 % of them interruptible, 4 sites, 96 hourly slots, renewables,
PUE, power caps) and B random candidates; for every B and scenario count Sc it reports
job-evaluations per second (B x J / s, and B x J x Sc / s) and the speed-up over a per-job
Python loop timed in the same run on a few candidates (per job-evaluation, extrapolated).
A size whose estimated time exceeds --max-seconds is skipped and listed as such.

On a GPU (--device gpu) it also reports achieved memory bandwidth as a share of the device's
peak (memoryClockRate x busWidth x 2 / 8). Bytes counted are the compulsory traffic: the
candidate arrays (site, start, run masks) read once, the scenario series read once per chunk
and the outputs written once; what the implementation moves in temporaries is not counted, so
the figure is a lower bound of the DRAM traffic and an honest measure of useful throughput.

Targets: NumPy >= 50x the loop; CuPy >= 50 % of peak memory bandwidth.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from gridshift.optimizer.parsing import parse_request
from gridshift.optimizer.problem import Problem, build_problem
from gridshift.optimizer.scoring import CandidateBatch, array_module, score
from gridshift.optimizer.scoring.scorer import DEFAULT_MAX_CHUNK_BYTES, MIB

N_SITES = 4
N_SLOTS = 96
INTERRUPTIBLE_SHARE = 0.05
LOOP_TARGET = 50.0
BANDWIDTH_TARGET = 0.5
START = datetime(2026, 6, 15, tzinfo=UTC)


def stamp(h: float) -> str:
    return (START + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ")


# ----------------------------------------------------------------------------- instance


def synthetic_problem(n_jobs: int, seed: int = 0) -> Problem:
    """J jobs over 4 sites and 96 hourly slots, built through the request parser."""
    rng = np.random.default_rng(seed)
    sites, forecasts = [], []
    for s in range(N_SITES):
        solar = np.clip(np.sin((np.arange(N_SLOTS) % 24 - 6) / 12 * np.pi), 0, None)
        sites.append({"id": f"s{s}", "region": f"R{s}", "gpu_capacity": 4000,
                      "pue": 1.1 + 0.1 * s, "power_cap_kw": 60000.0,
                      "renewable_kw": list(np.round(2000 * (s + 1) * solar, 3))})
        forecasts.append({"region": f"R{s}", "start": stamp(0), "slot_minutes": 60,
                          "carbon_intensity": list(rng.uniform(50, 500, N_SLOTS)),
                          "price_per_mwh": list(rng.uniform(20, 200, N_SLOTS))})
    jobs = [_synthetic_job(rng, j) for j in range(n_jobs)]
    request = {"horizon": {"start": stamp(0), "slot_minutes": 60, "slots": N_SLOTS},
               "sites": sites, "jobs": jobs, "forecasts": forecasts}
    return build_problem(parse_request(request))


def _synthetic_job(rng: np.random.Generator, j: int) -> dict:
    duration_h = int(rng.integers(1, 13))
    earliest = int(rng.integers(0, N_SLOTS - duration_h))
    job = {"id": f"j{j}", "gpus": int(rng.integers(1, 9)),
           "power_kw": float(rng.uniform(0.5, 6.0)), "duration_minutes": 60 * duration_h,
           "earliest_start": stamp(earliest), "deadline": stamp(N_SLOTS)}
    if rng.random() < 0.3:
        job["allowed_sites"] = [f"s{s}" for s in sorted(rng.choice(N_SITES, 2, False))]
    if rng.random() < INTERRUPTIBLE_SHARE:
        job.update(interruptible=True, min_run_minutes=60)
    return job


def synthetic_batch(problem: Problem, n: int, seed: int = 1, block: int = 8192
                    ) -> CandidateBatch:
    """n random candidates inside each job's window at an allowed site (int32 arrays)."""
    rng = np.random.default_rng(seed)
    n_jobs, n_sites = problem.n_jobs, problem.n_sites
    choices = np.zeros((n_jobs, n_sites), dtype=np.int32)       # allowed sites, padded
    n_choices = np.array([len(a) for a in problem.allowed_sites], dtype=np.int32)
    for j, sites in enumerate(problem.allowed_sites):
        choices[j, :len(sites)] = sites
    offset = np.arange(n_jobs, dtype=np.int32) * n_sites
    span = (problem.last_slot - problem.first_slot - problem.duration_slots + 1).astype(np.int32)
    site = np.empty((n, n_jobs), dtype=np.int32)
    start = np.empty((n, n_jobs), dtype=np.int32)
    for lo in range(0, n, block):
        draw = rng.integers(0, 1 << 30, (2, min(block, n - lo), n_jobs), dtype=np.int32)
        site[lo:lo + block] = choices.ravel()[offset + draw[0] % n_choices]
        start[lo:lo + block] = problem.first_slot.astype(np.int32) + draw[1] % span
    jobs = np.flatnonzero(problem.interruptible)
    slot = np.arange(problem.n_slots, dtype=np.int32)
    first = start[:, jobs, None]
    mask = (slot >= first) & (slot < first + problem.duration_slots[jobs, None].astype(np.int32))
    return CandidateBatch(site=site, start=start, run_mask=mask, interruptible_jobs=jobs)


def head(batch: CandidateBatch, n: int, xp: Any = np) -> CandidateBatch:
    """The first n candidates, on the array module's device."""
    return CandidateBatch(site=xp.asarray(batch.site[:n]), start=xp.asarray(batch.start[:n]),
                          run_mask=xp.asarray(batch.run_mask[:n]),
                          interruptible_jobs=np.asarray(batch.interruptible_jobs))


def scenarios(problem: Problem, n: int, seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return problem.ci_g_per_kwh[None] * rng.lognormal(0.0, 0.25, (n,) + problem.ci_g_per_kwh.shape)


# ----------------------------------------------------------------------------- the loop


def loop_emissions(problem: Problem, batch: CandidateBatch, ci: np.ndarray) -> np.ndarray:
    """Per-job Python loop baseline: emissions [B, Sc] of each candidate, job by job."""
    rows = {int(j): i for i, j in enumerate(batch.interruptible_jobs)}
    power, gpus = problem.power_kw.tolist(), problem.gpus.tolist()
    duration = problem.duration_slots.tolist()
    ci_flat = ci.reshape(ci.shape[0], -1).T
    out = np.zeros((batch.n_candidates, ci.shape[0]))
    for b in range(batch.n_candidates):
        it_kw = np.zeros((problem.n_sites, problem.n_slots))
        used = np.zeros((problem.n_sites, problem.n_slots))
        site, start = batch.site[b].tolist(), batch.start[b].tolist()
        for j in range(problem.n_jobs):
            s = site[j]
            if s < 0:
                continue
            if j in rows:
                slots = batch.run_mask[b, rows[j]]
                it_kw[s, slots] += power[j]
                used[s, slots] += gpus[j]
            else:
                it_kw[s, start[j]:start[j] + duration[j]] += power[j]
                used[s, start[j]:start[j] + duration[j]] += gpus[j]
        load = it_kw * problem.pue[:, None]
        grid = np.maximum(load - problem.renewable_kw, 0.0)
        out[b] = grid.ravel() @ ci_flat * problem.slot_hours / 1000.0
    return out


def loop_seconds_per_eval(problem: Problem, batch: CandidateBatch, ci: np.ndarray,
                          args: argparse.Namespace) -> tuple[float, float]:
    """Best of --repeat timings (wall, CPU) of the loop on a few candidates, per
    job-evaluation; checks that it agrees with the scorer."""
    small = head(batch, args.loop_candidates)
    times = best_seconds(lambda: loop_emissions(problem, small, ci), args.repeat, 10.0)
    got = score(problem, small, ci, device="cpu").emissions_kg
    if not np.allclose(got, loop_emissions(problem, small, ci), rtol=1e-9, atol=0):
        raise AssertionError("the loop baseline and the scorer disagree")
    evals = small.n_candidates * problem.n_jobs
    return times[0] / evals, times[1] / evals


# ----------------------------------------------------------------------------- GPU figures


# Spec-sheet peaks (bytes/s), used only when the device does not report clock and bus width.
SPEC_PEAK_BYTES_PER_S = {"H200": 4.8e12, "H100 80GB HBM3": 3.35e12, "H100 PCIe": 2.0e12,
                         "H100 NVL": 3.9e12, "A100-SXM4-80GB": 2.039e12,
                         "A100-PCIE-80GB": 1.935e12, "A100": 1.555e12, "L4": 0.3e12}


def peak_bandwidth_bytes_per_s(xp: Any) -> tuple[float | None, str]:
    """memoryClockRate (kHz) x busWidth (bits) x 2 (DDR) / 8, from CuPy's device attributes
    (or the device properties); else the spec-sheet figure for the device's name."""
    device = xp.cuda.Device()
    clock_khz = bus_bits = None
    try:
        attrs = device.attributes
        clock_khz, bus_bits = attrs.get("MemoryClockRate"), attrs.get("GlobalMemoryBusWidth")
    except Exception:  # an attribute this CUDA runtime no longer knows
        pass
    props = xp.cuda.runtime.getDeviceProperties(device.id)
    if not clock_khz or not bus_bits:
        clock_khz, bus_bits = props.get("memoryClockRate"), props.get("memoryBusWidth")
    if clock_khz and bus_bits:
        peak = clock_khz * 1e3 * bus_bits * 2 / 8
        return peak, f"{clock_khz / 1e6:.3f} GHz memory clock x {bus_bits}-bit bus x 2 / 8"
    name = props.get("name", b"")
    name = name.decode() if isinstance(name, bytes) else str(name)
    for key, peak in SPEC_PEAK_BYTES_PER_S.items():
        if key in name:
            return peak, f"spec sheet of {name} (clock/bus width not reported)"
    return None, f"{name}: memory clock / bus width not reported"


def compulsory_bytes(batch: CandidateBatch, n_scenarios: int, cells: int) -> int:
    """Bytes any scorer must move: the candidates and the series read once, results out."""
    inputs = batch.site.nbytes + batch.start.nbytes + batch.run_mask.nbytes
    series = (n_scenarios + 3) * cells * 8
    outputs = batch.n_candidates * (n_scenarios + 8) * 8
    return int(inputs + series + outputs)


def synchronize(xp: Any) -> None:
    if xp is not np:
        xp.cuda.Stream.null.synchronize()


# ----------------------------------------------------------------------------- main


@dataclass
class Row:
    n_candidates: int
    n_scenarios: int
    seconds: float | None
    evals_per_s: float | None = None
    cpu_evals_per_s: float | None = None
    speedup: float | None = None
    cpu_speedup: float | None = None
    bandwidth_share: float | None = None
    note: str = ""


def best_seconds(action, repeat: int, budget_s: float) -> tuple[float, float]:
    """Best wall and best process CPU time of up to `repeat` runs (fewer once `budget_s` of
    wall time is spent). CPU time is robust to other processes sharing the machine."""
    wall: list[float] = []
    cpu: list[float] = []
    while len(wall) < repeat and sum(wall) < budget_s:
        began, began_cpu = time.perf_counter(), time.process_time()
        action()
        wall.append(time.perf_counter() - began)
        cpu.append(time.process_time() - began_cpu)
    return min(wall), min(cpu)


def measure(problem: Problem, batch: CandidateBatch, ci: np.ndarray, xp: Any, device: str,
            args: argparse.Namespace, peak: float | None) -> Row:
    """Best of --repeat runs of the scorer on `batch` (already on the device)."""
    def action() -> None:
        result = score(problem, batch, ci, device=device,
                       max_chunk_bytes=args.max_chunk_mib * MIB)
        synchronize(xp)
        assert result.emissions_kg.shape == (batch.n_candidates, ci.shape[0])

    seconds, cpu_seconds = best_seconds(action, args.repeat, args.max_seconds / 3)
    n = batch.n_candidates
    row = Row(n, ci.shape[0], seconds, evals_per_s=n * problem.n_jobs / seconds,
              cpu_evals_per_s=n * problem.n_jobs / cpu_seconds)
    if peak:
        moved = compulsory_bytes(batch, ci.shape[0], problem.n_sites * problem.n_slots)
        row.bandwidth_share = moved / seconds / peak
    return row


def run(args: argparse.Namespace) -> int:
    xp, device = array_module(args.device)
    problem = synthetic_problem(args.jobs)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    batch = synthetic_batch(problem, max(sizes))
    peak, peak_note = peak_bandwidth_bytes_per_s(xp) if device == "gpu" else (None, "")
    if device == "gpu" and args.peak_gbps:
        peak, peak_note = args.peak_gbps * 1e9, "--peak-gbps"
    rows, loop_s = [], {}
    for n_scenarios in sorted(int(s) for s in args.scenarios.split(",")):
        ci = scenarios(problem, n_scenarios)
        loop_s[n_scenarios] = loop_seconds_per_eval(problem, batch, ci, args)
        rows += rows_for(problem, batch, ci, sizes, xp, device, args, peak)
        wall_s, cpu_s = loop_s[n_scenarios]
        for row in rows[-len(sizes):]:
            if row.evals_per_s:
                row.speedup, row.cpu_speedup = row.evals_per_s * wall_s, row.cpu_evals_per_s * cpu_s
    print_report(args, problem, device, rows, loop_s, peak, peak_note)
    return 0


def rows_for(problem: Problem, batch: CandidateBatch, ci: np.ndarray, sizes: list[int],
             xp: Any, device: str, args: argparse.Namespace, peak: float | None) -> list[Row]:
    """One row per size for one scenario count; sizes estimated to be too slow are skipped."""
    score(problem, head(batch, min(sizes), xp), ci, device=device,
          max_chunk_bytes=args.max_chunk_mib * MIB)                        # warm-up
    rows, rate = [], None
    for n in sizes:
        estimate = n * problem.n_jobs / rate if rate else 0.0
        if estimate > args.max_seconds:
            rows.append(Row(n, ci.shape[0], None,
                            note=f"skipped: ~{estimate:.0f} s > {args.max_seconds:g} s"))
            continue
        rows.append(measure(problem, head(batch, n, xp), ci, xp, device, args, peak))
        rate = rows[-1].evals_per_s
    return rows


def print_report(args, problem: Problem, device: str, rows: list[Row],
                 loop_s: dict[int, tuple[float, float]], peak: float | None,
                 peak_note: str) -> None:
    n_int = int(problem.interruptible.sum())
    print(f"\nscorer benchmark: device={device}, J={problem.n_jobs} jobs ({n_int} interruptible),"
          f" S={problem.n_sites} sites, T={problem.n_slots} slots, max_chunk_bytes="
          f"{args.max_chunk_mib} MiB{' (CPU: capped at 8 MiB)' if device == 'cpu' else ''}, "
          f"best of {args.repeat}")
    for sc, (wall_s, cpu_s) in loop_s.items():
        print(f"per-job Python loop (Sc={sc}): {1 / wall_s:,.0f} job-evals/s "
              f"({wall_s * 1e6:.2f} us wall, {cpu_s * 1e6:.2f} us CPU per job-eval; timed on "
              f"{args.loop_candidates} candidates)")
    if peak:
        print(f"GPU peak memory bandwidth: {peak / 1e9:,.0f} GB/s ({peak_note})")
    elif device == "gpu":
        print(f"GPU peak memory bandwidth unknown: {peak_note}")
    print()
    columns = ["B", "Sc", "seconds", "job-evals/s (B×J)", "B×J×Sc /s", "× loop (wall)"]
    columns += ["× loop (CPU time)"] if device == "cpu" else []
    columns += ["bandwidth (% of peak)"] if peak else []
    print("| " + " | ".join(columns + ["note"]) + " |")
    print("|" + "---:|" * len(columns) + "---|")
    for r in rows:
        print(_row_text(r, device, peak))
    print()
    _print_targets(rows, peak)


def _print_targets(rows: list[Row], peak: float | None) -> None:
    ok = [r.speedup >= LOOP_TARGET for r in rows if r.speedup is not None]
    print(f"target ≥ {LOOP_TARGET:.0f}× the loop (wall): "
          f"{'met' if ok and all(ok) else 'NOT met'} ({sum(ok)}/{len(ok)} rows)")
    if peak:
        share = [r.bandwidth_share for r in rows if r.bandwidth_share is not None]
        best = max(share) if share else 0.0
        print(f"target ≥ {BANDWIDTH_TARGET:.0%} of peak bandwidth: "
              f"{'met' if best >= BANDWIDTH_TARGET else 'NOT met'} (best {best:.1%})")


def _row_text(r: Row, device: str, peak: float | None) -> str:
    n_cells = 4 + (device == "cpu") + bool(peak)
    cells = [""] * n_cells
    if r.seconds is not None:
        cells = [f"{r.seconds:.3f}", f"{r.evals_per_s:,.0f}",
                 f"{r.evals_per_s * r.n_scenarios:,.0f}", f"{r.speedup:,.0f}×"]
        cells += [f"{r.cpu_speedup:,.0f}×"] if device == "cpu" else []
        cells += [f"{100 * r.bandwidth_share:.1f} %"] if peak else []
    return f"| {r.n_candidates:,} | {r.n_scenarios} | " + " | ".join(cells) + f" | {r.note} |"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, choices=["auto", "cpu", "gpu"],
                        help="default: $GRIDSHIFT_DEVICE, else auto")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--sizes", default="1000,10000,100000", help="candidate counts B")
    parser.add_argument("--scenarios", default="1,32", help="scenario counts Sc")
    parser.add_argument("--max-seconds", type=float, default=30.0,
                        help="skip a size whose estimated time exceeds this")
    parser.add_argument("--loop-candidates", type=int, default=10,
                        help="candidates the Python loop baseline is timed on")
    parser.add_argument("--max-chunk-mib", type=int, default=DEFAULT_MAX_CHUNK_BYTES // MIB,
                        help="the scorer's max_chunk_bytes, in MiB")
    parser.add_argument("--repeat", type=int, default=3,
                        help="best of this many runs per row (fewer for slow rows)")
    parser.add_argument("--peak-gbps", type=float, default=None,
                        help="GPU peak memory bandwidth in GB/s (default: from the device)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(run(parse_args()))
