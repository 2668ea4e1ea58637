"""Issue 19: faults of the forecast chain found by independent provider doubles, each against
loopback providers (tests/providers/fake_servers.py) wired as gridshift wires them.

1. kg/kWh taken for g/kWh (a unit plausibility rule refuses it; the chain falls back);
2. a call without a total deadline (a trickled body);
3. a hung provider or a 429 with Retry-After holding up the chain (a time budget, regions
   resolved concurrently, fallback in time, also behind a gRPC deadline);
4. a provider outage reported as invalid input (an embedded GB profile; UNAVAILABLE / exit 1
   naming what was tried when nothing can serve);
5. a stale forecast whose provenance did not say why the provider failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import numpy as np
import pytest
from conftest import job, make_app
from providers.fake_servers import (
    ElectricityMapsServer,
    UKCarbonIntensityServer,
    WattTimeServer,
    fast_client,
)

from gridshift.adapters.codec import to_response
from gridshift.adapters.forecast_service import ForecastConfig, ForecastService
from gridshift.adapters.http import HttpClient
from gridshift.adapters.providers.registry import ProviderSettings
from gridshift.api.v1 import optimize_pb2 as pb
from gridshift.api.v1 import scheduler_pb2_grpc
from gridshift.forecasting.errors import ForecastUnavailable
from gridshift.forecasting.series import Forecast
from gridshift.optimizer.errors import UpstreamUnavailableError
from gridshift.service.servicer import start_server
from gridshift.settings import ServerSettings

TOKEN = "emaps-faults-token-19"
EMBEDDED = "embedded-typical-profile"


def production_client(provider: str) -> HttpClient:
    """The production retry policy (5 s reads, 4 retries, Retry-After honoured up to 60 s),
    with a shorter first backoff: what the time budget has to contain."""
    return HttpClient(provider, timeout_s=5, retries=4, backoff_s=0.05, retry_after_max_s=60)


def this_hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def settings_of(em: ElectricityMapsServer | None = None, uk: UKCarbonIntensityServer | None = None,
                wt: WattTimeServer | None = None) -> ProviderSettings:
    values = {}
    if em is not None:
        values.update(emaps_url=f"{em.url}/v3", emaps_token=TOKEN)
    if uk is not None:
        values["ukci_url"] = uk.url
    if wt is not None:
        values.update(watttime_url=wt.url, watttime_user=wt.username,
                      watttime_password=wt.password)
    return ProviderSettings(values)


def service(tmp_path: Path, providers: ProviderSettings, *, chains=None, http=fast_client,
            **config) -> ForecastService:
    return ForecastService(ForecastConfig(chains=chains or {},
                                          cache_path=tmp_path / "cache.sqlite", **config),
                           providers, http_factory=http)


@contextmanager
def served(app) -> Iterator[str]:
    running = start_server(app, ServerSettings(port=0))
    try:
        yield f"127.0.0.1:{running.port}"
    finally:
        running.server.stop(0).wait()


# --- 1. units ---------------------------------------------------------------------------------

def test_kg_per_kwh_from_a_provider_is_refused_and_the_plan_is_not_fooled(tmp_path) -> None:
    """UK CI answers 0.26 for 261 (kg/kWh under its g/kWh field). Before, the job moved to the
    GB site and the plan claimed ~99.9 % savings; now the series is refused for its level (the
    embedded GB profile says ~140 g/kWh), GB falls back to that profile, and provenance says
    why."""
    start = this_hour()
    request = {"horizon": {"start": stamp(start), "slots": 12},
               "sites": [{"id": "fra", "region": "DE", "gpu_capacity": 8},
                         {"id": "lon", "region": "GB", "gpu_capacity": 8}],
               "jobs": [job("a", gpus=4, power_kw=3, duration_minutes=120, home_site="fra"),
                        job("b", gpus=4, power_kw=2, duration_minutes=180, home_site="fra")],
               "options": {"time_limit_seconds": 10}}
    with ElectricityMapsServer(TOKEN) as em, UKCarbonIntensityServer(use_samples=False) as uk:
        uk.inject("kg_units", times=None)
        svc = service(tmp_path, settings_of(em, uk),
                      chains={"DE": ["electricitymaps:DE", "cached", "embedded"],
                              "GB": ["ukci:national", "cached", "embedded"]})
        outcome = make_app(forecast_service=svc).planner.plan(request, store=False)
    response = to_response(outcome.result, outcome.plan_id)
    by_region = {p.region: p for p in response.provenance}
    assert by_region["DE"].provider == "electricitymaps" and not by_region["DE"].fallback
    gb = by_region["GB"]
    assert gb.provider == EMBEDDED and gb.fallback
    assert "ukci: refused: implausible level" in gb.detail
    assert "known level" in gb.detail and "embedded typical profile" in gb.detail
    gb_ci = outcome.result.problem.ci_g_per_kwh[1]
    assert float(np.min(gb_ci)) > 50           # the profile's g/kWh, not 0.2
    assert response.savings_pct < 90


def test_a_whole_day_below_1_g_is_refused_where_no_level_is_known(tmp_path) -> None:
    """London (GB-13, UK CI region 13) has no embedded profile and no recorded actuals: the
    floor alone (24 h in a row below 1 gCO2e/kWh) refuses a day of kg/kWh."""
    with UKCarbonIntensityServer(use_samples=False) as uk:
        uk.inject("kg_units", times=None)
        svc = service(tmp_path, settings_of(uk=uk))
        with pytest.raises(ForecastUnavailable) as caught:
            svc.resolve("GB-13", this_hour(), 24, 60)
    message = str(caught.value)
    assert "ukci: refused: implausible level: 24 h in a row below 1" in message


def test_the_level_of_recorded_actuals_is_the_known_level_where_there_is_no_profile(
        tmp_path) -> None:
    """GB-13 with 21 days of recorded actuals at 200 g/kWh: 6 h of kg/kWh is refused for
    its level (the floor needs a whole day); the same 6 h in g/kWh are served."""
    def actuals(region: str, start: datetime, end: datetime) -> Forecast:
        hours = int((end - start).total_seconds() // 3600)
        return Forecast(region, start, 60, tuple(200.0 for _ in range(hours)), provider="x")

    with UKCarbonIntensityServer(use_samples=False) as uk:
        svc = ForecastService(ForecastConfig(cache_path=tmp_path / "c.sqlite", blend=False),
                              settings_of(uk=uk), http_factory=fast_client, actuals=actuals)
        good = svc.resolve("GB-13", this_hour(), 6, 60)
        uk.inject("kg_units", times=None)
        with pytest.raises(ForecastUnavailable) as caught:
            svc.resolve("GB-13", this_hour() + timedelta(hours=6), 6, 60)
    assert good.provider == "uk-carbon-intensity" and min(good.carbon_intensity) > 50
    assert "recorded actuals of the last 21 days" in str(caught.value)
    assert "below the region's known level" in str(caught.value)


# --- 2. and 3. time ---------------------------------------------------------------------------

def test_a_trickled_answer_is_given_up_at_the_budget_and_the_chain_falls_back(tmp_path) -> None:
    with ElectricityMapsServer(TOKEN) as em:
        em.inject("trickle", times=None)
        svc = service(tmp_path, settings_of(em), http=production_client, time_budget_s=1.5)
        t0 = time.monotonic()
        series = svc.resolve("DE", this_hour(), 24, 60)
        took = time.monotonic() - t0
    assert took < 2.5
    assert series.provider == EMBEDDED and series.fallback
    assert "electricitymaps: timed out: the response body was still arriving" in series.detail


def test_a_hung_provider_costs_its_share_of_the_budget_regions_at_once(tmp_path) -> None:
    """Electricity Maps accepts and never answers; WattTime, next in both chains, is healthy.
    With a 3 s budget, Electricity Maps gets half of it and both regions (resolved together)
    are served by WattTime within it. Before: 5 attempts of the read timeout per region, one
    region after the other."""
    with ElectricityMapsServer(TOKEN, timeout_delay_s=60) as em, \
            WattTimeServer(regions=("CAISO_NORTH", "ERCOT_OTHER")) as wt:
        em.inject("timeout", times=None)
        svc = service(tmp_path, settings_of(em, wt=wt), http=production_client,
                      time_budget_s=3)
        t0 = time.monotonic()
        answers = svc.resolve_many(["US-CAL-CISO", "US-TEX-ERCO"], this_hour(), 6, 60)
        took = time.monotonic() - t0
    assert took < 3.5
    for region in ("US-CAL-CISO", "US-TEX-ERCO"):
        series = answers[region]
        assert isinstance(series, Forecast), series
        assert series.provider == "watttime" and series.fallback
        assert "electricitymaps: timed out: no answer within the call's 1." in series.detail


def test_optimize_with_a_deadline_falls_back_in_time_over_grpc(tmp_path) -> None:
    """The call's 8 s deadline gives forecast resolution half of it: the hung Electricity
    Maps gets 2 s, WattTime serves both regions, the plan arrives in time. Before, the call
    failed with DEADLINE_EXCEEDED."""
    start = this_hour()
    request = {"horizon": {"start": stamp(start), "slots": 6},
               "sites": [{"id": "ca", "region": "US-CAL-CISO", "gpu_capacity": 8},
                         {"id": "tx", "region": "US-TEX-ERCO", "gpu_capacity": 8}],
               "jobs": [job("a", gpus=4, power_kw=3, duration_minutes=120)],
               "options": {"time_limit_seconds": 2}}
    with ElectricityMapsServer(TOKEN, timeout_delay_s=60) as em, \
            WattTimeServer(regions=("CAISO_NORTH", "ERCOT_OTHER")) as wt:
        em.inject("timeout", times=None)
        svc = service(tmp_path, settings_of(em, wt=wt), http=production_client)
        with served(make_app(forecast_service=svc)) as target, \
                grpc.insecure_channel(target) as channel:
            stub = scheduler_pb2_grpc.SchedulerStub(channel)
            message = pb.OptimizeRequest()
            from google.protobuf import json_format
            json_format.ParseDict(request, message)
            t0 = time.monotonic()
            response = stub.Optimize(message, timeout=8)
            took = time.monotonic() - t0
    assert took < 8
    assert {p.region: p.provider for p in response.provenance} == {
        "US-CAL-CISO": "watttime", "US-TEX-ERCO": "watttime"}


def test_retry_after_longer_than_the_budget_falls_back_at_once(tmp_path) -> None:
    """429 with Retry-After: 20 on every answer: the wait would pass the 5 s budget, so the
    chain moves on at once (before: four waits of 20 s)."""
    with ElectricityMapsServer(TOKEN) as em:
        em.inject("429", times=None, retry_after="20")
        svc = service(tmp_path, settings_of(em), http=production_client, time_budget_s=5)
        t0 = time.monotonic()
        series = svc.resolve("DE", this_hour(), 6, 60)
        took = time.monotonic() - t0
    assert took < 1.5
    assert series.provider == EMBEDDED
    assert "Retry-After wait of 20 s would pass" in series.detail


# --- 4. outages are not the user's fault ------------------------------------------------------

def test_a_gb_outage_ends_in_the_embedded_gb_profile(tmp_path) -> None:
    """UK CI down for a GB site: a labelled fallback to the embedded GB profile (before:
    invalid input, exit code 2 / INVALID_ARGUMENT)."""
    start = this_hour()
    request = {"horizon": {"start": stamp(start), "slots": 8},
               "sites": [{"id": "lon", "region": "GB", "gpu_capacity": 8}],
               "jobs": [job("a", gpus=4, power_kw=3, duration_minutes=120)]}
    with UKCarbonIntensityServer(use_samples=False) as uk:
        uk.inject("500", times=None)
        app = make_app(forecast_service=service(tmp_path, settings_of(uk=uk)))
        outcome = app.planner.plan(request, store=False)
    (prov,) = to_response(outcome.result, outcome.plan_id).provenance
    assert prov.provider == EMBEDDED and prov.fallback
    assert "ukci: upstream error (HTTP 500" in prov.detail


def _gb13_request(tmp_path: Path) -> Path:
    request = {"horizon": {"start": stamp(this_hour()), "slots": 8},
               "sites": [{"id": "lon", "region": "GB-13", "gpu_capacity": 8}],
               "jobs": [job("a", gpus=4, power_kw=3, duration_minutes=120)]}
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    return path


def test_nothing_can_serve_is_unavailable_naming_what_was_tried(tmp_path) -> None:
    """London (GB-13) has no embedded profile: with UK CI down nothing can serve it. That is
    UpstreamUnavailableError (gRPC UNAVAILABLE) naming each source tried, not invalid input."""
    request = json.loads(_gb13_request(tmp_path).read_text())
    with UKCarbonIntensityServer(use_samples=False) as uk:
        uk.inject("503", times=None)
        app = make_app(forecast_service=service(tmp_path, settings_of(uk=uk)))
        with pytest.raises(UpstreamUnavailableError) as caught:
            app.planner.prepare(request)
        with served(app) as target, grpc.insecure_channel(target) as channel:
            message = pb.OptimizeRequest()
            from google.protobuf import json_format
            json_format.ParseDict(request, message)
            with pytest.raises(grpc.RpcError) as rpc:
                scheduler_pb2_grpc.SchedulerStub(channel).Optimize(message, timeout=30)
    text = str(caught.value)
    assert "'GB-13' (sites[0])" in text
    assert "ukci: upstream error (HTTP 503" in text and "cache:" in text
    assert rpc.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "ukci: upstream error" in rpc.value.details()


def test_cli_plan_exits_1_not_2_when_the_provider_is_down(tmp_path) -> None:
    """`gridshift plan` with UK CI down for a GB-13 site: exit code 1 and the sources named
    (before: exit code 2, "invalid request"). The config file's time_budget_s keeps it short."""
    config = tmp_path / "gridshift.toml"
    config.write_text("[forecasts]\ntime_budget_s = 1.5\n")
    with UKCarbonIntensityServer(use_samples=False) as uk:
        uk.inject("500", times=None)
        done = subprocess.run(
            [sys.executable, "-m", "gridshift.cli", "plan", str(_gb13_request(tmp_path)),
             "--config", str(config), "-o", str(tmp_path / "plan.json")],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
            env={**os.environ, "GRIDSHIFT_UKCI_URL": uk.url,
                 "GRIDSHIFT_DATA_DIR": str(tmp_path / "data")})
    assert done.returncode == 1, done.stderr
    assert "unavailable" in done.stderr and "GB-13" in done.stderr
    assert "ukci: upstream error" in done.stderr and "invalid" not in done.stderr


# --- 5. provenance of a stale forecast --------------------------------------------------------

def test_a_stale_forecast_says_why_the_provider_failed(tmp_path) -> None:
    with ElectricityMapsServer(TOKEN) as em:
        svc = service(tmp_path, settings_of(em), chains={
            "DE": ["electricitymaps:DE", "cached", "embedded"]}, ttl_seconds={
            "electricitymaps": 0})
        fresh = svc.resolve("DE", this_hour(), 6, 60)
        em.inject("500", times=None)
        stale = svc.resolve("DE", this_hour(), 6, 60)
    assert not fresh.stale and stale.stale
    assert stale.carbon_intensity == fresh.carbon_intensity
    assert "stale: electricitymaps failed (upstream error (HTTP 500" in stale.detail
    assert "served its forecast cached at" in stale.detail
