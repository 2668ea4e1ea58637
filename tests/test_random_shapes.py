"""bench/random_shapes.py: the draws are reproducible and varied, and a few small ones go
through the whole solver with every plan passing the independent checker (the benchmark
itself runs the larger ones)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import random_shapes  # noqa: E402

SEEDS = range(1, 61)


def test_a_seed_always_draws_the_same_instance_and_call() -> None:
    assert [random_shapes.draw(s) for s in SEEDS] == [random_shapes.draw(s) for s in SEEDS]
    assert random_shapes.request_of(random_shapes.draw(7)) == random_shapes.request_of(
        random_shapes.draw(7))


def test_the_draws_cover_both_families_weights_sizes_and_limits() -> None:
    draws = [random_shapes.draw(s) for s in SEEDS]
    assert {d.family for d in draws} == {"tight", "generous"}
    assert any(d.cost_weight for d in draws) and any(d.delay_weight for d in draws)
    assert len({d.jobs for d in draws}) >= 6 and len({d.limit_s for d in draws}) >= 5
    assert len({(d.slots, d.slot_minutes) for d in draws}) >= 5


def test_prices_are_given_wherever_cost_counts() -> None:
    d = next(random_shapes.draw(s) for s in SEEDS if random_shapes.draw(s).cost_weight)
    request = random_shapes.request_of(d)
    for forecast in request["forecasts"]:
        assert len(forecast["price_per_mwh"]) == len(forecast["carbon_intensity"])


def test_small_draws_solve_to_checked_plans_that_place_every_job() -> None:
    small = [s for s in SEEDS if random_shapes.draw(s).jobs <= 25][:3]
    assert len(small) == 3
    for seed in small:
        result = random_shapes.run_once(seed)
        assert result["ok"], (seed, result["detail"])
        assert result["unplaced"] == 0, (seed, result["detail"])


def test_an_exact_solver_past_its_limit_is_killed_within_a_grace_that_scales_with_it() -> None:
    """Seed 211 (300 jobs, 3 sites, a week of hourly slots: 24,000 columns) is a model whose
    HiGHS presolve, which never looks at the clock, outlasts a 1 s limit. A flat half second
    of grace let its 3 s call end at 3.4 s; the grace is now a share of the limit."""
    import time

    from gridshift.optimizer.backends.isolated import kill_grace_s, solve_isolated
    from gridshift.optimizer.milp import build_milp
    from gridshift.optimizer.parsing import parse_request
    from gridshift.optimizer.problem import build_problem

    assert kill_grace_s(1.0) == 0.1 and kill_grace_s(4.0) == 0.2 and kill_grace_s(60.0) == 0.5
    problem = build_problem(parse_request(random_shapes.request_of(random_shapes.draw(211))))
    model = build_milp(problem, list(range(problem.n_jobs)))
    began = time.monotonic()
    result = solve_isolated("highs", model, time_limit_s=1.0, relative_gap=1e-4, workers=1)
    wall_s = time.monotonic() - began
    assert "killed at the wall-clock limit" in result.detail, result.detail
    assert wall_s < 1.0 + kill_grace_s(1.0) + 0.25, wall_s
