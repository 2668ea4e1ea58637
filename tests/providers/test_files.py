"""FileSource: CSV/Parquet series, forecast vintages and "as of" without look-ahead."""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from gridshift.adapters.providers import UnknownRegion
from gridshift.adapters.providers.files import FileSource
from gridshift.forecasting.errors import ForecastUnavailable

DAY = datetime(2026, 6, 15, tzinfo=UTC)
V1 = datetime(2026, 6, 14, 12, tzinfo=UTC)  # day-ahead vintage: 100 + hour
V2 = datetime(2026, 6, 15, 6, tzinfo=UTC)  # intraday vintage from 06:00: 200 + hour


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def vintage_rows() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for h in range(24):
        t = DAY + timedelta(hours=h)
        rows.append({"region": "DE", "valid_at": _iso(t), "value": 100 + h, "issued_at": _iso(V1)})
        if h >= 6:
            rows.append({"region": "DE", "valid_at": _iso(t), "value": 200 + h,
                         "issued_at": _iso(V2)})
        if h < 12:  # actuals: no issued_at
            rows.append({"region": "DE", "valid_at": _iso(t), "value": 150 + h, "issued_at": ""})
    rows.append({"region": "FR", "valid_at": _iso(DAY), "value": 50, "issued_at": _iso(V1)})
    rows.append({"region": "FR", "valid_at": _iso(DAY + timedelta(hours=1)), "value": 55,
                 "issued_at": _iso(V1)})
    return rows


@pytest.fixture
def vintages(tmp_path: Path) -> Path:
    path = tmp_path / "forecasts.csv"
    pd.DataFrame(vintage_rows()).to_csv(path, index=False)
    return path


def test_latest_vintage_known_as_of(vintages: Path) -> None:
    src = FileSource(vintages)
    before = src.forecast("DE", DAY, 24, 60, as_of=V2 - timedelta(minutes=1))
    assert list(before.carbon_intensity) == [100 + h for h in range(24)]
    assert before.issued_at == V1
    at = src.forecast("DE", DAY, 24, 60, as_of=V2)  # issued exactly at as_of: known
    assert list(at.carbon_intensity) == [100 + h if h < 6 else 200 + h for h in range(24)]
    assert at.issued_at == V1  # the oldest vintage used
    later = src.forecast("DE", DAY + timedelta(hours=8), 4, 60, as_of=V2 + timedelta(hours=1))
    assert list(later.carbon_intensity) == [208, 209, 210, 211]
    assert later.issued_at == V2
    assert later.provider == "file"


def test_never_a_value_issued_after_as_of(vintages: Path) -> None:
    src = FileSource(vintages)
    issued: dict[str, list[tuple[datetime, object]]] = {}
    for row in vintage_rows():
        if row["region"] == "DE" and row["issued_at"]:
            when = datetime.fromisoformat(str(row["issued_at"]))
            issued.setdefault(str(row["valid_at"]), []).append((when, row["value"]))
    for minutes in range(0, 30 * 60, 45):
        as_of = V1 + timedelta(minutes=minutes)
        fc = src.forecast("DE", DAY, 24, 60, as_of=as_of)
        for h, value in enumerate(fc.carbon_intensity):
            known = sorted(v for v in issued[_iso(DAY + timedelta(hours=h))] if v[0] <= as_of)
            assert value == known[-1][1]


def test_nothing_issued_yet(vintages: Path) -> None:
    with pytest.raises(ForecastUnavailable, match="no forecast issued at or before"):
        FileSource(vintages).forecast("DE", DAY, 2, 60, as_of=V1 - timedelta(seconds=1))


def test_latest_vintage_without_as_of(vintages: Path) -> None:
    fc = FileSource(vintages).forecast("DE", DAY + timedelta(hours=6), 2, 60)
    assert list(fc.carbon_intensity) == [206, 207]


def test_history_uses_rows_without_issue_time(vintages: Path) -> None:
    src = FileSource(vintages)
    hist = src.history("DE", DAY, DAY + timedelta(hours=12))
    assert list(hist.carbon_intensity) == [150 + h for h in range(12)]
    with pytest.raises(ForecastUnavailable, match="not the requested window"):
        src.history("DE", DAY, DAY + timedelta(hours=13))
    with pytest.raises(ForecastUnavailable, match="no actuals"):
        src.history("FR", DAY, DAY + timedelta(hours=1))


def test_separate_actuals_file(vintages: Path, tmp_path: Path) -> None:
    actuals = tmp_path / "actuals.csv"
    pd.DataFrame({"region": ["FR"] * 4,
                  "valid_at": [_iso(DAY + timedelta(minutes=15 * i)) for i in range(4)],
                  "value": [40, 41, 42, 43]}).to_csv(actuals, index=False)
    hist = FileSource(vintages, actuals_path=actuals).history("FR", DAY, DAY + timedelta(hours=1))
    assert hist.slot_minutes == 15
    assert list(hist.carbon_intensity) == [40, 41, 42, 43]


def test_file_without_vintages(tmp_path: Path) -> None:
    path = tmp_path / "series.csv"
    pd.DataFrame({"region": ["R"] * 3, "valid_at": ["2026-06-15 00:00", "2026-06-15 00:30",
                                                    "2026-06-15 01:00"],
                  "value": [1.0, 2.0, 3.0]}).to_csv(path, index=False)
    src = FileSource(path)
    fc = src.forecast("R", DAY, 3, 30)
    assert fc.start == DAY  # naive timestamps are UTC
    assert list(fc.carbon_intensity) == [1.0, 2.0, 3.0]
    with pytest.raises(ForecastUnavailable, match="no issued_at column"):
        src.forecast("R", DAY, 3, 30, as_of=DAY)
    assert list(src.history("R", DAY, DAY + timedelta(minutes=90)).carbon_intensity) == [
        1.0, 2.0, 3.0]


def test_units_quantiles_and_price(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    pd.DataFrame({"region": ["US"] * 2,
                  "valid_at": ["2026-06-15T00:00:00-05:00", "2026-06-15T01:00:00-05:00"],
                  "value": [1000.0, 800.0], "unit": ["lbs/MWh", "lbs/MWh"],
                  "p10": [900.0, 700.0], "p90": [1100.0, 900.0],
                  "price_per_mwh": [40.0, 45.0]}).to_csv(path, index=False)
    fc = FileSource(path).forecast("US", DAY + timedelta(hours=5), 2, 60)
    assert fc.start == DAY + timedelta(hours=5)  # offsets converted to UTC
    assert fc.carbon_intensity == pytest.approx([453.59237, 362.873896])
    assert fc.carbon_intensity_p10 == pytest.approx([900 * 0.45359237, 700 * 0.45359237])
    assert fc.carbon_intensity_p90 == pytest.approx([1100 * 0.45359237, 900 * 0.45359237])
    assert fc.price_per_mwh == (40.0, 45.0)


def test_gaps_become_nan_and_too_many_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "gaps.csv"
    times = [DAY + timedelta(hours=h) for h in range(8) if h != 3]
    pd.DataFrame({"region": ["R"] * len(times), "valid_at": [_iso(t) for t in times],
                  "value": [100.0] * len(times)}).to_csv(path, index=False)
    fc = FileSource(path).forecast("R", DAY, 8, 60)
    assert math.isnan(fc.carbon_intensity[3])
    sparse = tmp_path / "sparse.csv"
    pd.DataFrame({"region": ["R"] * 3, "valid_at": [_iso(DAY), _iso(DAY + timedelta(hours=1)),
                                                    _iso(DAY + timedelta(hours=7))],
                  "value": [1.0, 2.0, 3.0]}).to_csv(sparse, index=False)
    with pytest.raises(ForecastUnavailable, match="missing"):
        FileSource(sparse).forecast("R", DAY, 8, 60)


@pytest.mark.parametrize(("frame", "words"), [
    ({"region": ["R"], "valid_at": ["2026-06-15T00:00Z"]}, "lacks column(s) value"),
    ({"region": ["R"], "valid_at": ["2026-06-15T00:00Z"], "value": [1.0], "unit": ["MJ"]},
     "unknown unit"),
    ({"region": ["R"], "valid_at": ["not a time"], "value": [1.0]}, "bad value"),
    ({"region": ["R", "R"], "valid_at": ["2026-06-15T00:00Z", "2026-06-15T01:00Z"],
      "value": [0.3e6, 0.31e6]}, "wrong units"),
])
def test_bad_files_are_forecast_unavailable(tmp_path: Path, frame: dict[str, list[object]],
                                            words: str) -> None:
    path = tmp_path / "bad.csv"
    pd.DataFrame(frame).to_csv(path, index=False)
    with pytest.raises(ForecastUnavailable) as err:
        FileSource(path).forecast("R", DAY, 1, 60)
    assert words in str(err.value) and "file" in str(err.value)


def test_missing_file_and_unknown_region(tmp_path: Path, vintages: Path) -> None:
    with pytest.raises(ForecastUnavailable, match="cannot read nope.csv"):
        FileSource(tmp_path / "nope.csv").forecast("R", DAY, 1, 60)
    with pytest.raises(UnknownRegion):
        FileSource(vintages).forecast("XX", DAY, 1, 60)
    with pytest.raises(KeyError):
        FileSource(vintages).history("XX", DAY, DAY + timedelta(hours=1))
    assert FileSource(vintages).regions() == ["DE", "FR"]


def test_file_is_reloaded_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "live.csv"
    pd.DataFrame({"region": ["R"], "valid_at": [_iso(DAY)], "value": [1.0]}).to_csv(path,
                                                                                   index=False)
    src = FileSource(path)
    assert src.forecast("R", DAY, 1, 60).carbon_intensity == (1.0,)
    pd.DataFrame({"region": ["R"], "valid_at": [_iso(DAY)], "value": [2.0]}).to_csv(path,
                                                                                   index=False)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert src.forecast("R", DAY, 1, 60).carbon_intensity == (2.0,)


def test_parquet(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    path = tmp_path / "f.parquet"
    frame = pd.DataFrame(vintage_rows())
    frame["issued_at"] = pd.to_datetime(frame["issued_at"].replace("", None), utc=True)
    frame["valid_at"] = pd.to_datetime(frame["valid_at"], utc=True)
    frame.to_parquet(path)
    fc = FileSource(path).forecast("DE", DAY, 24, 60, as_of=V2)
    assert list(fc.carbon_intensity) == [100 + h if h < 6 else 200 + h for h in range(24)]
