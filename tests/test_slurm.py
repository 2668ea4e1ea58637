"""The Slurm agent against a real one-node Slurm cluster (8 GPUs as GRES, partitions west and
east as two sites in two regions), with minute-long slots: jobs submitted held with the
gridshift marker start no earlier than planned, on the planned partition, within their
deadlines, never past the GPUs — asserted from what Slurm records. Skipped, with the reason,
where Slurm cannot run (tests/slurm_cluster.py)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from conftest import checked_planner_plan, make_app

from gridshift.adapters.slurm import SlurmClient, SlurmJob, SlurmUnavailable, gpus_of
from gridshift.adapters.store import PlanStore
from gridshift.app.slurm_sync import SlurmSync, sites_of

SITES = [{"id": "west", "region": "R-west", "gpu_capacity": 4, "gpu_power_kw": 0.5},
         {"id": "east", "region": "R-east", "gpu_capacity": 4, "gpu_power_kw": 0.5}]


@pytest.fixture(scope="module")
def cluster():
    from slurm_cluster import ClusterUnavailable, start_cluster

    try:
        running = start_cluster()
    except ClusterUnavailable as exc:
        print(f"skipping the Slurm tests: {exc}")
        pytest.skip(f"no Slurm test cluster: {exc}")
    yield running
    running.stop()


def _minute(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0)


def forecasts(start: datetime) -> list[dict]:
    """Per minute for an hour: west dirty except minutes 3-5, east dirty except 4-7."""
    west = [100.0 if 3 <= m < 6 else 600.0 for m in range(61)]
    east = [120.0 if 4 <= m < 8 else 650.0 for m in range(61)]
    stamp = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    return [{"region": "R-west", "start": stamp, "slot_minutes": 1, "carbon_intensity": west},
            {"region": "R-east", "start": stamp, "slot_minutes": 1, "carbon_intensity": east}]


def agent(cluster, store, plan=None, **options) -> SlurmSync:
    now = datetime.now(UTC)
    return SlurmSync(SlurmClient(slurm_conf=cluster.conf), sites_of(SITES),
                     plan or checked_planner_plan(make_app(store).planner, "slurm"),
                     slot_minutes=1, hours=1,
                     time_limit_s=5, forecasts=forecasts(_minute(now)), **options)


def _show(cluster, job_id: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in
                cluster.run("scontrol", "show", "job", "-o", job_id).split() if "=" in item)


def test_gres_strings() -> None:
    assert [gpus_of(t) for t in ("gres:gpu:4", "gpu:8", "gres/gpu=2", "gpu:a100:4(S:0-1)",
                                 "cpu=1,mem=10M", "gres:gpu:2,gres:gpu:1")] == [4, 8, 2, 4, 0, 3]


def test_plans_are_carried_out_as_planned(cluster, tmp_path) -> None:
    store = PlanStore(f"sqlite:///{tmp_path / 'store.sqlite'}")
    deadline = "now+20minutes"
    jobs = [cluster.submit("--hold", "--comment=gridshift:research", "--gres=gpu:2",
                           "--partition=west,east", "--time=2", f"--deadline={deadline}",
                           wrap="sleep 45") for _ in range(4)]
    other = cluster.submit("--gres=gpu:1", "--partition=west", "--time=1", wrap="sleep 5")
    sync = agent(cluster, store)
    dry = sync.sync(dry_run=True)
    assert all(d.commands for d in dry.decisions if d.job_id in jobs)
    assert all(_show(cluster, j)["JobState"] == "PENDING" for j in jobs)   # dry: untouched
    outcome = sync.sync()
    assert not outcome.error, outcome.error
    planned = {d.job_id: d for d in outcome.decisions}
    assert set(planned) == set(jobs) and other not in planned
    for job_id in jobs:
        d = planned[job_id]
        assert d.action == "moved" and d.partition in ("west", "east"), d
        shown = _show(cluster, job_id)
        assert shown["Partition"] == d.partition and "Held" not in shown["Reason"]
    # A second round with nothing new changes nothing.
    again = sync.sync()
    assert {d.action for d in again.decisions} == {"unchanged"}, again.decisions
    assert not any(d.commands for d in again.decisions)
    # Every job runs: no earlier than planned, on the planned partition, before its deadline,
    # and never past the node's 8 GPUs or a site's 4.
    deadline_at = datetime.now(UTC) + timedelta(minutes=20)
    _wait_done(cluster, [*jobs, other], timeout_s=600)
    runs = {r.job_id: r for r in SlurmClient(slurm_conf=cluster.conf).runs(cluster.jobcomp_log)}
    for job_id in jobs:
        run, d = runs[job_id], planned[job_id]
        assert run.state == "COMPLETED", run
        assert run.start >= d.start - timedelta(seconds=1), (run, d)
        assert run.start <= d.start + timedelta(seconds=60), (run, d)
        assert run.partition == d.partition and run.end <= deadline_at
    events = sorted([(r.start, planned_gpus) for r in runs.values()
                     for planned_gpus in [2 if r.job_id in jobs else 1]]
                    + [(r.end, -(2 if r.job_id in jobs else 1)) for r in runs.values()],
                    key=lambda e: (e[0], e[1]))
    in_use = peak = 0
    for _, change in events:
        in_use += change
        peak = max(peak, in_use)
    assert peak <= 8
    for site in ("west", "east"):
        mine = [runs[j] for j in jobs if planned[j].partition == site]
        for r in mine:
            overlapping = sum(2 for o in mine if o.start < r.end and r.start < o.end)
            assert overlapping <= 4, site
    records, _ = store.list(full=True)
    assert records and {row.job_id for row in records[-1].jobs} >= set(jobs)
    # Read back: the report shows the jobs as run beside as planned (they ran where and when
    # planned, 45 s of their 2-minute limits: one or two of their two 1-minute slots).
    reader = agent(cluster, store, record_runs=store.save_runs,
                   jobcomp_log=str(cluster.jobcomp_log))
    assert reader.read_back() >= len(jobs)
    from gridshift.app.reports import build_report

    report = build_report(make_app(store).archive, None, None, fmt="json")
    totals = report.summary["totals"]
    assert 0.45 * totals["energy_kwh"] <= totals["as_run_energy_kwh"] \
        <= totals["energy_kwh"] + 1e-9
    assert totals["as_run_emissions_kg"] > 0


def test_when_planning_fails_held_jobs_are_released_at_their_own_times(cluster, tmp_path):
    def broken(request):
        raise ConnectionError("gridshift server down")

    job_id = cluster.submit("--hold", "--comment=gridshift", "--gres=gpu:1", "--time=1",
                            "--begin=now+1hour", wrap="sleep 1")
    before = _show(cluster, job_id)["StartTime"]
    outcome = agent(cluster, PlanStore(f"sqlite:///{tmp_path / 's.sqlite'}"), broken).sync()
    assert "gridshift server down" in outcome.error
    assert [(d.job_id, d.action) for d in outcome.decisions] == [(job_id, "released")]
    shown = _show(cluster, job_id)
    assert "Held" not in shown["Reason"] and shown["StartTime"] == before
    cluster.run("scancel", job_id)


def test_slurm_down_changes_nothing(tmp_path) -> None:
    client = SlurmClient(slurm_conf=str(tmp_path / "missing.conf"), attempts=2, backoff_s=0.01)
    with pytest.raises(SlurmUnavailable):
        SlurmSync(client, sites_of(SITES), lambda r: ("", {}, {})).sync()


def _pending(job_id: str, *, held: bool, eligible: datetime | None, deadline: datetime | None,
             partitions: tuple[str, ...] = ("west",)) -> SlurmJob:
    now = datetime.now(UTC)
    return SlurmJob(job_id, "train", partitions, "PENDING",
                    "JobHeldUser" if held else "BeginTime", 2, 30, now - timedelta(hours=1),
                    eligible, None, deadline, comment="gridshift")


def test_planned_jobs_end_a_slot_before_their_deadline_and_released_jobs_stay_put() -> None:
    """The request the agent builds: a job's deadline one slot early (Slurm cancels a job
    that cannot end by its deadline when it would start, and starts a released job up to its
    scheduling interval late); a job too close to its deadline for that is left to Slurm; a
    released job waiting to start is announced where it is, from now; a held one is not."""
    now = datetime(2026, 12, 5, 12, 7, tzinfo=UTC)
    sync = SlurmSync(SlurmClient(), sites_of(SITES), lambda r: ("", {}, {}), slot_minutes=15,
                     hours=24, clock=lambda: now)
    jobs = [_pending("1", held=True, eligible=now - timedelta(hours=1),
                     deadline=now + timedelta(hours=5), partitions=("west", "east")),
            _pending("2", held=False, eligible=now - timedelta(minutes=3), deadline=None),
            _pending("3", held=False, eligible=now + timedelta(hours=2), deadline=None),
            _pending("4", held=True, eligible=now - timedelta(hours=1),
                     deadline=now + timedelta(minutes=40))]
    request, skipped = sync.request(jobs, [], now)
    by_id = {j["id"]: j for j in request["jobs"]}
    assert by_id["1"]["deadline"] == "2026-12-05T16:52:00Z"        # 17:07 less one slot
    assert "announced_site" not in by_id["1"]                       # held: not announced
    assert (by_id["2"]["announced_site"], by_id["2"]["announced_start"]) == \
        ("west", "2026-12-05T12:07:00Z")                            # released: from now
    assert by_id["3"]["announced_start"] == "2026-12-05T14:07:00Z"  # a start set before
    assert [(d.job_id, d.action) for d in skipped] == [("4", "skipped")]
    assert "deadline" in skipped[0].reason


def test_a_job_that_ends_while_its_round_is_planned_is_skipped(cluster, tmp_path) -> None:
    """Slurm refuses to change a job that is no longer pending; the round goes on with the
    others (no retries, no error) and says so."""
    store = PlanStore(f"sqlite:///{tmp_path / 'store.sqlite'}")
    jobs = [cluster.submit("--hold", "--comment=gridshift", "--gres=gpu:1", "--partition=west",
                           "--time=2", wrap="sleep 30") for _ in range(2)]
    plan = checked_planner_plan(make_app(store).planner, "slurm")

    def plan_while_one_is_cancelled(request):
        cluster.run("scancel", jobs[0])
        return plan(request)

    outcome = agent(cluster, store, plan_while_one_is_cancelled).sync()
    assert not outcome.error, outcome.error
    actions = {d.job_id: d.action for d in outcome.decisions}
    assert actions == {jobs[0]: "skipped", jobs[1]: "moved"}, outcome.decisions
    cluster.run("scancel", jobs[1])


def _wait_done(cluster, jobs: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        queue = cluster.run("squeue", "-h", "-o", "%i", check=False).split()
        if not set(jobs) & set(queue):
            time.sleep(2)   # the completion log is written as each job ends
            return
        time.sleep(3)
    raise AssertionError(f"jobs still queued after {timeout_s} s: {cluster.log_tail()}")
