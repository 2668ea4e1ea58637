"""`gridshift ray gate|submit|list`: the Ray job gate (see :mod:`gridshift.app.ray_gate`)."""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from gridshift.adapters.nightly_files import read_sites
from gridshift.adapters.store import GateSubmission
from gridshift.app.ray_gate import JobSubmission, RayGate, RoundOutcome, clusters_of
from gridshift.app.scheduler_plans import planner_plan
from gridshift.cli.common import EXIT_INTERNAL, EXIT_OK, app_of
from gridshift.cli.slurm import read_forecasts
from gridshift.optimizer.errors import FieldViolation, InvalidInputError


def run(args: argparse.Namespace) -> int:
    gate = _gate(args)
    if args.ray_command == "submit":
        sub = gate.submit(_submission(args))
        print(sub.submission_id)
        print(f"queued: {sub.spec['gpus']} GPUs, {sub.spec['duration_minutes']} min; the "
              "running gate plans and submits it", file=sys.stderr)
        return EXIT_OK
    if args.ray_command == "list":
        return _list(gate.list(tuple(args.state) if args.state else None), args.format)
    if args.once:
        return _report(gate.round())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        gate.run(args.interval, stop, on_round=_report)
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def _gate(args: argparse.Namespace) -> RayGate:
    app = app_of(args)
    if app.archive is None:
        raise InvalidInputError([FieldViolation(
            "[store]", "the Ray gate keeps its queue in the plan store: switch storing on")])
    sites = getattr(args, "sites", None)
    if sites:
        entries, slot_minutes = read_sites(Path(sites))
        clusters = clusters_of(entries)
    else:       # listing needs no clusters
        clusters, slot_minutes = [], 60
    if getattr(args, "server", None):
        from gridshift.cli.common import client_of
        from gridshift.cli.remote_planning import server_plan

        plan = server_plan(lambda: client_of(args, args.server), args.server)
    else:
        plan = planner_plan(app.planner, "ray")
    return RayGate(app.archive.store, clusters, plan,
                   slot_minutes=getattr(args, "slot_minutes", None) or slot_minutes,
                   horizon_minutes=60 * getattr(args, "hours", 24),
                   time_limit_s=getattr(args, "time_limit", 10.0),
                   move_weight=getattr(args, "move_weight", 0.5),
                   forecasts=read_forecasts(getattr(args, "forecasts", None)),
                   allow_no_clusters=not sites)


def _time(text: str | None, flag: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError([FieldViolation(flag, f"not an RFC 3339 time: {text!r}")]) \
            from None
    if moment.tzinfo is None:
        raise InvalidInputError([FieldViolation(flag, "needs a time zone (e.g. a final Z)")])
    return moment


def _submission(args: argparse.Namespace) -> JobSubmission:
    entrypoint = list(args.entrypoint)
    if entrypoint[:1] == ["--"]:
        entrypoint = entrypoint[1:]
    runtime_env: Any = None
    if args.runtime_env:
        try:
            runtime_env = json.loads(args.runtime_env)
        except json.JSONDecodeError as exc:
            raise InvalidInputError([FieldViolation("--runtime-env", f"not JSON: {exc}")]) \
                from None
        if not isinstance(runtime_env, dict):
            raise InvalidInputError([FieldViolation("--runtime-env", "must be a JSON object")])
    return JobSubmission(shlex.join(entrypoint) if len(entrypoint) > 1 else
                         "".join(entrypoint), args.gpus, args.duration_minutes,
                         deadline=_time(args.deadline, "--deadline"),
                         clusters=tuple(args.cluster),
                         earliest_start=_time(args.earliest_start, "--earliest-start"),
                         team=args.team, submission_id=args.id, runtime_env=runtime_env)


def _row(sub: GateSubmission) -> dict[str, Any]:
    def when(moment: datetime | None) -> str:
        return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"

    return {"id": sub.submission_id, "state": sub.state, "cluster": sub.cluster or "-",
            "planned_start_utc": when(sub.planned_start),
            "submitted_utc": when(sub.submitted_at), "ray_status": sub.scheduler_status or "-",
            "gpus": sub.spec.get("gpus"), "duration_min": sub.spec.get("duration_minutes"),
            "deadline_utc": sub.spec.get("deadline") or "-", "note": sub.note}


def _list(subs: list[GateSubmission], fmt: str) -> int:
    rows = [_row(s) for s in subs]
    if fmt == "json":
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    columns = ["id", "state", "cluster", "planned_start_utc", "submitted_utc", "ray_status",
               "gpus", "duration_min", "note"]
    widths = {c: max([len(c), *(len(str(r[c])) for r in rows)]) for c in columns[:-1]}
    print("  ".join(c.ljust(widths.get(c, 0)) for c in columns).rstrip())
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths.get(c, 0)) for c in columns).rstrip())
    counts = {state: sum(1 for s in subs if s.state == state)
              for state in ("waiting", "submitted", "running", "done")}
    print(", ".join(f"{n} {state}" for state, n in counts.items()), file=sys.stderr)
    return EXIT_OK


def _report(outcome: RoundOutcome) -> int:
    parts = []
    if outcome.plan_id:
        parts.append(f"plan {outcome.plan_id[:12]}: {outcome.planned} planned")
    for label, ids in (("submitted", outcome.submitted), ("finished", outcome.finished),
                       ("released at their own times", outcome.released)):
        if ids:
            parts.append(f"{label}: {', '.join(ids)}")
    if outcome.unreachable:
        parts.append(f"unreachable (nothing changed there): {', '.join(outcome.unreachable)}")
    if outcome.error:
        parts.append(f"planning failed: {outcome.error}")
    if parts:
        print("; ".join(parts), file=sys.stderr, flush=True)
    return EXIT_INTERNAL if outcome.error else EXIT_OK
