"""A user's own backtest inputs: a carbon-intensity CSV, a jobs file in the nightly format as a
trace of arrivals, and forecast vintages in the file source's layout.

Carbon CSV: columns ``timestamp`` (ISO 8601; a time without an offset is UTC) and
``carbon_intensity`` (gCO2e/kWh, 0 to 10,000, as in a request's forecast); other columns are
ignored. Any regular step from 5 minutes to an hour (the most common step between rows); a
missing row or an empty value is a gap, filled by linear interpolation. Read as hourly means
(time-weighted) on a UTC index.

Jobs file (the nightly format, adapters/nightly_files.py): each job's ``earliest_start`` is
its arrival; ``deadline`` is kept where given; ``power_kw`` is the job's IT power.

Forecast vintages: the layout of :mod:`gridshift.adapters.providers.files` (``region``,
``valid_at``, ``value``, ``issued_at``), read by that file source; only the named region's
rows with an issue time are used.

Sites file (the nightly format, YAML or JSON): the site replayed for a region is the one named
``site_id``, else the first whose ``region`` is the region's name; its ``id``,
``gpu_capacity``, ``pue`` and ``power_cap_kw`` are used (capacity windows and on-site supply
are not replayed).

Every problem is an :class:`InvalidInputError` naming the file, the field and the problem.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from gridshift.adapters.nightly_files import read_jobs, read_sites
from gridshift.adapters.providers import UnknownRegion
from gridshift.adapters.providers.files import FileSource
from gridshift.forecasting.alignment import align_to_slots
from gridshift.forecasting.errors import ForecastUnavailable
from gridshift.optimizer.errors import FieldViolation, InvalidInputError
from gridshift.optimizer.parsing import MAX_CI_G_PER_KWH

__all__ = ["MAX_STEP_MINUTES", "MIN_STEP_MINUTES", "read_carbon_csv", "read_jobs_trace",
           "read_site", "read_vintages"]

MIN_STEP_MINUTES, MAX_STEP_MINUTES = 5, 60
_COLUMNS = ("timestamp", "carbon_intensity")
_SHOWN = 3


def _fail(path: Path, field: str, problem: str) -> InvalidInputError:
    return InvalidInputError([FieldViolation(f"{path}: {field}", problem)])


def _rows(index: pd.Index) -> str:
    """'rows 2, 5, 9 and 4 more' (file line numbers: the header is line 1)."""
    lines = [str(int(i) + 2) for i in index[:_SHOWN]]
    more = f" and {len(index) - _SHOWN} more" if len(index) > _SHOWN else ""
    return f"line{'s' if len(index) > 1 else ''} {', '.join(lines)}{more}"


def _read_frame(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise _fail(path, "file", f"cannot read it as CSV: {exc}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in _COLUMNS if c not in frame.columns]
    if missing:
        raise _fail(path, f"column {missing[0]!r}",
                    f"missing (the columns are {', '.join(frame.columns) or 'none'}; needed: "
                    f"{', '.join(_COLUMNS)})")
    if len(frame) < 2:
        raise _fail(path, "rows", f"{len(frame)} data row(s); at least 2 are needed")
    return frame


def _timestamps(path: Path, text: pd.Series) -> pd.DatetimeIndex:
    parsed = pd.to_datetime(text.str.strip(), utc=True, format="ISO8601", errors="coerce")
    bad = parsed.isna()
    if bad.any():
        first = text[bad].iloc[0]
        raise _fail(path, "timestamp", f"not an ISO 8601 time at {_rows(text.index[bad])} "
                                       f"(e.g. {first!r}; expected e.g. 2023-05-01T13:00:00Z)")
    index = pd.DatetimeIndex(parsed).as_unit("ns")
    duplicated = index.duplicated()
    if duplicated.any():
        raise _fail(path, "timestamp", f"repeated at {_rows(text.index[duplicated])}")
    return index


def _intensities(path: Path, text: pd.Series) -> np.ndarray:
    stripped = text.str.strip()
    values = pd.to_numeric(stripped, errors="coerce").to_numpy(dtype=float)
    bad = np.isnan(values) & (stripped != "").to_numpy() | np.isinf(values)
    if bad.any():
        raise _fail(path, "carbon_intensity",
                    f"not a finite number at {_rows(text.index[bad])} "
                    f"(e.g. {stripped[bad].iloc[0]!r})")
    negative = values < 0
    if negative.any():
        raise _fail(path, "carbon_intensity",
                    f"negative at {_rows(text.index[negative])} (e.g. "
                    f"{values[negative][0]:g} gCO2e/kWh); intensities are >= 0")
    too_high = values > MAX_CI_G_PER_KWH
    if too_high.any():
        raise _fail(path, "carbon_intensity",
                    f"above {MAX_CI_G_PER_KWH:g} gCO2e/kWh at {_rows(text.index[too_high])} "
                    f"(e.g. {values[too_high][0]:g}; wrong unit?)")
    if np.isnan(values).all():
        raise _fail(path, "carbon_intensity", "every value is empty")
    return values


def _step_minutes(path: Path, index: pd.DatetimeIndex) -> int:
    gaps_min = np.diff((index - index[0]) / pd.Timedelta(minutes=1))
    step = float(pd.Series(gaps_min).mode().iloc[0])
    if not MIN_STEP_MINUTES <= step <= MAX_STEP_MINUTES or step != int(step):
        raise _fail(path, "timestamp",
                    f"the step between rows is {step:g} min; it must be whole minutes from "
                    f"{MIN_STEP_MINUTES} min to {MAX_STEP_MINUTES} min (one hour)")
    off_grid = np.flatnonzero(np.mod(gaps_min, step) != 0)
    if len(off_grid):
        raise _fail(path, "timestamp", f"off the {step:g}-min step at "
                                       f"{_rows(pd.Index(off_grid + 1))}")
    return int(step)


def read_carbon_csv(path: Path | str) -> pd.Series:
    """Hourly mean carbon intensity (gCO2e/kWh) of a user's CSV on a UTC index, over the whole
    hours the file covers (see the module docstring for the layout and checks)."""
    path = Path(path)
    frame = _read_frame(path)
    index = _timestamps(path, frame["timestamp"])
    values = _intensities(path, frame["carbon_intensity"])
    order = np.argsort(index.asi8, kind="stable")
    index, values = index[order], values[order]
    step = _step_minutes(path, index)
    grid = pd.date_range(index[0], index[-1], freq=f"{step}min")
    regular = pd.Series(values, index=index).reindex(grid).interpolate(limit_direction="both")
    first = grid[0].ceil("h")
    hours = int((grid[-1] + pd.Timedelta(minutes=step) - first) / pd.Timedelta(hours=1))
    if hours < 1:
        raise _fail(path, "timestamp", "the file covers less than one whole hour")
    hourly = align_to_slots(regular.to_numpy(float), grid[0].to_pydatetime(), step,
                            first.to_pydatetime(), 60, hours)
    return pd.Series(hourly, index=pd.date_range(first, periods=hours, freq="1h"),
                     name="carbon_intensity")


def read_jobs_trace(path: Path | str) -> pd.DataFrame:
    """A nightly-format jobs file as a trace: ``arrival`` (UTC, the job's earliest_start),
    ``duration_s``, ``gpus``, ``power_kw`` and ``deadline`` (UTC or NaT), sorted by arrival."""
    path = Path(path)
    jobs = read_jobs(path)
    if not jobs:
        raise _fail(path, "jobs", "no jobs in the file")
    problems: list[FieldViolation] = []
    rows = [_trace_row(path, i, job, problems) for i, job in enumerate(jobs)]
    if problems:
        raise InvalidInputError(problems[:20])
    frame = pd.DataFrame(rows)
    return frame.sort_values("arrival", kind="stable").reset_index(drop=True)


def _number(value: object, path: Path, field: str, problems: list[FieldViolation],
            *, whole: bool, positive: bool) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and \
        math.isfinite(float(value))
    if ok and whole:
        ok = float(value).is_integer()
    if ok:
        ok = float(value) > 0 if positive else float(value) >= 0
    if not ok:
        kind = "a whole number" if whole else "a number"
        problems.append(FieldViolation(f"{path}: {field}",
                                       f"must be {kind} {'> 0' if positive else '>= 0'}, "
                                       f"got {value!r}"))
        return math.nan
    return float(value)


def _time(value: object, path: Path, field: str, problems: list[FieldViolation],
          required: bool) -> pd.Timestamp:
    if value in (None, ""):
        if required:
            problems.append(FieldViolation(f"{path}: {field}",
                                           "required in a backtest (the job's arrival)"))
        return pd.NaT
    stamp = pd.to_datetime(str(value), utc=True, format="ISO8601", errors="coerce")
    if pd.isna(stamp):
        problems.append(FieldViolation(f"{path}: {field}",
                                       f"not an RFC 3339 time: {value!r}"))
    return stamp


def _trace_row(path: Path, i: int, job: dict, problems: list[FieldViolation]) -> dict:
    name = f"jobs[{i}]"
    if not isinstance(job, dict):
        problems.append(FieldViolation(f"{path}: {name}", "expected an object"))
        return {}
    arrival = _time(job.get("earliest_start"), path, f"{name}.earliest_start", problems, True)
    deadline = _time(job.get("deadline"), path, f"{name}.deadline", problems, False)
    minutes = _number(job.get("duration_minutes"), path, f"{name}.duration_minutes", problems,
                      whole=True, positive=True)
    return {"id": str(job.get("id", name)), "arrival": arrival, "duration_s": minutes * 60.0,
            "gpus": _number(job.get("gpus"), path, f"{name}.gpus", problems, whole=True,
                            positive=True),
            "power_kw": _number(job.get("power_kw"), path, f"{name}.power_kw", problems,
                                whole=False, positive=False),
            "deadline": deadline}


def read_vintages(path: Path | str, region: str, *,
                  required: bool = True) -> pd.DataFrame | None:
    """Forecast vintages of ``region`` from a file in the file source's layout: ``issued_at``,
    ``valid_at`` (UTC) and ``value`` (gCO2e/kWh), sorted by issue time. Rows without an issue
    time (actuals) are left out. A file without vintages of ``region`` is an error when
    ``required``, else None."""
    path = Path(path)
    try:
        frame = FileSource(path).vintages(region)
    except UnknownRegion:
        if not required:
            return None
        raise _fail(path, "region", f"no rows for region {region!r}") from None
    except ForecastUnavailable as exc:
        raise _fail(path, "forecast vintages", exc.reason) from None
    if "issued_at" not in frame.columns or frame["issued_at"].isna().all():
        if not required:
            return None
        raise _fail(path, "issued_at", f"no forecast vintages (rows with an issue time) for "
                                       f"region {region!r}")
    frame = frame.dropna(subset=["issued_at"])
    if (frame["value"] < 0).any():
        raise _fail(path, "value", "negative forecast values")
    return frame[["issued_at", "valid_at", "value"]].sort_values(
        ["issued_at", "valid_at"], kind="stable").reset_index(drop=True)


def read_site(path: Path | str, region: str, site_id: str | None = None) -> dict:
    """The site a backtest of ``region`` replays, from a nightly sites file (see the module
    docstring): ``site_id``, ``capacity_gpus``, ``pue`` and ``power_cap_kw`` (None: no cap)."""
    path = Path(path)
    sites, _ = read_sites(path)
    chosen = [s for s in sites if isinstance(s, dict)
              and (s.get("id") == site_id if site_id else s.get("region") == region)]
    if not chosen:
        wanted = f"id {site_id!r}" if site_id else f"region {region!r}"
        raise _fail(path, "sites", f"no site with {wanted}")
    site = chosen[0]
    problems: list[FieldViolation] = []
    name = f"sites[{sites.index(site)}]"
    capacity = _number(site.get("gpu_capacity"), path, f"{name}.gpu_capacity", problems,
                       whole=True, positive=True)
    pue = _number(site.get("pue", 1.0), path, f"{name}.pue", problems, whole=False,
                  positive=True)
    if math.isfinite(pue) and pue < 1:
        problems.append(FieldViolation(f"{path}: {name}.pue", f"must be >= 1, got {pue!r}"))
    cap = site.get("power_cap_kw")
    cap_kw = None if cap in (None, 0) else _number(cap, path, f"{name}.power_cap_kw", problems,
                                                   whole=False, positive=True)
    if problems:
        raise InvalidInputError(problems)
    return {"site_id": str(site.get("id", "site")), "capacity_gpus": int(capacity),
            "pue": float(pue), "power_cap_kw": cap_kw}
