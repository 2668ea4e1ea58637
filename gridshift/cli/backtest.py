"""`gridshift backtest`: its options, one replay (with a progress bar) or a sweep of replays
(weeks x series x seeds, on Ray by default, progress per replay), and exit codes."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

from gridshift.app.backtest.config import (
    DEFAULT_POLICIES,
    FORECAST_MODELS,
    SERIES_YEAR,
    VINTAGES,
    BacktestConfig,
    BacktestError,
)
from gridshift.app.backtest.data import (
    SeriesSource,
    TraceSource,
    canonical_region,
    load_inputs,
    site_settings,
)
from gridshift.app.backtest.replay import config_for, replay
from gridshift.app.backtest.report import (
    describe,
    format_table,
    rules_text,
    to_json,
    write_outputs,
)
from gridshift.app.backtest.sweep import plan_sweep, ray_executor, run_sweep, weeks_between
from gridshift.app.backtest.sweep_report import format_sweep, sweep_json, write_sweep_outputs
from gridshift.cli.arg_types import non_negative, positive, whole
from gridshift.cli.common import settings_of
from gridshift.cli.flags import add_config_flag
from gridshift.optimizer.errors import InvalidInputError

DEFAULT_REGIONS = ("US-CAL-CISO", "DE")


def _pue(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 1:
        raise argparse.ArgumentTypeError("must be a finite number >= 1 (facility power / IT "
                                         "power)")
    return value


def _z(text: str) -> float | None:
    if text.strip().lower() == "off":
        return None
    try:
        return non_negative(text)
    except (argparse.ArgumentTypeError, ValueError):
        raise argparse.ArgumentTypeError("must be a finite number >= 0 or 'off'") from None


def _z_entry(text: str) -> tuple[str | None, float | None]:
    """``Z|off`` for every series, or ``REGION=Z|off`` for one: (the region or None, z)."""
    region, sep, value = text.rpartition("=")
    if sep and not region.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: a region before '=' (REGION=Z)")
    return (region.strip() if sep else None), _z(value)


def _check_period(args: argparse.Namespace) -> None:
    """--end needs --start and a later day, and --weeks and --end are two ways to say one
    thing."""
    if args.end is None:
        return
    if args.start is None:
        raise ValueError("--end needs --start (the sweep runs from --start to --end)")
    if args.end <= args.start:
        raise ValueError(f"--end ({args.end}) must be after --start ({args.start})")
    if (args.end - args.start).days < args.days:
        raise ValueError(f"--start {args.start} to --end {args.end} holds no whole replay of "
                         f"{args.days} day(s) (--days)")
    if args.weeks is not None:
        raise ValueError("give --weeks or --end, not both")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `gridshift backtest` options."""
    data = parser.add_argument_group("data")
    data.add_argument("--region", action="append", metavar="NAME",
                      help="a series (repeatable; default US-CAL-CISO and DE): a built-in one "
                           f"({', '.join(SERIES_YEAR)} or the short name CISO, ERCO, ...), or "
                           "the name of the matching --carbon-csv")
    data.add_argument("--carbon-csv", action="append", metavar="PATH",
                      help="your own series (repeatable, one per --region, in order): CSV with "
                           "timestamp (ISO 8601, UTC) and carbon_intensity (gCO2e/kWh), any "
                           "step from 5 min to 1 h, any year")
    data.add_argument("--forecasts", metavar="PATH",
                      help="real forecast vintages (the file source's layout: region, "
                           "valid_at, value, issued_at); they replace the synthetic error model "
                           "for the regions they hold")
    data.add_argument("--jobs", metavar="PATH",
                      help="arrivals from a jobs file in the nightly format (earliest_start = "
                           "arrival; default: the Philly trace)")
    data.add_argument("--sites", metavar="PATH",
                      help="take the site (GPU capacity, PUE, power cap) from a nightly sites "
                           "file: the site --site, else the first of the region")
    data.add_argument("--site", metavar="ID", help="the site of --sites to replay")
    site = parser.add_argument_group("site and jobs")
    site.add_argument("--capacity-gpus", type=whole(1), metavar="N",
                      help="GPU capacity (default: sized from the trace by --utilisation)")
    site.add_argument("--utilisation", type=positive, default=0.9,
                      help="run-now peak demand / capacity when sizing it (default 0.9)")
    site.add_argument("--pue", type=_pue, help="PUE of the site (default 1.0)")
    site.add_argument("--power-cap-kw", type=positive, metavar="KW",
                      help="facility power cap (default none)")
    site.add_argument("--gpu-kw", type=positive, default=0.7,
                      help="IT power per GPU of trace jobs without their own (default 0.7)")
    site.add_argument("--slack-hours", type=non_negative, default=12.0,
                      help="deadline = arrival + duration + slack (default 12)")
    when = parser.add_argument_group("period, seeds and sweep")
    when.add_argument("--start", type=date.fromisoformat, metavar="YYYY-MM-DD",
                      help="first day, moved by whole weeks into each series' year "
                           "(default 2022-10-24 for EIA regions, 2020-10-26 for DE)")
    when.add_argument("--end", type=date.fromisoformat, metavar="YYYY-MM-DD",
                      help="with --start: replay every week before this day (a sweep)")
    when.add_argument("--weeks", type=whole(1), metavar="N",
                      help="replay N consecutive weeks from --start (a sweep)")
    when.add_argument("--days", type=whole(1), default=7,
                      help="days per replay (default 7)")
    when.add_argument("--seed", type=whole(0), default=0, help="forecast-error and solver seed")
    when.add_argument("--seeds", type=whole(1), default=1, metavar="N",
                      help="replay with N seeds from --seed (default 1)")
    when.add_argument("--ray-address", metavar="HOST:PORT",
                      help="run a sweep's replays on this Ray cluster (default: a local Ray "
                           "started for the run)")
    when.add_argument("--workers", type=whole(1), metavar="N",
                      help="replays at once (default: the machine's CPUs)")
    when.add_argument("--no-ray", dest="ray", action="store_false",
                      help="run a sweep's replays one after another in this process")
    plan = parser.add_argument_group("planning")
    plan.add_argument("--time-limit", type=positive, default=5.0, metavar="S",
                      help="solver time limit per window, seconds (default 5)")
    plan.add_argument("--reference-time-limit", type=non_negative, default=60.0, metavar="S",
                      help="time limit of the offline perfect-foresight optimum (default 60; "
                           "where it is not proven, its relaxation's bound is the reference)")
    plan.add_argument("--decision-hours", type=whole(1), default=1,
                      help="hours between planning decisions (default 1)")
    plan.add_argument("--forecast-model", choices=tuple(FORECAST_MODELS),
                      default="average-ci", help="decision-time forecast error model")
    plan.add_argument("--vintages", choices=VINTAGES, default="evolving",
                      help="forecasts of successive decisions: one evolving history "
                           "(default) or independent errors per decision")
    plan.add_argument("--no-blend", dest="blend", action="store_false",
                      help="plan on the raw decision-time forecast instead of blending it "
                           "with the seasonal model of the actuals published by then (every "
                           "forecast-driven policy alike)")
    plan.add_argument("--no-regret-z", type=_z_entry, action="append", default=[],
                      metavar="[REGION=]Z|off",
                      help="no-regret rule: gridshift keeps its shifts from running now only "
                           "where, over the forecast scenarios, their saving (with the bets "
                           "in play) minus Z standard deviations stays above the loss budget, "
                           "else pulls the weakest back (default "
                           f"{BacktestConfig.no_regret_z:g}; off: no rule). REGION=Z sets "
                           "one series' Z (repeatable; e.g. the Z that "
                           "bench/no_regret_calibration.py finds for it); see the README's "
                           "Backtests")
    plan.add_argument("--no-regret-budget", type=non_negative, default=None, metavar="PCT",
                      help="with --no-regret-z: the loss budget, in %% of what the replay's "
                           "jobs emit run now; each decision's shifts, with every bet already "
                           "in play, may risk losing up to it in their Z-sigma bad case "
                           f"(default {BacktestConfig.no_regret_budget_pct:g}; 0 judges each "
                           "decision alone)")
    add_config_flag(parser)
    parser.add_argument("--format", choices=("table", "json"), default="table",
                        help="print tables (default) or JSON")
    parser.add_argument("-o", "--output-dir", default="backtest",
                        help="where the tables (CSV, Markdown) and charts go (default ./backtest)")


def run(args: argparse.Namespace) -> int:
    """Run the replay or the sweep, print the results and write the outputs. Exit codes: 0
    done, 2 invalid options or data missing, 1 a schedule failed the checker or Ray failed."""
    data_dir = settings_of(args).shared_data_dir
    try:
        _check_period(args)
        sources = _sources(args)
        needs_shared = args.jobs is None or any(s.csv_path is None for s in sources)
        if needs_shared and not (data_dir / "philly-adaptdl" / "philly.csv").exists():
            print(f"gridshift backtest: the trace and carbon series are not under {data_dir} "
                  "(set GRIDSHIFT_SHARED_DATA, or give --jobs and --carbon-csv)",
                  file=sys.stderr)
            return 2
        trace = TraceSource(args.jobs)
        inputs = {s.region: load_inputs(s, trace, data_dir) for s in sources}
        settings = _settings(args)
        weeks = args.weeks or (weeks_between(args.start, args.end, args.days)
                               if args.start and args.end else 1)
        seeds = range(args.seed, args.seed + args.seeds)
        region_z = _region_z(args.no_regret_z, sources)
        per_region = {s.region: {**_site(args, s.region), **region_z.get(s.region, {})}
                      for s in sources}
        if len(sources) * weeks * len(seeds) == 1 and args.weeks is None:
            _one(args, sources[0], inputs, {**settings, **per_region[sources[0].region]})
            return 0
        specs = []
        for s in sources:
            specs += plan_sweep([s], inputs, args.start, weeks, seeds, args.days,
                                **{**settings, **per_region[s.region]})
        return _sweep(args, specs, inputs)
    except InvalidInputError as exc:
        for v in exc.violations:
            print(f"gridshift backtest: {v}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"gridshift backtest: {exc}", file=sys.stderr)
        return 2
    except BacktestError as exc:
        print(f"gridshift backtest: {exc}", file=sys.stderr)
        return 1


def _sources(args: argparse.Namespace) -> list[SeriesSource]:
    csvs = args.carbon_csv or []
    regions = args.region or ([] if csvs else list(DEFAULT_REGIONS))
    if csvs and len(csvs) != len(regions):
        raise ValueError(f"give one --region per --carbon-csv (in order); got {len(regions)} "
                         f"region(s) and {len(csvs)} file(s)")
    if csvs:
        sources = [SeriesSource(r, c, args.forecasts) for r, c in zip(regions, csvs,
                                                                      strict=True)]
    else:
        sources = [SeriesSource(canonical_region(r), None, args.forecasts) for r in regions]
    names = [s.region for s in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"a region is named twice: {', '.join(names)}")
    return sources


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {
        "slack_h": args.slack_hours, "time_limit_s": args.time_limit,
        "decision_hours": args.decision_hours, "forecast_model": args.forecast_model,
        "utilisation": args.utilisation, "vintages": args.vintages, "blend": args.blend,
        "no_regret_z": _global_z(args.no_regret_z), "gpu_kw": args.gpu_kw,
        "reference_time_limit_s": args.reference_time_limit}
    if args.no_regret_budget is not None:
        out["no_regret_budget_pct"] = args.no_regret_budget
    return out


def _global_z(entries: list[tuple[str | None, float | None]]) -> float | None:
    """The z of every series: the last ``--no-regret-z Z`` (default the config's)."""
    every = [z for region, z in entries if region is None]
    return every[-1] if every else BacktestConfig.no_regret_z


def _region_z(entries: list[tuple[str | None, float | None]],
              sources: list[SeriesSource]) -> dict[str, dict[str, float | None]]:
    """Per series named in a ``--no-regret-z REGION=Z`` (a --carbon-csv's name, or a built-in
    one as --region takes it), its settings: ``{"no_regret_z": the last Z given}``; a name
    that is not one of the run's series is an error."""
    names = {s.region for s in sources}
    out: dict[str, dict[str, float | None]] = {}
    for region, z in entries:
        if region is None:
            continue
        name = region if region in names else _built_in(region)
        if name not in names:
            raise ValueError(f"--no-regret-z {region}=...: {region!r} is not one of this "
                             f"run's series ({', '.join(s.region for s in sources)})")
        out[name] = {"no_regret_z": z}
    return out


def _built_in(name: str) -> str | None:
    """The built-in series ``name`` stands for (``NYIS``: ``US-NY-NYIS``), or None."""
    try:
        return canonical_region(name)
    except ValueError:
        return None


def _site(args: argparse.Namespace, region: str) -> dict[str, Any]:
    """The site settings of a region: the sites file's, then the flags over them."""
    out = site_settings(args.sites, region, args.site) if args.sites else {}
    for name, value in (("capacity_gpus", args.capacity_gpus), ("pue", args.pue),
                        ("power_cap_kw", args.power_cap_kw)):
        if value is not None:
            out[name] = value
    return out


def _one(args: argparse.Namespace, source: SeriesSource, inputs: dict,
         settings: dict[str, Any]) -> None:
    cfg = config_for(source, inputs[source.region], args.start, args.days, seed=args.seed,
                     **settings)
    estimate = (len(DEFAULT_POLICIES) - 1) * (args.days * 24 + 48) // cfg.decision_hours
    with _progress_bar(source.region, estimate) as tick:
        result = replay(cfg, inputs[source.region], on_window=tick)
    paths = write_outputs(result, args.output_dir)
    if args.format == "json":
        print(json.dumps(to_json(result), indent=2))
        return
    print(describe(result))
    print(format_table(result))
    print("rules:")
    print(rules_text(result))
    for path in paths:
        print(f"wrote {path}")


def _sweep(args: argparse.Namespace, specs: list, inputs: dict) -> int:
    def progress(done: int, total: int, summary: dict[str, Any]) -> None:
        if summary.get("skipped"):
            what = f"skipped: {summary['skipped']}"
        else:
            gs = summary["policies"].get("gridshift", {})
            share = gs.get("share_of_pf_savings_pct")
            what = (f"gridshift {share:.1f} % of perfect foresight"
                    if share is not None else "done")
        print(f"[{done}/{total}] {summary['label']}: {what} ({summary['wall_s']:.1f} s)",
              file=sys.stderr, flush=True)

    if args.ray:
        from gridshift.adapters.ray_sweep import RayUnavailable

        try:
            with ray_executor(args.ray_address, args.workers) as executor:
                print(f"gridshift backtest: {len(specs)} replays on {executor.description}",
                      file=sys.stderr, flush=True)
                result = run_sweep(specs, inputs, executor, name="ray", workers=args.workers,
                                   on_replay=progress)
        except RayUnavailable as exc:
            if args.ray_address is not None or "not installed" not in str(exc):
                print(f"gridshift backtest: {exc} (--no-ray runs the sweep in this process)",
                      file=sys.stderr)
                return 1
            print(f"gridshift backtest: {exc}; running the {len(specs)} replays in this "
                  "process", file=sys.stderr, flush=True)
            result = run_sweep(specs, inputs, on_replay=progress)
    else:
        result = run_sweep(specs, inputs, on_replay=progress)
    paths = write_sweep_outputs(result, args.output_dir)
    if args.format == "json":
        print(json.dumps(sweep_json(result), indent=2))
    else:
        print(format_sweep(result))
        for path in paths:
            print(f"wrote {path}")
    return 0


@contextlib.contextmanager
def _progress_bar(region: str, total: int) -> Iterator[Callable[[str], None]]:
    """A tqdm bar over decision windows when stderr is a terminal; silent otherwise."""
    if not sys.stderr.isatty():
        yield lambda policy: None
        return
    from tqdm import tqdm

    bar = tqdm(total=total, desc=f"backtest {region}", unit="window", file=sys.stderr,
               leave=False)

    def tick(policy: str) -> None:
        bar.set_postfix_str(policy, refresh=False)
        bar.update(1)

    try:
        yield tick
    finally:
        bar.close()
