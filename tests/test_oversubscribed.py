"""Oversubscribed nights (more GPU-hours asked for than there are, allow_partial): the time
limit is the budget of the whole call, the explanation is a few lines by capacity, and savings
compare the jobs both the plan and the baseline place."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT, job, prepare, small_request, solve_checked

from gridshift.adapters.codec import plan_from_response
from gridshift.optimizer.checker import check_plan

sys.path.insert(0, str(PROJECT_ROOT / "bench"))
from oversubscribed import oversubscribed_request  # noqa: E402


def test_a_busy_night_keeps_its_time_limit_and_says_why_in_a_few_lines(tmp_path: Path) -> None:
    """300 jobs asking 1.7x the GPU-hours of 3 sites, --time-limit 10: it used to take
    141-182 s and print 190-411 KB of 'minimal conflicting sets' of 250-300 job ids."""
    request = oversubscribed_request(seed=1)
    path = tmp_path / "night.json"
    path.write_text(json.dumps(request))
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "gridshift.cli", "plan", str(path),
                           "--time-limit", "10", "--no-store", "-o", str(tmp_path / "plan.json")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    wall = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    assert wall < 15, f"{wall:.1f} s for a 10 s limit"
    assert len(done.stderr.encode()) < 20_000, len(done.stderr.encode())
    from google.protobuf import json_format

    from gridshift.api.v1 import optimize_pb2 as pb

    response = json_format.Parse((tmp_path / "plan.json").read_text(), pb.OptimizeResponse())
    problem = prepare(request)
    check = check_plan(problem, plan_from_response(problem, response))
    assert check.ok, check.violations[:3]
    assert response.totals.emissions_kg == pytest.approx(check.emissions_kg, rel=1e-9)
    basis = response.savings_basis
    assert response.unscheduled and basis.plan_only_jobs + basis.baseline_only_jobs > 0
    assert f"on the {basis.common_jobs} job(s) both place" in done.stderr
    placed = {a.job_id for a in response.assignments}
    assert basis.plan_jobs == len(placed)
    common = placed - set(response.baseline_unplaced)
    assert basis.common_jobs == len(common)
    per_job = {f.job_id: f for f in response.jobs}
    assert basis.plan_emissions_kg == pytest.approx(
        sum(per_job[j].emissions_kg for j in common), rel=1e-9)
    assert basis.baseline_emissions_kg == pytest.approx(
        sum(per_job[j].baseline_emissions_kg for j in common), rel=1e-9)
    assert response.savings_kg == pytest.approx(
        basis.baseline_emissions_kg - basis.plan_emissions_kg, rel=1e-9)
    # A few capacity lines, and every left-out job points at one (no job-id lists).
    assert 1 <= len(response.explanations) <= 5
    assert "GPU-hours" in response.explanations[0]
    assert all(u.reason.startswith("left out: ") and len(u.reason) < 300
               for u in response.unscheduled)
    assert "minimal" not in done.stderr


def test_when_counts_tie_the_most_gpu_hours_are_kept() -> None:
    """Room for one of two jobs: carbon alone keeps the small one (its construction is the
    cheaper of two one-job plans); the plan keeps the bigger (the most jobs first, then the
    most GPU-hours, then the objective)."""
    request = small_request(slots=3, ci=[400.0, 400.0, 400.0])
    request["options"]["allow_partial"] = True
    request["jobs"] = [job("big", gpus=8, power_kw=10, duration_minutes=120),
                       job("small", gpus=4, power_kw=1, duration_minutes=120,
                           deadline="2026-06-15T02:00:00Z")]
    for backend in ("HIGHS", "CPSAT", "GREEDY"):
        result = solve_checked(request, backend)
        placed = {result.problem.job_ids[j] for j in result.plan.placements}
        assert placed == {"big"}, (backend, placed)


def test_same_jobs_compare_totals() -> None:
    request = small_request(slots=6, jobs=[job("a", gpus=4, duration_minutes=120),
                                           job("b", gpus=2, duration_minutes=60)])
    result = solve_checked(request)
    from gridshift.optimizer.accounting import savings

    saved = savings(result.figures, result.baseline_figures)
    assert saved.same_jobs and saved.common_jobs == 2
    assert saved.plan_emissions_kg == result.figures.totals.emissions_kg
    assert saved.baseline_emissions_kg == result.baseline_figures.totals.emissions_kg
