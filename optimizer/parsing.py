"""Parse the canonical request (protobuf's JSON mapping, as a dict) into typed domain objects.

Every problem is collected with its field path (`jobs[3].deadline: before earliest_start`) and
reported at once in one InvalidInputError. Both snake_case proto names and the JSON mapping's
lowerCamelCase names are accepted.
"""

from __future__ import annotations

import functools
import json
import math
import re
import unicodedata
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from gridshift.forecasting.alignment import covers
from gridshift.optimizer.domain import (
    DEFAULT_RELATIVE_GAP,
    DEFAULT_TIME_LIMIT_SECONDS,
    Backend,
    CapacityWindow,
    Forecast,
    Horizon,
    Job,
    Objective,
    Options,
    Request,
    RiskMeasure,
    Site,
)
from gridshift.optimizer.errors import CancelledError, FieldViolation, InvalidInputError

MAX_SLOTS = 20_000
INT32_MAX = 2**31 - 1
# Plausibility ceilings: values far beyond any real grid or site are a unit or typing error,
# and at floating-point extremes they would turn totals into inf/NaN (or lose the other
# values' precision) instead of giving an answer.
#: gCO2e/kWh; the dirtiest grids average about 1,000 (lignite about 1,200). Provider data is
#: held to a tighter 2,500 (adapters.providers), since a bad upstream value has a fallback; a
#: request's own values only need to be safe to compute with.
MAX_CI_G_PER_KWH = 10_000.0
#: per MWh, either sign; wholesale price caps are in the low thousands to tens of thousands.
MAX_ABS_PRICE_PER_MWH = 1e6
#: kW of one job's IT power, or of a site's on-site supply in a slot (10 GW).
MAX_POWER_KW = 1e7
#: power usage effectiveness; real facilities run at 1.05-2.5.
MAX_PUE = 10.0
#: Objective weights and job priorities: only their ratios matter, and beyond this they overflow
#: the objective (weight x priority x hours x kg).
MAX_WEIGHT = 1e9
#: Forecast scenarios one request may ask for, and the values they may hold in all (scenarios x
#: sites x slots, 8 bytes each: 400 MB), so that no request can exhaust the server's memory.
MAX_SCENARIOS = 10_000
MAX_SCENARIO_VALUES = 50_000_000
_MISSING = object()


_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])([A-Z])")
#: Field names longer than this are converted every time rather than remembered (a request's
#: keys are the client's: the cache must not hold arbitrarily long strings).
_SNAKE_CACHE_MAX_LEN = 64


def _to_snake(name: str) -> str:
    """``earliestStart`` -> ``earliest_start`` (snake_case names pass unchanged)."""
    return _CAMEL_HUMP.sub(r"_\1", name).lower()


# Parsing a request converts every key of every job (hundreds of thousands in a backtest).
_to_snake_remembered = functools.lru_cache(maxsize=1024)(_to_snake)


def _snake(name: str) -> str:
    """:func:`_to_snake`, remembered for short names."""
    if len(name) <= _SNAKE_CACHE_MAX_LEN:
        return _to_snake_remembered(name)
    return _to_snake(name)


class _Reader:
    """Reads typed values out of nested dicts, recording violations instead of raising."""

    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []
        # Paths whose value could not be read at all (wrong type, malformed): follow-on checks
        # of the same field or of fields inside it would only repeat the problem with a
        # misleading default ("must be positive, got 0" after "must be an integer, got 'two'").
        self._broken: set[str] = set()

    def error(self, path: str, problem: str) -> None:
        if self._broken and self._under_broken(path):
            return
        self.violations.append(FieldViolation(path, problem))

    def invalid(self, path: str, problem: str) -> None:
        """A value that cannot be read; later problems at or under `path` are not repeated."""
        self.error(path, problem)
        self._broken.add(path)

    def _under_broken(self, path: str) -> bool:
        return any(path == b or path.startswith((f"{b}.", f"{b}[")) for b in self._broken)

    def obj(self, value: Any, path: str, allowed: set[str]) -> dict[str, Any]:
        if value is None or value is _MISSING:
            return {}
        if not isinstance(value, dict):
            self.invalid(path, "must be an object")
            return {}
        out: dict[str, Any] = {}
        given_as: dict[str, str] = {}
        for key, item in value.items():
            name = _snake(str(key))
            if name not in allowed:
                self.error(_join(path, str(key)), "unknown field")
            elif name in out:
                self.error(_join(path, str(key)), f"given twice (also as {given_as[name]!r})")
            else:
                out[name] = item
                given_as[name] = str(key)
        return out

    def list_(self, value: Any, path: str) -> list[Any]:
        if value is None or value is _MISSING:
            return []
        if not isinstance(value, list):
            self.invalid(path, "must be a list")
            return []
        return value

    def string(self, value: Any, path: str) -> str:
        if value is None or value is _MISSING:
            return ""
        if not isinstance(value, str):
            self.invalid(path, "must be a string")
            return ""
        return value

    def ident(self, value: Any, path: str) -> str:
        """A name (id, team, region, site reference): a string without control characters
        (NUL, newlines, ...) or bidirectional-text controls, which would let a name print as
        another one in logs, tables and reports."""
        text = self.string(value, path)
        if text.isascii() and text.isprintable():
            return text         # most names; ASCII's only forbidden characters are unprintable
        bad = next((c for c in text if _forbidden_in_name(c)), None)
        if bad is not None:
            self.invalid(path, f"contains the control character U+{ord(bad):04X} (names may "
                               "not hold control or bidirectional-text characters)")
        return text

    def boolean(self, value: Any, path: str) -> bool:
        if value is None or value is _MISSING:
            return False
        if not isinstance(value, bool):
            self.invalid(path, "must be true or false")
            return False
        return value

    def integer(self, value: Any, path: str, default: int = 0) -> int:
        if value is None or value is _MISSING:
            return default
        if isinstance(value, str):  # the JSON mapping allows integers as strings
            try:
                value = int(value)
            except ValueError:
                self.invalid(path, f"must be an integer, got {value!r}")
                return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.invalid(path, f"must be an integer, got {value!r}")
            return default
        if isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
            self.invalid(path, f"must be an integer, got {value!r}")
            return default
        if abs(int(value)) > INT32_MAX:
            self.invalid(path, "out of range for int32")
            return default
        return int(value)

    def number(self, value: Any, path: str, default: float = 0.0) -> float:
        if value is None or value is _MISSING:
            return default
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                self.invalid(path, f"must be a number, got {value!r}")
                return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.invalid(path, f"must be a number, got {value!r}")
            return default
        if not math.isfinite(value):
            self.invalid(path, "must be a finite number")
            return default
        return float(value)

    def numbers(self, value: Any, path: str) -> tuple[float, ...]:
        items = self.list_(value, path)
        return tuple(self.number(v, f"{path}[{i}]") for i, v in enumerate(items))

    def timestamp(self, value: Any, path: str) -> datetime | None:
        if value is None or value is _MISSING:
            return None
        if not isinstance(value, str):
            self.invalid(path, "must be an RFC 3339 timestamp string")
            return None
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            self.invalid(path, f"malformed timestamp {value!r} (expected RFC 3339, "
                               "e.g. 2026-06-15T00:00:00Z)")
            return None
        if parsed.tzinfo is None:
            self.invalid(path, f"timestamp {value!r} has no UTC offset (add Z or +00:00)")
            return None
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            self.invalid(path, f"timestamp {value!r} is out of range "
                               "(0001-01-01 to 9999-12-31 UTC)")
            return None

    def enum(self, value: Any, path: str, enum_type: type, default: Any) -> Any:
        if value is None or value is _MISSING:
            return default
        for member in enum_type:
            if value == member.value or (isinstance(value, int) and not isinstance(value, bool)
                                         and value == list(enum_type).index(member)):
                return member
        names = ", ".join(m.value for m in enum_type)
        self.invalid(path, f"unknown value {value!r} (expected one of {names})")
        return default


#: Bidirectional-text controls (embeddings, overrides, isolates, marks): "Trojan Source".
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                           "\u2066\u2067\u2068\u2069")


def _forbidden_in_name(c: str) -> bool:
    return c in _BIDI_CONTROLS or unicodedata.category(c) in ("Cc", "Cs")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def parse_request_json(text: str | bytes) -> Request:
    """Parse a request from JSON text; unreadable JSON is an InvalidInputError too."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError([FieldViolation("", f"unreadable JSON: {exc}")]) from None
    return parse_request(data)


def parse_request(data: Any, stop: Callable[[], bool] | None = None) -> Request:
    """Parse and validate a request dict; raises InvalidInputError listing every problem.
    ``stop`` (the caller gave up: cancelled, past its deadline) is asked every
    STOP_CHECK_EVERY sites or jobs; when it says so, CancelledError ends the validation."""
    r = _Reader()
    if not isinstance(data, dict):
        raise InvalidInputError([FieldViolation("", "request must be a JSON object")])
    top = r.obj(data, "", {"horizon", "sites", "jobs", "forecasts", "objective", "options"})
    horizon = _parse_horizon(r, top.get("horizon"))
    sites = [_parse_site(r, s, f"sites[{i}]", horizon)
             for i, s in enumerate(r.list_(top.get("sites"), "sites")) if _go_on(stop, i)]
    jobs = [_parse_job(r, j, f"jobs[{i}]", horizon)
            for i, j in enumerate(r.list_(top.get("jobs"), "jobs")) if _go_on(stop, i)]
    forecasts = [_parse_forecast(r, f, f"forecasts[{i}]", horizon)
                 for i, f in enumerate(r.list_(top.get("forecasts"), "forecasts"))]
    objective = _parse_objective(r, top.get("objective"))
    options = _parse_options(r, top.get("options"))
    _check_references(r, sites, jobs, forecasts, horizon, objective)
    if horizon is not None and options.scenarios:
        too_many = scenario_count_problem(options.scenarios, len(sites), horizon.slots)
        if too_many:
            r.error("options.scenarios", too_many)
    if r.violations:
        _note_unplaceable_jobs(r, sites, jobs)
        raise InvalidInputError(r.violations)
    assert horizon is not None
    return Request(horizon=horizon, sites=tuple(sites), jobs=tuple(jobs),
                   forecasts=tuple(forecasts), objective=objective, options=options)


#: How often (in sites or jobs) a long validation asks whether its caller still wants it.
STOP_CHECK_EVERY = 256


def _go_on(stop: Callable[[], bool] | None, i: int) -> bool:
    if stop is not None and i % STOP_CHECK_EVERY == 0 and stop():
        raise CancelledError("the call ended while its request was being validated")
    return True


def check_site_supply(sites: Any) -> None:
    """InvalidInputError when an on-site supply a site's plant was turned into (``solar_kwp``,
    ``wind_kw`` -> ``renewable_kw``) breaks the limits a given ``renewable_kw`` is held to:
    what is planned and stored must read back as a valid request (reports re-parse it)."""
    violations = []
    for s, site in enumerate(sites):
        for i, kw in enumerate(site.renewable_kw):
            if not math.isfinite(kw) or kw < 0 or kw > MAX_POWER_KW:
                violations.append(FieldViolation(
                    f"sites[{s}].renewable_kw[{i}]",
                    f"{kw:g} kW derived from the site's plant (solar_kwp {site.solar_kwp:g}, "
                    f"wind_kw {site.wind_kw:g}) is outside 0..{MAX_POWER_KW:g} kW"))
                break
    if violations:
        raise InvalidInputError(violations)


def scenario_count_problem(n: int, n_sites: int, n_slots: int) -> str:
    """Why ``n`` forecast scenarios are too many for a problem of this size ("" if they are
    not): more than MAX_SCENARIOS, or more than MAX_SCENARIO_VALUES values in all."""
    if n > MAX_SCENARIOS:
        return f"at most {MAX_SCENARIOS:,}, got {n:,}"
    if n * n_sites * n_slots > MAX_SCENARIO_VALUES:
        return (f"{n:,} scenarios x {n_sites} site(s) x {n_slots:,} slots is more than "
                f"{MAX_SCENARIO_VALUES:,} values; ask for fewer")
    return ""


def _parse_horizon(r: _Reader, value: Any) -> Horizon | None:
    if value is None:
        r.error("horizon", "required")
        return None
    h = r.obj(value, "horizon", {"start", "slot_minutes", "slots"})
    start = r.timestamp(h.get("start"), "horizon.start")
    if h.get("start") is None:  # absent or null (the JSON mapping's "unset")
        r.error("horizon.start", "required")
    slot_minutes = r.integer(h.get("slot_minutes"), "horizon.slot_minutes", default=60) or 60
    slots = r.integer(h.get("slots"), "horizon.slots")
    ok = True
    if not 0 < slot_minutes <= 1440:
        r.error("horizon.slot_minutes", f"must be between 1 and 1440, got {slot_minutes}")
        ok = False
    if not 0 < slots <= MAX_SLOTS:
        r.error("horizon.slots", f"must be between 1 and {MAX_SLOTS}, got {slots}")
        ok = False
    if start is None or not ok:
        return None
    horizon = Horizon(start=start, slot_minutes=slot_minutes, slots=slots)
    try:
        horizon.end  # noqa: B018 - only checks that the end is representable
    except OverflowError:
        r.error("horizon.slots", f"the horizon of {slots} slot(s) from {_fmt(start)} ends after "
                                 "9999-12-31")
        return None
    return horizon


def _parse_site(r: _Reader, value: Any, path: str, horizon: Horizon | None) -> Site:
    s = r.obj(value, path, {"id", "region", "gpu_capacity", "pue", "power_cap_kw",
                            "renewable_kw", "capacity_windows", "latitude", "longitude",
                            "solar_kwp", "wind_kw"})
    site_id = r.ident(s.get("id"), f"{path}.id")
    if not site_id.strip():
        r.error(f"{path}.id", "empty")
    region = r.ident(s.get("region"), f"{path}.region")
    if not region.strip():
        r.error(f"{path}.region", "empty")
    capacity = r.integer(s.get("gpu_capacity"), f"{path}.gpu_capacity")
    if capacity < 0:
        r.error(f"{path}.gpu_capacity", f"negative ({capacity})")
    pue = r.number(s.get("pue"), f"{path}.pue") or 1.0
    if pue < 1.0:
        r.error(f"{path}.pue", f"must be >= 1 (or 0/unset for 1.0), got {pue}")
    elif pue > MAX_PUE:
        r.error(f"{path}.pue", f"must be at most {MAX_PUE:g}, got {pue:g}")
    cap = None
    if s.get("power_cap_kw") is not None:
        cap = r.number(s.get("power_cap_kw"), f"{path}.power_cap_kw")
        if cap <= 0:
            r.error(f"{path}.power_cap_kw", f"must be positive when set, got {cap}")
    renewable = r.numbers(s.get("renewable_kw"), f"{path}.renewable_kw")
    for i, kw in enumerate(renewable):
        if kw < 0:
            r.error(f"{path}.renewable_kw[{i}]", f"negative ({kw})")
        elif kw > MAX_POWER_KW:
            r.error(f"{path}.renewable_kw[{i}]",
                    f"{kw:g} kW is above {MAX_POWER_KW:g} kW (wrong unit?)")
    if renewable and horizon is not None and len(renewable) != horizon.slots:
        r.error(f"{path}.renewable_kw",
                f"has {len(renewable)} values; needs one per slot ({horizon.slots})")
    windows = []
    for i, w in enumerate(r.list_(s.get("capacity_windows"), f"{path}.capacity_windows")):
        wpath = f"{path}.capacity_windows[{i}]"
        wd = r.obj(w, wpath, {"start", "end", "gpu_capacity"})
        w_start = r.timestamp(wd.get("start"), f"{wpath}.start")
        w_end = r.timestamp(wd.get("end"), f"{wpath}.end")
        w_cap = r.integer(wd.get("gpu_capacity"), f"{wpath}.gpu_capacity")
        if w_start is None or w_end is None:
            if wd.get("start") is None or wd.get("end") is None:  # absent or null
                r.error(wpath, "start and end are required")
            continue
        if w_end <= w_start:
            r.error(f"{wpath}.end", "not after start")
        if w_cap < 0:
            r.error(f"{wpath}.gpu_capacity", f"negative ({w_cap})")
        if w_cap > capacity:
            r.error(f"{wpath}.gpu_capacity",
                    f"{w_cap} exceeds the site's gpu_capacity {capacity} (windows only lower it)")
        windows.append(CapacityWindow(w_start, w_end, w_cap))
    location = _parse_location(r, s, path)
    return Site(id=site_id, region=region, gpu_capacity=capacity, pue=pue, power_cap_kw=cap,
                renewable_kw=renewable, capacity_windows=tuple(windows), **location)


def _parse_location(r: _Reader, s: dict[str, Any], path: str) -> dict[str, float]:
    """Latitude/longitude (degrees) and on-site generation (kWp of PV, kW of wind)."""
    out = {name: r.number(s.get(name), f"{path}.{name}")
           for name in ("latitude", "longitude", "solar_kwp", "wind_kw")}
    if not -90 <= out["latitude"] <= 90:
        r.error(f"{path}.latitude", f"must be within [-90, 90] degrees, got {out['latitude']}")
    if not -180 <= out["longitude"] <= 180:
        r.error(f"{path}.longitude",
                f"must be within [-180, 180] degrees, got {out['longitude']}")
    for name in ("solar_kwp", "wind_kw"):
        if out[name] < 0:
            r.error(f"{path}.{name}", f"negative ({out[name]})")
        elif out[name] > MAX_POWER_KW:
            r.error(f"{path}.{name}",
                    f"{out[name]:g} kW is above {MAX_POWER_KW:g} kW (wrong unit?)")
    return out


def _parse_job(r: _Reader, value: Any, path: str, horizon: Horizon | None) -> Job:
    j = r.obj(value, path, {"id", "team", "gpus", "power_kw", "duration_minutes",
                            "earliest_start", "deadline", "allowed_sites", "home_site",
                            "interruptible", "min_run_minutes", "priority", "committed_site",
                            "committed_start", "announced_site", "announced_start"})
    job_id = r.ident(j.get("id"), f"{path}.id")
    if not job_id.strip():
        r.error(f"{path}.id", "empty")
    gpus = r.integer(j.get("gpus"), f"{path}.gpus")
    if gpus <= 0:
        r.error(f"{path}.gpus", f"must be positive, got {gpus}")
    power_kw = r.number(j.get("power_kw"), f"{path}.power_kw")
    if power_kw <= 0:
        r.error(f"{path}.power_kw", f"must be positive, got {power_kw}")
    elif power_kw > MAX_POWER_KW:
        r.error(f"{path}.power_kw", f"{power_kw:g} kW is above {MAX_POWER_KW:g} kW (wrong unit?)")
    duration = r.integer(j.get("duration_minutes"), f"{path}.duration_minutes")
    if duration <= 0:
        r.error(f"{path}.duration_minutes", f"must be positive, got {duration}")
    earliest = r.timestamp(j.get("earliest_start"), f"{path}.earliest_start")
    deadline = r.timestamp(j.get("deadline"), f"{path}.deadline")
    allowed = tuple(r.ident(a, f"{path}.allowed_sites[{i}]")
                    for i, a in enumerate(r.list_(j.get("allowed_sites"), f"{path}.allowed_sites")))
    min_run = r.integer(j.get("min_run_minutes"), f"{path}.min_run_minutes")
    if min_run < 0:
        r.error(f"{path}.min_run_minutes", f"negative ({min_run})")
    priority = r.number(j.get("priority"), f"{path}.priority", default=1.0)
    if priority < 0:
        r.error(f"{path}.priority", f"negative ({priority})")
    elif priority > MAX_WEIGHT:
        r.error(f"{path}.priority", f"must be at most {MAX_WEIGHT:g}, got {priority:g} (only "
                                    "ratios between priorities matter)")
    if horizon is not None:
        earliest = earliest or horizon.start
        deadline = deadline or horizon.end
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    job = Job(id=job_id, gpus=gpus, power_kw=power_kw, duration_minutes=duration,
              earliest_start=earliest or epoch, deadline=deadline or epoch,
              allowed_sites=allowed, home_site=r.ident(j.get("home_site"), f"{path}.home_site"),
              interruptible=r.boolean(j.get("interruptible"), f"{path}.interruptible"),
              min_run_minutes=min_run, priority=priority,
              team=r.ident(j.get("team"), f"{path}.team"),
              announced_site=r.ident(j.get("announced_site"), f"{path}.announced_site"),
              announced_start=r.timestamp(j.get("announced_start"), f"{path}.announced_start"))
    if bool(job.announced_site) != (job.announced_start is not None):
        r.error(f"{path}.announced_start" if job.announced_site else f"{path}.announced_site",
                "announced_site and announced_start go together")
    site = r.ident(j.get("committed_site"), f"{path}.committed_site")
    start = r.timestamp(j.get("committed_start"), f"{path}.committed_start")
    if not site and start is None:
        return job
    if not site or start is None:
        r.error(f"{path}.committed_start" if site else f"{path}.committed_site",
                "committed_site and committed_start go together")
        return job
    return _committed(r, job, path, site, start, horizon) if horizon is not None and \
        duration > 0 else job


def _committed(r: _Reader, job: Job, path: str, site: str, start: datetime,
               horizon: Horizon) -> Job:
    """A running or committed job, fixed: exactly the slots it occupies within the horizon
    (from its start, for its duration; a start before the horizon counts only what is left),
    at its site, in one piece."""
    step = horizon.slot_minutes * 60
    first = math.floor((start - horizon.start).total_seconds() / step)
    end = math.ceil((start - horizon.start).total_seconds() / step
                    + job.duration_minutes * 60 / step - 1e-9)
    if end <= 0:
        r.error(f"{path}.committed_start", f"the job ended by {_fmt(horizon.start)}, the "
                                           "horizon's start: leave it out of the request")
        return job
    if first >= horizon.slots:
        r.error(f"{path}.committed_start", f"at or after the horizon's end {_fmt(horizon.end)}")
        return job
    first, end = max(first, 0), min(end, horizon.slots)
    at = [horizon.start + timedelta(seconds=k * step) for k in (first, end)]
    return replace(job, committed=True, allowed_sites=(site,), home_site=site,
                   earliest_start=at[0], deadline=at[1], interruptible=False, min_run_minutes=0,
                   duration_minutes=(end - first) * horizon.slot_minutes)


def _parse_forecast(r: _Reader, value: Any, path: str, horizon: Horizon | None) -> Forecast:
    f = r.obj(value, path, {"region", "start", "slot_minutes", "carbon_intensity",
                            "carbon_intensity_p10", "carbon_intensity_p90", "price_per_mwh"})
    region = r.ident(f.get("region"), f"{path}.region")
    if not region.strip():
        r.error(f"{path}.region", "empty")
    start = r.timestamp(f.get("start"), f"{path}.start")
    if start is None and f.get("start") is None:  # absent or null: the horizon's start
        start = horizon.start if horizon else None
    step = r.integer(f.get("slot_minutes"), f"{path}.slot_minutes", default=0)
    if step == 0:
        step = horizon.slot_minutes if horizon else 60
    if step < 0:
        r.error(f"{path}.slot_minutes", f"negative ({step})")
        step = 60
    ci = r.numbers(f.get("carbon_intensity"), f"{path}.carbon_intensity")
    if not ci:
        r.error(f"{path}.carbon_intensity", "empty")
    series = {"carbon_intensity": ci}
    for name in ("carbon_intensity_p10", "carbon_intensity_p90", "price_per_mwh"):
        series[name] = r.numbers(f.get(name), f"{path}.{name}")
        if series[name] and len(series[name]) != len(ci):
            r.error(f"{path}.{name}",
                    f"has {len(series[name])} values; carbon_intensity has {len(ci)}")
    _check_series_values(r, series, path)
    low, high = series["carbon_intensity_p10"], series["carbon_intensity_p90"]
    if low and len(low) == len(high):
        crossed = next((i for i, (a, b) in enumerate(zip(low, high, strict=True)) if a > b), None)
        if crossed is not None:
            r.error(f"{path}.carbon_intensity_p10[{crossed}]",
                    f"{low[crossed]:g} is above carbon_intensity_p90[{crossed}] "
                    f"{high[crossed]:g} (p10 <= p90)")
    if start is not None and horizon is not None and ci:
        minutes = horizon.slots * horizon.slot_minutes
        if not covers(start, step, len(ci), horizon.start, minutes):
            try:
                end = _fmt(start + timedelta(minutes=step * len(ci)))
            except OverflowError:
                end = "after 9999-12-31"
            r.error(path, f"covers {_fmt(start)} to {end}, not the horizon "
                          f"{_fmt(horizon.start)} to {_fmt(horizon.end)}")
    return Forecast(region=region, start=start or datetime(1970, 1, 1, tzinfo=UTC),
                    slot_minutes=step, **series)


def _check_series_values(r: _Reader, series: dict[str, tuple[float, ...]], path: str) -> None:
    """Intensities within 0..MAX_CI_G_PER_KWH and prices within +-MAX_ABS_PRICE_PER_MWH."""
    for name in ("carbon_intensity", "carbon_intensity_p10", "carbon_intensity_p90"):
        for i, v in enumerate(series[name]):
            if v < 0:
                r.error(f"{path}.{name}[{i}]", f"negative ({v})")
            elif v > MAX_CI_G_PER_KWH:
                r.error(f"{path}.{name}[{i}]",
                        f"{v:g} gCO2e/kWh is above {MAX_CI_G_PER_KWH:g} (wrong unit?)")
    for i, v in enumerate(series["price_per_mwh"]):
        if abs(v) > MAX_ABS_PRICE_PER_MWH:
            r.error(f"{path}.price_per_mwh[{i}]",
                    f"{v:g} per MWh is beyond +-{MAX_ABS_PRICE_PER_MWH:g} (wrong unit?)")


def _parse_objective(r: _Reader, value: Any) -> Objective:
    o = r.obj(value, "objective", {"carbon_weight", "cost_weight", "delay_weight",
                                   "move_weight"})
    weights = {name: r.number(o.get(name), f"objective.{name}") for name in
               ("carbon_weight", "cost_weight", "delay_weight", "move_weight")}
    for name, w in weights.items():
        if w < 0:
            r.error(f"objective.{name}", f"negative ({w})")
        elif w > MAX_WEIGHT:
            r.error(f"objective.{name}", f"must be at most {MAX_WEIGHT:g}, got {w:g} (only "
                                         "ratios between the weights matter)")
    move = weights.pop("move_weight")
    if all(w == 0 for w in weights.values()):
        return Objective(move_weight=move)
    return Objective(**weights, move_weight=move)


def _parse_options(r: _Reader, value: Any) -> Options:
    o = r.obj(value, "options", {"time_limit_seconds", "relative_gap", "workers", "random_seed",
                                 "allow_partial", "risk_measure", "scenarios", "backend",
                                 "require_forecasts"})
    time_limit = r.number(o.get("time_limit_seconds"), "options.time_limit_seconds")
    if time_limit < 0:
        r.error("options.time_limit_seconds", f"negative ({time_limit})")
    gap = r.number(o.get("relative_gap"), "options.relative_gap")
    if not 0 <= gap < 1:
        r.error("options.relative_gap", f"must be in [0, 1), got {gap}")
    workers = r.integer(o.get("workers"), "options.workers")
    if workers < 0:
        r.error("options.workers", f"negative ({workers})")
    scenarios = r.integer(o.get("scenarios"), "options.scenarios")
    if scenarios < 0:
        r.error("options.scenarios", f"negative ({scenarios})")
    seed = r.integer(o.get("random_seed"), "options.random_seed")
    if seed < 0:
        r.error("options.random_seed", f"must be 0 or more, got {seed}")
    return Options(
        time_limit_seconds=time_limit if time_limit > 0 else DEFAULT_TIME_LIMIT_SECONDS,
        relative_gap=gap if gap > 0 else DEFAULT_RELATIVE_GAP,
        workers=workers,
        random_seed=seed,
        allow_partial=r.boolean(o.get("allow_partial"), "options.allow_partial"),
        risk_measure=r.enum(o.get("risk_measure"), "options.risk_measure", RiskMeasure,
                            RiskMeasure.UNSPECIFIED),
        scenarios=scenarios,
        backend=r.enum(o.get("backend"), "options.backend", Backend, Backend.AUTO),
        require_forecasts=r.boolean(o.get("require_forecasts"), "options.require_forecasts"),
    )


def _check_references(r: _Reader, sites: list[Site], jobs: list[Job], forecasts: list[Forecast],
                      horizon: Horizon | None, objective: Objective) -> None:
    """Cross-field checks: unique ids, known sites, windows, forecast coverage per region."""
    if not sites:
        r.error("sites", "at least one site is required")
    site_ids = _check_unique(r, [s.id for s in sites], "sites")
    _check_unique(r, [j.id for j in jobs], "jobs")
    for i, job in enumerate(jobs):
        _check_job_references(r, job, f"jobs[{i}]", site_ids, horizon)
    seen_regions: dict[str, int] = {}
    for i, f in enumerate(forecasts):
        if f.region in seen_regions:
            r.error(f"forecasts[{i}].region",
                    f"duplicate region {f.region!r} (also forecasts[{seen_regions[f.region]}])")
        seen_regions.setdefault(f.region, i)
    for site in sites:
        k = seen_regions.get(site.region)
        if k is None:
            continue  # filled later from a forecast source (or reported missing there)
        if objective.cost_weight > 0 and not forecasts[k].price_per_mwh:
            r.error(f"forecasts[{k}].price_per_mwh",
                    f"required when objective.cost_weight > 0 (site {site.id!r} uses region "
                    f"{site.region!r})")


def _note_unplaceable_jobs(r: _Reader, sites: list[Site], jobs: list[Job]) -> None:
    """When a request is refused anyway, also name the jobs that could never be placed (more
    GPUs than any allowed site has; more facility power than every allowed site's cap), so
    that fixing what is listed does not reveal a second round of problems. A valid request
    with such a job is answered INFEASIBLE by the solver with the same reason."""
    by_id = {s.id: s for s in sites if s.id}
    for i, job in enumerate(jobs):
        allowed = [by_id[a] for a in job.allowed_sites if a in by_id] if job.allowed_sites \
            else list(by_id.values())
        if not allowed or job.gpus <= 0 or job.power_kw <= 0:
            continue
        most = max(s.gpu_capacity for s in allowed)
        if job.gpus > most:
            r.error(f"jobs[{i}].gpus", f"{job.gpus} GPUs, more than any of its allowed sites "
                                       f"has (at most {most}): it could never be placed")
        capped = [s for s in allowed if s.power_cap_kw is not None]
        if len(capped) == len(allowed) and all(
                job.power_kw * (s.pue or 1.0) > s.power_cap_kw for s in capped):
            r.error(f"jobs[{i}].power_kw", f"{job.power_kw:g} kW IT power is above the power cap "
                                           "of every allowed site (with its PUE): it could "
                                           "never be placed")


def _check_unique(r: _Reader, ids: list[str], path: str) -> set[str]:
    seen: dict[str, int] = {}
    for i, ident in enumerate(ids):
        if ident and ident in seen:
            r.error(f"{path}[{i}].id", f"duplicate id {ident!r} (also {path}[{seen[ident]}])")
        seen.setdefault(ident, i)
    return set(seen)


def _check_job_references(r: _Reader, job: Job, path: str, site_ids: set[str],
                          horizon: Horizon | None) -> None:
    if job.committed:
        if job.allowed_sites[0] not in site_ids:
            r.error(f"{path}.committed_site", f"unknown site {job.allowed_sites[0]!r}")
        return   # its window and site are set from where it runs
    if job.announced_site and job.announced_site not in site_ids:
        r.error(f"{path}.announced_site", f"unknown site {job.announced_site!r}")
    for k, site in enumerate(job.allowed_sites):
        if site not in site_ids:
            r.error(f"{path}.allowed_sites[{k}]", f"unknown site {site!r}")
    if len(set(job.allowed_sites)) != len(job.allowed_sites):
        r.error(f"{path}.allowed_sites", "lists a site twice")
    if job.home_site:
        if job.home_site not in site_ids:
            r.error(f"{path}.home_site", f"unknown site {job.home_site!r}")
        elif job.allowed_sites and job.home_site not in job.allowed_sites:
            r.error(f"{path}.home_site", f"{job.home_site!r} is not among allowed_sites")
    if horizon is None or job.duration_minutes <= 0:
        return
    if job.deadline <= job.earliest_start:
        r.error(f"{path}.deadline", "before earliest_start" if job.deadline < job.earliest_start
                else "equal to earliest_start")
        return
    if job.earliest_start >= horizon.end:
        r.error(f"{path}.earliest_start", f"at or after the horizon's end {_fmt(horizon.end)}")
        return
    if job.deadline <= horizon.start:
        r.error(f"{path}.deadline", f"at or before the horizon's start {_fmt(horizon.start)}")
        return
    first, last = window_slots(horizon, job.earliest_start, job.deadline)
    need = duration_slots(horizon, job.duration_minutes)
    if last - first < need:
        r.error(path, f"window earliest_start..deadline holds {max(0, last - first)} whole "
                      f"slot(s) of {horizon.slot_minutes} min inside the horizon; the job needs "
                      f"{need} ({job.duration_minutes} min)")


def duration_slots(horizon: Horizon, duration_minutes: int) -> int:
    """Whole slots a job occupies: ceil(duration / slot)."""
    return -(-duration_minutes // horizon.slot_minutes)


def window_slots(horizon: Horizon, earliest: datetime, deadline: datetime) -> tuple[int, int]:
    """[first, last) slots a job may occupy: earliest rounded up, deadline rounded down,
    clipped to the horizon."""
    slot_seconds = horizon.slot_minutes * 60
    first = math.ceil((earliest - horizon.start).total_seconds() / slot_seconds - 1e-9)
    last = math.floor((deadline - horizon.start).total_seconds() / slot_seconds + 1e-9)
    return max(0, first), min(horizon.slots, last)


def _fmt(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")
