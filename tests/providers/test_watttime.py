"""WattTime v3 adapter against a loopback server: login, bearer auth, re-login, lbs → g."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from conftest import needs_shared_data

from gridshift.adapters.providers.watttime import LBS_PER_MWH_TO_G_PER_KWH, WattTime
from gridshift.forecasting.errors import ForecastUnavailable

from .fake_servers import WattTimeServer, fast_client

NOW = datetime(2026, 6, 15, 10, 20, tzinfo=UTC)
USER, PASSWORD = "gridshift-user", "wt-Pa55word-c0ffee"
ZONES = {"US-CAL-CISO": "CAISO_NORTH", "US-CO": "PSCO", "US-PJM": "PJM"}
G = LBS_PER_MWH_TO_G_PER_KWH


@pytest.fixture
def server() -> Iterator[WattTimeServer]:
    with WattTimeServer(USER, PASSWORD, now=lambda: NOW) as srv:
        yield srv


def make_source(server: WattTimeServer, password: str = PASSWORD, **kw: float) -> WattTime:
    return WattTime(server.url, USER, password, ZONES, http=fast_client("watttime"),
                    clock=lambda: NOW, **kw)


@pytest.fixture
def source(server: WattTimeServer) -> Iterator[WattTime]:
    src = make_source(server)
    yield src
    src.close()


def secrets_of(server: WattTimeServer) -> list[str]:
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    return [PASSWORD, basic, *server.issued_tokens]


def first_value(server: WattTimeServer) -> float:
    """The first forecast point the server sends for CAISO_NORTH, converted to g/kWh."""
    return server.forecast_value("CAISO_NORTH", 0, NOW) * G


def test_unit_conversion_constant() -> None:
    assert G == pytest.approx(0.453592, abs=1e-6)
    assert 870 * G == pytest.approx(394.6253619)


def test_forecast_logs_in_and_converts_units(source: WattTime, server: WattTimeServer) -> None:
    sample = json.loads(needs_shared_data("watttime-api",
                                          "forecasted_emissions_response.json").read_text())
    recorded = [p["value"] for p in sample["data"][0]["forecast"]]
    fc = source.forecast("US-CAL-CISO", NOW, 2, 60)
    assert fc.signal == "marginal"     # MOER: the series says what it is
    assert fc.provider == "watttime"
    assert fc.slot_minutes == 5
    assert fc.start == NOW
    assert len(fc.carbon_intensity) == 24
    assert fc.carbon_intensity[:3] == pytest.approx([v * G for v in recorded])
    assert fc.carbon_intensity[0] == pytest.approx(870 * G)
    later = NOW + timedelta(minutes=60)
    assert fc.carbon_intensity[12] == pytest.approx(server.moer("CAISO_NORTH", later) * G)
    assert fc.issued_at == NOW  # meta.generated_at
    login, data = server.requests
    assert login.path == "/login" and login.headers["authorization"].startswith("Basic ")
    assert data.path == "/v3/forecast"
    assert data.headers["authorization"] == f"Bearer {server.issued_tokens[0]}"
    assert data.query == {"region": "CAISO_NORTH", "signal_type": "co2_moer",
                          "horizon_hours": "2"}


def test_history_matches_recorded_sample(source: WattTime, server: WattTimeServer) -> None:
    sample = json.loads(needs_shared_data("watttime-api",
                                          "historical_emissions_response.json").read_text())
    start = datetime(2022, 7, 15, tzinfo=UTC)
    hist = source.history("US-CAL-CISO", start, start + timedelta(minutes=10))
    assert hist.carbon_intensity == pytest.approx([p["value"] * G for p in sample["data"]])
    assert hist.carbon_intensity == pytest.approx([870 * G, 860 * G])
    req = server.requests[-1]
    assert req.path == "/v3/historical"
    assert req.query["start"] == "2022-07-14T23:00:00+00:00"  # explicit offset, as v3 needs


def test_forecast_before_now_is_completed_from_historical(source: WattTime,
                                                          server: WattTimeServer) -> None:
    start = datetime(2026, 6, 15, 10, tzinfo=UTC)
    fc = source.forecast("US-CO", start, 1, 60)
    assert fc.start == start
    past = [server.moer("PSCO", start + timedelta(minutes=5 * i)) * G for i in range(4)]
    assert fc.carbon_intensity[:4] == pytest.approx(past)
    assert fc.carbon_intensity[4] == pytest.approx(server.forecast_value("PSCO", 0, NOW) * G)
    assert [r.path for r in server.requests] == ["/login", "/v3/forecast", "/v3/historical"]


def test_expired_token_relogs_in_once(source: WattTime, server: WattTimeServer,
                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    source.forecast("US-CAL-CISO", NOW, 1, 60)
    server.inject("expired_token", times=1)
    fc = source.forecast("US-CAL-CISO", NOW, 1, 60)
    assert fc.carbon_intensity[0] == pytest.approx(first_value(server))
    assert server.logins == 2
    assert server.requests[-1].headers["authorization"] == f"Bearer {server.issued_tokens[1]}"
    for secret in secrets_of(server):
        assert secret not in caplog.text


def test_token_is_renewed_after_its_lifetime(server: WattTimeServer) -> None:
    src = make_source(server, token_ttl_s=0)
    try:
        src.forecast("US-CAL-CISO", NOW, 1, 60)
        src.forecast("US-CAL-CISO", NOW, 1, 60)
    finally:
        src.close()
    assert server.logins == 2
    assert server.count("/v3/") == 2  # no 401 round trip needed


def test_persistent_401_is_an_auth_failure_without_secrets(
        source: WattTime, server: WattTimeServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server.inject("expired_token", times=None)
    with pytest.raises(ForecastUnavailable) as err:
        source.forecast("US-CAL-CISO", NOW, 1, 60)
    message = str(err.value)
    assert "watttime" in message and "'US-CAL-CISO'" in message
    assert "authentication failed after a fresh login" in message
    assert server.logins == 2
    for secret in secrets_of(server):
        assert secret not in message and secret not in caplog.text


def test_bad_password_is_login_rejected(server: WattTimeServer,
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-Password-42"
    src = make_source(server, password=wrong)
    try:
        with pytest.raises(ForecastUnavailable) as err:
            src.forecast("US-CAL-CISO", NOW, 1, 60)
    finally:
        src.close()
    message = str(err.value)
    assert "login rejected" in message and "HTTP 403" in message and "403 Forbidden" in message
    # A credentials problem, named as one: not "no access to this region/signal with this
    # plan" (the 403 of a data call), which sent users to their plan instead of their password.
    assert "check the username and password" in message and "no access" not in message
    assert wrong not in message and wrong not in caplog.text
    assert server.count("/v3/") == 0


@pytest.mark.parametrize("fault", ["timeout", "reset", "429", "500", "503", "truncated",
                                   "short_body"])
def test_transient_faults_end_in_retried_success(source: WattTime, server: WattTimeServer,
                                                 fault: str) -> None:
    server.inject(fault, times=2, retry_after="1")
    fc = source.forecast("US-CAL-CISO", NOW, 1, 60)
    assert fc.carbon_intensity[0] == pytest.approx(first_value(server))
    assert server.count("/v3/forecast") == 3


def test_login_fault_is_retried(source: WattTime, server: WattTimeServer) -> None:
    server.inject("503", times=1, path="/login")
    assert source.forecast("US-CAL-CISO", NOW, 1, 60).carbon_intensity
    assert server.count("/login") == 2


@pytest.mark.parametrize(("fault", "words"), [
    ("timeout", "timed out"),
    ("reset", "connection reset"),
    ("429", "rate limited (HTTP 429"),
    ("500", "upstream error (HTTP 500"),
    ("truncated", "malformed JSON"),
    ("wrong_units", "unexpected units 'percentile'"),
    ("empty", "empty 'data' list"),
])
def test_persistent_faults_raise_forecast_unavailable(
        source: WattTime, server: WattTimeServer, caplog: pytest.LogCaptureFixture,
        fault: str, words: str) -> None:
    caplog.set_level(logging.DEBUG)
    server.inject(fault, times=None)
    with pytest.raises(ForecastUnavailable) as err:
        source.forecast("US-CAL-CISO", NOW, 1, 60)
    message = str(err.value)
    assert "watttime" in message and words in message
    for secret in secrets_of(server):
        assert secret not in message and secret not in caplog.text


def test_region_without_access_is_403(source: WattTime) -> None:
    with pytest.raises(ForecastUnavailable, match="no access to this region"):
        source.forecast("US-PJM", NOW, 1, 60)


def test_region_from_loc(source: WattTime) -> None:
    assert source.region_from_loc(37.8, -122.3) == "CAISO_NORTH"
    assert source.region_from_loc(39.7, -105.0) == "PSCO"
    with pytest.raises(ForecastUnavailable, match="No coverage available"):
        source.region_from_loc(0.0, 0.0)


def test_built_from_the_settings(server: WattTimeServer) -> None:
    """The registry builds the adapter from the settings (GRIDSHIFT_WATTTIME_*)."""
    from gridshift.adapters.providers.registry import build_provider
    from gridshift.settings import load_settings

    partial = load_settings(environ={"GRIDSHIFT_WATTTIME_USER": USER}).providers
    with pytest.raises(ValueError, match="GRIDSHIFT_WATTTIME_PASSWORD"):
        build_provider("watttime", partial, "US-CAL-CISO", "CAISO_NORTH")
    settings = load_settings(environ={"GRIDSHIFT_WATTTIME_USER": USER,
                                      "GRIDSHIFT_WATTTIME_PASSWORD": PASSWORD,
                                      "GRIDSHIFT_WATTTIME_URL": server.url})
    src = build_provider("watttime", settings.providers, "US-CAL-CISO", "CAISO_NORTH",
                         fast_client("watttime"))
    try:
        assert src.client.base_url == server.url
        assert src.region_from_loc(42.37, -72.52) == "ISONE_WCMA"
    finally:
        src.close()
