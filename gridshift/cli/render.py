"""Plain-text rendering of plans for people: the summary `gridshift plan` prints, and the
demo's output."""

from __future__ import annotations

from collections import defaultdict

from gridshift.optimizer.accounting import savings
from gridshift.optimizer.solve import SolveResult

BAR_WIDTH = 40


def demo_report(result: SolveResult) -> str:
    """Per-site and total emissions, plan against the FIFO baseline, with text bars."""
    p = result.problem
    plan_fig, base_fig = result.figures, result.baseline_figures
    lines = [
        f"gridshift demo: {p.n_jobs} AI jobs, {p.n_sites} sites, {p.n_slots} x "
        f"{p.horizon.slot_minutes}-min slots from {p.horizon.start:%Y-%m-%d %H:%M} UTC",
        "",
        "per site, kg CO2e: emissions of the jobs the FIFO baseline and gridshift run there",
        f"{'site':<12} {'region':<14} {'jobs':>4} {'FIFO baseline':>14} {'gridshift':>10} "
        f"{'saved':>9}",
    ]
    per_site_plan, per_site_base = defaultdict(float), defaultdict(float)
    jobs_at = defaultdict(int)
    for jf in plan_fig.jobs.values():
        per_site_plan[jf.site] += jf.emissions_kg
        jobs_at[jf.site] += 1
    for jf in base_fig.jobs.values():
        per_site_base[jf.site] += jf.emissions_kg
    for s, site in enumerate(p.site_ids):
        lines.append(f"{site:<12} {p.site_regions[s]:<14} {jobs_at[s]:>4} "
                     f"{per_site_base[s]:>14,.1f} {per_site_plan[s]:>10,.1f} "
                     f"{per_site_base[s] - per_site_plan[s]:>9,.1f}")
    if any(per_site_plan[s] > per_site_base[s] for s in range(p.n_sites)):
        lines.append("(a negative saving: gridshift moved work to that cleaner site from "
                     "dirtier ones, so it emits more there and less in all)")
    t, b = plan_fig.totals, base_fig.totals
    saved = b.emissions_kg - t.emissions_kg
    pct = 100 * saved / b.emissions_kg if b.emissions_kg else 0.0
    scale = BAR_WIDTH / max(b.emissions_kg, t.emissions_kg, 1e-9)
    lines += [
        "",
        f"FIFO baseline {'#' * round(b.emissions_kg * scale):<{BAR_WIDTH}} "
        f"{b.emissions_kg:,.1f} kg CO2e",
        f"gridshift     {'#' * round(t.emissions_kg * scale):<{BAR_WIDTH}} "
        f"{t.emissions_kg:,.1f} kg CO2e",
        "",
        f"savings: {saved:,.1f} kg CO2e ({pct:.1f} %) on {t.energy_kwh:,.0f} kWh of facility "
        f"energy; waiting {t.wait_hours:,.1f} job-hours (baseline {b.wait_hours:,.1f})",
        f"solver: {result.status} via {result.backend} in {result.wall_seconds:.2f} s, "
        f"gap {100 * result.gap:.2f} % to its lower bound ({_status_meaning(result)})",
        f"solver detail: {result.detail}",
        "forecasts: " + ", ".join(f"{f.region} ({f.provider})" for f in p.forecasts),
    ]
    return "\n".join(lines)


def _status_meaning(result: SolveResult) -> str:
    """What OPTIMAL or FEASIBLE means for this request's relative gap."""
    gap = result.problem.options.relative_gap
    if result.status == "OPTIMAL":
        return (f"OPTIMAL: no plan is more than {100 * gap:g} % better, the request's "
                "options.relative_gap")
    return "FEASIBLE: the best plan found in the time limit, not proven within the gap"


def summary(result: SolveResult) -> str:
    """A short human summary of a solve result: a few lines whatever the size (left-out jobs
    are grouped by reason, a few ids each)."""
    p = result.problem
    if result.status == "INFEASIBLE":
        return "\n".join([f"INFEASIBLE: {len(result.plan.unscheduled)} job(s) cannot be placed",
                          *(f"  {line}" for line in result.explanations),
                          *_left_out_lines(result)])
    t = result.figures.totals
    saved = savings(result.figures, result.baseline_figures)
    gap = f"{100 * result.gap:.2f} %" if result.gap == result.gap and result.gap < 1e9 else "n/a"
    lines = [f"status {result.status} ({result.backend}) in {result.wall_seconds:.2f} s, "
             f"gap {gap}"]
    compared = (f"emissions {saved.plan_emissions_kg:,.1f} kg CO2e vs FIFO baseline "
                f"{saved.baseline_emissions_kg:,.1f} kg: saves {saved.saved_kg:,.1f} kg "
                f"({saved.saved_pct:.1f} %)")
    if saved.same_jobs:
        lines.append(compared)
    else:
        lines += [f"on the {saved.common_jobs} job(s) both place: {compared}",
                  f"the plan places {len(result.figures.jobs)} job(s), "
                  f"{saved.plan_energy_kwh:,.0f} kWh; the FIFO baseline "
                  f"{len(result.baseline_figures.jobs)} job(s), "
                  f"{saved.baseline_energy_kwh:,.0f} kWh"]
    lines.append(f"energy {t.energy_kwh:,.0f} kWh, from the grid {t.grid_energy_kwh:,.0f} kWh; "
                 f"{len(result.plan.placements)} job(s) on {p.n_sites} site(s); "
                 f"{t.emissions_kg:,.1f} kg CO2e in all")
    if result.plan.unscheduled:
        lines.append(f"left out: {len(result.plan.unscheduled)} job(s) (the plan places the "
                     "most jobs first, then the most GPU-hours, then the lowest objective)")
        lines += [f"  {line}" for line in result.explanations]
        lines += _left_out_lines(result)
    if result.baseline.unscheduled:
        lines.append(f"note: the FIFO baseline could not place {len(result.baseline.unscheduled)} "
                     "job(s) within the horizon")
    lines += degraded_lines(p.forecasts)
    return "\n".join(lines)


def degraded_lines(forecasts) -> list[str]:
    """``warning: ...`` lines for every series a plan rests on that is less than a current
    forecast (the response's ``degraded_reasons``)."""
    return [f"warning: planned on less than a current forecast: {f.region}: {why}"
            for f in forecasts if (why := f.degraded_reason())]


#: Job ids listed per reason; the rest are counted.
MAX_IDS_PER_REASON = 10


def _left_out_lines(result: SolveResult) -> list[str]:
    """Left-out jobs grouped by reason: ``  reason: a, b, c (and 12 more)``."""
    p = result.problem
    by_reason: dict[str, list[str]] = {}
    for j, why in result.plan.unscheduled.items():
        by_reason.setdefault(why, []).append(p.job_ids[j])
    lines = []
    for why, ids in sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        ids.sort()
        more = f" (and {len(ids) - MAX_IDS_PER_REASON} more)" \
            if len(ids) > MAX_IDS_PER_REASON else ""
        lines.append(f"  {', '.join(ids[:MAX_IDS_PER_REASON])}{more}: {why}")
    return lines
