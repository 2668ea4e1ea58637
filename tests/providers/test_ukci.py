"""UK Carbon Intensity adapter against a loopback server speaking the documented API."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from conftest import needs_shared_data

from gridshift.adapters.providers import UnknownRegion
from gridshift.adapters.providers.ukci import UKCarbonIntensity, UKZone
from gridshift.forecasting.alignment import align_to_slots
from gridshift.forecasting.errors import ForecastUnavailable

from .fake_servers import UKCarbonIntensityServer, fast_client

NOW = datetime(2026, 6, 15, 10, 20, tzinfo=UTC)
ZONES = {"GB": "national", "GB-SW": "11", "GB-BH": "BH1", "GB-LON": "13", "GB-X": "ZZ9"}
# Recorded samples (shared/data/uk-carbon-intensity-api): national 2017-10-01T11:30Z..,
# regional postcode BH1 (region 11) 2020-05-19T20:00Z..
NATIONAL_START = datetime(2017, 10, 1, 11, 30, tzinfo=UTC)
REGIONAL_START = datetime(2020, 5, 19, 20, 0, tzinfo=UTC)


@pytest.fixture
def server() -> Iterator[UKCarbonIntensityServer]:
    with UKCarbonIntensityServer(now=lambda: NOW) as srv:
        yield srv


@pytest.fixture
def source(server: UKCarbonIntensityServer) -> Iterator[UKCarbonIntensity]:
    src = UKCarbonIntensity(server.url, ZONES, http=fast_client("uk-carbon-intensity"),
                            clock=lambda: NOW)
    yield src
    src.close()


def test_national_forecast_matches_recorded_sample(source: UKCarbonIntensity,
                                                   server: UKCarbonIntensityServer) -> None:
    sample = json.loads(needs_shared_data("uk-carbon-intensity-api",
                                          "response_national.json").read_text())
    fc = source.forecast("GB", NATIONAL_START, 24, 60)
    assert fc.provider == "uk-carbon-intensity"
    assert fc.region == "GB"
    assert fc.slot_minutes == 30
    assert fc.start == NATIONAL_START
    assert fc.carbon_intensity[0] == sample["data"][0]["intensity"]["forecast"] == 145
    assert list(fc.carbon_intensity) == [p["intensity"]["forecast"]
                                         for p in sample["data"][:48]]
    assert fc.issued_at == NOW  # the API gives no issue time
    # One fw48h call, sent at minute precision one minute into the period.
    assert [r.path for r in server.requests] == ["/intensity/2017-10-01T11:31Z/fw48h"]
    assert server.requests[0].headers["accept"] == "application/json"
    hourly = align_to_slots(fc.carbon_intensity, fc.start, fc.slot_minutes, NATIONAL_START, 60,
                            24)
    assert hourly[0] == pytest.approx((145 + 151) / 2)


def test_national_history_uses_actuals(source: UKCarbonIntensity) -> None:
    sample = json.loads(needs_shared_data("uk-carbon-intensity-api",
                                          "response_national.json").read_text())
    start = NATIONAL_START + timedelta(minutes=30)
    hist = source.history("GB", start, start + timedelta(hours=24))
    actuals = {p["from"]: p["intensity"]["actual"] for p in sample["data"]}
    assert hist.start == start
    assert hist.carbon_intensity[0] == actuals["2017-10-01T12:00Z"] == 140
    assert len(hist.carbon_intensity) == 48


def test_regional_postcode_and_region_id_match_recorded_sample(
        source: UKCarbonIntensity, server: UKCarbonIntensityServer) -> None:
    sample = json.loads(needs_shared_data("uk-carbon-intensity-api",
                                          "response.json").read_text())
    expected = [p["intensity"]["forecast"] for p in sample["data"]["data"][:24]]
    by_postcode = source.forecast("GB-BH", REGIONAL_START, 12, 60)
    by_id = source.forecast("GB-SW", REGIONAL_START, 12, 60)
    assert by_postcode.carbon_intensity[0] == 307
    assert list(by_postcode.carbon_intensity) == expected
    assert list(by_id.carbon_intensity) == expected
    paths = [r.path for r in server.requests]
    assert paths == ["/regional/intensity/2020-05-19T20:01Z/fw48h/postcode/BH1",
                     "/regional/intensity/2020-05-19T20:01Z/fw48h/regionid/11"]


def test_generated_window_and_unaligned_start(source: UKCarbonIntensity,
                                              server: UKCarbonIntensityServer) -> None:
    start = datetime(2026, 6, 15, 10, 15, tzinfo=UTC)
    fc = source.forecast("GB-LON", start, 4, 60)
    assert fc.start == datetime(2026, 6, 15, 10, 0, tzinfo=UTC)  # the period containing start
    assert fc.end >= start + timedelta(hours=4)
    first = server.regional_period(13, fc.start)["intensity"]["forecast"]
    assert fc.carbon_intensity[0] == first


def test_long_window_chains_fw48h_calls(source: UKCarbonIntensity,
                                        server: UKCarbonIntensityServer) -> None:
    start = datetime(2026, 6, 15, 0, 0, tzinfo=UTC)
    fc = source.forecast("GB", start, 72, 60)
    assert fc.start == start
    assert len(fc.carbon_intensity) == 144
    assert server.count("/intensity/") == 2
    t = start + timedelta(hours=50)
    assert fc.carbon_intensity[100] == server.national_period(t)["intensity"]["forecast"]


def test_long_history_uses_range_endpoint(source: UKCarbonIntensity,
                                          server: UKCarbonIntensityServer) -> None:
    start = datetime(2026, 5, 1, tzinfo=UTC)
    hist = source.history("GB", start, start + timedelta(days=20))
    assert len(hist.carbon_intensity) == 20 * 48
    assert server.count("/intensity/") == 2  # 13-day chunks under the 14-day limit
    assert all(len(r.path.split("/")) == 4 for r in server.requests)


@pytest.mark.parametrize("fault", ["timeout", "reset", "429", "500", "503", "truncated",
                                   "short_body"])
def test_transient_faults_end_in_retried_success(source: UKCarbonIntensity,
                                                 server: UKCarbonIntensityServer,
                                                 fault: str) -> None:
    server.inject(fault, times=2, retry_after="1")
    start = datetime(2026, 6, 15, 12, tzinfo=UTC)
    fc = source.forecast("GB", start, 6, 60)
    assert fc.carbon_intensity[0] == server.national_period(start)["intensity"]["forecast"]
    assert server.count("/intensity/") == 3


@pytest.mark.parametrize(("fault", "words"), [
    ("timeout", "timed out"),
    ("reset", "connection reset"),
    ("429", "rate limited"),
    ("500", "Requested resource not found."),
    ("truncated", "malformed JSON"),
    ("wrong_units", "wrong units"),
    ("empty", "no carbon intensity data"),
])
def test_persistent_faults_raise_forecast_unavailable(
        source: UKCarbonIntensity, server: UKCarbonIntensityServer,
        caplog: pytest.LogCaptureFixture, fault: str, words: str) -> None:
    caplog.set_level(logging.DEBUG)
    server.inject(fault, times=None)
    with pytest.raises(ForecastUnavailable) as err:
        source.forecast("GB", datetime(2026, 6, 15, 12, tzinfo=UTC), 6, 60)
    message = str(err.value)
    assert "uk-carbon-intensity" in message and "'GB'" in message
    assert words in message
    assert err.value.provider == "uk-carbon-intensity"


def test_empty_body_once_is_reported_not_guessed(source: UKCarbonIntensity,
                                                 server: UKCarbonIntensityServer) -> None:
    server.inject("empty", times=1)
    with pytest.raises(ForecastUnavailable, match="no carbon intensity data"):
        source.forecast("GB-LON", datetime(2026, 6, 15, 12, tzinfo=UTC), 2, 60)
    # The next call (outage over) succeeds.
    assert source.forecast("GB-LON", datetime(2026, 6, 15, 12, tzinfo=UTC), 2, 60)


def test_unknown_postcode_is_the_providers_400(source: UKCarbonIntensity) -> None:
    with pytest.raises(ForecastUnavailable, match="No postcode match can be found"):
        source.forecast("GB-X", datetime(2026, 6, 15, tzinfo=UTC), 2, 60)


def test_unknown_region_is_a_key_error(source: UKCarbonIntensity) -> None:
    with pytest.raises(KeyError):
        source.forecast("FR", datetime(2026, 6, 15, tzinfo=UTC), 2, 60)
    with pytest.raises(UnknownRegion, match="no zone configured"):
        source.forecast("FR", datetime(2026, 6, 15, tzinfo=UTC), 2, 60)


def test_regional_history_is_last_published_forecast(source: UKCarbonIntensity,
                                                     server: UKCarbonIntensityServer) -> None:
    start = datetime(2026, 6, 14, 12, tzinfo=UTC)
    hist = source.history("GB-LON", start, start + timedelta(hours=6))
    assert hist.carbon_intensity[0] == server.regional_period(13, start)["intensity"]["forecast"]
    assert server.requests[-1].path.endswith("/pt24h/regionid/13")


def test_zone_parsing() -> None:
    assert UKZone.parse("national") == UKZone("national")
    assert UKZone.parse("13") == UKZone("regionid", "13")
    assert UKZone.parse("regionid:7") == UKZone("regionid", "7")
    assert UKZone.parse("rg10 1aa") == UKZone("postcode", "RG10")
    assert UKZone.parse("postcode:W1A") == UKZone("postcode", "W1A")
    for bad in ("19", "0", "not a code", ""):
        with pytest.raises(ValueError):
            UKZone.parse(bad)


def test_built_from_the_settings(server: UKCarbonIntensityServer) -> None:
    """No credentials: the base URL from GRIDSHIFT_UKCI_URL, else the public API."""
    from gridshift.adapters.providers.registry import build_provider
    from gridshift.settings import load_settings

    settings = load_settings(environ={"GRIDSHIFT_UKCI_URL": server.url})
    src = build_provider("ukci", settings.providers, "GB", "national", fast_client("uk"))
    try:
        assert src.client.base_url == server.url
        assert src.forecast("GB", datetime(2026, 6, 15, tzinfo=UTC), 1, 60).carbon_intensity
    finally:
        src.close()
    default = build_provider("ukci", load_settings(environ={}).providers, "GB", "national")
    assert default.client.base_url == "https://api.carbonintensity.org.uk"
    default.close()
