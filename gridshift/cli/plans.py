"""`gridshift plans list|show`, `gridshift report`, `gridshift actuals import|pull`."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from google.protobuf import json_format

from gridshift.adapters.actuals_file import read_actuals_csv
from gridshift.adapters.plan_codec import get_plan_response, summary_of
from gridshift.adapters.store import PlanFilter, PlanRecord
from gridshift.api.v1 import plans_pb2
from gridshift.app.actuals import import_actuals, pull_actuals
from gridshift.app.application import App
from gridshift.app.plans import PlanArchive
from gridshift.app.reports import build_report
from gridshift.cli.common import EXIT_INVALID, EXIT_OK, app_of, write_output
from gridshift.optimizer.errors import FieldViolation, InvalidInputError


def when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInputError([FieldViolation(name, f"malformed time {value!r}")]) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def run(args: argparse.Namespace) -> int:
    app = app_of(args)
    archive = _archive(app)
    if args.command == "plans" and args.plans_command == "list":
        return _list(archive, args)
    if args.command == "plans":
        record = archive.resolve(args.plan_id)
        if record is None:
            print(f"gridshift: no plan {args.plan_id!r}", file=sys.stderr)
            return EXIT_INVALID
        if args.format == "json":
            write_output(None, json_format.MessageToJson(get_plan_response(record),
                                                         preserving_proto_field_name=True,
                                                         indent=2) + "\n")
        else:
            write_output(None, plan_summary(record, app.clock()) + "\n")
        return EXIT_OK
    if args.command == "report":
        return _report(archive, args)
    if args.actuals_command == "pull":
        stored = pull_actuals(archive, app.forecast_service, args.region,
                              when(args.start, "--from"), when(args.end, "--to"))
        print(f"stored {stored} actual value(s) for {len(args.region)} region(s)",
              file=sys.stderr)
        return EXIT_OK
    series = read_actuals_csv(args.file)
    stored = import_actuals(archive, series, args.slot_minutes, Path(args.file).name)
    print(f"stored {stored} actual value(s) for {len(series)} region(s)", file=sys.stderr)
    return EXIT_OK


def _archive(app: App) -> PlanArchive:
    if app.archive is None:
        raise InvalidInputError([FieldViolation(
            "GRIDSHIFT_STORE", "storing plans is switched off; these commands read the store")])
    return app.archive


def _list(archive: PlanArchive, args: argparse.Namespace) -> int:
    flt = PlanFilter(start=when(args.start, "--from"), end=when(args.end, "--to"),
                     team=args.team, site=args.site, status=args.status)
    try:
        records, token = archive.list(flt, args.page_size, args.page_token)
    except InvalidInputError as exc:
        raise InvalidInputError([FieldViolation("--page-token", v.problem)
                                 if v.field == "page_token" else v
                                 for v in exc.violations]) from None
    if args.format == "json":
        response = plans_pb2.ListPlansResponse(plans=[summary_of(r) for r in records],
                                               next_page_token=token or "")
        print(json_format.MessageToJson(response, preserving_proto_field_name=True, indent=2))
        return EXIT_OK
    print(f"{'plan_id':<34} {'created (UTC)':<17} {'source':<8} {'status':<9} {'jobs':>5} "
          f"{'kg CO2e':>10} {'baseline kg':>12}")
    for r in records:
        print(f"{r.plan_id:<34} {r.created_at:%Y-%m-%d %H:%M} {r.source:<8} {r.status:<9} "
              f"{len(r.jobs):>5} {r.emissions_kg:>10.1f} {r.baseline_emissions_kg:>12.1f}")
    if token:
        print(f"next page: --page-token {token}")
    return EXIT_OK


def _report(archive: PlanArchive, args: argparse.Namespace) -> int:
    report = build_report(archive, when(args.start, "--from"), when(args.end, "--to"),
                          args.team, args.site, args.format, args.list_superseded)
    write_output(args.output, report.document)
    headline = report.summary.get("totals", {}).get("headline", {})
    jobs = report.summary.get("jobs", {})
    saving = headline.get("savings_vs_fifo_baseline") or {}
    saved = ("n/a" if saving.get("kg") is None else f"{saving['kg']:,.1f} kg"
             + ("" if saving.get("pct") is None else f" ({saving['pct']:.1f} %)"))
    where = "stdout" if args.output == "-" else args.output
    print(f"report of {report.plans} plan(s), {jobs.get('counted', 0)} job(s) counted once "
          f"({jobs.get('superseded', 0)} re-planned row(s) left out) written to {where} "
          f"({args.format})\nemissions {headline.get('emissions_kg') or 0:,.1f} kg CO2e on "
          f"{headline.get('basis', 'the forecast')}; saves {saved} against the FIFO baseline "
          f"on the {jobs.get('compared', 0)} job(s) both place", file=sys.stderr)
    return EXIT_OK


def plan_summary(record: PlanRecord, now: datetime) -> str:
    """``plans show``: the plan's facts and one line per job with its state."""
    response = record.response or {}
    lines = [f"plan {record.plan_id} ({record.source}, {record.status}), made "
             f"{record.created_at:%Y-%m-%d %H:%M} UTC",
             f"horizon {record.horizon_start:%Y-%m-%d %H:%M} to "
             f"{record.horizon_end:%Y-%m-%d %H:%M} UTC",
             f"emissions {record.emissions_kg:,.1f} kg CO2e vs FIFO baseline "
             f"{record.baseline_emissions_kg:,.1f} kg; energy {record.energy_kwh:,.0f} kWh",
             f"{len(record.jobs)} job(s) placed, {len(response.get('unscheduled', []))} left "
             "out"]
    for p in record.provenance:
        flags = [f for f in ("fallback", "stale") if p.get(f)]
        lines.append(f"forecast {p.get('region')}: {p.get('provider')}"
                     + (f" ({', '.join(flags)})" if flags else ""))
    lines.append(f"{'job':<24} {'team':<12} {'site':<12} {'start (UTC)':<17} {'end (UTC)':<17} "
                 f"{'kg CO2e':>9}  state")
    for job in record.jobs:
        state = job.state(now) + (f" by {job.superseded_by}" if job.superseded_by else "")
        lines.append(f"{job.job_id[:24]:<24} {job.team[:12]:<12} {job.site_id[:12]:<12} "
                     f"{job.start:%Y-%m-%d %H:%M} {job.end:%Y-%m-%d %H:%M} "
                     f"{job.emissions_kg:>9.2f}  {state}")
    for u in response.get("unscheduled", []):
        lines.append(f"{u.get('job_id', '')[:24]:<24} left out: {u.get('reason', '')}")
    return "\n".join(lines)
