"""`gridshift slurm sync` (one round) and `gridshift slurm agent` (a round every --interval
seconds): carry plans out on a Slurm cluster (see :mod:`gridshift.app.slurm_sync`)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from gridshift.adapters.nightly_files import read_sites
from gridshift.adapters.slurm import SlurmClient, SlurmUnavailable
from gridshift.app.slurm_sync import SlurmSync, SyncOutcome, planner_plan, sites_of
from gridshift.cli.common import EXIT_INTERNAL, EXIT_OK, app_of
from gridshift.optimizer.errors import FieldViolation, InvalidInputError

log = logging.getLogger("gridshift.slurm")


def run(args: argparse.Namespace) -> int:
    app = app_of(args)
    entries, slot_minutes = read_sites(Path(args.sites))
    agent = SlurmSync(
        SlurmClient(slurm_conf=args.slurm_conf or app.slurm_conf), sites_of(entries),
        _plan_fn(args, app), marker=args.marker, hours=args.hours,
        slot_minutes=args.slot_minutes or slot_minutes, time_limit_s=args.time_limit,
        move_weight=args.move_weight, forecasts=read_forecasts(args.forecasts),
        record_runs=app.archive.save_runs if app.archive is not None else None,
        jobcomp_log=args.jobcomp_log)
    if args.slurm_command == "sync":
        return _round(agent, args.dry_run)
    while True:     # the agent: a round every interval; Ctrl-C or SIGTERM ends it
        _round(agent, args.dry_run)
        time.sleep(args.interval)


def _plan_fn(args: argparse.Namespace, app: Any) -> Any:
    """Planning on the --server, else in this process."""
    if args.server:
        from gridshift.cli.common import client_of
        from gridshift.cli.remote_planning import server_plan

        return server_plan(lambda: client_of(args, args.server), args.server)
    return planner_plan(app.planner, "slurm")


def _round(agent: SlurmSync, dry_run: bool) -> int:
    try:
        outcome = agent.sync(dry_run=dry_run)
    except SlurmUnavailable as exc:
        print(f"gridshift: Slurm unavailable, nothing changed: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    _report(outcome, dry_run)
    return EXIT_INTERNAL if outcome.error else EXIT_OK


def _report(outcome: SyncOutcome, dry_run: bool) -> None:
    verb = "would run" if dry_run else "ran"
    for d in outcome.decisions:
        where = f" to {d.partition} at {d.start:%Y-%m-%d %H:%M} UTC" if d.start else ""
        why = f": {d.reason}" if d.reason else ""
        print(f"job {d.job_id}: {d.action}{where}{why}")
        for command in d.commands:
            print(f"  {verb}: {command}")
    if outcome.error:
        print(f"gridshift: planning failed ({outcome.error}); held jobs released at their own "
              "times", file=sys.stderr)
    print(f"plan {outcome.plan_id or '-'}: {outcome.count('moved')} moved, "
          f"{outcome.count('released')} released, {outcome.count('unchanged')} unchanged, "
          f"{outcome.count('left')} left as they are, {outcome.count('skipped')} not plannable",
          file=sys.stderr)


def read_forecasts(path: str | None) -> list[dict] | None:
    """Forecast series for the sites' regions (a JSON list as in a request's ``forecasts``,
    or a request file with them); None: the forecast service pulls them."""
    if not path:
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError([FieldViolation("--forecasts", f"cannot read: {exc}")]) \
            from None
    series = data.get("forecasts") if isinstance(data, dict) else data
    if not isinstance(series, list):
        raise InvalidInputError([FieldViolation("--forecasts", "expected a list of forecasts")])
    return series
