"""No-regret planning (optimizer/no_regret.py): a shift away from running now is kept only
where the forecast scenarios' mean saving is at least z standard deviations; otherwise the job
is pulled back to run now where it fits, else kept. Every resulting plan passes the
independent checker."""

from __future__ import annotations

import numpy as np
import pytest

from gridshift.optimizer.checker import check_plan
from gridshift.optimizer.no_regret import apply_no_regret, shift_advantage_kg
from gridshift.optimizer.parsing import parse_request
from gridshift.optimizer.plan import Placement, Plan
from gridshift.optimizer.problem import Problem, build_problem

SLOTS = 6


def _problem(capacity: int = 2) -> Problem:
    jobs = [{"id": name, "gpus": 1, "power_kw": 1.0, "duration_minutes": 60,
             "earliest_start": "2030-01-01T00:00:00Z", "deadline": "2030-01-01T06:00:00Z",
             "home_site": "s"} for name in ("a", "b")]
    return build_problem(parse_request({
        "horizon": {"start": "2030-01-01T00:00:00Z", "slot_minutes": 60, "slots": SLOTS},
        "sites": [{"id": "s", "region": "R", "gpu_capacity": capacity, "pue": 1.0}],
        "jobs": jobs,
        "forecasts": [{"region": "R", "start": "2030-01-01T00:00:00Z", "slot_minutes": 60,
                       "carbon_intensity": [300.0, 300, 200, 300, 300, 300]}]}))


def _scenarios(slot2: np.ndarray) -> np.ndarray:
    out = np.full((len(slot2), 1, SLOTS), 300.0)
    out[:, 0, 2] = slot2
    return out


def _plan(start_a: int, start_b: int) -> Plan:
    return Plan({0: Placement.contiguous(0, start_a, 1), 1: Placement.contiguous(0, start_b, 1)})


def test_a_sure_saving_is_kept_and_a_coin_flip_is_pulled_back() -> None:
    problem = _problem()
    rng = np.random.default_rng(0)
    sure = _scenarios(200.0 + rng.normal(0.0, 10.0, 64))        # saves 100 +- 10 g/kWh
    outcome = apply_no_regret(problem, _plan(2, 0), sure, z=1.0)
    assert outcome.kept == [0] and not outcome.pulled_back
    assert outcome.plan.placements[0].start_slot == 2
    advantage = shift_advantage_kg(problem, sure, 0, Placement.contiguous(0, 2, 1))
    assert advantage.mean() == pytest.approx(0.1, abs=0.01)      # 1 kWh x 100 g/kWh

    flip = _scenarios(290.0 + rng.normal(0.0, 100.0, 64))       # saves 10 +- 100 g/kWh
    outcome = apply_no_regret(problem, _plan(2, 0), flip, z=1.0)
    assert outcome.pulled_back == [0] and not outcome.kept
    assert outcome.plan.placements[0].start_slot == 0
    assert check_plan(problem, outcome.plan).ok
    # z = 0 keeps any shift with a positive mean saving.
    assert apply_no_regret(problem, _plan(2, 0), flip, z=0.0).kept == [0]


def test_a_shift_without_room_to_run_now_runs_as_soon_as_it_fits() -> None:
    """Capacity 1: job b runs now, so a's unjustified shift to slot 2 cannot run now; it runs
    at slot 1, the earliest start with room, as a carbon-agnostic scheduler would run it."""
    problem = _problem(capacity=1)
    flip = _scenarios(290.0 + np.random.default_rng(1).normal(0.0, 100.0, 64))
    outcome = apply_no_regret(problem, _plan(2, 0), flip, z=1.0)
    assert outcome.pulled_back == [0] and not outcome.no_room
    assert outcome.plan.placements[0] == Placement.contiguous(0, 1, 1)
    assert check_plan(problem, outcome.plan).ok


def test_a_shift_with_no_earlier_room_keeps_its_window() -> None:
    """Capacity 1: a is planned at slot 1 for no gain, and the only earlier start (slot 0) is
    b's: a keeps slot 1, counted as kept for want of room."""
    problem = _problem(capacity=1)
    flip = _scenarios(290.0 + np.random.default_rng(1).normal(0.0, 100.0, 64))
    outcome = apply_no_regret(problem, _plan(1, 0), flip, z=1.0)
    assert outcome.no_room == [0] and not outcome.pulled_back
    assert outcome.plan.placements[0].start_slot == 1
    assert check_plan(problem, outcome.plan).ok


def test_scenarios_must_match_the_problem() -> None:
    with pytest.raises(ValueError, match="scenarios must be"):
        apply_no_regret(_problem(), _plan(2, 0), np.ones((4, 2, SLOTS)))


def test_bets_are_judged_together_and_the_weakest_goes_first() -> None:
    """a saves 100 +- 10 g/kWh at slot 2, b 10 +- 100 at slot 4: together (110 +- ~100) they
    pass z = 1, so both shifts stay; at z = 1.5 the weaker bet (b) is pulled back and a, on
    its own a sure saving, stays."""
    problem = _problem()
    rng = np.random.default_rng(2)
    scenarios = _scenarios(200.0 + rng.normal(0.0, 10.0, 256))
    scenarios[:, 0, 4] = 290.0 + rng.normal(0.0, 100.0, 256)
    together = apply_no_regret(problem, _plan(2, 4), scenarios, z=1.0)
    assert together.kept == [0, 1] and not together.pulled_back
    strict = apply_no_regret(problem, _plan(2, 4), scenarios, z=1.5)
    assert strict.kept == [0] and strict.pulled_back == [1]
    assert strict.plan.placements[1].start_slot == 0
    assert check_plan(problem, strict.plan).ok


def test_an_allowance_keeps_a_small_risky_bet_and_bets_in_play_use_it_up() -> None:
    """a's shift saves 10 +- 100 g/kWh on 1 kWh: 0.01 +- 0.1 kg, a coin flip that z = 1 pulls
    back. An allowance of 0.2 kg lets it risk its 1-sigma bad case (-0.09 kg); bets already in
    play that have lost 0.15 kg leave too little room, and bets in play with a sure gain of
    0.1 kg make room without any allowance."""
    problem = _problem()
    flip = _scenarios(290.0 + np.random.default_rng(4).normal(0.0, 100.0, 64))
    n = flip.shape[0]
    assert apply_no_regret(problem, _plan(2, 0), flip, z=1.0).pulled_back == [0]
    roomy = apply_no_regret(problem, _plan(2, 0), flip, z=1.0, allowance_kg=0.2)
    assert roomy.kept == [0] and roomy.plan.placements[0].start_slot == 2
    assert check_plan(problem, roomy.plan).ok
    used_up = apply_no_regret(problem, _plan(2, 0), flip, z=1.0, allowance_kg=0.2,
                              in_play_kg=np.full(n, -0.15))
    assert used_up.pulled_back == [0] and used_up.plan.placements[0].start_slot == 0
    ahead = apply_no_regret(problem, _plan(2, 0), flip, z=1.0, allowance_kg=0.0,
                            in_play_kg=np.full(n, 0.1))
    assert ahead.kept == [0]


def test_the_loss_budget_is_validated() -> None:
    flip = _scenarios(np.full(8, 250.0))
    with pytest.raises(ValueError, match="allowance_kg"):
        apply_no_regret(_problem(), _plan(2, 0), flip, allowance_kg=-1.0)
    with pytest.raises(ValueError, match="in_play_kg"):
        apply_no_regret(_problem(), _plan(2, 0), flip, in_play_kg=np.zeros(3))


def test_a_bet_justified_on_its_own_stays_whatever_is_in_play() -> None:
    """Bets in play far past the budget pull back the bets that need them (the coin flip),
    never one that passes the test alone (the sure saving): pulling it back would only lose."""
    problem = _problem()
    rng = np.random.default_rng(6)
    sure = _scenarios(200.0 + rng.normal(0.0, 10.0, 64))
    lost = np.full(64, -10.0)
    outcome = apply_no_regret(problem, _plan(2, 0), sure, z=1.0, allowance_kg=0.1,
                              in_play_kg=lost)
    assert outcome.kept == [0] and outcome.plan.placements[0].start_slot == 2
    flip = _scenarios(290.0 + rng.normal(0.0, 100.0, 64))
    assert apply_no_regret(problem, _plan(2, 0), flip, z=1.0, allowance_kg=0.1,
                           in_play_kg=lost).pulled_back == [0]
