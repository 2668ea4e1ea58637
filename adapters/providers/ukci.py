"""NESO UK Carbon Intensity API (no key): national, region id and postcode series.

Endpoints used (base ``https://api.carbonintensity.org.uk``, ``GRIDSHIFT_UKCI_URL``):

* forecast: ``/intensity/{from}/fw48h`` (national) and
  ``/regional/intensity/{from}/fw48h/{regionid|postcode}/{id}``; a window past 48 h chains
  calls from the end of the previous answer and de-duplicates on ``from``.
* history: ``/intensity/{from}/pt24h`` (window of at most 24 h ending at ``from``) or
  ``/intensity/{from}/{to}`` in chunks of at most 13 days (the API caps ranges at 14), and the
  same under ``/regional/intensity/.../{regionid|postcode}/{id}``.

Values are gCO2/kWh per half-hour settlement period ``[from, to)`` (UTC). A query time is sent
as ``YYYY-MM-DDThh:mmZ`` one minute after the period start, because the API returns the
earliest period with ``to >= from`` first. National history uses ``intensity.actual``
(null for the last periods, which become gaps); the regional endpoints publish no actuals, so
regional ``history`` returns the last published *forecast* for each period (documented
behaviour of the API, not a substitution this adapter makes silently elsewhere).

The time-range single-region answers carry ``data`` as an object (the docs show an array);
both are accepted. A 200 ``{}`` (seen during outages) is "no data".
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from gridshift.adapters.http import HttpClient, HttpError, get_logger
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
from gridshift.forecasting.series import Forecast

__all__ = ["DEFAULT_BASE_URL", "ENV_URL", "PROVIDER", "UKCarbonIntensity",
           "UKCarbonIntensityClient", "UKZone"]

log = get_logger("gridshift.adapters.providers.ukci")

PROVIDER = "uk-carbon-intensity"
DEFAULT_BASE_URL = "https://api.carbonintensity.org.uk"
ENV_URL = "GRIDSHIFT_UKCI_URL"
PERIOD = timedelta(minutes=30)
_FW48H_SPAN = timedelta(hours=47)  # usable span of one fw48h answer (cats caps at 47 h)
_RANGE_CHUNK = timedelta(days=13)  # the API limits {from}/{to} to 14 days
_POSTCODE_RE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]?$")
Window = Literal["fw24h", "fw48h", "pt24h"]


@dataclass(frozen=True)
class UKZone:
    """Where a UK series comes from: ``national``, a region id (1-18) or an outward postcode."""

    kind: Literal["national", "regionid", "postcode"]
    value: str = ""

    @classmethod
    def parse(cls, spec: str) -> UKZone:
        """``"national"``, ``"13"`` (region id) or ``"RG10"``/``"RG10 1AA"`` (outward code used).

        ``"regionid:13"`` and ``"postcode:RG10"`` are accepted too. Raises ValueError.
        """
        text = str(spec).strip()
        kind, _, rest = text.partition(":")
        if rest and kind.lower() in ("regionid", "postcode"):
            text = rest.strip()
            forced = kind.lower()
        else:
            forced = ""
        if not forced and text.lower() in ("national", "gb-national"):
            return cls("national")
        if forced == "regionid" or (not forced and text.isdigit()):
            if not text.isdigit() or not 1 <= int(text) <= 18:
                raise ValueError(f"UK Carbon Intensity region id must be 1-18, got {spec!r}")
            return cls("regionid", str(int(text)))
        outward = text.upper().split()[0] if text.split() else ""
        if not _POSTCODE_RE.match(outward):
            raise ValueError(f"not 'national', a region id (1-18) or an outward postcode: "
                             f"{spec!r}")
        return cls("postcode", outward)

    def path_suffix(self) -> str:
        """``/regionid/13`` or ``/postcode/RG10`` (empty for national)."""
        return "" if self.kind == "national" else f"/{self.kind}/{self.value}"


def _q(t: datetime) -> str:
    return utc(t).strftime("%Y-%m-%dT%H:%MZ")


class UKCarbonIntensityClient:
    """The raw endpoints; each returns the list of half-hour period objects of the answer."""

    def __init__(self, base_url: str, http: HttpClient) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http

    def window(self, zone: UKZone, from_: datetime, window: Window) -> list[dict[str, Any]]:
        """``{from}/fw24h|fw48h|pt24h`` for the zone (``from_`` sent at minute precision)."""
        if zone.kind == "national":
            url = f"{self.base_url}/intensity/{_q(from_)}/{window}"
        else:
            url = f"{self.base_url}/regional/intensity/{_q(from_)}/{window}{zone.path_suffix()}"
        return self._periods(zone, self.http.get_json(url))

    def range(self, zone: UKZone, from_: datetime, to: datetime) -> list[dict[str, Any]]:
        """``{from}/{to}`` for the zone (at most 14 days)."""
        if zone.kind == "national":
            url = f"{self.base_url}/intensity/{_q(from_)}/{_q(to)}"
        else:
            url = f"{self.base_url}/regional/intensity/{_q(from_)}/{_q(to)}{zone.path_suffix()}"
        return self._periods(zone, self.http.get_json(url))

    @staticmethod
    def _periods(zone: UKZone, body: Any) -> list[dict[str, Any]]:
        if not isinstance(body, dict):
            raise ValueError("the answer is not a JSON object")
        data = body.get("data")
        if data is None:
            return []  # 200 {} during outages: no data
        if zone.kind == "national":
            if not isinstance(data, list):
                raise ValueError("'data' is not a list")
            return data
        # Single region: 'data' is an object (real API) or a one-element array (the docs).
        if isinstance(data, list):
            if not data:
                return []
            data = data[0]
        if not isinstance(data, dict):
            raise ValueError("'data' is not an object")
        periods = data.get("data")
        if periods is None:
            return []
        if not isinstance(periods, list):
            raise ValueError("'data.data' is not a list")
        return periods


class UKCarbonIntensity:
    """``ForecastSource`` for the UK Carbon Intensity API.

    ``zones`` maps gridshift regions to ``"national"``, a region id (``"13"``) or an outward
    postcode (``"RG10"``), e.g. ``{"GB": "national", "GB-LON": "13"}``. Default:
    ``{"GB": "national"}``.
    """

    name = PROVIDER

    def __init__(self, base_url: str = DEFAULT_BASE_URL,
                 zones: Mapping[str, str] | None = None, *, http: HttpClient | None = None,
                 clock: Clock | None = None) -> None:
        self.zones = dict(zones) if zones is not None else {"GB": "national"}
        self._parsed = {region: UKZone.parse(spec) for region, spec in self.zones.items()}
        self.http = http if http is not None else HttpClient(PROVIDER)
        self.client = UKCarbonIntensityClient(base_url, self.http)
        self.clock = clock or now_utc

    def regions(self) -> list[str]:
        """The gridshift regions this source serves."""
        return sorted(self.zones)

    # -- ForecastSource --------------------------------------------------------------------
    def forecast(self, region: str, start: datetime, slots: int, slot_minutes: int) -> Forecast:
        """Half-hourly forecast (gCO2/kWh) covering ``[start, start + slots*slot_minutes)``."""
        zone = self._zone(region)
        start = utc(start)
        end = window_end(start, slots, slot_minutes)
        points: list[tuple[datetime, float]] = []
        cursor = start
        max_calls = math.ceil((end - start) / _FW48H_SPAN) + 2
        for _ in range(max_calls):
            periods = self._call(region, self.client.window, zone,
                                 cursor.replace(second=0, microsecond=0) + timedelta(minutes=1),
                                 "fw48h")
            batch = self._points(region, periods, "forecast")
            if not batch:
                break
            points.extend(batch)
            covered_to = max(t for t, _ in batch) + PERIOD
            if covered_to >= end or covered_to <= cursor:
                break
            cursor = covered_to
        return build_forecast(PROVIDER, region, points, 30, start, end, issued_at=None,
                              clock=self.clock)

    def history(self, region: str, start: datetime, end: datetime) -> Forecast:
        """Half-hourly actuals (national ``actual``; regional: last published forecast)."""
        zone = self._zone(region)
        start, end = utc(start), utc(end)
        if end <= start:
            raise ValueError("history needs end > start")
        field = "actual" if zone.kind == "national" else "forecast"
        points: list[tuple[datetime, float]] = []
        if end - start <= timedelta(hours=24):
            # pt24h from `end`: the 24 h before it (sent rounded up to the minute).
            query = end if end == end.replace(second=0, microsecond=0) else (
                end.replace(second=0, microsecond=0) + timedelta(minutes=1))
            points = self._points(region, self._call(region, self.client.window, zone, query,
                                                     "pt24h"), field)
        else:
            cursor = start
            while cursor < end:
                chunk_end = min(end, cursor + _RANGE_CHUNK)
                points.extend(self._points(region, self._call(
                    region, self.client.range, zone,
                    cursor.replace(second=0, microsecond=0) + timedelta(minutes=1), chunk_end),
                    field))
                cursor = chunk_end
        return build_forecast(PROVIDER, region, points, 30, start, end, issued_at=None,
                              clock=self.clock, what=f"carbon intensity ({field})")

    # -- helpers ---------------------------------------------------------------------------
    def _zone(self, region: str) -> UKZone:
        spec = resolve_zone(PROVIDER, self.zones, region)
        return self._parsed.get(region) or UKZone.parse(spec)

    def _call(self, region: str, method: Any, *args: Any) -> list[dict[str, Any]]:
        try:
            return method(*args)
        except HttpError as exc:
            raise ForecastUnavailable(PROVIDER, region, exc.reason) from exc
        except ValueError as exc:
            raise malformed(PROVIDER, region, str(exc)) from None

    @staticmethod
    def _points(region: str, periods: list[dict[str, Any]],
                field: str) -> list[tuple[datetime, float]]:
        points: list[tuple[datetime, float]] = []
        try:
            for period in periods:
                t0, t1 = parse_time(period["from"]), parse_time(period["to"])
                if t1 - t0 != PERIOD:
                    raise ValueError(f"period {period['from']}..{period['to']} is not 30 min")
                intensity = period["intensity"]
                value = to_value(intensity.get(field))
                points.append((t0, value))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise malformed(PROVIDER, region, f"bad period object ({exc})") from None
        return points

    def close(self) -> None:
        """Release the HTTP connections."""
        self.http.close()
