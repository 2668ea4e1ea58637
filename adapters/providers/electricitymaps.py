"""Electricity Maps API v3: carbon-intensity forecast and history (``auth-token`` header).

Base URL (``GRIDSHIFT_EMAPS_URL``) defaults to ``https://api.electricitymaps.com/v3``; older docs
and clients use ``https://api.electricitymap.org/v3``; both are documented, so it is
configurable. The token (``GRIDSHIFT_EMAPS_TOKEN``) goes in the ``auth-token`` header only and is
redacted from every error and log line; it is stripped if a redirect leaves the host.

* forecast: ``GET /carbon-intensity/forecast?zone=`` → ``{"zone","forecast":[{carbonIntensity,
  datetime}],"updatedAt"}``; ``issued_at`` is ``updatedAt``. ``horizonHours`` is sent only
  when the window needs more than the default 24 h, picked from ``horizon_hours_choices``
  (default 24/48/72; the accepted values are [UNVERIFIED], hence configurable). The forecast
  starts at the current or next hour ([UNVERIFIED]); a window that starts earlier is completed
  from history (actuals and EM's own estimates for the current hour).
* history: ``GET /carbon-intensity/history?zone=`` (the last 24 h) when the window lies in it,
  else ``GET /carbon-intensity/past-range?zone=&start=&end=`` in chunks of at most 9 days
  (the API caps it at 10 days hourly).

Values are gCO2eq/kWh, hourly by default; ``datetime`` is taken as the period start (as every
client does). A ``unit``/``units`` field, if a response carries one, must be a gCO2eq/kWh
spelling; values beyond :data:`~adapters.providers.MAX_PLAUSIBLE_G_PER_KWH` are rejected as a
unit error. A 401/403 is reported as a rejected token (it is never retried: a new token is
needed), 429 and 5xx are retried with backoff.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from gridshift.adapters.http import HttpClient, HttpError, get_logger
from gridshift.adapters.providers import (
    Clock,
    build_forecast,
    malformed,
    now_utc,
    parse_time,
    resolve_zone,
    step_minutes_of,
    to_value,
    utc,
    window_end,
)
from gridshift.forecasting.errors import ForecastUnavailable
from gridshift.forecasting.series import Forecast

__all__ = ["DEFAULT_BASE_URL", "ENV_TOKEN", "ENV_URL", "PROVIDER", "ElectricityMaps",
           "ElectricityMapsClient"]

log = get_logger("gridshift.adapters.providers.electricitymaps")

PROVIDER = "electricitymaps"
DEFAULT_BASE_URL = "https://api.electricitymaps.com/v3"
ENV_URL = "GRIDSHIFT_EMAPS_URL"
ENV_TOKEN = "GRIDSHIFT_EMAPS_TOKEN"
TOKEN_HEADER = "auth-token"
_PAST_RANGE_CHUNK = timedelta(days=9)
_HISTORY_SPAN = timedelta(hours=23)
G_PER_KWH_UNITS = frozenset({"gco2eq/kwh", "gco2e/kwh", "gco2/kwh", "g/kwh"})


def _iso(t: datetime) -> str:
    return utc(t).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class ElectricityMapsClient:
    """The raw v3 endpoints used here; each returns the parsed JSON object."""

    def __init__(self, base_url: str, token: str, http: HttpClient, *,
                 emission_factor_type: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.http = http
        self.emission_factor_type = emission_factor_type
        http.add_secrets([token])
        http.add_sensitive_headers([TOKEN_HEADER])

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        if self.emission_factor_type:
            params = {**params, "emissionFactorType": self.emission_factor_type}
        return self.http.get_json(f"{self.base_url}{path}", params=params,
                                  headers={TOKEN_HEADER: self._token})

    def forecast(self, zone: str, horizon_hours: int | None = None) -> Any:
        """``/carbon-intensity/forecast``."""
        params: dict[str, Any] = {"zone": zone}
        if horizon_hours is not None:
            params["horizonHours"] = horizon_hours
        return self._get("/carbon-intensity/forecast", params)

    def history(self, zone: str) -> Any:
        """``/carbon-intensity/history`` (the last 24 h)."""
        return self._get("/carbon-intensity/history", {"zone": zone})

    def past_range(self, zone: str, start: datetime, end: datetime) -> Any:
        """``/carbon-intensity/past-range`` (at most 10 days hourly)."""
        return self._get("/carbon-intensity/past-range",
                         {"zone": zone, "start": _iso(start), "end": _iso(end)})

    def latest(self, zone: str) -> Any:
        """``/carbon-intensity/latest``."""
        return self._get("/carbon-intensity/latest", {"zone": zone})


class ElectricityMaps:
    """``ForecastSource`` for Electricity Maps v3.

    ``zones`` maps gridshift regions to zone keys (``{"DE": "DE", "GB-NIR": "GB-NIR"}``);
    ``None`` uses the region name as the zone key.
    """

    name = PROVIDER

    def __init__(self, base_url: str = DEFAULT_BASE_URL, token: str = "",
                 zones: Mapping[str, str] | None = None, *, http: HttpClient | None = None,
                 clock: Clock | None = None, emission_factor_type: str | None = None,
                 horizon_hours_choices: Sequence[int] = (24, 48, 72)) -> None:
        if not token:
            raise ValueError(f"Electricity Maps needs an API token ({ENV_TOKEN})")
        self.zones = dict(zones) if zones is not None else None
        self.http = http if http is not None else HttpClient(PROVIDER, secrets=[token])
        self.client = ElectricityMapsClient(base_url, token, self.http,
                                            emission_factor_type=emission_factor_type)
        self.clock = clock or now_utc
        self.horizon_hours_choices = tuple(sorted(horizon_hours_choices))

    def regions(self) -> list[str]:
        """The configured gridshift regions (empty when any region name is accepted)."""
        return sorted(self.zones or {})

    # -- ForecastSource --------------------------------------------------------------------
    def forecast(self, region: str, start: datetime, slots: int, slot_minutes: int) -> Forecast:
        """Hourly forecast (gCO2eq/kWh) covering ``[start, start + slots*slot_minutes)``."""
        zone = resolve_zone(PROVIDER, self.zones, region)
        start = utc(start)
        end = window_end(start, slots, slot_minutes)
        now = utc(self.clock())
        body = self._call(region, self.client.forecast, zone, self._horizon_hours(now, end))
        items = self._items(region, body, "forecast")
        points = self._points(region, items)
        issued_at = self._time(region, body.get("updatedAt")) if body.get("updatedAt") else None
        step = self._step(region, points)
        if points and min(t for t, _ in points) > start:
            # The forecast begins at the current/next hour: complete the window from history.
            first = min(t for t, _ in points)
            try:
                earlier = self._history_points(region, zone, start, first, now)
            except ForecastUnavailable as exc:
                raise ForecastUnavailable(
                    PROVIDER, region, f"the forecast starts at {first:%Y-%m-%dT%H:%MZ}, after "
                    f"the window start, and history could not fill the gap: {exc.reason}",
                ) from exc
            points = [p for p in earlier if p[0] < first] + points
        return build_forecast(PROVIDER, region, points, step, start, end,
                              issued_at=issued_at, clock=self.clock)

    def history(self, region: str, start: datetime, end: datetime) -> Forecast:
        """Hourly actuals (gCO2eq/kWh; EM's estimates where it has no measurement)."""
        zone = resolve_zone(PROVIDER, self.zones, region)
        start, end = utc(start), utc(end)
        if end <= start:
            raise ValueError("history needs end > start")
        points = self._history_points(region, zone, start, end, utc(self.clock()))
        return build_forecast(PROVIDER, region, points, self._step(region, points), start, end,
                              issued_at=None, clock=self.clock, what="carbon intensity (history)")

    # -- helpers ---------------------------------------------------------------------------
    def _horizon_hours(self, now: datetime, end: datetime) -> int | None:
        hour = now.replace(minute=0, second=0, microsecond=0)
        needed = math.ceil((end - hour) / timedelta(hours=1))
        if needed <= 24 or not self.horizon_hours_choices:
            return None
        for choice in self.horizon_hours_choices:
            if choice >= needed:
                return choice
        return self.horizon_hours_choices[-1]

    def _history_points(self, region: str, zone: str, start: datetime, end: datetime,
                        now: datetime) -> list[tuple[datetime, float]]:
        if start >= now - _HISTORY_SPAN:
            body = self._call(region, self.client.history, zone)
            return self._points(region, self._items(region, body, "history"))
        points: list[tuple[datetime, float]] = []
        cursor = start - timedelta(hours=1)  # the hour that contains `start`
        while cursor < end:
            chunk_end = min(end, cursor + _PAST_RANGE_CHUNK)
            body = self._call(region, self.client.past_range, zone, cursor, chunk_end)
            points.extend(self._points(region, self._items(region, body, "data")))
            cursor = chunk_end
        return points

    def _call(self, region: str, method: Any, *args: Any) -> dict[str, Any]:
        try:
            body = method(*args)
        except HttpError as exc:
            reason = exc.reason
            if exc.status in (401, 403):
                reason = f"auth-token rejected or not allowed for this zone ({reason})"
            raise ForecastUnavailable(PROVIDER, region, reason) from exc
        if not isinstance(body, dict):
            raise malformed(PROVIDER, region, "the answer is not a JSON object")
        self._check_unit(region, body)
        return body

    @staticmethod
    def _check_unit(region: str, obj: Mapping[str, Any]) -> None:
        for key in ("unit", "units"):
            unit = obj.get(key)
            if isinstance(unit, Mapping):
                unit = unit.get("carbonIntensity")
            if unit is not None and str(unit).replace(" ", "").lower() not in G_PER_KWH_UNITS:
                raise ForecastUnavailable(PROVIDER, region,
                                          f"unexpected unit {unit!r} (expected gCO2eq/kWh)")

    @staticmethod
    def _items(region: str, body: Mapping[str, Any], key: str) -> list[Any]:
        items = body.get(key)
        if items is None:
            raise ForecastUnavailable(PROVIDER, region, f"no '{key}' data in the answer")
        if not isinstance(items, list):
            raise malformed(PROVIDER, region, f"'{key}' is not a list")
        if not items:
            raise ForecastUnavailable(PROVIDER, region, f"empty '{key}' list in the answer")
        return items

    def _points(self, region: str, items: list[Any]) -> list[tuple[datetime, float]]:
        points = []
        try:
            for item in items:
                self._check_unit(region, item)
                points.append((parse_time(item["datetime"]), to_value(item["carbonIntensity"])))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise malformed(PROVIDER, region, f"bad carbon-intensity item ({exc})") from None
        return points

    @staticmethod
    def _time(region: str, text: Any) -> datetime:
        try:
            return parse_time(text)
        except ValueError as exc:
            raise malformed(PROVIDER, region, str(exc)) from None

    @staticmethod
    def _step(region: str, points: list[tuple[datetime, float]]) -> int:
        try:
            return step_minutes_of((t for t, _ in points), default=60)
        except ValueError as exc:
            raise malformed(PROVIDER, region, str(exc)) from None

    def close(self) -> None:
        """Release the HTTP connections."""
        self.http.close()
