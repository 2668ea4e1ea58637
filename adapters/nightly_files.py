"""The input files of nightly runs: jobs (CSV or JSON) and sites (YAML or JSON).

Jobs CSV columns: id, team, gpus, power_kw, duration_minutes, earliest_start, deadline (RFC
3339), allowed_sites (separated by ';'), home_site, interruptible (true/false),
min_run_minutes, priority. Only id, gpus, power_kw and duration_minutes are required. A UTF-8
byte-order mark is allowed (spreadsheets write one). Values are passed on as read, for the
request's validation to check and name.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from gridshift.optimizer.errors import FieldViolation, InvalidInputError

__all__ = ["CSV_FIELDS", "read_jobs", "read_sites"]

CSV_FIELDS = ("id", "team", "gpus", "power_kw", "duration_minutes", "earliest_start", "deadline",
              "allowed_sites", "home_site", "interruptible", "min_run_minutes", "priority")


def read_jobs(path: Path) -> list[dict[str, Any]]:
    """Jobs from CSV (columns above; a UTF-8 byte-order mark is allowed) or JSON (a list, or
    {"jobs": [...]}). Numbers are passed on as read, so the request's validation names a
    fractional or non-finite value rather than it being rounded here."""
    text = _read(path)
    if path.suffix.lower() == ".json":
        data = _json(text, path)
        jobs = data.get("jobs") if isinstance(data, dict) else data
        if not isinstance(jobs, list):
            raise InvalidInputError([FieldViolation(str(path), "expected a list of jobs")])
        return jobs
    reader = csv.DictReader(io.StringIO(text))
    columns = [c for c in (reader.fieldnames or []) if c.strip()]
    unknown = set(columns) - set(CSV_FIELDS)
    if unknown:
        raise InvalidInputError([FieldViolation(str(path), f"unknown column(s) {sorted(unknown)}; "
                                                f"known: {', '.join(CSV_FIELDS)}")])
    jobs, problems = [], []
    for row in reader:
        if None in row:
            problems.append(FieldViolation(
                f"{path}:{reader.line_num}",
                f"{len(row[None])} more cell(s) than the header's {len(reader.fieldnames or [])} "
                "columns"))
            continue
        jobs.append(_job_of({k: v for k, v in row.items() if k.strip()}))
    if problems:
        raise InvalidInputError(problems)
    return jobs


def _job_of(row: dict[str, str]) -> dict[str, Any]:
    job: dict[str, Any] = {}
    for key, value in row.items():
        value = (value or "").strip()
        if not value:
            continue
        if key == "allowed_sites":
            job[key] = [s.strip() for s in value.split(";") if s.strip()]
        elif key == "interruptible":
            job[key] = value.lower() in ("1", "true", "yes", "y")
        elif key in ("gpus", "duration_minutes", "min_run_minutes", "power_kw", "priority"):
            job[key] = _number_of(value)
        else:
            job[key] = value
    return job


def _number_of(value: str) -> int | float | str:
    """``"8"`` -> 8, ``"0.7"`` -> 0.7; anything else (``"inf"``, ``"eight"``) as read, for the
    request's validation to name."""
    try:
        number = float(value)
    except ValueError:
        return value
    if number.is_integer():
        return int(number)
    return number if math.isfinite(number) else value


def read_sites(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Sites from YAML or JSON: a list, or {"sites": [...], "slot_minutes": 60}."""
    text = _read(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidInputError([FieldViolation(str(path), f"unreadable YAML: {exc}")]) \
                from None
    else:
        data = _json(text, path)
    sites = data.get("sites") if isinstance(data, dict) else data
    if not isinstance(sites, list):
        raise InvalidInputError([FieldViolation(str(path), "expected a list of sites")])
    slot = data.get("slot_minutes", 60) if isinstance(data, dict) else 60
    if isinstance(slot, bool) or not isinstance(slot, int) or slot <= 0:
        raise InvalidInputError([FieldViolation(
            f"{path}: slot_minutes", f"must be a positive whole number of minutes, got {slot!r}")])
    return sites, slot


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # a byte-order mark (Excel) is dropped
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError([FieldViolation(str(path), f"cannot read: {exc}")]) from None


def _json(text: str, path: Path) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError([FieldViolation(str(path), f"unreadable JSON: {exc}")]) from None
