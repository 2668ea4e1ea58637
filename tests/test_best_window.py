"""FindBestWindow: agrees with a brute-force scan; clear errors for bad requests."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gridshift.forecasting.best_window import find_best_window
from gridshift.forecasting.series import Forecast

T0 = datetime(2026, 6, 15, tzinfo=UTC)


def _series(values, step=60, start=T0, region="R") -> Forecast:
    return Forecast(region=region, start=start, slot_minutes=step,
                    carbon_intensity=tuple(float(v) for v in values))


def _brute_mean(forecast: Forecast, start_s: float, duration_s: float) -> float:
    """Time-weighted mean over [start, start + duration) by summing slot overlaps."""
    step_s = forecast.slot_minutes * 60.0
    total = 0.0
    for i, value in enumerate(forecast.carbon_intensity):
        lo, hi = i * step_s, (i + 1) * step_s
        overlap = min(hi, start_s + duration_s) - max(lo, start_s)
        if overlap > 0:
            total += value * overlap
    return total / duration_s


def _brute_force(forecast: Forecast, duration_min: float, window_start: datetime,
                 window_end: datetime) -> tuple[list[float], list[float]]:
    """Candidate starts (seconds after window_start) and their means, by a plain scan."""
    offset_s = (window_start - forecast.start).total_seconds()
    end_s = (window_end - forecast.start).total_seconds()
    duration_s = duration_min * 60.0
    step_s = forecast.slot_minutes * 60
    starts = [offset_s]
    k = 0
    while k * step_s + duration_s <= end_s:
        if k * step_s > offset_s:
            starts.append(float(k * step_s))
        k += 1
    means = [_brute_mean(forecast, s, duration_s) for s in starts]
    return [s - offset_s for s in starts], means


def _earliest_best(means: list[float]) -> int:
    lowest = min(means)
    tol = 1e-9 * max(1.0, abs(lowest))
    return next(i for i, m in enumerate(means) if m <= lowest + tol)


@st.composite
def _cases(draw):
    n_regions = draw(st.integers(1, 3))
    window_offset_s = draw(st.integers(0, 3 * 3600))
    regions = {}
    min_cover_s = math.inf
    max_step = 0
    for r in range(n_regions):
        step = draw(st.sampled_from([5, 15, 30, 60]))
        n = draw(st.integers(4, 80))
        values = draw(st.lists(st.sampled_from([50.0, 100.0, 100.0, 150.0, 222.5, 400.0, 0.0])
                               | st.floats(0, 900, allow_nan=False), min_size=n, max_size=n))
        lead_s = draw(st.integers(0, 2 * 3600))
        start = T0 + timedelta(seconds=window_offset_s) - timedelta(seconds=lead_s)
        regions[f"r{r}"] = _series(values, step, start, f"r{r}")
        min_cover_s = min(min_cover_s, n * step * 60 - lead_s)
        max_step = max(max_step, step)
    if min_cover_s < max_step * 60 + 60:
        return None
    window_s = draw(st.integers(max_step * 60, int(min_cover_s)))
    duration_s = draw(st.integers(max_step * 60, window_s))
    window_start = T0 + timedelta(seconds=window_offset_s)
    return regions, duration_s / 60.0, window_start, window_start + timedelta(seconds=window_s)


@settings(max_examples=150, deadline=None)
@given(_cases())
def test_agrees_with_brute_force(case):
    assume(case is not None)
    regions, duration_min, window_start, window_end = case
    result = find_best_window(regions, duration_min, window_start, window_end)
    for region, forecast in regions.items():
        offsets_s, means = _brute_force(forecast, duration_min, window_start, window_end)
        answer = result.regions[region]
        np.testing.assert_allclose(answer.curve_start_offsets_min * 60.0, offsets_s, atol=1e-6)
        np.testing.assert_allclose(answer.curve_mean_g_per_kwh, means, rtol=1e-9, atol=1e-7)
        best = _earliest_best(means)
        assert answer.start == window_start + timedelta(seconds=offsets_s[best])
        assert answer.mean_intensity_g_per_kwh == pytest.approx(means[best], rel=1e-9, abs=1e-7)
    lowest = min(a.mean_intensity_g_per_kwh for a in result.regions.values())
    assert result.best.mean_intensity_g_per_kwh == pytest.approx(lowest, rel=1e-9, abs=1e-7)


def test_simple_hourly_example():
    forecast = _series([300, 200, 100, 100, 250, 50, 400])
    result = find_best_window({"R": forecast}, 120, T0, T0 + timedelta(hours=7))
    answer = result.regions["R"]
    assert answer.start == T0 + timedelta(hours=2)  # the two 100s
    assert answer.mean_intensity_g_per_kwh == pytest.approx(100.0)
    assert answer.end == T0 + timedelta(hours=4)
    assert [v for _, v in answer.curve()] == pytest.approx([250, 150, 100, 175, 150, 225])
    assert answer.curve()[0][0] == T0


def test_unaligned_window_start_is_a_candidate_and_time_weighted():
    forecast = _series([100, 300, 300, 300], step=60)
    start = T0 + timedelta(minutes=30)
    result = find_best_window({"R": forecast}, 60, start, T0 + timedelta(hours=4))
    answer = result.regions["R"]
    assert answer.start == start
    assert answer.mean_intensity_g_per_kwh == pytest.approx(200.0)  # half 100, half 300
    assert answer.curve()[1][0] == T0 + timedelta(hours=1)


def test_overall_best_across_regions_with_different_steps():
    a = _series([200] * 48, step=30, region="A")
    b = _series([300] * 10 + [90] * 2 + [300] * 12, step=60, region="B")
    c = _series([150] * 288, step=5, region="C")
    result = find_best_window({"A": a, "B": b, "C": c}, 120, T0, T0 + timedelta(hours=24))
    assert result.best.region == "B"
    assert result.best.start == T0 + timedelta(hours=10)
    assert result.best.mean_intensity_g_per_kwh == pytest.approx(90.0)
    assert result.regions["C"].mean_intensity_g_per_kwh == pytest.approx(150.0)


def test_overall_ties_go_to_earliest_then_region_name():
    a = _series([100, 200, 200], region="b")
    b = _series([100, 200, 200], region="a")
    result = find_best_window({"b": a, "a": b}, 60, T0, T0 + timedelta(hours=3))
    assert result.best.region == "a"


def test_gaps_are_filled_from_nearest_neighbour():
    forecast = _series([300, float("nan"), float("nan"), 100])  # -> 300, 300, 100, 100
    result = find_best_window({"R": forecast}, 60, T0, T0 + timedelta(hours=4))
    assert result.regions["R"].start == T0 + timedelta(hours=2)
    assert result.regions["R"].mean_intensity_g_per_kwh == pytest.approx(100.0)
    assert np.isfinite(result.regions["R"].curve_mean_g_per_kwh).all()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"series": {}}, "no regions"),
    ({"duration_minutes": 30}, "shorter than one 60-min step of region 'R'"),
    ({"duration_minutes": 0}, "duration_minutes must be > 0"),
    ({"window_end": T0 + timedelta(hours=30)}, "does not cover the window"),
    ({"window_start": T0 - timedelta(hours=1)}, "does not cover the window"),
    ({"duration_minutes": 600, "window_end": T0 + timedelta(hours=5)}, "shorter than the duration"),
    ({"window_start": datetime(2026, 6, 15)}, "timezone-aware"),
])
def test_errors_name_the_problem(kwargs, message):
    args = {"series": {"R": _series(range(24))}, "duration_minutes": 60, "window_start": T0,
            "window_end": T0 + timedelta(hours=24)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        find_best_window(**args)


def test_empty_series_is_an_error():
    with pytest.raises(ValueError, match="empty series"):
        find_best_window({"R": _series([])}, 60, T0, T0 + timedelta(hours=1))
