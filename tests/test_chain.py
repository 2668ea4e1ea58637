"""Ordered fallback chains: first usable answer wins, fallbacks are labelled, failures listed."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from gridshift.forecasting.cache import CachedForecastSource, CachingSource, MemoryStore
from gridshift.forecasting.chain import (
    ChainExhausted,
    FallbackChain,
    RegionalChains,
    unusable_reason,
)
from gridshift.forecasting.errors import ForecastUnavailable
from gridshift.forecasting.series import Forecast
from gridshift.forecasting.sources import EmbeddedProfileSource

T0 = datetime(2026, 6, 15, tzinfo=UTC)


class Fixed:
    """A source that answers with a flat series, or fails as told."""

    def __init__(self, name: str, value: float = 100.0, error: Exception | None = None,
                 hours: int | None = None) -> None:
        self.name = name
        self.value = value
        self.error = error
        self.hours = hours
        self.calls = 0

    def forecast(self, region: str, start: datetime, slots: int, slot_minutes: int) -> Forecast:
        self.calls += 1
        if self.error is not None:
            raise self.error
        n = slots if self.hours is None else self.hours * 60 // slot_minutes
        return Forecast(region=region, start=start, slot_minutes=slot_minutes,
                        carbon_intensity=(self.value,) * n, provider=self.name, issued_at=T0)


def test_first_source_answers_without_fallback():
    chain = FallbackChain([Fixed("em"), Fixed("uk")])
    result = chain.resolve("GB", T0, 24, 60)
    assert result.forecast.provider == "em"
    assert not result.forecast.fallback and result.tried == () and result.detail == ""


def test_failed_first_source_falls_back_and_says_why():
    em = Fixed("electricitymaps", error=ForecastUnavailable("electricitymaps", "GB", "HTTP 429"))
    chain = FallbackChain([em, Fixed("uk-ci", 150.0)])
    result = chain.resolve("GB", T0, 24, 60)
    assert result.forecast.provider == "uk-ci" and result.forecast.fallback
    assert [(a.provider, a.reason) for a in result.tried] == [("electricitymaps", "HTTP 429")]
    assert result.detail == "electricitymaps: HTTP 429"
    assert chain.forecast("GB", T0, 24, 60).fallback
    assert chain.last_tried == result.tried


def test_unusable_answers_are_skipped_with_a_reason():
    short = Fixed("short", hours=6)
    negative = Fixed("negative", value=-5.0)
    chain = FallbackChain([short, negative, Fixed("good")])
    result = chain.resolve("GB", T0, 24, 60)
    assert result.forecast.provider == "good"
    reasons = dict((a.provider, a.reason) for a in result.tried)
    assert "does not cover the window" in reasons["short"]
    assert "negative" in reasons["negative"]


def test_all_failing_lists_everything_tried():
    chain = FallbackChain([
        Fixed("em", error=ForecastUnavailable("em", "XX", "timeout")),
        Fixed("typical", error=KeyError("no typical profile for region 'XX'")),
        Fixed("bad", error=ValueError("malformed JSON")),
    ], name="XX-chain")
    with pytest.raises(ChainExhausted) as info:
        chain.forecast("XX", T0, 24, 60)
    err = info.value
    assert isinstance(err, ForecastUnavailable)
    assert [a.provider for a in err.tried] == ["em", "typical", "bad"]
    message = str(err)
    assert "timeout" in message and "no typical profile" in message and "malformed" in message
    assert err.provider == "XX-chain" and err.region == "XX"


def test_bugs_propagate():
    chain = FallbackChain([Fixed("buggy", error=RuntimeError("bug")), Fixed("good")])
    with pytest.raises(RuntimeError):
        chain.forecast("GB", T0, 24, 60)


def test_empty_chain_is_rejected():
    with pytest.raises(ValueError):
        FallbackChain([])


def test_provider_chain_with_cache_and_typical_profile():
    """Electricity Maps -> UK CI -> cached -> embedded typical profile."""
    store = MemoryStore()
    em, uk = Fixed("electricitymaps", 90.0), Fixed("uk-ci", 95.0)
    clock_now = [T0]
    em_cached = CachingSource(em, store, ttl_s=300, clock=lambda: clock_now[0])
    uk_cached = CachingSource(uk, store, ttl_s=900, clock=lambda: clock_now[0])
    chain = FallbackChain([em_cached, uk_cached,
                           CachedForecastSource(store, ["electricitymaps", "uk-ci"]),
                           EmbeddedProfileSource()])
    assert chain.forecast("DE", T0, 24, 60).provider == "electricitymaps"
    # Electricity Maps goes down: its own cache answers stale, no fallback.
    em.error = ForecastUnavailable("electricitymaps", "DE", "HTTP 503")
    clock_now[0] = T0 + timedelta(hours=1)
    result = chain.resolve("DE", T0 + timedelta(hours=1), 12, 60)
    assert result.forecast.stale and not result.forecast.fallback
    # A window nothing cached covers: UK CI answers (fallback), then both down -> typical.
    result = chain.resolve("DE", T0 + timedelta(hours=30), 12, 60)
    assert result.forecast.provider == "uk-ci" and result.forecast.fallback
    uk.error = ForecastUnavailable("uk-ci", "DE", "unknown zone")
    result = chain.resolve("DE", T0 + timedelta(days=3), 12, 60)
    assert result.forecast.provider == "embedded-typical-profile" and result.forecast.fallback
    assert [a.provider for a in result.tried] == ["electricitymaps", "uk-ci", "cache"]


def test_regional_chains_dispatch_by_region():
    gb = FallbackChain([Fixed("uk-ci")], name="gb")
    default = FallbackChain([Fixed("em")], name="default")
    chains = RegionalChains({"GB": gb}, default)
    assert chains.forecast("GB", T0, 4, 60).provider == "uk-ci"
    assert chains.forecast("DE", T0, 4, 60).provider == "em"
    with pytest.raises(KeyError, match="no forecast chain configured for region 'DE'"):
        RegionalChains({"GB": gb}).forecast("DE", T0, 4, 60)


def test_last_tried_is_per_thread():
    chain = FallbackChain([Fixed("down", error=ForecastUnavailable("down", "GB", "x")),
                           Fixed("up")])
    chain.forecast("GB", T0, 4, 60)
    seen = []
    thread = threading.Thread(target=lambda: seen.append(chain.last_tried))
    thread.start()
    thread.join()
    assert seen == [()] and len(chain.last_tried) == 1


def test_unusable_reason_checks_band_lengths():
    bad = Forecast("GB", T0, 60, (1.0, 2.0), carbon_intensity_p10=(1.0,))
    assert "carbon_intensity_p10 has 1 values" in unusable_reason(bad, T0, 2, 60)
    assert unusable_reason("nope", T0, 2, 60).startswith("returned str")
    assert unusable_reason(Forecast("GB", T0, 60, ()), T0, 2, 60) == "empty series"
