"""Batch scoring of candidate schedules under forecast scenarios (NumPy or CuPy).

For every candidate b and carbon-intensity scenario c this computes the exact figures of
docs/architecture.md:

    load_kw[b,s,t]  = pue_s * Σ power_kw of the jobs running at s in slot t
    grid_kw[b,s,t]  = max(0, load_kw[b,s,t] - renewable_kw[s,t])
    emissions[b,c]  = Σ_s Σ_t grid_kw[b,s,t] * slot_hours * ci[c,s,t] / 1000
    cost[b]         = Σ_s Σ_t grid_kw[b,s,t] * slot_hours * price[s,t] / 1000

and the constraint violations of each candidate. Site loads are accumulated without a Python
loop over jobs, candidates or scenarios: every run of a job (a contiguous job is one run; the
runs of a run-mask job are found from the mask's rising and falling edges) adds +power at its
first slot and -power one past its last into a difference array, by `bincount` over flattened
(candidate, site, slot) indices, and a cumulative sum over slots gives the load. GPUs in use
are accumulated the same way (exactly: they are integers), and a slot where no job runs has a
load of exactly zero. Scenarios enter through one matrix product of the grid draw [B, S*T] with
the stacked carbon-intensity series [S*T, Sc]. Candidates are processed in chunks so that
memory stays bounded for any B.

Results do not depend on the chunk size except for the rounding of that matrix product
(BLAS may order its sums differently for different chunk sizes: ~1e-16 relative).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from gridshift.optimizer.problem import Problem
from gridshift.optimizer.scoring.candidates import CandidateBatch
from gridshift.optimizer.scoring.device import array_module, to_numpy
from gridshift.optimizer.scoring.risk import risk_measures

MIB = 1 << 20
DEFAULT_MAX_CHUNK_BYTES = 256 * MIB
# The CPU works best when a chunk's temporaries stay in cache-sized pieces.
CPU_CHUNK_BYTES = 8 * MIB
# Same tolerance as the independent checker: a load above the cap by more is a violation.
POWER_TOLERANCE_KW = 1e-6


@dataclass(frozen=True)
class Scores:
    """Per-candidate figures (NumPy arrays; B candidates, Sc scenarios)."""

    emissions_kg: np.ndarray        # [B, Sc]
    cost: np.ndarray                # [B], currency units
    energy_kwh: np.ndarray          # [B], facility energy
    grid_energy_kwh: np.ndarray     # [B]
    gpu_overuse: np.ndarray         # [B] int, GPU-slots above capacity, summed over sites/slots
    power_overuse_kwh: np.ndarray   # [B], energy above the power caps (beyond the tolerance)
    window_violations: np.ndarray   # [B] int, jobs placed outside their rules (see score)
    unscheduled: np.ndarray         # [B] int, jobs not scheduled (not a violation)
    feasible: np.ndarray            # [B] bool
    device: str                     # "cpu" or "gpu": where it was computed

    def risk(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(expected, P90, CVaR95) emissions in kg per candidate; see `risk_measures`."""
        return risk_measures(self.emissions_kg)


def score(problem: Problem, batch: CandidateBatch,
          ci_scenarios_g_per_kwh: Any | None = None, *, device: str | None = None,
          chunk_size: int | None = None, max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
          ) -> Scores:
    """Score every candidate of `batch` under every scenario.

    `ci_scenarios_g_per_kwh` is [Sc, S, T] (gCO2e/kWh); None scores the problem's own series
    (Sc = 1). `device` is auto|cpu|gpu (None: auto). Candidates are
    processed `chunk_size` at a time; by default as many as fit in `max_chunk_bytes` of
    temporaries (on the CPU at most `CPU_CHUNK_BYTES`, which is faster).

    `window_violations` counts the placed jobs that break a placement rule: a site that is not
    allowed (or does not exist), a slot outside the job's window, a number of slots other than
    `duration_slots`, or a run shorter than `min_run_slots` (for a non-interruptible job in a
    run mask: more than one run). `feasible` means no window violation, no GPU over-use and no
    load above a power cap by more than `POWER_TOLERANCE_KW` — the checker's verdict.
    """
    batch.check_matches(problem)
    xp, device_name = array_module(device)
    prepared = _Prepared(xp, problem, batch, ci_scenarios_g_per_kwh)
    rows = (chunk_size if chunk_size is not None
            else _auto_chunk_size(prepared, device_name, max_chunk_bytes))
    if rows < 1:
        raise ValueError(f"chunk_size must be >= 1, got {rows}")
    n = batch.n_candidates
    rows = min(rows, max(n, 1))
    prepared.set_rows(rows, _index_dtype(batch, rows, prepared.cells, problem.n_jobs))
    parts = [_score_chunk(xp, prepared, batch, lo, min(n, lo + rows))
             for lo in range(0, n, rows)]
    return _assemble(parts, n, prepared.n_scenarios, device_name)


class _Prepared:
    """The problem's arrays on the device.

    Every job goes through the contiguous path (site rules, and for contiguous jobs the window
    and the load); there, jobs with run masks get a zero duration and an open window, and the
    run-mask path handles their runs, window and load.
    """

    def __init__(self, xp: ModuleType, problem: Problem, batch: CandidateBatch,
                 ci_scenarios: Any | None) -> None:
        self.xp = xp
        self.n_sites, self.n_slots, self.n_jobs = problem.n_sites, problem.n_slots, problem.n_jobs
        self.slot_hours = problem.slot_hours
        masked = np.asarray(to_numpy(batch.interruptible_jobs), dtype=np.int64)
        self.masked_cols = xp.asarray(masked)
        self.masked = _MaskedJobs(xp, problem, masked)
        self.contiguous = _ContiguousJobs(problem, masked)
        self.pue = xp.asarray(problem.pue, dtype=float)[None, :, None]
        self.renewable_kw = xp.asarray(problem.renewable_kw, dtype=float)[None]
        self.gpu_capacity = xp.asarray(problem.gpu_capacity, dtype=float)[None]
        self.power_cap_kw = xp.asarray(problem.power_cap_kw, dtype=float)[None, :, None]
        ci = _scenarios(problem, ci_scenarios)
        self.n_scenarios = ci.shape[0]
        self.ci_flat = xp.asarray(ci.reshape(ci.shape[0], -1).T.copy())   # [S*T, Sc]
        self.price_flat = xp.asarray(np.asarray(problem.price_per_mwh, dtype=float).ravel())

    @property
    def cells(self) -> int:
        """Difference-array cells per candidate: sites plus a discard site, slots plus one."""
        return (self.n_sites + 1) * (self.n_slots + 1)

    def bytes_per_candidate(self) -> int:
        """Rough size of one candidate's live temporaries in a chunk."""
        masks = self.masked.n_jobs * (self.n_slots + 2)
        return 8 * (12 * self.n_jobs + 8 * self.cells + 2 * self.n_scenarios) + 4 * masks

    def set_rows(self, rows: int, index_dtype: type) -> None:
        """Put the contiguous path's per-job arrays on the device for chunks of `rows`."""
        xp, jobs = self.xp, self.contiguous
        self.index_dtype = index_dtype
        self.duration = xp.asarray(jobs.duration_slots, dtype=index_dtype)
        self.first_slot = xp.asarray(jobs.first_slot, dtype=index_dtype)
        self.last_slot = xp.asarray(jobs.last_slot, dtype=index_dtype)
        self.all_sites_allowed = jobs.all_sites_allowed
        self.forbidden = xp.asarray(jobs.forbidden.ravel())
        self.forbidden_offset = xp.asarray(np.arange(self.n_jobs) * (self.n_sites + 1),
                                           dtype=index_dtype)
        self.power_tiled = xp.tile(xp.asarray(jobs.power_kw), rows)      # bincount weights
        self.gpus_tiled = xp.tile(xp.asarray(jobs.gpus), rows)


# Jobs handled by run masks get this window in the contiguous path: never breached. Starts are
# clipped to +-START_LIMIT first, so that start + duration cannot overflow 32-bit indices.
OPEN_WINDOW = 2**31 - 1
START_LIMIT = 2**30


class _ContiguousJobs:
    """Host arrays of all jobs for the contiguous path (run-mask jobs neutralised)."""

    def __init__(self, problem: Problem, masked: np.ndarray) -> None:
        self.duration_slots = problem.duration_slots.astype(np.int64)
        self.first_slot = problem.first_slot.astype(np.int64)
        self.last_slot = problem.last_slot.astype(np.int64)
        self.duration_slots[masked], self.first_slot[masked] = 0, -OPEN_WINDOW
        self.last_slot[masked] = OPEN_WINDOW
        self.power_kw = problem.power_kw.astype(float)
        self.gpus = problem.gpus.astype(float)
        self.power_kw[masked], self.gpus[masked] = 0.0, 0.0   # their load: the run-mask path
        # [J, S + 1]: True where job j may not run at site s; the last column is no real site.
        self.forbidden = np.ones((problem.n_jobs, problem.n_sites + 1), dtype=bool)
        for j, sites in enumerate(problem.allowed_sites):
            self.forbidden[j, list(sites)] = False
        self.all_sites_allowed = not self.forbidden[:, :-1].any()


class _MaskedJobs:
    """Device arrays of the run-mask jobs."""

    def __init__(self, xp: ModuleType, problem: Problem, jobs: np.ndarray) -> None:
        self.n_jobs = jobs.size
        self.power_kw = xp.asarray(problem.power_kw[jobs], dtype=float)
        self.gpus = xp.asarray(problem.gpus[jobs], dtype=float)
        self.duration_slots = xp.asarray(problem.duration_slots[jobs], dtype=np.int64)
        self.first_slot = xp.asarray(problem.first_slot[jobs], dtype=np.int64)
        self.last_slot = xp.asarray(problem.last_slot[jobs], dtype=np.int64)
        self.min_run_slots = xp.asarray(problem.min_run_slots[jobs], dtype=np.int64)


def _index_dtype(batch: CandidateBatch, rows: int, cells: int, n_jobs: int) -> type:
    """int32 index arithmetic where the batch is 32-bit and every index fits, else int64."""
    narrow = batch.site.dtype.itemsize <= 4 and batch.start.dtype.itemsize <= 4
    fits = (rows + 1) * cells < 2**31 and (n_jobs + 1) * cells < 2**31
    return np.int32 if narrow and fits else np.int64


def _scenarios(problem: Problem, ci_scenarios: Any | None) -> np.ndarray:
    """The [Sc, S, T] carbon-intensity scenarios as a host array."""
    if ci_scenarios is None:
        return np.asarray(problem.ci_g_per_kwh, dtype=float)[None]
    ci = np.asarray(to_numpy(ci_scenarios), dtype=float)
    expected = (problem.n_sites, problem.n_slots)
    if ci.ndim != 3 or ci.shape[1:] != expected or ci.shape[0] < 1:
        raise ValueError(f"ci scenarios must be [Sc, S, T] with (S, T) = {expected}, "
                         f"got {ci.shape}")
    return ci


def _auto_chunk_size(prepared: _Prepared, device_name: str, max_chunk_bytes: int) -> int:
    budget = max_chunk_bytes if device_name == "gpu" else min(max_chunk_bytes, CPU_CHUNK_BYTES)
    return max(1, budget // max(1, prepared.bytes_per_candidate()))


def _score_chunk(xp: ModuleType, p: _Prepared, batch: CandidateBatch, lo: int,
                 hi: int) -> dict[str, Any]:
    """All figures of candidates [lo, hi) as device arrays."""
    site = xp.asarray(batch.site[lo:hi])
    start = xp.asarray(batch.start[lo:hi])
    placed = site >= 0
    diff_kw, diff_gpus, bad = _contiguous_jobs(xp, p, site, start, placed)
    if p.masked.n_jobs:
        mask = xp.asarray(batch.run_mask[lo:hi]).astype(bool, copy=False)
        masked_kw, masked_gpus, bad_runs = _masked_jobs(xp, p, site[:, p.masked_cols], mask)
        diff_kw += masked_kw
        diff_gpus += masked_gpus
        bad[:, p.masked_cols] |= bad_runs
    figures = _site_figures(xp, p, _running_sum(xp, p, diff_kw), _running_sum(xp, p, diff_gpus))
    figures["window_violations"] = (placed & bad).sum(axis=1)
    figures["unscheduled"] = site.shape[1] - placed.sum(axis=1)
    return figures


def _contiguous_jobs(xp: ModuleType, p: _Prepared, site: Any, start: Any, placed: Any
                     ) -> tuple[Any, Any, Any]:
    """Difference arrays (IT kW, GPUs) of the contiguous jobs, and per-job rule breaches.

    A job adds its power at (candidate, site, start) and removes it at (candidate, site, end)
    of a [rows, S + 1, T + 1] difference array, start and end clipped to the horizon; jobs not
    on a real site go to the discard site S. (A job entirely outside the horizon adds and
    removes its power in the same cell.)
    """
    n_sites, n_slots = p.n_sites, p.n_slots
    rows = site.shape[0]
    on_site = placed & (site < n_sites)
    start = xp.clip(start, -START_LIMIT, START_LIMIT).astype(p.index_dtype, copy=False)
    end = start + p.duration
    site_index = xp.where(on_site, site, n_sites).astype(p.index_dtype, copy=False)
    cell = site_index + xp.arange(0, rows * (n_sites + 1), n_sites + 1,
                                  dtype=p.index_dtype)[:, None]
    cell *= n_slots + 1
    add_at = cell + xp.clip(start, 0, n_slots)
    remove_at = cell + xp.clip(end, 0, n_slots)
    diff_kw = _scatter(xp, p, add_at, remove_at, p.power_tiled, rows)
    diff_gpus = _scatter(xp, p, add_at, remove_at, p.gpus_tiled, rows)
    bad = (start < p.first_slot) | (end > p.last_slot)
    if p.all_sites_allowed:
        bad |= ~on_site
    else:
        bad |= p.forbidden[p.forbidden_offset + site_index]
    return diff_kw, diff_gpus, bad


def _scatter(xp: ModuleType, p: _Prepared, add_at: Any, remove_at: Any, weight: Any,
             rows: int) -> Any:
    """+weight at add_at and -weight at remove_at, summed per cell: [rows * cells]."""
    size = rows * p.cells
    if add_at.size == 0:          # CuPy's bincount rejects empty input
        return xp.zeros(size)
    weight = weight[:add_at.size]
    diff = xp.bincount(add_at.ravel(), weight, minlength=size).astype(float, copy=False)
    diff -= xp.bincount(remove_at.ravel(), weight, minlength=size)
    return diff


def _count_per_row(xp: ModuleType, row: Any, weight: Any, rows: int, n_jobs: int) -> Any:
    """Σ weight per (candidate, job) row: [rows, n_jobs] float."""
    if row.size == 0:
        return xp.zeros((rows, n_jobs))
    counts = xp.bincount(row, weight.astype(float), minlength=rows * n_jobs)
    return counts.reshape(rows, n_jobs)


def _running_sum(xp: ModuleType, p: _Prepared, diff: Any) -> Any:
    """Cumulative sum of a difference array over slots, real sites only: [rows, S, T]."""
    running = xp.cumsum(diff.reshape(-1, p.n_sites + 1, p.n_slots + 1), axis=2)
    return running[:, :p.n_sites, :p.n_slots]


def _masked_jobs(xp: ModuleType, p: _Prepared, site: Any, mask: Any) -> tuple[Any, Any, Any]:
    """Difference arrays (IT kW, GPUs) of the run-mask jobs, and their run-rule breaches.

    The runs are found from the mask's transitions (a copy with a False slot on each side of
    every row: the k-th rising edge pairs with the k-th falling edge); each run is then
    scattered into the difference arrays like a contiguous job.
    """
    jobs, n_slots = p.masked, p.n_slots
    rows, n_jobs, _ = mask.shape
    padded = xp.zeros((rows, n_jobs, n_slots + 2), dtype=bool)
    padded[:, :, 1:-1] = mask
    flat = padded.ravel()
    edges = xp.flatnonzero(flat[1:] != flat[:-1])
    row = edges[0::2] // (n_slots + 2)                 # (candidate, job) row of each run
    first = edges[0::2] - row * (n_slots + 2)          # first slot of the run
    end = edges[1::2] - row * (n_slots + 2)            # one past its last slot
    job = row % n_jobs
    run_site = site.ravel()[row]
    live = (run_site >= 0) & (run_site < p.n_sites)
    cell = (row // n_jobs) * (p.n_sites + 1) + xp.where(live, run_site, p.n_sites)
    cell *= n_slots + 1
    add_at, remove_at = cell + first, cell + end
    diff_kw = _scatter(xp, p, add_at, remove_at, jobs.power_kw[job], rows)
    diff_gpus = _scatter(xp, p, add_at, remove_at, jobs.gpus[job], rows)
    length = end - first
    slots = _count_per_row(xp, row, length, rows, n_jobs)
    breach = ((length < jobs.min_run_slots[job]) | (first < jobs.first_slot[job])
              | (end > jobs.last_slot[job]))
    breaches = _count_per_row(xp, row, breach, rows, n_jobs)
    return diff_kw, diff_gpus, (slots != jobs.duration_slots) | (breaches > 0)


def _site_figures(xp: ModuleType, p: _Prepared, it_kw: Any, gpus_used: Any) -> dict[str, Any]:
    """Energy, emissions, cost and over-use from IT load and GPUs per [candidate, site, slot]."""
    # Where no job runs the load is exactly zero (no rounding left over from the differences).
    load_kw = xp.where(gpus_used > 0.5, it_kw, 0.0) * p.pue
    grid_kw = xp.maximum(load_kw - p.renewable_kw, 0.0)
    hours = p.slot_hours
    grid_flat = grid_kw.reshape(grid_kw.shape[0], -1)
    over_kw = xp.where(load_kw > p.power_cap_kw + POWER_TOLERANCE_KW,
                       load_kw - p.power_cap_kw, 0.0)
    gpu_overuse = xp.maximum(gpus_used - p.gpu_capacity, 0.0).sum(axis=(1, 2))
    return {
        "emissions_kg": (grid_flat @ p.ci_flat) * hours / 1000.0,
        "cost": (grid_flat @ p.price_flat) * hours / 1000.0,
        "energy_kwh": load_kw.sum(axis=(1, 2)) * hours,
        "grid_energy_kwh": grid_flat.sum(axis=1) * hours,
        "gpu_overuse": xp.rint(gpu_overuse).astype(np.int64),
        "power_overuse_kwh": over_kw.sum(axis=(1, 2)) * hours,
    }


def _assemble(parts: list[dict[str, Any]], n: int, n_scenarios: int, device: str) -> Scores:
    """Concatenate the chunks' figures into host arrays."""
    if not parts:
        empty = np.zeros(0)
        ints = np.zeros(0, dtype=np.int64)
        return Scores(np.zeros((0, n_scenarios)), empty, empty, empty, ints, empty, ints, ints,
                      np.zeros(0, dtype=bool), device)
    host = {key: np.concatenate([to_numpy(part[key]) for part in parts])
            for key in parts[0]}
    feasible = ((host["gpu_overuse"] == 0) & (host["power_overuse_kwh"] == 0)
                & (host["window_violations"] == 0))
    return Scores(
        emissions_kg=host["emissions_kg"], cost=host["cost"], energy_kwh=host["energy_kwh"],
        grid_energy_kwh=host["grid_energy_kwh"], gpu_overuse=host["gpu_overuse"],
        power_overuse_kwh=host["power_overuse_kwh"],
        window_violations=host["window_violations"].astype(np.int64),
        unscheduled=host["unscheduled"].astype(np.int64), feasible=feasible, device=device)
