"""The `gridshift` command, run for real in a subprocess (`python -m gridshift.cli`).

Every plan the command writes is checked here by hand against its request: windows, durations,
capacities and power caps, and the totals recomputed from the assignments and the request's
forecasts (emissions = Σ max(0, pue * Σ power_kw - renewable_kw) * slot_hours * ci / 1000).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import START, hours, job, small_request
from google.protobuf import json_format

from gridshift import cli
from gridshift.api.v1 import optimize_pb2 as pb

TIMEOUT_S = 120


def run_cli(*args: str, cwd: Path, stdin: str | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "GRIDSHIFT_LOG_LEVEL"}
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "gridshift.cli", *args], cwd=cwd, env=environ,
                          input=stdin, capture_output=True, text=True, timeout=TIMEOUT_S)


def write_request(tmp_path: Path, request: Any, name: str = "request.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(request), encoding="utf-8")
    return path


def parse_response(text: str) -> pb.OptimizeResponse:
    return json_format.Parse(text, pb.OptimizeResponse())


def assert_clean_failure(proc: subprocess.CompletedProcess[str], code: int) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip(), "a failure must say why on stderr"


# --- an independent, by-hand reading of a plan ---------------------------------------------


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


@dataclass
class Grid:
    start: datetime
    slot_minutes: int
    slots: int

    @classmethod
    def of(cls, request: dict) -> Grid:
        h = request["horizon"]
        return cls(_ts(h["start"]), h.get("slot_minutes") or 60, h["slots"])

    @property
    def slot_hours(self) -> float:
        return self.slot_minutes / 60

    def slot_at(self, ts: datetime, rounding=round) -> int:
        return rounding((ts - self.start) / timedelta(minutes=self.slot_minutes))

    def exact_slot(self, ts: datetime) -> int:
        slot = self.slot_at(ts)
        assert self.start + timedelta(minutes=slot * self.slot_minutes) == ts, (
            f"{ts} is not on a slot boundary")
        return slot


Placement = tuple[str, list[tuple[int, int]]]  # site id, [lo, hi) slot runs


def placements_of(request: dict, response: pb.OptimizeResponse) -> dict[str, Placement]:
    grid = Grid.of(request)
    out: dict[str, Placement] = {}
    for a in response.assignments:
        assert a.job_id not in out, f"{a.job_id} assigned twice"
        runs = [(grid.exact_slot(r.start.ToDatetime(tzinfo=UTC)),
                 grid.exact_slot(r.end.ToDatetime(tzinfo=UTC))) for r in a.runs]
        start = grid.exact_slot(a.start.ToDatetime(tzinfo=UTC))
        end = grid.exact_slot(a.end.ToDatetime(tzinfo=UTC))
        if not runs:
            runs = [(start, end)]
        assert (runs[0][0], runs[-1][1]) == (start, end), f"{a.job_id}: runs vs start/end"
        out[a.job_id] = (a.site_id, runs)
    return out


def ci_by_region(request: dict) -> dict[str, list[float]]:
    """The request's forecasts on the horizon's slots (same step, possibly an earlier start)."""
    grid = Grid.of(request)
    out = {}
    for f in request.get("forecasts", []):
        assert (f.get("slot_minutes") or grid.slot_minutes) == grid.slot_minutes
        offset = grid.exact_slot(_ts(f["start"])) if f.get("start") else 0
        assert offset <= 0
        out[f["region"]] = [f["carbon_intensity"][t - offset] for t in range(grid.slots)]
    return out


def figures_by_hand(request: dict, placements: dict[str, Placement],
                    *, check_limits: bool = True) -> dict[str, Any]:
    """Validate placements against the request and total them up from first principles."""
    grid = Grid.of(request)
    sites = {s["id"]: s for s in request["sites"]}
    jobs = {j["id"]: j for j in request["jobs"]}
    ci = ci_by_region(request)
    load = {s: [0.0] * grid.slots for s in sites}
    gpus = {s: [0] * grid.slots for s in sites}
    for job_id, (site_id, runs) in placements.items():
        j, s = jobs[job_id], sites[site_id]
        assert not s.get("capacity_windows"), "windows are not modelled by this helper"
        allowed = j.get("allowed_sites") or list(sites)
        assert site_id in allowed, f"{job_id} at {site_id}, allowed {allowed}"
        first = grid.slot_at(_ts(j["earliest_start"]), math.ceil) if "earliest_start" in j else 0
        last = (grid.slot_at(_ts(j["deadline"]), math.floor) if "deadline" in j
                else grid.slots)
        need = math.ceil(j["duration_minutes"] / grid.slot_minutes)
        assert sum(hi - lo for lo, hi in runs) == need, f"{job_id}: {runs} vs {need} slots"
        if j.get("interruptible"):
            min_run = min(need, max(1, math.ceil(j.get("min_run_minutes", 0)
                                                 / grid.slot_minutes)))
            assert all(hi - lo >= min_run for lo, hi in runs), f"{job_id}: short run {runs}"
        else:
            assert len(runs) == 1, f"{job_id} is not interruptible but runs {runs}"
        for (lo, hi), nxt in zip(runs, [*runs[1:], None], strict=True):
            assert lo < hi and (nxt is None or hi < nxt[0]), f"{job_id}: runs {runs}"
            if check_limits:
                assert first <= lo and hi <= last, f"{job_id}: {runs} outside [{first},{last})"
            assert 0 <= lo and hi <= grid.slots
            for t in range(lo, hi):
                load[site_id][t] += (s.get("pue") or 1.0) * j["power_kw"]
                gpus[site_id][t] += j["gpus"]
    energy = grid_energy = emissions = 0.0
    for site_id, s in sites.items():
        renewable = s.get("renewable_kw") or [0.0] * grid.slots
        for t in range(grid.slots):
            assert gpus[site_id][t] <= s["gpu_capacity"], f"{site_id} over capacity at {t}"
            if s.get("power_cap_kw") is not None:
                assert load[site_id][t] <= s["power_cap_kw"] + 1e-6, f"{site_id} over cap at {t}"
            drawn = max(0.0, load[site_id][t] - renewable[t])
            energy += load[site_id][t] * grid.slot_hours
            grid_energy += drawn * grid.slot_hours
            emissions += drawn * grid.slot_hours * ci[s["region"]][t] / 1000
    return {"energy_kwh": energy, "grid_energy_kwh": grid_energy, "emissions_kg": emissions,
            "load_kw": load}


def check_plan_by_hand(request: dict, response: pb.OptimizeResponse) -> dict[str, Any]:
    """Every job assigned or unscheduled exactly once; the totals agree with a hand count."""
    placements = placements_of(request, response)
    unscheduled = {u.job_id for u in response.unscheduled}
    assert not placements.keys() & unscheduled
    assert placements.keys() | unscheduled == {j["id"] for j in request["jobs"]}
    hand = figures_by_hand(request, placements)
    for key in ("energy_kwh", "grid_energy_kwh", "emissions_kg"):
        assert getattr(response.totals, key) == pytest.approx(hand[key], rel=1e-9, abs=1e-9), key
    for profile in response.sites:
        assert list(profile.load_kw) == pytest.approx(hand["load_kw"][profile.site_id])
    assert response.savings_kg == pytest.approx(
        response.baseline.emissions_kg - response.totals.emissions_kg, abs=1e-9)
    return hand


# --- requests ------------------------------------------------------------------------------


def mixed_request() -> dict:
    """Two regions, a PUE, on-site solar, an interruptible job and a half-hour earliest start.
    Capacity is ample, so the FIFO baseline is simply every job at its home site at once."""
    return small_request(
        sites=[{"id": "west", "region": "W", "gpu_capacity": 8, "pue": 1.2,
                "renewable_kw": [0, 0, 0, 0, 3.0, 3.0, 0, 0]},
               {"id": "east", "region": "E", "gpu_capacity": 4}],
        forecasts=[{"region": "W", "start": START, "slot_minutes": 60,
                    "carbon_intensity": [300, 280, 200, 150, 100, 120, 250, 300]},
                   {"region": "E", "start": START, "slot_minutes": 60,
                    "carbon_intensity": [400, 380, 350, 90, 80, 300, 400, 420]}],
        jobs=[job("train", gpus=4, power_kw=5.0, duration_minutes=120, home_site="west"),
              job("eval", gpus=2, power_kw=2.0, duration_minutes=90, earliest_start=hours(0.5),
                  deadline=hours(7.5), allowed_sites=["east", "west"], home_site="east"),
              job("batch", gpus=1, power_kw=1.5, duration_minutes=180, interruptible=True,
                  min_run_minutes=60, home_site="west")])


def separable_request() -> dict:
    """Ample capacity, no renewables, no caps: each job's best placement is independent, so
    the optimum can be found by enumerating each job's placements on its own."""
    return small_request(
        slots=10,
        sites=[{"id": "a", "region": "A", "gpu_capacity": 16, "pue": 1.1},
               {"id": "b", "region": "B", "gpu_capacity": 16, "pue": 1.4}],
        forecasts=[{"region": "A", "start": START, "slot_minutes": 60,
                    "carbon_intensity": [420, 400, 90, 380, 370, 60, 65, 300, 310, 330]},
                   {"region": "B", "start": START, "slot_minutes": 60,
                    "carbon_intensity": [50, 200, 210, 220, 230, 240, 40, 45, 48, 400]}],
        jobs=[job("j1", gpus=2, power_kw=3.0, duration_minutes=120),
              job("j2", gpus=1, power_kw=1.0, duration_minutes=60, earliest_start=hours(1),
                  deadline=hours(5), allowed_sites=["a"]),
              job("j3", gpus=4, power_kw=4.0, duration_minutes=150, deadline=hours(9),
                  allowed_sites=["b", "a"]),
              job("j4", gpus=1, power_kw=2.0, duration_minutes=180, interruptible=True,
                  min_run_minutes=60, allowed_sites=["a"])])


def optimum_by_enumeration(request: dict) -> float:
    grid = Grid.of(request)
    ci = ci_by_region(request)
    sites = {s["id"]: s for s in request["sites"]}
    total = 0.0
    for j in request["jobs"]:
        first = grid.slot_at(_ts(j["earliest_start"]), math.ceil) if "earliest_start" in j else 0
        last = grid.slot_at(_ts(j["deadline"]), math.floor) if "deadline" in j else grid.slots
        need = math.ceil(j["duration_minutes"] / grid.slot_minutes)
        best = math.inf
        for site_id in j.get("allowed_sites") or list(sites):
            s = sites[site_id]
            kw = (s.get("pue") or 1.0) * j["power_kw"]
            window = ci[s["region"]][first:last]
            if j.get("interruptible"):  # min run of one slot: any `need` slots will do
                options = [sum(sorted(window)[:need])]
            else:
                options = [sum(window[t:t + need]) for t in range(len(window) - need + 1)]
            best = min(best, kw * grid.slot_hours * min(options) / 1000)
        total += best
    return total


# --- plans ---------------------------------------------------------------------------------


def test_plan_valid_request(tmp_path: Path) -> None:
    request = mixed_request()
    proc = run_cli("plan", str(write_request(tmp_path, request)), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    response = parse_response(proc.stdout)
    assert response.status in (pb.OPTIMAL, pb.FEASIBLE)
    assert sorted(a.job_id for a in response.assignments) == ["batch", "eval", "train"]
    assert not response.unscheduled

    hand = check_plan_by_hand(request, response)
    # The FIFO baseline by hand: each job at its home site from its (rounded-up) earliest start.
    baseline = figures_by_hand(request, {"train": ("west", [(0, 2)]),
                                         "eval": ("east", [(1, 3)]),
                                         "batch": ("west", [(0, 3)])})
    assert response.baseline.emissions_kg == pytest.approx(baseline["emissions_kg"], rel=1e-9)
    assert response.baseline.energy_kwh == pytest.approx(baseline["energy_kwh"], rel=1e-9)
    assert hand["emissions_kg"] < baseline["emissions_kg"]  # shifting pays off here
    pct = 100 * (baseline["emissions_kg"] - hand["emissions_kg"]) / baseline["emissions_kg"]
    assert response.savings_pct == pytest.approx(pct, rel=1e-9)

    summary = proc.stderr
    assert pb.PlanStatus.Name(response.status) in summary
    assert "emissions" in summary.lower() and "baseline" in summary.lower()
    assert f"{response.totals.emissions_kg:,.1f}" in summary
    assert f"{response.baseline.emissions_kg:,.1f}" in summary
    assert re.search(rf"{re.escape(f'{pct:.1f}')}\s*%", summary), summary
    assert "Traceback" not in summary


def test_plan_with_camel_case_request(tmp_path: Path) -> None:
    """A request written by protobuf's default JSON printer (lowerCamelCase) plans the same."""
    request = mixed_request()
    camel = json_format.MessageToJson(json_format.ParseDict(request, pb.OptimizeRequest()))
    assert "durationMinutes" in camel
    path = tmp_path / "camel.json"
    path.write_text(camel, encoding="utf-8")
    proc = run_cli("plan", str(path), "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    check_plan_by_hand(request, parse_response(proc.stdout))


def test_output_file(tmp_path: Path) -> None:
    request = mixed_request()
    out = tmp_path / "plans" / "plan.json"
    out.parent.mkdir()
    proc = run_cli("plan", str(write_request(tmp_path, request)), "-o", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert "emissions" in proc.stderr  # the summary still goes to stderr
    check_plan_by_hand(request, parse_response(out.read_text(encoding="utf-8")))
    assert [p.name for p in out.parent.iterdir()] == ["plan.json"]  # no temporary left behind


def test_quiet(tmp_path: Path) -> None:
    proc = run_cli("plan", str(write_request(tmp_path, mixed_request())), "-q", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stderr == ""
    assert parse_response(proc.stdout).assignments


def test_request_from_stdin(tmp_path: Path) -> None:
    request = mixed_request()
    proc = run_cli("plan", "-", cwd=tmp_path, stdin=json.dumps(request))
    assert proc.returncode == 0, proc.stderr
    check_plan_by_hand(request, parse_response(proc.stdout))


@pytest.mark.parametrize("backend", ["greedy", "cpsat", "highs"])
def test_backend_flag(tmp_path: Path, backend: str) -> None:
    request = separable_request()
    request["options"]["backend"] = "HIGHS" if backend != "highs" else "CPSAT"  # overridden
    proc = run_cli("plan", str(write_request(tmp_path, request)), "--backend", backend,
                   "--time-limit", "10", "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    response = parse_response(proc.stdout)
    assert response.solver.backend == backend
    assert response.solver.wall_seconds <= 10
    hand = check_plan_by_hand(request, response)
    optimum = optimum_by_enumeration(request)
    if backend == "greedy":
        assert response.status in (pb.OPTIMAL, pb.FEASIBLE)
        assert hand["emissions_kg"] >= optimum - 1e-9
    else:
        assert response.status == pb.OPTIMAL
        assert hand["emissions_kg"] == pytest.approx(optimum, rel=1e-9)
        assert response.solver.gap <= 1e-6


def test_time_limit_and_backend_reach_the_solver(tmp_path: Path, monkeypatch, capsys) -> None:
    import gridshift.app.risk
    from gridshift.optimizer.domain import Backend

    seen = []
    real_solve = gridshift.app.risk.solve

    def spy(problem, **kwargs):
        seen.append((problem.options.time_limit_seconds, problem.options.backend))
        return real_solve(problem, **kwargs)

    monkeypatch.setattr(gridshift.app.risk, "solve", spy)
    # In process, keep to HiGHS: OR-Tools loaded into the pytest process makes a later
    # in-process protoc run (tests/test_protos.py) abort.
    request = small_request(jobs=[job("x")], options={"timeLimitSeconds": 20,
                                                      "backend": "GREEDY"})
    code = cli.main(["plan", str(write_request(tmp_path, request)), "--time-limit", "2.5",
                     "--backend", "highs", "-q"])
    assert code == 0
    assert seen == [(2.5, Backend.HIGHS)]
    assert parse_response(capsys.readouterr().out).solver.backend == "highs"


def test_time_limit_is_validated(tmp_path: Path) -> None:
    proc = run_cli("plan", str(write_request(tmp_path, mixed_request())), "--time-limit", "-1",
                   cwd=tmp_path)
    assert_clean_failure(proc, 2)
    assert "options.time_limit_seconds" in proc.stderr
    assert proc.stdout == ""


def test_unknown_backend_flag_is_a_usage_error(tmp_path: Path) -> None:
    proc = run_cli("plan", str(write_request(tmp_path, mixed_request())), "--backend", "gurobi",
                   cwd=tmp_path)
    assert_clean_failure(proc, 2)
    assert "gurobi" in proc.stderr and proc.stdout == ""


# --- invalid input -------------------------------------------------------------------------


def _mutate(request: dict, kind: str) -> tuple[Any, str]:
    """A request with one kind of problem, and the field path that must be named."""
    j0 = request["jobs"][0]
    if kind == "duplicate job id":
        request["jobs"][1]["id"] = j0["id"]
        return request, "jobs[1].id"
    if kind == "unknown allowed site":
        j0["allowed_sites"] = ["west", "mars"]
        return request, "jobs[0].allowed_sites[1]"
    if kind == "gpus not positive":
        j0["gpus"] = 0
        return request, "jobs[0].gpus"
    if kind == "deadline before earliest_start":
        j0.update(earliest_start=hours(5), deadline=hours(3))
        return request, "jobs[0].deadline"
    if kind == "malformed timestamp":
        request["horizon"]["start"] = "15 June 2026"
        return request, "horizon.start"
    if kind == "timestamp without offset":
        j0["deadline"] = "2026-06-15T06:00:00"
        return request, "jobs[0].deadline"
    if kind == "unknown field":
        j0["colour"] = "red"
        return request, "jobs[0].colour"
    if kind == "forecast too short":
        request["forecasts"][1]["carbon_intensity"] = [100.0] * 5
        return request, "forecasts[1]"
    if kind == "unknown enum":
        request["options"]["risk_measure"] = "WORST_CASE"
        return request, "options.risk_measure"
    if kind == "pue below 1":
        request["sites"][1]["pue"] = 0.8
        return request, "sites[1].pue"
    if kind == "unknown region":
        request["sites"][1]["region"] = "XX-NOWHERE"
        return request, "sites[1].region"
    if kind == "missing horizon":
        del request["horizon"]
        return request, "horizon"
    if kind == "not an object":
        return [request], ""
    raise AssertionError(kind)


BAD_KINDS = ["duplicate job id", "unknown allowed site", "gpus not positive",
             "deadline before earliest_start", "malformed timestamp", "timestamp without offset",
             "unknown field", "forecast too short", "unknown enum", "pue below 1",
             "unknown region", "missing horizon", "not an object"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_invalid_request(tmp_path: Path, kind: str) -> None:
    request, path = _mutate(mixed_request(), kind)
    proc = run_cli("plan", str(write_request(tmp_path, request)), cwd=tmp_path)
    assert_clean_failure(proc, 2)
    assert proc.stdout == ""
    if path:
        assert re.search(rf"^\s*{re.escape(path)}: \S", proc.stderr, re.M), proc.stderr
    else:
        assert "JSON object" in proc.stderr


def test_invalid_request_lists_every_problem(tmp_path: Path) -> None:
    request = mixed_request()
    for kind in ("gpus not positive", "unknown enum", "pue below 1", "duplicate job id"):
        request, _ = _mutate(request, kind)
    proc = run_cli("plan", str(write_request(tmp_path, request)), cwd=tmp_path)
    assert_clean_failure(proc, 2)
    for path in ("jobs[0].gpus", "options.risk_measure", "sites[1].pue", "jobs[1].id"):
        assert f"{path}: " in proc.stderr
    assert "4 problem" in proc.stderr


@pytest.mark.parametrize("text", ["{\"horizon\": ", "not json at all", ""])
def test_unreadable_json(tmp_path: Path, text: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(text, encoding="utf-8")
    proc = run_cli("plan", str(path), cwd=tmp_path)
    assert_clean_failure(proc, 2)
    assert "JSON" in proc.stderr and proc.stdout == ""


def test_unreadable_json_on_stdin(tmp_path: Path) -> None:
    proc = run_cli("plan", "-", cwd=tmp_path, stdin="{oops")
    assert_clean_failure(proc, 2)
    assert "JSON" in proc.stderr


def test_request_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """Some editors start UTF-8 files with a byte-order mark; JSON readers may ignore it."""
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(mixed_request()).encode())
    from_file = run_cli("plan", str(path), "-q", cwd=tmp_path)
    assert from_file.returncode == 0, from_file.stderr
    piped = run_cli("plan", "-", "-q", cwd=tmp_path,
                    stdin="\ufeff" + json.dumps(mixed_request()))
    assert piped.returncode == 0, piped.stderr
    for proc in (from_file, piped):
        check_plan_by_hand(mixed_request(), parse_response(proc.stdout))
    plan = tmp_path / "plan.json"
    plan.write_bytes(b"\xef\xbb\xbf" + from_file.stdout.encode())
    scored = run_cli("score", str(path), str(plan), cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr
    assert "1 candidate(s)" in scored.stdout + scored.stderr


def test_thousands_of_problems_are_counted_not_all_printed(tmp_path: Path) -> None:
    request = small_request(slots=2000, ci=[-1.0] * 2000)
    proc = run_cli("plan", str(write_request(tmp_path, request)), cwd=tmp_path)
    assert_clean_failure(proc, 2)
    assert "invalid request (2000 problem(s))" in proc.stderr
    assert "forecasts[0].carbon_intensity[49]: negative" in proc.stderr
    assert "carbon_intensity[50]" not in proc.stderr and "... and 1950 more" in proc.stderr


def test_missing_file(tmp_path: Path) -> None:
    proc = run_cli("plan", str(tmp_path / "nope.json"), cwd=tmp_path)
    assert_clean_failure(proc, 2)
    assert "nope.json" in proc.stderr and proc.stdout == ""


def test_request_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"horizon": "\xe9t\xe9"}')
    proc = run_cli("plan", str(path), cwd=tmp_path)
    assert_clean_failure(proc, 2)


def test_unwritable_output(tmp_path: Path) -> None:
    out = tmp_path / "no" / "such" / "dir" / "plan.json"
    proc = run_cli("plan", str(write_request(tmp_path, mixed_request())), "-o", str(out),
                   cwd=tmp_path)
    assert_clean_failure(proc, 2)
    assert "cannot write" in proc.stderr and str(out) in proc.stderr
    assert proc.stdout == ""


def test_cli_overrides_with_malformed_options(tmp_path: Path) -> None:
    """--backend on a request whose options are not an object is invalid input, not a crash."""
    request = mixed_request()
    request["options"] = ["GREEDY"]
    proc = run_cli("plan", str(write_request(tmp_path, request)), "--backend", "greedy",
                   "--time-limit", "5", cwd=tmp_path)
    assert_clean_failure(proc, 2)
    assert "options: must be an object" in proc.stderr


def test_unknown_log_level_is_refused_with_its_variable(tmp_path: Path) -> None:
    """Every setting is checked when read: a misspelt level is a usage error, not ignored."""
    proc = run_cli("plan", str(write_request(tmp_path, mixed_request())), "-q", cwd=tmp_path,
                   env={"GRIDSHIFT_LOG_LEVEL": "chatty"})
    assert_clean_failure(proc, 2)
    assert "invalid settings" in proc.stderr
    assert "GRIDSHIFT_LOG_LEVEL: unknown level 'chatty'" in proc.stderr


# --- infeasible and partial plans ----------------------------------------------------------


def _with_huge_job(request: dict) -> dict:
    request["jobs"].append(job("huge-train", gpus=64, power_kw=40.0, duration_minutes=120))
    return request


def test_infeasible(tmp_path: Path) -> None:
    request = _with_huge_job(mixed_request())
    proc = run_cli("plan", str(write_request(tmp_path, request)), cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "huge-train" in proc.stderr and "INFEASIBLE" in proc.stderr
    response = parse_response(proc.stdout)
    assert response.status == pb.INFEASIBLE
    [unscheduled] = response.unscheduled
    assert unscheduled.job_id == "huge-train"
    assert "64" in unscheduled.reason  # says what it needs


def test_partial_plan(tmp_path: Path) -> None:
    request = _with_huge_job(mixed_request())
    request["options"]["allow_partial"] = True
    proc = run_cli("plan", str(write_request(tmp_path, request)), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    response = parse_response(proc.stdout)
    assert response.status in (pb.OPTIMAL, pb.FEASIBLE)
    assert [u.job_id for u in response.unscheduled] == ["huge-train"]
    assert response.unscheduled[0].reason
    assert sorted(a.job_id for a in response.assignments) == ["batch", "eval", "train"]
    assert "huge-train" in proc.stderr
    check_plan_by_hand(request, response)


# --- internal errors -----------------------------------------------------------------------


@pytest.mark.parametrize("target", ["gridshift.app.risk.solve",
                                    "gridshift.app.planning.Planner.plan"])
def test_internal_error_exit_code(tmp_path: Path, monkeypatch, capsys, target: str) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.delenv("GRIDSHIFT_LOG_LEVEL", raising=False)
    monkeypatch.setattr(target, boom)
    code = cli.main(["plan", str(write_request(tmp_path, mixed_request()))])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert "internal error" in captured.err
    assert "Traceback" not in captured.err and "secret internals" not in captured.err


def test_invalid_input_in_process(tmp_path: Path, capsys) -> None:
    request, _ = _mutate(mixed_request(), "gpus not positive")
    assert cli.main(["plan", str(write_request(tmp_path, request))]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "jobs[0].gpus: must be positive" in captured.err


# --- demo ----------------------------------------------------------------------------------


def test_demo_refuses_a_negative_seed(capsys) -> None:
    """A negative --seed is refused where it is parsed (it was an internal error from NumPy's
    generator)."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["demo", "--seed", "-1"])
    assert exit_info.value.code == 2
    assert "--seed: must be a whole number >= 0, got -1" in capsys.readouterr().err


def test_demo(tmp_path: Path) -> None:
    out, request_out = tmp_path / "demo-plan.json", tmp_path / "demo-request.json"
    proc = run_cli("demo", "--time-limit", "1", "-o", str(out), "--request-out",
                   str(request_out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("savings:")]
    assert lines, proc.stdout
    match = re.search(r"([\d,.]+) kg CO2e \((-?[\d.]+) ?%\)", lines[0])
    assert match, lines[0]

    request = json.loads(request_out.read_text(encoding="utf-8"))
    response = parse_response(out.read_text(encoding="utf-8"))
    assert response.status in (pb.OPTIMAL, pb.FEASIBLE)
    assert response.solver.wall_seconds < 1 + 2.0  # the time limit was applied
    hand = check_plan_by_hand(request, response)
    assert float(match.group(2)) == pytest.approx(response.savings_pct, abs=0.051)
    saved = response.baseline.emissions_kg - hand["emissions_kg"]
    assert float(match.group(1).replace(",", "")) == pytest.approx(saved, abs=0.051)


# --- every problem at once, everywhere -----------------------------------------------------


def _malformed_request() -> dict:
    request = small_request(jobs=[
        job("x", gpus=16, duration_minutes=240, deadline=hours(2)),
        {**job("y"), "gpus": "many"}])
    request["options"]["time_limit_seconds"] = "fast"
    return request


def test_every_problem_is_listed_at_once_locally_and_with_a_server(tmp_path: Path) -> None:
    """A too-short window no longer hides that the job needs more GPUs than any site has, and
    `--server` lists the same problems with field paths (it gave one raw protobuf parse error;
    the check runs before anything is sent, so no server need be up)."""
    path = write_request(tmp_path, _malformed_request())
    local = run_cli("plan", str(path), "--no-store", cwd=tmp_path)
    remote = run_cli("plan", str(path), "--server", "127.0.0.1:1", "--timeout", "2",
                     cwd=tmp_path)
    for proc in (local, remote):
        assert_clean_failure(proc, 2)
        for words in ("jobs[1].gpus: must be an integer, got 'many'",
                      "options.time_limit_seconds: must be a number, got 'fast'",
                      "jobs[0]: window earliest_start..deadline holds 2 whole slot(s)",
                      "jobs[0].gpus: 16 GPUs, more than any of its allowed sites has (at most "
                      "8)"):
            assert words in proc.stderr, proc.stderr
    assert local.stderr == remote.stderr


def test_actuals_import_lists_every_bad_line(tmp_path: Path) -> None:
    bad = tmp_path / "actuals.csv"
    bad.write_text("region,valid_at,value\nR,2026-06-15T00:00:00Z,1e308\n"
                   "R,not-a-time,100\nR,2026-06-15T02:00:00Z,abc\n")
    proc = run_cli("actuals", "import", str(bad), cwd=tmp_path,
                   env={"GRIDSHIFT_DATA_DIR": str(tmp_path / "data")})
    assert_clean_failure(proc, 2)
    for where in (":2.value", ":3.valid_at", ":4"):
        assert f"{bad}{where}" in proc.stderr, proc.stderr


def test_a_plan_on_fallback_data_says_so_and_can_be_refused(tmp_path: Path) -> None:
    """Offline, a region without an inline forecast is planned on the embedded typical-day
    profile: the console says so, the response is flagged degraded with the reason (it was
    said only inside plan.json's provenance), and --require-forecast refuses instead."""
    request = small_request(jobs=[job("x", gpus=4, duration_minutes=120)])
    request["sites"][0]["region"] = "US-CAL-CISO"
    request.pop("forecasts")
    path = write_request(tmp_path, request)
    proc = run_cli("plan", str(path), "--no-store", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert ("warning: planned on less than a current forecast: US-CAL-CISO: embedded "
            "typical-day profile") in proc.stderr
    response = parse_response(proc.stdout)
    assert response.degraded and response.degraded_reasons[0].startswith("US-CAL-CISO: ")
    refused = run_cli("plan", str(path), "--no-store", "--require-forecast", cwd=tmp_path)
    assert_clean_failure(refused, 1)
    assert "options.require_forecasts: no current forecast for US-CAL-CISO" in refused.stderr
    assert refused.stdout == ""
    inline = run_cli("plan", str(write_request(tmp_path, small_request(
        jobs=[job("x")]), "inline.json")), "--no-store", "--require-forecast", cwd=tmp_path)
    assert inline.returncode == 0 and "warning" not in inline.stderr
    assert not parse_response(inline.stdout).degraded


def test_forecast_answers_per_region(tmp_path: Path) -> None:
    """One region's provider is down: the others are answered and printed, the missing one
    is named with the sources tried, the exit code says the answer is partial; no exception
    text and no "server" wording for a local call (it printed nothing for DE and "server
    unavailable ... KeyError: ..." after waiting)."""
    proc = run_cli("forecast", "--region", "DE", "--region", "GB-13", "--start",
                   "2026-06-15T00:00:00Z", "--end", "2026-06-15T03:00:00Z", cwd=tmp_path,
                   env={"GRIDSHIFT_UKCI_URL": "http://127.0.0.1:1",
                        "GRIDSHIFT_DATA_DIR": str(tmp_path / "data")})
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.count("\nDE ") == 3 and "GB-13" not in proc.stdout
    assert "gridshift: GB-13: unavailable: " in proc.stderr
    for leak in ("Traceback", "KeyError", "server", "Retrying"):
        assert leak not in proc.stderr, proc.stderr


def test_every_flag_says_what_it_is_for() -> None:
    from gridshift.cli.parser import build_parser

    def actions(parser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from actions(sub)
            elif not isinstance(action, argparse._HelpAction):
                yield parser.prog, action

    missing = [f"{prog} {'/'.join(a.option_strings) or a.dest}"
               for prog, a in actions(build_parser("backtest")) if not (a.help or "").strip()]
    assert not missing, missing


def test_every_help_page_renders() -> None:
    """`--help` of every command and nested subcommand formats (a bare % in a help text made
    `gridshift backtest --help` a traceback)."""
    from gridshift.cli.parser import build_parser

    def parsers(parser):
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from parsers(sub)

    pages = {p.prog: p.format_help() for p in parsers(build_parser("backtest"))}
    assert len(pages) > 15 and "gridshift backtest" in pages
    assert "loss budget, in % of" in pages["gridshift backtest"]


def test_report_to_stdout(tmp_path: Path) -> None:
    env = {"GRIDSHIFT_DATA_DIR": str(tmp_path / "data")}
    assert run_cli("plan", str(write_request(tmp_path, small_request(jobs=[job("x")]))), "-q",
                   "-o", str(tmp_path / "p.json"), cwd=tmp_path, env=env).returncode == 0
    proc = run_cli("report", "--from", START[:10], "--to", "2026-06-16", "--format", "csv",
                   "-o", "-", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("day,team,site,region,") and "written to stdout" in proc.stderr
    assert "1 job(s) counted once" in proc.stderr


@pytest.mark.parametrize(("argv", "expected"), [
    (["ray", "gate", "--sites", "s.yaml", "--interval", "-1"],
     "--interval: must be a finite number > 0"),
    (["slurm", "agent", "--sites", "s.yaml", "--interval", "0"],
     "--interval: must be a finite number > 0"),
    (["slurm", "sync", "--sites", "s.yaml", "--hours", "0"],
     "--hours: must be a whole number >= 1, got 0"),
    (["slurm", "sync", "--sites", "s.yaml", "--move-weight", "nan"],
     "--move-weight: must be a finite number >= 0"),
])
def test_scheduler_commands_refuse_out_of_range_options(argv: list[str], expected: str,
                                                        capsys) -> None:
    """The agents' loop options are checked where they are parsed: a negative --interval
    used to reach time.sleep() as an internal error, and 0 a busy loop."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert expected in capsys.readouterr().err
