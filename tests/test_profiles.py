"""Tests of the embedded typical-day profiles and of the demo request built from them."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone

import numpy as np
import pytest

from gridshift.app.demo import demo_request, peak_gpu_share
from gridshift.forecasting.profiles import (
    PROFILE_SOURCE,
    known_regions,
    typical_intensity,
    typical_solar_cf,
)

EXPECTED_REGIONS = {
    "US-CAL-CISO",
    "US-TEX-ERCO",
    "US-MIDA-PJM",
    "US-NW-BPAT",
    "US-NY-NYIS",
    "US-MIDW-MISO",
    "DE",
    "GB",
}
JUNE_15 = datetime(2026, 6, 15, tzinfo=UTC)


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- profiles -------------------------------------------------------------------------------------


def test_profiles_load_and_known_regions_present() -> None:
    regions = known_regions()
    assert set(regions) == EXPECTED_REGIONS
    assert regions == sorted(regions)
    assert "EIA-930" in PROFILE_SOURCE and "vessim" in PROFILE_SOURCE
    assert "NESO" in PROFILE_SOURCE and "CC BY 4.0" in PROFILE_SOURCE


@pytest.mark.parametrize("region", sorted(EXPECTED_REGIONS))
def test_values_in_plausible_range(region: str) -> None:
    # A whole (non-leap) year of hourly values covers every (month, hour) cell.
    year = typical_intensity(region, datetime(2027, 1, 1, tzinfo=UTC), 365 * 24, 60)
    assert year.shape == (8760,)
    assert np.all(np.isfinite(year))
    assert np.all((year >= 20.0) & (year <= 1000.0))


def test_hourly_values_are_the_month_hour_cells() -> None:
    hourly = typical_intensity("US-CAL-CISO", JUNE_15, 48, 60)
    # The profile depends on the month and UTC hour only: two June days are equal.
    np.testing.assert_allclose(hourly[:24], hourly[24:])
    # CAISO: the solar hours (around 20:00 UTC) are cleaner than the night (around 05:00 UTC).
    assert hourly[20] < hourly[5]


def test_two_hour_slots_are_the_mean_of_their_hours() -> None:
    hourly = typical_intensity("US-TEX-ERCO", JUNE_15, 24, 60)
    two_hourly = typical_intensity("US-TEX-ERCO", JUNE_15, 12, 120)
    np.testing.assert_allclose(two_hourly, hourly.reshape(12, 2).mean(axis=1))


@pytest.mark.parametrize("slot_minutes", [5, 15, 30])
def test_sub_hourly_slots_repeat_the_hourly_value(slot_minutes: int) -> None:
    hourly = typical_intensity("US-MIDA-PJM", JUNE_15, 24, 60)
    per_hour = 60 // slot_minutes
    fine = typical_intensity("US-MIDA-PJM", JUNE_15, 24 * per_hour, slot_minutes)
    np.testing.assert_allclose(fine, np.repeat(hourly, per_hour))


def test_unaligned_start_is_time_weighted() -> None:
    hourly = typical_intensity("US-NW-BPAT", JUNE_15, 3, 60)
    shifted = typical_intensity("US-NW-BPAT", JUNE_15 + timedelta(minutes=30), 2, 60)
    np.testing.assert_allclose(shifted, (hourly[:-1] + hourly[1:]) / 2)


def test_month_boundary_uses_each_hours_own_month() -> None:
    june_last = typical_intensity("DE", datetime(2026, 6, 30, 23, tzinfo=UTC), 1, 60)[0]
    july_first = typical_intensity("DE", datetime(2026, 7, 1, 0, tzinfo=UTC), 1, 60)[0]
    straddle = typical_intensity("DE", datetime(2026, 6, 30, 23, 30, tzinfo=UTC), 1, 60)[0]
    assert straddle == pytest.approx((june_last + july_first) / 2)


def test_non_utc_aware_start_is_read_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2026, 6, 15, 2, tzinfo=plus_two)  # = 00:00 UTC
    np.testing.assert_allclose(
        typical_intensity("US-NY-NYIS", local, 24, 60),
        typical_intensity("US-NY-NYIS", JUNE_15, 24, 60),
    )


def test_unknown_region_is_a_clear_key_error() -> None:
    with pytest.raises(KeyError, match="known regions"):
        typical_intensity("XX-NOWHERE", JUNE_15, 24, 60)
    with pytest.raises(KeyError, match="XX-NOWHERE"):
        typical_solar_cf("XX-NOWHERE", JUNE_15, 24, 60)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        typical_intensity("DE", datetime(2026, 6, 15), 24, 60)
    with pytest.raises(ValueError):
        typical_intensity("DE", JUNE_15, -1, 60)
    with pytest.raises(ValueError):
        typical_intensity("DE", JUNE_15, 24, 0)
    assert typical_intensity("DE", JUNE_15, 0, 60).shape == (0,)


def test_solar_cf_shape_and_regions_without_solar() -> None:
    cf = typical_solar_cf("US-CAL-CISO", JUNE_15, 24, 60)
    assert cf.shape == (24,)
    assert np.all((cf >= 0.0) & (cf <= 1.0))
    assert cf[20] > 0.8  # Californian noon is 20:00 UTC in summer
    assert cf[8] < 0.01  # and 01:00 local is dark
    for region in ("DE", "US-NY-NYIS", "GB"):
        with pytest.raises(KeyError, match="solar"):
            typical_solar_cf(region, JUNE_15, 24, 60)


# --- demo request ---------------------------------------------------------------------------------


def test_demo_request_is_deterministic() -> None:
    assert demo_request() == demo_request()
    assert demo_request(seed=3) == demo_request(seed=3)
    assert demo_request(seed=3) != demo_request()


def test_demo_request_horizon_sites_and_forecasts() -> None:
    request = demo_request()
    horizon = request["horizon"]
    assert horizon == {"start": "2026-06-15T00:00:00Z", "slot_minutes": 60, "slots": 24}
    sites = request["sites"]
    assert len(sites) == 4
    regions = {site["region"] for site in sites}
    assert len(regions) == 4
    forecasts = {f["region"]: f for f in request["forecasts"]}
    assert set(forecasts) == regions
    for forecast in forecasts.values():
        assert forecast["start"] == horizon["start"]
        assert forecast["slot_minutes"] == 60
        assert len(forecast["carbon_intensity"]) == 24
        assert len(forecast["price_per_mwh"]) == 24
        assert all(20.0 <= v <= 1000.0 for v in forecast["carbon_intensity"])
        assert all(v > 0 for v in forecast["price_per_mwh"])
    solar = [site for site in sites if site.get("renewable_kw")]
    assert len(solar) == 1 and len(solar[0]["renewable_kw"]) == 24
    assert max(solar[0]["renewable_kw"]) > 0


@pytest.mark.parametrize("seed", [7, 0, 1, 2])
def test_demo_jobs_fit_their_windows_and_the_horizon(seed: int) -> None:
    request = demo_request(day=date(2026, 1, 20), seed=seed)
    start = _ts(request["horizon"]["start"])
    end = start + timedelta(hours=24)
    site_ids = {site["id"] for site in request["sites"]}
    capacity = {site["id"]: site["gpu_capacity"] for site in request["sites"]}
    jobs = request["jobs"]
    assert 50 <= len(jobs) <= 70
    assert len({job["id"] for job in jobs}) == len(jobs)
    for job in jobs:
        earliest, deadline = _ts(job["earliest_start"]), _ts(job["deadline"])
        assert earliest.second == 0 and deadline.second == 0
        assert 30 <= job["duration_minutes"] <= 12 * 60
        assert deadline - earliest >= timedelta(minutes=job["duration_minutes"])
        assert start <= earliest and deadline <= end
        # Also on the hourly slot grid (earliest rounds up, deadline rounds down).
        first_slot = math.ceil((earliest - start) / timedelta(hours=1))
        last_slot = math.floor((deadline - start) / timedelta(hours=1))
        assert last_slot - first_slot >= math.ceil(job["duration_minutes"] / 60)
        allowed = job.get("allowed_sites") or sorted(site_ids)
        assert set(allowed) <= site_ids and job["home_site"] in allowed
        assert any(job["gpus"] <= capacity[site] for site in allowed)
        assert job["power_kw"] == pytest.approx(job["gpus"] * 0.7, rel=0.25)
        if job["interruptible"]:
            assert 60 <= job["min_run_minutes"] <= 120
            assert job["min_run_minutes"] <= job["duration_minutes"]
    interruptible = sum(job["interruptible"] for job in jobs)
    assert len(jobs) / 5 <= interruptible <= len(jobs) / 2
    assert any(job.get("allowed_sites") for job in jobs)


def test_demo_peak_gpu_demand_is_60_to_80_percent_of_capacity() -> None:
    request = demo_request()
    capacity = sum(site["gpu_capacity"] for site in request["sites"])
    peak = peak_gpu_share(request["jobs"], _ts(request["horizon"]["start"]), capacity)
    assert 0.6 <= peak <= 0.8


def test_demo_request_parses_as_optimize_request() -> None:
    json_format = pytest.importorskip("google.protobuf.json_format")
    optimize_pb2 = pytest.importorskip("gridshift.api.v1.optimize_pb2")
    message = json_format.ParseDict(demo_request(), optimize_pb2.OptimizeRequest())
    assert len(message.jobs) == len(demo_request()["jobs"])
