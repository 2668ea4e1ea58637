"""The `gridshift` command.

Exit codes: 0 a plan was found, 2 invalid input, 3 infeasible, 1 internal error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_INTERNAL, EXIT_INVALID, EXIT_INFEASIBLE = 0, 1, 2, 3
BACKENDS = ("auto", "highs", "cpsat", "greedy")

log = logging.getLogger("gridshift")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gridshift", description="Energy-aware scheduling optimizer for AI compute.",
        epilog="Exit codes: 0 plan found, 2 invalid input, 3 infeasible, 1 internal error.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plan", help="plan an OptimizeRequest (protobuf JSON) into a response")
    p.add_argument("request", help="OptimizeRequest JSON file, or - for standard input")
    p.add_argument("-o", "--output", help="write the OptimizeResponse JSON here (default stdout)")
    _add_solver_flags(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    p.add_argument("--server", metavar="HOST:PORT",
                   help="solve remotely on a `gridshift serve` instance instead of in-process")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="with --server: the call's deadline in seconds")
    p.add_argument("--no-store", action="store_true", help="do not keep the plan in the store")
    d = sub.add_parser("demo", help="plan a realistic day of AI jobs on embedded data")
    _add_solver_flags(d)
    d.add_argument("-o", "--output", help="also write the OptimizeResponse JSON here")
    d.add_argument("--request-out", help="write the demo OptimizeRequest JSON here")
    d.add_argument("--seed", type=int, default=7, help="seed of the demo's job mix")
    s = sub.add_parser("serve", help="run the gRPC Scheduler service")
    s.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    s.add_argument("--port", type=int, help="port (default 50051; 0 picks a free one)")
    s.add_argument("--max-concurrent-solves", type=int, metavar="N",
                   help="solves running at once (default: number of cores)")
    s.add_argument("--max-queued-solves", type=int, metavar="N",
                   help="solves waiting for a slot before RESOURCE_EXHAUSTED (default 8)")
    s.add_argument("--grace", type=float, metavar="S",
                   help="on SIGTERM, seconds in-flight calls get to finish (default 30)")
    s.add_argument("--config", metavar="FILE", help="TOML file with a [server] table")
    s.add_argument("--log-level", default="INFO", help="log level (default INFO)")
    s.add_argument("--device", choices=("auto", "cpu", "gpu"),
                   help="where ScoreSchedules and risk scoring run (default $GRIDSHIFT_DEVICE)")
    f = sub.add_parser("forecast", help="carbon-intensity forecasts with p10/p90 and provenance")
    f.add_argument("--region", action="append", required=True, help="region (repeatable)")
    f.add_argument("--start", help="RFC 3339 start (default: this hour)")
    f.add_argument("--end", help="RFC 3339 end (default: start + 24 h)")
    f.add_argument("--slot-minutes", type=int, default=60)
    _add_query_flags(f)
    w = sub.add_parser("best-window", help="best start for a run, per region and overall")
    w.add_argument("--region", action="append", required=True, help="region (repeatable)")
    w.add_argument("--duration", type=int, required=True, metavar="MINUTES")
    w.add_argument("--start", help="RFC 3339 window start (default: this hour)")
    w.add_argument("--end", help="RFC 3339 window end (default: start + 24 h)")
    _add_query_flags(w)
    c = sub.add_parser("score", help="score candidate schedules over forecast scenarios")
    c.add_argument("request", help="OptimizeRequest JSON (the problem)")
    c.add_argument("candidates", nargs="+",
                   help="JSON files: {'candidates': [{name, assignments}]} or plan responses")
    c.add_argument("--scenarios", type=int, default=0, help="forecast scenarios (default 32)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--device", choices=("auto", "cpu", "gpu"),
                   help="NumPy (cpu) or CuPy (gpu); default $GRIDSHIFT_DEVICE, else auto")
    c.add_argument("--format", choices=("table", "json"), default="table")
    c.add_argument("--server", metavar="HOST:PORT", help="score on a running service")
    from gridshift.plans_cli import add_commands

    add_commands(sub)
    n = sub.add_parser("nightly", help="nightly batch plan: jobs + sites -> stored plan, outputs")
    n.add_argument("--jobs", required=True, help="JOBS.csv or JOBS.json")
    n.add_argument("--sites", required=True, help="SITES.yaml or SITES.json")
    n.add_argument("--date", help="the night to plan (YYYY-MM-DD, default today UTC)")
    n.add_argument("--hours", type=int, default=48, help="horizon length (default 48)")
    n.add_argument("--out-dir", default=".", help="where plan.json, plan.csv, report.html go")
    n.add_argument("--config", metavar="FILE", help="TOML file with a [forecasts] table")
    _add_solver_flags(n)
    b = sub.add_parser("backtest", help="replay a real GPU trace against real carbon series")
    if "backtest" in (argv if argv is not None else sys.argv[1:]):
        from gridshift.backtest import add_arguments  # heavy: only when asked for

        add_arguments(b)
    h = sub.add_parser("health", help="check a server's health (exit 0 when SERVING)")
    h.add_argument("--server", default="127.0.0.1:50051", metavar="HOST:PORT")
    h.add_argument("--service", default="", help="service name (default: the whole server)")
    return parser


def _add_query_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--server", metavar="HOST:PORT", help="ask a running service instead")
    p.add_argument("--config", metavar="FILE", help="TOML file with a [forecasts] table")


def _add_solver_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--time-limit", type=float, metavar="S",
                   help="solver time limit in seconds (overrides options.time_limit_seconds)")
    p.add_argument("--backend", choices=BACKENDS, help="solver backend (overrides options)")


def main(argv: list[str] | None = None) -> int:
    """The `gridshift` command: run the subcommand and turn errors into exit codes (2 bad
    input, 1 internal or upstream failure) with a one-line message, never a traceback."""
    _configure_logging()
    args = build_parser(argv).parse_args(argv)
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERNAL
    except Exception as exc:  # noqa: BLE001 - the one place that turns bugs into exit code 1
        return _exit_code_for(exc)


def _configure_logging() -> None:
    level = os.environ.get("GRIDSHIFT_LOG_LEVEL", "WARNING").strip().upper() or "WARNING"
    if not isinstance(logging.getLevelName(level), int):  # an unknown name must not crash
        print(f"gridshift: ignoring unknown GRIDSHIFT_LOG_LEVEL {level!r}", file=sys.stderr)
        level = "WARNING"
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _dispatch(args: argparse.Namespace) -> int:
    """Run the subcommand (heavy modules are imported only when asked for)."""
    if args.command == "plan":
        return _remote_plan(args) if args.server else _plan(args)
    if args.command == "serve":
        return _serve(args)
    if args.command == "health":
        return _health(args)
    if args.command in ("plans", "report", "actuals"):
        from gridshift.plans_cli import run

        return run(args)
    if args.command == "nightly":
        from gridshift.nightly import run_nightly

        return run_nightly(args)
    if args.command == "backtest":
        from gridshift.backtest import main as backtest_main

        return backtest_main(args)
    if args.command == "score":
        from gridshift.score_cli import run_score

        return run_score(args, _read_request)
    if args.command in ("forecast", "best-window"):
        from gridshift.queries import run_query

        return run_query(args)
    return _demo(args)


def _exit_code_for(exc: Exception) -> int:
    """Print what went wrong in one line and return the exit code."""
    from gridshift.optimizer.errors import InvalidInputError, UpstreamUnavailableError
    from gridshift.optimizer.scoring.device import DeviceUnavailableError

    if isinstance(exc, InvalidInputError):
        _print_invalid(exc)
        return EXIT_INVALID
    if isinstance(exc, OutputError | DeviceUnavailableError):
        print(f"gridshift: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if isinstance(exc, UpstreamUnavailableError):
        print(f"gridshift: server unavailable: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    log.debug("internal error", exc_info=True)
    print(f"gridshift: internal error ({type(exc).__name__}); set GRIDSHIFT_LOG_LEVEL=DEBUG "
          "for details", file=sys.stderr)
    return EXIT_INTERNAL


class OutputError(Exception):
    """An output path given on the command line cannot be written (a usage error, not a bug)."""


#: Problems listed on stderr; a request with thousands gets the first ones and a count.
MAX_PRINTED_VIOLATIONS = 50


def _print_invalid(exc) -> None:
    print(f"gridshift: invalid request ({len(exc.violations)} problem(s)):", file=sys.stderr)
    for v in exc.violations[:MAX_PRINTED_VIOLATIONS]:
        print(f"  {v}", file=sys.stderr)
    if len(exc.violations) > MAX_PRINTED_VIOLATIONS:
        print(f"  ... and {len(exc.violations) - MAX_PRINTED_VIOLATIONS} more", file=sys.stderr)


def _read_request(path: str) -> Any:
    from gridshift.optimizer.errors import FieldViolation, InvalidInputError

    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError([FieldViolation("", f"cannot read {path}: {exc}")]) from None
    text = text.removeprefix("\ufeff")  # a byte-order mark, as some editors write (RFC 8259)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError([FieldViolation("", f"unreadable JSON in {path}: {exc}")]) from None


def _plan(args: argparse.Namespace) -> int:
    from gridshift.planning import plan
    from gridshift.progress import solve_progress

    request = _read_request(args.request)
    with solve_progress(_time_limit_of(request, args.time_limit), not args.quiet) as sink:
        outcome = plan(request, time_limit_s=args.time_limit, backend=args.backend,
                       on_progress=sink)
    _write_response(outcome.response, args.output)
    if not args.no_store:
        from gridshift.plans import save

        save(outcome.result, outcome.response, request, "cli")
    if not args.quiet:
        print(summary(outcome.result), file=sys.stderr)
    return EXIT_INFEASIBLE if outcome.result.status == "INFEASIBLE" else EXIT_OK


def _remote_plan(args: argparse.Namespace) -> int:
    from gridshift.remote import plan_remotely

    request = _read_request(args.request)
    response, check_text = plan_remotely(args.server, request, time_limit_s=args.time_limit,
                                         backend=args.backend, timeout_s=args.timeout)
    _write_response(response, args.output)
    if not args.quiet:
        print(check_text, file=sys.stderr)
    return EXIT_INFEASIBLE if response.status == 3 else EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    from gridshift.config import load_server_settings
    from gridshift.forecasts import configured_service
    from gridshift.planning import configure_forecasts
    from gridshift.server import configure_json_logging, serve

    configure_json_logging(args.log_level.upper())
    if args.device:
        os.environ["GRIDSHIFT_DEVICE"] = args.device
    configure_forecasts(configured_service(args.config))
    settings = load_server_settings(args.config, {
        "host": args.host, "port": args.port, "max_concurrent_solves": args.max_concurrent_solves,
        "max_queued_solves": args.max_queued_solves, "grace_seconds": args.grace})
    return serve(settings)


def _health(args: argparse.Namespace) -> int:
    import grpc

    from gridshift.adapters.grpc_client import SchedulerClient

    with SchedulerClient(args.server, retries=False) as client:
        try:
            status = client.health(args.service)
        except grpc.RpcError as exc:
            print(f"{args.server}: {exc.code().name}", file=sys.stderr)
            return EXIT_INTERNAL
    print(status)
    return EXIT_OK if status == "SERVING" else EXIT_INTERNAL


def _time_limit_of(request: Any, override: float | None) -> float:
    from gridshift.optimizer.domain import DEFAULT_TIME_LIMIT_SECONDS

    if override is not None:
        return override
    options = request.get("options") if isinstance(request, dict) else None
    value = (options or {}).get("time_limit_seconds", (options or {}).get("timeLimitSeconds"))
    return float(value) if isinstance(value, int | float) and value > 0 else \
        DEFAULT_TIME_LIMIT_SECONDS


def _write_response(response, output: str | None) -> None:
    from gridshift.adapters.codec import response_to_json

    text = response_to_json(response) + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    from gridshift.files import write_atomically

    try:
        write_atomically(output, text)
    except OSError as exc:
        raise OutputError(f"cannot write {output}: {exc.strerror or exc}") from None


def summary(result) -> str:
    """A short human summary of a solve result."""
    p = result.problem
    if result.status == "INFEASIBLE":
        lines = [f"INFEASIBLE: {len(result.plan.unscheduled)} job(s) cannot be placed"]
        lines += [f"  {p.job_ids[j]}: {why}" for j, why in sorted(
            result.plan.unscheduled.items(), key=lambda kv: p.job_ids[kv[0]])]
        return "\n".join(lines)
    t, b = result.figures.totals, result.baseline_figures.totals
    saved = b.emissions_kg - t.emissions_kg
    pct = 100 * saved / b.emissions_kg if b.emissions_kg else 0.0
    gap = f"{100 * result.gap:.2f} %" if result.gap == result.gap and result.gap < 1e9 else "n/a"
    lines = [
        f"status {result.status} ({result.backend}) in {result.wall_seconds:.2f} s, gap {gap}",
        f"emissions {t.emissions_kg:,.1f} kg CO2e vs FIFO baseline {b.emissions_kg:,.1f} kg: "
        f"saves {saved:,.1f} kg ({pct:.1f} %)",
        f"energy {t.energy_kwh:,.0f} kWh, from the grid {t.grid_energy_kwh:,.0f} kWh; "
        f"{len(result.plan.placements)} job(s) on {p.n_sites} site(s)",
    ]
    if result.plan.unscheduled:
        lines.append(f"unscheduled: {len(result.plan.unscheduled)} job(s)")
        lines += [f"  {p.job_ids[j]}: {why}" for j, why in result.plan.unscheduled.items()]
    if result.baseline.unscheduled:
        lines.append(f"note: the FIFO baseline could not place {len(result.baseline.unscheduled)} "
                     "job(s) within the horizon")
    return "\n".join(lines)


def _demo(args: argparse.Namespace) -> int:
    from gridshift.demo import demo_request
    from gridshift.planning import plan
    from gridshift.report import demo_report

    request = demo_request(seed=args.seed)
    if args.request_out:
        Path(args.request_out).write_text(json.dumps(request, indent=2) + "\n", encoding="utf-8")
    from gridshift.progress import solve_progress

    with solve_progress(_time_limit_of(request, args.time_limit)) as sink:
        outcome = plan(request, time_limit_s=args.time_limit, backend=args.backend,
                       on_progress=sink)
    if args.output:
        _write_response(outcome.response, args.output)
    print(demo_report(outcome.result))
    return EXIT_OK if outcome.result.status != "INFEASIBLE" else EXIT_INFEASIBLE


if __name__ == "__main__":
    sys.exit(main())
