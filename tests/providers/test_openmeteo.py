"""Open-Meteo adapter: hourly weather → a site's renewable kW, against a loopback server."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from gridshift.adapters.providers.openmeteo import OpenMeteoRenewables
from gridshift.forecasting.errors import ForecastUnavailable
from gridshift.forecasting.renewables import pv_power_kw, wind_power_kw

from .fake_servers import OM_BERLIN, OpenMeteoServer, fast_client

NOW = datetime(2026, 6, 15, 10, 20, tzinfo=UTC)
BERLIN = (52.52, 13.42)
DAY = datetime(2023, 1, 1, 10, tzinfo=UTC)
SUMMER = datetime(2026, 6, 15, tzinfo=UTC)


@pytest.fixture
def server() -> Iterator[OpenMeteoServer]:
    with OpenMeteoServer(now=lambda: NOW) as srv:
        yield srv


@pytest.fixture
def source(server: OpenMeteoServer) -> Iterator[OpenMeteoRenewables]:
    src = OpenMeteoRenewables(f"{server.url}/v1", http=fast_client("open-meteo"))
    yield src
    src.close()


def test_pv_from_recorded_berlin_hours(source: OpenMeteoRenewables,
                                       server: OpenMeteoServer) -> None:
    kw = source.renewable_kw(*BERLIN, DAY, 3, 60, solar_kwp=10.0, wind_kw=0.0)
    # GHI at T is the mean of [T-1h, T): slot [10:00, 11:00) takes the 11:00 value (76 W/m²)
    # at the mean of the 10:00 and 11:00 temperatures.
    hours = [DAY + timedelta(hours=h) for h in range(4)]
    ghi = np.array([OM_BERLIN[t][0] for t in hours[1:]])
    temp = np.array([(OM_BERLIN[a][1] + OM_BERLIN[b][1]) / 2
                     for a, b in zip(hours, hours[1:], strict=False)])
    assert ghi.tolist() == [76.0, 111.0, 95.0]
    np.testing.assert_allclose(kw, pv_power_kw(ghi, temp, 10.0))
    req = server.requests[-1]
    assert req.path == "/v1/forecast"
    assert req.query["hourly"] == "shortwave_radiation,temperature_2m,wind_speed_100m"
    assert req.query["wind_speed_unit"] == "ms"
    assert req.query["timezone"] == "GMT"
    assert (req.query["start_date"], req.query["end_date"]) == ("2023-01-01", "2023-01-01")


def test_wind_power_averages_the_curve_over_each_hour(source: OpenMeteoRenewables,
                                                      server: OpenMeteoServer) -> None:
    kw = source.renewable_kw(*BERLIN, SUMMER, 6, 60, solar_kwp=0.0, wind_kw=2000.0)
    edges = [SUMMER + timedelta(hours=h) for h in range(7)]
    power = wind_power_kw(np.array([server.wind_m_s(t) for t in edges]), 2000.0)
    np.testing.assert_allclose(kw, (power[:-1] + power[1:]) / 2)
    assert kw.shape == (6,)


def test_half_hour_slots_and_combined_supply(source: OpenMeteoRenewables,
                                             server: OpenMeteoServer) -> None:
    start = SUMMER + timedelta(hours=11)
    hourly = source.renewable_kw(*BERLIN, start, 4, 60, solar_kwp=50.0, wind_kw=100.0)
    half = source.renewable_kw(*BERLIN, start, 8, 30, solar_kwp=50.0, wind_kw=100.0)
    np.testing.assert_allclose(half, np.repeat(hourly, 2))
    assert (hourly > 0).all()
    assert server.requests[-1].query["end_date"] == "2026-06-15"


def test_window_to_midnight_asks_for_the_next_day(source: OpenMeteoRenewables,
                                                  server: OpenMeteoServer) -> None:
    start = SUMMER + timedelta(hours=22)
    kw = source.renewable_kw(*BERLIN, start, 2, 60, solar_kwp=0.0, wind_kw=10.0)
    assert kw.shape == (2,)
    assert server.requests[-1].query["end_date"] == "2026-06-16"


def test_injected_models_are_used(server: OpenMeteoServer) -> None:
    src = OpenMeteoRenewables(f"{server.url}/v1", http=fast_client("open-meteo"),
                              pv_model=lambda ghi, temp, kwp: ghi / 1000.0 * kwp,
                              wind_model=lambda v, rated: np.zeros_like(v))
    try:
        kw = src.renewable_kw(*BERLIN, DAY, 1, 60, solar_kwp=4.0, wind_kw=1.0)
    finally:
        src.close()
    assert kw.tolist() == pytest.approx([76.0 / 1000 * 4.0])


def test_km_h_answer_is_converted(server: OpenMeteoServer) -> None:
    with OpenMeteoServer(now=lambda: NOW, ignore_wind_unit=True) as kmh_server:
        src = OpenMeteoRenewables(f"{kmh_server.url}/v1", http=fast_client("open-meteo"))
        try:
            wx = src.weather(*BERLIN, SUMMER, SUMMER + timedelta(hours=3))
        finally:
            src.close()
    expected = [server.wind_m_s(t) for t in wx.time]
    np.testing.assert_allclose(wx.wind_speed_m_s, expected, rtol=2e-3)


def test_no_capacity_needs_no_request(source: OpenMeteoRenewables,
                                      server: OpenMeteoServer) -> None:
    assert source.renewable_kw(*BERLIN, SUMMER, 5, 60, 0.0, 0.0).tolist() == [0.0] * 5
    assert server.requests == []


@pytest.mark.parametrize("fault", ["timeout", "reset", "429", "500", "503", "truncated",
                                   "short_body"])
def test_transient_faults_end_in_retried_success(source: OpenMeteoRenewables,
                                                 server: OpenMeteoServer, fault: str) -> None:
    server.inject(fault, times=2, retry_after="1")
    kw = source.renewable_kw(*BERLIN, DAY, 1, 60, solar_kwp=10.0, wind_kw=0.0)
    assert kw[0] > 0
    assert server.count("/v1/forecast") == 3


@pytest.mark.parametrize(("fault", "words"), [
    ("timeout", "timed out"),
    ("reset", "connection reset"),
    ("429", "Minutely API request limit exceeded"),
    ("503", "The service is overloaded"),
    ("truncated", "malformed JSON"),
    ("wrong_units", "unexpected shortwave_radiation unit 'MJ/m²'"),
    ("empty", "empty 'hourly' series"),
])
def test_persistent_faults_raise_forecast_unavailable(
        source: OpenMeteoRenewables, server: OpenMeteoServer,
        caplog: pytest.LogCaptureFixture, fault: str, words: str) -> None:
    caplog.set_level(logging.DEBUG)
    server.inject(fault, times=None)
    with pytest.raises(ForecastUnavailable) as err:
        source.renewable_kw(*BERLIN, DAY, 2, 60, solar_kwp=10.0, wind_kw=5.0)
    assert "open-meteo" in str(err.value) and words in str(err.value)
    assert "52.5200" in str(err.value)


def test_bad_coordinates_are_the_providers_400(source: OpenMeteoRenewables) -> None:
    with pytest.raises(ForecastUnavailable, match="Latitude must be in range"):
        source.renewable_kw(300.0, 0.0, DAY, 1, 60, solar_kwp=1.0, wind_kw=0.0)


def test_negative_capacity_is_invalid(source: OpenMeteoRenewables) -> None:
    with pytest.raises(ValueError):
        source.renewable_kw(*BERLIN, DAY, 1, 60, solar_kwp=-1.0, wind_kw=0.0)


def test_site_supply_uses_open_meteo_when_its_url_is_set(server: OpenMeteoServer) -> None:
    from gridshift.adapters.renewables import SiteSupply
    from gridshift.optimizer.parsing import parse_request
    from gridshift.settings import load_settings

    request = parse_request({
        "horizon": {"start": DAY.strftime("%Y-%m-%dT%H:%M:%SZ"), "slots": 2},
        "sites": [{"id": "ber", "region": "DE", "gpu_capacity": 8, "latitude": BERLIN[0],
                   "longitude": BERLIN[1], "solar_kwp": 1.0}],
        "jobs": [], "forecasts": [{"region": "DE", "start": DAY.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                   "carbon_intensity": [300, 300]}]})
    settings = load_settings(environ={"GRIDSHIFT_OPENMETEO_URL": f"{server.url}/v1"})
    filled, (note,) = SiteSupply(settings.providers,
                                 lambda name: fast_client("open-meteo")).fill(request)
    assert note.provider == "open-meteo" and not note.fallback
    assert len(filled.sites[0].renewable_kw) == 2
    fallback, (note,) = SiteSupply().fill(request)
    assert note.fallback and note.provider == "embedded-typical-profile"
