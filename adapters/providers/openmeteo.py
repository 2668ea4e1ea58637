"""Open-Meteo forecast API → a site's on-site renewable supply in kW.

``GET {base}/forecast`` (base ``https://api.open-meteo.com/v1``, ``GRIDSHIFT_OPENMETEO_URL``; no
key) with ``hourly=shortwave_radiation,temperature_2m,wind_speed_100m``, ``wind_speed_unit=ms``,
``timezone=GMT`` and ``start_date``/``end_date`` covering the window.

Time semantics (documented by Open-Meteo): ``shortwave_radiation`` (GHI, W/m²) at ``T`` is the
mean over the *preceding* hour ``[T-1h, T)``; ``temperature_2m`` and ``wind_speed_100m`` are
instantaneous at ``T``. So hour ``[T-1h, T)`` gets PV power from ``GHI(T)`` at the mean of the
two temperatures, and wind power as the mean of the power curve at both ends (the curve is
non-linear, so powers are averaged, not speeds). Local ``time`` strings are shifted by
``utc_offset_seconds``; ``timeformat=unixtime`` answers are accepted too.

Units are read from ``hourly_units``, never assumed: GHI must be W/m²; wind in m/s, km/h, mph
or kn is converted to m/s; temperature °C or °F is converted to °C; anything else (or
``"undefined"``, a variable the model lacks) is rejected with ForecastUnavailable.

The power models are the pure functions of ``forecasting.renewables``
(``pv_power_kw(ghi_w_m2, temp_air_c, kwp)`` and ``wind_power_kw(wind_speed_m_s, rated_kw)``);
other callables with the same signatures can be passed in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from gridshift.adapters.http import HttpClient, HttpError, get_logger
from gridshift.adapters.providers import MAX_MISSING_FRACTION, utc, window_end
from gridshift.forecasting.alignment import align_to_slots
from gridshift.forecasting.errors import ForecastUnavailable

__all__ = ["DEFAULT_BASE_URL", "ENV_URL", "PROVIDER", "HourlyWeather", "OpenMeteoClient",
           "OpenMeteoRenewables"]

log = get_logger("gridshift.adapters.providers.openmeteo")

PROVIDER = "open-meteo"
DEFAULT_BASE_URL = "https://api.open-meteo.com/v1"
ENV_URL = "GRIDSHIFT_OPENMETEO_URL"
VARIABLES = ("shortwave_radiation", "temperature_2m", "wind_speed_100m")
_HOUR = timedelta(hours=1)
_GHI_UNITS = frozenset({"w/m²", "w/m2", "w m-2"})
_WIND_TO_M_S = {"m/s": 1.0, "ms": 1.0, "km/h": 1 / 3.6, "kmh": 1 / 3.6, "mph": 0.44704,
                "mp/h": 0.44704, "kn": 0.514444, "kt": 0.514444, "knots": 0.514444}

PvModel = Callable[[np.ndarray, np.ndarray | None, float], np.ndarray]
WindModel = Callable[[np.ndarray, float], np.ndarray]


@dataclass(frozen=True)
class HourlyWeather:
    """Hourly weather at a site. ``time[i]`` is the UTC instant of sample ``i``; GHI is the
    mean over ``[time[i] - 1h, time[i])``, temperature and wind speed are instantaneous."""

    time: tuple[datetime, ...]
    ghi_w_m2: np.ndarray
    temp_air_c: np.ndarray | None
    wind_speed_m_s: np.ndarray


class OpenMeteoClient:
    """The raw ``/forecast`` endpoint."""

    def __init__(self, base_url: str, http: HttpClient) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http

    def hourly(self, latitude: float, longitude: float, variables: tuple[str, ...],
               start_date: str, end_date: str) -> Any:
        """Hourly variables (UTC, wind in m/s) for whole days ``start_date..end_date``."""
        params = {"latitude": f"{latitude:.5f}", "longitude": f"{longitude:.5f}",
                  "hourly": ",".join(variables), "wind_speed_unit": "ms",
                  "temperature_unit": "celsius", "timezone": "GMT",
                  "start_date": start_date, "end_date": end_date}
        return self.http.get_json(f"{self.base_url}/forecast", params=params)


class OpenMeteoRenewables:
    """On-site renewable supply (kW) of a site from Open-Meteo's hourly forecast."""

    name = PROVIDER

    def __init__(self, base_url: str = DEFAULT_BASE_URL, *, http: HttpClient | None = None,
                 pv_model: PvModel | None = None, wind_model: WindModel | None = None) -> None:
        self.http = http if http is not None else HttpClient(PROVIDER)
        self.client = OpenMeteoClient(base_url, self.http)
        self._pv_model = pv_model
        self._wind_model = wind_model

    # -- weather ---------------------------------------------------------------------------
    def weather(self, latitude: float, longitude: float, start: datetime,
                end: datetime) -> HourlyWeather:
        """Hourly GHI (W/m²), temperature (°C) and 100 m wind (m/s) whose intervals cover
        ``[start, end)``: samples from the hour ending after ``start`` to the one ending at
        or after ``end``."""
        where = _where(latitude, longitude)
        start, end = utc(start), utc(end)
        last_needed = _ceil_hour(end)
        try:
            body = self.client.hourly(latitude, longitude, VARIABLES,
                                      start.date().isoformat(), last_needed.date().isoformat())
        except HttpError as exc:
            raise ForecastUnavailable(PROVIDER, where, exc.reason) from exc
        return _parse_hourly(where, body)

    def renewable_kw(self, site_lat: float, site_lon: float, start: datetime, slots: int,
                     slot_minutes: int, solar_kwp: float, wind_kw: float) -> np.ndarray:
        """Mean renewable power (kW) available in each slot: PV of ``solar_kwp`` kWp plus a
        wind turbine of ``wind_kw`` rated kW at the site. Shape ``(slots,)``."""
        if solar_kwp < 0 or wind_kw < 0:
            raise ValueError("solar_kwp and wind_kw must be >= 0")
        start = utc(start)
        end = window_end(start, slots, slot_minutes)
        if solar_kwp == 0 and wind_kw == 0:
            return np.zeros(slots)
        where = _where(site_lat, site_lon)
        wx = self.weather(site_lat, site_lon, start, end)
        n = len(wx.time)
        total = np.zeros(n)
        if solar_kwp > 0:
            temp = None
            if wx.temp_air_c is not None:
                prev = np.concatenate([wx.temp_air_c[:1], wx.temp_air_c[:-1]])
                temp = np.where(np.isfinite(prev), (prev + wx.temp_air_c) / 2, wx.temp_air_c)
            pv = self._model_output(where, "pv", self._pv()(wx.ghi_w_m2, temp, float(solar_kwp)),
                                    n, wx.ghi_w_m2)
            total = total + pv
        if wind_kw > 0:
            at_t = self._model_output(where, "wind",
                                      self._wind()(wx.wind_speed_m_s, float(wind_kw)), n,
                                      wx.wind_speed_m_s)
            prev = np.concatenate([at_t[:1], at_t[:-1]])
            wind = np.where(np.isfinite(prev), (prev + at_t) / 2, at_t)
            total = total + wind
        series_start = wx.time[0] - _HOUR  # sample i covers [time[i] - 1h, time[i])
        try:
            out = align_to_slots(total, series_start, 60, start, slot_minutes, slots)
        except ValueError as exc:
            raise ForecastUnavailable(PROVIDER, where, f"weather series: {exc}") from None
        return np.clip(out, 0.0, None)

    # -- helpers ---------------------------------------------------------------------------
    def _pv(self) -> PvModel:
        if self._pv_model is None:
            from gridshift.forecasting.renewables import pv_power_kw

            self._pv_model = pv_power_kw
        return self._pv_model

    def _wind(self) -> WindModel:
        if self._wind_model is None:
            from gridshift.forecasting.renewables import wind_power_kw

            self._wind_model = wind_power_kw
        return self._wind_model

    @staticmethod
    def _model_output(where: str, what: str, out: Any, n: int, inputs: np.ndarray) -> np.ndarray:
        arr = np.asarray(out, dtype=float)
        if arr.shape != (n,):
            raise ValueError(f"{what} model returned shape {arr.shape}, expected ({n},)")
        # NaN in → NaN out (a gap the alignment fills); NaN from finite inputs is a model bug.
        arr = np.where(np.isfinite(inputs), arr, np.nan)
        if np.any(arr[np.isfinite(arr)] < -1e-9):
            raise ValueError(f"{what} model returned negative power at {where}")
        return arr

    def close(self) -> None:
        """Release the HTTP connections."""
        self.http.close()


def _where(latitude: float, longitude: float) -> str:
    return f"site ({latitude:.4f}, {longitude:.4f})"


def _ceil_hour(t: datetime) -> datetime:
    floor = t.replace(minute=0, second=0, microsecond=0)
    return floor if floor == t else floor + _HOUR


def _parse_hourly(where: str, body: Any) -> HourlyWeather:
    if not isinstance(body, Mapping):
        raise ForecastUnavailable(PROVIDER, where, "malformed response: not a JSON object")
    hourly, units = body.get("hourly"), body.get("hourly_units")
    if not isinstance(hourly, Mapping) or not isinstance(units, Mapping):
        raise ForecastUnavailable(PROVIDER, where, "no 'hourly' data in the answer")
    times, columns = _columns(where, body, hourly)
    ghi, wind, temp_c = _in_si_units(where, units, columns)
    _check_plausible(where, ghi, wind)
    return HourlyWeather(time=tuple(times), ghi_w_m2=ghi, temp_air_c=temp_c, wind_speed_m_s=wind)


def _columns(where: str, body: Mapping, hourly: Mapping,
             ) -> tuple[list[datetime], dict[str, np.ndarray]]:
    """The hourly UTC times and each variable's values (NaN for null)."""
    try:
        offset = timedelta(seconds=float(body.get("utc_offset_seconds") or 0))
        times = [_sample_time(raw, offset) for raw in hourly["time"]]
        if not times:
            raise ForecastUnavailable(PROVIDER, where, "empty 'hourly' series in the answer")
        columns = {}
        for name in VARIABLES:
            values = hourly.get(name)
            if values is None:
                raise ForecastUnavailable(PROVIDER, where, f"no '{name}' in the answer")
            if len(values) != len(times):
                raise ValueError(f"'{name}' has {len(values)} values for {len(times)} times")
            columns[name] = np.array([math.nan if v is None else float(v) for v in values])
    except (KeyError, TypeError, ValueError) as exc:
        raise ForecastUnavailable(PROVIDER, where, f"malformed response: {exc}") from None
    for a, b in zip(times, times[1:], strict=False):
        if b - a != _HOUR:
            raise ForecastUnavailable(PROVIDER, where, "malformed response: times not hourly")
    return times, columns


def _in_si_units(where: str, units: Mapping, columns: dict[str, np.ndarray],
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(GHI in W/m², wind speed in m/s, air temperature in °C or None) from the answer's
    declared units; an unexpected unit is refused."""
    ghi_unit = str(units.get("shortwave_radiation", "")).strip()
    if ghi_unit.lower().replace(" ", "") not in _GHI_UNITS:
        raise ForecastUnavailable(PROVIDER, where,
                                  f"unexpected shortwave_radiation unit {ghi_unit!r} "
                                  "(expected W/m²)")
    wind_unit = str(units.get("wind_speed_100m", "")).strip()
    wind_factor = _WIND_TO_M_S.get(wind_unit.lower())
    if wind_factor is None:
        raise ForecastUnavailable(PROVIDER, where,
                                  f"unexpected wind_speed_100m unit {wind_unit!r} (expected m/s)")
    temp_unit = str(units.get("temperature_2m", "")).strip()
    temp = columns["temperature_2m"]
    if temp_unit in ("°C", "C", "degC"):
        temp_c: np.ndarray | None = temp
    elif temp_unit in ("°F", "F", "degF"):
        temp_c = (temp - 32.0) * 5.0 / 9.0
    elif temp_unit == "undefined" or not np.isfinite(temp).any():
        temp_c = None  # the PV model then assumes its reference temperature
    else:
        raise ForecastUnavailable(PROVIDER, where,
                                  f"unexpected temperature_2m unit {temp_unit!r} (expected °C)")
    return columns["shortwave_radiation"], columns["wind_speed_100m"] * wind_factor, temp_c


def _check_plausible(where: str, ghi: np.ndarray, wind: np.ndarray) -> None:
    """Refuse series mostly missing or outside physical ranges (likely wrong units)."""
    for name, arr in (("shortwave_radiation", ghi), ("wind_speed_100m", wind)):
        bad = ~np.isfinite(arr)
        if bad.all():
            raise ForecastUnavailable(PROVIDER, where, f"only null {name} values")
        if bad.sum() > MAX_MISSING_FRACTION * len(arr):
            raise ForecastUnavailable(PROVIDER, where,
                                      f"{int(bad.sum())} of {len(arr)} {name} values missing")
    if np.nanmin(ghi) < 0 or np.nanmax(ghi) > 1500:
        raise ForecastUnavailable(PROVIDER, where,
                                  f"implausible GHI range {np.nanmin(ghi):g}..{np.nanmax(ghi):g} "
                                  "W/m² (wrong units?)")
    if np.nanmin(wind) < 0 or np.nanmax(wind) > 120:
        raise ForecastUnavailable(PROVIDER, where,
                                  f"implausible wind speed {np.nanmax(wind):g} m/s (wrong units?)")


def _sample_time(raw: Any, offset: timedelta) -> datetime:
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return datetime.fromtimestamp(float(raw), UTC)  # timeformat=unixtime (GMT epoch)
    if not isinstance(raw, str):
        raise ValueError(f"bad time {raw!r}")
    t = datetime.fromisoformat(raw)
    if t.tzinfo is not None:
        return t.astimezone(UTC)
    return (t - offset).replace(tzinfo=UTC)
