"""`gridshift nightly`: a night's batch plan from job and site files.

Reads the jobs (CSV or JSON) and sites (YAML or JSON), pulls forecasts through the provider
chain, solves, stores the plan, and writes plan.json, plan.csv (one row per job) and
report.html to the output folder. Idempotent: the run key (date + a hash of the inputs) means a
rerun of the same night reuses the stored plan instead of making a second one. A run killed at
any point leaves no half-written state: the plan is stored in one transaction and every output
file is written to a temporary name and renamed.

Jobs CSV columns: id, team, gpus, power_kw, duration_minutes, earliest_start, deadline (RFC
3339), allowed_sites (separated by ';'), home_site, interruptible (true/false),
min_run_minutes, priority. Only id, gpus, power_kw and duration_minutes are required.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import logging
import math
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from gridshift.files import write_atomically
from gridshift.optimizer.errors import FieldViolation, InvalidInputError

log = logging.getLogger("gridshift.nightly")
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


def run_key(night: date, *parts: bytes) -> str:
    digest = hashlib.sha256(b"\0".join(parts)).hexdigest()[:20]
    return f"{night.isoformat()}:{digest}"


def build_request(jobs: list[dict], sites: list[dict], night: date, hours: int,
                  slot_minutes: int, time_limit_s: float | None, backend: str | None) -> dict:
    start = datetime(night.year, night.month, night.day, tzinfo=UTC)
    options: dict[str, Any] = {"time_limit_seconds": time_limit_s or 60.0}
    if backend:
        options["backend"] = "BACKEND_AUTO" if backend == "auto" else backend.upper()
    return {"horizon": {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "slot_minutes": slot_minutes, "slots": hours * 60 // slot_minutes},
            "sites": sites, "jobs": jobs, "options": options}


def _night(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInputError([FieldViolation(
            "--date", f"not a calendar date (YYYY-MM-DD): {text!r}")]) from None


def run_nightly(args: argparse.Namespace) -> int:
    from gridshift.plans import default_store

    night = _night(args.date) if args.date else datetime.now(UTC).date()
    jobs_path, sites_path = Path(args.jobs), Path(args.sites)
    jobs = read_jobs(jobs_path)
    sites, slot_minutes = read_sites(sites_path)
    request = build_request(jobs, sites, night, args.hours, slot_minutes, args.time_limit,
                            args.backend)
    key = run_key(night, jobs_path.read_bytes(), sites_path.read_bytes(),
                  json.dumps(request["horizon"], sort_keys=True).encode(),
                  json.dumps(request["options"], sort_keys=True).encode())
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    store = default_store()
    stored = store.find_by_run_key(key)
    if stored is not None:
        log.warning("night %s already planned (run key %s): reusing plan %s", night, key,
                    stored.plan_id)
        print(f"reusing the plan stored for this night: {stored.plan_id}", file=sys.stderr)
        from gridshift.plans import report_plan

        _write_outputs(out_dir, stored.response, report_plan(stored, store))
        return 3 if stored.status == "INFEASIBLE" else 0
    return _plan_night(request, key, out_dir, args)


def _plan_night(request: dict, key: str, out_dir: Path, args: argparse.Namespace) -> int:
    from gridshift.adapters.codec import to_response
    from gridshift.planning import configure_forecasts, default_forecast_service, prepare
    from gridshift.plans import default_store, record_of, report_plan
    from gridshift.progress import solve_progress
    from gridshift.risk import solve_with_risk

    if args.config:
        from gridshift.forecasts import configured_service

        configure_forecasts(configured_service(args.config))
    forecasts = _pull_forecasts(request, default_forecast_service())
    problem = prepare(request, sources=[_Prefetched(forecasts)])
    with solve_progress(problem.options.time_limit_seconds) as sink:
        result = solve_with_risk(problem, on_progress=sink)
    response = to_response(result)
    store = default_store()
    plan_id = store.save(record_of(result, response, request, "nightly", run_key=key))
    stored = store.get(plan_id)
    _write_outputs(out_dir, stored.response, report_plan(stored, store))
    from gridshift.cli import summary

    print(summary(result), file=sys.stderr)
    return 3 if result.status == "INFEASIBLE" else 0


class _Prefetched:
    """A forecast source answering from series already pulled (with a progress bar)."""

    def __init__(self, forecasts: dict[str, Any]) -> None:
        self.forecasts = forecasts

    def forecast(self, region: str, start, slots: int, slot_minutes: int):
        if region not in self.forecasts:
            raise KeyError(region)
        return self.forecasts[region]


def _pull_forecasts(request: dict, service) -> dict[str, Any]:
    from gridshift.progress import bar

    h = request["horizon"]
    start = datetime.fromisoformat(h["start"])
    regions = sorted({s.get("region", "") for s in request["sites"] if s.get("region")})
    out = {}
    for region in bar(regions, desc="forecasts", unit="region"):
        try:
            out[region] = service.resolve(region, start, h["slots"], h["slot_minutes"])
        except LookupError as exc:
            log.warning("no forecast for %s: %s", region, exc)
    return out


def _write_outputs(out_dir: Path, response_dict: dict, report_plan) -> None:
    """plan.json, plan.csv and report.html, each written whole or not at all."""
    from gridshift.api.v1 import optimize_pb2 as pb

    response = json_format.ParseDict(response_dict, pb.OptimizeResponse(),
                                     ignore_unknown_fields=True)
    write_atomically(out_dir / "plan.json", json_format.MessageToJson(
        response, preserving_proto_field_name=True, indent=2) + "\n")
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(["job_id", "site_id", "start", "end", "emissions_kg",
                     "baseline_emissions_kg", "energy_kwh"])
    starts = {a.job_id: a for a in response.assignments}
    for jf in response.jobs:
        a = starts[jf.job_id]
        writer.writerow([jf.job_id, jf.site_id, a.start.ToJsonString(), a.end.ToJsonString(),
                         f"{jf.emissions_kg:.6f}", f"{jf.baseline_emissions_kg:.6f}",
                         f"{jf.energy_kwh:.6f}"])
    for u in response.unscheduled:
        writer.writerow([u.job_id, "", "", "", "", "", ""])
    write_atomically(out_dir / "plan.csv", rows.getvalue())
    if report_plan is not None:
        from gridshift.carbon_report import render_report

        report = render_report([report_plan], None, None, fmt="html")
        write_atomically(out_dir / "report.html", report.document)




__all__ = ["run_nightly", "read_jobs", "read_sites", "run_key"]
