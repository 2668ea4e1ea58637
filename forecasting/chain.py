"""Ordered fallback chains of forecast sources, configurable per region.

A :class:`FallbackChain` asks its sources in order (e.g. Electricity Maps -> UK Carbon Intensity
-> cached -> embedded typical profile) and returns the first *usable* forecast: one that covers
the requested window with finite, non-negative values and consistent band lengths. A forecast
from any source but the first is marked ``fallback=True``. :meth:`FallbackChain.resolve` also
says why each earlier source was passed over, for the response's provenance detail.

A source "fails" when it raises :class:`LookupError` (ForecastUnavailable, KeyError of an unknown
region) or :class:`ValueError` (malformed data), or returns an unusable forecast; any other
exception is a bug and propagates. When every source fails, :class:`ChainExhausted` (a
ForecastUnavailable) lists them all.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np

from gridshift.forecasting.alignment import covers
from gridshift.forecasting.cache import source_name
from gridshift.forecasting.errors import ForecastUnavailable
from gridshift.forecasting.series import Forecast
from gridshift.forecasting.sources import ForecastSource

__all__ = ["Attempt", "ChainExhausted", "ChainResult", "FallbackChain", "RegionalChains",
           "unusable_reason"]


@dataclass(frozen=True)
class Attempt:
    """A source that was passed over, and why."""

    provider: str
    reason: str


@dataclass(frozen=True)
class ChainResult:
    """The answer of a chain and the sources tried before it."""

    forecast: Forecast
    tried: tuple[Attempt, ...]

    @property
    def detail(self) -> str:
        """Provenance note: which sources were skipped and why (empty when the first answered)."""
        return "; ".join(f"{a.provider}: {a.reason}" for a in self.tried)


class ChainExhausted(ForecastUnavailable):
    """Every source of a chain failed; ``tried`` lists each with its reason."""

    def __init__(self, chain: str, region: str, tried: Sequence[Attempt]) -> None:
        self.tried = tuple(tried)
        reasons = "; ".join(f"{a.provider}: {a.reason}" for a in self.tried) or "no sources"
        super().__init__(chain, region, f"all sources failed ({reasons})")


def unusable_reason(forecast: object, start: datetime, slots: int,
                    slot_minutes: int) -> str | None:
    """Why ``forecast`` cannot serve the window, or None when it can."""
    if not isinstance(forecast, Forecast):
        return f"returned {type(forecast).__name__}, not a Forecast"
    values = np.asarray(forecast.carbon_intensity, dtype=float)
    if forecast.slot_minutes <= 0 or len(values) == 0:
        return "empty series"
    if not covers(forecast.start, forecast.slot_minutes, len(values), start,
                  slots * slot_minutes):
        return (f"series [{forecast.start.isoformat()}, {forecast.end.isoformat()}) does not "
                f"cover the window")
    if not np.isfinite(values).any():
        return "no finite values"
    if (values[np.isfinite(values)] < 0).any():
        return "negative carbon intensity"
    for band in ("carbon_intensity_p10", "carbon_intensity_p90", "price_per_mwh"):
        length = len(getattr(forecast, band))
        if length not in (0, len(values)):
            return f"{band} has {length} values for {len(values)} slots"
    return None


class FallbackChain:
    """Try ``sources`` in order; the first usable forecast wins (see the module docstring).

    ``forecast`` follows the ForecastSource protocol; ``resolve`` also returns what was tried.
    ``last_tried`` holds, per thread, the attempts of this thread's latest call.
    """

    def __init__(self, sources: Sequence[ForecastSource], name: str = "fallback-chain") -> None:
        if not sources:
            raise ValueError(f"fallback chain {name!r} needs at least one source")
        self.sources = list(sources)
        self.name = name
        self._local = threading.local()

    @property
    def providers(self) -> list[str]:
        """The sources' names, in order."""
        return [source_name(s) for s in self.sources]

    @property
    def last_tried(self) -> tuple[Attempt, ...]:
        """Attempts passed over in this thread's latest call (empty before any)."""
        return getattr(self._local, "tried", ())

    def resolve(self, region: str, start: datetime, slots: int, slot_minutes: int) -> ChainResult:
        """The first usable forecast with the attempts before it; raises ChainExhausted."""
        tried: list[Attempt] = []
        for index, source in enumerate(self.sources):
            try:
                forecast = source.forecast(region, start, slots, slot_minutes)
            except (LookupError, ValueError) as err:
                tried.append(Attempt(source_name(source), _describe(err)))
                continue
            reason = unusable_reason(forecast, start, slots, slot_minutes)
            if reason is not None:
                tried.append(Attempt(source_name(source), f"unusable: {reason}"))
                continue
            if index > 0 and not forecast.fallback:
                forecast = replace(forecast, fallback=True)
            self._local.tried = tuple(tried)
            return ChainResult(forecast, tuple(tried))
        self._local.tried = tuple(tried)
        raise ChainExhausted(self.name, region, tried)

    def forecast(self, region: str, start: datetime, slots: int, slot_minutes: int) -> Forecast:
        """The first usable forecast (ForecastSource protocol)."""
        return self.resolve(region, start, slots, slot_minutes).forecast


def _describe(err: Exception) -> str:
    """Why a source was passed over, in words for people: its own message (a KeyError's
    without the quotes), never the exception's class name."""
    if isinstance(err, ForecastUnavailable):
        return err.reason
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    return text or ("unknown region" if isinstance(err, KeyError) else "malformed data")


class RegionalChains:
    """The fallback chain configured for each region, with a default for the others."""

    def __init__(self, chains: Mapping[str, FallbackChain], default: FallbackChain | None = None,
                 name: str = "regional-chains") -> None:
        self.chains = dict(chains)
        self.default = default
        self.name = name

    def chain_for(self, region: str) -> FallbackChain:
        """The region's chain; KeyError when there is none and no default."""
        chain = self.chains.get(region, self.default)
        if chain is None:
            raise KeyError(f"no forecast chain configured for region {region!r}; configured: "
                           f"{', '.join(sorted(self.chains)) or 'none'}")
        return chain

    def resolve(self, region: str, start: datetime, slots: int, slot_minutes: int) -> ChainResult:
        """The region's chain's answer with its attempts."""
        return self.chain_for(region).resolve(region, start, slots, slot_minutes)

    def forecast(self, region: str, start: datetime, slots: int, slot_minutes: int) -> Forecast:
        """The region's chain's forecast (ForecastSource protocol)."""
        return self.resolve(region, start, slots, slot_minutes).forecast
