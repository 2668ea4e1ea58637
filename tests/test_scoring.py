"""The batch scorer (optimizer.scoring) against the independent checker, on NumPy.

Random small problems (several sites with random renewables, PUE, power caps, capacity
windows, prices; contiguous and interruptible jobs with windows and allowed sites) and random
plans, some feasible and some violating: the scorer's figures equal the checker's within
1e-9 relative and its verdict is the checker's.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import PROJECT_ROOT, hours, job, problem_of, small_request

from gridshift.optimizer.checker import check_plan
from gridshift.optimizer.plan import Placement, Plan
from gridshift.optimizer.problem import Problem
from gridshift.optimizer.scoring import (
    CandidateBatch,
    DeviceUnavailableError,
    array_module,
    empty_batch,
    from_plans,
    risk_measures,
    score,
    to_plan,
)
from gridshift.optimizer.scoring import device as device_module

REL = 1e-9


# ----------------------------------------------------------------------------- generators


def random_problem(rng: np.random.Generator, slots: int = 10) -> Problem:
    """A random small problem: 1-3 sites, 3-9 jobs, some interruptible, with tight spots."""
    n_sites = int(rng.integers(1, 4))
    sites, forecasts = [], []
    for s in range(n_sites):
        site = {"id": f"s{s}", "region": f"R{s}", "gpu_capacity": int(rng.integers(4, 12)),
                "pue": float(rng.choice([1.0, 1.2, 1.55])),
                "renewable_kw": [float(x) for x in rng.choice([0.0, 3.0, 7.5, 20.0], slots)]}
        if rng.random() < 0.5:
            site["power_cap_kw"] = float(rng.choice([12.0, 25.0, 60.0]))
        if rng.random() < 0.3:
            site["capacity_windows"] = [{"start": hours(2), "end": hours(4), "gpu_capacity": 2}]
        sites.append(site)
        forecasts.append({"region": f"R{s}", "start": hours(0), "slot_minutes": 60,
                          "carbon_intensity": list(rng.uniform(50, 500, slots)),
                          "price_per_mwh": list(rng.uniform(-20, 150, slots))})
    jobs = [random_job(rng, j, n_sites, slots) for j in range(int(rng.integers(3, 10)))]
    return problem_of(small_request(slots=slots, sites=sites, jobs=jobs, forecasts=forecasts))


def random_job(rng: np.random.Generator, j: int, n_sites: int, slots: int) -> dict:
    earliest = int(rng.integers(0, 3))
    extra: dict = {"earliest_start": hours(earliest), "deadline": hours(slots)}
    if rng.random() < 0.5:
        k = int(rng.integers(1, n_sites + 1))
        extra["allowed_sites"] = [f"s{s}" for s in sorted(rng.choice(n_sites, k, False))]
    if rng.random() < 0.4:
        extra.update(interruptible=True, min_run_minutes=int(rng.choice([0, 60, 120])))
    return job(f"j{j}", gpus=int(rng.integers(1, 5)), power_kw=float(rng.uniform(0.5, 15)),
               duration_minutes=int(rng.choice([30, 60, 150, 180])), **extra)


def random_plan(rng: np.random.Generator, problem: Problem, p_bad: float) -> Plan:
    """Every job placed (or unscheduled); with probability p_bad a rule is broken."""
    plan = Plan()
    for j in range(problem.n_jobs):
        if rng.random() < 0.1:
            plan.unscheduled[j] = "left out"
            continue
        bad = rng.random() < p_bad
        allowed = problem.allowed_sites[j]
        site = int(rng.integers(0, problem.n_sites)) if bad else int(rng.choice(allowed))
        plan.placements[j] = _random_slots(rng, problem, j, site, bad)
    return plan


def _random_slots(rng: np.random.Generator, problem: Problem, j: int, site: int,
                  bad: bool) -> Placement:
    first, last = int(problem.first_slot[j]), int(problem.last_slot[j])
    duration = int(problem.duration_slots[j])
    lo, hi = (0, problem.n_slots) if bad else (first, last - duration + 1)
    if not problem.interruptible[j]:
        start = int(rng.integers(lo - (2 if bad else 0), max(lo + 1, hi)))
        return Placement.contiguous(site, start, duration)
    count = duration + (int(rng.integers(-1, 2)) if bad else 0)
    window = np.arange(lo if bad else first, problem.n_slots if bad else last)
    count = max(1, min(count, window.size))
    return Placement(site, tuple(sorted(int(t) for t in rng.choice(window, count, False))))


def random_scenarios(rng: np.random.Generator, problem: Problem, n: int) -> np.ndarray:
    noise = rng.lognormal(0.0, 0.3, (n, problem.n_sites, problem.n_slots))
    return problem.ci_g_per_kwh[None] * noise


def random_batch(rng: np.random.Generator, problem: Problem, n: int) -> CandidateBatch:
    """Random candidates directly in array form (any sites/starts, random masks)."""
    batch = empty_batch(problem, n)
    batch.site[:] = rng.integers(-1, problem.n_sites + 1, batch.site.shape)
    batch.start[:] = rng.integers(-2, problem.n_slots, batch.start.shape)
    batch.run_mask[:] = rng.random(batch.run_mask.shape) < 0.4
    return batch


# ----------------------------------------------------------------------------- checker


def _bad_jobs(violations: list[str]) -> set[str]:
    return {v.split(":")[0] for v in violations if v.startswith("job ")}


def _assert_matches_checker(problem: Problem, plans: list[Plan], scores, scenario: int = 0):
    for b, plan in enumerate(plans):
        check = check_plan(problem, plan)
        assert scores.emissions_kg[b, scenario] == pytest.approx(check.emissions_kg, rel=REL,
                                                                 abs=1e-12)
        assert scores.cost[b] == pytest.approx(check.cost, rel=REL, abs=1e-12)
        assert scores.energy_kwh[b] == pytest.approx(check.energy_kwh, rel=REL, abs=1e-12)
        assert scores.grid_energy_kwh[b] == pytest.approx(check.grid_energy_kwh, rel=REL,
                                                          abs=1e-12)
        assert bool(scores.feasible[b]) == check.ok, check.violations
        assert (scores.gpu_overuse[b] > 0) == any("GPUs >" in v for v in check.violations)
        assert (scores.power_overuse_kwh[b] > 0) == any("power cap" in v
                                                        for v in check.violations)
        assert scores.window_violations[b] == len(_bad_jobs(check.violations))
        assert scores.unscheduled[b] == len(plan.unscheduled)


def test_scorer_equals_checker_on_random_plans():
    rng = np.random.default_rng(20260615)
    verdicts = []
    for _ in range(40):
        problem = random_problem(rng)
        plans = [random_plan(rng, problem, p_bad) for p_bad in (0.0, 0.0, 0.0, 0.2, 0.5, 1.0)]
        scores = score(problem, from_plans(problem, plans), device="cpu")
        _assert_matches_checker(problem, plans, scores)
        verdicts.extend(scores.feasible.tolist())
    assert any(verdicts) and not all(verdicts), "the plans must mix feasible and violating"


def test_scenarios_equal_checker_with_each_scenario_series():
    rng = np.random.default_rng(7)
    for _ in range(10):
        problem = random_problem(rng)
        plans = [random_plan(rng, problem, p_bad) for p_bad in (0.0, 0.5)]
        ci = random_scenarios(rng, problem, 5)
        scores = score(problem, from_plans(problem, plans), ci, device="cpu")
        assert scores.emissions_kg.shape == (2, 5)
        expected, p90, cvar95 = scores.risk()
        assert np.allclose(expected, scores.emissions_kg.mean(axis=1), rtol=1e-12)
        assert np.all(p90 <= cvar95) and np.all(cvar95 == scores.emissions_kg.max(axis=1))
        for c in range(5):
            variant = dataclasses.replace(problem, ci_g_per_kwh=ci[c])
            _assert_matches_checker(variant, plans, scores, scenario=c)


def test_batch_round_trips_through_plans():
    rng = np.random.default_rng(3)
    for _ in range(10):
        problem = random_problem(rng)
        plans = [random_plan(rng, problem, 0.3) for _ in range(4)]
        batch = from_plans(problem, plans)
        for b, plan in enumerate(plans):
            assert to_plan(problem, batch, b).placements == plan.placements


def test_from_plans_rejects_what_a_batch_cannot_hold():
    problem = problem_of(small_request(slots=4, jobs=[
        job("c", duration_minutes=120), job("i", interruptible=True)]))
    for placement, j in [(Placement(0, (0, 2)), 0), (Placement(0, ()), 0),
                         (Placement(-1, (0, 1)), 0), (Placement(0, (5,)), 1)]:
        with pytest.raises(ValueError):
            from_plans(problem, [Plan(placements={j: placement})])


def test_renewable_max_term_is_exact():
    """PUE 1.5; a 10 kW job in slots 0-3 and an interruptible 2 kW job in slots 0 and 2:
    load 18, 15, 18, 15 kW against renewables 0, 5, 15, 20 kW: grid 18, 10, 3, 0 kW."""
    request = small_request(slots=4, ci=[100.0, 200.0, 300.0, 400.0], jobs=[
        job("a", power_kw=10.0, duration_minutes=240),
        job("b", power_kw=2.0, duration_minutes=120, interruptible=True, min_run_minutes=60)])
    request["sites"][0].update(pue=1.5, renewable_kw=[0.0, 5.0, 15.0, 20.0])
    request["forecasts"][0]["price_per_mwh"] = [40.0, 80.0, 1000.0, 1000.0]
    problem = problem_of(request)
    batch = empty_batch(problem, 2)
    batch.site[:] = 0
    batch.run_mask[0, 0, [0, 2]] = True
    batch.site[1, 1] = -1                      # candidate 1: job b left out
    scores = score(problem, batch, device="cpu")
    assert scores.energy_kwh.tolist() == [66.0, 60.0]
    assert scores.grid_energy_kwh.tolist() == [31.0, 25.0]
    assert scores.emissions_kg[:, 0].tolist() == [4.7, 3.5]    # (18*100 + 10*200 + 3*300)/1000
    assert scores.cost.tolist() == [4.52, 1.4]                # (18*40 + 10*80 + 3*1000)/1000
    assert scores.feasible.tolist() == [True, True]
    for b in range(2):
        check = check_plan(problem, to_plan(problem, batch, b))
        assert check.ok and check.grid_energy_kwh == scores.grid_energy_kwh[b]
        assert check.emissions_kg == pytest.approx(scores.emissions_kg[b, 0], rel=1e-15)


def test_violations_are_counted():
    request = small_request(slots=4, jobs=[job("a", gpus=6, power_kw=8.0),
                                           job("b", gpus=6, power_kw=8.0, deadline=hours(2))])
    request["sites"][0]["power_cap_kw"] = 10.0
    problem = problem_of(request)
    batch = empty_batch(problem, 3)
    batch.site[:] = 0
    batch.start[0] = [0, 1]     # feasible
    batch.start[1] = [1, 1]     # 12 GPUs > 8 and 16 kW > 10 kW in slot 1
    batch.start[2] = [0, 3]     # b after its deadline
    scores = score(problem, batch, device="cpu")
    assert scores.feasible.tolist() == [True, False, False]
    assert scores.gpu_overuse.tolist() == [0, 4, 0]
    assert scores.power_overuse_kwh.tolist() == [0.0, 6.0, 0.0]
    assert scores.window_violations.tolist() == [0, 0, 1]


# ----------------------------------------------------------------------------- risk, chunks


@pytest.mark.parametrize("n_scenarios", [1, 2, 19, 20, 21, 32, 100])
def test_risk_measures_match_sort_based_definitions(n_scenarios):
    rng = np.random.default_rng(n_scenarios)
    emissions = rng.gamma(2.0, 50.0, (9, n_scenarios))
    expected, p90, cvar95 = risk_measures(emissions)
    k = (5 * n_scenarios + 99) // 100          # ceil(0.05 * Sc) in integers
    worst = np.sort(emissions, axis=1)[:, ::-1][:, :k]
    np.testing.assert_allclose(cvar95, worst.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(p90, np.percentile(emissions, 90, axis=1), rtol=1e-12)
    np.testing.assert_allclose(expected, emissions.mean(axis=1), rtol=1e-12)
    assert np.all(cvar95 >= p90 - 1e-9) and np.all(p90 <= emissions.max(axis=1))
    if n_scenarios == 1:
        assert np.array_equal(expected, emissions[:, 0]) and np.array_equal(p90, expected)
        assert np.array_equal(cvar95, expected)


def test_chunk_size_does_not_change_results():
    rng = np.random.default_rng(11)
    for _ in range(4):
        problem = random_problem(rng)
        batch = random_batch(rng, problem, 23)
        ci = random_scenarios(rng, problem, 4)
        runs = [score(problem, batch, ci, device="cpu", chunk_size=size)
                for size in (1, 7, 23, None)]
        runs.append(score(problem, batch, ci, device="cpu", max_chunk_bytes=1))
        for other in runs[1:]:
            for field in dataclasses.fields(other):
                a, b = getattr(runs[0], field.name), getattr(other, field.name)
                if isinstance(a, np.ndarray) and a.dtype.kind == "f":
                    np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-13)
                else:
                    assert np.array_equal(a, b), field.name


def test_random_batches_match_checker():
    """Arbitrary arrays (unknown sites, out-of-horizon starts, random masks) too."""
    rng = np.random.default_rng(5)
    for _ in range(8):
        problem = random_problem(rng)
        batch = random_batch(rng, problem, 12)
        scores = score(problem, batch, device="cpu", chunk_size=5)
        _assert_matches_checker(problem, [to_plan(problem, batch, b) for b in range(12)],
                                scores)


def test_index_dtypes_agree():
    """32-bit and 64-bit candidate arrays (32- and 64-bit index arithmetic) agree, also for
    starts far outside the horizon."""
    rng = np.random.default_rng(9)
    for _ in range(4):
        problem = random_problem(rng)
        batch = random_batch(rng, problem, 9)
        batch.start[:3] = rng.choice([-2**31, -7, 2**31 - 1], batch.start[:3].shape)
        wide = CandidateBatch(batch.site.astype(np.int64), batch.start.astype(np.int64),
                              batch.run_mask, batch.interruptible_jobs)
        narrow, broad = score(problem, batch, device="cpu"), score(problem, wide, device="cpu")
        assert narrow.window_violations[:3].min() >= 1
        for field in dataclasses.fields(narrow):
            a, b = getattr(narrow, field.name), getattr(broad, field.name)
            assert np.array_equal(a, b) or np.allclose(a, b, rtol=1e-13, atol=0), field.name


def test_empty_batch_and_bad_input():
    problem = random_problem(np.random.default_rng(1))
    scores = score(problem, empty_batch(problem, 0), device="cpu")
    assert scores.emissions_kg.shape == (0, 1) and scores.feasible.shape == (0,)
    with pytest.raises(ValueError, match="scenarios"):
        score(problem, empty_batch(problem, 1), np.zeros((2, 1, 1)), device="cpu")
    with pytest.raises(ValueError, match="run_mask"):
        CandidateBatch(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((1, 0, 4)), np.zeros(0))
    with pytest.raises(ValueError, match="chunk_size"):
        score(problem, empty_batch(problem, 1), device="cpu", chunk_size=0)
    assert math.isfinite(float(score(problem, empty_batch(problem, 2)).emissions_kg.sum()))


def test_no_jobs_and_empty_run_masks():
    no_jobs = problem_of(small_request(slots=3))
    scores = score(no_jobs, empty_batch(no_jobs, 2), device="cpu")
    assert scores.emissions_kg.tolist() == [[0.0], [0.0]] and scores.feasible.all()
    problem = problem_of(small_request(slots=3, jobs=[
        job("i", interruptible=True), job("k", interruptible=True, duration_minutes=120)]))
    batch = empty_batch(problem, 2)
    batch.site[0] = 0                       # placed, but no slot in the masks
    scores = score(problem, batch, device="cpu")
    assert scores.window_violations.tolist() == [2, 0]
    assert scores.unscheduled.tolist() == [0, 2]
    assert scores.feasible.tolist() == [False, True]


# ----------------------------------------------------------------------------- devices


def _gpu_usable() -> bool:
    return device_module.gpu_status()[0]


def test_device_names(monkeypatch):
    """The core reads no environment: None is auto whatever GRIDSHIFT_DEVICE says (the
    settings read it and pass the device in)."""
    assert array_module("cpu") == (np, "cpu")
    monkeypatch.setenv("GRIDSHIFT_DEVICE", "tpu")
    assert array_module(None) == array_module("auto")
    with pytest.raises(ValueError, match="auto, cpu, gpu"):
        array_module("cuda")


def test_device_auto_without_gpu_falls_back_and_logs(caplog):
    if _gpu_usable():
        pytest.skip("a GPU is usable here: auto picks it")
    device_module.reset_probe()
    with caplog.at_level(logging.INFO, logger="gridshift.optimizer.scoring.device"):
        assert array_module("auto") == (np, "cpu")
        assert array_module("auto") == (np, "cpu")
    lines = [r for r in caplog.records if r.name == "gridshift.optimizer.scoring.device"]
    assert len(lines) == 1 and "using NumPy" in lines[0].getMessage()
    problem = random_problem(np.random.default_rng(2))
    assert score(problem, empty_batch(problem, 1), device="auto").device == "cpu"


def test_device_gpu_without_gpu_raises():
    if _gpu_usable():
        pytest.skip("a GPU is usable here")
    with pytest.raises(DeviceUnavailableError, match="gpu"):
        array_module("gpu")
    problem = random_problem(np.random.default_rng(2))
    with pytest.raises(DeviceUnavailableError):
        score(problem, empty_batch(problem, 1), device="gpu")
    assert issubclass(DeviceUnavailableError, RuntimeError)


BLOCKED_IMPORTS = ("ortools", "highspy", "pulp", "grpc", "pandas", "cupy", "cupyx")


def test_scoring_imports_and_runs_without_solvers_or_cupy():
    """import optimizer.scoring (and score a plan) where OR-Tools, HiGHS, gRPC, pandas and
    CuPy cannot be imported: the GPU machine has no OR-Tools."""
    code = textwrap.dedent(f"""
        import importlib.abc, sys
        BLOCKED = {BLOCKED_IMPORTS!r}
        class Blocker(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(f"blocked: {{name}}")
                return None
        sys.meta_path.insert(0, Blocker())
        import gridshift.optimizer.scoring as scoring
        from gridshift.optimizer.checker import check_plan
        from gridshift.optimizer.parsing import parse_request
        from gridshift.optimizer.problem import build_problem
        request = {{"horizon": {{"start": "2026-06-15T00:00:00Z", "slots": 2}},
                   "sites": [{{"id": "a", "region": "R", "gpu_capacity": 1}}],
                   "jobs": [{{"id": "j", "gpus": 1, "power_kw": 2, "duration_minutes": 60}}],
                   "forecasts": [{{"region": "R", "start": "2026-06-15T00:00:00Z",
                                  "carbon_intensity": [100, 300]}}]}}
        problem = build_problem(parse_request(request))
        batch = scoring.empty_batch(problem, 1)
        batch.site[0, 0] = 0
        result = scoring.score(problem, batch, device="auto")
        assert result.emissions_kg[0, 0] == 0.2 and result.device == "cpu", result
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not loaded, loaded
        print("ok")
    """)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    env.pop("GRIDSHIFT_DEVICE", None)
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
