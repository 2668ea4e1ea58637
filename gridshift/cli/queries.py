"""`gridshift forecast` and `gridshift best-window`: run locally or against a server, print a
table, JSON (protobuf JSON mapping) or CSV."""

from __future__ import annotations

import argparse
import csv
import io
import sys
from datetime import UTC, datetime, timedelta

from google.protobuf import json_format

from gridshift.adapters.forecast_codec import best_window_response, forecast_response
from gridshift.api.v1 import forecast_pb2
from gridshift.cli.common import EXIT_INTERNAL, app_of, client_of
from gridshift.optimizer.errors import FieldViolation, InvalidInputError


def _time(value: str | None, name: str, default: datetime) -> datetime:
    if value is None:
        return default
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInputError([FieldViolation(name, f"malformed timestamp {value!r}")]) from None
    if parsed.tzinfo is None:
        raise InvalidInputError([FieldViolation(name, f"{value!r} has no UTC offset")])
    return parsed.astimezone(UTC)


def _window(args: argparse.Namespace) -> tuple[datetime, datetime]:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = _time(args.start, "--start", hour)
    return start, _time(args.end, "--end", start + timedelta(hours=24))


def run(args: argparse.Namespace) -> int:
    start, end = _window(args)
    if args.command == "forecast":
        request = forecast_pb2.GetForecastRequest(regions=args.region,
                                                  slot_minutes=args.slot_minutes)
        request.start.FromDatetime(start)
        request.end.FromDatetime(end)
    else:
        request = forecast_pb2.FindBestWindowRequest(regions=args.region,
                                                     duration_minutes=args.duration)
        request.window_start.FromDatetime(start)
        request.window_end.FromDatetime(end)
    response = _remote(args, request) if args.server else _local(args, request, start, end)
    sys.stdout.write(_render(args, response))
    for missing in response.unavailable:
        print(f"gridshift: {missing.region}: unavailable: {missing.reason}", file=sys.stderr)
    # Some regions answered, others did not: the answers are printed, the exit code says so.
    return EXIT_INTERNAL if response.unavailable else 0


def _local(args: argparse.Namespace, request, start: datetime, end: datetime):
    queries = app_of(args).queries
    if args.command == "forecast":
        answers = queries.get_forecasts(args.region, start, end, args.slot_minutes)
        return forecast_response(answers.answer, answers.unavailable)
    answers = queries.best_windows(args.region, args.duration, start, end)
    return best_window_response(answers.answer, answers.unavailable)


def _remote(args: argparse.Namespace, request):
    import grpc

    from gridshift.adapters.grpc_client import domain_error

    with client_of(args, args.server) as client:
        call = (client.stub.GetForecast if args.command == "forecast"
                else client.stub.FindBestWindow)
        try:
            return call(request, timeout=60, wait_for_ready=True)
        except grpc.RpcError as exc:
            raise domain_error(args.server, exc) from None


def _render(args: argparse.Namespace, response) -> str:
    if args.format == "json":
        return json_format.MessageToJson(response, preserving_proto_field_name=True,
                                         indent=2) + "\n"
    rows = (_forecast_rows(response) if args.command == "forecast"
            else _window_rows(response))
    if args.format == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerows(rows)
        return out.getvalue()
    text = _table(rows)
    if args.command == "best-window":
        b = response.best
        text += (f"\nbest: {b.region} from {b.start.ToJsonString()} to {b.end.ToJsonString()}, "
                 f"mean {b.mean_g_per_kwh:.1f} gCO2e/kWh\n")
    return text + "".join(f"provenance {p.region}: {p.provider}"
                          f"{' (fallback)' if p.fallback else ''}{' (stale)' if p.stale else ''}"
                          f"{': ' + p.detail if p.detail else ''}\n"
                          for p in _provenances(args, response))


def _provenances(args: argparse.Namespace, response):
    items = response.forecasts if args.command == "forecast" else response.regions
    return [item.provenance for item in items]


def _forecast_rows(response) -> list[list[str]]:
    rows = [["region", "start", "ci_g_per_kwh", "p10_g_per_kwh", "p90_g_per_kwh"]]
    for f in response.forecasts:
        step = timedelta(minutes=f.slot_minutes)
        t0 = f.start.ToDatetime(tzinfo=UTC)
        for i, value in enumerate(f.carbon_intensity):
            p10 = f.carbon_intensity_p10[i] if f.carbon_intensity_p10 else float("nan")
            p90 = f.carbon_intensity_p90[i] if f.carbon_intensity_p90 else float("nan")
            rows.append([f.region, (t0 + i * step).strftime("%Y-%m-%dT%H:%MZ"),
                         f"{value:.1f}", f"{p10:.1f}", f"{p90:.1f}"])
    return rows


def _window_rows(response) -> list[list[str]]:
    rows = [["region", "best_start", "best_end", "mean_g_per_kwh", "candidates"]]
    for r in response.regions:
        rows.append([r.region, r.start.ToJsonString(), r.end.ToJsonString(),
                     f"{r.mean_g_per_kwh:.1f}", str(len(r.curve))])
    return rows


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                   + "\n" for row in rows)
