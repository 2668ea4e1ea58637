"""The `gridshift` command line: every subcommand and its options (argparse only, so that
parsing imports nothing heavy; the chosen command's module is imported to run it)."""

from __future__ import annotations

import argparse
from typing import Any

from gridshift.cli.arg_types import non_negative, positive, whole
from gridshift.cli.flags import add_client_flags, add_config_flag, add_solver_flags

#: Subcommand -> the module of gridshift.cli that runs it.
COMMANDS = {
    "plan": "plan", "demo": "plan", "serve": "serve", "health": "serve",
    "forecast": "queries", "best-window": "queries", "score": "score",
    "plans": "plans", "report": "plans", "actuals": "plans", "nightly": "nightly",
    "backtest": "backtest", "db": "db", "slurm": "slurm", "ray": "ray_gate",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand; the backtest's options (which import the backtest's
    constants) are added only when ``command`` is ``backtest``."""
    parser = argparse.ArgumentParser(
        prog="gridshift", description="Energy-aware scheduling optimizer for AI compute.",
        epilog="Exit codes: 0 plan found, 2 invalid input, 3 infeasible, 1 internal error. "
               "Settings: a TOML file (--config), then GRIDSHIFT_* environment variables, then "
               "flags (see the README's Configuration section).")
    sub = parser.add_subparsers(dest="command", required=True)
    _plan_commands(sub)
    _serve_commands(sub)
    _query_commands(sub)
    _score_command(sub)
    _store_commands(sub)
    _nightly_command(sub)
    _db_command(sub)
    _slurm_commands(sub)
    _ray_commands(sub)
    backtest = sub.add_parser("backtest", help="replay a real GPU trace against real carbon "
                                               "series")
    if command == "backtest":
        from gridshift.cli.backtest import add_arguments

        add_arguments(backtest)
    return parser


def _add_query_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("table", "json", "csv"), default="table",
                   help="a table for people (default), the protobuf JSON mapping, or CSV")
    p.add_argument("--server", metavar="HOST:PORT", help="ask a running service instead")
    add_client_flags(p)
    add_config_flag(p)


def _plan_commands(sub: Any) -> None:
    """`plan` and `demo`."""
    p = sub.add_parser("plan", help="plan an OptimizeRequest (protobuf JSON) into a response")
    p.add_argument("request", help="OptimizeRequest JSON file, or - for standard input")
    p.add_argument("-o", "--output", help="write the OptimizeResponse JSON here (default stdout)")
    add_solver_flags(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    p.add_argument("--server", metavar="HOST:PORT",
                   help="solve remotely on a `gridshift serve` instance instead of in-process")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="with --server: the call's deadline in seconds")
    p.add_argument("--no-store", action="store_true", help="do not keep the plan in the store")
    add_client_flags(p)
    add_config_flag(p)
    d = sub.add_parser("demo", help="plan a realistic day of AI jobs on embedded data")
    add_solver_flags(d)
    d.add_argument("-o", "--output", help="also write the OptimizeResponse JSON here")
    d.add_argument("--request-out", help="write the demo OptimizeRequest JSON here")
    d.add_argument("--seed", type=whole(0), default=7, help="seed of the demo's job mix")
    add_config_flag(d)


def _serve_commands(sub: Any) -> None:
    """`serve` and `health`."""
    s = sub.add_parser("serve", help="run the gRPC Scheduler service")
    s.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    s.add_argument("--port", type=int, help="port (default 50051; 0 picks a free one)")
    s.add_argument("--max-concurrent-solves", type=int, metavar="N",
                   help="solves running at once (default: number of cores)")
    s.add_argument("--max-queued-solves", type=int, metavar="N",
                   help="solves waiting for a slot before RESOURCE_EXHAUSTED (default 8)")
    s.add_argument("--grace", type=float, metavar="S",
                   help="on SIGTERM, seconds in-flight calls get to finish (default 30)")
    s.add_argument("--log-level", help="DEBUG, INFO, WARNING, ... (default $GRIDSHIFT_LOG_LEVEL, "
                                        "else INFO)")
    s.add_argument("--device", choices=("auto", "cpu", "gpu"),
                   help="where ScoreSchedules and risk scoring run (default $GRIDSHIFT_DEVICE, "
                        "else auto)")
    add_config_flag(s)
    h = sub.add_parser("health", help="check a server's health (exit 0 when SERVING)")
    h.add_argument("--server", default="127.0.0.1:50051", metavar="HOST:PORT",
                   help="the server to ask (default 127.0.0.1:50051)")
    h.add_argument("--service", default="", help="service name (default: the whole server)")
    add_client_flags(h)
    add_config_flag(h)


def _query_commands(sub: Any) -> None:
    """`forecast` and `best-window`."""
    f = sub.add_parser("forecast", help="carbon-intensity forecasts with p10/p90 and provenance")
    f.add_argument("--region", action="append", required=True, help="region (repeatable)")
    f.add_argument("--start", help="RFC 3339 start (default: this hour)")
    f.add_argument("--end", help="RFC 3339 end, exclusive (default: start + 24 h)")
    f.add_argument("--slot-minutes", type=int, default=60,
                   help="step of the series returned, minutes (default 60)")
    _add_query_flags(f)
    w = sub.add_parser("best-window", help="best start for a run, per region and overall")
    w.add_argument("--region", action="append", required=True, help="region (repeatable)")
    w.add_argument("--duration", type=int, required=True, metavar="MINUTES",
                   help="how long the run takes, minutes")
    w.add_argument("--start", help="RFC 3339 window start (default: this hour)")
    w.add_argument("--end", help="RFC 3339 window end, exclusive: the run must finish by it "
                                 "(default: start + 24 h)")
    _add_query_flags(w)


def _score_command(sub: Any) -> None:
    """`score`."""
    c = sub.add_parser("score", help="score candidate schedules over forecast scenarios")
    c.add_argument("request", help="OptimizeRequest JSON (the problem)")
    c.add_argument("candidates", nargs="+",
                   help="JSON files: {'candidates': [{name, assignments}]} or plan responses")
    c.add_argument("--scenarios", type=int, default=0, help="forecast scenarios (default 32)")
    c.add_argument("--seed", type=int, default=0, help="seed of the sampled scenarios")
    c.add_argument("--device", choices=("auto", "cpu", "gpu"),
                   help="NumPy (cpu) or CuPy (gpu); default $GRIDSHIFT_DEVICE, else auto")
    c.add_argument("--format", choices=("table", "json"), default="table",
                   help="a table for people (default) or the protobuf JSON mapping")
    c.add_argument("--server", metavar="HOST:PORT", help="score on a running service")
    add_client_flags(c)
    add_config_flag(c)


def _store_commands(sub: Any) -> None:
    """`plans list|show`, `report`, `actuals import|pull`."""
    plans = sub.add_parser("plans", help="stored plans")
    psub = plans.add_subparsers(dest="plans_command", required=True)
    lst = psub.add_parser("list", help="list stored plans, newest first")
    lst.add_argument("--from", dest="start",
                     help="RFC 3339 or YYYY-MM-DD (UTC): plans whose horizon ends after it")
    lst.add_argument("--to", dest="end",
                     help="RFC 3339 or YYYY-MM-DD (UTC), exclusive: plans whose horizon starts "
                          "before it")
    lst.add_argument("--team", help="only plans with jobs of this team")
    lst.add_argument("--site", help="only plans with jobs at this site")
    lst.add_argument("--status", choices=("OPTIMAL", "FEASIBLE", "INFEASIBLE"),
                     help="only plans with this status")
    lst.add_argument("--page-size", type=int, default=50, help="plans per page (default 50)")
    lst.add_argument("--page-token", help="the token a previous page printed")
    lst.add_argument("--format", choices=("table", "json"), default="table",
                     help="a table for people (default) or the protobuf JSON mapping")
    show = psub.add_parser("show", help="one stored plan: a summary, or request and response "
                                        "as JSON")
    show.add_argument("plan_id", help="the plan's id, or a unique prefix of it (8 characters "
                                      "usually do)")
    show.add_argument("--format", choices=("summary", "json"), default="summary",
                      help="a summary for people (default) or the GetPlan JSON")
    rep = sub.add_parser("report", help="carbon report of the stored plans of a period")
    rep.add_argument("--from", dest="start", required=True,
                     help="RFC 3339 or YYYY-MM-DD (UTC), inclusive")
    rep.add_argument("--to", dest="end", required=True,
                     help="RFC 3339 or YYYY-MM-DD (UTC), exclusive: --to 2026-06-16 ends at "
                          "the start of that day")
    rep.add_argument("--team", help="only this team's jobs")
    rep.add_argument("--site", help="only this site's jobs")
    rep.add_argument("--format", choices=("html", "csv", "json"), default="html",
                     help="html (one self-contained page with charts; default), csv (tidy rows: "
                          "one per day, team and site) or json (rows and summary)")
    rep.add_argument("-o", "--output", required=True, help="file to write, or - for stdout")
    rep.add_argument("--list-superseded", action="store_true",
                     help="also list the job rows that newer plans re-planned (each job counts "
                          "once, in its newest plan)")
    act = sub.add_parser("actuals", help="observed carbon intensity, for re-scoring plans")
    asub = act.add_subparsers(dest="actuals_command", required=True)
    imp = asub.add_parser("import", help="store actuals from a CSV (region,valid_at,value)")
    imp.add_argument("file", help="CSV with columns region, valid_at (RFC 3339), value "
                                  "(gCO2e/kWh)")
    imp.add_argument("--slot-minutes", type=int, default=60,
                     help="step of the series in the file (default 60)")
    pull = asub.add_parser("pull", help="store actuals from the providers' history endpoints")
    pull.add_argument("--region", action="append", required=True, help="region (repeatable)")
    pull.add_argument("--from", dest="start", required=True,
                      help="RFC 3339 or YYYY-MM-DD (UTC), inclusive")
    pull.add_argument("--to", dest="end", required=True,
                      help="RFC 3339 or YYYY-MM-DD (UTC), exclusive")
    for parser in (lst, show, rep, imp, pull):
        add_config_flag(parser)


def _nightly_command(sub: Any) -> None:
    """`nightly`."""
    n = sub.add_parser("nightly", help="nightly batch plan: jobs + sites -> stored plan, outputs")
    n.add_argument("--jobs", required=True, help="JOBS.csv or JOBS.json")
    n.add_argument("--sites", required=True, help="SITES.yaml or SITES.json")
    n.add_argument("--date", help="the night to plan (YYYY-MM-DD, default today UTC)")
    n.add_argument("--hours", type=int, default=48, help="horizon length (default 48)")
    n.add_argument("--out-dir", default=".", help="where plan.json, plan.csv, report.html go")
    add_config_flag(n)
    add_solver_flags(n)


def _db_command(sub: Any) -> None:
    """`db`."""
    db = sub.add_parser("db", help="the plan store's schema migrations")
    db.add_argument("db_command", choices=("upgrade", "downgrade", "current", "history"),
                    help="upgrade to a revision (default: the newest), downgrade to one "
                         "('base' drops every table), show the current one, list them all")
    db.add_argument("revision", nargs="?", help="the revision to up- or downgrade to")
    db.add_argument("--url", help="database URL (default: the settings' store: "
                                  "GRIDSHIFT_DB_URL, else the SQLite file in the data directory)")
    add_config_flag(db)


def _ray_commands(sub: Any) -> None:
    """`ray gate|submit|list`: the Ray job gate."""
    ray = sub.add_parser("ray", help="gate jobs for Ray clusters: submit each at its planned "
                                     "time to its planned cluster")
    rsub = ray.add_subparsers(dest="ray_command", required=True)
    gate = rsub.add_parser("gate", help="run the gate: re-plan as jobs arrive, submit each to "
                                        "Ray at its planned start")
    submit = rsub.add_parser("submit", help="give a job to the gate (it is planned and "
                                            "submitted by the running gate)")
    listing = rsub.add_parser("list", help="the gate's jobs: waiting, submitted, running, done")
    for p in (gate, submit):
        p.add_argument("--sites", required=True,
                       help="the sites file (YAML or JSON, as for nightly) with, per site, its "
                            "ray_address (the cluster's dashboard URL) and gpu_power_kw")
    gate.add_argument("--interval", type=positive, default=30.0, metavar="S",
                      help="seconds between rounds (default 30)")
    gate.add_argument("--once", action="store_true", help="run one round and exit")
    _scheduler_planning_flags(gate)
    submit.add_argument("--gpus", type=int, required=True, help="GPUs the job holds")
    submit.add_argument("--duration-minutes", type=int, required=True, metavar="MIN",
                        help="how long it runs (an estimate; it plans with this)")
    submit.add_argument("--deadline", metavar="TIME",
                        help="when it must be done (RFC 3339, e.g. 2026-12-06T09:00:00Z)")
    submit.add_argument("--earliest-start", metavar="TIME",
                        help="not before (RFC 3339; default now)")
    submit.add_argument("--cluster", action="append", default=[], metavar="NAME",
                        help="a cluster it may run on (repeat; default any)")
    submit.add_argument("--team", default="", help="the team it is reported under")
    submit.add_argument("--id", default="", metavar="ID",
                        help="its submission id (default: the gate names it)")
    submit.add_argument("--runtime-env", metavar="JSON",
                        help="Ray runtime environment, as JSON (e.g. '{\"working_dir\": \".\"}')")
    submit.add_argument("entrypoint", nargs=argparse.REMAINDER,
                        help="the command Ray runs (after --)")
    listing.add_argument("--state", action="append", choices=("waiting", "submitted", "running",
                                                              "done"),
                         help="only jobs in this state (repeat; default all)")
    listing.add_argument("--format", choices=("table", "json"), default="table",
                         help="table (default) or json")
    for p in (gate, submit, listing):
        add_config_flag(p)


def _scheduler_planning_flags(p: argparse.ArgumentParser) -> None:
    """How a scheduler integration plans: horizon, slots, time limit, move weight, forecasts,
    and --server with the client flags."""
    p.add_argument("--hours", type=whole(1), default=24, help="planning horizon (default 24)")
    p.add_argument("--slot-minutes", type=whole(1),
                   help="slot length (default: the sites file's, else 60)")
    p.add_argument("--time-limit", type=positive, default=10.0, metavar="S",
                   help="solver time limit per re-plan in seconds (default 10)")
    p.add_argument("--move-weight", type=non_negative, default=0.5, metavar="KG",
                   help="what moving an already planned job costs, kg CO2e (default 0.5)")
    p.add_argument("--forecasts", metavar="FILE",
                   help="forecast series for the sites' regions (JSON, as a request's "
                        "forecasts); default: the forecast service")
    p.add_argument("--server", metavar="HOST:PORT",
                   help="plan on this gridshift server (default: in this process); when it "
                        "cannot be reached, jobs go at their own times")
    add_client_flags(p)


def _slurm_commands(sub: Any) -> None:
    """`slurm sync|agent`."""
    slurm = sub.add_parser("slurm", help="carry plans out on a Slurm cluster")
    ssub = slurm.add_subparsers(dest="slurm_command", required=True)
    for name, text in (("sync", "plan the opted-in pending jobs once and apply the plan"),
                       ("agent", "sync every --interval seconds until stopped")):
        p = ssub.add_parser(name, help=text)
        p.add_argument("--sites", required=True,
                       help="the sites file (YAML or JSON, as for nightly) with, per site, its "
                            "partition and gpu_power_kw (kW per GPU)")
        p.add_argument("--marker", default="comment=gridshift",
                       help="which pending jobs opt in: comment=TEXT (default "
                            "comment=gridshift), qos=NAME or partition=NAME")
        _scheduler_planning_flags(p)
        p.add_argument("--slurm-conf", metavar="FILE",
                       help="the cluster's slurm.conf (default $GRIDSHIFT_SLURM_CONF, else "
                            "Slurm's own)")
        p.add_argument("--dry-run", action="store_true",
                       help="say which scontrol commands would run; change nothing")
        p.add_argument("--jobcomp-log", metavar="FILE",
                       help="Slurm's filetxt job-completion log (JobCompLoc): finished jobs are "
                            "read back from it so reports show them as run")
        if name == "agent":
            p.add_argument("--interval", type=positive, default=300.0, metavar="S",
                           help="seconds between rounds (default 300)")
        add_config_flag(p)
