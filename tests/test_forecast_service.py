"""Forecast wiring end to end: provider chains behind the cache, fallbacks labelled in
provenance, GetForecast / FindBestWindow over gRPC, and requests filled from providers.
Providers are real HTTP servers on loopback (tests/providers/fake_servers.py)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from conftest import job, make_app, settings_for_tests
from providers.fake_servers import ElectricityMapsServer, fast_client

from gridshift.adapters.codec import to_response
from gridshift.adapters.forecast_service import ForecastConfig, ForecastService
from gridshift.adapters.grpc_client import SchedulerClient
from gridshift.adapters.providers.registry import ProviderSettings
from gridshift.api.v1 import forecast_pb2
from gridshift.api.v1 import optimize_pb2 as pb
from gridshift.app.forecasts import ForecastQueries
from gridshift.optimizer.checker import check_plan
from gridshift.service.servicer import start_server
from gridshift.settings import ServerSettings

TOKEN = "emaps-integration-token-41"
_PROVIDERS: dict[str, ProviderSettings] = {}


@pytest.fixture
def emaps() -> Iterator[ElectricityMapsServer]:
    with ElectricityMapsServer(TOKEN) as server:
        _PROVIDERS["emaps"] = ProviderSettings({"emaps_url": f"{server.url}/v3",
                                                "emaps_token": TOKEN})
        yield server
        _PROVIDERS.clear()


def service(tmp_path, ttl_s: float = 3600.0, **options) -> ForecastService:
    config = ForecastConfig(chains={"DE": ["electricitymaps:DE", "cached", "embedded"]},
                            cache_path=tmp_path / "cache.sqlite",
                            ttl_seconds={"electricitymaps": ttl_s})
    return ForecastService(config, _PROVIDERS.get("emaps"),
                           http_factory=lambda provider: fast_client(provider), **options)


def this_hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def test_provider_answers_then_cache_then_stale_then_embedded(tmp_path, emaps) -> None:
    start = this_hour()
    svc = service(tmp_path, ttl_s=0.0)
    first = svc.resolve("DE", start, 12, 60)
    assert first.provider == "electricitymaps" and not first.fallback and not first.stale
    expected = [emaps.value("DE", start + timedelta(hours=i)) for i in range(12)]
    assert list(first.carbon_intensity[:12]) == expected
    # The provider fails persistently: the cached forecast is served, marked stale.
    emaps.inject("500", times=None)
    stale = svc.resolve("DE", start, 12, 60)
    assert stale.stale and list(stale.carbon_intensity[:12]) == expected
    # A restart (a new service on the same cache file) still has it.
    again = service(tmp_path, ttl_s=0.0).resolve("DE", start, 12, 60)
    assert again.stale and list(again.carbon_intensity[:12]) == expected
    # A window nothing cached covers falls through to the embedded profile, labelled.
    later = service(tmp_path, ttl_s=0.0).resolve("DE", start + timedelta(days=2), 12, 60)
    assert later.fallback and later.provider == "embedded-typical-profile"
    assert "electricitymaps" in later.detail and "500" in later.detail
    assert TOKEN not in later.detail


def test_fresh_cache_is_served_without_asking_the_provider(tmp_path, emaps) -> None:
    svc = service(tmp_path)
    svc.resolve("DE", this_hour(), 6, 60)
    calls = emaps.count("/v3/")
    again = svc.resolve("DE", this_hour(), 6, 60)
    assert emaps.count("/v3/") == calls
    assert again.provider == "electricitymaps" and not again.stale


@pytest.fixture
def server(tmp_path, emaps) -> Iterator[str]:
    running = start_server(make_app(forecast_service=service(tmp_path)), ServerSettings(port=0))
    try:
        yield f"127.0.0.1:{running.port}"
    finally:
        running.server.stop(0).wait()


def test_get_forecast_over_grpc(server: str, emaps) -> None:
    start = this_hour()
    request = forecast_pb2.GetForecastRequest(regions=["DE", "US-CAL-CISO"], slot_minutes=30)
    request.start.FromDatetime(start)
    request.end.FromDatetime(start + timedelta(hours=6))
    with SchedulerClient(server) as client:
        response = client.stub.GetForecast(request, timeout=30)
    de, ca = response.forecasts
    assert de.provenance.provider == "electricitymaps" and not de.provenance.fallback
    assert len(de.carbon_intensity) == 12
    # Hourly provider values on 30-min slots: each hour's value twice.
    assert de.carbon_intensity[0] == de.carbon_intensity[1] == emaps.value("DE", start)
    assert all(lo <= mid <= hi for lo, mid, hi in zip(
        de.carbon_intensity_p10, de.carbon_intensity, de.carbon_intensity_p90, strict=True))
    assert ca.provenance.fallback and ca.provenance.provider == "embedded-typical-profile"


def test_find_best_window_over_grpc_agrees_with_a_scan(server: str) -> None:
    start = this_hour()
    end = start + timedelta(hours=12)
    with SchedulerClient(server) as client:
        series = client.stub.GetForecast(
            forecast_pb2.GetForecastRequest(regions=["DE", "US-NW-BPAT"], slot_minutes=15,
                                            start=_ts(start), end=_ts(end)), timeout=30)
        windows = client.stub.FindBestWindow(
            forecast_pb2.FindBestWindowRequest(regions=["DE", "US-NW-BPAT"],
                                               duration_minutes=90, window_start=_ts(start),
                                               window_end=_ts(end)), timeout=30)
    by_region = {w.region: w for w in windows.regions}
    for f in series.forecasts:
        per_minute = np.repeat(list(f.carbon_intensity), 15)
        answer = by_region[f.region]
        assert answer.curve, "no rolling-average curve"
        for point in answer.curve:       # every candidate start, scanned by brute force
            offset = int((point.start.ToDatetime(tzinfo=UTC) - start).total_seconds() // 60)
            assert point.mean_g_per_kwh == pytest.approx(
                per_minute[offset:offset + 90].mean(), rel=1e-9)
        means = [p.mean_g_per_kwh for p in answer.curve]
        best = min(means)
        first = next(p for p in answer.curve if p.mean_g_per_kwh <= best + 1e-9 * abs(best))
        assert answer.start == first.start
        assert answer.mean_g_per_kwh == pytest.approx(best, rel=1e-9)
    assert windows.best.mean_g_per_kwh == min(w.mean_g_per_kwh for w in windows.regions)


def test_bad_forecast_queries_are_invalid_argument(server: str) -> None:
    import grpc

    with SchedulerClient(server) as client:
        with pytest.raises(grpc.RpcError) as caught:
            client.stub.FindBestWindow(forecast_pb2.FindBestWindowRequest(
                regions=["NOWHERE"], duration_minutes=0), timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for path in ("duration_minutes", "window_start", "window_end"):
        assert path in caught.value.details()


def test_unknown_region_is_named() -> None:
    from gridshift.optimizer.errors import InvalidInputError

    start = this_hour()
    with pytest.raises(InvalidInputError) as caught:
        ForecastQueries(ForecastService()).best_windows(["DE", "NOWHERE"], 60, start,
                                                        start + timedelta(hours=6))
    assert [v.field for v in caught.value.violations] == ["regions[1]"]
    assert "NOWHERE" in str(caught.value)


def test_request_without_forecasts_is_filled_by_the_provider(tmp_path, emaps) -> None:
    start = this_hour()
    request = {"horizon": {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "slots": 8},
               "sites": [{"id": "fra", "region": "DE", "gpu_capacity": 8}],
               "jobs": [job("a", gpus=4, power_kw=3, duration_minutes=120),
                        job("b", gpus=8, power_kw=6, duration_minutes=60)]}
    outcome = make_app(forecast_service=service(tmp_path)).planner.plan(request)
    result = outcome.result
    response = to_response(result, outcome.plan_id)
    assert check_plan(result.problem, result.plan).ok
    expected = [emaps.value("DE", start + timedelta(hours=i)) for i in range(8)]
    assert list(result.problem.ci_g_per_kwh[0]) == expected
    (prov,) = response.provenance
    assert prov.provider == "electricitymaps" and not prov.fallback
    assert pb.PlanStatus.Name(response.status) == "OPTIMAL"
    assert math.isfinite(response.totals.emissions_kg)


def _ts(moment: datetime):
    from google.protobuf.timestamp_pb2 import Timestamp

    ts = Timestamp()
    ts.FromDatetime(moment)
    return ts


def test_actuals_pulled_from_the_provider_history(tmp_path, emaps) -> None:
    from gridshift.adapters.store import ActualSeries, PlanStore

    start = this_hour() - timedelta(hours=12)
    series = service(tmp_path).pull_actuals("DE", start, start + timedelta(hours=6))
    assert series.provider == "electricitymaps"
    assert list(series.carbon_intensity[:6]) == [emaps.value("DE", start + timedelta(hours=i))
                                                 for i in range(6)]
    store = PlanStore(f"sqlite:///{tmp_path / 'store.sqlite'}")
    stored = store.save_actuals([ActualSeries("DE", series.start, series.slot_minutes,
                                              list(series.carbon_intensity), series.provider)])
    assert stored >= 6
    assert [v for _, v in store.actuals("DE", start, start + timedelta(hours=6))] == \
        [float(v) for v in series.carbon_intensity[:6]]
    with pytest.raises(LookupError):
        ForecastService().pull_actuals("NOWHERE", start, start + timedelta(hours=6))


def test_forecasts_are_blended_with_the_actuals_in_the_plan_store(tmp_path, emaps) -> None:
    """With 14 days of recorded actuals (a real SQLite plan store, read by stored_actuals),
    the provider's forecast is blended with their seasonal model: every value moves towards
    the actuals' daily cycle, and provenance says so. Without actuals, or with blending
    switched off, the provider's values are served as they are."""
    from gridshift.adapters.store import ActualSeries, PlanStore
    from gridshift.bootstrap import build_app

    start = this_hour()
    raw = [emaps.value("DE", start + timedelta(hours=i)) for i in range(12)]
    plain = service(tmp_path).resolve("DE", start, 12, 60)
    assert list(plain.carbon_intensity[:12]) == raw and "blended" not in plain.detail

    store = PlanStore(f"sqlite:///{tmp_path / 'store.sqlite'}")
    first = start - timedelta(days=14)
    recorded = [0.6 * emaps.value("DE", first + timedelta(hours=i)) for i in range(14 * 24)]
    store.save_actuals([ActualSeries("DE", first, 60, recorded, "electricitymaps")])
    # The bootstrap's wiring: the provider from the settings, the blend reading the store.
    settings = settings_for_tests(tmp_path, GRIDSHIFT_EMAPS_URL=_PROVIDERS["emaps"].get(
        "emaps_url"), GRIDSHIFT_EMAPS_TOKEN=TOKEN)
    settings = replace(settings, forecasts=ForecastConfig(
        chains={"DE": ["electricitymaps:DE", "cached", "embedded"]}))
    app = build_app(settings, store=store, http_factory=lambda p: fast_client(p))
    blended = app.forecast_service.resolve("DE", start, 12, 60)
    off = build_app(replace(settings, forecasts=replace(settings.forecasts, blend=False)),
                    store=store, http_factory=lambda p: fast_client(p)
                    ).forecast_service.resolve("DE", start, 12, 60)
    # A request without inline forecasts is planned on the blended series.
    request = {"horizon": {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "slots": 8},
               "sites": [{"id": "fra", "region": "DE", "gpu_capacity": 8}],
               "jobs": [job("a", gpus=4, power_kw=3, duration_minutes=120)]}
    outcome = app.planner.plan(request, store=False)
    assert check_plan(outcome.result.problem, outcome.result.plan).ok
    np.testing.assert_allclose(outcome.result.problem.ci_g_per_kwh[0],
                               blended.carbon_intensity[:8])
    (prov,) = to_response(outcome.result).provenance
    assert "blended with the seasonal model" in prov.detail
    assert "blended with the seasonal model of actuals" in blended.detail
    assert blended.provider == "electricitymaps" and not blended.fallback
    values = np.asarray(blended.carbon_intensity[:12])
    assert (values < np.asarray(raw)).all() and (values > 0.6 * np.asarray(raw) - 1).all()
    assert list(off.carbon_intensity[:12]) == raw and "blended" not in off.detail


def test_blend_option_in_the_config_file_is_checked(tmp_path) -> None:
    from gridshift.optimizer.errors import InvalidInputError
    from gridshift.settings import load_settings

    assert ForecastConfig.from_table({"blend": False}).blend is False
    assert ForecastConfig.from_table({}).blend is True
    path = tmp_path / "gridshift.toml"
    path.write_text('[forecasts]\nblend = false\n', encoding="utf-8")
    assert load_settings(str(path), environ={}).forecasts.blend is False
    path.write_text('[forecasts]\nblend = "sometimes"\n', encoding="utf-8")
    with pytest.raises(InvalidInputError, match="forecasts.blend must be true or false"):
        load_settings(str(path), environ={})


@pytest.mark.parametrize(("toml", "message"), [
    ('blnd = false', "unknown key(s) forecasts.blnd"),
    ('regions = "DE"', "forecasts.regions must be a table"),
    ('regions.DE = "electricitymaps:DE"', "forecasts.regions.DE must be a table"),
    ('regions.DE.chane = []', "forecasts.regions.DE must be a table with one key, chain"),
    ('regions.DE.chain = "embedded"', "forecasts.regions.DE.chain must be a list of strings"),
    ('regions.DE.chain = ["elecmaps:DE", "embedded"]', "unknown step 'elecmaps:DE'"),
    ('ttl_seconds = { ukci = -5 }', "forecasts.ttl_seconds.ukci must be seconds >= 0"),
    ('ttl_seconds = { ukci = "soon" }', "forecasts.ttl_seconds.ukci must be seconds >= 0"),
    ('ttl_seconds = { wattime = 60 }', "forecasts.ttl_seconds.wattime: unknown provider"),
    ('cache_path = 5', "forecasts.cache_path must be a file path"),
    ('time_budget_s = 0', "forecasts.time_budget_s must be seconds in (0, 600]"),
    ('time_budget_s = "soon"', "forecasts.time_budget_s must be seconds in (0, 600]"),
])
def test_config_file_mistakes_are_named(tmp_path, toml: str, message: str) -> None:
    """Every mistake in [forecasts] is refused when the file is read (a typo was silently
    ignored, a wrong type was an internal error, an unknown provider failed only when a
    request first needed the region), with the key named."""
    from gridshift.optimizer.errors import InvalidInputError
    from gridshift.settings import load_settings

    path = tmp_path / "gridshift.toml"
    path.write_text(f"[forecasts]\n{toml}\n", encoding="utf-8")
    with pytest.raises(InvalidInputError) as info:
        load_settings(str(path), environ={})
    [violation] = info.value.violations
    assert violation.field == "[forecasts]" and message in violation.problem


def test_the_readme_config_example_is_valid(tmp_path) -> None:
    from conftest import PROJECT_ROOT

    from gridshift.settings import load_settings

    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    example = readme.split("```toml\n[forecasts]\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "gridshift.toml"
    path.write_text("[forecasts]\n" + example, encoding="utf-8")
    config = load_settings(str(path), environ={}).forecasts
    assert config.chains["DE"] == ["electricitymaps:DE", "cached", "embedded"]
    assert config.ttl_seconds == {"electricitymaps": 3600.0, "ukci": 1800.0, "watttime": 300.0}
    assert config.time_budget_s == 20.0
