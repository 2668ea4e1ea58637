"""WattTime API v3: marginal operating emissions rate (MOER) forecast and history.

Base URL ``https://api.watttime.org`` (``GRIDSHIFT_WATTTIME_URL``). Auth: ``GET /login`` with
HTTP Basic (``GRIDSHIFT_WATTTIME_USER`` / ``GRIDSHIFT_WATTTIME_PASSWORD``) returns
``{"token": ...}``; data calls send ``Authorization: Bearer <token>``. Tokens live 30 minutes:
the client logs in again after ``token_ttl_s`` (29 min) and, on a 401, logs in once more and
repeats the call; a second 401 is an authentication failure. Bad credentials on ``/login`` come
back as an nginx HTML 403. The password, the Basic header and every token are redacted from
errors and logs.

* forecast: ``GET /v3/forecast?region=&signal_type=&horizon_hours=`` (0..72) →
  ``{"data":[{point_time, value}], "meta":{units, data_point_period_seconds, generated_at,
  ...}}``; ``issued_at`` is ``meta.generated_at``. The forecast starts at the current 5-min
  interval; a window that starts earlier is completed from ``/v3/historical``.
* history: ``GET /v3/historical?region=&signal_type=&start=&end=`` (inclusive, at most 32 days:
  sent in 30-day chunks, timestamps with an explicit ``+00:00``).
* ``region_from_loc(lat, lon)``: ``GET /v3/region-from-loc``.

Units: ``meta.units`` must be known; ``lbs_co2_per_mwh`` × 0.45359237 = g/kWh (metric spellings
are accepted as-is); anything else (e.g. ``percentile`` from ``signal-index``) is rejected.
MOER is a *marginal* rate: not comparable with average intensities of other providers.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from gridshift.adapters.http import HttpClient, HttpError, basic_auth_header_value, get_logger
from gridshift.adapters.providers import (
    Clock,
    build_forecast,
    malformed,
    now_utc,
    parse_time,
    resolve_zone,
    to_value,
    utc,
    window_end,
)
from gridshift.forecasting.errors import ForecastUnavailable
from gridshift.forecasting.series import MARGINAL, Forecast

__all__ = ["DEFAULT_BASE_URL", "ENV_PASSWORD", "ENV_URL", "ENV_USER",
           "LBS_PER_MWH_TO_G_PER_KWH", "PROVIDER", "UNITS_TO_G_PER_KWH", "LoginRejected",
           "WattTime", "WattTimeClient"]

log = get_logger("gridshift.adapters.providers.watttime")

PROVIDER = "watttime"
DEFAULT_BASE_URL = "https://api.watttime.org"
ENV_URL = "GRIDSHIFT_WATTTIME_URL"
ENV_USER = "GRIDSHIFT_WATTTIME_USER"
ENV_PASSWORD = "GRIDSHIFT_WATTTIME_PASSWORD"
#: 1 lb = 453.59237 g, 1 MWh = 1000 kWh.
LBS_PER_MWH_TO_G_PER_KWH = 0.45359237
UNITS_TO_G_PER_KWH: dict[str, float] = {
    "lbs_co2_per_mwh": LBS_PER_MWH_TO_G_PER_KWH,
    "kg_co2_per_mwh": 1.0,
    "g_co2_per_kwh": 1.0,
}
MAX_HORIZON_HOURS = 72
_HISTORICAL_CHUNK = timedelta(days=30)


def _iso(t: datetime) -> str:
    return utc(t).isoformat(timespec="seconds")  # 2022-07-15T00:05:00+00:00


class LoginRejected(HttpError):
    """``/login`` refused the username and password (a credentials problem, not access)."""


class WattTimeClient:
    """Login, token refresh and the raw v3 endpoints (each returns the parsed JSON)."""

    def __init__(self, base_url: str, username: str, password: str, http: HttpClient, *,
                 token_ttl_s: float = 29 * 60) -> None:
        self.base_url = base_url.rstrip("/")
        self._username = username
        self._password = password
        self.http = http
        self.token_ttl_s = float(token_ttl_s)
        self._token: str | None = None
        self._token_at = 0.0
        self._lock = threading.Lock()
        http.add_secrets([password, basic_auth_header_value(username, password)])

    def login(self) -> None:
        """``GET /login`` with HTTP Basic; keeps the bearer token (registered as a secret)."""
        try:
            body = self.http.get_json(f"{self.base_url}/login",
                                      auth=(self._username, self._password))
        except HttpError as exc:
            if exc.status in (401, 403):
                raise LoginRejected(PROVIDER, f"login rejected: check the username and "
                                    f"password ({ENV_USER}, {ENV_PASSWORD}); {exc.reason}",
                                    status=exc.status) from None
            raise
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise HttpError(PROVIDER, "login answer has no token")
        self.http.add_secrets([token])
        self._token, self._token_at = token, time.monotonic()

    def _bearer(self, *, renew: bool = False, stale: str | None = None) -> str:
        with self._lock:
            expired = time.monotonic() - self._token_at > self.token_ttl_s
            if self._token is None or expired or (renew and self._token == stale):
                self.login()
            assert self._token is not None
            return self._token

    def get(self, path: str, params: Mapping[str, Any]) -> Any:
        """GET a data endpoint with the bearer token; on 401 log in again once and repeat."""
        token = self._bearer()
        try:
            return self._get(path, params, token)
        except HttpError as exc:
            if exc.status != 401:
                raise
            log.info("%s: token rejected (HTTP 401), logging in again", PROVIDER)
        token = self._bearer(renew=True, stale=token)
        try:
            return self._get(path, params, token)
        except HttpError as exc:
            if exc.status == 401:
                raise HttpError(PROVIDER, f"authentication failed after a fresh login "
                                f"({exc.reason})", status=401) from None
            raise

    def _get(self, path: str, params: Mapping[str, Any], token: str) -> Any:
        return self.http.get_json(f"{self.base_url}{path}", params=dict(params),
                                  headers={"Authorization": f"Bearer {token}"})

    def region_from_loc(self, latitude: float, longitude: float,
                        signal_type: str = "co2_moer") -> Any:
        """``/v3/region-from-loc``."""
        return self.get("/v3/region-from-loc", {"latitude": latitude, "longitude": longitude,
                                                "signal_type": signal_type})

    def forecast(self, region: str, signal_type: str, horizon_hours: int) -> Any:
        """``/v3/forecast`` (the most recent forecast)."""
        return self.get("/v3/forecast", {"region": region, "signal_type": signal_type,
                                         "horizon_hours": horizon_hours})

    def historical(self, region: str, signal_type: str, start: datetime, end: datetime) -> Any:
        """``/v3/historical`` (actuals, inclusive bounds, at most 32 days)."""
        return self.get("/v3/historical", {"region": region, "signal_type": signal_type,
                                           "start": _iso(start), "end": _iso(end)})


class WattTime:
    """``ForecastSource`` for WattTime v3 MOER, converted to gCO2/kWh.

    ``zones`` maps gridshift regions to WattTime regions
    (``{"US-CAL-CISO": "CAISO_NORTH"}``); ``None`` uses the region name as is.
    """

    name = PROVIDER

    def __init__(self, base_url: str = DEFAULT_BASE_URL, username: str = "",
                 password: str = "", zones: Mapping[str, str] | None = None, *,
                 http: HttpClient | None = None, clock: Clock | None = None,
                 signal_type: str = "co2_moer", token_ttl_s: float = 29 * 60) -> None:
        if not username or not password:
            raise ValueError(f"WattTime needs a username and password ({ENV_USER}, "
                             f"{ENV_PASSWORD})")
        self.zones = dict(zones) if zones is not None else None
        self.http = http if http is not None else HttpClient(PROVIDER, secrets=[password])
        self.client = WattTimeClient(base_url, username, password, self.http,
                                     token_ttl_s=token_ttl_s)
        self.clock = clock or now_utc
        self.signal_type = signal_type

    def regions(self) -> list[str]:
        """The configured gridshift regions (empty when any region name is accepted)."""
        return sorted(self.zones or {})

    def region_from_loc(self, latitude: float, longitude: float) -> str:
        """The WattTime region of a location (re-query monthly: boundaries change)."""
        where = f"({latitude:.4f}, {longitude:.4f})"
        try:
            body = self.client.region_from_loc(latitude, longitude, self.signal_type)
        except HttpError as exc:
            raise ForecastUnavailable(PROVIDER, where, exc.reason) from exc
        region = body.get("region") if isinstance(body, dict) else None
        if not isinstance(region, str) or not region:
            raise malformed(PROVIDER, where, "no 'region' in the answer")
        return region

    # -- ForecastSource --------------------------------------------------------------------
    def forecast(self, region: str, start: datetime, slots: int, slot_minutes: int) -> Forecast:
        """5-minute MOER forecast (g/kWh) covering ``[start, start + slots*slot_minutes)``."""
        wt_region = resolve_zone(PROVIDER, self.zones, region)
        start = utc(start)
        end = window_end(start, slots, slot_minutes)
        now = utc(self.clock())
        horizon = min(MAX_HORIZON_HOURS, max(1, math.ceil((end - now) / timedelta(hours=1))))
        body = self._call(region, self.client.forecast, wt_region, self.signal_type, horizon)
        factor, step, meta = self._meta(region, body)
        points = self._points(region, body, factor)
        issued_at = None
        if meta.get("generated_at"):
            try:
                issued_at = parse_time(meta["generated_at"])
            except ValueError as exc:
                raise malformed(PROVIDER, region, str(exc)) from None
        if points and min(t for t, _ in points) > start:
            first = min(t for t, _ in points)
            try:
                earlier = self._historical_points(region, wt_region, start, first)
            except ForecastUnavailable as exc:
                raise ForecastUnavailable(
                    PROVIDER, region, f"the forecast starts at {first:%Y-%m-%dT%H:%MZ}, after "
                    f"the window start, and history could not fill the gap: {exc.reason}",
                ) from exc
            points = [p for p in earlier if p[0] < first] + points
        return build_forecast(PROVIDER, region, points, step, start, end, issued_at=issued_at,
                              clock=self.clock, what="MOER", signal=MARGINAL)

    def history(self, region: str, start: datetime, end: datetime) -> Forecast:
        """Historical (actual) MOER in g/kWh over ``[start, end)``."""
        wt_region = resolve_zone(PROVIDER, self.zones, region)
        start, end = utc(start), utc(end)
        if end <= start:
            raise ValueError("history needs end > start")
        points, step = self._historical(region, wt_region, start, end)
        return build_forecast(PROVIDER, region, points, step, start, end, issued_at=None,
                              clock=self.clock, what="MOER (historical)",
                              signal=MARGINAL)

    # -- helpers ---------------------------------------------------------------------------
    def _historical_points(self, region: str, wt_region: str, start: datetime,
                           end: datetime) -> list[tuple[datetime, float]]:
        return self._historical(region, wt_region, start, end)[0]

    def _historical(self, region: str, wt_region: str, start: datetime,
                    end: datetime) -> tuple[list[tuple[datetime, float]], int]:
        points: list[tuple[datetime, float]] = []
        step = 5
        cursor = start - timedelta(hours=1)  # the interval that contains `start`
        while cursor < end:
            chunk_end = min(end, cursor + _HISTORICAL_CHUNK)
            # Inclusive bounds: stop one second short so chunks do not overlap.
            body = self._call(region, self.client.historical, wt_region, self.signal_type,
                              cursor, chunk_end - timedelta(seconds=1))
            factor, step, _ = self._meta(region, body)
            points.extend(self._points(region, body, factor))
            cursor = chunk_end
        return points, step

    def _call(self, region: str, method: Any, *args: Any) -> dict[str, Any]:
        try:
            body = method(*args)
        except HttpError as exc:
            reason = exc.reason
            if exc.status == 403 and not isinstance(exc, LoginRejected):
                reason = f"no access to this region/signal with this plan ({reason})"
            raise ForecastUnavailable(PROVIDER, region, reason) from exc
        if not isinstance(body, dict):
            raise malformed(PROVIDER, region, "the answer is not a JSON object")
        return body

    @staticmethod
    def _meta(region: str, body: Mapping[str, Any]) -> tuple[float, int, Mapping[str, Any]]:
        meta = body.get("meta")
        if not isinstance(meta, Mapping):
            raise malformed(PROVIDER, region, "no 'meta' object")
        units = meta.get("units")
        factor = UNITS_TO_G_PER_KWH.get(str(units).lower()) if units is not None else None
        if factor is None:
            raise ForecastUnavailable(
                PROVIDER, region,
                f"unexpected units {units!r} (expected one of {sorted(UNITS_TO_G_PER_KWH)})")
        period_s = meta.get("data_point_period_seconds", 300)
        if (isinstance(period_s, bool) or not isinstance(period_s, int | float)
                or period_s <= 0 or period_s % 60):
            raise malformed(PROVIDER, region, f"data_point_period_seconds={period_s!r}")
        for warning in meta.get("warnings") or ():
            log.info("%s: warning for %s: %s", PROVIDER, region, warning)
        return factor, int(period_s // 60), meta

    @staticmethod
    def _points(region: str, body: Mapping[str, Any],
                factor: float) -> list[tuple[datetime, float]]:
        data = body.get("data")
        if data is None:
            raise ForecastUnavailable(PROVIDER, region, "no 'data' in the answer")
        if not isinstance(data, list):
            raise malformed(PROVIDER, region, "'data' is not a list")
        if not data:
            raise ForecastUnavailable(PROVIDER, region, "empty 'data' list in the answer")
        points = []
        try:
            for item in data:
                points.append((parse_time(item["point_time"]), to_value(item["value"]) * factor))
        except (KeyError, TypeError, ValueError) as exc:
            raise malformed(PROVIDER, region, f"bad data point ({exc})") from None
        return points

    def close(self) -> None:
        """Release the HTTP connections."""
        self.http.close()
