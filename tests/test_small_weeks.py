"""bench/small_weeks.py: the no-regret rule on the year's small weeks."""

from __future__ import annotations

import sys
from datetime import date

import pytest
from conftest import PROJECT_ROOT, SHARED_DATA, needs_shared_data

sys.path.insert(0, str(PROJECT_ROOT / "bench"))
import small_weeks  # noqa: E402


def _week(run_now: float, lowest: float, gridshift: float, reference: float,
          region: str = "R") -> small_weeks.WeekResult:
    return small_weeks.WeekResult(region, date(2022, 1, 3), 0, 13, run_now, lowest, gridshift,
                                  reference)


def test_the_summary_counts_regret_share_and_lead() -> None:
    results = [_week(100.0, 99.0, 101.5, 95.0),     # 1.5 % worse than run-now, behind lowest
               _week(100.0, 99.0, 100.5, 99.0),     # 0.5 % worse
               _week(200.0, 190.0, 190.0, 180.0)]   # saves 10 of 20, level with lowest
    s = small_weeks.summary(results)
    assert (s["replays"], s["worse"], s["worse_over_1pct"], s["ahead"]) == (3, 2, 1, 1)
    assert s["worst_excess_pct"] == pytest.approx(1.5)
    # saved -1.5 - 0.5 + 10 = 8 kg of the 5 + 1 + 20 = 26 kg perfect foresight saves
    assert s["share_pct"] == pytest.approx(100.0 * 8.0 / 26.0)
    assert results[0].excess_pct == pytest.approx(1.5)


def test_the_small_weeks_of_a_year_are_found_and_replayed() -> None:
    from gridshift.app.backtest.data import SeriesSource, TraceSource, load_inputs

    needs_shared_data("philly-adaptdl", "philly.csv")

    inputs = load_inputs(SeriesSource("DE", None, None), TraceSource(None), SHARED_DATA)
    weeks = small_weeks.small_weeks("DE", inputs, date(2022, 1, 3), 52, (1, 100))
    assert weeks and all(1 <= n <= 100 for _, n in weeks)
    start, n = weeks[0]
    result = small_weeks.replay_week("DE", inputs, start, 0, 2.0, 1.0)
    assert result.jobs == n and result.start == start
    # The reference is the offline optimum: no policy emits less.
    assert result.reference_kg <= min(result.run_now_kg, result.lowest_kg,
                                      result.gridshift_kg) + 1e-6
