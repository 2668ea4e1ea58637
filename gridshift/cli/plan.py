"""`gridshift plan` (in-process, or on a server with --server) and `gridshift demo`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from gridshift.adapters.codec import (
    forecasts_used_of,
    plan_from_response,
    response_to_json,
    site_supply_of,
    to_response,
)
from gridshift.api.v1 import optimize_pb2 as pb
from gridshift.app.demo import demo_request
from gridshift.app.planning import PlanOutcome, problem_as_planned, with_overrides
from gridshift.cli.common import (
    EXIT_INFEASIBLE,
    EXIT_OK,
    app_of,
    client_of,
    read_request,
    write_output,
)
from gridshift.cli.progress import solve_progress
from gridshift.cli.render import demo_report, summary
from gridshift.optimizer.checker import check_plan
from gridshift.optimizer.domain import DEFAULT_TIME_LIMIT_SECONDS
from gridshift.optimizer.errors import FieldViolation, InvalidInputError
from gridshift.optimizer.parsing import parse_request
from gridshift.optimizer.solve import PlanCheckError


def run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        return _demo(args)
    return _remote_plan(args) if args.server else _plan(args)


def _plan(args: argparse.Namespace) -> int:
    app = app_of(args)
    request = read_request(args.request)
    with solve_progress(time_limit_of(request, args.time_limit), not args.quiet) as sink:
        outcome = app.planner.plan(request, time_limit_s=args.time_limit, backend=args.backend,
                                   require_forecasts=args.require_forecast,
                                   on_progress=sink, source="cli", store=not args.no_store)
    write_output(args.output, response_to_json(to_response(outcome.result, outcome.plan_id))
                 + "\n")
    if not args.quiet:
        print(summary(outcome.result), file=sys.stderr)
        _warn_not_stored(outcome)
    return EXIT_INFEASIBLE if outcome.result.status == "INFEASIBLE" else EXIT_OK


def _warn_not_stored(outcome: PlanOutcome) -> None:
    if outcome.store_error:
        print(f"warning: plan {outcome.plan_id} was written but not stored: "
              f"{outcome.store_error}", file=sys.stderr)


def _remote_plan(args: argparse.Namespace) -> int:
    import grpc  # only for --server: a local plan never loads the gRPC runtime

    from gridshift.adapters.grpc_client import domain_error

    request = with_overrides(read_request(args.request), time_limit_s=args.time_limit,
                             backend=args.backend, require_forecasts=args.require_forecast)
    parse_request(request)   # every problem with its field path, as a local run lists them
    message = _request_message(request)
    with client_of(args, args.server) as client:
        try:
            response = client.optimize(message, timeout=args.timeout)
        except grpc.RpcError as exc:
            raise domain_error(args.server, exc) from None
    checked = remote_summary(request, response)
    write_output(args.output, response_to_json(response) + "\n")
    if not args.quiet:
        print(checked, file=sys.stderr)
    return EXIT_INFEASIBLE if response.status == pb.INFEASIBLE else EXIT_OK


def _request_message(request: Any) -> pb.OptimizeRequest:
    try:
        return json_format.ParseDict(request, pb.OptimizeRequest())
    except (json_format.ParseError, TypeError, ValueError) as exc:
        raise InvalidInputError([FieldViolation("", f"not an OptimizeRequest: {exc}")]) from None


def remote_summary(request: Any, response: pb.OptimizeResponse) -> str:
    """A server's plan checked by the independent checker against the forecasts and on-site
    supply the server used (carried in the response: nothing is fetched here), and its
    summary. PlanCheckError when the plan breaks a constraint."""
    status = pb.PlanStatus.Name(response.status)
    if status == "INFEASIBLE":
        lines = [f"INFEASIBLE: {len(response.unscheduled)} job(s) cannot be placed"]
        return "\n".join(lines + [f"  {u.job_id}: {u.reason}" for u in response.unscheduled])
    problem = problem_as_planned(request, forecasts_used_of(response), site_supply_of(response))
    check = check_plan(problem, plan_from_response(problem, response))
    if not check.ok:
        raise PlanCheckError("remote plan fails the independent checker: "
                             + "; ".join(check.violations[:3]))
    return "\n".join([
        *(f"warning: planned on less than a current forecast: {why}"
          for why in response.degraded_reasons),
        f"status {status} ({response.solver.backend}, remote) in "
        f"{response.solver.wall_seconds:.2f} s, gap {100 * response.solver.gap:.2f} %",
        f"emissions {response.totals.emissions_kg:,.1f} kg CO2e vs FIFO baseline "
        f"{response.baseline.emissions_kg:,.1f} kg: saves {response.savings_kg:,.1f} kg "
        f"({response.savings_pct:.1f} %)",
        f"plan passes the independent checker ({check.emissions_kg:,.1f} kg CO2e recomputed "
        "with the forecasts the server used)",
    ])


def time_limit_of(request: Any, override: float | None) -> float:
    """The solve's time limit: the flag, else the request's, else the default."""
    if override is not None:
        return override
    options = request.get("options") if isinstance(request, dict) else None
    value = (options or {}).get("time_limit_seconds", (options or {}).get("timeLimitSeconds"))
    return float(value) if isinstance(value, int | float) and value > 0 else \
        DEFAULT_TIME_LIMIT_SECONDS


def _demo(args: argparse.Namespace) -> int:
    app = app_of(args)
    request = demo_request(seed=args.seed)
    if args.request_out:
        Path(args.request_out).write_text(json.dumps(request, indent=2) + "\n", encoding="utf-8")
    with solve_progress(time_limit_of(request, args.time_limit)) as sink:
        outcome = app.planner.plan(request, time_limit_s=args.time_limit, backend=args.backend,
                                   require_forecasts=args.require_forecast,
                                   on_progress=sink, store=False)
    if args.output:
        write_output(args.output, response_to_json(to_response(outcome.result, outcome.plan_id))
                     + "\n")
    print(demo_report(outcome.result))
    return EXIT_OK if outcome.result.status != "INFEASIBLE" else EXIT_INFEASIBLE
