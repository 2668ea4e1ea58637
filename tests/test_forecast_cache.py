"""Forecast caching: TTL, stale fallback, and the SQLite store across restarts and corruption."""

from __future__ import annotations

import logging
import math
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gridshift.adapters.forecast_cache import (
    SqliteForecastStore,
    forecast_from_json,
    forecast_to_json,
)
from gridshift.forecasting.cache import CachedForecastSource, CacheKey, CachingSource, MemoryStore
from gridshift.forecasting.errors import ForecastUnavailable
from gridshift.forecasting.series import Forecast

T0 = datetime(2026, 6, 15, tzinfo=UTC)


class Clock:
    """A settable clock."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Provider:
    """A fake provider that counts calls and can be switched off."""

    name = "fake-provider"

    def __init__(self) -> None:
        self.calls = 0
        self.up = True

    def forecast(self, region: str, start: datetime, slots: int, slot_minutes: int) -> Forecast:
        self.calls += 1
        if not self.up:
            raise ForecastUnavailable(self.name, region, "HTTP 503 after 3 retries")
        return Forecast(region=region, start=start, slot_minutes=slot_minutes,
                        carbon_intensity=tuple(100.0 + self.calls for _ in range(slots)),
                        provider=self.name, issued_at=T0)


def _source(store=None, ttl_s=600.0, **kwargs):
    clock = Clock()
    provider = Provider()
    store = store if store is not None else MemoryStore()
    return CachingSource(provider, store, ttl_s, clock, **kwargs), provider, clock


def test_fresh_hits_do_not_call_the_provider():
    source, provider, clock = _source()
    first = source.forecast("GB", T0, 24, 60)
    clock.advance(599)
    assert source.forecast("GB", T0, 24, 60) == first
    assert provider.calls == 1
    clock.advance(2)
    second = source.forecast("GB", T0, 24, 60)
    assert provider.calls == 2 and second != first and not second.stale


def test_latest_forecast_serves_a_covered_sub_window():
    source, provider, _ = _source()
    source.forecast("GB", T0, 48, 60)
    sub = source.forecast("GB", T0 + timedelta(hours=3), 12, 60)
    assert provider.calls == 1
    assert sub.start == T0 and len(sub.carbon_intensity) == 48


def test_provider_failure_serves_the_expired_cache_as_stale():
    source, provider, clock = _source()
    cached = source.forecast("GB", T0, 24, 60)
    clock.advance(3 * 3600)
    provider.up = False
    stale = source.forecast("GB", T0, 24, 60)
    assert stale.stale and stale.carbon_intensity == cached.carbon_intensity
    assert stale.provider == "fake-provider" and stale.issued_at == T0


def test_provider_failure_without_a_covering_cache_reraises():
    source, provider, _ = _source()
    source.forecast("GB", T0, 24, 60)
    provider.up = False
    with pytest.raises(ForecastUnavailable, match="HTTP 503"):
        source.forecast("GB", T0 + timedelta(hours=20), 24, 60)  # not covered
    with pytest.raises(ForecastUnavailable):
        source.forecast("FR", T0, 24, 60)


def test_max_stale_limits_the_age_of_stale_answers():
    source, provider, clock = _source(max_stale_s=3600)
    source.forecast("GB", T0, 24, 60)
    provider.up = False
    clock.advance(1800)
    assert source.forecast("GB", T0, 24, 60).stale
    clock.advance(3600)
    with pytest.raises(ForecastUnavailable):
        source.forecast("GB", T0, 24, 60)


class BrokenStore:
    """A store whose every call fails."""

    def get(self, key):
        raise OSError("disk gone")

    def put(self, key, forecast, stored_at):
        raise OSError("disk gone")


def test_store_failures_never_break_serving(caplog):
    source, provider, _ = _source(store=BrokenStore())
    with caplog.at_level(logging.WARNING):
        assert source.forecast("GB", T0, 24, 60).carbon_intensity
    assert provider.calls == 1
    assert "cache" in caplog.text


def test_cached_forecast_source_is_the_chains_cached_step():
    store = MemoryStore()
    source, _, _ = _source(store=store)
    source.forecast("GB", T0, 24, 60)
    cached = CachedForecastSource(store, ["other", "fake-provider"])
    answer = cached.forecast("GB", T0 + timedelta(hours=1), 6, 60)
    assert answer.stale and answer.provider == "fake-provider"
    with pytest.raises(ForecastUnavailable, match="no cached forecast"):
        cached.forecast("DE", T0, 6, 60)


def test_cache_key_text():
    key = CacheKey("p", "GB", T0, 24, 60)
    assert str(key) == "p|GB|2026-06-15T00:00:00Z|24x60min"
    assert str(CacheKey.latest("p", "GB")) == "p|GB|latest"


def _full_forecast() -> Forecast:
    return Forecast(region="GB", start=T0, slot_minutes=30,
                    carbon_intensity=(100.5, math.nan, 90.0),
                    carbon_intensity_p10=(90.0, 80.0, 70.0),
                    carbon_intensity_p90=(110.0, 120.0, 130.0),
                    price_per_mwh=(50.0, 51.0, 52.0), provider="p", issued_at=T0,
                    stale=False, fallback=True)


def test_json_round_trip_keeps_every_field():
    back = forecast_from_json(forecast_to_json(_full_forecast()))
    assert back.carbon_intensity[0] == 100.5 and math.isnan(back.carbon_intensity[1])
    assert replace(back, carbon_intensity=()) == replace(_full_forecast(), carbon_intensity=())
    bare = Forecast("GB", T0, 60, (1.0,))
    assert forecast_from_json(forecast_to_json(bare)) == bare


def test_sqlite_store_survives_a_restart(tmp_path):
    path = tmp_path / "cache" / "forecasts.sqlite"
    store = SqliteForecastStore(path)
    key = CacheKey("p", "GB", T0, 3, 30)
    store.put(key, _full_forecast(), T0)
    store.close()
    reopened = SqliteForecastStore(path)
    stored_at, forecast = reopened.get(key)
    assert stored_at == T0 and forecast.price_per_mwh == (50.0, 51.0, 52.0)
    assert reopened.get(CacheKey("p", "FR", T0, 3, 30)) is None
    assert len(reopened) == 1


def test_a_restarted_service_serves_its_persisted_forecast_when_the_provider_is_down(tmp_path):
    path = tmp_path / "forecasts.sqlite"
    first, _, _ = _source(store=SqliteForecastStore(path), ttl_s=60)
    original = first.forecast("GB", T0, 24, 60)
    first.store.store.close()
    # "Restart": a new process, new store object on the same file, upstream down.
    second, provider, clock = _source(store=SqliteForecastStore(path), ttl_s=60)
    provider.up = False
    clock.advance(3600)
    answer = second.forecast("GB", T0, 24, 60)
    assert answer.stale and answer.carbon_intensity == original.carbon_intensity


def test_corrupt_file_is_moved_aside_and_a_fresh_cache_started(tmp_path, caplog):
    path = tmp_path / "forecasts.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.WARNING, logger="gridshift.adapters.forecast_cache"):
        store = SqliteForecastStore(path)
    assert "moved it to" in caplog.text
    aside = list(tmp_path.glob("forecasts.sqlite.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not")
    key = CacheKey("p", "GB", T0, 3, 30)
    store.put(key, _full_forecast(), T0)
    assert store.get(key)[1].region == "GB"


def test_wrong_schema_is_moved_aside(tmp_path, caplog):
    path = tmp_path / "forecasts.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE forecast_cache (key TEXT)")
    conn.close()
    with caplog.at_level(logging.WARNING, logger="gridshift.adapters.forecast_cache"):
        store = SqliteForecastStore(path)
    assert list(tmp_path.glob("forecasts.sqlite.corrupt-*"))
    store.put(CacheKey("p", "GB"), _full_forecast(), T0)
    assert store.get(CacheKey("p", "GB")) is not None


def test_file_corrupted_while_open_recovers(tmp_path, caplog):
    path = tmp_path / "forecasts.sqlite"
    store = SqliteForecastStore(path)
    store.put(CacheKey("p", "GB"), _full_forecast(), T0)
    store._conn.close()  # simulate the file vanishing under an open store
    path.write_bytes(b"\x00garbage" * 1000)
    store._conn = sqlite3.connect(path, check_same_thread=False)
    with caplog.at_level(logging.WARNING, logger="gridshift.adapters.forecast_cache"):
        assert store.get(CacheKey("p", "GB")) is None
    store.put(CacheKey("p", "GB"), _full_forecast(), T0)
    assert store.get(CacheKey("p", "GB")) is not None


def test_undecodable_entry_is_a_miss_and_dropped(tmp_path):
    path = tmp_path / "forecasts.sqlite"
    store = SqliteForecastStore(path)
    key = CacheKey("p", "GB")
    store.put(key, _full_forecast(), T0)
    with store._conn:
        store._conn.execute("UPDATE forecast_cache SET payload = '{broken'")
    assert store.get(key) is None
    assert len(store) == 0


def test_old_entries_are_pruned_on_write(tmp_path):
    store = SqliteForecastStore(tmp_path / "f.sqlite", max_age_s=86400)
    store.put(CacheKey("p", "old"), _full_forecast(), T0)
    store.put(CacheKey("p", "new"), _full_forecast(), T0 + timedelta(days=10))
    assert store.get(CacheKey("p", "old")) is None
    assert store.get(CacheKey("p", "new")) is not None


def test_a_closed_store_never_moves_a_good_file_aside(tmp_path):
    path = tmp_path / "forecasts.sqlite"
    store = SqliteForecastStore(path)
    store.put(CacheKey("p", "GB"), _full_forecast(), T0)
    store.close()
    assert store.get(CacheKey("p", "GB")) is None
    store.put(CacheKey("p", "FR"), _full_forecast(), T0)  # a no-op, logged
    assert not list(tmp_path.glob("*.corrupt-*"))
    assert SqliteForecastStore(path).get(CacheKey("p", "GB")) is not None


def test_a_directory_in_the_way_falls_back_to_memory(tmp_path, caplog):
    path = tmp_path / "forecasts.sqlite"
    path.mkdir()
    with caplog.at_level(logging.WARNING, logger="gridshift.adapters.forecast_cache"):
        store = SqliteForecastStore(path)
    assert "in memory" in caplog.text and path.is_dir()
    store.put(CacheKey("p", "GB"), _full_forecast(), T0)
    assert store.get(CacheKey("p", "GB")) is not None
