"""The provider registry: every forecast provider gridshift can ask, and what the rest of the
system needs to know about it without testing names as strings.

Each :class:`ProviderSpec` says how to build the provider's adapter for some regions, how long
its answers may be cached, how far ahead it forecasts, which kind of signal it publishes
(average or marginal intensity), which settings it reads and which of them it cannot work
without, and which zone it serves a gridshift region from when no chain is configured.

The settings are plain key/value pairs (:class:`ProviderSettings`); ``gridshift.settings`` fills
them from the environment (``GRIDSHIFT_<KEY>``, e.g. ``GRIDSHIFT_EMAPS_TOKEN``) and is the only
reader of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gridshift.forecasting.series import AVERAGE, MARGINAL

__all__ = [
    "EXTRA_SETTINGS_KEYS",
    "PROVIDERS",
    "WATTTIME_ZONES",
    "ProviderSettings",
    "ProviderSpec",
    "build_provider",
    "default_chain",
    "settings_keys",
    "signal_of",
]

#: gridshift region → WattTime region (balancing-authority sub-regions).
WATTTIME_ZONES = {"US-CAL-CISO": "CAISO_NORTH", "US-TEX-ERCO": "ERCOT_OTHER",
                  "US-MIDA-PJM": "PJM_DC", "US-NW-BPAT": "BPA", "US-NY-NYIS": "NYISO_NYC",
                  "US-MIDW-MISO": "MISO_INDIANAPOLIS"}


@dataclass(frozen=True)
class ProviderSettings:
    """Credentials and base URLs of the providers, by settings key (``emaps_token``, ...).
    An empty or missing value is unset."""

    values: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:   # never the values: they hold tokens and passwords
        return f"ProviderSettings(set={sorted(k for k in self.values if self.get(k))})"

    def get(self, key: str, default: str = "") -> str:
        return (self.values.get(key) or "").strip() or default

    def has(self, *keys: str) -> bool:
        return all(self.get(key) for key in keys)


#: Builds a provider's adapter: (settings, region → zone, HTTP client or None) → adapter.
Factory = Callable[[ProviderSettings, Mapping[str, str], Any], Any]


@dataclass(frozen=True)
class ProviderSpec:
    """What gridshift knows about one forecast provider."""

    #: The name in chain steps (``electricitymaps:DE``), cache keys and TTL settings.
    name: str
    #: The name its forecasts carry in provenance (``Forecast.provider``).
    label: str
    build: Factory
    #: Seconds a cached answer is served without asking the provider again.
    ttl_s: float
    #: Hours ahead its forecasts reach; the seasonal model extends them past it.
    horizon_h: float
    #: AVERAGE or MARGINAL intensity.
    signal: str
    #: The settings keys it reads; ``required`` ones it cannot work without.
    settings_keys: tuple[str, ...]
    required: tuple[str, ...] = ()
    #: The zone it serves a region from in the default chain (None: it does not serve it).
    default_zone: Callable[[str], str | None] = lambda region: None

    def configured(self, settings: ProviderSettings) -> bool:
        return settings.has(*self.required)


def _electricitymaps(settings: ProviderSettings, zones: Mapping[str, str], http: Any) -> Any:
    from gridshift.adapters.providers.electricitymaps import DEFAULT_BASE_URL, ElectricityMaps

    return ElectricityMaps(settings.get("emaps_url", DEFAULT_BASE_URL),
                           settings.get("emaps_token"), zones, http=http)


def _watttime(settings: ProviderSettings, zones: Mapping[str, str], http: Any) -> Any:
    from gridshift.adapters.providers.watttime import DEFAULT_BASE_URL, WattTime

    return WattTime(settings.get("watttime_url", DEFAULT_BASE_URL),
                    settings.get("watttime_user"), settings.get("watttime_password"), zones,
                    http=http)


def _ukci(settings: ProviderSettings, zones: Mapping[str, str], http: Any) -> Any:
    from gridshift.adapters.providers.ukci import DEFAULT_BASE_URL, UKCarbonIntensity

    return UKCarbonIntensity(settings.get("ukci_url", DEFAULT_BASE_URL), zones, http=http)


def _uk_zone(region: str) -> str | None:
    if region == "GB":
        return "national"
    return region[3:] if region.startswith("GB-") and len(region) > 3 else None


#: The forecast providers, in the order the default chain asks them.
PROVIDERS: dict[str, ProviderSpec] = {spec.name: spec for spec in (
    ProviderSpec("electricitymaps", "electricitymaps", _electricitymaps, ttl_s=3600,
                 horizon_h=72, signal=AVERAGE, settings_keys=("emaps_token", "emaps_url"),
                 required=("emaps_token",), default_zone=lambda region: region),
    ProviderSpec("watttime", "watttime", _watttime, ttl_s=300, horizon_h=72, signal=MARGINAL,
                 settings_keys=("watttime_user", "watttime_password", "watttime_url"),
                 required=("watttime_user", "watttime_password"),
                 default_zone=WATTTIME_ZONES.get),
    ProviderSpec("ukci", "uk-carbon-intensity", _ukci, ttl_s=1800, horizon_h=48,
                 signal=AVERAGE, settings_keys=("ukci_url",), default_zone=_uk_zone),
)}

#: Settings keys of providers outside the forecast chains (on-site renewable supply).
EXTRA_SETTINGS_KEYS = ("openmeteo_url",)


def settings_keys() -> tuple[str, ...]:
    """Every provider settings key, each read from ``GRIDSHIFT_<KEY>``."""
    keys = [key for spec in PROVIDERS.values() for key in spec.settings_keys]
    return tuple(dict.fromkeys([*keys, *EXTRA_SETTINGS_KEYS]))


def default_chain(region: str, settings: ProviderSettings) -> list[str]:
    """The chain of a region with none configured: every configured provider that serves the
    region (in registry order), then the cache, then the embedded typical-day profile."""
    steps = []
    for spec in PROVIDERS.values():
        zone = spec.default_zone(region)
        if zone is not None and spec.configured(settings):
            steps.append(f"{spec.name}:{zone}")
    return [*steps, "cached", "embedded"]


def build_provider(name: str, settings: ProviderSettings, region: str, zone: str,
                   http: Any = None) -> Any:
    """The adapter of provider ``name`` serving ``region`` from ``zone``; ValueError for an
    unknown provider or one whose required settings are missing (naming them)."""
    spec = PROVIDERS.get(name)
    if spec is None:
        raise ValueError(f"unknown forecast provider {name!r} (one of {', '.join(PROVIDERS)})")
    missing = [key for key in spec.required if not settings.get(key)]
    if missing:
        raise ValueError(f"{name} is not configured: set "
                         f"{', '.join('GRIDSHIFT_' + key.upper() for key in missing)}")
    return spec.build(settings, {region: zone}, http)


def signal_of(provider_label: str) -> str:
    """The signal a stored series' provider publishes (for records written before series
    carried it); AVERAGE for anything the registry does not know."""
    for spec in PROVIDERS.values():
        if provider_label in (spec.name, spec.label):
            return spec.signal
    return AVERAGE
