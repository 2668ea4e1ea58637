"""The carbon-agnostic FIFO baseline of docs/architecture.md and the savings measured against it."""

from __future__ import annotations

import pytest
from conftest import START, hours, job, problem_of, small_request, solve_checked

from gridshift.adapters.codec import to_response
from gridshift.optimizer.baseline import fifo_baseline
from gridshift.optimizer.checker import check_plan


def baseline_of(request: dict) -> tuple[dict[str, tuple[str, list[int]]], set[str]]:
    """FIFO placements by job id as (site id, slots), and the ids it left out."""
    p = problem_of(request)
    plan = fifo_baseline(p)
    placements = {p.job_ids[j]: (p.site_ids[pl.site], list(pl.slots))
                  for j, pl in plan.placements.items()}
    return placements, {p.job_ids[j] for j in plan.unscheduled}


def two_sites(slots: int, **overrides) -> dict:
    request = small_request(slots=slots, **overrides)
    request["sites"].append({"id": "b", "region": "R", "gpu_capacity": 8})
    request["sites"].append({"id": "c", "region": "R", "gpu_capacity": 8})
    return request


def test_baseline_ignores_carbon_and_starts_at_the_earliest_slot() -> None:
    # The grid is dirtiest first; FIFO does not care.
    request = small_request(slots=4, ci=[900.0, 10.0, 10.0, 10.0], jobs=[
        job("x", duration_minutes=120)])
    placements, _ = baseline_of(request)
    assert placements["x"] == ("a", [0, 1])


def test_baseline_orders_jobs_by_earliest_start_then_id() -> None:
    # Each job fills the site. Same earliest start: id order, whatever the listed order.
    request = small_request(slots=4, jobs=[job("b", gpus=8), job("c", gpus=8), job("a", gpus=8)])
    placements, _ = baseline_of(request)
    assert [placements[k][1][0] for k in "abc"] == [0, 1, 2]


def test_baseline_orders_by_the_exact_earliest_start_not_its_slot() -> None:
    # z (0:30) and a (1:00) both round to slot 1; z asked first, so z gets slot 1.
    request = small_request(slots=4, jobs=[
        job("a", gpus=8, earliest_start=hours(1)), job("z", gpus=8, earliest_start=hours(0.5))])
    placements, _ = baseline_of(request)
    assert placements["z"][1] == [1]
    assert placements["a"][1] == [2]


def test_baseline_fits_beside_earlier_jobs_and_maintenance() -> None:
    request = small_request(slots=8, jobs=[
        job("first", gpus=5, duration_minutes=180), job("second", gpus=4, duration_minutes=120)])
    request["sites"][0]["capacity_windows"] = [
        {"start": hours(3), "end": hours(4), "gpu_capacity": 2}]
    placements, _ = baseline_of(request)
    assert placements["first"] == ("a", [0, 1, 2])
    # 5 + 4 > 8 GPUs in slots 0-2, and the window leaves 2 GPUs in slot 3.
    assert placements["second"] == ("a", [4, 5])


def test_baseline_respects_the_power_cap_with_pue() -> None:
    request = small_request(slots=4, jobs=[job("x", power_kw=2.0), job("y", power_kw=2.0)])
    request["sites"][0].update(pue=1.5, power_cap_kw=4.0)   # 3 kW each, 6 kW together
    placements, _ = baseline_of(request)
    assert placements["x"][1] == [0]
    assert placements["y"][1] == [1]


def test_baseline_may_finish_after_the_deadline() -> None:
    request = small_request(slots=6, jobs=[
        job("early", gpus=8, duration_minutes=180),
        job("late", gpus=8, duration_minutes=120, deadline=hours(3))])
    placements, unplaced = baseline_of(request)
    assert placements["late"] == ("a", [3, 4])     # past its 3:00 deadline: FIFO does that
    assert not unplaced
    violations = check_plan(problem_of(request), fifo_baseline(problem_of(request))).violations
    assert any("late" in v and "window" in v for v in violations)


def test_baseline_does_not_run_past_the_horizon_and_moves_on_to_other_sites() -> None:
    # Home site a is full until slot 3; a 2-slot job would end after the 4-slot horizon.
    # Its allowed sites are listed c before b: c is tried first.
    request = two_sites(slots=4, jobs=[
        job("hog", gpus=8, duration_minutes=180, allowed_sites=["a"]),
        job("x", gpus=4, duration_minutes=120, home_site="a", allowed_sites=["a", "c", "b"],
            earliest_start=hours(0.5))])
    placements, _ = baseline_of(request)
    assert placements["hog"] == ("a", [0, 1, 2])
    assert placements["x"] == ("c", [1, 2])


def test_baseline_waits_at_home_rather_than_moving() -> None:
    # Home is busy in slot 0 only: the job waits for it although b is free at once.
    request = two_sites(slots=4, jobs=[
        job("hog", gpus=8, allowed_sites=["a"]),
        job("x", gpus=4, home_site="a", allowed_sites=["b", "a"])])
    placements, _ = baseline_of(request)
    assert placements["x"] == ("a", [1])


def test_home_site_defaults_to_the_first_allowed_site() -> None:
    request = two_sites(slots=4, jobs=[job("x", allowed_sites=["c", "a"])])
    placements, _ = baseline_of(request)
    assert placements["x"] == ("c", [0])


def test_a_job_that_fits_nowhere_is_left_out_of_the_baseline_and_reported() -> None:
    # FIFO: big at 0-1 (4 GPUs), wide at 2 (all 8 GPUs); late (4 GPUs, 2 slots from slot 1)
    # then finds no stretch before the horizon ends. The optimizer runs wide at 0 and big
    # beside late in 1-2.
    request = small_request(slots=3, ci=[100.0, 100.0, 100.0], jobs=[
        job("big", gpus=4, duration_minutes=120),
        job("wide", gpus=8),
        job("late", gpus=4, duration_minutes=120, earliest_start=hours(0.25))])
    placements, unplaced = baseline_of(request)
    assert placements["big"] == ("a", [0, 1])
    assert placements["wide"] == ("a", [2])
    assert unplaced == {"late"}
    r = solve_checked(request, "HIGHS")
    assert r.status == "OPTIMAL" and not r.plan.unscheduled
    response = to_response(r)
    assert list(response.baseline_unplaced) == ["late"]


def test_savings_are_baseline_minus_plan() -> None:
    ci = [400.0, 300.0, 50.0, 40.0, 200.0, 500.0]
    request = small_request(slots=6, ci=ci, jobs=[
        job("x", power_kw=2.0, duration_minutes=120), job("y", gpus=4, power_kw=1.0)])
    r = solve_checked(request, "HIGHS")
    # Baseline: x at 0-1, y at 0 (4 + 1 GPUs fit): 2 x (400 + 300) + 1 x 400 g.
    baseline_kg = (2.0 * (ci[0] + ci[1]) + 1.0 * ci[0]) / 1000
    assert r.baseline_figures.totals.emissions_kg == pytest.approx(baseline_kg)
    assert check_plan(r.problem, r.baseline).emissions_kg == pytest.approx(baseline_kg)
    response = to_response(r)
    plan_kg = r.figures.totals.emissions_kg
    assert response.baseline.emissions_kg == pytest.approx(baseline_kg)
    assert response.totals.emissions_kg == pytest.approx(plan_kg)
    assert response.savings_kg == pytest.approx(baseline_kg - plan_kg)
    assert response.savings_pct == pytest.approx(100 * (baseline_kg - plan_kg) / baseline_kg)
    assert response.savings_kg > 0
    per_job = {j.job_id: j.baseline_emissions_kg for j in response.jobs}
    assert per_job["x"] == pytest.approx(2.0 * (ci[0] + ci[1]) / 1000)
    assert per_job["y"] == pytest.approx(1.0 * ci[0] / 1000)


def test_savings_use_each_sites_own_region() -> None:
    request = small_request(slots=2, ci=[500.0, 500.0], jobs=[job("x", home_site="a")])
    request["sites"].append({"id": "b", "region": "Q", "gpu_capacity": 8})
    request["forecasts"].append({"region": "Q", "start": START, "slot_minutes": 60,
                                 "carbon_intensity": [20.0, 20.0]})
    r = solve_checked(request, "HIGHS")
    assert r.baseline_figures.totals.emissions_kg == pytest.approx(0.5)   # home a
    assert r.figures.totals.emissions_kg == pytest.approx(0.02)            # moved to b
    assert to_response(r).savings_kg == pytest.approx(0.48)


def test_baseline_places_a_committed_job_first_where_it_runs() -> None:
    """A job committed to start at slot 2 (its one placement) and a pending job that could
    start at slot 0 and would hold its GPUs then: the committed job keeps its place and the
    pending one waits. Placed in (earliest start, id) order alone, the pending job went first
    and the committed one was left out."""
    request = small_request(slots=8, jobs=[
        job("a-pending", gpus=6, duration_minutes=180),
        job("b-committed", gpus=6, duration_minutes=120, committed_site="a",
            committed_start=hours(2))])
    placements, left_out = baseline_of(request)
    assert not left_out
    assert placements == {"b-committed": ("a", [2, 3]), "a-pending": ("a", [4, 5, 6])}
    p = problem_of(request)
    assert check_plan(p, fifo_baseline(p)).ok
