"""CuPy scoring equals NumPy scoring (needs a CUDA GPU with CuPy; skipped otherwise).

Run on a GPU machine with `python -m pytest -m gpu tests/test_scoring_gpu.py`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import job, problem_of, small_request
from test_scoring import random_batch, random_plan, random_problem, random_scenarios

from gridshift.optimizer.scoring import CandidateBatch, array_module, from_plans, score
from gridshift.optimizer.scoring.device import gpu_status

GPU_OK, WHY_NOT = gpu_status()
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not GPU_OK, reason=f"needs a CUDA GPU with CuPy: {WHY_NOT}")]

REL = 1e-9


def assert_same_scores(gpu, cpu) -> None:
    assert (gpu.device, cpu.device) == ("gpu", "cpu")
    for field in dataclasses.fields(cpu):
        if field.name == "device":
            continue
        a, b = getattr(gpu, field.name), getattr(cpu, field.name)
        assert isinstance(a, np.ndarray) and a.shape == b.shape, field.name
        if b.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=REL, atol=1e-12, err_msg=field.name)
        else:
            assert np.array_equal(a, b), field.name


def on_device(batch: CandidateBatch) -> CandidateBatch:
    xp, _ = array_module("gpu")
    return CandidateBatch(site=xp.asarray(batch.site), start=xp.asarray(batch.start),
                          run_mask=xp.asarray(batch.run_mask),
                          interruptible_jobs=batch.interruptible_jobs)


def medium_problem(rng: np.random.Generator, n_jobs: int = 60, slots: int = 24):
    sites = [{"id": f"s{s}", "region": f"R{s}", "gpu_capacity": 16, "pue": 1.0 + 0.2 * s,
              "power_cap_kw": 80.0, "renewable_kw": list(rng.choice([0.0, 10.0, 40.0], slots))}
             for s in range(3)]
    forecasts = [{"region": f"R{s}", "start": "2026-06-15T00:00:00Z", "slot_minutes": 60,
                  "carbon_intensity": list(rng.uniform(50, 500, slots)),
                  "price_per_mwh": list(rng.uniform(0, 150, slots))} for s in range(3)]
    jobs = [job(f"j{j}", gpus=int(rng.integers(1, 5)), power_kw=float(rng.uniform(1, 9)),
                duration_minutes=60 * int(rng.integers(1, 7)),
                interruptible=bool(rng.random() < 0.2), min_run_minutes=60)
            for j in range(n_jobs)]
    return problem_of(small_request(slots=slots, sites=sites, jobs=jobs, forecasts=forecasts))


def test_array_module_picks_cupy():
    xp, name = array_module("gpu")
    assert name == "gpu" and xp.__name__ == "cupy"
    assert array_module("auto")[1] == "gpu"


def test_cupy_equals_numpy_on_random_plans_and_batches():
    rng = np.random.default_rng(42)
    for _ in range(10):
        problem = random_problem(rng)
        plans = [random_plan(rng, problem, p_bad) for p_bad in (0.0, 0.3, 1.0)]
        ci = random_scenarios(rng, problem, 6)
        for batch in (from_plans(problem, plans), random_batch(rng, problem, 17)):
            cpu = score(problem, batch, ci, device="cpu")
            assert_same_scores(score(problem, batch, ci, device="gpu"), cpu)
            assert_same_scores(score(problem, on_device(batch), ci, device="gpu"), cpu)


def test_cupy_equals_numpy_on_a_medium_batch_with_chunks():
    rng = np.random.default_rng(7)
    problem = medium_problem(rng)
    batch = random_batch(rng, problem, 300)
    ci = random_scenarios(rng, problem, 32)
    cpu = score(problem, batch, ci, device="cpu")
    for chunk_size in (1, 7, None):
        assert_same_scores(score(problem, on_device(batch), ci, device="gpu",
                                 chunk_size=chunk_size), cpu)
