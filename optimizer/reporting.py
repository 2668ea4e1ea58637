"""Carbon-report accounting over stored plans: tidy rows by day / team / site, totals, savings.

Pure (NumPy and pandas only); the plan store and the renderers live in ``adapters``.

Definitions (repeated in plain words by :func:`accounting_statement`):

* **Location-based** scope-2 accounting: a slot's emissions are the grid energy drawn
  (facility load = IT power x PUE, less on-site renewable supply, never below zero) times the
  carbon intensity of the site's grid region in that slot (docs/architecture.md, "Emissions").
* **Attribution**: in every (site, slot) the grid energy is shared among the jobs running there
  in proportion to their facility power, as ``optimizer.accounting`` does, so the jobs of a
  team add up to the site's figures exactly.
* **Forecast** figures score the stored schedule with the intensity the plan was made with
  (``problem.ci_g_per_kwh``); **actual** figures score the *same* schedule with intensity
  measured afterwards (providers' history endpoints or files), NaN where none is known.
* **Counterfactuals**, scored with the same intensity as the plan: the **FIFO baseline** of
  docs/architecture.md (capacity respected, jobs queue) and **run-now** (:func:`run_now_plan`:
  every job at its home site from its earliest start, capacity ignored, nobody queues).
* **Days and periods** are UTC. A slot that straddles midnight or a period boundary is split
  in proportion to time (power is constant within a slot), so adjacent periods add up to the
  whole.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from gridshift.forecasting.series import AVERAGE, MARGINAL, SIGNAL_KINDS, Forecast
from gridshift.optimizer.plan import Placement, Plan
from gridshift.optimizer.problem import Problem

#: Label of jobs submitted without a team (an empty string would not survive a CSV round trip).
NO_TEAM = "(no team)"

#: The columns of :func:`report_rows`, in order.
ROW_COLUMNS = (
    "day", "team", "site", "region",
    "energy_kwh", "grid_energy_kwh",
    "emissions_kg_forecast", "emissions_kg_actual", "emissions_kg_best", "actual_coverage",
    "compared_energy_kwh", "compared_emissions_kg", "compared_emissions_kg_actual",
    "compared_emissions_kg_best",
    "baseline_energy_kwh", "baseline_grid_energy_kwh",
    "baseline_emissions_kg", "baseline_emissions_kg_actual", "baseline_emissions_kg_best",
    "run_now_energy_kwh", "run_now_grid_energy_kwh",
    "run_now_emissions_kg", "run_now_emissions_kg_actual", "run_now_emissions_kg_best",
    "as_run_energy_kwh", "as_run_emissions_kg", "as_run_emissions_kg_actual",
    "as_run_emissions_kg_best",
)
_KEYS = ["day", "team", "site", "region"]
# Row-column prefix of each scored schedule: the plan (every counted job it places), the plan
# on the compared jobs (those the plan, the baseline and run-now all place), the baseline and
# run-now on the compared jobs.
_SCENARIOS = {"plan": "", "compared": "compared_", "baseline": "baseline_",
              "run_now": "run_now_", "as_run": "as_run_"}


@dataclass(frozen=True, eq=False)
class ReportPlan:
    """One stored plan, as the report reads it.

    ``actual_ci_g_per_kwh`` is [S, T] gCO2e/kWh measured after the fact, aligned to the plan's
    slots (see :func:`actual_intensity`), NaN where unknown; ``None`` when no actuals were
    pulled. ``providers`` maps region -> forecast provider (default: the problem's forecast
    series), ``signals`` region -> ``"average"`` | ``"marginal"`` (default: the signal its
    forecast series declares), ``actual_sources`` region -> where the actuals came from.
    """

    plan_id: str
    problem: Problem
    plan: Plan
    baseline: Plan
    actual_ci_g_per_kwh: np.ndarray | None = None
    providers: Mapping[str, str] = field(default_factory=dict)
    signals: Mapping[str, str] = field(default_factory=dict)
    actual_sources: Mapping[str, str] = field(default_factory=dict)
    #: Jobs re-planned by a newer plan (job -> that plan's id): they count in the newest
    #: plan only, so a report counts each job once.
    superseded_by: Mapping[int, str] = field(default_factory=dict)
    #: The plan's emissions over forecast scenarios (expected_kg, p90_kg, cvar95_kg), if any.
    risk: Mapping[str, float] = field(default_factory=dict)
    #: How its jobs really ran (the scheduler's record, within the horizon), if read back.
    as_run: Plan | None = None

    def __post_init__(self) -> None:
        p = self.problem
        if self.actual_ci_g_per_kwh is not None:
            actual = np.asarray(self.actual_ci_g_per_kwh, dtype=float)
            if actual.shape != (p.n_sites, p.n_slots):
                raise ValueError(f"plan {self.plan_id}: actual intensity has shape "
                                 f"{actual.shape}, expected {(p.n_sites, p.n_slots)}")
            object.__setattr__(self, "actual_ci_g_per_kwh", actual)
        providers = {f.region: f.provider for f in p.forecasts}
        providers.update(self.providers)
        for region in p.site_regions:
            providers.setdefault(region, "unknown")
        signals = {r: AVERAGE for r in providers}
        signals.update({f.region: f.signal for f in p.forecasts if f.carbon_intensity})
        signals.update(self.signals)
        bad = {r: k for r, k in signals.items() if k not in SIGNAL_KINDS}
        if bad:
            raise ValueError(f"plan {self.plan_id}: signal kinds must be one of "
                             f"{SIGNAL_KINDS}, got {bad}")
        object.__setattr__(self, "providers", providers)
        object.__setattr__(self, "signals", signals)
        object.__setattr__(self, "actual_sources", dict(self.actual_sources))
        object.__setattr__(self, "superseded_by", dict(self.superseded_by))

    @classmethod
    def of(cls, plan_id: str, problem: Problem, plan: Plan, baseline: Plan | None = None,
           **provenance: Any) -> ReportPlan:
        """A report plan whose FIFO baseline is recomputed when not given."""
        from gridshift.optimizer.baseline import fifo_baseline

        return cls(plan_id, problem, plan,
                   fifo_baseline(problem) if baseline is None else baseline, **provenance)

    @property
    def run_now(self) -> Plan:
        """The run-now counterfactual of this plan's problem (see :func:`run_now_plan`)."""
        return run_now_plan(self.problem)

    @property
    def counted(self) -> set[int]:
        """The jobs this plan counts for: all but those a newer plan re-planned."""
        return set(range(self.problem.n_jobs)) - set(self.superseded_by)

    def compared(self, run_now: Plan | None = None) -> set[int]:
        """The counted jobs the plan, the FIFO baseline and run-now all place: what savings
        compare (the same work on every side)."""
        run_now = self.run_now if run_now is None else run_now
        return (self.counted & self.plan.placements.keys() & self.baseline.placements.keys()
                & run_now.placements.keys())


def run_now_plan(problem: Problem) -> Plan:
    """The run-now counterfactual: every job starts at its earliest start (rounded up to a
    slot) at its home site and runs contiguously for its duration; GPU capacity, maintenance
    windows and power caps are ignored, so no job waits. It is "what if every job had run the
    moment it was submitted". Unlike the FIFO baseline (which respects capacity, so jobs queue
    and may move to another site) it can exceed a site's capacity: the checker reports such
    slots as violations, but its energy and emissions figures are still well defined.

    A job whose run would pass the horizon's end is left out (in ``unscheduled``); no plan can
    place such a job either, since its window ends at the horizon.
    """
    plan = Plan()
    for j in range(problem.n_jobs):
        start, d = int(problem.first_slot[j]), int(problem.duration_slots[j])
        if start + d > problem.n_slots:
            plan.unscheduled[j] = "run-now: would run past the end of the horizon"
        else:
            plan.placements[j] = Placement.contiguous(int(problem.home_site[j]), start, d)
    return plan


def actual_intensity(problem: Problem, history: Iterable[Forecast] | Mapping[str, Forecast]
                     ) -> np.ndarray:
    """Measured intensity aligned to the problem's slots, [S, T] gCO2e/kWh.

    ``history`` holds one series of actuals per region (what the providers' ``history``
    returns). A slot gets the time-weighted mean of the values over it only when the series
    covers the whole slot with no missing value; otherwise it is NaN (unknown, never filled).
    """
    series = history.values() if isinstance(history, Mapping) else history
    by_region = {f.region: f for f in series}
    h = problem.horizon
    out = np.full((problem.n_sites, problem.n_slots), np.nan)
    for s, region in enumerate(problem.site_regions):
        f = by_region.get(region)
        if f is None or not f.carbon_intensity:
            continue
        values = np.asarray(f.carbon_intensity, dtype=float)
        missing = ~np.isfinite(values)
        step = float(f.slot_minutes)
        integral = np.concatenate([[0.0], np.cumsum(np.where(missing, 0.0, values) * step)])
        n_missing = np.concatenate([[0], np.cumsum(missing)])
        edges = ((h.start - f.start).total_seconds() / 60.0
                 + np.arange(problem.n_slots + 1) * float(h.slot_minutes))
        lo, hi = edges[:-1], edges[1:]
        inside = (lo >= -1e-9) & (hi <= step * len(values) + 1e-9)
        first = np.clip(np.floor(lo / step + 1e-9).astype(np.int64), 0, len(values))
        last = np.clip(np.ceil(hi / step - 1e-9).astype(np.int64), 0, len(values))
        complete = inside & (n_missing[last] - n_missing[first] == 0)
        boundaries = np.arange(len(values) + 1) * step
        mean = (np.interp(hi, boundaries, integral) - np.interp(lo, boundaries, integral)) / (
            hi - lo)
        out[s] = np.where(complete, mean, np.nan)
    return out


# -- rows ---------------------------------------------------------------------------------------

def _utc(value: datetime | date | str | pd.Timestamp | None) -> float | None:
    """POSIX seconds of a period bound (naive values and dates are UTC)."""
    if value is None:
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.timestamp()


def _slot_pieces(problem: Problem, start_s: float | None, end_s: float | None) -> pd.DataFrame:
    """(slot, day, fraction) for every part of a slot inside [start, end) and one UTC day."""
    h = problem.horizon
    t0 = h.start.timestamp() if h.start.tzinfo else _utc(h.start)
    length = h.slot_minutes * 60.0
    lo_bound = -math.inf if start_s is None else start_s
    hi_bound = math.inf if end_s is None else end_s
    slots, days, fractions = [], [], []
    for t in range(problem.n_slots):
        a, b = t0 + t * length, t0 + (t + 1) * length
        lo, hi = max(a, lo_bound), min(b, hi_bound)
        while lo < hi:
            day_start = math.floor(lo / 86400.0) * 86400.0
            cut = min(hi, day_start + 86400.0)
            slots.append(t)
            days.append(datetime.fromtimestamp(day_start, UTC).date())
            fractions.append((cut - lo) / length)
            lo = cut
    return pd.DataFrame({"slot": np.asarray(slots, dtype=np.int64),
                         "day": pd.Series(days, dtype=object),
                         "fraction": np.asarray(fractions, dtype=float)})


def _job_slot_records(problem: Problem, plan: Plan, actual: np.ndarray | None) -> pd.DataFrame:
    """Per (job, slot) facility and grid energy with the forecast and actual intensity."""
    n = sum(len(p.slots) for p in plan.placements.values())
    job = np.empty(n, dtype=np.int64)
    site = np.empty(n, dtype=np.int64)
    slot = np.empty(n, dtype=np.int64)
    kw = np.empty(n)
    load = np.zeros((problem.n_sites, problem.n_slots))
    i = 0
    for j, p in sorted(plan.placements.items()):
        k = len(p.slots)
        job[i:i + k], site[i:i + k] = j, p.site
        slot[i:i + k] = p.slots
        kw[i:i + k] = problem.facility_kw(j, p.site)
        np.add.at(load[p.site], np.asarray(p.slots, dtype=np.int64), kw[i])
        i += k
    grid = np.maximum(0.0, load - problem.renewable_kw)
    share = np.divide(grid, load, out=np.zeros_like(load), where=load > 0)
    hours = problem.slot_hours
    return pd.DataFrame({
        "job": job, "site_index": site, "slot": slot,
        "energy_kwh": kw * hours,
        "grid_energy_kwh": kw * share[site, slot] * hours,
        "ci": problem.ci_g_per_kwh[site, slot],
        "ci_actual": (np.full(n, np.nan) if actual is None else actual[site, slot]),
    })


def _as_set(value: str | Iterable[str] | None) -> set[str] | None:
    if value is None:
        return None
    return {value} if isinstance(value, str) else set(value)


def _team(name: str) -> str:
    return name if name else NO_TEAM


def _scenario_rows(rp: ReportPlan, plan: Plan, jobs: set[int], pieces: pd.DataFrame,
                   prefix: str, teams: set[str] | None, sites: set[str] | None) -> pd.DataFrame:
    p = rp.problem
    # Attribution on the whole schedule, then only ``jobs`` kept (leaving jobs out must not
    # change what the others draw from the grid).
    rec = _job_slot_records(p, plan, rp.actual_ci_g_per_kwh)
    rec = rec[rec["job"].isin(jobs)]
    rec["team"] = [_team(p.job_teams[j]) for j in rec["job"]]
    rec["site"] = [p.site_ids[s] for s in rec["site_index"]]
    rec["region"] = [p.site_regions[s] for s in rec["site_index"]]
    if teams is not None:
        rec = rec[rec["team"].isin(teams)]
    if sites is not None:
        rec = rec[rec["site"].isin(sites)]
    rec = rec.merge(pieces, on="slot", how="inner")
    energy = rec["energy_kwh"].to_numpy() * rec["fraction"].to_numpy()
    grid = rec["grid_energy_kwh"].to_numpy() * rec["fraction"].to_numpy()
    actual = rec["ci_actual"].to_numpy()
    known = np.isfinite(actual)
    forecast = rec["ci"].to_numpy()
    frame = pd.DataFrame({
        "day": rec["day"].to_numpy(dtype=object),
        "team": rec["team"].to_numpy(dtype=object),
        "site": rec["site"].to_numpy(dtype=object),
        "region": rec["region"].to_numpy(dtype=object),
        f"{prefix}energy_kwh": energy,
        f"{prefix}grid_energy_kwh": grid,
        f"{prefix}emissions_kg": grid * forecast / 1000.0,
        f"{prefix}emissions_kg_actual": np.where(known, grid * np.where(known, actual, 0.0),
                                                 0.0) / 1000.0,
        f"{prefix}emissions_kg_best": grid * np.where(known, actual, forecast) / 1000.0,
        f"{prefix}uncovered_kwh": np.where(known, 0.0, grid),
    })
    return frame.groupby(_KEYS, sort=False, as_index=False).sum()


def report_rows(plans: list[ReportPlan], start: datetime | date | str | None,
                end: datetime | date | str | None, team: str | Iterable[str] | None = None,
                site: str | Iterable[str] | None = None) -> pd.DataFrame:
    """Tidy report rows: one per (UTC day, team, site) over the period [start, end).

    Columns (see ``ROW_COLUMNS``): ``day`` (``datetime.date``, UTC), ``team``, ``site``,
    ``region``; for the plan ``energy_kwh`` (facility), ``grid_energy_kwh``,
    ``emissions_kg_forecast`` (plan-time forecast intensity), ``emissions_kg_actual`` (actual
    intensity; NaN unless every slot of the row with grid energy has one),
    ``emissions_kg_best`` (actual intensity where measured, the forecast elsewhere) and
    ``actual_coverage`` (share of the row's grid energy in slots with an actual; 1 when the
    row draws nothing from the grid), over every job the plan counts for; then the same for
    the plan on the compared jobs (``compared_*``: the counted jobs that the plan, the FIFO
    baseline and run-now all place), the FIFO baseline (``baseline_*``) and the run-now
    counterfactual (``run_now_*``) on those compared jobs, so that savings compare the same
    work; and, where the scheduler's record was read back, the jobs as they really ran
    (``as_run_*``) beside the plan. A row exists when any schedule has energy in it; rows of
    several plans with the same key are added. ``start``/``end`` may be ``None`` (open);
    naive times and dates are UTC. ``team``/``site`` filter by one name or a collection of
    names.
    """
    start_s, end_s = _utc(start), _utc(end)
    if start_s is not None and end_s is not None and end_s <= start_s:
        raise ValueError("the report period needs end > start")
    teams, sites = _as_set(team), _as_set(site)
    frames: dict[str, list[pd.DataFrame]] = {name: [] for name in _SCENARIOS}
    for rp in plans:
        pieces = _slot_pieces(rp.problem, start_s, end_s)
        run_now = rp.run_now
        compared = rp.compared(run_now)
        schedules = {"plan": (rp.plan, rp.counted), "compared": (rp.plan, compared),
                     "baseline": (rp.baseline, compared), "run_now": (run_now, compared),
                     "as_run": (rp.as_run or Plan(), rp.counted)}
        for name, prefix in _SCENARIOS.items():
            schedule, jobs = schedules[name]
            frames[name].append(_scenario_rows(rp, schedule, jobs, pieces, prefix, teams,
                                               sites))
    merged: pd.DataFrame | None = None
    for parts in frames.values():
        parts = [f for f in parts if not f.empty]
        if not parts:
            continue
        frame = pd.concat(parts, ignore_index=True).groupby(_KEYS, sort=False,
                                                            as_index=False).sum()
        merged = frame if merged is None else merged.merge(frame, on=_KEYS, how="outer")
    if merged is None:
        return _empty_rows()
    for prefix in _SCENARIOS.values():
        for col in ("energy_kwh", "grid_energy_kwh", "emissions_kg", "emissions_kg_actual",
                    "emissions_kg_best", "uncovered_kwh"):
            name = f"{prefix}{col}"
            merged[name] = (merged[name].fillna(0.0).astype(float) if name in merged
                            else np.zeros(len(merged)))
    for prefix in _SCENARIOS.values():
        # Unknown as soon as part of the row's grid energy falls in a slot without an actual.
        unknown = merged[f"{prefix}uncovered_kwh"].to_numpy() > 0
        merged[f"{prefix}emissions_kg_actual"] = np.where(
            unknown, np.nan, merged[f"{prefix}emissions_kg_actual"].to_numpy())
    grid = merged["grid_energy_kwh"].to_numpy()
    covered = grid - merged["uncovered_kwh"].to_numpy()
    merged["actual_coverage"] = np.divide(covered, grid, out=np.ones_like(grid), where=grid > 0)
    merged = merged.rename(columns={"emissions_kg": "emissions_kg_forecast"})
    rows = merged.loc[:, list(ROW_COLUMNS)]
    rows = rows.sort_values(_KEYS, kind="stable").reset_index(drop=True)
    return rows


def _empty_rows() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series([], dtype=float) for c in ROW_COLUMNS})
    for c in _KEYS:
        frame[c] = pd.Series([], dtype=object)
    return frame


# -- summary ------------------------------------------------------------------------------------

def _num(value: float) -> float | None:
    """A JSON-safe float: None for NaN."""
    value = float(value)
    return None if math.isnan(value) else value


def _nan_sum(series: pd.Series) -> float:
    """Sum that is NaN as soon as one term is (unknown stays unknown)."""
    return float(series.sum(skipna=False)) if len(series) else 0.0


def _savings(counterfactual: float | None, plan: float | None) -> dict[str, float | None]:
    if counterfactual is None or plan is None:
        return {"kg": None, "pct": None}
    kg = counterfactual - plan
    return {"kg": kg, "pct": 100.0 * kg / counterfactual if counterfactual > 0 else None}


def _figures(rows: pd.DataFrame) -> dict[str, Any]:
    grid = float(rows["grid_energy_kwh"].sum())
    covered = float((rows["grid_energy_kwh"] * rows["actual_coverage"]).sum())
    fig: dict[str, Any] = {
        "energy_kwh": float(rows["energy_kwh"].sum()),
        "grid_energy_kwh": grid,
        "emissions_kg_forecast": float(rows["emissions_kg_forecast"].sum()),
        "emissions_kg_actual": _num(_nan_sum(rows["emissions_kg_actual"])),
        "emissions_kg_best": float(rows["emissions_kg_best"].sum()),
        "actual_coverage": covered / grid if grid > 0 else _num(
            rows["actual_coverage"].min() if len(rows) else math.nan),
    }
    for prefix in ("compared_", "baseline_", "run_now_", "as_run_"):
        if prefix in ("baseline_", "run_now_"):
            fig[f"{prefix}grid_energy_kwh"] = float(rows[f"{prefix}grid_energy_kwh"].sum())
        fig[f"{prefix}energy_kwh"] = float(rows[f"{prefix}energy_kwh"].sum())
        fig[f"{prefix}emissions_kg"] = float(rows[f"{prefix}emissions_kg"].sum())
        fig[f"{prefix}emissions_kg_actual"] = _num(_nan_sum(
            rows[f"{prefix}emissions_kg_actual"]))
        fig[f"{prefix}emissions_kg_best"] = float(rows[f"{prefix}emissions_kg_best"].sum())
    # Savings compare the plan and each counterfactual on the same jobs (compared_*).
    for name, counterfactual in (("fifo_baseline", "baseline_"), ("run_now", "run_now_")):
        fig[f"savings_vs_{name}"] = _savings(fig[f"{counterfactual}emissions_kg"],
                                             fig["compared_emissions_kg"])
        fig[f"savings_vs_{name}_actual"] = _savings(
            fig[f"{counterfactual}emissions_kg_actual"], fig["compared_emissions_kg_actual"])
        fig[f"savings_vs_{name}_best"] = _savings(fig[f"{counterfactual}emissions_kg_best"],
                                                  fig["compared_emissions_kg_best"])
    fig["headline"] = _headline(fig)
    return fig


def _headline(fig: dict[str, Any]) -> dict[str, Any]:
    """The figures a report leads with, on one stated basis: measured intensity where it is
    known (all of it: ``actual``; part: ``actual where measured, forecast elsewhere``), else
    the plan-time forecast; with the share of grid energy the actuals cover."""
    coverage = fig["actual_coverage"]
    if coverage is not None and coverage >= 1.0 - 1e-12 and fig["grid_energy_kwh"] > 0:
        basis, key = "actual intensity", "best"
    elif coverage:
        basis, key = (f"actual intensity where measured ({100 * coverage:.1f} % of grid "
                      "energy), the plan-time forecast elsewhere"), "best"
    else:
        basis, key = "plan-time forecast intensity (no actuals recorded)", "forecast"
    emissions = fig["emissions_kg_best"] if key == "best" else fig["emissions_kg_forecast"]
    suffix = "_best" if key == "best" else ""
    return {"basis": basis, "actual_coverage": coverage, "emissions_kg": emissions,
            "savings_vs_fifo_baseline": fig[f"savings_vs_fifo_baseline{suffix}"],
            "savings_vs_run_now": fig[f"savings_vs_run_now{suffix}"]}


def summary(rows: pd.DataFrame) -> dict[str, Any]:
    """Totals and savings of report rows, overall and by team, site and day (JSON-safe).

    Each block holds the row sums (kWh, kg CO2e) and ``savings_vs_fifo_baseline`` /
    ``savings_vs_run_now`` as ``{"kg": counterfactual - plan, "pct": 100 * kg /
    counterfactual}`` with forecast intensity, plus the same ``*_actual`` with measured
    intensity (``None`` unless every row of the block has actuals). ``pct`` is ``None`` when
    the counterfactual emits nothing.
    """
    days = sorted(rows["day"].unique()) if len(rows) else []
    by_site: dict[str, Any] = {}
    for site_id, group in rows.groupby("site", sort=True):
        by_site[str(site_id)] = {"regions": sorted({str(r) for r in group["region"]}),
                                 **_figures(group)}
    return {
        "period": {"first_day": days[0].isoformat() if days else None,
                   "last_day": days[-1].isoformat() if days else None},
        "rows": len(rows),
        "totals": _figures(rows),
        "by_team": {str(k): _figures(g) for k, g in rows.groupby("team", sort=True)},
        "by_site": by_site,
        "by_day": {k.isoformat(): _figures(g) for k, g in rows.groupby("day", sort=True)},
    }


# -- statement ----------------------------------------------------------------------------------

def accounting_statement(plans: list[ReportPlan]) -> str:
    """The accounting basis of a report, in plain words (paragraphs separated by blank lines)."""
    lines = [
        "Method: location-based scope 2 accounting. For every site and time slot, grid energy "
        "= facility energy (IT power x PUE) minus on-site renewable supply, never below zero; "
        "emissions (kg CO2e) = grid energy (kWh) x the carbon intensity of the site's grid "
        "region in that slot (gCO2e/kWh) / 1000. No market-based instruments (certificates, "
        "PPAs, guarantees of origin) are applied. A slot's grid energy is attributed to the "
        "jobs running in it in proportion to their facility power. Days are UTC dates; a slot "
        "that straddles midnight or the report period's edge is split in proportion to time.",
    ]
    lines += _signal_paragraphs(plans)
    with_actuals = [rp for rp in plans if rp.actual_ci_g_per_kwh is not None]
    sources = sorted({f"{r}: {s}" for rp in with_actuals for r, s in rp.actual_sources.items()})
    lines.append(
        "Forecast vs actual: 'forecast' figures score each stored schedule with the intensity "
        "forecast the plan was made with, at plan time. 'Actual' figures score the same "
        "schedule with intensity measured afterwards, pulled later from the providers' history "
        "endpoints or files"
        + (f" ({'; '.join(sources)})" if sources else "")
        + ". A row has an actual figure only when every slot in which it draws grid energy "
        "has a measured value; actual_coverage is the share of its grid energy in such "
        f"slots. {len(with_actuals)} of {len(plans)} plan(s) have actuals.")
    lines.append(
        "Savings = counterfactual emissions - plan emissions, in kg CO2e and as % of the "
        "counterfactual, both scored with the same intensity. Two counterfactuals: the FIFO "
        "baseline (a carbon-agnostic first-come-first-served scheduler: jobs in order of "
        "earliest start, each placed contiguously at its home site at the earliest time its "
        "GPUs and the power cap fit beside earlier jobs, else at its other allowed sites; "
        "jobs queue for capacity), and run-now (every job starts at its earliest start at its "
        "home site, capacity and power caps ignored, so nothing waits). Positive savings mean "
        "the plan emits less.")
    left_out = [(rp.plan_id, len(rp.plan.unscheduled), len(rp.baseline.unscheduled))
                for rp in plans if rp.plan.unscheduled or rp.baseline.unscheduled]
    if left_out:
        lines.append("Jobs left out (their energy is not counted): " + "; ".join(
            f"plan {pid}: {n_plan} unscheduled in the plan, {n_base} in the FIFO baseline"
            for pid, n_plan, n_base in left_out) + ".")
    lines.append("Units: energy in kWh, emissions in kg CO2e, intensity in gCO2e/kWh, "
                 "load in kW.")
    return "\n\n".join(lines)



def _signal_paragraphs(plans: list[ReportPlan]) -> list[str]:
    """Which provider's signal (average or marginal) each region was scored with, and a
    caution where marginal rates are involved."""
    by_provider: dict[str, set[str]] = {}
    kinds: dict[str, set[str]] = {}
    for rp in plans:
        for region in sorted(set(rp.problem.site_regions)):
            provider = rp.providers.get(region, "unknown")
            by_provider.setdefault(provider, set()).add(region)
            kinds.setdefault(provider, set()).add(rp.signals.get(region, AVERAGE))
    used_kinds = set().union(*kinds.values()) if kinds else set()
    lines: list[str] = []
    signal_lines = []
    for provider in sorted(by_provider):
        kind = "/".join(sorted(kinds[provider]))
        regions = ", ".join(sorted(by_provider[provider]))
        what = ("marginal (the emission rate of the generators that respond to a change in "
                "demand, e.g. WattTime MOER)" if kind == MARGINAL else
                "average (the mean intensity of the electricity generated or consumed)"
                if kind == AVERAGE else kind)
        signal_lines.append(f"{provider}: {what} signal, for region(s) {regions}")
    if signal_lines:
        lines.append("Intensity signal by provider: " + "; ".join(signal_lines) + ".")
    if used_kinds == {MARGINAL, AVERAGE}:
        lines.append("Caution: this report mixes marginal and average signals. Marginal rates "
                     "measure the effect of shifting load, average rates an inventory; their "
                     "totals are not comparable and should be read per region.")
    elif used_kinds == {MARGINAL}:
        lines.append("Marginal rates measure the consequence of when and where load runs; "
                     "they are not an emissions inventory and differ from average figures.")
    return lines


def slot_times(problem: Problem) -> np.ndarray:
    """Slot boundaries as numpy datetime64 (UTC, naive), T+1 of them."""
    start = problem.horizon.start
    if start.tzinfo is not None:
        start = start.astimezone(UTC).replace(tzinfo=None)
    step = timedelta(minutes=problem.horizon.slot_minutes)
    return np.array([start + k * step for k in range(problem.n_slots + 1)],
                    dtype="datetime64[us]")
