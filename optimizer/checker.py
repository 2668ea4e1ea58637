"""The independent plan checker.

It re-derives everything from the problem's arrays with plain Python loops, shares no code
with the solvers or the vectorised accounting, and imports no solver library. A plan that
fails it is a bug.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gridshift.optimizer.plan import Plan
from gridshift.optimizer.problem import Problem

TOLERANCE_KW = 1e-6


@dataclass
class CheckResult:
    """Violations found (empty when the plan is valid) and the recomputed totals."""

    violations: list[str] = field(default_factory=list)
    energy_kwh: float = 0.0
    grid_energy_kwh: float = 0.0
    emissions_kg: float = 0.0
    cost: float = 0.0
    wait_hours: float = 0.0
    weighted_wait_hours: float = 0.0
    objective: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.violations


def check_plan(problem: Problem, plan: Plan) -> CheckResult:
    """Verify every hard constraint (docs/architecture.md) and recompute energy, emissions and
    cost."""
    result = CheckResult()
    n_sites, n_slots = len(problem.site_ids), problem.horizon.slots
    gpus_used = [[0] * n_slots for _ in range(n_sites)]
    it_kw = [[0.0] * n_slots for _ in range(n_sites)]
    for j in range(len(problem.job_ids)):
        placement = plan.placements.get(j)
        name = problem.job_ids[j]
        if placement is None:
            if j not in plan.unscheduled:
                result.violations.append(f"job {name}: neither placed nor listed as unscheduled")
            continue
        if j in plan.unscheduled:
            result.violations.append(f"job {name}: both placed and unscheduled")
        _check_placement(problem, j, placement, result.violations)
        for t in placement.slots:
            if 0 <= t < n_slots and 0 <= placement.site < n_sites:
                gpus_used[placement.site][t] += int(problem.gpus[j])
                it_kw[placement.site][t] += float(problem.power_kw[j])
        end_hours = (placement.slots[-1] + 1) * problem.horizon.slot_hours if placement.slots else 0
        wait = end_hours - float(problem.earliest_hours[j]) - problem.duration_minutes[j] / 60.0
        result.wait_hours += wait
        result.weighted_wait_hours += float(problem.priority[j]) * wait
    _check_sites_and_sum(problem, gpus_used, it_kw, result)
    w = problem.objective
    result.objective = (w.carbon_weight * result.emissions_kg + w.cost_weight * result.cost
                        + w.delay_weight * result.weighted_wait_hours)
    return result


def _check_placement(problem: Problem, j: int, placement, violations: list[str]) -> None:
    name = problem.job_ids[j]
    slots = list(placement.slots)
    if placement.site not in problem.allowed_sites[j]:
        violations.append(f"job {name}: site index {placement.site} is not allowed")
    if len(slots) != int(problem.duration_slots[j]):
        violations.append(f"job {name}: {len(slots)} slots, needs {problem.duration_slots[j]}")
    if slots != sorted(set(slots)):
        violations.append(f"job {name}: slots not sorted and distinct")
        return
    if slots and (slots[0] < problem.first_slot[j] or slots[-1] >= problem.last_slot[j]):
        violations.append(f"job {name}: runs outside its window "
                          f"[{problem.first_slot[j]}, {problem.last_slot[j]})")
    runs: list[int] = []
    previous = None
    for t in slots:
        if previous is not None and t == previous + 1:
            runs[-1] += 1
        else:
            runs.append(1)
        previous = t
    if not problem.interruptible[j] and len(runs) > 1:
        violations.append(f"job {name}: not interruptible but runs in {len(runs)} pieces")
    for length in runs:
        if length < problem.min_run_slots[j]:
            violations.append(f"job {name}: a run of {length} slot(s) is shorter than "
                              f"min_run ({problem.min_run_slots[j]} slots)")


def _check_sites_and_sum(problem: Problem, gpus_used, it_kw, result: CheckResult) -> None:
    hours = problem.horizon.slot_hours
    w_ci, w_price = problem.ci_g_per_kwh, problem.price_per_mwh
    for s in range(len(problem.site_ids)):
        pue = float(problem.pue[s])
        cap_kw = float(problem.power_cap_kw[s])
        for t in range(problem.horizon.slots):
            if gpus_used[s][t] > problem.gpu_capacity[s, t]:
                result.violations.append(
                    f"site {problem.site_ids[s]} slot {t}: {gpus_used[s][t]} GPUs > capacity "
                    f"{problem.gpu_capacity[s, t]}")
            load_kw = pue * it_kw[s][t]
            if load_kw > cap_kw + TOLERANCE_KW:
                result.violations.append(
                    f"site {problem.site_ids[s]} slot {t}: load {load_kw:.3f} kW > power cap "
                    f"{cap_kw:.3f} kW")
            grid_kw = max(0.0, load_kw - float(problem.renewable_kw[s, t]))
            result.energy_kwh += load_kw * hours
            result.grid_energy_kwh += grid_kw * hours
            result.emissions_kg += grid_kw * hours * float(w_ci[s, t]) / 1000.0
            result.cost += grid_kw * hours * float(w_price[s, t]) / 1000.0
