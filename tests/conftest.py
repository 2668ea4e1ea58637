"""Shared test helpers: small request builders and the checker-backed plan assertion."""

from __future__ import annotations

import copy
import os
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from gridshift.optimizer.checker import check_plan
from gridshift.optimizer.parsing import parse_request
from gridshift.optimizer.problem import Problem, build_problem
from gridshift.optimizer.solve import SolveResult, solve

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def _isolated_data_dir(tmp_path_factory: pytest.TempPathFactory):
    """Forecast caches and stores go to a temporary folder, never the user's data dir; the
    providers are not asked (no credentials, no URLs) unless a test sets them up."""
    provider_vars = ("GRIDSHIFT_EMAPS_TOKEN", "GRIDSHIFT_WATTTIME_USER",
                     "GRIDSHIFT_WATTTIME_PASSWORD", "GRIDSHIFT_OPENMETEO_URL",
                     "GRIDSHIFT_UKCI_URL", "GRIDSHIFT_EMAPS_URL", "GRIDSHIFT_WATTTIME_URL")
    saved = {k: os.environ.get(k) for k in ("GRIDSHIFT_DATA_DIR", *provider_vars)}
    for key in provider_vars:
        os.environ.pop(key, None)
    os.environ["GRIDSHIFT_DATA_DIR"] = str(tmp_path_factory.mktemp("gridshift-data"))
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
SHARED_DATA = Path(os.environ.get("GRIDSHIFT_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))
START = "2026-06-15T00:00:00Z"


def settings_for_tests(data_dir: Path | None = None, **environ: str):
    """Settings as a deployment without provider credentials would have them: the data
    directory ``data_dir`` (default: the session's temporary one), ``environ`` on top
    (``GRIDSHIFT_*`` names)."""
    from gridshift.settings import load_settings

    env = {"GRIDSHIFT_DATA_DIR": str(data_dir or os.environ["GRIDSHIFT_DATA_DIR"]),
           "HOME": str(data_dir or os.environ["GRIDSHIFT_DATA_DIR"]), **environ}
    return load_settings(environ=env)


def make_app(store=None, **options):
    """The application as the bootstrap wires it, by default with no plan store; ``store``:
    a PlanStore; other keywords go to build_app (forecast_service, http_factory, solve)."""
    from gridshift.bootstrap import build_app

    return build_app(options.pop("settings", None) or settings_for_tests(), store=store, **options)


def prepare(request: dict, sources=None) -> Problem:
    """A request compiled as the service compiles it (forecasts and site supply resolved with
    the default wiring; no provider is configured in tests)."""
    return make_app().planner.prepare(request, sources=sources)


def hours(h: float) -> str:
    """RFC 3339 timestamp `h` hours after START."""
    from datetime import datetime, timedelta

    t = datetime(2026, 6, 15, tzinfo=UTC) + timedelta(hours=h)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def small_request(slots: int = 8, ci: list[float] | None = None, **overrides: Any) -> dict:
    """A valid request: one site `a` (8 GPUs, region R), an hourly forecast, no jobs."""
    ci = ci if ci is not None else [100.0 + 10 * t for t in range(slots)]
    request = {
        "horizon": {"start": START, "slot_minutes": 60, "slots": slots},
        "sites": [{"id": "a", "region": "R", "gpu_capacity": 8}],
        "jobs": [],
        "forecasts": [{"region": "R", "start": START, "slot_minutes": 60,
                       "carbon_intensity": ci}],
        "options": {"relative_gap": 1e-9, "time_limit_seconds": 20},
    }
    request.update(copy.deepcopy(overrides))
    return request


def job(job_id: str, gpus: int = 1, power_kw: float = 1.0, duration_minutes: int = 60,
        **extra: Any) -> dict:
    return {"id": job_id, "gpus": gpus, "power_kw": power_kw,
            "duration_minutes": duration_minutes, **extra}


def problem_of(request: dict) -> Problem:
    return build_problem(parse_request(request))


def solve_checked(request: dict | Problem, backend: str | None = None) -> SolveResult:
    """Solve and assert the independent checker accepts the plan and agrees on the figures."""
    problem = request if isinstance(request, Problem) else problem_of(
        _with_backend(request, backend))
    result = solve(problem)
    assert_plan_valid(result)
    return result


def _with_backend(request: dict, backend: str | None) -> dict:
    if backend is None:
        return request
    request = copy.deepcopy(request)
    request.setdefault("options", {})["backend"] = backend
    return request


def assert_plan_valid(result: SolveResult) -> None:
    """Every solver result in a test goes through the independent checker."""
    check = check_plan(result.problem, result.plan)
    if result.status == "INFEASIBLE":
        return
    assert check.ok, check.violations
    totals = result.figures.totals
    assert totals.emissions_kg == pytest.approx(check.emissions_kg, rel=1e-9, abs=1e-9)
    assert totals.cost == pytest.approx(check.cost, rel=1e-9, abs=1e-9)
    assert totals.energy_kwh == pytest.approx(check.energy_kwh, rel=1e-9, abs=1e-9)
    assert totals.grid_energy_kwh == pytest.approx(check.grid_energy_kwh, rel=1e-9, abs=1e-9)
    assert result.objective == pytest.approx(check.objective, rel=1e-9, abs=1e-9)
    assert result.best_bound <= result.objective + 1e-6 * max(1.0, abs(result.objective))


def needs_shared_data(*parts: str) -> Path:
    """Path under ../shared/data, or skip the test with a reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path} (only present in the development tree)")
    return path


def checked_planner_plan(planner, source: str):
    """A scheduler integration's PlanFn (gridshift.app.scheduler_plans.planner_plan) whose every
    plan is first verified by the independent checker; the plans it made, for the test."""
    from gridshift.app.scheduler_plans import planner_plan

    made: list[Any] = []

    def checking_solve(problem, *args, **kwargs):
        result = original(problem, *args, **kwargs)
        check = check_plan(result.problem, result.plan)
        assert check.ok, check.violations
        made.append(result)
        return result

    original = planner.solve
    planner.solve = checking_solve
    plan = planner_plan(planner, source)
    plan.made = made
    return plan
