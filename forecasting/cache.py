"""Caching of forecasts (not only actuals) with a TTL per provider, and stale fallback.

:class:`CachingSource` wraps one provider's :class:`~forecasting.sources.ForecastSource`:

- a fresh entry (younger than ``ttl_s``) for the same window, or the provider's latest forecast
  for the region when it covers the window, is served without calling the provider;
- otherwise the provider is called and its answer stored (under the window's key and as the
  region's latest);
- when the provider fails (:class:`LookupError`, which includes
  :class:`~forecasting.errors.ForecastUnavailable` and the ``KeyError`` of an unknown region), a
  cached forecast of any age that covers the window is returned with ``stale=True`` and a
  provenance detail that says why the provider failed and when the forecast was cached; with
  none, the provider's error is re-raised.

:class:`CachedForecastSource` is the "cached" step of a fallback chain: it serves whatever any
of the named providers last stored for the region, marked stale.

Persistence is the store's business (:class:`CacheStore`; ``adapters/forecast_cache.py`` keeps
it in SQLite across restarts). Store failures are logged and treated as misses, never raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from gridshift.forecasting.alignment import covers
from gridshift.forecasting.errors import ForecastUnavailable
from gridshift.forecasting.series import Forecast
from gridshift.forecasting.sources import ForecastSource

__all__ = ["CacheKey", "CacheStore", "CachedForecastSource", "CachingSource", "MemoryStore",
           "source_name"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheKey:
    """(provider, region, window); ``start=None`` is the provider's latest forecast for the
    region, whatever window it was fetched for."""

    provider: str
    region: str
    start: datetime | None = None
    slots: int = 0
    slot_minutes: int = 0

    def __str__(self) -> str:
        if self.start is None:
            return f"{self.provider}|{self.region}|latest"
        stamp = self.start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{self.provider}|{self.region}|{stamp}|{self.slots}x{self.slot_minutes}min"

    @classmethod
    def latest(cls, provider: str, region: str) -> CacheKey:
        """The key of the provider's latest forecast for a region."""
        return cls(provider, region)


class CacheStore(Protocol):
    """Where cached forecasts live (in memory, SQLite, ...)."""

    def get(self, key: CacheKey) -> tuple[datetime, Forecast] | None:
        """(stored_at, forecast) or None when absent."""
        ...

    def put(self, key: CacheKey, forecast: Forecast, stored_at: datetime) -> None:
        """Store (replace) the forecast under ``key``."""
        ...


class MemoryStore:
    """A process-local :class:`CacheStore` (tests, or a service without a cache file)."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[datetime, Forecast]] = {}

    def get(self, key: CacheKey) -> tuple[datetime, Forecast] | None:
        """(stored_at, forecast) or None."""
        return self._entries.get(str(key))

    def put(self, key: CacheKey, forecast: Forecast, stored_at: datetime) -> None:
        """Store (replace) an entry."""
        self._entries[str(key)] = (stored_at, forecast)


def source_name(source: object) -> str:
    """A source's provider name: its ``name`` attribute, else its class name."""
    name = getattr(source, "name", None)
    return name if isinstance(name, str) and name else type(source).__name__


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _covers(forecast: Forecast, start: datetime, slots: int, slot_minutes: int) -> bool:
    return covers(forecast.start, forecast.slot_minutes, len(forecast.carbon_intensity), start,
                  slots * slot_minutes)


class _SafeStore:
    """Store access that logs and swallows store failures (a cache must never break serving)."""

    def __init__(self, store: CacheStore) -> None:
        self.store = store

    def get(self, key: CacheKey) -> tuple[datetime, Forecast] | None:
        try:
            return self.store.get(key)
        except Exception:  # any store failure is a miss
            log.warning("forecast cache read failed for %s; treated as a miss", key,
                        exc_info=True)
            return None

    def put(self, key: CacheKey, forecast: Forecast, stored_at: datetime) -> None:
        try:
            self.store.put(key, forecast, stored_at)
        except Exception:  # a failed write only loses an entry
            log.warning("forecast cache write failed for %s", key, exc_info=True)


class CachingSource:
    """A provider's source behind a forecast cache with a TTL (see the module docstring).

    Args:
        inner: the provider's source.
        store: where entries live.
        ttl_s: how long (seconds) a stored forecast is served without asking the provider.
        clock: returns the current tz-aware time (tests pass a fake).
        provider: the key's provider name (default: ``inner.name`` or its class name).
        max_stale_s: oldest entry (seconds) still served stale when the provider fails;
            None = any age.
    """

    def __init__(self, inner: ForecastSource, store: CacheStore, ttl_s: float,
                 clock: Callable[[], datetime] = _utc_now, *, provider: str | None = None,
                 max_stale_s: float | None = None,
                 on_hit: Callable[[], None] | None = None) -> None:
        if ttl_s < 0:
            raise ValueError(f"ttl_s must be >= 0, got {ttl_s}")
        self.inner = inner
        self.store = _SafeStore(store)
        self.ttl_s = ttl_s
        self.clock = clock
        self.name = provider or source_name(inner)
        self.max_stale_s = max_stale_s
        #: Told of each fresh cached answer (metrics count cache hits).
        self.on_hit = on_hit

    def forecast(self, region: str, start: datetime, slots: int, slot_minutes: int) -> Forecast:
        """A fresh cached forecast, else the provider's, else a stale cached one."""
        now = self.clock()
        key = CacheKey(self.name, region, start, slots, slot_minutes)
        candidates = self._cached(key, start, slots, slot_minutes)
        for stored_at, cached in candidates:
            if (now - stored_at).total_seconds() < self.ttl_s:
                if self.on_hit is not None:
                    self.on_hit()
                return cached
        try:
            fresh = self.inner.forecast(region, start, slots, slot_minutes)
        except LookupError as err:
            return self._stale(candidates, now, err)
        self.store.put(key, fresh, now)
        self.store.put(CacheKey.latest(self.name, region), fresh, now)
        return fresh

    def _cached(self, key: CacheKey, start: datetime, slots: int,
                slot_minutes: int) -> list[tuple[datetime, Forecast]]:
        """Stored entries that cover the window: the window's own, then the region's latest."""
        found = []
        for candidate_key in (key, CacheKey.latest(key.provider, key.region)):
            entry = self.store.get(candidate_key)
            if entry is not None and _covers(entry[1], start, slots, slot_minutes):
                found.append(entry)
        return found

    def _stale(self, candidates: list[tuple[datetime, Forecast]], now: datetime,
               err: LookupError) -> Forecast:
        usable = [(t, f) for t, f in candidates
                  if self.max_stale_s is None or (now - t).total_seconds() <= self.max_stale_s]
        if not usable:
            raise err
        stored_at, cached = max(usable, key=lambda entry: entry[0])
        log.warning("%s failed (%s); serving the forecast cached at %s as stale", self.name,
                    err, stored_at.isoformat())
        reason = err.reason if isinstance(err, ForecastUnavailable) else str(err)
        note = (f"stale: {self.name} failed ({reason}); served its forecast cached at "
                f"{stored_at.astimezone(UTC).strftime('%Y-%m-%d %H:%M UTC')}")
        return replace(cached, stale=True,
                       detail="; ".join(x for x in (note, cached.detail) if x))


class CachedForecastSource:
    """The "cached" step of a chain: the newest forecast any of ``providers`` stored for the
    region that covers the window, marked stale. Raises ForecastUnavailable when none does."""

    def __init__(self, store: CacheStore, providers: Sequence[str], *,
                 name: str = "cache") -> None:
        self.store = _SafeStore(store)
        self.providers = list(providers)
        self.name = name

    def forecast(self, region: str, start: datetime, slots: int, slot_minutes: int) -> Forecast:
        """The newest covering cached forecast, stale."""
        entries = []
        for provider in self.providers:
            entry = self.store.get(CacheKey.latest(provider, region))
            if entry is not None and _covers(entry[1], start, slots, slot_minutes):
                entries.append(entry)
        if not entries:
            raise ForecastUnavailable(self.name, region, "no cached forecast covers the window "
                                      f"(providers: {', '.join(self.providers) or 'none'})")
        return replace(max(entries, key=lambda entry: entry[0])[1], stale=True)
