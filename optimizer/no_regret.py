"""No-regret planning: a plan shifts work only where the forecast's advantage outweighs its
uncertainty.

A plan moves a job away from running now (its earliest slot, at its home site: what a
carbon-agnostic scheduler would do) because the forecast says another window is cleaner. Where
the forecast's error is larger than the difference it is chasing, the move is a bet that loses
about as often as it wins, and the lowest of many noisy hours is more often low by error than
by fact. The rule judges the plan's bets together, over forecast scenarios of carbon intensity
(the same ones the risk measures use): the emissions the plan's shifts save against running
every shifted job now, ``advantage_k = sum_j (E_now,j,k - E_planned,j,k)`` in scenario ``k``,
must have a mean of at least ``z`` standard deviations::

    mean(advantage) >= z * std(advantage)          (and mean > 0)

``z = 1`` keeps a plan whose shifts save in about 84 % of scenarios. A caller that judges
many decisions together (a week of them) may give a loss budget: an allowance ``a`` (kg) and
the bets already in play ``b_k`` (kg saved in scenario ``k`` by earlier decisions: settled
savings, started jobs, the hours pending jobs have already waited). The plan's shifts are then
judged with them, ``x = b + advantage``: ``mean(x) - z * std(x) >= -a`` (and the shifts' own
mean > 0); a bet that passes the test on its own is never pulled back, whatever is in play
(pulling it back would only lose). Without a budget (``a`` = 0, nothing in play) this is the
test above. Judged together, many
small bets that each are close to a coin flip can be a sure saving (their errors partly
cancel); judged one by one they would all be refused. Where the plan's shifts fail the test,
the weakest bets (lowest mean / standard deviation of their own advantage; ties by job id) are
pulled back one by one, until the shifts left pass it or none is left. A pulled-back job runs
now where the GPUs and the power cap allow it beside the rest of the plan (jobs in order of
earliest slot, then id); otherwise at the earliest start at its home site, before its planned
start, where it fits (what a carbon-agnostic scheduler does with a job that must wait for
room); only where no such start fits does it keep its planned window. Job emissions here are energy
times intensity (facility power x slot hours x gCO2e/kWh); on-site supply is left out of the
test (a shift into on-site supply is judged by the grid's intensity alone). Committed jobs are
never moved.

Pure: numpy and the optimizer's types.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from gridshift.optimizer.accounting import site_loads
from gridshift.optimizer.baseline import earliest_fit_start
from gridshift.optimizer.plan import Placement, Plan
from gridshift.optimizer.problem import Problem

__all__ = ["NoRegretOutcome", "apply_no_regret", "shift_advantage_kg"]


@dataclass
class NoRegretOutcome:
    """The plan after the rule; which shifts were kept, pulled back (to run now, or as soon
    as it fits at home), or kept only because no earlier start fitted."""

    plan: Plan
    kept: list[int] = field(default_factory=list)
    pulled_back: list[int] = field(default_factory=list)
    no_room: list[int] = field(default_factory=list)


def _job_kg(problem: Problem, scenarios: np.ndarray, job: int, site: int,
            slots: np.ndarray) -> np.ndarray:
    """[n] emissions (kg) of ``job`` at ``site`` in ``slots`` under each scenario."""
    kwh = problem.facility_kw(job, site) * problem.slot_hours
    return kwh * scenarios[:, site, slots].sum(axis=1) / 1000.0


def _now_placement(problem: Problem, job: int) -> Placement:
    return Placement.contiguous(int(problem.home_site[job]), int(problem.first_slot[job]),
                                int(problem.duration_slots[job]))


def shift_advantage_kg(problem: Problem, scenarios: np.ndarray, job: int,
                       placement: Placement) -> np.ndarray:
    """[n] kg saved under each scenario by running ``job`` as placed instead of now at its home
    site. ``scenarios``: [n, S, T] carbon intensity (gCO2e/kWh) aligned to the slots."""
    now = _now_placement(problem, job)
    return (_job_kg(problem, scenarios, job, now.site, np.asarray(now.slots))
            - _job_kg(problem, scenarios, job, placement.site, np.asarray(placement.slots)))


def _t_value(advantage: np.ndarray) -> float:
    """Mean over standard deviation (inf for a sure saving, -inf for a sure loss)."""
    mean, std = float(advantage.mean()), float(advantage.std())
    if std > 0:
        return mean / std
    return math.inf if mean > 0 else -math.inf


def _downside(advantage: np.ndarray, z: float) -> float:
    """The z-sigma bad case of a saving: mean - z * std."""
    return float(advantage.mean()) - z * float(advantage.std())


def _justified(advantage: np.ndarray, z: float, in_play: np.ndarray,
               allowance_kg: float) -> bool:
    return float(advantage.mean()) > 0 and _downside(in_play + advantage, z) >= -allowance_kg


def apply_no_regret(problem: Problem, plan: Plan, scenarios: np.ndarray,
                    z: float = 1.0, allowance_kg: float = 0.0,
                    in_play_kg: np.ndarray | None = None) -> NoRegretOutcome:
    """``plan`` with every shift that the forecast scenarios do not justify (see the module
    docstring) pulled back to run now where it fits. ``scenarios``: [n, S, T] gCO2e/kWh; the
    loss budget: ``allowance_kg`` (>= 0) and ``in_play_kg`` ([n] kg saved by earlier bets in
    each scenario)."""
    if not math.isfinite(allowance_kg) or allowance_kg < 0:
        raise ValueError(f"allowance_kg must be finite and >= 0, got {allowance_kg}")
    in_play = np.zeros(scenarios.shape[0]) if in_play_kg is None else \
        np.asarray(in_play_kg, dtype=float)
    if in_play.shape != (scenarios.shape[0],) or not np.isfinite(in_play).all():
        raise ValueError(f"in_play_kg must be {scenarios.shape[0]} finite values")
    if scenarios.ndim != 3 or scenarios.shape[1:] != (problem.n_sites, problem.n_slots):
        raise ValueError(f"scenarios must be [n, {problem.n_sites}, {problem.n_slots}], got "
                         f"{list(scenarios.shape)}")
    outcome = NoRegretOutcome(Plan(dict(plan.placements), dict(plan.unscheduled)))
    committed = problem.committed if len(problem.committed) else \
        np.zeros(problem.n_jobs, dtype=bool)
    order = sorted(plan.placements, key=lambda j: (int(problem.first_slot[j]),
                                                   problem.job_ids[j]))
    shifted = [j for j in order
               if not committed[j] and plan.placements[j] != _now_placement(problem, j)]
    advantage = {j: shift_advantage_kg(problem, scenarios, j, plan.placements[j])
                 for j in shifted}
    total = sum((advantage[j] for j in shifted), np.zeros(scenarios.shape[0]))
    weakest = sorted(shifted, key=lambda j: (_t_value(advantage[j]), problem.job_ids[j]))
    unjustified: list[int] = []
    while weakest and not _justified(total, z, in_play, allowance_kg):
        if _t_value(advantage[weakest[0]]) >= z:
            break       # a bet justified on its own stays, whatever is in play
        j = weakest.pop(0)
        total = total - advantage[j]
        unjustified.append(j)
    dropped = set(unjustified)
    outcome.kept = [j for j in shifted if j not in dropped]
    unjustified.sort(key=order.index)
    gpus, load_kw = site_loads(problem, outcome.plan)
    for j in unjustified:
        placed = outcome.plan.placements[j]
        _remove(problem, gpus, load_kw, j, placed)
        target = _earliest_fit(problem, gpus, load_kw, j, placed) or placed
        _add(problem, gpus, load_kw, j, target)
        outcome.plan.placements[j] = target
        (outcome.no_room if target is placed else outcome.pulled_back).append(j)
    return outcome


def _earliest_fit(problem: Problem, gpus: np.ndarray, load_kw: np.ndarray, job: int,
                  placed: Placement) -> Placement | None:
    """``job`` run without a break at its home site, at the earliest start that fits, from
    its first slot up to its planned start; None where none fits before ``placed`` itself."""
    home, duration = int(problem.home_site[job]), int(problem.duration_slots[job])
    end = min(problem.n_slots, int(problem.last_slot[job]))
    start = earliest_fit_start(problem.gpu_capacity[home, :end] - gpus[home, :end],
                               problem.power_cap_kw[home] - load_kw[home, :end],
                               int(problem.gpus[job]), problem.facility_kw(job, home),
                               int(problem.first_slot[job]), duration)
    if start is None or start > placed.start_slot:
        return None
    candidate = Placement.contiguous(home, start, duration)
    return None if candidate == placed else candidate


def _remove(problem: Problem, gpus: np.ndarray, load_kw: np.ndarray, job: int,
            placement: Placement) -> None:
    idx = np.asarray(placement.slots)
    gpus[placement.site, idx] -= problem.gpus[job]
    load_kw[placement.site, idx] -= problem.facility_kw(job, placement.site)


def _add(problem: Problem, gpus: np.ndarray, load_kw: np.ndarray, job: int,
         placement: Placement) -> None:
    idx = np.asarray(placement.slots)
    gpus[placement.site, idx] += problem.gpus[job]
    load_kw[placement.site, idx] += problem.facility_kw(job, placement.site)
