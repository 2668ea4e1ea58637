"""The plan store: every plan with its request, response, forecasts, provenance and jobs, in SQL.

SQLAlchemy Core over SQLite (default: ``<data dir>/gridshift.sqlite``) or PostgreSQL
(``GRIDSHIFT_DB_URL``, e.g. ``postgresql://user:pass@host/db``; psycopg 3). Opening a store runs
the schema migrations to head, under a lock (SQLite's write lock / a PostgreSQL advisory lock)
so that two processes opening one database at once are safe.

A plan and its job rows are written in one transaction: a crash or a kill never leaves half a
plan. SQLite runs in WAL mode with foreign keys on and ``BEGIN IMMEDIATE`` for writes. Nightly
runs pass a ``run_key``; saving a plan whose run key is stored already writes nothing and returns
the stored plan's id.

Errors: a bad URL, a missing driver, an unreachable database, a failed migration or a failed
query raise :class:`StoreError`, whose message names the database with its password redacted.
A record that cannot be stored as given (naive datetime, NaN, non-JSON payload) or a bad page
token raises ``ValueError``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import re
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url

from gridshift.adapters.store import schema
from gridshift.adapters.store.records import (
    ActualSeries,
    GateSubmission,
    JobRow,
    JobRun,
    PlanFilter,
    PlanRecord,
    regular_series,
)
from gridshift.forecasting.series import Forecast

__all__ = [
    "MAX_PAGE_SIZE",
    "DuplicatePlanError",
    "DuplicateSubmissionError",
    "PlanStore",
    "StoreError",
    "redact_url",
]

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50
# Key of the PostgreSQL advisory lock held while migrating (any fixed 63-bit number).
_MIGRATION_LOCK = zlib.crc32(b"gridshift.plan_store.migrations")
_TOKEN_VERSION = 1


class StoreError(Exception):
    """The plan store cannot be opened or used: bad URL, missing driver, unreachable database,
    failed migration or query. The message never contains the database password."""


class DuplicatePlanError(StoreError):
    """A plan with this plan_id is stored already (and the record has no matching run key)."""


class DuplicateSubmissionError(StoreError):
    """A gate submission with this id is stored already."""


# The password runs to the last "@" before any query: an unescaped "@" or "/" in it is
# redacted too.
_USERINFO = re.compile(r"(?P<head>://[^:/?#@]*):(?P<password>[^?#]*)@")
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)[^&#]*", re.IGNORECASE)


def redact_url(url: str | URL) -> str:
    """The URL with its password (in the user info or a ``password=`` query) as ``***``."""
    if isinstance(url, URL):
        url = url.render_as_string(hide_password=False)
    url = _USERINFO.sub(lambda m: f"{m['head']}:***@", str(url))
    return _QUERY_PASSWORD.sub(lambda m: f"{m['head']}***", url)


def _secrets(url: str) -> list[str]:
    found = [m["password"] for m in _USERINFO.finditer(url) if m["password"]]
    try:
        password = make_url(url).password
    except Exception:  # noqa: BLE001 - a URL that does not parse has no parsed password
        password = None
    if password:
        found.append(str(password))
    # Scrubbing a very short password from messages would garble them more than it protects.
    return sorted({secret for secret in found if len(secret) >= 4}, key=len, reverse=True)


def _reason(exc: BaseException) -> str:
    """A short description of a driver error: the driver's own first line, not SQL + params."""
    orig = getattr(exc, "orig", None)
    source = orig if orig is not None else exc
    lines = [line.strip() for line in str(source).strip().splitlines() if line.strip()]
    reason = lines[0] if lines else type(source).__name__
    return reason if len(reason) <= 300 else reason[:297] + "..."


def _aware(moment: Any, what: str) -> datetime:
    if not isinstance(moment, datetime):
        raise ValueError(f"{what}: expected a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what}: datetime {moment!r} must be timezone-aware")
    return moment.astimezone(UTC)


def _number(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected a number, got {value!r}") from None
    if math.isnan(number):
        raise ValueError(f"{what}: NaN cannot be stored")
    return number


def _text(value: Any, what: str, limit: int, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what}: expected a string, got {type(value).__name__}")
    if not value and not empty:
        raise ValueError(f"{what}: must not be empty")
    if len(value) > limit:
        raise ValueError(f"{what}: longer than {limit} characters")
    return value


def _json(value: Any, what: str, kind: type) -> Any:
    if not isinstance(value, kind):
        raise ValueError(f"{what}: expected a {kind.__name__}, got {type(value).__name__}")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: not storable as JSON ({exc})") from None
    return value


def _plan_row(record: PlanRecord) -> dict[str, Any]:
    run_key = record.run_key
    if run_key is not None:
        run_key = _text(run_key, "run_key", 255)
    return {
        "plan_id": _text(record.plan_id, "plan_id", 128),
        "created_at": _aware(record.created_at, "created_at"),
        "source": _text(record.source, "source", 32),
        "status": _text(record.status, "status", 32),
        "horizon_start": _aware(record.horizon_start, "horizon_start"),
        "horizon_end": _aware(record.horizon_end, "horizon_end"),
        "request": _json(record.request, "request", dict),
        "response": _json(record.response, "response", dict),
        "forecasts": _json(record.forecasts, "forecasts", list),
        "provenance": _json(record.provenance, "provenance", list),
        "emissions_kg": _number(record.emissions_kg, "emissions_kg"),
        "baseline_emissions_kg": _number(record.baseline_emissions_kg, "baseline_emissions_kg"),
        "energy_kwh": _number(record.energy_kwh, "energy_kwh"),
        "run_key": run_key,
    }


def _job_rows(record: PlanRecord) -> list[dict[str, Any]]:
    rows = []
    for seq, job in enumerate(record.jobs):
        at = f"jobs[{seq}]"
        rows.append({
            "plan_id": record.plan_id,
            "seq": seq,
            "job_id": _text(job.job_id, f"{at}.job_id", 255),
            "team": _text(job.team, f"{at}.team", 255, empty=True),
            "site_id": _text(job.site_id, f"{at}.site_id", 255, empty=True),
            "start_at": _aware(job.start, f"{at}.start"),
            "end_at": _aware(job.end, f"{at}.end"),
            "energy_kwh": _number(job.energy_kwh, f"{at}.energy_kwh"),
            "grid_energy_kwh": _number(job.grid_energy_kwh, f"{at}.grid_energy_kwh"),
            "emissions_kg": _number(job.emissions_kg, f"{at}.emissions_kg"),
            "baseline_emissions_kg": _number(job.baseline_emissions_kg,
                                             f"{at}.baseline_emissions_kg"),
        })
    return rows


def _job(row: Any) -> JobRow:
    return JobRow(job_id=row.job_id, team=row.team, site_id=row.site_id, start=row.start_at,
                  end=row.end_at, energy_kwh=row.energy_kwh, grid_energy_kwh=row.grid_energy_kwh,
                  emissions_kg=row.emissions_kg, baseline_emissions_kg=row.baseline_emissions_kg,
                  superseded_by=row.superseded_by)


def _request_job_ids(record: PlanRecord) -> list[str]:
    """Every job a plan decided on (placed or left out): the ids in its request."""
    jobs = record.request.get("jobs") if isinstance(record.request, dict) else None
    ids = [j.get("id") for j in jobs or [] if isinstance(j, dict)]
    return sorted({i for i in ids if isinstance(i, str) and i})


def _record(row: Any, jobs: list[JobRow], full: bool = True) -> PlanRecord:
    return PlanRecord(
        plan_id=row.plan_id, created_at=row.created_at, source=row.source, status=row.status,
        horizon_start=row.horizon_start, horizon_end=row.horizon_end,
        request=row.request if full else {}, response=row.response if full else {},
        forecasts=row.forecasts if full else [], provenance=row.provenance,
        emissions_kg=row.emissions_kg, baseline_emissions_kg=row.baseline_emissions_kg,
        energy_kwh=row.energy_kwh, run_key=row.run_key, jobs=jobs)


def _submission_row(sub: GateSubmission) -> dict[str, Any]:
    def when(moment: datetime | None, what: str) -> datetime | None:
        return None if moment is None else _aware(moment, what)

    return {"submission_id": _text(sub.submission_id, "submission_id", 255),
            "created_at": _aware(sub.created_at, "created_at"),
            "spec": _json(sub.spec, "spec", dict),
            "state": _text(sub.state, "state", 16),
            "cluster": _text(sub.cluster, "cluster", 255, empty=True),
            "planned_start": when(sub.planned_start, "planned_start"),
            "submitted_at": when(sub.submitted_at, "submitted_at"),
            "started_at": when(sub.started_at, "started_at"),
            "ended_at": when(sub.ended_at, "ended_at"),
            "scheduler_status": _text(sub.scheduler_status, "scheduler_status", 32, empty=True),
            "plan_id": _text(sub.plan_id, "plan_id", 128, empty=True),
            "note": sub.note[:1024]}


def _submission(row: Any) -> GateSubmission:
    return GateSubmission(row.submission_id, row.created_at, dict(row.spec), row.state,
                          row.cluster, row.planned_start, row.submitted_at, row.started_at,
                          row.ended_at, row.scheduler_status, row.plan_id, row.note)


def _filter_fingerprint(flt: PlanFilter) -> str:
    parts = [None if flt.start is None else flt.start.isoformat(),
             None if flt.end is None else flt.end.isoformat(),
             flt.team, flt.site, flt.status]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:12]


def _encode_token(created_at: datetime, plan_id: str, fingerprint: str) -> str:
    raw = json.dumps([_TOKEN_VERSION, created_at.isoformat(), plan_id, fingerprint],
                     separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str, fingerprint: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        version, created_at, plan_id, seen = json.loads(raw)
        moment = datetime.fromisoformat(created_at)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise ValueError("page_token is not a token of this store") from None
    if (version != _TOKEN_VERSION or not isinstance(plan_id, str) or moment.tzinfo is None):
        raise ValueError("page_token is not a token of this store")
    if seen != fingerprint:
        raise ValueError("page_token belongs to a listing with another filter")
    return moment.astimezone(UTC), plan_id


class PlanStore:
    """Plans, their jobs, and observed carbon intensity in one SQL database.

    ``url``: a SQLAlchemy URL (the settings give one: ``GRIDSHIFT_DB_URL``, else the SQLite file
    in the data directory, whose folder is created). ``postgresql://`` and ``postgres://``
    use psycopg 3. ``migrate=False`` opens without touching the schema (tools and tests).
    Thread-safe (a connection pool); close it with :meth:`close` or a ``with`` block.
    """

    def __init__(self, url: str, *, migrate: bool = True,
                 connect_timeout_s: float = 10.0) -> None:
        raw = str(url)
        self._secrets = _secrets(raw)
        self._display = redact_url(raw)
        self._engine = self._create_engine(raw, connect_timeout_s)
        self.dialect: str = self._engine.dialect.name
        try:
            with self._guard("connect"), self._engine.connect():
                pass
            if migrate:
                self.upgrade("head")
        except BaseException:
            self._engine.dispose()
            raise

    # -- opening ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The database URL, password redacted."""
        return self._display

    def __repr__(self) -> str:
        return f"PlanStore({self._display!r})"

    def _error(self, message: str) -> StoreError:
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return StoreError(message)

    def _create_engine(self, raw: str, connect_timeout_s: float) -> Engine:
        try:
            url = make_url(raw)
        except (sa_exc.ArgumentError, ValueError) as exc:
            raise self._error(f"bad plan store URL {self._display!r}: {exc}") from None
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        kwargs: dict[str, Any] = {}
        backend = url.get_backend_name()
        if backend == "sqlite":
            database = url.database or ""
            if database and database != ":memory:" and not database.startswith("file:"):
                try:
                    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise self._error(
                        f"cannot create the folder of the plan store {self._display!r}: {exc}"
                    ) from None
            kwargs["connect_args"] = {"timeout": 30.0}
        elif backend == "postgresql":
            # A server restart must not break the next call: test pooled connections first.
            kwargs["pool_pre_ping"] = True
            if "connect_timeout" not in url.query:
                kwargs["connect_args"] = {"connect_timeout": max(1, round(connect_timeout_s))}
        try:
            engine = create_engine(url, **kwargs)
        except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError) as exc:
            raise self._error(
                f"cannot open the plan store at {self._display!r}: {_reason(exc)}") from None
        if backend == "sqlite":
            event.listen(engine, "connect", _sqlite_connect)
            event.listen(engine, "begin", _sqlite_begin)
        return engine

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Driver and connection failures → StoreError (password redacted)."""
        try:
            yield
        except StoreError:
            raise
        except sa_exc.SQLAlchemyError as exc:
            raise self._error(
                f"plan store at {self._display!r}: cannot {action}: {_reason(exc)}") from None
        except OSError as exc:
            raise self._error(
                f"plan store at {self._display!r}: cannot {action}: {exc}") from None

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            # SQLite: take the write lock up front (BEGIN IMMEDIATE), so that a read-then-write
            # transaction never fails half-way on a lock upgrade.
            conn.execution_options(gridshift_sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    # -- migrations ------------------------------------------------------------------------

    def schema_revision(self) -> str | None:
        """The database's migration revision (None: not versioned yet)."""
        from alembic.runtime.migration import MigrationContext

        from gridshift.adapters.store.migrations import VERSION_TABLE

        with self._guard("read the schema revision"), self._read() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            return context.get_current_revision()

    def upgrade(self, revision: str = "head") -> None:
        """Migrate the schema up to ``revision``, under the migration lock."""
        from gridshift.adapters.store.migrations import head_revision

        if revision == "head":
            with self._guard("read the schema revision"):
                head = head_revision()
            if self.schema_revision() == head:
                return
        self._migrate("upgrade", revision)

    def downgrade(self, revision: str) -> None:
        """Migrate the schema down to ``revision`` ("base": no tables). Data of dropped tables is
        lost; meant for tools and tests."""
        self._migrate("downgrade", revision)

    def _migrate(self, direction: str, revision: str) -> None:
        from alembic import command
        from alembic.util import CommandError

        from gridshift.adapters.store.migrations import alembic_config

        try:
            with self._guard("migrate the schema"), self._write() as conn:
                if self.dialect == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                 {"key": _MIGRATION_LOCK})
                getattr(command, direction)(alembic_config(connection=conn), revision)
        except CommandError as exc:
            raise self._error(
                f"plan store at {self._display!r}: cannot {direction} the schema to "
                f"{revision!r}: {exc} (is the database newer than this gridshift?)") from None

    # -- plans -----------------------------------------------------------------------------

    def save(self, record: PlanRecord) -> str:
        """Store the plan and its jobs in one transaction; its plan_id.

        With a ``run_key`` that is stored already, nothing is written and the stored plan's id
        comes back. A plan_id that is stored already raises :class:`DuplicatePlanError`.
        """
        row = _plan_row(record)
        jobs = _job_rows(record)
        run_key = row["run_key"]
        with self._guard("save a plan"):
            if run_key is not None and (found := self._plan_id_for_run_key(run_key)):
                return found
            try:
                with self._write() as conn:
                    if run_key is not None:
                        found = conn.scalar(select(schema.plans.c.plan_id)
                                            .where(schema.plans.c.run_key == run_key))
                        if found is not None:
                            return found
                    conn.execute(insert(schema.plans), [row])
                    if jobs:
                        conn.execute(insert(schema.plan_jobs), jobs)
                    if record.status != "INFEASIBLE":
                        self._supersede(conn, row, _request_job_ids(record))
            except sa_exc.IntegrityError:
                # Another writer got there first (PostgreSQL: no write lock is taken up front).
                if run_key is not None and (found := self._plan_id_for_run_key(run_key)):
                    return found
                if self._plan_exists(row["plan_id"]):
                    raise DuplicatePlanError(
                        f"plan {row['plan_id']!r} is stored already") from None
                raise
        return row["plan_id"]

    def _supersede(self, conn: Connection, plan: dict[str, Any], job_ids: list[str]) -> None:
        """Re-planning: for each job of this plan, the current row of an older plan that has
        not finished by this plan's horizon start is superseded by this one (and this plan's
        row by a newer plan's, should a newer one be stored already). A row that ended before
        the other plan's horizon is another run of a job with the same id, and stays. An
        infeasible plan decides nothing and supersedes nothing."""
        jobs, plans = schema.plan_jobs, schema.plans
        plan_id, created_at = plan["plan_id"], plan["created_at"]
        mine = dict(conn.execute(select(jobs.c.job_id, jobs.c.end_at)
                                 .where(jobs.c.plan_id == plan_id)).all())
        by_newer: dict[str, list[str]] = {}
        older: dict[str, list[tuple[str, str]]] = {}
        for chunk in (job_ids[i:i + 500] for i in range(0, len(job_ids), 500)):
            rows = conn.execute(
                select(jobs.c.job_id, jobs.c.plan_id, jobs.c.end_at, plans.c.created_at,
                       plans.c.horizon_start)
                .join(plans, plans.c.plan_id == jobs.c.plan_id)
                .where(jobs.c.job_id.in_(chunk), jobs.c.plan_id != plan_id,
                       jobs.c.superseded_by.is_(None)))
            for job_id, other, other_end, other_created, other_start in rows:
                if (other_created, other) <= (created_at, plan_id):
                    if other_end > plan["horizon_start"]:
                        older.setdefault(other, []).append((job_id, plan_id))
                elif job_id in mine and mine[job_id] > other_start:
                    by_newer.setdefault(other, []).append(job_id)
        for other, pairs in older.items():
            conn.execute(update(jobs).where(jobs.c.plan_id == other,
                                            jobs.c.job_id.in_([j for j, _ in pairs]))
                         .values(superseded_by=plan_id))
        for newer, ids in by_newer.items():
            conn.execute(update(jobs).where(jobs.c.plan_id == plan_id, jobs.c.job_id.in_(ids))
                         .values(superseded_by=newer))

    def _plan_id_for_run_key(self, run_key: str) -> str | None:
        with self._read() as conn:
            return conn.scalar(select(schema.plans.c.plan_id)
                               .where(schema.plans.c.run_key == run_key))

    def _plan_exists(self, plan_id: str) -> bool:
        with self._read() as conn:
            return conn.scalar(select(schema.plans.c.plan_id)
                               .where(schema.plans.c.plan_id == plan_id)) is not None

    def _jobs(self, conn: Connection, plan_ids: Sequence[str]) -> dict[str, list[JobRow]]:
        jobs: dict[str, list[JobRow]] = {plan_id: [] for plan_id in plan_ids}
        if not plan_ids:
            return jobs
        t = schema.plan_jobs
        rows = conn.execute(select(t).where(t.c.plan_id.in_(list(plan_ids)))
                            .order_by(t.c.plan_id, t.c.seq))
        for row in rows:
            jobs[row.plan_id].append(_job(row))
        return jobs

    def _one(self, condition: Any) -> PlanRecord | None:
        with self._guard("read a plan"), self._read() as conn:
            row = conn.execute(select(schema.plans).where(condition)).first()
            if row is None:
                return None
            return _record(row, self._jobs(conn, [row.plan_id])[row.plan_id])

    def get(self, plan_id: str) -> PlanRecord | None:
        """The stored plan, or None."""
        return self._one(schema.plans.c.plan_id == plan_id)

    def ids_starting_with(self, prefix: str, limit: int = 10) -> list[str]:
        """Stored plan ids that start with ``prefix`` (at most ``limit``, sorted)."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = (select(schema.plans.c.plan_id)
                 .where(schema.plans.c.plan_id.like(f"{escaped}%", escape="\\"))
                 .order_by(schema.plans.c.plan_id).limit(limit))
        with self._guard("find plans by id prefix"), self._read() as conn:
            return list(conn.scalars(query))

    def find_by_run_key(self, run_key: str) -> PlanRecord | None:
        """The plan stored under this run key, or None."""
        return self._one(schema.plans.c.run_key == run_key)

    def list(self, filter: PlanFilter | None = None, page_size: int = DEFAULT_PAGE_SIZE,
             page_token: str | None = None, *, full: bool = False,
             ) -> tuple[list[PlanRecord], str | None]:
        """One page of the plans that match ``filter``, newest first (created_at descending, then
        plan_id ascending), and the token of the next page (None: this was the last).

        ``page_size`` is capped at 500 (0 or less: 50). Summaries (``full=False``) leave
        ``request``, ``response`` and ``forecasts`` empty; everything else, jobs included, is
        there. A token only works with the filter it was made for (ValueError otherwise).
        Paging is by key, so pages never repeat or skip a plan, even while plans are added.
        """
        flt = filter or PlanFilter()
        start = None if flt.start is None else _aware(flt.start, "filter.start")
        end = None if flt.end is None else _aware(flt.end, "filter.end")
        size = DEFAULT_PAGE_SIZE if page_size is None or page_size <= 0 else page_size
        size = min(int(size), MAX_PAGE_SIZE)
        fingerprint = _filter_fingerprint(flt)
        plans, jobs = schema.plans, schema.plan_jobs

        conditions = []
        if start is not None:
            conditions.append(plans.c.horizon_end > start)
        if end is not None:
            conditions.append(plans.c.horizon_start < end)
        if flt.status is not None:
            conditions.append(plans.c.status == flt.status)
        if flt.team is not None:
            conditions.append(exists().where(jobs.c.plan_id == plans.c.plan_id,
                                             jobs.c.team == flt.team))
        if flt.site is not None:
            conditions.append(exists().where(jobs.c.plan_id == plans.c.plan_id,
                                             jobs.c.site_id == flt.site))
        if page_token:
            after_at, after_id = _decode_token(page_token, fingerprint)
            conditions.append(or_(plans.c.created_at < after_at,
                                  and_(plans.c.created_at == after_at,
                                       plans.c.plan_id > after_id)))
        columns = list(plans.c) if full else [
            c for c in plans.c if c.name not in ("request", "response", "forecasts")]
        query = (select(*columns).where(*conditions)
                 .order_by(plans.c.created_at.desc(), plans.c.plan_id.asc())
                 .limit(size + 1))
        with self._guard("list plans"), self._read() as conn:
            rows = conn.execute(query).all()
            more = len(rows) > size
            rows = rows[:size]
            by_plan = self._jobs(conn, [row.plan_id for row in rows])
        records = [_record(row, by_plan[row.plan_id], full) for row in rows]
        token = None
        if more and records:
            last = records[-1]
            token = _encode_token(last.created_at, last.plan_id, fingerprint)
        return records, token

    def count(self) -> int:
        """How many plans are stored."""
        with self._guard("count plans"), self._read() as conn:
            return int(conn.scalar(select(func.count()).select_from(schema.plans)) or 0)

    # -- actuals ---------------------------------------------------------------------------

    def save_actuals(self, series: Sequence[ActualSeries]) -> int:
        """Store observed carbon intensity, replacing stored values at the same (region, time);
        NaN values are skipped. One transaction; the number of values written."""
        rows = []
        for i, s in enumerate(series):
            start = _aware(s.start, f"series[{i}].start")
            region = _text(s.region, f"series[{i}].region", 128)
            provider = _text(s.provider, f"series[{i}].provider", 64, empty=True)
            if int(s.slot_minutes) <= 0:
                raise ValueError(f"series[{i}].slot_minutes must be positive")
            step = timedelta(minutes=int(s.slot_minutes))
            for k, value in enumerate(s.carbon_intensity):
                ci = float(value)
                if math.isnan(ci):
                    continue
                rows.append({"region": region, "valid_at": start + k * step,
                             "ci_g_per_kwh": ci, "provider": provider})
        if not rows:
            return 0
        # Last value wins when the series overlap.
        unique = list({(r["region"], r["valid_at"]): r for r in rows}.values())
        table = schema.actuals
        with self._guard("save actuals"), self._write() as conn:
            if self.dialect in ("sqlite", "postgresql"):
                if self.dialect == "sqlite":
                    from sqlalchemy.dialects.sqlite import insert as upsert
                else:
                    from sqlalchemy.dialects.postgresql import insert as upsert
                stmt = upsert(table)
                stmt = stmt.on_conflict_do_update(
                    index_elements=[table.c.region, table.c.valid_at],
                    set_={"ci_g_per_kwh": stmt.excluded.ci_g_per_kwh,
                          "provider": stmt.excluded.provider})
                conn.execute(stmt, unique)
            else:
                for r in unique:
                    conn.execute(delete(table).where(table.c.region == r["region"],
                                                     table.c.valid_at == r["valid_at"]))
                conn.execute(insert(table), unique)
        return len(unique)

    def actuals(self, region: str, start: datetime, end: datetime) -> list[tuple[datetime, float]]:
        """Observed (valid_at, gCO2e/kWh) of the region in ``[start, end)``, in time order."""
        lo, hi = _aware(start, "start"), _aware(end, "end")
        t = schema.actuals
        query = (select(t.c.valid_at, t.c.ci_g_per_kwh)
                 .where(t.c.region == region, t.c.valid_at >= lo, t.c.valid_at < hi)
                 .order_by(t.c.valid_at))
        with self._guard("read actuals"), self._read() as conn:
            return [(row.valid_at, row.ci_g_per_kwh) for row in conn.execute(query)]

    def save_runs(self, runs: Sequence[JobRun]) -> int:
        """Record how jobs really ran; a run already recorded (same job and start) is
        replaced. Returns the runs stored."""
        rows = [{"job_id": _text(r.job_id, "job_id", 255), "site_id": _text(r.site_id,
                 "site_id", 255, empty=True), "started_at": _aware(r.start, "start"),
                 "ended_at": _aware(r.end, "end"), "source": _text(r.source, "source", 64)}
                for r in runs]
        if not rows:
            return 0
        table = schema.job_runs
        with self._guard("save job runs"), self._write() as conn:
            for row in rows:
                conn.execute(delete(table).where(table.c.job_id == row["job_id"],
                                                 table.c.started_at == row["started_at"]))
            conn.execute(insert(table), rows)
        return len(rows)

    def runs(self, job_ids: Sequence[str]) -> list[JobRun]:
        """The recorded runs of these jobs, in time order."""
        table, out = schema.job_runs, []
        ids = sorted(set(job_ids))
        with self._guard("read job runs"), self._read() as conn:
            for chunk in (ids[i:i + 500] for i in range(0, len(ids), 500)):
                out += [JobRun(r.job_id, r.site_id, r.started_at, r.ended_at, r.source)
                        for r in conn.execute(select(table).where(table.c.job_id.in_(chunk))
                                              .order_by(table.c.started_at))]
        return out

    # -- the job gate's queue --------------------------------------------------------------

    def add_submission(self, sub: GateSubmission) -> None:
        """Store a new gate submission; DuplicateSubmissionError if its id is stored."""
        row = _submission_row(sub)
        with self._guard("store a gate submission"):
            try:
                with self._write() as conn:
                    conn.execute(insert(schema.gate_submissions), [row])
            except sa_exc.IntegrityError:
                raise DuplicateSubmissionError(
                    f"submission {sub.submission_id!r} is stored already") from None

    def update_submissions(self, subs: Sequence[GateSubmission]) -> None:
        """Write back the state of these (stored) gate submissions in one transaction."""
        rows = [_submission_row(s) for s in subs]
        if not rows:
            return
        t = schema.gate_submissions
        with self._guard("update gate submissions"), self._write() as conn:
            for row in rows:
                conn.execute(update(t).where(t.c.submission_id == row["submission_id"])
                             .values({k: v for k, v in row.items()
                                      if k not in ("submission_id", "created_at", "spec")}))

    def submissions(self, states: Sequence[str] | None = None,
                    ids: Sequence[str] | None = None) -> list[GateSubmission]:
        """Gate submissions (in these states, or with these ids), oldest first."""
        t = schema.gate_submissions
        query = select(t).order_by(t.c.created_at, t.c.submission_id)
        if states is not None:
            query = query.where(t.c.state.in_(list(states)))
        if ids is not None:
            query = query.where(t.c.submission_id.in_(list(ids)))
        with self._guard("read gate submissions"), self._read() as conn:
            return [_submission(row) for row in conn.execute(query)]

    def actual_series(self, region: str, start: datetime, end: datetime) -> Forecast | None:
        """The region's observed intensity in ``[start, end)`` as a regular series (gaps as
        NaN); None with fewer than two values."""
        return regular_series(region, self.actuals(region, start, end))

    # -- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close every pooled connection (the store can still be used; it reconnects)."""
        self._engine.dispose()

    def __enter__(self) -> PlanStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sqlite_connect(dbapi_connection: Any, connection_record: Any) -> None:
    # pysqlite's own transaction handling is off: the "begin" listener issues BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.execute("PRAGMA foreign_keys = ON")
        _enable_wal(cursor)
    finally:
        cursor.close()


def _enable_wal(cursor: Any, attempts: int = 50) -> None:
    """Switch the file to WAL once (the mode is stored in the file). The switch needs an
    exclusive lock and SQLite does not wait for it (busy_timeout does not apply), so when
    several processes open a fresh database at once, retry briefly."""
    import sqlite3
    import time

    for attempt in range(attempts):
        if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.02 * (attempt + 1))


def _sqlite_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get("gridshift_sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")
