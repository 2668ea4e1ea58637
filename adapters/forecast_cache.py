"""A persisted forecast cache: one SQLite file (standard library ``sqlite3``).

Implements :class:`forecasting.cache.CacheStore`. Each entry is a JSON-serialised Forecast under
its key's text, with the time it was stored; every write is one transaction (atomic), so entries
survive restarts and a crash mid-write leaves the previous entry intact. Entries older than
``max_age_s`` before the entry being written are pruned on write (the caller's clock rules).

Never a crash: a corrupt or unreadable file (not a database, malformed, wrong schema) is moved
aside to ``<path>.corrupt-<UTC timestamp>`` and a fresh cache started, with a logged warning; if
even that fails, the store keeps working in memory. A locked or busy database makes a read a
miss and a write a no-op (logged), as does any other non-corruption error (a full disk, a
closed store). An entry that does not decode is dropped and reads as a miss.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gridshift.adapters.providers.registry import signal_of
from gridshift.forecasting.cache import CacheKey
from gridshift.forecasting.series import Forecast

__all__ = ["SqliteForecastStore", "forecast_from_json", "forecast_to_json"]

log = logging.getLogger(__name__)

_SCHEMA_VERSION = 1
_TABLE = """CREATE TABLE IF NOT EXISTS forecast_cache (
    key TEXT PRIMARY KEY,
    stored_at TEXT NOT NULL,
    stored_at_s REAL NOT NULL,
    payload TEXT NOT NULL
)"""
_INDEX = "CREATE INDEX IF NOT EXISTS forecast_cache_age ON forecast_cache (stored_at_s)"
_TRANSIENT = ("locked", "busy")
_CORRUPT = ("malformed", "not a database", "no such table", "no such column", "corrupt")


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"datetime {moment!r} must be timezone-aware")
    return moment.astimezone(UTC).isoformat()


def forecast_to_json(forecast: Forecast) -> str:
    """JSON text of a Forecast (datetimes as ISO 8601 UTC)."""
    return json.dumps({
        "v": _SCHEMA_VERSION,
        "region": forecast.region,
        "start": _iso(forecast.start),
        "slot_minutes": forecast.slot_minutes,
        "carbon_intensity": list(forecast.carbon_intensity),
        "carbon_intensity_p10": list(forecast.carbon_intensity_p10),
        "carbon_intensity_p90": list(forecast.carbon_intensity_p90),
        "price_per_mwh": list(forecast.price_per_mwh),
        "provider": forecast.provider,
        "issued_at": _iso(forecast.issued_at),
        "stale": forecast.stale,
        "fallback": forecast.fallback,
        "signal": forecast.signal,
        "typical_profile": forecast.typical_profile,
    }, separators=(",", ":"))


def _floats(values: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def forecast_from_json(text: str) -> Forecast:
    """The Forecast of :func:`forecast_to_json`; ValueError/KeyError/TypeError on bad input."""
    data = json.loads(text)
    issued_at = data.get("issued_at")
    return Forecast(
        region=str(data["region"]),
        start=datetime.fromisoformat(data["start"]),
        slot_minutes=int(data["slot_minutes"]),
        carbon_intensity=_floats(data["carbon_intensity"]),
        carbon_intensity_p10=_floats(data.get("carbon_intensity_p10", ())),
        carbon_intensity_p90=_floats(data.get("carbon_intensity_p90", ())),
        price_per_mwh=_floats(data.get("price_per_mwh", ())),
        provider=str(data.get("provider", "cache")),
        issued_at=datetime.fromisoformat(issued_at) if issued_at else None,
        stale=bool(data.get("stale", False)),
        fallback=bool(data.get("fallback", False)),
        signal=str(data.get("signal") or signal_of(str(data.get("provider", "")))),
        typical_profile=bool(data.get("typical_profile", False)),
    )


def _is_transient(err: sqlite3.Error) -> bool:
    return isinstance(err, sqlite3.OperationalError) and any(
        word in str(err).lower() for word in _TRANSIENT)


def _is_corruption(err: sqlite3.Error) -> bool:
    """Whether the file itself is bad (as opposed to locks, closed handles, full disks)."""
    if type(err) in (sqlite3.DatabaseError, sqlite3.DataError, sqlite3.InternalError):
        return True
    return isinstance(err, sqlite3.OperationalError) and any(
        word in str(err).lower() for word in _CORRUPT)


class SqliteForecastStore:
    """Forecast cache in one SQLite file (see the module docstring).

    Args:
        path: the database file (parent folders are created).
        max_age_s: on each write, entries stored more than this before it are pruned
            (None: never).
        timeout_s: how long to wait for a lock held by another process.
    """

    def __init__(self, path: str | Path, *, max_age_s: float | None = 7 * 86400.0,
                 timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self.max_age_s = max_age_s
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._conn = self._open_or_recover()

    # -- connection life cycle -----------------------------------------------------------------

    def _connect(self, target: str) -> sqlite3.Connection:
        conn = sqlite3.connect(target, timeout=self.timeout_s, check_same_thread=False)
        try:
            if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("quick_check failed")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, _SCHEMA_VERSION):
                raise sqlite3.DatabaseError(f"unknown cache schema version {version}")
            with conn:
                conn.execute(_TABLE)
                conn.execute(_INDEX)
                conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            conn.execute("SELECT key, stored_at, stored_at_s, payload FROM forecast_cache LIMIT 1")
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_or_recover(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return self._connect(str(self.path))
        except (sqlite3.Error, OSError) as err:
            if isinstance(err, sqlite3.Error) and _is_transient(err):
                log.warning("forecast cache %s is locked (%s); using memory for now", self.path,
                            err)
                return self._connect(":memory:")
            return self._start_fresh(err)

    def _start_fresh(self, err: Exception) -> sqlite3.Connection:
        """Move the unreadable file aside and open a fresh one (memory if that fails too)."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        try:
            if self.path.exists() and not self.path.is_file():
                raise OSError(f"{self.path} is not a file")
            if self.path.exists():
                self.path.replace(aside)
                for suffix in ("-journal", "-wal", "-shm"):
                    extra = self.path.with_name(self.path.name + suffix)
                    if extra.exists():
                        extra.replace(aside.with_name(aside.name + suffix))
            log.warning("forecast cache %s was unreadable (%s); moved it to %s and started a "
                        "fresh cache", self.path, err, aside.name)
            return self._connect(str(self.path))
        except (sqlite3.Error, OSError) as again:
            log.error("forecast cache %s unusable (%s; then %s); caching in memory only",
                      self.path, err, again)
            return self._connect(":memory:")

    def _recover(self, err: sqlite3.Error) -> None:
        """After a failed statement: a corrupt file restarts fresh; anything else (locks, a
        closed store, a full disk) is only logged."""
        if not _is_corruption(err):
            log.warning("forecast cache %s unavailable (%s); skipped", self.path, err)
            return
        try:
            self._conn.close()
        except sqlite3.Error:
            pass
        self._conn = self._start_fresh(err)

    def close(self) -> None:
        """Close the database; the store is unusable afterwards (open a new one)."""
        with self._lock:
            self._conn.close()

    # -- CacheStore --------------------------------------------------------------------------

    def get(self, key: CacheKey) -> tuple[datetime, Forecast] | None:
        """(stored_at, forecast) or None (absent, undecodable or unreadable)."""
        with self._lock:
            try:
                row = self._conn.execute(
                    "SELECT stored_at, payload FROM forecast_cache WHERE key = ?", (str(key),),
                ).fetchone()
            except sqlite3.Error as err:
                self._recover(err)
                return None
            if row is None:
                return None
            try:
                return datetime.fromisoformat(row[0]), forecast_from_json(row[1])
            except (ValueError, KeyError, TypeError) as err:
                log.warning("forecast cache entry %s undecodable (%s); dropped", key, err)
                self._delete(str(key))
                return None

    def put(self, key: CacheKey, forecast: Forecast, stored_at: datetime) -> None:
        """Store (replace) an entry in one transaction; prune old entries."""
        payload = forecast_to_json(forecast)
        stamp = _iso(stored_at)
        with self._lock:
            for attempt in range(2):
                try:
                    self._write(str(key), stamp, stored_at.timestamp(), payload)
                    return
                except sqlite3.Error as err:
                    self._recover(err)
                    if not _is_corruption(err) or attempt == 1:
                        return

    def _write(self, key: str, stamp: str | None, stored_at_s: float, payload: str) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO forecast_cache (key, stored_at, stored_at_s, payload) "
                "VALUES (?, ?, ?, ?)", (key, stamp, stored_at_s, payload))
            if self.max_age_s is not None:
                cutoff = stored_at_s - self.max_age_s
                self._conn.execute("DELETE FROM forecast_cache WHERE stored_at_s < ?", (cutoff,))

    def _delete(self, key: str) -> None:
        try:
            with self._conn:
                self._conn.execute("DELETE FROM forecast_cache WHERE key = ?", (key,))
        except sqlite3.Error as err:
            self._recover(err)

    def __len__(self) -> int:
        """Number of stored entries (0 when unreadable)."""
        with self._lock:
            try:
                return int(self._conn.execute("SELECT COUNT(*) FROM forecast_cache").fetchone()[0])
            except sqlite3.Error as err:
                self._recover(err)
                return 0
