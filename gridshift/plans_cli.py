"""`gridshift plans list|show`, `gridshift report`, `gridshift actuals import`."""

from __future__ import annotations

import argparse
import csv
import math
import sys
from datetime import UTC, datetime
from pathlib import Path

from google.protobuf import json_format

from gridshift.adapters.providers import MAX_PLAUSIBLE_G_PER_KWH
from gridshift.adapters.store import ActualSeries, PlanFilter
from gridshift.files import write_atomically
from gridshift.optimizer.errors import FieldViolation, InvalidInputError


def add_commands(sub) -> None:
    plans = sub.add_parser("plans", help="stored plans")
    psub = plans.add_subparsers(dest="plans_command", required=True)
    lst = psub.add_parser("list", help="list stored plans, newest first")
    lst.add_argument("--from", dest="start", help="RFC 3339: plans whose horizon ends after")
    lst.add_argument("--to", dest="end", help="RFC 3339: plans whose horizon starts before")
    lst.add_argument("--team")
    lst.add_argument("--site")
    lst.add_argument("--status", choices=("OPTIMAL", "FEASIBLE", "INFEASIBLE"))
    lst.add_argument("--page-size", type=int, default=50)
    lst.add_argument("--page-token")
    lst.add_argument("--format", choices=("table", "json"), default="table")
    show = psub.add_parser("show", help="one stored plan (request and response) as JSON")
    show.add_argument("plan_id")
    rep = sub.add_parser("report", help="carbon report of the stored plans of a period")
    rep.add_argument("--from", dest="start", required=True, help="RFC 3339 or YYYY-MM-DD")
    rep.add_argument("--to", dest="end", required=True, help="RFC 3339 or YYYY-MM-DD")
    rep.add_argument("--team")
    rep.add_argument("--site")
    rep.add_argument("--format", choices=("html", "csv", "json"), default="html")
    rep.add_argument("-o", "--output", required=True, help="file to write")
    act = sub.add_parser("actuals", help="observed carbon intensity, for re-scoring plans")
    asub = act.add_subparsers(dest="actuals_command", required=True)
    imp = asub.add_parser("import", help="store actuals from a CSV (region,valid_at,value)")
    imp.add_argument("file")
    imp.add_argument("--slot-minutes", type=int, default=60,
                     help="step of the series in the file (default 60)")
    pull = asub.add_parser("pull", help="store actuals from the providers' history endpoints")
    pull.add_argument("--region", action="append", required=True, help="region (repeatable)")
    pull.add_argument("--from", dest="start", required=True, help="RFC 3339 or YYYY-MM-DD")
    pull.add_argument("--to", dest="end", required=True, help="RFC 3339 or YYYY-MM-DD")
    pull.add_argument("--config", metavar="FILE", help="TOML file with a [forecasts] table")


def when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInputError([FieldViolation(name, f"malformed time {value!r}")]) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def run(args: argparse.Namespace) -> int:
    from gridshift.plans import default_store

    store = default_store()
    if args.command == "plans" and args.plans_command == "list":
        return _list(store, args)
    if args.command == "plans":
        record = store.get(args.plan_id)
        if record is None:
            print(f"gridshift: no plan {args.plan_id!r}", file=sys.stderr)
            return 2
        from gridshift.adapters.plan_codec import get_plan_response

        sys.stdout.write(json_format.MessageToJson(get_plan_response(record),
                                                   preserving_proto_field_name=True, indent=2))
        sys.stdout.write("\n")
        return 0
    if args.command == "report":
        return _report(store, args)
    if args.actuals_command == "pull":
        return _pull_actuals(store, args)
    return _import_actuals(store, args)


def _pull_actuals(store, args: argparse.Namespace) -> int:
    from gridshift.config import load_forecast_config
    from gridshift.forecasts import pull_actuals
    from gridshift.optimizer.errors import UpstreamUnavailableError

    config = load_forecast_config(args.config)
    start, end = when(args.start, "--from"), when(args.end, "--to")
    total = 0
    for region in args.region:
        try:
            series = pull_actuals(region, start, end, config)
        except LookupError as exc:
            raise UpstreamUnavailableError(str(exc)) from None
        total += store.save_actuals([ActualSeries(region, series.start, series.slot_minutes,
                                                  list(series.carbon_intensity),
                                                  provider=series.provider)])
    print(f"stored {total} actual value(s) for {len(args.region)} region(s)", file=sys.stderr)
    return 0


def _list(store, args: argparse.Namespace) -> int:
    flt = PlanFilter(start=when(args.start, "--from"), end=when(args.end, "--to"),
                     team=args.team, site=args.site, status=args.status)
    try:
        records, token = store.list(flt, args.page_size, args.page_token)
    except ValueError as exc:
        raise InvalidInputError([FieldViolation("--page-token", str(exc))]) from None
    if args.format == "json":
        from gridshift.adapters.plan_codec import summary_of
        from gridshift.api.v1 import plans_pb2

        response = plans_pb2.ListPlansResponse(plans=[summary_of(r) for r in records],
                                               next_page_token=token or "")
        print(json_format.MessageToJson(response, preserving_proto_field_name=True, indent=2))
        return 0
    print(f"{'plan_id':<34} {'created (UTC)':<17} {'source':<8} {'status':<9} {'jobs':>5} "
          f"{'kg CO2e':>10} {'baseline kg':>12}")
    for r in records:
        print(f"{r.plan_id:<34} {r.created_at:%Y-%m-%d %H:%M} {r.source:<8} {r.status:<9} "
              f"{len(r.jobs):>5} {r.emissions_kg:>10.1f} {r.baseline_emissions_kg:>12.1f}")
    if token:
        print(f"next page: --page-token {token}")
    return 0


def _report(store, args: argparse.Namespace) -> int:
    from gridshift.carbon_report import build_report

    report = build_report(store, when(args.start, "--from"), when(args.end, "--to"),
                          args.team, args.site, args.format)
    target = Path(args.output)
    write_atomically(target, report.document)
    totals = report.summary.get("totals", {})
    print(f"report of {report.plans} plan(s) written to {target} ({args.format}); emissions "
          f"{totals.get('emissions_kg_forecast') or 0:,.1f} kg CO2e (forecast)", file=sys.stderr)
    return 0


def _import_actuals(store, args: argparse.Namespace) -> int:
    if not 1 <= args.slot_minutes <= 1440:
        raise InvalidInputError([FieldViolation(
            "--slot-minutes", f"must be within 1..1440, got {args.slot_minutes}")])
    series = _read_actuals(args.file)
    stored = 0
    step = args.slot_minutes * 60
    for region, points in series.items():
        points.sort()
        start = points[0][0]
        n = int((points[-1][0] - start).total_seconds() // step) + 1
        values = [float("nan")] * n
        for t, v in points:
            values[int((t - start).total_seconds() // step)] = v
        stored += store.save_actuals([ActualSeries(region, start, args.slot_minutes, values,
                                                   provider=Path(args.file).name)])
    print(f"stored {stored} actual value(s) for {len(series)} region(s)", file=sys.stderr)
    return 0


def _read_actuals(path: str) -> dict[str, list[tuple[datetime, float]]]:
    """(valid_at, gCO2e/kWh) points by region from a CSV with columns region,valid_at,value (a
    byte-order mark is allowed; ``nan`` or an empty value is a missing one). Values outside
    0..MAX_PLAUSIBLE_G_PER_KWH are refused with their line."""
    series: dict[str, list[tuple[datetime, float]]] = {}
    problems: list[FieldViolation] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            for line, row in enumerate(csv.DictReader(handle), start=2):
                try:
                    t = when(row["valid_at"], f"{path}:{line}.valid_at")
                    raw = (row["value"] or "").strip()
                    value = float(raw) if raw else math.nan
                    region = row["region"]
                except (KeyError, ValueError, TypeError) as exc:
                    raise InvalidInputError([FieldViolation(
                        f"{path}:{line}", f"needs region,valid_at,value: {exc}")]) from None
                if not region.strip():
                    problems.append(FieldViolation(f"{path}:{line}.region", "empty"))
                    continue
                if math.isinf(value) or not (math.isnan(value)
                                             or 0 <= value <= MAX_PLAUSIBLE_G_PER_KWH):
                    problems.append(FieldViolation(
                        f"{path}:{line}.value", f"{value:g} gCO2e/kWh is outside 0.."
                        f"{MAX_PLAUSIBLE_G_PER_KWH:g} (wrong unit?)"))
                    continue
                series.setdefault(region, []).append((t, value))
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError([FieldViolation(path, f"cannot read: {exc}")]) from None
    if problems:
        raise InvalidInputError(problems)
    return series
