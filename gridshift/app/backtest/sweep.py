"""A sweep: many independent replays (weeks x series x seeds), run one after another in this
process or as tasks on Ray, and their results aggregated per series and policy.

Each replay is a :class:`ReplaySpec` (a series, a first day, a seed and the shared settings);
:func:`replay_summary` runs one and returns its JSON dict (:func:`.report.to_json`) with its
wall time, small enough to come back from a Ray worker. The inputs (series, trace, vintages)
are loaded once per series by whoever plans the sweep and handed to every replay of that series
(on Ray through the object store, :mod:`gridshift.adapters.ray_sweep`). A replay whose week the
series does not cover (the last days of a year) is reported as skipped, not failed.

The replays are independent and deterministic (the forecast error and the solver are seeded,
each window's solver runs single-threaded), so the sweep gives the same numbers on Ray as in
this process; ``tests/test_backtest_sweep.py`` checks it on a real local Ray cluster.

Aggregates, per series and policy (:func:`aggregate`): the share of the perfect-foresight
savings over all its replays (the sum of savings over the sum of the reference's savings), the
distribution of weekly shares (median, 10th percentile, worst), the share of replays in which
the policy emitted more than run-now and by how much at most (in % of that week's run-now
emissions), and the share of replays in which it emitted less than the per-job lowest window
given the same forecast. A week in which perfect foresight saves less than
:data:`MIN_PF_SAVINGS_PCT` of run-now's emissions has no meaningful weekly share (a few grams
over almost nothing: a year of DE weeks once gave -667,989 %); the weekly distribution leaves
such weeks out and says how many it covers (``share_weeks``), while the aggregate share and the
regret measures count every week.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Protocol

import numpy as np
import pandas as pd

from gridshift.app.backtest.config import DEFAULT_POLICIES, BacktestError
from gridshift.app.backtest.data import ReplayInputs, SeriesSource, series_start
from gridshift.app.backtest.replay import config_for, replay
from gridshift.app.backtest.report import to_json

#: A policy is "worse than run-now" in a replay when it emits more than run-now by more than
#: this fraction of run-now's emissions (float noise).
WORSE_TOLERANCE = 1e-9

#: Weeks in which perfect foresight saves less than this % of run-now's emissions are left out
#: of the distribution of weekly shares (see the module docstring).
MIN_PF_SAVINGS_PCT = 0.5


@dataclass(frozen=True)
class ReplaySpec:
    """One replay of a sweep: the series, its first day, the forecast-error seed, the length
    in days and :class:`~.config.BacktestConfig` settings (as sorted (name, value) pairs; a
    ``policies`` pair names the policies to run, default all but the diagnostic)."""

    source: SeriesSource
    start: date
    seed: int
    days: int = 7
    settings: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        """``REGION YYYY-MM-DD seed N``."""
        return f"{self.source.region} {self.start.isoformat()} seed {self.seed}"

    @property
    def key(self) -> str:
        """The label and the settings: unique within a sweep."""
        return f"{self.label} {self.settings!r}"


def plan_sweep(sources: list[SeriesSource], inputs: dict[str, ReplayInputs],
               start: date | None, weeks: int, seeds: Iterable[int], days: int = 7,
               **settings: Any) -> list[ReplaySpec]:
    """The replays of ``weeks`` consecutive periods of ``days`` from ``start`` (moved into each
    series' year, see :func:`.data.series_start`) for every series and seed, series by series,
    week by week."""
    if weeks < 1:
        raise ValueError(f"weeks must be >= 1; got {weeks}")
    frozen = tuple(sorted(settings.items()))
    specs = []
    for source in sources:
        first = series_start(start, inputs[source.region].series)
        for week in range(weeks):
            day = first + timedelta(days=days * week)
            specs += [ReplaySpec(source, day, seed, days, frozen) for seed in seeds]
    return specs


def weeks_between(start: date, end: date, days: int = 7) -> int:
    """The number of whole periods of ``days`` from ``start`` before ``end`` (at least 1)."""
    return max(1, (end - start).days // days)


def replay_summary(spec: ReplaySpec, inputs: ReplayInputs) -> dict[str, Any]:
    """Run one replay; its JSON dict (see :func:`.report.to_json`) plus ``label``, ``wall_s``
    and ``skipped`` (why, where the series does not cover the replay; else None). A schedule
    failing the checker still raises :class:`BacktestError`."""
    began = time.perf_counter()
    settings = dict(spec.settings)
    policies = tuple(settings.pop("policies", DEFAULT_POLICIES))
    cfg = config_for(spec.source, inputs, spec.start, spec.days, seed=spec.seed, **settings)
    try:
        result = replay(cfg, inputs, policies=policies)
    except BacktestError as exc:
        if "does not cover" not in str(exc) and "no trace jobs" not in str(exc):
            raise
        return {"label": spec.label, "key": spec.key, "region": spec.source.region,
                "start": spec.start.isoformat(), "seed": spec.seed, "skipped": str(exc),
                "wall_s": time.perf_counter() - began}
    out = to_json(result)
    out.update(label=spec.label, key=spec.key, skipped=None,
               wall_s=time.perf_counter() - began)
    return out


class Executor(Protocol):
    """Runs ``fn(item, shared[key(item)])`` for every item; yields the results as they finish
    (in any order)."""

    def __call__(self, fn: Callable[[Any, Any], Any], items: list[Any],
                 shared: dict[str, Any], key: Callable[[Any], str]) -> Iterator[Any]: ...


def sequential(fn: Callable[[Any, Any], Any], items: list[Any], shared: dict[str, Any],
               key: Callable[[Any], str]) -> Iterator[Any]:
    """The executor without Ray: one item after another in this process."""
    for item in items:
        yield fn(item, shared[key(item)])


def _region_key(spec: ReplaySpec) -> str:
    return spec.source.region


@dataclass
class SweepResult:
    """Every replay's summary (in the sweep's order), the aggregate table and the wall time."""

    replays: list[dict[str, Any]]
    table: pd.DataFrame
    wall_s: float
    executor: str
    workers: int | None = None
    skipped: list[str] = field(default_factory=list)

    @property
    def throughput_per_min(self) -> float:
        """Replays finished per minute of wall time."""
        done = sum(r["skipped"] is None for r in self.replays)
        return 60.0 * done / self.wall_s if self.wall_s > 0 else math.nan


def run_sweep(specs: list[ReplaySpec], inputs: dict[str, ReplayInputs],
              executor: Executor = sequential, *, name: str = "sequential",
              workers: int | None = None,
              on_replay: Callable[[int, int, dict[str, Any]], None] | None = None
              ) -> SweepResult:
    """Run every replay of ``specs`` with ``executor`` (default: in this process);
    ``on_replay(done, total, summary)`` after each one finishes."""
    began = time.perf_counter()
    if len({spec.key for spec in specs}) != len(specs):
        raise ValueError("a sweep holds the same replay twice")
    done: list[dict[str, Any]] = []
    for summary in executor(replay_summary, specs, inputs, _region_key):
        done.append(summary)
        if on_replay is not None:
            on_replay(len(done), len(specs), summary)
    by_key = {s["key"]: s for s in done}
    replays = [by_key[spec.key] for spec in specs]
    return SweepResult(replays, aggregate(replays), time.perf_counter() - began, name, workers,
                       [r["label"] + ": " + r["skipped"] for r in replays if r["skipped"]])


def weekly_rows(replays: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per replay and policy: region, start, seed, policy, emissions_kg,
    savings_pct (against run-now), share_of_pf_pct, excess_pct (emissions above run-now in %
    of run-now's, 0 when not above), ahead_of_lowest (emits less than lowest-window),
    reference_kind."""
    rows = []
    for r in replays:
        if r.get("skipped"):
            continue
        policies = r["policies"]
        run_now = policies["run-now"]["emissions_kg"]
        lowest = policies.get("lowest-window", {}).get("emissions_kg")
        for name, p in policies.items():
            kg = p["emissions_kg"]
            rows.append({
                "region": r["region"], "start": r["start"], "seed": r["seed"], "policy": name,
                "emissions_kg": kg, "savings_kg": p["savings_vs_run_now_kg"],
                "pf_savings_kg": run_now - r["reference"]["bound_kg"],
                "savings_pct": p["savings_vs_run_now_pct"],
                "share_of_pf_pct": p["share_of_pf_savings_pct"],
                "excess_pct": max(0.0, 100.0 * (kg - run_now) / run_now) if run_now else 0.0,
                "worse_than_run_now": kg > run_now * (1 + WORSE_TOLERANCE),
                "ahead_of_lowest": lowest is not None and kg < lowest - 1e-9,
                "reference_kind": r["reference"]["kind"]})
    return pd.DataFrame(rows)


def share_is_meaningful(weekly: pd.DataFrame) -> pd.Series:
    """Per row of :func:`weekly_rows`: whether perfect foresight saved at least
    :data:`MIN_PF_SAVINGS_PCT` of run-now's emissions that week, so that a weekly share
    means something."""
    run_now_kg = weekly["emissions_kg"] + weekly["savings_kg"]
    return weekly["pf_savings_kg"] >= run_now_kg * MIN_PF_SAVINGS_PCT / 100.0


def aggregate(replays: list[dict[str, Any]]) -> pd.DataFrame:
    """Per region and policy over its replays (see the module docstring)."""
    weekly = weekly_rows(replays)
    if weekly.empty:
        return pd.DataFrame()
    out = []
    for (region, policy), g in weekly.groupby(["region", "policy"], sort=False):
        pf = g["pf_savings_kg"].sum()
        shares = g.loc[share_is_meaningful(g), "share_of_pf_pct"].dropna().to_numpy(float)
        out.append({
            "region": region, "policy": policy, "replays": len(g), "share_weeks": len(shares),
            "share_of_pf_pct": 100.0 * g["savings_kg"].sum() / pf if pf > 0 else math.nan,
            "weekly_share_median": float(np.median(shares)) if len(shares) else math.nan,
            "weekly_share_p10": float(np.percentile(shares, 10)) if len(shares) else math.nan,
            "weekly_share_min": float(shares.min()) if len(shares) else math.nan,
            "savings_pct_mean": float(g["savings_pct"].mean()),
            "worse_than_run_now_pct": 100.0 * float(g["worse_than_run_now"].mean()),
            "worst_excess_pct": float(g["excess_pct"].max()),
            "ahead_of_lowest_pct": 100.0 * float(g["ahead_of_lowest"].mean()),
            "reference_kinds": ", ".join(f"{k} x{n}" for k, n in
                                          g["reference_kind"].value_counts().items()),
        })
    return pd.DataFrame(out)


def merge_sweeps(documents: Iterable[dict[str, Any]]) -> SweepResult:
    """One sweep of the replays of several (``sweep.json`` documents, as written by
    :func:`.sweep_report.write_sweep_outputs`): a year run series by series, or in parts,
    aggregated as if run at once. Wall time and workers are the sums; a replay held twice is
    an error."""
    replays: list[dict[str, Any]] = []
    wall_s, workers, executors = 0.0, 0, set()
    for doc in documents:
        replays += doc["replays"]
        wall_s += float(doc.get("wall_s") or 0.0)
        workers = max(workers, int(doc.get("workers") or 0))
        executors.add(doc.get("executor", "sequential"))
    keys = [r["key"] for r in replays]
    if len(set(keys)) != len(keys):
        raise ValueError("the sweeps hold the same replay twice")
    return SweepResult(replays, aggregate(replays), wall_s, "+".join(sorted(executors)),
                       workers or None,
                       [r["label"] + ": " + r["skipped"] for r in replays if r["skipped"]])


def ray_executor(address: str | None = None, workers: int | None = None) -> Any:
    """The Ray executor (a context manager, :class:`gridshift.adapters.ray_sweep.RaySweep`):
    on the cluster at ``address``, or on a local one started for the run with ``workers``
    CPUs. Raises ``RayUnavailable`` on entering where Ray is missing or unreachable."""
    from gridshift.adapters.ray_sweep import RaySweep

    return RaySweep(address, workers)
