"""bench/small_weeks.py: the no-regret rule on the year's small weeks."""

from __future__ import annotations

import sys
from datetime import date

import pandas as pd
import pytest
from conftest import PROJECT_ROOT, SHARED_DATA, needs_shared_data

sys.path.insert(0, str(PROJECT_ROOT / "bench"))
import small_weeks  # noqa: E402


def test_the_summary_counts_regret_share_and_lead() -> None:
    """Three weeks in the sweep's weekly columns: 1.5 % and 0.5 % above run-now, then 10 kg
    saved of the 20 perfect foresight saves."""
    rows = pd.DataFrame({
        "region": ["R", "R", "R"], "savings_kg": [-1.5, -0.5, 10.0],
        "pf_savings_kg": [5.0, 1.0, 20.0], "excess_pct": [1.5, 0.5, 0.0],
        "worse_than_run_now": [True, True, False], "ahead_of_lowest": [False, False, True]})
    s = small_weeks.summary(rows)
    assert (s["replays"], s["worse"], s["worse_over_1pct"], s["ahead"]) == (3, 2, 1, 1)
    assert s["worst_excess_pct"] == pytest.approx(1.5)
    assert s["share_pct"] == pytest.approx(100.0 * 8.0 / 26.0)


def test_the_small_weeks_of_a_year_are_found_and_replayed() -> None:
    from gridshift.app.backtest.data import SeriesSource, TraceSource, load_inputs

    needs_shared_data("philly-adaptdl", "philly.csv")
    inputs = load_inputs(SeriesSource("DE", None, None), TraceSource(None), SHARED_DATA)
    weeks = small_weeks.small_weeks("DE", inputs, date(2022, 1, 3), 52, (1, 100))
    assert weeks and all(1 <= n <= 100 for _, n in weeks)
    rows = small_weeks.replay_weeks({"DE": weeks[:1]}, {"DE": inputs}, [0], 2.0, 1.0)
    assert len(rows) == 1 and rows.iloc[0]["start"] == weeks[0][0].isoformat()
    # The reference is the offline optimum: no schedule saves more than it.
    assert rows.iloc[0]["savings_kg"] <= rows.iloc[0]["pf_savings_kg"] + 1e-6
