"""`gridshift plans list|show`, `gridshift report`, `gridshift actuals import|pull`."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from google.protobuf import json_format

from gridshift.adapters.actuals_file import read_actuals_csv
from gridshift.adapters.plan_codec import get_plan_response, summary_of
from gridshift.adapters.store import PlanFilter
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
        record = archive.get(args.plan_id)
        if record is None:
            print(f"gridshift: no plan {args.plan_id!r}", file=sys.stderr)
            return EXIT_INVALID
        write_output(None, json_format.MessageToJson(get_plan_response(record),
                                                     preserving_proto_field_name=True,
                                                     indent=2) + "\n")
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
                          args.team, args.site, args.format)
    write_output(args.output, report.document)
    totals = report.summary.get("totals", {})
    print(f"report of {report.plans} plan(s) written to {args.output} ({args.format}); "
          f"emissions {totals.get('emissions_kg_forecast') or 0:,.1f} kg CO2e (forecast)",
          file=sys.stderr)
    return EXIT_OK
