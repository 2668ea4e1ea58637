"""Plain-text rendering of plans for people: the summary `gridshift plan` prints, and the
demo's output."""

from __future__ import annotations

from collections import defaultdict

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
        f"{'site':<12} {'region':<14} {'jobs':>4} {'baseline kg':>12} {'plan kg':>10} "
        f"{'saved kg':>9}",
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
                     f"{per_site_base[s]:>12,.1f} {per_site_plan[s]:>10,.1f} "
                     f"{per_site_base[s] - per_site_plan[s]:>9,.1f}")
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
        f"gap {100 * result.gap:.2f} % ({result.detail})",
        "forecasts: " + ", ".join(f"{f.region} ({f.provider})" for f in p.forecasts),
    ]
    return "\n".join(lines)


def summary(result: SolveResult) -> str:
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
