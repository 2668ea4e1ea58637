"""The plan store on SQLite and on a real PostgreSQL server (a throwaway cluster the tests start:
tests/pg_cluster.py; skipped, with the reason, where PostgreSQL cannot be run here)."""

from __future__ import annotations

import json
import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from gridshift.adapters.store import (
    ActualSeries,
    DuplicatePlanError,
    JobRow,
    PlanFilter,
    PlanRecord,
    PlanStore,
    StoreError,
    forecast_snapshot,
    redact_url,
)
from gridshift.adapters.store import plan_store as plan_store_module
from gridshift.adapters.store.migrations import VERSION_TABLE, head_revision
from gridshift.adapters.store.schema import metadata

PROJECT_ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 6, 15, tzinfo=UTC)
BACKENDS = ["sqlite", "postgresql"]


# -- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def pg():
    """A throwaway PostgreSQL cluster for the whole session (skip, with the reason, if none)."""
    pytest.importorskip("psycopg", reason="psycopg (PostgreSQL driver) is not installed")
    import pg_cluster

    try:
        cluster = pg_cluster.start_cluster()
    except pg_cluster.ClusterUnavailable as exc:
        print(f"\nPostgreSQL plan store tests skipped: {exc}", file=sys.stderr)
        pytest.skip(f"no throwaway PostgreSQL cluster: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'plans.sqlite'}"
    return request.getfixturevalue("pg").create_database()


@pytest.fixture
def store(store_url):
    with PlanStore(store_url) as s:
        yield s


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'plans.sqlite'}"


def job_row(k: int, start: datetime, team: str = "research", site: str = "eu-1") -> JobRow:
    return JobRow(job_id=f"job-{k}", team=team, site_id=site,
                  start=start + timedelta(hours=k), end=start + timedelta(hours=k + 2),
                  energy_kwh=10.5 + k, grid_energy_kwh=8.25 + k, emissions_kg=1.0 / (k + 3),
                  baseline_emissions_kg=2.0 / (k + 3))


def make_plan(plan_id: str, *, created_at: datetime | None = None, start: datetime = T0,
              hours: int = 24, status: str = "OPTIMAL", jobs: list[JobRow] | None = None,
              run_key: str | None = None, source: str = "grpc") -> PlanRecord:
    created = created_at or T0 - timedelta(hours=1)
    return PlanRecord(
        plan_id=plan_id, created_at=created, source=source, status=status,
        horizon_start=start, horizon_end=start + timedelta(hours=hours),
        request={"horizon": {"start": start.isoformat(), "slots": hours, "slotMinutes": 60},
                 "jobs": [{"jobId": "job-0", "gpus": 8, "powerKw": 6.5}],
                 "options": {"allowPartial": True, "randomSeed": 7}},
        response={"planId": plan_id, "status": status,
                  "totals": {"emissionsKg": 12.345678901234567, "energyKwh": 1e-300},
                  "assignments": [{"jobId": "job-0", "siteId": "eu-1", "runs": []}],
                  "unscheduled": [], "note": "ünïcödé ✓ \u2603", "big": 2**62, "flag": False,
                  "nothing": None},
        forecasts=[{"region": "GB", "start": start.isoformat(), "slot_minutes": 30,
                    "carbon_intensity": [120.5, 99.0], "p10": [100.0, 80.0],
                    "p90": [140.0, 120.0], "price_per_mwh": [], "provider": "ukci",
                    "issued_at": (start - timedelta(hours=2)).isoformat(), "stale": False,
                    "fallback": False, "detail": "ukci (fresh)"}],
        provenance=[{"region": "GB", "provider": "ukci", "stale": False, "fallback": False}],
        emissions_kg=12.345678901234567, baseline_emissions_kg=20.5, energy_kwh=300.25,
        run_key=run_key,
        jobs=[job_row(0, start), job_row(1, start, team="prod", site="us-2")]
        if jobs is None else jobs)


def utc(record: PlanRecord) -> PlanRecord:
    """The record as the store hands it back: every datetime in UTC."""
    return replace(
        record, created_at=record.created_at.astimezone(UTC),
        horizon_start=record.horizon_start.astimezone(UTC),
        horizon_end=record.horizon_end.astimezone(UTC),
        jobs=[replace(j, start=j.start.astimezone(UTC), end=j.end.astimezone(UTC))
              for j in record.jobs])


def all_datetimes(record: PlanRecord) -> list[datetime]:
    return [record.created_at, record.horizon_start, record.horizon_end,
            *[t for j in record.jobs for t in (j.start, j.end)]]


# -- round trips --------------------------------------------------------------------------------

def test_round_trip_every_field(store):
    plus2 = timezone(timedelta(hours=2))
    created = datetime(2026, 6, 14, 23, 59, 58, 123456, tzinfo=plus2)
    start = datetime(2026, 6, 15, 2, 0, tzinfo=plus2)
    jobs = [job_row(k, start, team=f"team-{k % 2}", site=f"site-{k % 3}") for k in range(5)]
    record = make_plan("plan-1", created_at=created, start=start, jobs=jobs,
                       run_key="2026-06-15:abc123", source="nightly")
    assert store.save(record) == "plan-1"

    got = store.get("plan-1")
    assert got == utc(record)
    assert all(t.tzinfo is UTC for t in all_datetimes(got))
    assert got.created_at == created and got.created_at.microsecond == 123456
    assert [j.job_id for j in got.jobs] == [f"job-{k}" for k in range(5)]
    assert json.dumps(got.response, sort_keys=True) == json.dumps(record.response, sort_keys=True)
    assert store.find_by_run_key("2026-06-15:abc123") == got
    assert store.count() == 1


def test_round_trip_plan_without_jobs_and_infeasible(store):
    record = make_plan("empty", status="INFEASIBLE", jobs=[])
    record.response = {}
    record.forecasts = []
    record.provenance = []
    store.save(record)
    assert store.get("empty") == record


def test_missing_plan_and_run_key(store):
    assert store.get("nope") is None
    assert store.find_by_run_key("nope") is None


def test_forecast_snapshot_is_storable(store):
    from gridshift.forecasting.series import Forecast

    forecast = Forecast(region="GB", start=T0, slot_minutes=30,
                        carbon_intensity=(100.0, float("nan")), carbon_intensity_p10=(90.0, 1.0),
                        provider="ukci", issued_at=T0 - timedelta(hours=1), detail="fresh")
    snap = forecast_snapshot(forecast)
    assert snap["start"] == "2026-06-15T00:00:00Z" and snap["carbon_intensity"] == [100.0, None]
    record = make_plan("snap")
    record.forecasts = [snap]
    store.save(record)
    assert store.get("snap").forecasts == [snap]


def test_invalid_records_are_refused_and_nothing_is_stored(store):
    naive = make_plan("naive", created_at=datetime(2026, 6, 15))
    with pytest.raises(ValueError, match="created_at.*timezone-aware"):
        store.save(naive)
    nan = make_plan("nan")
    nan.emissions_kg = float("nan")
    with pytest.raises(ValueError, match="emissions_kg"):
        store.save(nan)
    bad_json = make_plan("bad-json")
    bad_json.response = {"when": T0}
    with pytest.raises(ValueError, match="response.*JSON"):
        store.save(bad_json)
    inf_json = make_plan("inf-json")
    inf_json.request = {"x": float("inf")}
    with pytest.raises(ValueError, match="request"):
        store.save(inf_json)
    bad_job = make_plan("bad-job", jobs=[replace(job_row(0, T0), start=datetime(2026, 6, 15))])
    with pytest.raises(ValueError, match=r"jobs\[0\]\.start"):
        store.save(bad_job)
    assert store.count() == 0


def test_duplicate_plan_id_is_refused(store):
    store.save(make_plan("dup"))
    with pytest.raises(DuplicatePlanError, match="dup"):
        store.save(make_plan("dup", status="FEASIBLE"))
    assert store.get("dup").status == "OPTIMAL"
    assert store.count() == 1


def test_a_failing_save_leaves_nothing_behind(store, monkeypatch):
    """The plan row and its job rows are one transaction: a job row that fails to insert (here a
    duplicate position) takes the plan row with it."""
    real = plan_store_module._job_rows

    def broken(record: PlanRecord) -> list[dict]:
        rows = real(record)
        return [*rows, dict(rows[-1])]

    monkeypatch.setattr(plan_store_module, "_job_rows", broken)
    with pytest.raises(StoreError, match="save a plan"):
        store.save(make_plan("half", run_key="2026-06-15:half"))
    monkeypatch.undo()
    assert store.get("half") is None and store.count() == 0
    assert store.save(make_plan("whole", run_key="2026-06-15:half")) == "whole"


# -- run keys -----------------------------------------------------------------------------------

def test_run_key_is_idempotent(store):
    first = make_plan("nightly-a", run_key="2026-06-15:hash1", source="nightly")
    assert store.save(first) == "nightly-a"
    again = make_plan("nightly-b", run_key="2026-06-15:hash1", source="nightly",
                      status="FEASIBLE")
    assert store.save(again) == "nightly-a"
    assert store.get("nightly-b") is None
    assert store.count() == 1
    # Same plan twice with its run key: still no error, no duplicate.
    assert store.save(first) == "nightly-a"
    # Other keys, and plans without a key, are independent (NULL run keys do not collide).
    assert store.save(make_plan("nightly-c", run_key="2026-06-16:hash1")) == "nightly-c"
    assert store.save(make_plan("adhoc-1")) == "adhoc-1"
    assert store.save(make_plan("adhoc-2")) == "adhoc-2"
    assert store.count() == 4


def test_run_key_under_concurrent_writers(store_url):
    """Eight writers on two stores race to save the same nightly run: one plan is stored and
    every writer gets its id."""
    stores = [PlanStore(store_url), PlanStore(store_url)]
    barrier = threading.Barrier(8)
    results: list[str] = []
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            barrier.wait()
            results.append(stores[k % 2].save(
                make_plan(f"racer-{k}", run_key="2026-06-15:race", source="nightly")))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert not errors, errors
        assert len(results) == 8 and len(set(results)) == 1
        assert stores[0].count() == 1
        assert stores[1].find_by_run_key("2026-06-15:race").plan_id == results[0]
    finally:
        for s in stores:
            s.close()


# -- listing ------------------------------------------------------------------------------------

def _corpus() -> list[PlanRecord]:
    plans = []
    for i in range(40):
        start = T0 + timedelta(hours=6 * (i % 10))
        jobs = [job_row(k, start, team=("research", "prod", "eval")[(i + k) % 3],
                        site=("eu-1", "us-2")[(i * k) % 2]) for k in range(i % 3)]
        plans.append(make_plan(
            f"p{i:03d}", created_at=T0 + timedelta(minutes=i // 3), start=start,
            hours=6 + i % 4 * 6, status=("OPTIMAL", "FEASIBLE", "INFEASIBLE")[i % 3], jobs=jobs))
    return plans


def _expected(plans: list[PlanRecord], flt: PlanFilter) -> list[str]:
    def keep(p: PlanRecord) -> bool:
        return ((flt.start is None or p.horizon_end > flt.start)
                and (flt.end is None or p.horizon_start < flt.end)
                and (flt.status is None or p.status == flt.status)
                and (flt.team is None or any(j.team == flt.team for j in p.jobs))
                and (flt.site is None or any(j.site_id == flt.site for j in p.jobs)))

    chosen = sorted((p for p in plans if keep(p)), key=lambda p: p.plan_id)
    chosen.sort(key=lambda p: p.created_at, reverse=True)
    return [p.plan_id for p in chosen]


def _page_all(store: PlanStore, flt: PlanFilter, size: int, full: bool = False):
    seen, token, pages = [], None, 0
    while True:
        page, token = store.list(flt, page_size=size, page_token=token, full=full)
        assert len(page) <= size
        seen.extend(page)
        pages += 1
        if token is None:
            return seen, pages
        assert pages < 100


FILTERS = [
    PlanFilter(),
    PlanFilter(status="FEASIBLE"),
    PlanFilter(team="prod"),
    PlanFilter(site="us-2"),
    PlanFilter(team="eval", site="eu-1"),
    PlanFilter(start=T0 + timedelta(hours=20), end=T0 + timedelta(hours=30)),
    PlanFilter(start=T0 + timedelta(hours=40)),
    PlanFilter(end=T0 + timedelta(hours=6)),
    PlanFilter(start=T0 + timedelta(hours=12), end=T0 + timedelta(hours=13), status="OPTIMAL"),
    PlanFilter(team="nobody"),
]


def test_list_filters_and_pagination(store):
    plans = _corpus()
    for p in plans:
        store.save(p)
    by_id = {p.plan_id: p for p in plans}
    for flt in FILTERS:
        expected = _expected(plans, flt)
        for size in (1, 4, 7, 500):
            got, pages = _page_all(store, flt, size)
            ids = [p.plan_id for p in got]
            assert ids == expected, (flt, size)
            assert pages == max(1, -(-len(expected) // size)), (flt, size)
    # Summaries carry everything but the payloads; full listings carry everything.
    summary, _ = store.list(PlanFilter(), page_size=3)
    for p in summary:
        assert p.request == {} and p.response == {} and p.forecasts == []
        assert p.jobs == by_id[p.plan_id].jobs and p.provenance == by_id[p.plan_id].provenance
    full, _ = store.list(PlanFilter(), page_size=3, full=True)
    assert full == [by_id[p.plan_id] for p in summary]


def test_pagination_is_stable_while_plans_are_added(store):
    plans = _corpus()
    for p in plans[:30]:
        store.save(p)
    page, token = store.list(page_size=10)
    # Newer plans arrive between pages: the listing goes on where it was, nothing repeats.
    for p in plans[30:]:
        store.save(replace(p, created_at=p.created_at + timedelta(days=1)))
    rest, _ = _page_all_from(store, token, 10)
    ids = [p.plan_id for p in page + rest]
    assert len(ids) == len(set(ids)) == 30
    assert ids == _expected(plans[:30], PlanFilter())


def _page_all_from(store: PlanStore, token: str | None, size: int):
    seen = []
    while token is not None:
        page, token = store.list(page_size=size, page_token=token)
        seen.extend(page)
    return seen, None


def test_page_size_and_tokens(store, monkeypatch):
    for p in _corpus()[:12]:
        store.save(p)
    assert plan_store_module.MAX_PAGE_SIZE == 500
    assert len(store.list(page_size=0)[0]) == 12          # 0: the default (50)
    monkeypatch.setattr(plan_store_module, "MAX_PAGE_SIZE", 5)
    page, token = store.list(page_size=10_000)
    assert len(page) == 5 and token
    with pytest.raises(ValueError, match="another filter"):
        store.list(PlanFilter(status="OPTIMAL"), page_token=token)
    for bad in ("garbage!", "eyJ4IjoxfQ", token[:-3]):
        with pytest.raises(ValueError, match="page_token"):
            store.list(page_token=bad)
    with pytest.raises(ValueError, match="timezone-aware"):
        store.list(PlanFilter(start=datetime(2026, 6, 15)))


# -- actuals ------------------------------------------------------------------------------------

def test_actuals_upsert_and_range(store):
    nan = float("nan")
    store.save_actuals([ActualSeries("GB", T0, 30, [100.0, 110.0, nan, 130.0], "ukci"),
                        ActualSeries("DE", T0, 60, [300.0, 310.0], "emaps")])
    # A later series replaces overlapping values; NaN leaves the stored value alone.
    store.save_actuals([ActualSeries("GB", T0 + timedelta(minutes=30), 30,
                                     [111.0, 120.0, nan, 140.0], "ukci-revised")])
    got = store.actuals("GB", T0, T0 + timedelta(hours=2))
    assert got == [(T0, 100.0), (T0 + timedelta(minutes=30), 111.0),
                   (T0 + timedelta(minutes=60), 120.0), (T0 + timedelta(minutes=90), 130.0)]
    assert all(t.tzinfo is UTC for t, _ in got)
    assert store.actuals("GB", T0 + timedelta(minutes=30), T0 + timedelta(minutes=60)) == [
        (T0 + timedelta(minutes=30), 111.0)]
    assert store.actuals("DE", T0 - timedelta(days=1), T0 + timedelta(days=1)) == [
        (T0, 300.0), (T0 + timedelta(hours=1), 310.0)]
    assert store.actuals("FR", T0, T0 + timedelta(days=1)) == []
    assert store.save_actuals([]) == 0
    with pytest.raises(ValueError, match="timezone-aware"):
        store.save_actuals([ActualSeries("GB", datetime(2026, 6, 15), 30, [1.0], "x")])


# -- migrations ---------------------------------------------------------------------------------

def test_fresh_database_is_at_head(store, store_url):
    versions = Path(__file__).resolve().parent.parent / "adapters/store/migrations/versions"
    newest = max(f.name.split("_")[0] for f in versions.glob("[0-9]*_*.py"))
    assert head_revision() == newest >= "0002"
    assert store.schema_revision() == head_revision()
    engine = create_engine(store_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"plans", "plan_jobs", "actuals", VERSION_TABLE} <= tables


def test_schema_module_matches_migrations(store, store_url):
    """schema.py describes exactly what the migrations build (autogenerate finds nothing)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    diff = [d for d in diff if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)]
    assert diff == []


def _insert_0001_plan(url: str) -> None:
    """A plan as gridshift at revision 0001 wrote it (plain SQL: that code is gone)."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO plans (plan_id, created_at, source, status, horizon_start, "
                "horizon_end, request, response, forecasts, provenance, emissions_kg, "
                "baseline_emissions_kg, energy_kwh, run_key) VALUES (:id, :c, 'cli', 'OPTIMAL', "
                ":s, :e, :req, :resp, '[]', '[]', 1.5, 2.5, 10.0, 'old-key')"),
                {"id": "old-plan", "c": T0 - timedelta(days=30), "s": T0,
                 "e": T0 + timedelta(hours=4), "req": json.dumps({"old": True}),
                 "resp": json.dumps({"planId": "old-plan"})})
            conn.execute(text(
                "INSERT INTO plan_jobs (plan_id, seq, job_id, team, site_id, start_at, end_at, "
                "energy_kwh, grid_energy_kwh, emissions_kg, baseline_emissions_kg) VALUES "
                "('old-plan', 0, 'j0', 'research', 'eu-1', :s, :e, 10.0, 9.0, 1.5, 2.5)"),
                {"s": T0, "e": T0 + timedelta(hours=2)})
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_upgrade_from_0001_keeps_plans(backend, tmp_path, request):
    url = (f"sqlite:///{tmp_path / 'old.sqlite'}" if backend == "sqlite"
           else request.getfixturevalue("pg").create_database("old"))
    with PlanStore(url, migrate=False) as old:
        old.upgrade("0001")
        assert old.schema_revision() == "0001"
    _insert_0001_plan(url)
    engine = create_engine(url)
    try:
        assert "actuals" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()

    with PlanStore(url) as store:
        assert store.schema_revision() == head_revision()
        plan = store.get("old-plan")
        assert plan is not None and plan.request == {"old": True} and plan.run_key == "old-key"
        assert plan.created_at == T0 - timedelta(days=30) and plan.created_at.tzinfo is UTC
        assert [(j.job_id, j.end) for j in plan.jobs] == [("j0", T0 + timedelta(hours=2))]
        assert store.save(make_plan("new-plan", run_key="old-key")) == "old-plan"
        store.save_actuals([ActualSeries("GB", T0, 30, [1.0], "ukci")])
        assert store.actuals("GB", T0, T0 + timedelta(hours=1)) == [(T0, 1.0)]


def test_downgrade_then_upgrade(sqlite_url):
    with PlanStore(sqlite_url) as store:
        store.save(make_plan("keep"))
        store.save_actuals([ActualSeries("GB", T0, 30, [1.0], "ukci")])
        store.downgrade("0001")
        assert store.schema_revision() == "0001"
        store.upgrade()
        assert store.schema_revision() == head_revision()
        kept = store.get("keep")
        assert kept is not None and all(j.superseded_by is None for j in kept.jobs)
        assert store.actuals("GB", T0, T0 + timedelta(hours=1)) == []
        store.downgrade("base")
        assert store.schema_revision() is None


def test_database_newer_than_the_code_is_refused(sqlite_url):
    PlanStore(sqlite_url).close()
    engine = create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(StoreError, match="9999"):
        PlanStore(sqlite_url)


def test_migration_command_line(sqlite_url, capsys):
    from gridshift.cli import main

    assert main(["db", "upgrade", "0001", "--url", sqlite_url]) == 0
    assert main(["db", "current", "--url", sqlite_url]) == 0
    assert capsys.readouterr().out.strip().endswith(": 0001")
    assert main(["db", "upgrade", "--url", sqlite_url]) == 0
    assert main(["db", "history"]) == 0
    assert main(["db", "downgrade", "--url", sqlite_url]) == 2
    with PlanStore(sqlite_url, migrate=False) as store:
        assert store.schema_revision() == head_revision()


# -- opening, errors ----------------------------------------------------------------------------

def test_the_settings_store_url_creates_its_folder(tmp_path):
    from gridshift.settings import load_settings

    settings = load_settings(environ={"GRIDSHIFT_DATA_DIR": str(tmp_path / "data")})
    assert settings.store_url == f"sqlite:///{tmp_path / 'data' / 'gridshift.sqlite'}"
    with PlanStore(settings.store_url) as store:
        store.save(make_plan("here"))
    assert (tmp_path / "data" / "gridshift.sqlite").is_file()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_url):
    with PlanStore(sqlite_url) as s:
        with s._engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        engine = create_engine(sqlite_url)
        try:
            with pytest.raises(Exception, match="FOREIGN KEY"), engine.begin() as conn:
                conn.exec_driver_sql("PRAGMA foreign_keys = ON")
                conn.execute(text(
                    "INSERT INTO plan_jobs VALUES ('ghost', 0, 'j', 't', 's', '2026-06-15', "
                    "'2026-06-15', 1, 1, 1, 1, NULL)"))
        finally:
            engine.dispose()


def test_redact_url():
    assert redact_url("postgresql://gs:s3cr3t@db:5432/x") == "postgresql://gs:***@db:5432/x"
    assert redact_url("postgresql://db/x?user=a&password=s3cr3t") == (
        "postgresql://db/x?user=a&password=***")
    assert redact_url("sqlite:////tmp/x.sqlite") == "sqlite:////tmp/x.sqlite"
    # An unescaped "@" or "/" in the password does not leak its tail.
    assert redact_url("postgresql://gs:p@ss/w@db/x") == "postgresql://gs:***@db/x"
    assert redact_url("postgresql://db:5432/x?application_name=a@b") == (
        "postgresql://db:5432/x?application_name=a@b")


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("url, message", [
    ("not a url", "bad plan store URL"),
    ("nosuchdialect://u:s3cr3t@host/db", "u:\\*\\*\\*@host"),
    ("mysql+nosuchdriver://u:s3cr3t@host/db", "cannot open"),
])
def test_bad_urls_raise_store_error(url, message):
    with pytest.raises(StoreError, match=message) as info:
        PlanStore(url)
    assert "s3cr3t" not in str(info.value)


def test_unreachable_postgresql_is_a_clear_error():
    pytest.importorskip("psycopg")
    url = f"postgresql://gridshift:s3cr3t@127.0.0.1:{_closed_port()}/gridshift"
    with pytest.raises(StoreError) as info:
        PlanStore(url, connect_timeout_s=2)
    message = str(info.value)
    assert "s3cr3t" not in message and "gridshift:***@127.0.0.1" in message
    assert "cannot" in message


def test_unwritable_sqlite_location_is_a_store_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError):
        PlanStore(f"sqlite:///{blocker / 'sub' / 'db.sqlite'}")
    not_a_db = tmp_path / "junk.sqlite"
    not_a_db.write_bytes(os.urandom(4096))
    with pytest.raises(StoreError, match="junk.sqlite"):
        PlanStore(f"sqlite:///{not_a_db}")


# -- concurrency --------------------------------------------------------------------------------

def test_two_stores_open_a_fresh_database_at_once(store_url):
    barrier = threading.Barrier(4)
    opened: list[PlanStore] = []
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            barrier.wait()
            opened.append(PlanStore(store_url))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert not errors, errors
        assert [s.schema_revision() for s in opened] == [head_revision()] * 4
    finally:
        for s in opened:
            s.close()


def test_two_stores_on_one_sqlite_file(sqlite_url):
    a, b = PlanStore(sqlite_url), PlanStore(sqlite_url)
    errors: list[BaseException] = []

    def writer(s: PlanStore, prefix: str) -> None:
        try:
            for i in range(25):
                s.save(make_plan(f"{prefix}-{i}", created_at=T0 + timedelta(seconds=i)))
                assert s.get(f"{prefix}-{i}") is not None
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(a, "a")),
               threading.Thread(target=writer, args=(b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert not errors, errors
        assert a.count() == b.count() == 50
        assert b.get("a-24") == a.get("a-24") and a.get("b-0") == b.get("b-0")
        ids = [p.plan_id for p in _page_all(b, PlanFilter(), 7)[0]]
        assert sorted(ids) == sorted([f"a-{i}" for i in range(25)] + [f"b-{i}" for i in range(25)])
    finally:
        a.close()
        b.close()


# -- a process killed mid-write -----------------------------------------------------------------

WRITER = r"""
import sys
from datetime import UTC, datetime, timedelta
sys.path.insert(0, sys.argv[1])
from gridshift.adapters.store import JobRow, PlanRecord, PlanStore

url, prefix = sys.argv[2], sys.argv[3]
t0 = datetime(2026, 6, 15, tzinfo=UTC)
store = PlanStore(url)
i = 0
while True:
    n = 1 + i % 6
    plan_id = f"{prefix}-{i}"
    jobs = [JobRow(f"j{k}", "team", "site", t0, t0 + timedelta(hours=1), 1.0, 1.0, 0.5, 0.7)
            for k in range(n)]
    store.save(PlanRecord(
        plan_id=plan_id, created_at=t0 + timedelta(seconds=i), source="test", status="OPTIMAL",
        horizon_start=t0, horizon_end=t0 + timedelta(days=1),
        request={"pad": "r" * 400_000, "n_jobs": n},
        response={"planId": plan_id, "n_jobs": n, "load": [float(k) for k in range(40_000)]},
        forecasts=[{"region": "GB", "ci": [100.0] * 20_000}], provenance=[{"n": n}],
        emissions_kg=float(n), baseline_emissions_kg=2.0 * n, energy_kwh=3.0 * n, jobs=jobs))
    print(plan_id, flush=True)
    i += 1
"""


def _run_and_kill(url: str, prefix: str, rng: random.Random, wait_first: bool) -> list[str]:
    """Start a writer, kill it with SIGKILL at a random moment; the plan ids it reported saved."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(PROJECT_ROOT), url, prefix],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    saved: list[str] = []
    buffer = b""
    try:
        deadline = time.monotonic() + 60
        if wait_first:
            while not saved and time.monotonic() < deadline and proc.poll() is None:
                ready, _, _ = select.select([proc.stdout], [], [], 0.5)
                if ready:
                    buffer += os.read(proc.stdout.fileno(), 65536)
                    saved = buffer.decode().split()
            assert saved, proc.stderr.read().decode() if proc.poll() is not None else "no plan"
        time.sleep(rng.uniform(0.0, 0.4))
        assert proc.poll() is None, proc.stderr.read().decode()
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        buffer += proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    # The last line may be cut off by the kill: only whole lines count.
    return [line for line in buffer.decode().splitlines()[: buffer.count(b"\n")] if line]


def _check_consistent(url: str, reported: list[str]) -> int:
    with PlanStore(url) as store:
        assert store.schema_revision() == head_revision()
        engine = store._engine
        with engine.connect() as conn:
            plans = conn.execute(text("SELECT plan_id, request, response FROM plans")).all()
            counts = dict(conn.execute(text(
                "SELECT plan_id, COUNT(*) FROM plan_jobs GROUP BY plan_id")).all())
            seqs = conn.execute(text(
                "SELECT plan_id, MIN(seq), MAX(seq) FROM plan_jobs GROUP BY plan_id")).all()
        ids = {row.plan_id for row in plans}
        assert set(counts) <= ids, "job rows without their plan"
        for row in plans:
            request = row.request if isinstance(row.request, dict) else json.loads(row.request)
            response = row.response if isinstance(row.response, dict) else json.loads(row.response)
            n = request["n_jobs"]
            assert len(request["pad"]) == 400_000
            assert response["planId"] == row.plan_id and response["n_jobs"] == n
            assert len(response["load"]) == 40_000
            assert counts.get(row.plan_id) == n, row.plan_id
        assert all(lo == 0 and hi == counts[p] - 1 for p, lo, hi in seqs)
        # Every plan the writers reported saved (committed) is there, whole.
        assert set(reported) <= ids
        for plan_id in reported[-3:]:
            plan = store.get(plan_id)
            assert len(plan.jobs) == plan.request["n_jobs"] == plan.response["n_jobs"]
        return len(ids)


@pytest.mark.parametrize("backend", BACKENDS)
def test_process_killed_mid_write_leaves_the_store_consistent(backend, tmp_path, request):
    if backend == "sqlite":
        path = tmp_path / "killed.sqlite"
        url, rounds = f"sqlite:///{path}", 6
    else:
        url, rounds = request.getfixturevalue("pg").create_database("killed"), 4
    rng = random.Random()
    reported: list[str] = []
    # Round 0 on a fresh database may kill the writer anywhere: importing, migrating, saving.
    for r in range(rounds):
        reported += _run_and_kill(url, f"w{r}", rng, wait_first=r > 0)
    stored = _check_consistent(url, reported)
    assert stored >= len(reported) >= rounds - 1
    if backend == "sqlite":
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        conn.close()
