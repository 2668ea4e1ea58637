"""When HiGHS reports an objective that does not match the solution it hands back, and no time
is left to solve again, the result carries the solution's own objective, is not called
optimal, and its detail says both figures and what was done (issue 17)."""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import problem_of

from gridshift.optimizer.backends import highs
from gridshift.optimizer.milp import build_milp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from instances import InstanceSpec, make_request  # noqa: E402


def test_a_mismatched_objective_is_replaced_and_said(monkeypatch) -> None:
    model = build_milp(problem_of(make_request(InstanceSpec("t", jobs=6, sites=2, slots=24,
                                                            seed=1))))
    real = highs._result

    def misreported(*args, **kwargs):
        result = real(*args, **kwargs)
        result.objective += 1.0
        return result

    monkeypatch.setattr(highs, "_result", misreported)
    # Without presolve there is no second solve to fall back on.
    result = highs.solve_highs(model, time_limit_s=10.0, relative_gap=0.0, presolve=False)
    assert result.values is not None
    actual = float(model.cost @ result.values + model.offset)
    assert result.objective == actual
    assert result.status == "feasible"
    assert "the solution's own objective is used" in result.detail
    assert "not called optimal" in result.detail
    assert f"{actual:.6g}" in result.detail
