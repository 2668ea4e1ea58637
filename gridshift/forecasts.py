"""Forecast wiring: which providers answer for which region, in which order, behind which cache.

Each region has an ordered fallback chain of steps, written as `provider:zone`, `cached` or
`embedded`, e.g. `["electricitymaps:DE", "cached", "embedded"]`. Chains come from the
`[forecasts.regions.NAME]` tables of the config file; a region without one gets the default:
Electricity Maps (zone = region name) when GRIDSHIFT_EMAPS_TOKEN is set, WattTime for the
regions it is mapped for when GRIDSHIFT_WATTTIME_USER/PASSWORD are set, UK Carbon Intensity
for `GB` (national) and `GB-<id>` (regional), then the cache, then the embedded typical-day
profile. Every provider sits behind a persisted cache with a per-provider TTL; a provider
whose horizon ends before the window is asked for what it has and the rest is extended by
the seasonal model, labelled in provenance.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gridshift.forecasting.blend import HISTORY_DAYS, blend_with_actuals
from gridshift.forecasting.cache import CachedForecastSource, CachingSource
from gridshift.forecasting.chain import ChainResult, FallbackChain
from gridshift.forecasting.errors import ForecastUnavailable
from gridshift.forecasting.extension import extend
from gridshift.forecasting.series import Forecast
from gridshift.forecasting.sources import EmbeddedProfileSource

log = logging.getLogger("gridshift.forecasts")

PROVIDER_TTL_S = {"ukci": 30 * 60, "electricitymaps": 60 * 60, "watttime": 5 * 60}
PROVIDER_HORIZON_H = {"ukci": 48, "electricitymaps": 72, "watttime": 72}
# gridshift region → WattTime region (balancing-authority sub-regions).
WATTTIME_ZONES = {"US-CAL-CISO": "CAISO_NORTH", "US-TEX-ERCO": "ERCOT_OTHER",
                  "US-MIDA-PJM": "PJM_DC", "US-NW-BPAT": "BPA", "US-NY-NYIS": "NYISO_NYC",
                  "US-MIDW-MISO": "MISO_INDIANAPOLIS"}


def default_data_dir() -> Path:
    """The data directory shared with the plan store (GRIDSHIFT_DATA_DIR, else XDG)."""
    from gridshift.adapters.store.plan_store import default_data_dir as store_data_dir

    return store_data_dir()


@dataclass
class ForecastConfig:
    """Per-region chains (steps as strings) and the cache file."""

    chains: dict[str, list[str]] = field(default_factory=dict)
    cache_path: Path | None = None
    ttl_seconds: dict[str, float] = field(default_factory=dict)
    #: Blend average-intensity provider forecasts with the seasonal model of recorded actuals
    #: (forecasting.blend) where the service has an actuals source.
    blend: bool = True

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
        return ForecastConfig(_chains_of(table.get("regions", {})),
                              Path(path) if path else None,
                              _ttls_of(table.get("ttl_seconds", {})), blend)


_TABLE_KEYS = ("regions", "cache_path", "ttl_seconds", "blend")
_PROVIDERS = ("electricitymaps", "watttime", "ukci")


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
            if step not in ("cached", "embedded") and step.partition(":")[0] not in _PROVIDERS:
                raise ValueError(f"{where}.chain: unknown step {step!r} (provider:zone with "
                                 f"provider one of {', '.join(_PROVIDERS)}; or cached, embedded)")
        chains[name] = list(chain)
    return chains


def _ttls_of(ttls: Any) -> dict[str, float]:
    if not isinstance(ttls, dict):
        raise ValueError("forecasts.ttl_seconds must be a table of provider = seconds")
    out = {}
    for provider, value in ttls.items():
        if provider not in _PROVIDERS:
            raise ValueError(f"forecasts.ttl_seconds.{provider}: unknown provider (one of "
                             f"{', '.join(_PROVIDERS)})")
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not math.isfinite(value) or value < 0):
            raise ValueError(f"forecasts.ttl_seconds.{provider} must be seconds >= 0, got "
                             f"{value!r}")
        out[provider] = float(value)
    return out


def default_chain(region: str) -> list[str]:
    """The chain used for a region that has none configured (see the module docstring)."""
    steps = []
    if os.environ.get("GRIDSHIFT_EMAPS_TOKEN"):
        steps.append(f"electricitymaps:{region}")
    if os.environ.get("GRIDSHIFT_WATTTIME_USER") and region in WATTTIME_ZONES:
        steps.append(f"watttime:{WATTTIME_ZONES[region]}")
    if region == "GB":
        steps.append("ukci:national")
    elif region.startswith("GB-"):
        steps.append(f"ukci:{region[3:]}")
    return steps + ["cached", "embedded"]


class ExtendingSource:
    """A provider source whose forecasts are extended past its horizon by the seasonal model."""

    def __init__(self, inner: Any, name: str, horizon_h: float) -> None:
        self.inner = inner
        self.name = name
        self.horizon_h = horizon_h

    def forecast(self, region: str, start: datetime, slots: int, slot_minutes: int) -> Forecast:
        end = start + timedelta(minutes=slots * slot_minutes)
        reach = datetime.now(UTC) + timedelta(hours=self.horizon_h)
        if end <= reach:
            return self.inner.forecast(region, start, slots, slot_minutes)
        if start >= reach - timedelta(hours=1):
            raise ForecastUnavailable(self.name, region,
                                      f"window starts beyond the {self.horizon_h:g} h horizon")
        available = int((reach - start).total_seconds() // (slot_minutes * 60))
        partial = self.inner.forecast(region, start, max(1, available), slot_minutes)
        extension = extend(partial, end)
        return replace(extension.forecast, detail=extension.detail)


#: Recorded actuals of a region in [start, end) as a regular series, or None.
ActualsSource = Callable[[str, datetime, datetime], Forecast | None]


def stored_actuals(region: str, start: datetime, end: datetime) -> Forecast | None:
    """The region's actuals recorded in the plan store (``gridshift actuals pull|import``);
    None when storing is off, nothing is recorded, or the store cannot be read (logged)."""
    from gridshift import plans
    from gridshift.adapters.store.plan_store import StoreError

    if not plans.storing_enabled():
        return None
    try:
        points = plans.default_store().actuals(region, start, end)
    except (StoreError, OSError) as exc:
        log.warning("actuals of %s unavailable for the forecast blend: %s", region, exc)
        return None
    return plans.regular_series(region, points)


def configured_service(config_path: str | None = None) -> ForecastService:
    """The service of the config file's ``[forecasts]`` table (defaults without a file), blending
    with the actuals recorded in the plan store: what the CLI, the server and nightly runs use."""
    from gridshift.config import load_forecast_config

    return ForecastService(load_forecast_config(config_path), actuals=stored_actuals)


class ForecastService:
    """Resolves a region's series through its chain (built on first use, then kept).

    With an ``actuals`` source (:func:`configured_service` passes :func:`stored_actuals`) and
    ``config.blend``, average-intensity provider forecasts are blended with the seasonal model
    of the region's recent actuals (:mod:`forecasting.blend`), noted in provenance.
    """

    def __init__(self, config: ForecastConfig | None = None, store: Any | None = None,
                 http_factory: Any = None, actuals: ActualsSource | None = None) -> None:
        self.config = config or ForecastConfig()
        self._store = store
        self._http_factory = http_factory
        self._actuals = actuals
        self._chains: dict[str, FallbackChain] = {}
        self._lock = threading.Lock()

    def store(self) -> Any:
        if self._store is None:
            from gridshift.adapters.forecast_cache import SqliteForecastStore

            path = self.config.cache_path or default_data_dir() / "forecast-cache.sqlite"
            self._store = SqliteForecastStore(path)
        return self._store

    def chain(self, region: str) -> FallbackChain:
        with self._lock:
            if region not in self._chains:
                steps = self.config.chains.get(region) or default_chain(region)
                self._chains[region] = self._build(region, steps)
            return self._chains[region]

    def _build(self, region: str, steps: list[str]) -> FallbackChain:
        sources: list[Any] = []
        providers: list[str] = []
        for step in steps:
            if step == "embedded":
                sources.append(EmbeddedProfileSource())
            elif step == "cached":
                if not providers:
                    continue   # nothing before it could have filled the cache
                sources.append(CachedForecastSource(self.store(), list(providers)))
            else:
                provider, _, zone = step.partition(":")
                http = self._http_factory(provider) if self._http_factory else None
                inner = _provider(provider, region, zone or region, http)
                providers.append(provider)
                extending = ExtendingSource(inner, provider, PROVIDER_HORIZON_H.get(provider, 24))
                ttl = self.config.ttl_seconds.get(provider, PROVIDER_TTL_S.get(provider, 1800))
                sources.append(CachingSource(extending, self.store(), ttl, provider=provider))
        return FallbackChain(sources, name=f"chain[{region}]")

    def forecast(self, region: str, start: datetime, slots: int, slot_minutes: int) -> Forecast:
        """ForecastSource protocol: same as resolve()."""
        return self.resolve(region, start, slots, slot_minutes)

    def resolve(self, region: str, start: datetime, slots: int, slot_minutes: int) -> Forecast:
        """The region's series with provenance detail; raises ForecastUnavailable (with every
        source tried) when the whole chain fails."""
        result: ChainResult = self.chain(region).resolve(region, start, slots, slot_minutes)
        detail = "; ".join(x for x in (result.forecast.detail, result.detail) if x)
        return self._blended(replace(result.forecast, detail=detail))

    def _blended(self, forecast: Forecast) -> Forecast:
        if self._actuals is None or not self.config.blend:
            return forecast
        issued = forecast.issued_at or datetime.now(UTC)
        actuals = self._actuals(forecast.region, issued - timedelta(days=HISTORY_DAYS), issued)
        blend = blend_with_actuals(forecast, actuals, issued_at=issued)
        if not blend.applied:
            log.debug("forecast of %s %s", forecast.region, blend.note)
        return blend.forecast


def _provider(name: str, region: str, zone: str, http: Any = None) -> Any:
    """A provider adapter configured from the environment for one region → zone."""
    zones = {region: zone}
    if name == "electricitymaps":
        from gridshift.adapters.providers.electricitymaps import ElectricityMaps

        return ElectricityMaps.from_env(zones, http=http)
    if name == "watttime":
        from gridshift.adapters.providers.watttime import WattTime

        return WattTime.from_env(zones, http=http)
    if name == "ukci":
        from gridshift.adapters.providers.ukci import UKCarbonIntensity

        return UKCarbonIntensity.from_env(zones, http=http)
    raise ValueError(f"unknown forecast provider {name!r} ({', '.join(_PROVIDERS)}, cached, "
                     "embedded)")


def fill_site_renewables(request: Any) -> tuple[Any, list[Forecast]]:
    """Sites with solar_kwp / wind_kw but no renewable_kw get a forecast of their supply:
    Open-Meteo weather through the PV and wind models when GRIDSHIFT_OPENMETEO_URL is set,
    else the embedded solar capacity-factor profile of the site's region (labelled a
    fallback; no wind). Returns the new request and provenance entries (one per site)."""
    h = request.horizon
    sites, notes = [], []
    for site in request.sites:
        if site.renewable_kw or (site.solar_kwp <= 0 and site.wind_kw <= 0):
            sites.append(site)
            continue
        values, provider, fallback, detail = _site_supply_kw(site, h)
        sites.append(replace(site, renewable_kw=tuple(float(v) for v in values)))
        notes.append(Forecast(region=f"site:{site.id}/renewable_kw", start=h.start,
                              slot_minutes=h.slot_minutes, carbon_intensity=(),
                              provider=provider, issued_at=datetime.now(UTC),
                              fallback=fallback, detail=detail))
    return replace(request, sites=tuple(sites)), notes


def _site_supply_kw(site: Any, h: Any) -> tuple[Any, str, bool, str]:
    import numpy as np

    tried = []
    if os.environ.get("GRIDSHIFT_OPENMETEO_URL"):
        from gridshift.adapters.providers.openmeteo import OpenMeteoRenewables

        try:
            source = OpenMeteoRenewables.from_env()
            values = source.renewable_kw(site.latitude, site.longitude, h.start, h.slots,
                                         h.slot_minutes, site.solar_kwp, site.wind_kw)
            return values, "open-meteo", False, "PV and wind power-curve models on weather"
        except (LookupError, ValueError) as exc:
            tried.append(f"open-meteo: {exc}")
    from gridshift.forecasting.profiles import typical_solar_cf

    try:
        cf = typical_solar_cf(site.region, h.start, h.slots, h.slot_minutes)
        detail = "embedded typical solar capacity factor x solar_kwp; wind not modelled"
    except KeyError:
        cf = np.zeros(h.slots)
        detail = f"no solar profile for region {site.region!r}: supply taken as 0 kW"
    return site.solar_kwp * cf, "embedded-typical-profile", True, "; ".join(tried + [detail])


# --- Queries: GetForecast and FindBestWindow ------------------------------------------------

MAX_QUERY_HOURS = 24 * 14


def _check_query(regions: list[str], start: datetime | None, end: datetime | None,
                 names: tuple[str, str], extra: list | None = None) -> None:
    from gridshift.optimizer.errors import FieldViolation, InvalidInputError

    problems = list(extra or [])
    if not regions:
        problems.append(FieldViolation("regions", "at least one region is required"))
    for i, region in enumerate(regions):
        if not region.strip():
            problems.append(FieldViolation(f"regions[{i}]", "empty"))
    if start is None:
        problems.append(FieldViolation(names[0], "required"))
    if end is None:
        problems.append(FieldViolation(names[1], "required"))
    for i, region in enumerate(regions):
        if region.strip() and not _answerable(region):
            from gridshift.forecasting.profiles import known_regions

            problems.append(FieldViolation(
                f"regions[{i}]", f"unknown region {region!r}: no provider is configured for it "
                f"and no embedded profile exists (embedded: {', '.join(known_regions())})"))
    if start is not None and end is not None:
        if end <= start:
            problems.append(FieldViolation(names[1], f"not after {names[0]}"))
        elif end - start > timedelta(hours=MAX_QUERY_HOURS):
            problems.append(FieldViolation(names[1], f"window longer than {MAX_QUERY_HOURS} h"))
    if problems:
        raise InvalidInputError(problems)


def _answerable(region: str) -> bool:
    """Whether some source could answer: a configured/credentialed provider or the profile."""
    from gridshift.forecasting.profiles import known_regions

    steps = default_chain(region)
    return region in known_regions() or any(":" in step for step in steps)


def get_forecasts(service: ForecastService, regions: list[str], start: datetime | None,
                  end: datetime | None, slot_minutes: int = 60) -> list[Forecast]:
    """Each region's series aligned to `slot_minutes` slots over [start, end), with p10/p90
    (the provider's own, or the calibrated error model's) and provenance."""
    import math

    from gridshift.forecasting.alignment import align_to_slots
    from gridshift.forecasting.uncertainty import with_quantiles
    from gridshift.optimizer.errors import FieldViolation, InvalidInputError

    _check_query(regions, start, end, ("start", "end"))
    if slot_minutes <= 0 or slot_minutes > 1440:
        raise InvalidInputError([FieldViolation("slot_minutes", "must be within 1..1440")])
    slots = math.ceil((end - start).total_seconds() / 60 / slot_minutes)
    out = []
    for region in dict.fromkeys(regions):
        native = with_quantiles(_resolve(service, region, start, slots, slot_minutes))

        def aligned(values: tuple[float, ...], native: Forecast = native) -> tuple[float, ...]:
            if not values:
                return ()
            return tuple(float(v) for v in align_to_slots(
                values, native.start, native.slot_minutes, start, slot_minutes, slots))
        out.append(replace(native, start=start, slot_minutes=slot_minutes,
                           carbon_intensity=aligned(native.carbon_intensity),
                           carbon_intensity_p10=aligned(native.carbon_intensity_p10),
                           carbon_intensity_p90=aligned(native.carbon_intensity_p90),
                           price_per_mwh=aligned(native.price_per_mwh)))
    return out


def best_windows(service: ForecastService, regions: list[str], duration_minutes: int,
                 window_start: datetime | None, window_end: datetime | None) -> Any:
    """FindBestWindow over the regions' series (forecasting.best_window)."""
    import math

    from gridshift.forecasting.best_window import find_best_window
    from gridshift.optimizer.errors import FieldViolation, InvalidInputError

    _check_query(regions, window_start, window_end, ("window_start", "window_end"),
                 [] if duration_minutes > 0 else [FieldViolation("duration_minutes",
                                                                 "must be positive")])
    if timedelta(minutes=duration_minutes) > window_end - window_start:
        raise InvalidInputError([FieldViolation(
            "duration_minutes", "longer than the window between window_start and window_end")])
    step = 5 if duration_minutes < 60 else 15
    slots = math.ceil((window_end - window_start).total_seconds() / 60 / step)
    series = {r: _resolve(service, r, window_start, slots, step) for r in dict.fromkeys(regions)}
    try:
        return find_best_window(series, duration_minutes, window_start, window_end)
    except ValueError as exc:
        raise InvalidInputError([FieldViolation("", str(exc))]) from None


def _resolve(service: ForecastService, region: str, start: datetime, slots: int,
             slot_minutes: int) -> Forecast:
    from gridshift.optimizer.errors import UpstreamUnavailableError

    try:
        return service.resolve(region, start, slots, slot_minutes)
    except LookupError as exc:
        raise UpstreamUnavailableError(f"no forecast for region {region!r}: {exc}") from None


class ForecastQueries:
    """The forecast queries bound to one ForecastService (what the gRPC servicer calls)."""

    def __init__(self, service: ForecastService) -> None:
        self.service = service

    def get_forecasts(self, regions: list[str], start: datetime | None, end: datetime | None,
                      slot_minutes: int = 60) -> list[Forecast]:
        return get_forecasts(self.service, regions, start, end, slot_minutes)

    def best_windows(self, regions: list[str], duration_minutes: int,
                     window_start: datetime | None, window_end: datetime | None) -> Any:
        return best_windows(self.service, regions, duration_minutes, window_start, window_end)


def pull_actuals(region: str, start: datetime, end: datetime,
                 config: ForecastConfig | None = None, http_factory: Any = None) -> Forecast:
    """Observed intensity of a region from the first provider of its chain whose history
    endpoint answers. Raises ForecastUnavailable listing what was tried."""
    steps = (config or ForecastConfig()).chains.get(region) or default_chain(region)
    tried = []
    for step in steps:
        provider, sep, zone = step.partition(":")
        if not sep:
            continue
        http = http_factory(provider) if http_factory else None
        try:
            return _provider(provider, region, zone or region, http).history(region, start, end)
        except (LookupError, ValueError) as exc:
            tried.append(f"{provider}: {exc}")
    raise ForecastUnavailable("actuals", region, "; ".join(tried) or
                              "no provider with a history endpoint is configured")
