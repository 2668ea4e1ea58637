"""On-site renewable supply for sites that give their plant (``solar_kwp``, ``wind_kw``) but not
a per-slot ``renewable_kw``: Open-Meteo weather through the PV and wind models when its URL is
set (``GRIDSHIFT_OPENMETEO_URL``), else the embedded solar capacity-factor profile of the site's
region, labelled a fallback (no wind)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from gridshift.adapters.providers.registry import ProviderSettings
from gridshift.forecasting.profiles import typical_solar_cf
from gridshift.forecasting.series import Forecast

__all__ = ["SiteSupply"]


class SiteSupply:
    """Fills the renewable supply of a request's sites (see the module docstring)."""

    def __init__(self, providers: ProviderSettings | None = None,
                 http_factory: Callable[[str], Any] | None = None) -> None:
        self.providers = providers or ProviderSettings()
        self._http_factory = http_factory

    def fill(self, request: Any) -> tuple[Any, list[Forecast]]:
        """The request with ``renewable_kw`` filled for sites that had only their plant, and a
        provenance entry per filled site (region ``site:<id>/renewable_kw``)."""
        h = request.horizon
        sites, notes = [], []
        for site in request.sites:
            if site.renewable_kw or (site.solar_kwp <= 0 and site.wind_kw <= 0):
                sites.append(site)
                continue
            values, provider, fallback, detail = self._supply_kw(site, h)
            sites.append(replace(site, renewable_kw=tuple(float(v) for v in values)))
            notes.append(Forecast(region=f"site:{site.id}/renewable_kw", start=h.start,
                                  slot_minutes=h.slot_minutes, carbon_intensity=(),
                                  provider=provider, issued_at=datetime.now(UTC),
                                  fallback=fallback, detail=detail))
        return replace(request, sites=tuple(sites)), notes

    def _supply_kw(self, site: Any, h: Any) -> tuple[np.ndarray, str, bool, str]:
        tried = []
        url = self.providers.get("openmeteo_url")
        if url:
            from gridshift.adapters.providers.openmeteo import OpenMeteoRenewables

            http = self._http_factory("open-meteo") if self._http_factory else None
            try:
                source = OpenMeteoRenewables(url, http=http)
                values = source.renewable_kw(site.latitude, site.longitude, h.start, h.slots,
                                             h.slot_minutes, site.solar_kwp, site.wind_kw)
                return values, "open-meteo", False, "PV and wind power-curve models on weather"
            except (LookupError, ValueError) as exc:
                tried.append(f"open-meteo: {exc}")
        try:
            cf = typical_solar_cf(site.region, h.start, h.slots, h.slot_minutes)
            detail = "embedded typical solar capacity factor x solar_kwp; wind not modelled"
        except KeyError:
            cf = np.zeros(h.slots)
            detail = f"no solar profile for region {site.region!r}: supply taken as 0 kW"
        return (site.solar_kwp * cf, "embedded-typical-profile", True,
                "; ".join([*tried, detail]))
