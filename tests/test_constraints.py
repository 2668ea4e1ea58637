"""One constraint or cost term at a time, on instances small enough to reason about by hand.

Every expectation is derived from the instance in the test (the cleanest window, a hand-worked
max(0, load - renewable), a small enumeration), never copied from a solver run, and every
solver result goes through the independent checker (solve_checked / assert_plan_valid).
"""

from __future__ import annotations

import copy
import itertools
import math
import random
import time

import pytest
from conftest import START, hours, job, problem_of, small_request, solve_checked

from gridshift.optimizer.checker import check_plan
from gridshift.optimizer.plan import Plan

EXACT = ["HIGHS", "CPSAT"]
ALL = EXACT + ["GREEDY"]


def placed(result, job_id: str) -> tuple[str, list[int]]:
    """(site id, slots) of a job in a result's plan."""
    p = result.problem
    placement = result.plan.placements[p.job_ids.index(job_id)]
    return p.site_ids[placement.site], list(placement.slots)


def runs_of(slots: list[int]) -> list[int]:
    lengths: list[int] = []
    for i, t in enumerate(slots):
        if i and t == slots[i - 1] + 1:
            lengths[-1] += 1
        else:
            lengths.append(1)
    return lengths


def cheapest_window(costs: list[float], d: int, allowed: set[int] | None = None) -> int:
    """Start of the unique cheapest d-slot window whose slots are all allowed."""
    starts = [t for t in range(len(costs) - d + 1)
              if allowed is None or all(u in allowed for u in range(t, t + d))]
    totals = {t: sum(costs[t:t + d]) for t in starts}
    best = min(totals.values())
    winners = [t for t, v in totals.items() if v == best]
    assert len(winners) == 1, f"instance has tied windows {winners}"
    return winners[0]


def cheapest_slot_set(costs: list[float], d: int, min_run: int) -> tuple[int, ...]:
    """The unique cheapest set of d slots whose runs are all >= min_run slots."""
    sets = [c for c in itertools.combinations(range(len(costs)), d)
            if min(runs_of(list(c))) >= min_run]
    totals = {c: sum(costs[t] for t in c) for c in sets}
    best = min(totals.values())
    winners = [c for c, v in totals.items() if v == best]
    assert len(winners) == 1, f"instance has tied slot sets {winners}"
    return winners[0]


def with_options(request: dict, **options) -> dict:
    request = copy.deepcopy(request)
    request["options"].update(options)
    return request


# --- where a job goes -----------------------------------------------------------------------


@pytest.mark.parametrize("backend", ALL)
def test_job_goes_to_the_cleanest_window(backend: str) -> None:
    ci = [300.0, 250.0, 90.0, 35.0, 40.0, 260.0, 270.0, 280.0]
    request = small_request(slots=8, ci=ci, jobs=[job("train", power_kw=2.0,
                                                      duration_minutes=120)])
    best = cheapest_window(ci, 2)
    r = solve_checked(request, backend)
    assert placed(r, "train") == ("a", [best, best + 1])
    assert r.figures.totals.emissions_kg == pytest.approx(2.0 * (ci[best] + ci[best + 1]) / 1000)
    if backend != "GREEDY":
        assert r.status == "OPTIMAL"


@pytest.mark.parametrize("backend", ALL)
def test_non_interruptible_job_stays_contiguous(backend: str) -> None:
    # The three cleanest slots (0, 3, 5) are apart; a contiguous job must take one block.
    ci = [10.0, 500.0, 450.0, 12.0, 400.0, 11.0, 480.0, 490.0]
    cheapest_three = sorted(range(8), key=lambda t: ci[t])[:3]
    assert len(runs_of(cheapest_three)) > 1
    best = cheapest_window(ci, 3)
    r = solve_checked(small_request(slots=8, ci=ci, jobs=[job("x", duration_minutes=180)]),
                      backend)
    site, slots = placed(r, "x")
    assert slots == [best, best + 1, best + 2]
    assert len(runs_of(slots)) == 1


@pytest.mark.parametrize("backend", ALL)
def test_interruptible_job_takes_the_cleanest_slots(backend: str) -> None:
    ci = [5.0, 500.0, 500.0, 10.0, 12.0, 500.0, 8.0, 9.0]
    expected = cheapest_slot_set(ci, 4, min_run=1)
    request = small_request(slots=8, ci=ci, jobs=[
        job("sweep", duration_minutes=240, interruptible=True)])
    r = solve_checked(request, backend)
    assert tuple(placed(r, "sweep")[1]) == expected
    assert r.figures.totals.emissions_kg == pytest.approx(sum(ci[t] for t in expected) / 1000)


@pytest.mark.parametrize("backend", ALL)
def test_min_run_forbids_runs_shorter_than_it(backend: str) -> None:
    ci = [5.0, 500.0, 500.0, 10.0, 12.0, 500.0, 8.0, 9.0]
    free = cheapest_slot_set(ci, 4, min_run=1)
    assert min(runs_of(list(free))) == 1, "without min_run the optimum has a 1-slot run"
    expected = cheapest_slot_set(ci, 4, min_run=2)
    request = small_request(slots=8, ci=ci, jobs=[
        job("sweep", duration_minutes=240, interruptible=True, min_run_minutes=120)])
    r = solve_checked(request, backend)
    _, slots = placed(r, "sweep")
    assert min(runs_of(slots)) >= 2
    assert tuple(slots) == expected
    assert r.objective > sum(ci[t] for t in free) / 1000


@pytest.mark.parametrize("backend", EXACT)
def test_min_run_rounds_up_to_whole_slots(backend: str) -> None:
    # 90 minutes of minimum run on 60-minute slots is 2 slots.
    ci = [5.0, 500.0, 500.0, 10.0, 12.0, 500.0, 8.0, 9.0]
    request = small_request(slots=8, ci=ci, jobs=[
        job("sweep", duration_minutes=240, interruptible=True, min_run_minutes=90)])
    r = solve_checked(request, backend)
    assert tuple(placed(r, "sweep")[1]) == cheapest_slot_set(ci, 4, min_run=2)


# --- capacity ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ALL)
def test_gpu_capacity_pushes_the_second_job_later(backend: str) -> None:
    ci = [10.0, 20.0, 300.0, 310.0]
    request = small_request(slots=4, ci=ci, jobs=[job("x", gpus=6), job("y", gpus=6)])
    r = solve_checked(request, backend)
    starts = {placed(r, "x")[1][0], placed(r, "y")[1][0]}
    assert starts == {0, 1}       # 6 + 6 > 8 GPUs: they cannot share the cleanest slot
    assert r.figures.gpus_used.max() <= 8


@pytest.mark.parametrize("backend", ALL)
def test_gpu_capacity_sends_the_second_job_to_another_site(backend: str) -> None:
    request = small_request(slots=4, ci=[10.0, 50.0, 300.0, 310.0],
                            jobs=[job("x", gpus=6), job("y", gpus=6)])
    request["sites"].append({"id": "b", "region": "Q", "gpu_capacity": 8})
    request["forecasts"].append({"region": "Q", "start": START, "slot_minutes": 60,
                                 "carbon_intensity": [15.0, 400.0, 400.0, 400.0]})
    # Options for the second job: a@1 (50) or b@0 (15); a@0 (10) goes to the other one.
    r = solve_checked(request, backend)
    spots = {(placed(r, name)[0], placed(r, name)[1][0]) for name in ("x", "y")}
    assert spots == {("a", 0), ("b", 0)}


@pytest.mark.parametrize("backend", ALL)
def test_maintenance_window_blocks_its_slots(backend: str) -> None:
    ci = [300.0, 250.0, 10.0, 20.0, 30.0, 200.0, 220.0, 240.0]
    request = small_request(slots=8, ci=ci, jobs=[job("x", duration_minutes=120)])
    request["sites"][0]["capacity_windows"] = [
        {"start": hours(2), "end": hours(5), "gpu_capacity": 0}]
    expected = cheapest_window(ci, 2, allowed={0, 1, 5, 6, 7})
    assert expected != cheapest_window(ci, 2), "the window covers the cleanest slots"
    r = solve_checked(request, backend)
    assert list(r.problem.gpu_capacity[0]) == [8, 8, 0, 0, 0, 8, 8, 8]
    assert placed(r, "x")[1] == [expected, expected + 1]


@pytest.mark.parametrize("backend", ALL)
def test_maintenance_window_lowers_capacity_of_every_slot_it_touches(backend: str) -> None:
    # A window from 3:30 to 4:00 touches slot 3 only; it leaves 2 GPUs there.
    ci = [300.0, 250.0, 200.0, 10.0, 150.0, 100.0]
    request = small_request(slots=6, ci=ci, jobs=[job("big", gpus=6), job("small", gpus=2)])
    request["sites"][0]["capacity_windows"] = [
        {"start": hours(3.5), "end": hours(4), "gpu_capacity": 2}]
    r = solve_checked(request, backend)
    assert list(r.problem.gpu_capacity[0]) == [8, 8, 8, 2, 8, 8]
    assert placed(r, "small")[1] == [3]                        # 2 GPUs fit in the window
    expected_big = min((t for t in range(6) if t != 3), key=lambda t: ci[t])
    assert placed(r, "big")[1] == [expected_big]               # 6 GPUs do not


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("pue", [1.0, 1.5])
def test_power_cap_counts_pue(backend: str, pue: float) -> None:
    # Two 2 kW jobs under a 4 kW facility cap: together 4 kW at PUE 1.0 (fits), 6 kW at 1.5.
    request = small_request(slots=4, ci=[10.0, 50.0, 300.0, 300.0],
                            jobs=[job("x", power_kw=2.0), job("y", power_kw=2.0)])
    request["sites"][0].update(pue=pue, power_cap_kw=4.0)
    r = solve_checked(request, backend)
    starts = sorted(placed(r, name)[1][0] for name in ("x", "y"))
    together_kw = 2 * 2.0 * pue
    assert starts == ([0, 0] if together_kw <= 4.0 else [0, 1])
    assert r.figures.load_kw.max() <= 4.0 + 1e-9


@pytest.mark.parametrize("backend", EXACT)
def test_power_cap_is_never_exceeded_by_a_fraction_of_a_watt(backend: str) -> None:
    # 2 x 1.0004 kW = 2.0008 kW > 2 kW cap, although each rounds to 1000 W.
    request = small_request(slots=4, ci=[10.0, 20.0, 300.0, 300.0],
                            jobs=[job("x", power_kw=1.0004), job("y", power_kw=1.0004)])
    request["sites"][0]["power_cap_kw"] = 2.0
    r = solve_checked(request, backend)
    assert r.status == "OPTIMAL"
    assert sorted(placed(r, name)[1][0] for name in ("x", "y")) == [0, 1]


# --- energy, PUE and renewables --------------------------------------------------------------


@pytest.mark.parametrize("backend", EXACT)
def test_pue_multiplies_energy_and_emissions(backend: str) -> None:
    request = small_request(slots=4, ci=[200.0] * 4,
                            jobs=[job("x", power_kw=2.0, duration_minutes=180)])
    request["sites"][0]["pue"] = 1.4
    r = solve_checked(request, backend)
    energy = 2.0 * 1.4 * 3            # kW x PUE x hours
    assert r.figures.totals.energy_kwh == pytest.approx(energy)
    assert r.figures.totals.grid_energy_kwh == pytest.approx(energy)
    assert r.figures.totals.emissions_kg == pytest.approx(energy * 200.0 / 1000)


@pytest.mark.parametrize("backend", EXACT)
def test_energy_is_counted_for_whole_slots(backend: str) -> None:
    # 30-minute slots: a 45-minute job occupies two slots, one hour.
    request = small_request(slots=8, ci=[100.0] * 4, jobs=[job("x", duration_minutes=45)])
    request["horizon"]["slot_minutes"] = 30
    r = solve_checked(request, backend)
    assert len(placed(r, "x")[1]) == 2
    assert r.figures.totals.energy_kwh == pytest.approx(1.0)
    assert r.figures.totals.emissions_kg == pytest.approx(1.0 * 100.0 / 1000)


@pytest.mark.parametrize("backend", ALL)
def test_job_covered_by_renewables_emits_nothing(backend: str) -> None:
    ci = [100.0, 90.0, 80.0, 400.0, 95.0, 85.0]
    request = small_request(slots=6, ci=ci, jobs=[job("x", power_kw=2.0)])
    request["sites"][0].update(pue=1.25, renewable_kw=[0, 0, 0, 5.0, 0, 0])
    r = solve_checked(request, backend)
    assert placed(r, "x")[1] == [3]       # the dirtiest grid slot, but 2.5 kW <= 5 kW on site
    assert r.figures.totals.emissions_kg == 0.0
    assert r.figures.totals.grid_energy_kwh == 0.0
    assert r.figures.totals.energy_kwh == pytest.approx(2.5)


@pytest.mark.parametrize("backend", ALL)
def test_grid_draw_is_load_above_renewables(backend: str) -> None:
    # Load 2 kW x 1.5 = 3 kW; 1 kW on site in slot 2 leaves 2 kW from the grid:
    # 2 kWh x 300 g = 0.6 kg, below 3 kWh x 250 g = 0.75 kg anywhere else.
    ci = [250.0, 260.0, 300.0, 270.0]
    request = small_request(slots=4, ci=ci, jobs=[job("x", power_kw=2.0)])
    request["sites"][0].update(pue=1.5, renewable_kw=[0, 0, 1.0, 0])
    r = solve_checked(request, backend)
    assert placed(r, "x")[1] == [2]
    assert r.figures.totals.energy_kwh == pytest.approx(3.0)
    assert r.figures.totals.grid_energy_kwh == pytest.approx(2.0)
    assert r.figures.totals.emissions_kg == pytest.approx(0.6)


@pytest.mark.parametrize("backend", ALL)
def test_jobs_share_renewables_in_a_slot(backend: str) -> None:
    # Two 3 kW facility loads on 4 kW of renewables: grid max(0, 6 - 4) = 2 kW at 100 g,
    # 0.2 kg; splitting them costs 3 kW x 400 g = 1.2 kg for the second.
    request = small_request(slots=4, ci=[100.0, 400.0, 400.0, 400.0],
                            jobs=[job("x", power_kw=2.0), job("y", power_kw=2.0)])
    request["sites"][0].update(pue=1.5, renewable_kw=[4.0, 0, 0, 0])
    r = solve_checked(request, backend)
    assert placed(r, "x")[1] == placed(r, "y")[1] == [0]
    assert r.figures.grid_kw[0, 0] == pytest.approx(2.0)
    assert r.figures.totals.emissions_kg == pytest.approx(0.2)
    # Per-job emissions add up to the site's.
    assert sum(f.emissions_kg for f in r.figures.jobs.values()) == pytest.approx(0.2)


# --- placement rules and cost terms ----------------------------------------------------------


@pytest.mark.parametrize("backend", ALL)
def test_allowed_sites_hold_even_when_another_site_is_cleaner(backend: str) -> None:
    request = small_request(slots=4, ci=[300.0] * 4, jobs=[
        job("free"), job("resident", allowed_sites=["a"])])
    request["sites"].append({"id": "b", "region": "Q", "gpu_capacity": 8})
    request["forecasts"].append({"region": "Q", "start": START, "slot_minutes": 60,
                                 "carbon_intensity": [10.0] * 4})
    r = solve_checked(request, backend)
    assert placed(r, "free")[0] == "b"           # b is cleaner ...
    assert placed(r, "resident")[0] == "a"       # ... but the data must stay in a


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("cost_weight", [0.0, 1.0])
def test_cost_weight_moves_the_job_to_the_cheap_slot(backend: str, cost_weight: float) -> None:
    ci = [100.0, 300.0, 120.0, 110.0]
    price = [500.0, 10.0, 400.0, 450.0]
    request = small_request(slots=4, ci=ci, jobs=[job("x")])
    request["forecasts"][0]["price_per_mwh"] = price
    request["objective"] = {"carbon_weight": 1.0, "cost_weight": cost_weight}
    per_slot = [(ci[t] + cost_weight * price[t]) / 1000 for t in range(4)]
    expected = min(range(4), key=lambda t: per_slot[t])
    r = solve_checked(request, backend)
    assert placed(r, "x")[1] == [expected]
    assert expected == (1 if cost_weight else 0)
    assert r.figures.totals.cost == pytest.approx(price[expected] / 1000)
    assert r.objective == pytest.approx(per_slot[expected])


def _negative_price_request() -> dict:
    # Renewables: slot 1 1.5 kW, slot 2 1.2345 kW (not a whole watt), slot 3 5 kW (more than
    # any one job). Prices are negative in slots 1-3: drawing from the grid there is paid for.
    request = small_request(slots=5, ci=[100.0] * 5,
                            jobs=[job("x", power_kw=2.0), job("y", power_kw=2.0),
                                  job("z", power_kw=2.0)])
    request["forecasts"][0]["price_per_mwh"] = [50.0, -400.0, -400.0, -400.0, 50.0]
    request["sites"][0]["renewable_kw"] = [0.0, 1.5, 1.2345, 5.0, 0.0]
    request["objective"] = {"carbon_weight": 1.0, "cost_weight": 1.0}
    return request


def _by_hand(assignment: list[int]) -> float:
    """The objective (docs/architecture.md) of 2 kW jobs in the given slots of
    _negative_price_request."""
    renewable = [0.0, 1.5, 1.2345, 5.0, 0.0]
    weight = [100.0 + 50.0, 100.0 - 400.0, 100.0 - 400.0, 100.0 - 400.0, 100.0 + 50.0]
    total = 0.0
    for t in range(5):
        load = 2.0 * assignment.count(t)
        total += max(0.0, load - renewable[t]) * weight[t] / 1000
    return total


@pytest.mark.parametrize("backend", EXACT)
def test_negative_prices_never_inflate_grid_draw(backend: str) -> None:
    """With a negative weight per grid kWh the model must keep grid = max(0, load - renewable)
    exactly (the z binaries); an inflated grid variable would make the solver's own objective
    lower than the plan's true one."""
    from gridshift.optimizer.backends.cpsat import solve_cpsat
    from gridshift.optimizer.backends.highs import solve_highs
    from gridshift.optimizer.milp import build_milp

    problem = problem_of(_negative_price_request())
    assert (problem.grid_cost_per_kwh() < 0).any()
    model = build_milp(problem)
    solver = solve_highs if backend == "HIGHS" else solve_cpsat
    result = solver(model, time_limit_s=10, relative_gap=1e-9)
    assert result.status == "optimal"
    plan = model.decode(result.values)
    check = check_plan(problem, plan)
    assert check.ok, check.violations
    # CP-SAT works in whole watts: 1.2345 kW is off by half a watt (0.5 W x 300 = 1.5e-4).
    tolerance = 1e-9 if backend == "HIGHS" else 1e-3
    assert result.objective == pytest.approx(check.objective, abs=tolerance)
    best = min(_by_hand(list(a)) for a in itertools.product(range(5), repeat=3))
    assert check.objective == pytest.approx(best, abs=tolerance)


@pytest.mark.parametrize("backend", ALL)
def test_negative_prices_plan_is_the_hand_optimum(backend: str) -> None:
    r = solve_checked(_negative_price_request(), backend)
    slots = [placed(r, name)[1][0] for name in ("x", "y", "z")]
    assert r.objective == pytest.approx(_by_hand(slots), abs=1e-9)
    if backend != "GREEDY":
        best = min(_by_hand(list(a)) for a in itertools.product(range(5), repeat=3))
        assert r.objective == pytest.approx(best, abs=1e-9)


# --- delay and windows -------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("delay_weight", [0.0, 0.03, 1.0])
def test_delay_weight_pulls_the_job_earlier(backend: str, delay_weight: float) -> None:
    # Cleaner later; earliest_start 0:30 rounds up to slot 1; 45 minutes in one slot.
    ci = [500.0, 300.0, 200.0, 150.0, 130.0, 120.0]
    request = small_request(slots=6, ci=ci, jobs=[
        job("x", duration_minutes=45, earliest_start=hours(0.5), priority=2.0)])
    request["objective"] = {"carbon_weight": 1.0, "delay_weight": delay_weight}

    def wait(t: int) -> float:
        return (t + 1) - 0.5 - 0.75          # end - earliest_start - duration, hours

    cost = {t: ci[t] / 1000 + delay_weight * 2.0 * wait(t) for t in range(1, 6)}
    expected = min(cost, key=cost.get)
    assert expected == {0.0: 5, 0.03: 2, 1.0: 1}[delay_weight]
    r = solve_checked(request, backend)
    assert placed(r, "x")[1] == [expected]
    assert r.figures.jobs[0].wait_hours == pytest.approx(wait(expected))
    assert check_plan(r.problem, r.plan).wait_hours == pytest.approx(wait(expected))
    assert r.objective == pytest.approx(cost[expected])


@pytest.mark.parametrize("backend", EXACT)
def test_delay_of_an_interruptible_job_counts_to_the_end_of_its_last_run(backend: str) -> None:
    ci = [100.0, 500.0, 100.0, 500.0, 100.0, 100.0, 100.0, 100.0]
    request = small_request(slots=8, ci=ci, jobs=[
        job("x", duration_minutes=180, interruptible=True)])
    request["objective"] = {"carbon_weight": 1.0, "delay_weight": 0.1}
    totals = {c: sum(ci[t] for t in c) / 1000 + 0.1 * (c[-1] + 1 - 3)
              for c in itertools.combinations(range(8), 3)}
    expected = min(totals, key=totals.get)
    assert [c for c, v in totals.items() if v == totals[expected]] == [expected]
    r = solve_checked(request, backend)
    assert tuple(placed(r, "x")[1]) == expected
    assert r.objective == pytest.approx(totals[expected])


@pytest.mark.parametrize("backend", ALL)
def test_window_rounds_inwards_to_whole_slots(backend: str) -> None:
    # Slots 1 and 5 are the cleanest but only partly inside [1:15, 5:30).
    ci = [10.0, 5.0, 300.0, 200.0, 250.0, 4.0, 1.0, 300.0]
    request = small_request(slots=8, ci=ci, jobs=[
        job("x", earliest_start=hours(1.25), deadline=hours(5.5))])
    r = solve_checked(request, backend)
    assert (r.problem.first_slot[0], r.problem.last_slot[0]) == (2, 5)
    assert placed(r, "x")[1] == [min(range(2, 5), key=lambda t: ci[t])]


@pytest.mark.parametrize("backend", ALL)
def test_a_job_never_occupies_a_partial_slot_at_its_deadline(backend: str) -> None:
    ci = [1.0, 100.0, 100.0, 300.0, 1.0, 1.0]
    request = small_request(slots=6, ci=ci, jobs=[
        job("x", duration_minutes=120, earliest_start=hours(0.5), deadline=hours(4.75))])
    r = solve_checked(request, backend)
    assert placed(r, "x")[1] == [1, 2]       # slots 1..3 only; 1-2 is cleaner than 2-3


@pytest.mark.parametrize("backend", EXACT)
def test_proven_optimum_is_reported_as_optimal_when_the_heuristic_ties(backend: str) -> None:
    """Flat intensity: the heuristic's plan is optimal too, and its objective may differ from
    the exact plan's in the last bits only. The status is still OPTIMAL."""
    request = small_request(slots=6, ci=[0.0] * 6, jobs=[
        job("a0", power_kw=0.5, duration_minutes=160, deadline=hours(3)),
        job("a1", power_kw=0.5, duration_minutes=40, deadline=hours(1), priority=0.5),
        job("a2", power_kw=0.5, duration_minutes=100, deadline=hours(2), interruptible=True,
            priority=0.5)])
    request["sites"][0]["gpu_capacity"] = 3
    request["sites"].append({"id": "b", "region": "R", "gpu_capacity": 1})
    request["objective"] = {"carbon_weight": 1.0, "delay_weight": 0.05}
    r = solve_checked(request, backend)
    # Every job can end as early as possible: the objective is the weighted waits alone.
    waits = {"a0": 3 - 160 / 60, "a1": (1 - 40 / 60) * 0.5, "a2": (2 - 100 / 60) * 0.5}
    assert r.objective == pytest.approx(0.05 * sum(waits.values()))
    assert r.status == "OPTIMAL"


# --- options ---------------------------------------------------------------------------------


def _busy_request(backend: str, time_limit: float) -> dict:
    rng = random.Random(7)
    T = 72
    request = small_request(slots=T, ci=[float(rng.randint(50, 500)) for _ in range(T)])
    request["sites"] = [{"id": s, "region": "R", "gpu_capacity": 16, "pue": 1.2,
                         "renewable_kw": [round(rng.uniform(0, 10), 1) for _ in range(T)]}
                        for s in "abc"]
    request["jobs"] = [job(f"j{i}", gpus=rng.randint(1, 8), power_kw=rng.randint(1, 20) / 2,
                           duration_minutes=60 * rng.randint(1, 8),
                           interruptible=rng.random() < 0.4, min_run_minutes=120)
                       for i in range(60)]
    request["options"].update(backend=backend, time_limit_seconds=time_limit)
    return request


@pytest.mark.parametrize("backend", EXACT)
def test_time_limit_is_honoured(backend: str) -> None:
    limit = 1.0
    problem = problem_of(_busy_request(backend, limit))
    started = time.monotonic()
    result = solve_checked(problem)
    elapsed = time.monotonic() - started
    assert elapsed <= limit + 2.0
    assert result.status in ("OPTIMAL", "FEASIBLE")
    assert len(result.plan.placements) == problem.n_jobs


def _tied_request(backend: str, seed: int, workers: int = 0) -> dict:
    # Flat intensity and three identical sites: many plans tie, so the seed could matter.
    request = small_request(slots=8, ci=[100.0] * 8, jobs=[
        job(f"j{i}", gpus=2, power_kw=1.5, duration_minutes=120, interruptible=i % 2 == 1)
        for i in range(6)])
    request["sites"] = [{"id": s, "region": "R", "gpu_capacity": 4} for s in "abc"]
    request["options"].update(backend=backend, random_seed=seed, workers=workers)
    return request


def _layout(result) -> dict[str, tuple[str, tuple[int, ...]]]:
    p = result.problem
    return {p.job_ids[j]: (p.site_ids[pl.site], pl.slots)
            for j, pl in result.plan.placements.items()}


@pytest.mark.parametrize(("backend", "workers"), [("HIGHS", 0), ("CPSAT", 1), ("GREEDY", 0)])
def test_same_random_seed_gives_the_same_plan(backend: str, workers: int) -> None:
    # CP-SAT is only deterministic with one worker (parallel workers race).
    first = solve_checked(_tied_request(backend, seed=11, workers=workers))
    again = solve_checked(_tied_request(backend, seed=11, workers=workers))
    assert _layout(first) == _layout(again)
    assert first.objective == pytest.approx(again.objective)


@pytest.mark.parametrize("backend", EXACT)
def test_workers_one_works_after_other_worker_counts(backend: str) -> None:
    """HiGHS keeps one thread pool per process; a request for another thread count than the
    first must still be solved, not fail."""
    results = [solve_checked(_tied_request(backend, seed=3, workers=w)) for w in (2, 1, 0, 1)]
    for r in results:
        assert r.status == "OPTIMAL", r.detail
    assert len({round(r.objective, 9) for r in results}) == 1


def test_plan_checker_rejects_what_the_solvers_must_avoid() -> None:
    """The checker that every test leans on flags each broken rule."""
    from gridshift.optimizer.plan import Placement

    request = small_request(slots=6, ci=[100.0] * 6, jobs=[
        job("c", gpus=6, power_kw=2.0, duration_minutes=120, deadline=hours(4)),
        job("i", gpus=6, power_kw=2.0, duration_minutes=180, interruptible=True,
            min_run_minutes=120, allowed_sites=["a"])])
    request["sites"][0]["power_cap_kw"] = 3.0
    request["sites"].append({"id": "b", "region": "R", "gpu_capacity": 8})
    p = problem_of(request)
    cases = {
        "not interruptible": Plan({0: Placement(0, (0, 2)), 1: Placement(0, (3, 4, 5))}),
        "outside its window": Plan({0: Placement(0, (3, 4)), 1: Placement(0, (0, 1, 2))}),
        "shorter than min_run": Plan({0: Placement(1, (0, 1)), 1: Placement(0, (0, 2, 3))}),
        "not allowed": Plan({0: Placement(0, (0, 1)), 1: Placement(1, (3, 4, 5))}),
        "GPUs > capacity": Plan({0: Placement(0, (0, 1)), 1: Placement(0, (1, 2, 3))}),
        "power cap": Plan({0: Placement(0, (0, 1)), 1: Placement(0, (1, 2, 3))}),
        "needs 2": Plan({0: Placement(0, (0,)), 1: Placement(0, (3, 4, 5))}),
        "neither placed": Plan({0: Placement(1, (0, 1))}),
    }
    for fragment, plan in cases.items():
        violations = check_plan(p, plan).violations
        assert any(fragment in v for v in violations), (fragment, violations)
    fine = Plan({0: Placement(1, (0, 1)), 1: Placement(0, (0, 1, 2))})
    assert check_plan(p, fine).ok
    assert math.isclose(check_plan(p, fine).energy_kwh, 2.0 * 2 + 2.0 * 3)
