"""Stored plans, carbon reports over them, and nightly runs — through the real CLI, a real
gRPC server and a real SQLite file."""

from __future__ import annotations

import base64
import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pandas as pd
import pytest
from conftest import PROJECT_ROOT, hours, job, make_app, prepare, small_request
from google.protobuf import json_format

from gridshift.adapters.codec import plan_from_response, to_response
from gridshift.adapters.grpc_client import SchedulerClient
from gridshift.adapters.store import PlanStore
from gridshift.api.v1 import plans_pb2
from gridshift.app.reports import build_report
from gridshift.optimizer.checker import check_plan
from gridshift.optimizer.solve import solve
from gridshift.service.servicer import start_server
from gridshift.settings import ServerSettings


def cli(*args: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gridshift.cli", *args], capture_output=True,
                          text=True, cwd=PROJECT_ROOT, env=env, timeout=timeout)


@pytest.fixture
def data_env(tmp_path: Path) -> dict:
    env = dict(os.environ, GRIDSHIFT_DATA_DIR=str(tmp_path / "data"))
    env.pop("GRIDSHIFT_DB_URL", None)
    return env


def team_request(team: str, day: int, site_region: str = "R") -> dict:
    request = small_request(slots=24, ci=[200 + 50 * ((t * 7) % 5) for t in range(24)])
    start = hours(24 * day)
    request["horizon"]["start"] = start
    request["forecasts"][0]["start"] = start
    request["sites"][0]["region"] = site_region
    request["forecasts"][0]["region"] = site_region
    request["jobs"] = [dict(job(f"{team}-{k}", gpus=4, power_kw=2 + k, duration_minutes=120),
                            team=team) for k in range(3)]
    return request


def test_cli_and_grpc_plans_land_in_one_store(tmp_path: Path, data_env: dict) -> None:
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(team_request("research", 0)))
    done = cli("plan", str(request_file), "-o", str(tmp_path / "plan.json"), "-q", env=data_env)
    assert done.returncode == 0, done.stderr
    store = PlanStore(f"sqlite:///{tmp_path / 'data' / 'gridshift.sqlite'}")
    running = start_server(make_app(store), ServerSettings(port=0))
    try:
        with SchedulerClient(f"127.0.0.1:{running.port}") as client:
            made = client.optimize(team_request("applied", 1), timeout=60)
            listed = client.stub.ListPlans(plans_pb2.ListPlansRequest(page_size=1), timeout=30)
            assert len(listed.plans) == 1 and listed.next_page_token
            rest = client.stub.ListPlans(plans_pb2.ListPlansRequest(
                page_size=1, page_token=listed.next_page_token), timeout=30)
            sources = {listed.plans[0].source, rest.plans[0].source}
            assert sources == {"cli", "grpc"} and not rest.next_page_token
            got = client.stub.GetPlan(plans_pb2.GetPlanRequest(plan_id=made.plan_id), timeout=30)
            with pytest.raises(grpc.RpcError) as missing:
                client.stub.GetPlan(plans_pb2.GetPlanRequest(plan_id="nope"), timeout=30)
            by_team = client.stub.ListPlans(plans_pb2.ListPlansRequest(team="research"),
                                            timeout=30)
    finally:
        running.server.stop(0).wait()
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert got.response.plan_id == made.plan_id
    assert got.response.totals.emissions_kg == made.totals.emissions_kg
    assert [p.source for p in by_team.plans] == ["cli"]
    listing = cli("plans", "list", "--format", "json", env=data_env)
    assert listing.returncode == 0, listing.stderr
    assert len(json.loads(listing.stdout)["plans"]) == 2
    shown = cli("plans", "show", made.plan_id, "--format", "json", env=data_env)
    assert json.loads(shown.stdout)["response"]["plan_id"] == made.plan_id
    summary = cli("plans", "show", made.plan_id[:10], env=data_env)
    assert summary.returncode == 0, summary.stderr
    assert f"plan {made.plan_id} (grpc" in summary.stdout and "applied-0" in summary.stdout


def test_carbon_report_equals_the_checker_on_stored_plans(tmp_path: Path) -> None:
    store = PlanStore(f"sqlite:///{tmp_path / 'store.sqlite'}")
    app = make_app(store)
    checks = []
    for team, day in (("research", 0), ("applied", 1), ("research", 2)):
        request = team_request(team, day)
        problem = prepare(request)
        result = solve(problem)
        kept = app.planner.keep(result, request, "cli")
        assert kept.stored, kept.store_error
        response = to_response(result, kept.plan_id)
        checks.append((problem, check_plan(problem, plan_from_response(problem, response))))
    # Actual intensity for the region: 10 % above the forecast everywhere.
    actual_csv = tmp_path / "actuals.csv"
    lines = ["region,valid_at,value"]
    for problem, _ in checks:
        for t in range(problem.n_slots):
            lines.append(f"R,{problem.slot_time(t).isoformat()},{1.1 * problem.ci_g_per_kwh[0, t]}")
    actual_csv.write_text("\n".join(lines) + "\n")
    env = dict(os.environ, GRIDSHIFT_DB_URL=f"sqlite:///{tmp_path / 'store.sqlite'}")
    done = cli("actuals", "import", str(actual_csv), env=env)
    assert done.returncode == 0, done.stderr
    report = build_report(app.archive, None, None, fmt="html")
    totals = report.summary["totals"]
    assert report.plans == 3
    assert totals["energy_kwh"] == pytest.approx(sum(c.energy_kwh for _, c in checks), rel=1e-9)
    assert totals["emissions_kg_forecast"] == pytest.approx(
        sum(c.emissions_kg for _, c in checks), rel=1e-9)
    assert totals["emissions_kg_actual"] == pytest.approx(
        1.1 * sum(c.emissions_kg for _, c in checks), rel=1e-9)
    html = report.document.decode()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert images and all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    csv_doc = build_report(app.archive, None, None, team="applied", fmt="csv")
    frame = pd.read_csv(io.BytesIO(csv_doc.document))
    assert set(frame["team"]) == {"applied"}
    assert frame["emissions_kg_forecast"].sum() == pytest.approx(checks[1][1].emissions_kg,
                                                                 abs=5e-4 * len(frame))
    out = tmp_path / "report.html"
    done = cli("report", "--from", "2026-06-15", "--to", "2026-06-19", "--format", "html",
               "-o", str(out), env=env)
    assert done.returncode == 0, done.stderr and out.read_text().startswith("<!DOCTYPE html>")


def nightly_files(tmp_path: Path, jobs: int = 3) -> tuple[Path, Path]:
    rows = ["id,team,gpus,power_kw,duration_minutes,earliest_start,deadline,allowed_sites,"
            "home_site,interruptible,min_run_minutes,priority"]
    for k in range(jobs):
        rows.append(f"job-{k},{['research', 'applied'][k % 2]},{2 + 2 * (k % 3)},"
                    f"{1.5 + k % 4},{60 * (1 + k % 4)},2026-06-15T0{k % 6}:00:00Z,,,"
                    f"{['west', 'east'][k % 2]},{'true' if k % 3 == 0 else 'false'},60,")
    jobs_file = tmp_path / "jobs.csv"
    jobs_file.write_text("\n".join(rows) + "\n")
    sites_file = tmp_path / "sites.yaml"
    sites_file.write_text("slot_minutes: 60\nsites:\n"
                          "  - {id: west, region: US-CAL-CISO, gpu_capacity: 24, pue: 1.15}\n"
                          "  - {id: east, region: US-MIDA-PJM, gpu_capacity: 24, pue: 1.25}\n")
    return jobs_file, sites_file


def test_nightly_is_idempotent_and_writes_outputs(tmp_path: Path, data_env: dict) -> None:
    jobs_file, sites_file = nightly_files(tmp_path)
    args = ("nightly", "--jobs", str(jobs_file), "--sites", str(sites_file), "--date",
            "2026-06-15", "--time-limit", "3", "--out-dir", str(tmp_path / "out"))
    first = cli(*args, env=data_env)
    assert first.returncode == 0, first.stderr
    # Offline: both regions rest on the embedded profile, and the console says so.
    for region in ("US-CAL-CISO", "US-MIDA-PJM"):
        assert f"warning: planned on less than a current forecast: {region}: embedded " \
               "typical-day profile" in first.stderr
    second = cli(*args, env=data_env)
    assert second.returncode == 0 and "reusing" in second.stderr
    html_page = (tmp_path / "out" / "report.html").read_text()
    assert "Degraded:" in html_page and "typical-day profile" in html_page
    refused = cli(*args, "--require-forecast", "--out-dir", str(tmp_path / "strict"),
                  env=data_env)
    assert refused.returncode == 1 and "options.require_forecasts" in refused.stderr
    assert not (tmp_path / "strict" / "plan.json").exists()
    store = PlanStore(f"sqlite:///{tmp_path / 'data' / 'gridshift.sqlite'}")
    records, _ = store.list()
    assert len(records) == 1 and records[0].source == "nightly" and records[0].run_key
    table = pd.read_csv(tmp_path / "out" / "plan.csv")
    assert list(table.columns) == ["job_id", "team", "site_id", "run", "start", "end", "gpus",
                                   "energy_kwh", "grid_energy_kwh", "emissions_kg",
                                   "unscheduled_reason"]
    assert sorted(set(table["job_id"])) == [f"job-{k}" for k in range(3)]
    # One row per run: job-0 is interruptible; every run has its GPUs, and the runs' energy
    # and emissions add up to the job's.
    plan_json = json.loads((tmp_path / "out" / "plan.json").read_text())
    runs = {a["job_id"]: len(a.get("runs", [])) or 1 for a in plan_json["assignments"]}
    assert table.groupby("job_id").size().to_dict() == runs
    per_job = {f["job_id"]: f for f in plan_json["jobs"]}
    for job_id, group in table.groupby("job_id"):
        assert group["emissions_kg"].sum() == pytest.approx(
            per_job[job_id].get("emissions_kg", 0.0), abs=1e-3 * len(group))
        assert (group["gpus"] > 0).all()
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert plan["plan_id"] == records[0].plan_id
    assert "data:image/png;base64," in (tmp_path / "out" / "report.html").read_text()
    bad = cli("nightly", "--jobs", str(sites_file), "--sites", str(sites_file), env=data_env)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_nightly_killed_mid_run_reruns_cleanly(tmp_path: Path, data_env: dict) -> None:
    jobs_file, sites_file = nightly_files(tmp_path, jobs=120)
    args = [sys.executable, "-m", "gridshift.cli", "nightly", "--jobs", str(jobs_file),
            "--sites", str(sites_file), "--date", "2026-06-15", "--time-limit", "6",
            "--out-dir", str(tmp_path / "out")]
    victim = subprocess.Popen(args, cwd=PROJECT_ROOT, env=data_env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(3.0)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "out" / "plan.json").exists()
    rerun = subprocess.run(args, cwd=PROJECT_ROOT, env=data_env, capture_output=True,
                           text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    store = PlanStore(f"sqlite:///{tmp_path / 'data' / 'gridshift.sqlite'}")
    records, _ = store.list(full=True)
    assert len(records) == 1
    stored = json_format.ParseDict(records[0].response, plans_pb2.GetPlanResponse().response)
    assert len(stored.assignments) + len(stored.unscheduled) == 120
    leftovers = [p.name for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]
    assert not leftovers


def test_report_with_a_reversed_period_is_refused_with_both_times(tmp_path: Path,
                                                                  data_env: dict) -> None:
    done = cli("report", "--from", "2026-06-02", "--to", "2026-06-01", "--format", "csv",
               "-o", str(tmp_path / "r.csv"), env=data_env)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert ("end: 2026-06-01T00:00:00+00:00 is not after start 2026-06-02T00:00:00+00:00 "
            "(on the command line: --to is not after --from)") in done.stderr
    assert not (tmp_path / "r.csv").exists()


def test_actuals_import_refuses_implausible_values_and_reads_a_byte_order_mark(
        tmp_path: Path) -> None:
    env = dict(os.environ, GRIDSHIFT_DB_URL=f"sqlite:///{tmp_path / 'store.sqlite'}")
    bad = tmp_path / "bad.csv"
    bad.write_text("region,valid_at,value\nR,2026-06-15T00:00:00Z,1e308\n"
                   "R,2026-06-15T01:00:00Z,-5\nR,2026-06-15T02:00:00Z,nan\n"
                   "R,2026-06-15T03:00:00Z,inf\n,2026-06-15T04:00:00Z,100\n")
    refused = cli("actuals", "import", str(bad), env=env)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    for where in (":2.value: 1e+308", ":3.value: -5", ":5.value: inf", ":6.region: empty"):
        assert f"{bad}{where}" in refused.stderr
    assert ":4." not in refused.stderr         # nan is a missing value, not an error
    good = tmp_path / "good.csv"
    good.write_bytes(b"\xef\xbb\xbfregion,valid_at,value\nR,2026-06-15T00:00:00Z,120\n"
                     b"R,2026-06-15T01:00:00Z,\nR,2026-06-15T02:00:00Z,140\n")
    done = cli("actuals", "import", str(good), env=env)
    assert done.returncode == 0, done.stderr
    store = PlanStore(env["GRIDSHIFT_DB_URL"])
    stored = store.actuals("R", datetime(2026, 6, 15, tzinfo=UTC),
                           datetime(2026, 6, 16, tzinfo=UTC))
    assert [(t.hour, v) for t, v in stored if not math.isnan(v)] == [(0, 120.0), (2, 140.0)]
    assert cli("actuals", "import", str(good), "--slot-minutes", "0", env=env).returncode == 2


def test_plan_rpcs_refuse_bad_fields_with_invalid_argument(tmp_path: Path) -> None:
    """Out-of-range timestamps, an unknown status value and a reversed period were INTERNAL
    errors or answered silently; an empty or very long plan id is answered in a header that
    fits (a 100,000-character id came back as RESOURCE_EXHAUSTED)."""
    store = PlanStore(f"sqlite:///{tmp_path / 'store.sqlite'}")
    running = start_server(make_app(store), ServerSettings(port=0))
    far = plans_pb2.ListPlansRequest()
    far.start.seconds = 253402300800 * 10
    reversed_period = plans_pb2.ListPlansRequest()
    reversed_period.start.seconds, reversed_period.end.seconds = 2_000_000_000, 1_000_000_000
    report = plans_pb2.GetCarbonReportRequest(format="csv")
    report.end.seconds = -10**12
    calls = [("ListPlans", far, "start: not a valid timestamp"),
             ("ListPlans", plans_pb2.ListPlansRequest(status=99), "status: unknown value 99"),
             ("ListPlans", reversed_period, "is not after start"),
             ("GetCarbonReport", report, "end: not a valid timestamp"),
             ("GetPlan", plans_pb2.GetPlanRequest(plan_id=" "), "plan_id: required")]
    try:
        with SchedulerClient(f"127.0.0.1:{running.port}") as client:
            for method, request, words in calls:
                with pytest.raises(grpc.RpcError) as caught:
                    getattr(client.stub, method)(request, timeout=30)
                assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method
                assert words in caught.value.details()
            with pytest.raises(grpc.RpcError) as missing:
                client.stub.GetPlan(plans_pb2.GetPlanRequest(plan_id="x" * 100_000), timeout=30)
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND
            assert "(100000 characters)" in missing.value.details()
            assert client.health() == "SERVING"
    finally:
        running.server.stop(0).wait()


def test_a_day_of_re_planning_counts_each_job_once(tmp_path: Path) -> None:
    """A scheduler re-plans its queue every hour for a day: jobs not yet started are planned
    again (the newest plan supersedes the older rows), started ones stay where they ran, new
    ones arrive. The report counts each job once — its energy and emissions from the newest
    plan that holds it — and says how many rows were re-planned (it counted every plan's
    copy: the same day reported at up to 24 times its energy)."""
    from datetime import timedelta

    from gridshift.adapters.store import PlanFilter

    store = PlanStore(f"sqlite:///{tmp_path / 'store.sqlite'}")
    app = make_app(store)
    day = datetime(2026, 6, 15, tzinfo=UTC)
    ci = [300 + 120 * math.sin(t / 24 * 2 * math.pi) for t in range(48)]
    arrivals = {f"job-{k}": 2 * k for k in range(10)}          # arrival hour of each job
    final: dict[str, tuple[str, float]] = {}                    # job -> (plan, energy kWh)
    running: set[str] = set()
    for hour in range(24):
        now = day + timedelta(hours=hour)
        queue = [job_id for job_id, at in arrivals.items() if at <= hour and
                 job_id not in running]
        if not queue:
            continue
        request = {"horizon": {"start": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "slots": 24},
                   "sites": [{"id": "a", "region": "R", "gpu_capacity": 8}],
                   "jobs": [dict(job(job_id, gpus=4, power_kw=2 + int(job_id[4:]) % 3,
                                     duration_minutes=120), team="research")
                            for job_id in queue],
                   "forecasts": [{"region": "R", "start": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                  "carbon_intensity": ci[hour:hour + 24]}]}
        result = solve(prepare(request))
        kept = app.planner.keep(result, request, "grpc")
        assert kept.stored, kept.store_error
        for j, placement in result.plan.placements.items():
            job_id = result.problem.job_ids[j]
            final[job_id] = (kept.plan_id, result.figures.jobs[j].energy_kwh)
            if placement.start_slot == 0:    # starts this hour: it runs, it is not re-planned
                running.add(job_id)
    records, _ = store.list(PlanFilter(), 500, None, full=True)
    current = [(r.plan_id, j.job_id) for r in records for j in r.jobs if not j.superseded_by]
    assert sorted(job_id for _, job_id in current) == sorted(final)
    assert {(plan_id, job_id) for plan_id, job_id in current} == \
        {(plan_id, job_id) for job_id, (plan_id, _) in final.items()}
    report = build_report(app.archive, day, day + timedelta(days=2), fmt="json",
                          list_superseded=True)
    assert report.summary["jobs"]["counted"] == len(final) == 10
    assert report.summary["jobs"]["superseded"] == len(report.summary["superseded"]) > 10
    assert report.summary["totals"]["energy_kwh"] == pytest.approx(
        sum(energy for _, energy in final.values()), rel=1e-9)
    assert len(report.summary["plans"]) == report.plans > 10


def test_a_stored_plan_that_no_longer_reads_back_is_named_not_fatal(tmp_path: Path) -> None:
    """A plan stored before a check it fails (here: a site supply beyond 10 GW, as plans derived
    from a huge solar_kwp were stored before that was refused) is left out of the report and
    named there; the other plans are reported as before."""
    import sqlalchemy as sa

    store = PlanStore(f"sqlite:///{tmp_path / 'store.sqlite'}")
    app = make_app(store)
    kept_ids, checks = [], []
    for team, day in (("research", 0), ("applied", 1)):
        request = team_request(team, day)
        result = solve(prepare(request))
        checks.append(check_plan(result.problem, result.plan))
        assert checks[-1].ok, checks[-1].violations
        kept = app.planner.keep(result, request, "cli")
        assert kept.stored, kept.store_error
        kept_ids.append(kept.plan_id)
    bad = store.get(kept_ids[0])
    request = dict(bad.request)
    request["sites"] = [dict(s, renewable_kw=[1e12] * request["horizon"]["slots"])
                        for s in request["sites"]]
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'store.sqlite'}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE plans SET request = :r WHERE plan_id = :p"),
                     {"r": json.dumps(request), "p": kept_ids[0]})
    engine.dispose()
    report = build_report(app.archive, None, None, fmt="html")
    totals = report.summary["totals"]
    assert report.plans == 1
    (left,) = report.summary["unreadable"]
    assert left["plan_id"] == kept_ids[0] and "renewable_kw" in left["reason"]
    assert totals["energy_kwh"] == pytest.approx(checks[1].energy_kwh, rel=1e-9)
    assert "Left out:" in report.document.decode() and kept_ids[0] in report.document.decode()
