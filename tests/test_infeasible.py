"""INFEASIBLE requests: the jobs that cannot be placed are named with a reason that says why,
alone or as a conflicting set; with allow_partial they come back unscheduled and every other
job is planned (checker-verified)."""

from __future__ import annotations

import copy
import itertools

import pytest
from conftest import hours, job, problem_of, small_request, solve_checked
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_properties import Instance, brute_force_optimum, instances

from gridshift.adapters.codec import to_response
from gridshift.api.v1 import optimize_pb2 as pb

ALL = ["HIGHS", "CPSAT", "GREEDY"]


def request_of(jobs: list[dict], slots: int = 6, partial: bool = False, **site_b) -> dict:
    """Site a (8 GPUs) and site b (8 GPUs unless overridden), flat intensity."""
    request = small_request(slots=slots, ci=[100.0] * slots, jobs=jobs)
    request["sites"].append({"id": "b", "region": "R", "gpu_capacity": 8, **site_b})
    request["options"].update(allow_partial=partial, time_limit_seconds=5)
    return request


def unscheduled_by_id(result) -> dict[str, str]:
    p = result.problem
    return {p.job_ids[j]: why for j, why in result.plan.unscheduled.items()}


def placed_ids(result) -> set[str]:
    return {result.problem.job_ids[j] for j in result.plan.placements}


def assert_partial_plan(result, left_out: set[str]) -> None:
    """allow_partial: exactly `left_out` unscheduled, every other job placed (and checked)."""
    assert result.status in ("OPTIMAL", "FEASIBLE")
    assert set(unscheduled_by_id(result)) == left_out
    assert placed_ids(result) == set(result.problem.job_ids) - left_out
    response = to_response(result)
    assert response.status != pb.PlanStatus.Value("INFEASIBLE")
    assert {u.job_id for u in response.unscheduled} == left_out
    assert all(u.reason for u in response.unscheduled)
    assert {a.job_id for a in response.assignments} == placed_ids(result)


# --- jobs that cannot be placed even alone ---------------------------------------------------


@pytest.mark.parametrize("backend", ALL)
def test_job_needing_more_gpus_than_any_allowed_site(backend: str) -> None:
    # Site b has 16 GPUs, but the job may only run at a (8).
    jobs = [job("huge", gpus=12, allowed_sites=["a"]), job("ok", gpus=2)]
    r = solve_checked(request_of(jobs, gpu_capacity=16), backend)
    assert r.status == "INFEASIBLE"
    reasons = unscheduled_by_id(r)
    assert set(reasons) == {"huge"}
    assert "12 GPUs" in reasons["huge"] and "at most 8" in reasons["huge"]
    assert "alone" in reasons["huge"]
    response = to_response(r)
    assert response.status == pb.PlanStatus.Value("INFEASIBLE")
    assert [u.job_id for u in response.unscheduled] == ["huge"]

    partial = solve_checked(request_of(jobs, partial=True, gpu_capacity=16), backend)
    assert_partial_plan(partial, {"huge"})


@pytest.mark.parametrize("backend", ALL)
def test_job_above_every_allowed_power_cap(backend: str) -> None:
    # 6 kW x PUE 1.2 = 7.2 kW > 5 kW at a; b (no cap) is not allowed.
    jobs = [job("hot", power_kw=6.0, allowed_sites=["a"]), job("ok", power_kw=1.0)]
    request = request_of(jobs)
    request["sites"][0].update(pue=1.2, power_cap_kw=5.0)
    r = solve_checked(request, backend)
    assert r.status == "INFEASIBLE"
    reasons = unscheduled_by_id(r)
    assert set(reasons) == {"hot"}
    assert "7.2 kW" in reasons["hot"] and "power cap" in reasons["hot"]

    request["options"]["allow_partial"] = True
    assert_partial_plan(solve_checked(request, backend), {"hot"})


@pytest.mark.parametrize("backend", ALL)
def test_capacity_windows_leave_no_stretch_long_enough(backend: str) -> None:
    # Maintenance at 1:00-2:00 and 4:00-5:00 leaves stretches of 1, 2 and 1 slots.
    jobs = [job("long", duration_minutes=180, allowed_sites=["a"]), job("short")]
    request = request_of(jobs)
    request["sites"][0]["capacity_windows"] = [
        {"start": hours(1), "end": hours(2), "gpu_capacity": 0},
        {"start": hours(4), "end": hours(5), "gpu_capacity": 0}]
    r = solve_checked(request, backend)
    assert r.status == "INFEASIBLE"
    reasons = unscheduled_by_id(r)
    assert set(reasons) == {"long"}
    assert "no 3-slot stretch" in reasons["long"]

    request["options"]["allow_partial"] = True
    assert_partial_plan(solve_checked(request, backend), {"long"})


def test_reason_names_each_site_when_sites_fail_for_different_reasons() -> None:
    # At a the job lacks GPUs (4 < 6); at b the 2 kW cap is below its 3 kW.
    request = request_of([job("picky", gpus=6, power_kw=3.0)], power_cap_kw=2.0)
    request["sites"][0]["gpu_capacity"] = 4
    r = solve_checked(request, "HIGHS")
    assert r.status == "INFEASIBLE"
    reason = unscheduled_by_id(r)["picky"]
    assert "a has at most 4 GPUs" in reason
    assert "b caps power at 2.0 kW" in reason
    assert "capacity windows" not in reason


# --- jobs that cannot be placed together -----------------------------------------------------


def _contended(partial: bool) -> dict:
    # Three 6-GPU jobs in the same two 1-slot chances at a (8 GPUs): only two fit. The
    # bystanders do not contend: one runs at b in the same hours, one at a later on.
    window = dict(earliest_start=hours(1), deadline=hours(3), allowed_sites=["a"])
    jobs = [job("x1", gpus=6, **window), job("x2", gpus=6, **window),
            job("x3", gpus=6, **window),
            job("by_b", gpus=8, allowed_sites=["b"], earliest_start=hours(1),
                deadline=hours(3)),
            job("by_later", gpus=2, allowed_sites=["a"], earliest_start=hours(4))]
    return request_of(jobs, partial=partial)


@pytest.mark.parametrize("backend", ALL)
def test_jointly_infeasible_jobs_are_named_as_a_conflicting_set(backend: str) -> None:
    r = solve_checked(_contended(partial=False), backend)
    assert r.status == "INFEASIBLE"
    reasons = unscheduled_by_id(r)
    assert len(reasons) == 1                     # two of the three fit; one is left out
    (left_out, reason), = reasons.items()
    assert left_out in {"x1", "x2", "x3"}
    j = r.problem.job_ids.index(left_out)
    assert {r.problem.job_ids[k] for k in r.conflicts[j]} == {"x1", "x2", "x3"}
    assert "conflicting set {x1, x2, x3}" in reason
    assert "by_b" not in reason and "by_later" not in reason
    response = to_response(r)
    assert response.status == pb.PlanStatus.Value("INFEASIBLE")
    assert [u.job_id for u in response.unscheduled] == [left_out]


@pytest.mark.parametrize("backend", ALL)
def test_partial_plan_leaves_out_one_of_the_conflicting_jobs(backend: str) -> None:
    r = solve_checked(_contended(partial=True), backend)
    reasons = unscheduled_by_id(r)
    assert len(reasons) == 1
    (left_out,) = reasons
    assert left_out in {"x1", "x2", "x3"}
    assert_partial_plan(r, {left_out})
    assert "conflicting set {x1, x2, x3}" in reasons[left_out]


def _chain(partial: bool = False, jobs: list[str] | None = None) -> dict:
    """One GPU. `first` must hold slots 0-1, which pushes `mid` (slot 1 or 2) to slot 2,
    where `last` (slot 2 only) needed to be. `first` and `last` share no slot."""
    all_jobs = {"first": job("first", duration_minutes=120, deadline=hours(2)),
                "mid": job("mid", earliest_start=hours(1), deadline=hours(3)),
                "last": job("last", earliest_start=hours(2), deadline=hours(3)),
                "elsewhere": job("elsewhere", earliest_start=hours(3))}
    request = request_of([all_jobs[k] for k in (jobs or list(all_jobs))], slots=4,
                         partial=partial)
    request["sites"] = request["sites"][:1]
    request["sites"][0]["gpu_capacity"] = 1
    return request


@pytest.mark.parametrize("backend", ["HIGHS", "CPSAT"])
def test_conflicting_set_follows_a_chain_of_contention(backend: str) -> None:
    """Whichever job is left out, its set is {first, mid, last}: the job left out may contend
    with only one of the others directly, and that pair alone would fit."""
    r = solve_checked(_chain(), backend)
    assert r.status == "INFEASIBLE"
    (left_out, reason), = unscheduled_by_id(r).items()
    j = r.problem.job_ids.index(left_out)
    members = {r.problem.job_ids[k] for k in r.conflicts[j]}
    assert members == {"first", "mid", "last"}
    assert "minimal conflicting set" in reason
    # Minimal indeed: without any one member the rest (with the bystander) is feasible.
    for dropped in members:
        rest = [k for k in ("first", "mid", "last", "elsewhere") if k != dropped]
        assert solve_checked(_chain(jobs=rest), backend).status == "OPTIMAL"


@pytest.mark.parametrize("left_out", ["first", "mid", "last"])
def test_conflict_set_of_each_chain_member_is_the_whole_chain(left_out: str) -> None:
    from gridshift.optimizer.diagnosis import conflict_set

    p = problem_of(_chain())
    j = p.job_ids.index(left_out)
    members, minimal = conflict_set(p, j, excluded=set(), budget_s=5.0)
    assert {p.job_ids[k] for k in members} == {"first", "mid", "last"}
    assert minimal


@pytest.mark.parametrize("backend", ["HIGHS", "CPSAT"])
def test_partial_plan_is_still_solved_exactly(backend: str) -> None:
    """With a job left out, the exact backend still optimises the others (and says so)."""
    ci = [300.0, 250.0, 10.0, 20.0, 200.0, 220.0]
    jobs = [job("huge", gpus=12, allowed_sites=["a"]),
            job("x", gpus=6, duration_minutes=120, allowed_sites=["a"]),
            job("y", gpus=6, duration_minutes=120, allowed_sites=["a"])]
    request = small_request(slots=6, ci=ci, jobs=jobs)
    request["options"].update(allow_partial=True, time_limit_seconds=5)
    r = solve_checked(request, backend)
    assert_partial_plan(r, {"huge"})
    assert r.status == "OPTIMAL", r.detail
    assert "rejected" not in r.detail
    # x and y cannot overlap (12 GPUs > 8): the best pair of disjoint 2-slot windows.
    windows = {t: (ci[t] + ci[t + 1]) / 1000 for t in range(5)}
    best = min(windows[s] + windows[t] for s in range(5) for t in range(5) if abs(s - t) >= 2)
    assert r.objective == pytest.approx(best)


def test_heuristic_packing_failure_is_not_reported_as_infeasible() -> None:
    """One GPU, five slots. The heuristic puts the 2-slot job in the cleanest slots 1-2 and
    then finds no room for the 3-slot job (due by 4:00); 0-2 and 3-4 fit both, so even the
    GREEDY backend must not call the request INFEASIBLE."""
    request = small_request(slots=5, ci=[1.0, 0.0, 0.0, 0.0, 0.0], jobs=[
        job("two", duration_minutes=120), job("three", duration_minutes=180,
                                               deadline=hours(4))])
    request["sites"][0]["gpu_capacity"] = 1
    for backend in ALL:
        r = solve_checked(copy.deepcopy(request), backend)
        assert r.status in ("OPTIMAL", "FEASIBLE"), (backend, r.plan.unscheduled)
        assert placed_ids(r) == {"two", "three"}


def test_partial_plan_with_both_kinds_of_reason() -> None:
    jobs = [job("huge", gpus=12, allowed_sites=["a"])]
    request = _contended(partial=True)
    request["jobs"] += jobs
    r = solve_checked(request, "HIGHS")
    reasons = unscheduled_by_id(r)
    assert "huge" in reasons and "alone" in reasons["huge"]
    (joint,) = set(reasons) - {"huge"}
    assert "conflicting set" in reasons[joint] and "huge" not in reasons[joint]
    assert_partial_plan(r, {"huge", joint})
    assert problem_of(request).n_jobs == len(r.plan.placements) + 2


# --- a property: INFEASIBLE exactly when enumeration finds no plan ---------------------------


@st.composite
def _squeezed(draw):
    """Witness-feasible tiny instances (see test_properties) with capacity then taken away
    and demand added, so that many cannot be planned in full."""
    inst = draw(instances(max_sites=2, max_slots=5, max_jobs=3, interruptible=False))
    for site in inst.sites:
        site.gpu_capacity = max(1, site.gpu_capacity - draw(st.integers(0, 4)))
        site.windows = [(a, b, min(c, site.gpu_capacity)) for a, b, c in site.windows]
        if site.power_cap_kw is not None:
            site.power_cap_kw = max(0.5, site.power_cap_kw - draw(st.sampled_from([0, 0.5, 1])))
    for spec in inst.jobs:
        spec.gpus += draw(st.integers(0, 2))
    return inst


def _subset(inst: Instance, members) -> Instance:
    return Instance(inst.slots, inst.sites, [inst.jobs[k] for k in members], inst.ci,
                    inst.price, inst.weights)


@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(inst=_squeezed(), partial=st.booleans())
def test_infeasible_exactly_when_no_plan_exists(inst: Instance, partial: bool) -> None:
    """Against enumeration: a request is INFEASIBLE (or partial) only when no plan places every
    job; each conflicting set is itself unplannable, and minimal when it says so; a partial
    plan places as many jobs as any plan can."""
    feasible = brute_force_optimum(inst) is not None
    event("plannable in full" if feasible else "not plannable in full")
    n = len(inst.jobs)
    most = max(len(c) for k in range(n + 1) for c in itertools.combinations(range(n), k)
               if not c or brute_force_optimum(_subset(inst, c)) is not None)
    for backend in ALL:
        request = inst.request(backend)
        request["options"].update(allow_partial=partial, time_limit_seconds=3)
        r = solve_checked(request)
        if feasible:
            assert r.status != "INFEASIBLE" and not r.plan.unscheduled, (backend, r.plan)
            continue
        assert r.plan.unscheduled
        assert (r.status == "INFEASIBLE") == (not partial)
        if r.conflicts:
            event(f"{backend}: conflicting set named")
        for j, members in r.conflicts.items():
            assert brute_force_optimum(_subset(inst, members)) is None, (backend, members)
            if "minimal conflicting set" in r.plan.unscheduled[j]:
                for k in members:
                    rest = [m for m in members if m != k]
                    assert brute_force_optimum(_subset(inst, rest)) is not None
        if partial:
            assert len(r.plan.placements) == most, (backend, r.plan.placements, most)
