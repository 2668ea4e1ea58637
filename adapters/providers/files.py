"""Series from CSV or Parquet files, with forecast vintages for "as of" backtests.

File layout (one row per value; extra columns are ignored):

| column | meaning |
| --- | --- |
| ``region`` | gridshift region name |
| ``valid_at`` | start of the period the value applies to (RFC 3339; naive = UTC) |
| ``value`` | carbon intensity, gCO2e/kWh |
| ``issued_at`` (optional) | when this forecast value was issued (its vintage); empty = an actual |
| ``unit`` (optional) | per row: a gCO2e/kWh spelling, or ``lbs/MWh`` (converted); others rejected |
| ``p10``, ``p90``, ``price_per_mwh`` (optional) | quantiles (g/kWh) and price per MWh |

The step of a region's series is the smallest gap between its ``valid_at`` values.

* ``forecast(region, start, slots, slot_minutes, as_of=None)``: for every valid time, the value
  of the latest vintage issued **at or before** ``as_of`` (``None``: the latest vintage in the
  file). A value issued after ``as_of`` is never used, so a backtest only sees what was known at
  its decision time. Rows without ``issued_at`` are actuals and are not used for forecasts; a
  file with no ``issued_at`` column at all is one undated series, served only when ``as_of`` is
  ``None`` (with an ``as_of`` it cannot prove what was known then, so it refuses).
  ``issued_at`` of the result is the **oldest** vintage used (conservative for staleness).
* ``history(region, start, end)``: rows without ``issued_at`` in the main file, or every row of
  ``actuals_path`` when given (the latest vintage per valid time if that file has vintages).

Parquet needs pyarrow (or fastparquet); every load problem (missing file, missing column, bad
timestamp, no Parquet engine) is a ForecastUnavailable naming the file, not a crash. The file
is re-read when its modification time changes.
"""

from __future__ import annotations

import math
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from gridshift.adapters.providers import (
    MAX_MISSING_FRACTION,
    MAX_PLAUSIBLE_G_PER_KWH,
    UnknownRegion,
    utc,
    window_end,
)
from gridshift.forecasting.errors import ForecastUnavailable
from gridshift.forecasting.series import Forecast

__all__ = ["PROVIDER", "FileSource"]

PROVIDER = "file"
REQUIRED = ("region", "valid_at", "value")
_G_PER_KWH = frozenset({"", "nan", "g/kwh", "gco2/kwh", "gco2e/kwh", "gco2eq/kwh"})
_UNIT_FACTORS = {"lbs/mwh": 0.45359237, "lbs_co2_per_mwh": 0.45359237, "kg/mwh": 1.0,
                 "kgco2/mwh": 1.0, "kgco2e/mwh": 1.0}
_OPTIONAL = ("p10", "p90", "price_per_mwh")


class FileSource:
    """``ForecastSource`` over a CSV/Parquet file (see the module docstring for the layout)."""

    def __init__(self, path: str | os.PathLike[str], *,
                 actuals_path: str | os.PathLike[str] | None = None,
                 provider: str = PROVIDER) -> None:
        self.path = Path(path)
        self.actuals_path = Path(actuals_path) if actuals_path is not None else None
        self.name = provider
        self._cache: dict[Path, tuple[float, pd.DataFrame]] = {}
        self._lock = threading.Lock()

    def regions(self) -> list[str]:
        """The regions present in the main file."""
        return sorted(self._frame(self.path, "?")["region"].unique().tolist())

    # -- ForecastSource --------------------------------------------------------------------
    def forecast(self, region: str, start: datetime, slots: int, slot_minutes: int,
                 as_of: datetime | None = None) -> Forecast:
        """The series covering the window, from the latest vintages known at ``as_of``."""
        start = utc(start)
        end = window_end(start, slots, slot_minutes)
        frame = self._frame(self.path, region)
        rows = self._region_rows(frame, region)
        if "issued_at" not in frame.columns:
            if as_of is not None:
                raise ForecastUnavailable(
                    self.name, region, f"{self.path.name} has no issued_at column, so it cannot "
                    f"give a forecast as of {utc(as_of):%Y-%m-%dT%H:%MZ} without look-ahead")
            return self._series(region, rows, start, end, issued_at=None)
        rows = rows[rows["issued_at"].notna()]
        if as_of is not None:
            rows = rows[rows["issued_at"] <= pd.Timestamp(utc(as_of))]
        if rows.empty:
            when = f" at or before {utc(as_of):%Y-%m-%dT%H:%MZ}" if as_of is not None else ""
            raise ForecastUnavailable(self.name, region, f"no forecast issued{when}")
        latest = self._latest_vintage(rows)
        return self._series(region, latest, start, end, issued_at="oldest")

    def vintages(self, region: str) -> pd.DataFrame:
        """Every row of ``region`` in the main file as loaded (``valid_at`` and ``issued_at``
        in UTC, ``value`` in gCO2e/kWh): what a backtest replays "as of" each decision."""
        return self._region_rows(self._frame(self.path, region), region).copy()

    def history(self, region: str, start: datetime, end: datetime) -> Forecast:
        """Actuals over ``[start, end)``."""
        start, end = utc(start), utc(end)
        if end <= start:
            raise ValueError("history needs end > start")
        if self.actuals_path is not None:
            frame = self._frame(self.actuals_path, region)
            rows = self._region_rows(frame, region, self.actuals_path)
            if "issued_at" in rows.columns:
                rows = self._latest_vintage(rows)
        else:
            frame = self._frame(self.path, region)
            rows = self._region_rows(frame, region)
            if "issued_at" in rows.columns:
                rows = rows[rows["issued_at"].isna()]
            if rows.empty:
                raise ForecastUnavailable(self.name, region,
                                          f"{self.path.name} has no actuals (rows without "
                                          "issued_at) for this region")
        return self._series(region, rows, start, end, issued_at=None)

    # -- loading ---------------------------------------------------------------------------
    def _frame(self, path: Path, region: str) -> pd.DataFrame:
        try:
            mtime = path.stat().st_mtime
        except OSError as exc:
            raise ForecastUnavailable(self.name, region,
                                      f"cannot read {path.name}: {exc.strerror}") from None
        with self._lock:
            cached = self._cache.get(path)
            if cached is not None and cached[0] == mtime:
                return cached[1]
        frame = self._load(path, region)
        with self._lock:
            self._cache[path] = (mtime, frame)
        return frame

    def _load(self, path: Path, region: str) -> pd.DataFrame:
        try:
            if path.suffix.lower() in (".parquet", ".pq"):
                raw = pd.read_parquet(path)
            else:
                raw = pd.read_csv(path, dtype={"region": str}, keep_default_na=True)
        except ImportError as exc:
            raise ForecastUnavailable(self.name, region,
                                      f"cannot read {path.name}: {exc}") from None
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise ForecastUnavailable(self.name, region,
                                      f"cannot read {path.name}: {exc}") from None
        missing = [c for c in REQUIRED if c not in raw.columns]
        if missing:
            raise ForecastUnavailable(self.name, region,
                                      f"{path.name} lacks column(s) {', '.join(missing)}")
        frame = pd.DataFrame({"region": raw["region"].astype(str)})
        try:
            frame["valid_at"] = _to_utc(raw["valid_at"])
            if "issued_at" in raw.columns:
                frame["issued_at"] = _to_utc(raw["issued_at"])
            factor = _unit_factors(raw)
            frame["value"] = pd.to_numeric(raw["value"], errors="raise") * factor
            for col in _OPTIONAL:
                if col in raw.columns:
                    scale = factor if col in ("p10", "p90") else 1.0
                    frame[col] = pd.to_numeric(raw[col], errors="raise") * scale
        except (ValueError, TypeError) as exc:
            raise ForecastUnavailable(self.name, region,
                                      f"{path.name}: bad value ({exc})") from None
        if frame["valid_at"].isna().any():
            raise ForecastUnavailable(self.name, region, f"{path.name}: empty valid_at")
        return frame

    # -- series ----------------------------------------------------------------------------
    def _region_rows(self, frame: pd.DataFrame, region: str,
                     path: Path | None = None) -> pd.DataFrame:
        rows = frame[frame["region"] == region]
        if rows.empty:
            raise UnknownRegion(self.name, region,
                                f"no rows for this region in {(path or self.path).name}")
        return rows

    @staticmethod
    def _latest_vintage(rows: pd.DataFrame) -> pd.DataFrame:
        ordered = rows.sort_values(["valid_at", "issued_at"], kind="stable")
        return ordered.drop_duplicates("valid_at", keep="last")

    def _series(self, region: str, rows: pd.DataFrame, start: datetime, end: datetime, *,
                issued_at: str | None) -> Forecast:
        rows = rows.drop_duplicates("valid_at", keep="last").sort_values("valid_at")
        times = [t.to_pydatetime() for t in rows["valid_at"]]
        if len(times) >= 2:
            gaps = np.diff(np.array([t.timestamp() for t in times]))
            step_s = float(gaps[gaps > 0].min())
        else:
            step_s = float((end - start).total_seconds())
        if step_s % 60:
            raise ForecastUnavailable(self.name, region,
                                      f"series step {step_s:g} s is not whole minutes")
        step = timedelta(seconds=step_s)
        covering = [i for i, t in enumerate(times) if t < end and t + step > start]
        if not covering:
            raise ForecastUnavailable(self.name, region, "no values in the requested window")
        first, last = times[covering[0]], times[covering[-1]]
        if first > start or last + step < end:
            raise ForecastUnavailable(
                self.name, region, f"data covers {first:%Y-%m-%dT%H:%MZ} to "
                f"{last + step:%Y-%m-%dT%H:%MZ}, not the requested window "
                f"{start:%Y-%m-%dT%H:%MZ} to {end:%Y-%m-%dT%H:%MZ}")
        n = int((last - first) / step) + 1
        index = {t: i for i, t in enumerate(times)}
        picked = rows.iloc[[index[first + k * step] if first + k * step in index else -1
                            for k in range(n)]].copy()
        present = np.array([first + k * step in index for k in range(n)])
        if any((t - first) % step for t in times[covering[0]:covering[-1] + 1]):
            raise ForecastUnavailable(self.name, region, "irregular valid_at times")

        def column(name: str) -> tuple[float, ...]:
            if name not in picked.columns:
                return ()
            vals = np.where(present, picked[name].to_numpy(dtype=float), math.nan)
            return tuple(float(v) for v in vals)

        values = column("value")
        finite = [v for v in values if math.isfinite(v)]
        if not finite:
            raise ForecastUnavailable(self.name, region, "only empty values in the window")
        if n - len(finite) > MAX_MISSING_FRACTION * n:
            raise ForecastUnavailable(self.name, region,
                                      f"{n - len(finite)} of {n} values missing in the window")
        if min(finite) < 0 or max(finite) > MAX_PLAUSIBLE_G_PER_KWH:
            raise ForecastUnavailable(
                self.name, region, f"implausible carbon intensity {min(finite):g}.."
                f"{max(finite):g} g/kWh (wrong units?)")
        issued: datetime | None = None
        if issued_at == "oldest" and "issued_at" in picked.columns:
            stamps = picked.loc[present, "issued_at"] if present.any() else picked["issued_at"]
            oldest = stamps.min()
            issued = oldest.to_pydatetime() if pd.notna(oldest) else None
        return Forecast(region=region, start=first, slot_minutes=int(step_s // 60),
                        carbon_intensity=values, carbon_intensity_p10=column("p10"),
                        carbon_intensity_p90=column("p90"),
                        price_per_mwh=column("price_per_mwh"), provider=self.name,
                        issued_at=issued if issued is not None else datetime.now(UTC))


def _to_utc(column: pd.Series) -> pd.Series:
    """Parse timestamps; naive ones are UTC, aware ones are converted to UTC."""
    parsed = pd.to_datetime(column, utc=True, format="ISO8601")
    return parsed


def _unit_factors(raw: pd.DataFrame) -> np.ndarray | float:
    if "unit" not in raw.columns:
        return 1.0
    units = raw["unit"].astype(str).str.strip().str.lower().str.replace(" ", "")
    factors = np.ones(len(units))
    for i, unit in enumerate(units):
        if unit in _G_PER_KWH:
            continue
        if unit in _UNIT_FACTORS:
            factors[i] = _UNIT_FACTORS[unit]
            continue
        raise ValueError(f"unknown unit {raw['unit'].iloc[i]!r} (expected gCO2e/kWh or lbs/MWh)")
    return factors
