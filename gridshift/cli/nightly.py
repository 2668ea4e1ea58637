"""`gridshift nightly`: a night's batch plan from job and site files (see
:mod:`gridshift.app.nightly`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gridshift.app.nightly import NightlyRun, parse_night
from gridshift.cli.common import EXIT_INFEASIBLE, EXIT_OK, settings_of
from gridshift.cli.progress import TERMINAL
from gridshift.cli.render import summary


def run(args: argparse.Namespace) -> int:
    from gridshift.bootstrap import build_app

    settings = settings_of(args)
    app = build_app(settings)
    night = parse_night(args.date) if args.date else app.clock().date()
    outcome = app.nightly.run(NightlyRun(
        jobs_path=Path(args.jobs), sites_path=Path(args.sites), night=night,
        out_dir=Path(args.out_dir), hours=args.hours, time_limit_s=args.time_limit,
        backend=args.backend, require_forecasts=args.require_forecast), TERMINAL)
    if outcome.reused:
        print(f"reusing the plan stored for this night: {outcome.plan_id}", file=sys.stderr)
    else:
        print(summary(outcome.result), file=sys.stderr)
        if outcome.store_error:
            print(f"warning: plan {outcome.plan_id} was written to {args.out_dir} but not "
                  f"stored (a rerun of this night will plan again): {outcome.store_error}",
                  file=sys.stderr)
    _write_metrics(app, settings.metrics)
    return EXIT_INFEASIBLE if outcome.status == "INFEASIBLE" else EXIT_OK


def _write_metrics(app, metrics) -> None:
    """The run's metrics to the [metrics] textfile and/or Pushgateway, when set; a failure
    to write them is a warning, never the run's failure."""
    if app.metrics is None or not (metrics.textfile or metrics.pushgateway):
        return
    try:
        app.metrics.write(metrics.textfile, metrics.pushgateway, metrics.job)
    except OSError as exc:
        print(f"warning: metrics not written: {exc}", file=sys.stderr)
