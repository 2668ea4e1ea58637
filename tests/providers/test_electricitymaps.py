"""Electricity Maps v3 adapter against a loopback server speaking the documented API."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from conftest import needs_shared_data

from gridshift.adapters.providers.electricitymaps import ElectricityMaps
from gridshift.forecasting.errors import ForecastUnavailable

from .fake_servers import ElectricityMapsServer, fast_client

NOW = datetime(2026, 6, 15, 10, 20, tzinfo=UTC)
HOUR = datetime(2026, 6, 15, 10, tzinfo=UTC)
TOKEN = "emaps-test-token-7f3a9"
ZONES = {"DE": "DE", "FR-X": "FR", "IT": "IT-NO"}


@pytest.fixture
def server() -> Iterator[ElectricityMapsServer]:
    with ElectricityMapsServer(TOKEN, now=lambda: NOW) as srv:
        yield srv


def make_source(server: ElectricityMapsServer, token: str = TOKEN) -> ElectricityMaps:
    return ElectricityMaps(f"{server.url}/v3", token, ZONES,
                           http=fast_client("electricitymaps"), clock=lambda: NOW)


@pytest.fixture
def source(server: ElectricityMapsServer) -> Iterator[ElectricityMaps]:
    src = make_source(server)
    yield src
    src.close()


def test_forecast_values_and_issue_time(source: ElectricityMaps,
                                        server: ElectricityMapsServer) -> None:
    fc = source.forecast("DE", HOUR, 24, 60)
    assert fc.provider == "electricitymaps"
    assert fc.slot_minutes == 60
    assert fc.start == HOUR
    assert list(fc.carbon_intensity) == [server.value("DE", HOUR + timedelta(hours=i))
                                         for i in range(24)]
    assert fc.issued_at == NOW - timedelta(minutes=8)  # updatedAt
    req = server.requests[-1]
    assert req.path == "/v3/carbon-intensity/forecast"
    assert req.query == {"zone": "DE"}  # default horizon: no horizonHours
    assert req.headers["auth-token"] == TOKEN


def test_forecast_values_are_the_recorded_day_redated(source: ElectricityMaps) -> None:
    sample = json.loads(needs_shared_data("electricitymaps-api",
                                          "carbon_intensity_history.json").read_text())
    recorded = [h["carbonIntensity"] for h in sample["history"]]
    fc = source.forecast("DE", HOUR, 24, 60)
    # The recording starts at 20:00 UTC; 10:00 is 14 hours into its day.
    assert list(fc.carbon_intensity) == recorded[14:] + recorded[:14]


def test_history_past_range_matches_recorded_sample(source: ElectricityMaps,
                                                    server: ElectricityMapsServer) -> None:
    sample = json.loads(needs_shared_data("electricitymaps-api",
                                          "carbon_intensity_history.json").read_text())
    start = datetime(2024, 3, 5, 20, tzinfo=UTC)
    hist = source.history("DE", start, start + timedelta(hours=24))
    assert hist.carbon_intensity[0] == sample["history"][0]["carbonIntensity"] == 599
    assert list(hist.carbon_intensity) == [h["carbonIntensity"] for h in sample["history"]]
    req = server.requests[-1]
    assert req.path == "/v3/carbon-intensity/past-range"
    assert req.query["start"] == "2024-03-05T19:00:00.000Z"


def test_recent_history_uses_history_endpoint(source: ElectricityMaps,
                                              server: ElectricityMapsServer) -> None:
    start = HOUR - timedelta(hours=6)
    hist = source.history("DE", start, HOUR)
    assert list(hist.carbon_intensity) == [server.value("DE", start + timedelta(hours=i))
                                           for i in range(6)]
    assert [r.path for r in server.requests] == ["/v3/carbon-intensity/history"]


def test_long_history_is_chunked(source: ElectricityMaps, server: ElectricityMapsServer) -> None:
    start = datetime(2026, 4, 1, tzinfo=UTC)
    hist = source.history("FR-X", start, start + timedelta(days=20))
    assert len(hist.carbon_intensity) == 20 * 24
    assert server.count("/v3/carbon-intensity/past-range") == 3  # 9-day chunks
    assert all(r.query["zone"] == "FR" for r in server.requests)


def test_longer_horizon_asks_for_horizon_hours(source: ElectricityMaps,
                                               server: ElectricityMapsServer) -> None:
    fc = source.forecast("DE", HOUR, 40, 60)
    assert len(fc.carbon_intensity) >= 40
    assert server.requests[-1].query["horizonHours"] == "48"


def test_forecast_starting_next_hour_is_completed_from_history() -> None:
    with ElectricityMapsServer(TOKEN, now=lambda: NOW, forecast_starts_next_hour=True) as srv:
        src = make_source(srv)
        try:
            fc = src.forecast("DE", HOUR, 6, 60)
        finally:
            src.close()
        assert fc.start == HOUR
        assert list(fc.carbon_intensity) == [srv.value("DE", HOUR + timedelta(hours=i))
                                             for i in range(6)]
        assert [r.path for r in srv.requests] == ["/v3/carbon-intensity/forecast",
                                                  "/v3/carbon-intensity/history"]


@pytest.mark.parametrize("fault", ["timeout", "reset", "429", "500", "503", "truncated",
                                   "short_body"])
def test_transient_faults_end_in_retried_success(source: ElectricityMaps,
                                                 server: ElectricityMapsServer,
                                                 fault: str) -> None:
    server.inject(fault, times=2, retry_after="1")
    fc = source.forecast("DE", HOUR, 3, 60)
    assert fc.carbon_intensity[0] == server.value("DE", HOUR)
    assert server.count("/v3/") == 3


@pytest.mark.parametrize(("fault", "words"), [
    ("timeout", "timed out"),
    ("reset", "connection reset"),
    ("429", "rate limited (HTTP 429"),
    ("500", "Internal server error"),
    ("truncated", "malformed JSON"),
    ("wrong_units", "wrong units"),
    ("empty", "empty 'forecast' list"),
    ("expired_token", "auth-token rejected"),
])
def test_persistent_faults_raise_forecast_unavailable(
        source: ElectricityMaps, server: ElectricityMapsServer,
        caplog: pytest.LogCaptureFixture, fault: str, words: str) -> None:
    caplog.set_level(logging.DEBUG)
    server.inject(fault, times=None)
    with pytest.raises(ForecastUnavailable) as err:
        source.forecast("DE", HOUR, 3, 60)
    message = str(err.value)
    assert "electricitymaps" in message and "'DE'" in message
    assert words in message
    assert TOKEN not in message and TOKEN not in caplog.text
    assert TOKEN not in repr(err.value.__cause__)


def test_wrong_token_is_not_retried_and_not_leaked(server: ElectricityMapsServer,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "emaps-wrong-token-123456"
    src = make_source(server, wrong)
    try:
        with pytest.raises(ForecastUnavailable) as err:
            src.forecast("DE", HOUR, 3, 60)
    finally:
        src.close()
    assert "HTTP 401" in str(err.value) and "Invalid auth-token" in str(err.value)
    assert server.count("/v3/") == 1
    assert wrong not in str(err.value) and wrong not in caplog.text


def test_zone_without_access_is_403_access_denied(source: ElectricityMaps) -> None:
    with pytest.raises(ForecastUnavailable, match="Access denied"):
        source.forecast("IT", HOUR, 3, 60)


def test_unit_field_is_checked_when_present() -> None:
    for unit, ok in (("gCO2eq/kWh", True), ("lbsCO2eq/MWh", False)):
        with ElectricityMapsServer(TOKEN, now=lambda: NOW, unit_field=unit) as srv:
            src = make_source(srv)
            try:
                if ok:
                    assert src.forecast("DE", HOUR, 3, 60).carbon_intensity
                else:
                    with pytest.raises(ForecastUnavailable, match="unexpected unit"):
                        src.forecast("DE", HOUR, 3, 60)
            finally:
                src.close()


def test_window_beyond_horizon_is_reported(source: ElectricityMaps) -> None:
    with pytest.raises(ForecastUnavailable, match="not the requested window"):
        source.forecast("DE", HOUR, 100, 60)


def test_built_from_the_settings(server: ElectricityMapsServer) -> None:
    """The registry builds the adapter from the settings (GRIDSHIFT_EMAPS_TOKEN / _URL)."""
    from gridshift.adapters.providers.registry import build_provider
    from gridshift.settings import load_settings

    with pytest.raises(ValueError, match="GRIDSHIFT_EMAPS_TOKEN"):
        build_provider("electricitymaps", load_settings(environ={}).providers, "DE", "DE")
    settings = load_settings(environ={"GRIDSHIFT_EMAPS_TOKEN": TOKEN,
                                      "GRIDSHIFT_EMAPS_URL": f"{server.url}/v3"})
    src = build_provider("electricitymaps", settings.providers, "DE", "DE",
                         fast_client("electricitymaps"))
    try:
        assert src.history("DE", HOUR - timedelta(hours=2), HOUR).carbon_intensity
    finally:
        src.close()
