"""The forecast service: which providers answer for which region, in which order, behind which
cache — the one place where provider adapters, the persisted cache, the fallback chain, the
horizon extension and the blend with recorded actuals are put together.

Each region has an ordered fallback chain of steps, written as ``provider:zone``, ``cached`` or
``embedded``, e.g. ``["electricitymaps:DE", "cached", "embedded"]``. Chains come from the
``[forecasts.regions.NAME]`` tables of the config file; a region without one gets the default
chain of the provider registry (:func:`~gridshift.adapters.providers.registry.default_chain`):
every configured provider that serves the region, then the cache, then the embedded
typical-day profile. Every provider sits behind a persisted cache with a per-provider TTL; a
provider whose horizon ends before the window is asked for what it has and the rest is extended
by the seasonal model, labelled in provenance.

**Time budget.** A resolution has a deadline: the caller's (a gRPC call's remaining time, cut
by the caller), at most ``[forecasts] time_budget_s`` (default 20 s) from its start. Each
provider step gets an equal share of what is left for itself and the provider steps after it
(the first of two gets half, the last all that remains), enforced on every HTTP call it makes
(:func:`~gridshift.adapters.http.deadline_scope`); a provider whose share is spent fails like
any other, so the chain moves on to the next provider, the cache or the embedded profile in
time. Regions are resolved concurrently (:meth:`ForecastService.resolve_many`).

**Unit plausibility.** Every provider's series is checked by
:func:`gridshift.forecasting.plausibility.unit_error` against the region's known level: its
embedded typical profile over the same hours, else the mean of its recorded actuals of the last
21 days (the blend's ``HISTORY_DAYS``; at least a day of them). A refused series is a failure
of that provider (not cached; the chain falls back) and the reason is in provenance.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar, copy_context
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from gridshift.adapters.http import deadline_scope
from gridshift.adapters.providers import UnknownRegion
from gridshift.adapters.providers.registry import (
    PROVIDERS,
    ProviderSettings,
    build_provider,
    default_chain,
)
from gridshift.forecasting import profiles
from gridshift.forecasting.blend import HISTORY_DAYS, blend_with_actuals
from gridshift.forecasting.cache import CachedForecastSource, CachingSource
from gridshift.forecasting.chain import ChainResult, FallbackChain
from gridshift.forecasting.errors import ForecastUnavailable
from gridshift.forecasting.extension import extend
from gridshift.forecasting.plausibility import KnownLevel, unit_error
from gridshift.forecasting.series import Forecast
from gridshift.forecasting.sources import EmbeddedProfileSource, ForecastSource

__all__ = ["DEFAULT_TIME_BUDGET_S", "ActualsSource", "ExtendingSource", "ForecastConfig",
           "ForecastService", "GuardedSource"]

log = logging.getLogger("gridshift.forecasts")

#: Recorded actuals of a region in [start, end) as a regular series, or None.
ActualsSource = Callable[[str, datetime, datetime], Forecast | None]
#: The HTTP client a provider uses (tests pass fast, non-retrying ones), by provider name.
HttpFactory = Callable[[str], Any]

#: Seconds one resolution (all its regions, every step of their chains) may take at most.
DEFAULT_TIME_BUDGET_S = 20.0
#: The most regions resolved at once.
MAX_PARALLEL_REGIONS = 8
#: The deadline (time.monotonic()) of the resolution running in this context.
_DEADLINE: ContextVar[float | None] = ContextVar("gridshift_forecast_deadline", default=None)


@dataclass(frozen=True)
class ForecastConfig:
    """Per-region chains (steps as strings), the cache file, TTLs and the blend switch: the
    ``[forecasts]`` table of the config file."""

    chains: dict[str, list[str]] = field(default_factory=dict)
    cache_path: Path | None = None
    ttl_seconds: dict[str, float] = field(default_factory=dict)
    #: Blend average-intensity provider forecasts with the seasonal model of recorded actuals
    #: (forecasting.blend) where the service has an actuals source.
    blend: bool = True
    #: Seconds a resolution may take at most (a caller's deadline may cut it further).
    time_budget_s: float = DEFAULT_TIME_BUDGET_S

    @staticmethod
    def from_table(table: dict[str, Any]) -> ForecastConfig:
        """The config file's [forecasts] table; ValueError naming the key on anything wrong
        (an unknown key, a wrong type, an unknown chain step, a negative TTL)."""
        unknown = sorted(set(table) - set(_TABLE_KEYS))
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(f'forecasts.{k}' for k in unknown)} "
                             f"(known: {', '.join(_TABLE_KEYS)})")
        path = table.get("cache_path")
        if path is not None and (not isinstance(path, str) or not path.strip()):
            raise ValueError(f"forecasts.cache_path must be a file path, got {path!r}")
        blend = table.get("blend", True)
        if not isinstance(blend, bool):
            raise ValueError(f"forecasts.blend must be true or false, got {blend!r}")
        budget = table.get("time_budget_s", DEFAULT_TIME_BUDGET_S)
        if (isinstance(budget, bool) or not isinstance(budget, int | float)
                or not math.isfinite(budget) or not 0 < budget <= 600):
            raise ValueError(f"forecasts.time_budget_s must be seconds in (0, 600], got "
                             f"{budget!r}")
        return ForecastConfig(_chains_of(table.get("regions", {})),
                              Path(path) if path else None,
                              _ttls_of(table.get("ttl_seconds", {})), blend, float(budget))


_TABLE_KEYS = ("regions", "cache_path", "ttl_seconds", "blend", "time_budget_s")


def _chains_of(regions: Any) -> dict[str, list[str]]:
    if not isinstance(regions, dict):
        raise ValueError("forecasts.regions must be a table of region tables")
    chains = {}
    for name, spec in regions.items():
        where = f"forecasts.regions.{name}"
        if not isinstance(spec, dict) or set(spec) - {"chain"}:
            raise ValueError(f"{where} must be a table with one key, chain")
        chain = spec.get("chain", [])
        if not isinstance(chain, list) or not all(isinstance(step, str) for step in chain):
            raise ValueError(f"{where}.chain must be a list of strings")
        for step in chain:
            if step not in ("cached", "embedded") and step.partition(":")[0] not in PROVIDERS:
                raise ValueError(f"{where}.chain: unknown step {step!r} (provider:zone with "
                                 f"provider one of {', '.join(PROVIDERS)}; or cached, embedded)")
        chains[name] = list(chain)
    return chains


def _ttls_of(ttls: Any) -> dict[str, float]:
    if not isinstance(ttls, dict):
        raise ValueError("forecasts.ttl_seconds must be a table of provider = seconds")
    out = {}
    for provider, value in ttls.items():
        if provider not in PROVIDERS:
            raise ValueError(f"forecasts.ttl_seconds.{provider}: unknown provider (one of "
                             f"{', '.join(PROVIDERS)})")
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not math.isfinite(value) or value < 0):
            raise ValueError(f"forecasts.ttl_seconds.{provider} must be seconds >= 0, got "
                             f"{value!r}")
        out[provider] = float(value)
    return out


class ExtendingSource:
    """A provider source whose forecasts are extended past its horizon by the seasonal model."""

    def __init__(self, inner: Any, name: str, horizon_h: float,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.inner = inner
        self.name = name
        self.horizon_h = horizon_h
        self.clock = clock or (lambda: datetime.now(UTC))

    def forecast(self, region: str, start: datetime, slots: int, slot_minutes: int) -> Forecast:
        end = start + timedelta(minutes=slots * slot_minutes)
        reach = self.clock() + timedelta(hours=self.horizon_h)
        if end <= reach:
            return self.inner.forecast(region, start, slots, slot_minutes)
        if start >= reach - timedelta(hours=1):
            raise ForecastUnavailable(self.name, region,
                                      f"window starts beyond the {self.horizon_h:g} h horizon")
        available = int((reach - start).total_seconds() // (slot_minutes * 60))
        partial = self.inner.forecast(region, start, max(1, available), slot_minutes)
        extension = extend(partial, end)
        return replace(extension.forecast, detail=extension.detail)


class GuardedSource:
    """A provider's adapter inside the resolution's time budget, its answers checked for unit
    plausibility (see the module docstring).

    ``later_providers``: how many provider steps follow it in the chain (its share of the time
    left is 1 / (1 + later_providers)). ``known_level(region, forecast)``: the region's known
    level over the forecast's hours, or None.
    """

    def __init__(self, inner: Any, name: str, later_providers: int,
                 known_level: Callable[[str, Forecast], KnownLevel | None]) -> None:
        self.inner = inner
        self.name = name
        self.later_providers = later_providers
        self.known_level = known_level

    def forecast(self, region: str, start: datetime, slots: int, slot_minutes: int) -> Forecast:
        deadline = _DEADLINE.get()
        share_deadline = None
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0.01:
                raise ForecastUnavailable(self.name, region,
                                          "not asked: the time budget was spent")
            share_deadline = time.monotonic() + left / (1 + self.later_providers)
        with deadline_scope(share_deadline):
            forecast = self.inner.forecast(region, start, slots, slot_minutes)
        problem = unit_error(forecast, self.known_level(region, forecast))
        if problem:
            log.warning("%s: series for %s refused: %s", self.name, region, problem)
            raise ForecastUnavailable(self.name, region, f"refused: {problem}")
        return forecast


class _WithinDeadline:
    """The service as a ForecastSource whose resolutions end by one deadline."""

    def __init__(self, service: ForecastService, deadline: float) -> None:
        self.service = service
        self.deadline = deadline

    def forecast(self, region: str, start: datetime, slots: int, slot_minutes: int) -> Forecast:
        return self.service.resolve(region, start, slots, slot_minutes, deadline=self.deadline)


class ForecastService:
    """Resolves a region's series through its chain (built on first use, then kept).

    ``providers`` holds the providers' credentials and URLs (from the settings); ``cache_store``
    is the persisted forecast cache (default: a SQLite file at ``config.cache_path``, opened on
    first use). With an ``actuals`` source and ``config.blend``, average-intensity provider
    forecasts are blended with the seasonal model of the region's recent actuals
    (:mod:`forecasting.blend`), noted in provenance.
    """

    def __init__(self, config: ForecastConfig | None = None,
                 providers: ProviderSettings | None = None, *, cache_store: Any = None,
                 http_factory: HttpFactory | None = None,
                 actuals: ActualsSource | None = None) -> None:
        self.config = config or ForecastConfig()
        self.providers = providers or ProviderSettings()
        self._cache_store = cache_store
        self._http_factory = http_factory
        self._actuals = actuals
        self._chains: dict[str, FallbackChain] = {}
        self._lock = threading.Lock()
        #: Metrics (adapters.metrics.Metrics): resolutions by provider and outcome.
        self.metrics: Any = None

    def cache_store(self) -> Any:
        """The persisted forecast cache (opened on first use)."""
        if self._cache_store is None:
            from gridshift.adapters.forecast_cache import SqliteForecastStore

            if self.config.cache_path is None:
                raise ValueError("the forecast cache has no path (settings give one)")
            self._cache_store = SqliteForecastStore(self.config.cache_path)
        return self._cache_store

    def steps(self, region: str) -> list[str]:
        """The region's chain: configured, else the registry's default."""
        return self.config.chains.get(region) or default_chain(region, self.providers)

    def answerable(self, region: str) -> bool:
        """Whether some source could answer: a provider step or an embedded profile."""
        return region in profiles.known_regions() or any(":" in s for s in self.steps(region))

    def chain(self, region: str) -> FallbackChain:
        with self._lock:
            if region not in self._chains:
                self._chains[region] = self._build(region, self.steps(region))
            return self._chains[region]

    def _build(self, region: str, steps: list[str]) -> FallbackChain:
        sources: list[Any] = []
        providers: list[str] = []
        provider_steps = sum(1 for step in steps if ":" in step)
        for step in steps:
            if step == "embedded":
                sources.append(EmbeddedProfileSource())
            elif step == "cached":
                if not providers:
                    continue   # nothing before it could have filled the cache
                sources.append(CachedForecastSource(self.cache_store(), list(providers)))
            else:
                provider, _, zone = step.partition(":")
                spec = PROVIDERS[provider]
                inner = build_provider(provider, self.providers, region, zone or region,
                                       self._http(provider))
                providers.append(provider)
                guarded = GuardedSource(inner, provider, provider_steps - len(providers),
                                        self._known_level)
                extending = ExtendingSource(guarded, provider, spec.horizon_h)
                ttl = self.config.ttl_seconds.get(provider, spec.ttl_s)
                sources.append(CachingSource(extending, self.cache_store(), ttl,
                                             provider=provider,
                                             on_hit=lambda p=provider: self._count(
                                                 p, "cache_hit")))
        return FallbackChain(sources, name=f"chain[{region}]")

    def _count(self, provider: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.forecast(provider, outcome)

    def _http(self, provider: str) -> Any:
        return self._http_factory(provider) if self._http_factory else None

    def _known_level(self, region: str, forecast: Forecast) -> KnownLevel | None:
        """The region's known mean intensity over the forecast's hours: its embedded profile,
        else its recorded actuals of the last HISTORY_DAYS (21) days (at least 24 h of them),
        else None."""
        if region in profiles.known_regions():
            values = profiles.typical_intensity(region, forecast.start,
                                                len(forecast.carbon_intensity),
                                                forecast.slot_minutes)
            return KnownLevel(float(np.mean(values)), "embedded typical profile")
        if self._actuals is None:
            return None
        now = datetime.now(UTC)
        try:
            actuals = self._actuals(region, now - timedelta(days=HISTORY_DAYS), now)
        except Exception as exc:  # noqa: BLE001 - no actuals is a supported state
            log.warning("actuals of %s unavailable for the plausibility check: %s", region, exc)
            return None
        if actuals is None:
            return None
        values = np.asarray(actuals.carbon_intensity, dtype=float)
        values = values[np.isfinite(values)]
        if values.size * actuals.slot_minutes < 24 * 60:
            return None
        return KnownLevel(float(values.mean()),
                          f"recorded actuals of the last {HISTORY_DAYS} days")

    def deadline(self, time_budget_s: float | None = None) -> float:
        """The ``time.monotonic()`` instant a resolution starting now must end by: the
        configured budget, cut to ``time_budget_s`` when given."""
        budget = self.config.time_budget_s
        if time_budget_s is not None:
            budget = min(budget, max(0.0, time_budget_s))
        return time.monotonic() + budget

    def within(self, deadline: float) -> ForecastSource:
        """The service as a ForecastSource whose resolutions end by ``deadline``."""
        return _WithinDeadline(self, deadline)

    def forecast(self, region: str, start: datetime, slots: int, slot_minutes: int) -> Forecast:
        """ForecastSource protocol: same as resolve()."""
        return self.resolve(region, start, slots, slot_minutes)

    def resolve(self, region: str, start: datetime, slots: int, slot_minutes: int, *,
                deadline: float | None = None) -> Forecast:
        """The region's series with provenance detail, by ``deadline`` (``time.monotonic()``;
        default: the configured budget from now). Raises UnknownRegion (a KeyError) for a
        region no source could answer (no provider configured, no embedded profile) and
        ForecastUnavailable (with every source tried) when the whole chain fails."""
        if not self.answerable(region):
            raise UnknownRegion("forecasts", region, "no provider is configured for it and no "
                                "embedded profile exists (embedded: "
                                f"{', '.join(profiles.known_regions())})")
        token = _DEADLINE.set(deadline if deadline is not None else self.deadline())
        try:
            result: ChainResult = self.chain(region).resolve(region, start, slots, slot_minutes)
        except LookupError as exc:
            for attempt in getattr(exc, "tried", ()):
                self._count(attempt.provider, "error")
            raise
        finally:
            _DEADLINE.reset(token)
        for attempt in result.tried:
            self._count(attempt.provider, "error")
        f = result.forecast
        self._count(f.provider, "stale" if f.stale else "fallback" if f.fallback or result.tried
                    else "ok")
        detail = "; ".join(x for x in (result.forecast.detail, result.detail) if x)
        return self._blended(replace(result.forecast, detail=detail))

    def resolve_many(self, regions: Iterable[str], start: datetime, slots: int,
                     slot_minutes: int, *,
                     deadline: float | None = None) -> dict[str, Forecast | LookupError]:
        """:meth:`resolve` for each region, concurrently, all by one deadline: each region's
        series, or the LookupError it failed with."""
        return resolve_concurrently(self.within(deadline if deadline is not None
                                                else self.deadline()),
                                    regions, start, slots, slot_minutes)

    def _blended(self, forecast: Forecast) -> Forecast:
        if self._actuals is None or not self.config.blend:
            return forecast
        issued = forecast.issued_at or datetime.now(UTC)
        actuals = self._actuals(forecast.region, issued - timedelta(days=HISTORY_DAYS), issued)
        blend = blend_with_actuals(forecast, actuals, issued_at=issued)
        if not blend.applied:
            log.debug("forecast of %s %s", forecast.region, blend.note)
        return blend.forecast

    def pull_actuals(self, region: str, start: datetime, end: datetime) -> Forecast:
        """Observed intensity of a region from the first provider of its chain whose history
        endpoint answers. Raises ForecastUnavailable listing what was tried."""
        tried = []
        for step in self.steps(region):
            provider, sep, zone = step.partition(":")
            if not sep:
                continue
            try:
                source = build_provider(provider, self.providers, region, zone or region,
                                        self._http(provider))
                return source.history(region, start, end)
            except (LookupError, ValueError) as exc:
                tried.append(f"{provider}: {exc}")
        raise ForecastUnavailable("actuals", region, "; ".join(tried) or
                                  "no provider with a history endpoint is configured")


def resolve_concurrently(source: ForecastSource, regions: Iterable[str], start: datetime,
                         slots: int, slot_minutes: int) -> dict[str, Forecast | LookupError]:
    """``source.forecast`` for each region, at most MAX_PARALLEL_REGIONS at once, each in a
    copy of the caller's context: each region's series, or the LookupError it failed with
    (anything else propagates)."""
    unique = list(dict.fromkeys(regions))

    def one(region: str) -> Forecast | LookupError:
        try:
            return source.forecast(region, start, slots, slot_minutes)
        except LookupError as exc:
            return exc

    if len(unique) <= 1:
        return {region: one(region) for region in unique}
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_REGIONS, len(unique)),
                            thread_name_prefix="forecast") as pool:
        # Each task runs in a copy of the caller's context (a call's request id in logs).
        futures = {region: pool.submit(copy_context().run, one, region) for region in unique}
        return {region: future.result() for region, future in futures.items()}
