"""Nightly batch runs: a night's plan from job and site files.

Reads the jobs and sites (:mod:`gridshift.adapters.nightly_files`), pulls forecasts through the
provider chains, solves, stores the plan, and writes plan.json, plan.csv (one row per job) and
report.html to the output folder. Idempotent: the run key (date + a hash of the inputs) means a
rerun of the same night reuses the stored plan instead of making a second one. A run killed at
any point leaves no half-written state: the plan is stored in one transaction and every output
file is written to a temporary name and renamed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from gridshift.adapters.codec import response_dict
from gridshift.adapters.files import write_atomically
from gridshift.adapters.nightly_files import read_jobs, read_sites
from gridshift.adapters.report_render import csv_cell
from gridshift.api.v1 import optimize_pb2 as pb
from gridshift.app.planning import Planner
from gridshift.app.plans import PlanArchive
from gridshift.app.progress import NO_PROGRESS, Progress
from gridshift.app.reports import render_report
from gridshift.forecasting.series import Forecast
from gridshift.optimizer.accounting import run_figures
from gridshift.optimizer.errors import FieldViolation, InvalidInputError
from gridshift.optimizer.reporting import ReportPlan
from gridshift.optimizer.solve import SolveResult

__all__ = ["Nightly", "NightlyOutcome", "NightlyRun", "build_request", "parse_night", "run_key"]

log = logging.getLogger("gridshift.nightly")


@dataclass(frozen=True)
class NightlyRun:
    """What to plan: the input files, the night (UTC date) and horizon, where outputs go."""

    jobs_path: Path
    sites_path: Path
    night: date
    out_dir: Path
    hours: int = 48
    time_limit_s: float | None = None
    backend: str | None = None
    #: Refuse to plan on fallback or stale forecasts (options.require_forecasts).
    require_forecasts: bool = False


@dataclass
class NightlyOutcome:
    """The night's plan: planned now (``result`` set) or reused from the store."""

    plan_id: str
    status: str
    reused: bool
    result: SolveResult | None = None
    stored: bool = False
    store_error: str = ""
    outputs: list[Path] = field(default_factory=list)


class Nightly:
    """Nightly runs with one planner; its archive (if any) makes them idempotent."""

    def __init__(self, planner: Planner) -> None:
        self.planner = planner

    @property
    def archive(self) -> PlanArchive | None:
        return self.planner.archive

    def run(self, run: NightlyRun, progress: Progress = NO_PROGRESS) -> NightlyOutcome:
        """Plan the night (or reuse its stored plan) and write the outputs."""
        jobs = read_jobs(run.jobs_path)
        sites, slot_minutes = read_sites(run.sites_path)
        request = build_request(jobs, sites, run.night, run.hours, slot_minutes,
                                run.time_limit_s, run.backend, run.require_forecasts)
        key = run_key(run.night, run.jobs_path.read_bytes(), run.sites_path.read_bytes(),
                      json.dumps(request["horizon"], sort_keys=True).encode(),
                      json.dumps(request["options"], sort_keys=True).encode())
        run.out_dir.mkdir(parents=True, exist_ok=True)
        reused = self._reuse(key, run)
        if reused is not None:
            return reused
        with self.planner.tracing.span("plan", source="nightly"):   # the trace of the run
            forecasts = self._pull_forecasts(request, progress)
            problem = self.planner.prepare(request, sources=[_Prefetched(forecasts)])
            with progress.solving(problem.options.time_limit_seconds) as sink:
                result = self.planner.solve(problem, on_progress=sink)
            kept = self.planner.keep(result, request, "nightly", run_key=key)
        response = response_dict(result, kept.plan_id)
        report = (ReportPlan.of(kept.plan_id, problem, result.plan, result.baseline)
                  if result.status != "INFEASIBLE" else None)
        outputs = write_outputs(run.out_dir, response, report)
        return NightlyOutcome(kept.plan_id, result.status, False, result, kept.stored,
                              kept.store_error, outputs)

    def _reuse(self, key: str, run: NightlyRun) -> NightlyOutcome | None:
        if self.archive is None:
            return None
        try:
            stored = self.archive.find_by_run_key(key)
        except Exception as exc:  # noqa: BLE001 - an unreadable store must not stop the night
            log.error("cannot look up run key %s, planning again: %s", key, exc)
            return None
        if stored is None:
            return None
        log.warning("night %s already planned (run key %s): reusing plan %s", run.night, key,
                    stored.plan_id)
        outputs = write_outputs(run.out_dir, stored.response, self.archive.report_plan(stored))
        return NightlyOutcome(stored.plan_id, stored.status, True, stored=True, outputs=outputs)

    def _pull_forecasts(self, request: dict,
                        progress: Progress) -> dict[str, Forecast | LookupError]:
        h = request["horizon"]
        start = datetime.fromisoformat(h["start"])
        regions = sorted({s.get("region", "") for s in request["sites"]
                          if isinstance(s, dict) and s.get("region")})
        out: dict[str, Forecast | LookupError] = {}
        for region in progress.items(regions, desc="forecasts", unit="region"):
            try:
                out[region] = self.planner.forecasts.forecast(region, start, h["slots"],
                                                              h["slot_minutes"])
            except LookupError as exc:
                log.warning("no forecast for %s: %s", region, exc)
                out[region] = exc   # raised again when planning asks: outage or unknown
        return out


def run_key(night: date, *parts: bytes) -> str:
    """The night's run key: its date and a hash of its inputs."""
    digest = hashlib.sha256(b"\0".join(parts)).hexdigest()[:20]
    return f"{night.isoformat()}:{digest}"


def build_request(jobs: list[dict], sites: list[dict], night: date, hours: int,
                  slot_minutes: int, time_limit_s: float | None, backend: str | None,
                  require_forecasts: bool = False) -> dict:
    """The night's OptimizeRequest (a dict): ``hours`` from midnight UTC."""
    start = datetime(night.year, night.month, night.day, tzinfo=UTC)
    options: dict[str, Any] = {"time_limit_seconds": time_limit_s or 60.0}
    if require_forecasts:
        options["require_forecasts"] = True
    if backend:
        options["backend"] = "BACKEND_AUTO" if backend == "auto" else backend.upper()
    return {"horizon": {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "slot_minutes": slot_minutes, "slots": hours * 60 // slot_minutes},
            "sites": sites, "jobs": jobs, "options": options}


def parse_night(text: str) -> date:
    """A night as a calendar date (YYYY-MM-DD); InvalidInputError naming ``--date``."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInputError([FieldViolation(
            "--date", f"not a calendar date (YYYY-MM-DD): {text!r}")]) from None


class _Prefetched:
    """A forecast source answering from series already pulled (with a progress bar)."""

    def __init__(self, forecasts: dict[str, Forecast | LookupError]) -> None:
        self.forecasts = forecasts

    def forecast(self, region: str, start: datetime, slots: int, slot_minutes: int) -> Forecast:
        if region not in self.forecasts:
            raise KeyError(region)
        answer = self.forecasts[region]
        if isinstance(answer, LookupError):
            raise answer
        return answer


def write_outputs(out_dir: Path, response_dict: dict[str, Any],
                  report_plan: ReportPlan | None) -> list[Path]:
    """plan.json, plan.csv and report.html, each written whole or not at all."""
    response = json_format.ParseDict(response_dict, pb.OptimizeResponse(),
                                     ignore_unknown_fields=True)
    written = [out_dir / "plan.json", out_dir / "plan.csv"]
    write_atomically(written[0], json_format.MessageToJson(
        response, preserving_proto_field_name=True, indent=2) + "\n")
    write_atomically(written[1], plan_csv(response, report_plan))
    if report_plan is not None:
        report = render_report([report_plan], None, None, fmt="html")
        written.append(out_dir / "report.html")
        write_atomically(written[-1], report.document)
    return written


#: The columns of plan.csv: one row per run of a job (a contiguous job has one), then one per
#: left-out job (site and times empty, the reason given).
PLAN_CSV_COLUMNS = ("job_id", "team", "site_id", "run", "start", "end", "gpus", "energy_kwh",
                    "grid_energy_kwh", "emissions_kg", "unscheduled_reason")


def plan_csv(response: pb.OptimizeResponse, report_plan: ReportPlan | None) -> str:
    """plan.csv: what a dispatcher acts on — every run with its site, times (RFC 3339 UTC),
    GPUs, energy (kWh) and emissions (kg CO2e, at the plan's forecast), rounded to 1 Wh and
    1 g; spreadsheet formulas in names are neutralised."""
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(PLAN_CSV_COLUMNS)
    if report_plan is not None:
        p = report_plan.problem
        runs = run_figures(p, report_plan.plan)
        index: dict[int, int] = {}
        for r in runs:
            index[r.job] = index.get(r.job, 0) + 1
            writer.writerow([csv_cell(p.job_ids[r.job]), csv_cell(p.job_teams[r.job] or ""),
                             csv_cell(p.site_ids[r.site]), index[r.job],
                             _rfc3339(p.slot_time(r.start_slot)),
                             _rfc3339(p.slot_time(r.end_slot)), int(p.gpus[r.job]),
                             f"{r.energy_kwh:.3f}", f"{r.grid_energy_kwh:.3f}",
                             f"{r.emissions_kg:.3f}", ""])
    for u in response.unscheduled:
        writer.writerow([csv_cell(u.job_id), "", "", "", "", "", "", "", "", "",
                         csv_cell(u.reason)])
    return rows.getvalue()


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
