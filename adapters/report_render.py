"""Rendering of carbon reports (``optimizer.reporting``): tidy CSV, JSON, and one
self-contained HTML page with matplotlib charts embedded as base64 PNG data URIs.

Charts are drawn on matplotlib's Agg canvas directly (no pyplot, no display, no global
backend switch), so rendering is safe in servers and threads. matplotlib is imported lazily,
only by :func:`charts`.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd

from gridshift.optimizer.accounting import site_loads
from gridshift.optimizer.reporting import NO_TEAM, ReportPlan, slot_times

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHART_DPI = 100
_FIGSIZE_IN = (9.0, 4.2)

#: Chart keys (also their captions in the HTML page).
EMISSIONS_BY_DAY = "Emissions per day by team"
LOAD_PREFIX = "Load vs FIFO baseline, site "
INTENSITY_PREFIX = "Forecast vs actual intensity, region "


# -- CSV / JSON ---------------------------------------------------------------------------------

#: What a spreadsheet would read as a formula at the start of a cell (OWASP CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(text: str) -> str:
    """A text cell that no spreadsheet runs as a formula: one starting with = + - @ or a tab
    gets a leading apostrophe, as OWASP advises."""
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


def render_csv(rows: pd.DataFrame) -> str:
    """The tidy rows as CSV (one row per day / team / site; ``day`` as YYYY-MM-DD; unknown
    actuals empty). Load it back with ``pandas.read_csv(path, parse_dates=["day"])``. Energy
    (kWh) and emissions (kg CO2e) are rounded to 3 decimals (1 Wh, 1 g), coverage to 4; text
    cells that a spreadsheet would run as a formula are neutralised (:func:`csv_cell`)."""
    out = rows.copy()
    for column in out.columns:
        if column in ("team", "site", "region"):
            out[column] = [csv_cell(str(v)) for v in out[column]]
        elif column == "actual_coverage":
            out[column] = out[column].astype(float).round(4)
        elif out[column].dtype.kind == "f":
            out[column] = out[column].round(3)
    return out.to_csv(index=False, lineterminator="\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) or math.isinf(value) else float(value)
    return value


def render_json(rows: pd.DataFrame, summary: dict, statement: str) -> str:
    """``{"accounting": statement, "summary": summary, "rows": [...]}`` as strict JSON
    (unknown values are ``null``, days ``YYYY-MM-DD``)."""
    records = [dict(zip(rows.columns, rec, strict=True))
               for rec in rows.itertuples(index=False, name=None)]
    doc = {"accounting": statement, "summary": summary, "rows": records}
    return json.dumps(_jsonable(doc), indent=2, allow_nan=False)


# -- HTML ---------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
margin:2rem auto;max-width:1100px;padding:0 1rem;color:#1b1f23;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;
border-bottom:1px solid #d0d7de;padding-bottom:.2rem}
.sub{color:#57606a;margin-top:0}
.cards{display:flex;flex-wrap:wrap;gap:.8rem;margin:1rem 0}
.card{border:1px solid #d0d7de;border-radius:6px;padding:.6rem .9rem;min-width:10rem}
.card .v{font-size:1.3rem;font-weight:600}.card .l{color:#57606a;font-size:.85rem}
.warn{border:1px solid #d4a72c;background:#fff8c5;border-radius:6px;padding:.6rem .9rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.88rem}
th,td{border:1px solid #d0d7de;padding:.25rem .5rem}th{background:#f6f8fa;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.good{color:#1a7f37}.bad{color:#cf222e}
figure{margin:1rem 0}figure img{max-width:100%;height:auto;border:1px solid #eaeef2}
figcaption{color:#57606a;font-size:.85rem}
.statement p{margin:.5rem 0}
details summary{cursor:pointer;color:#0969da}
"""

_MISSING = "\u2014"  # em dash: unknown value


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return _MISSING
    if isinstance(value, float | np.floating | int | np.integer):
        value = float(value)
        return _MISSING if math.isnan(value) else f"{value:,.{digits}f}"
    return html.escape(str(value))


def _cell(value: Any, digits: int = 2) -> str:
    numeric = isinstance(value, float | np.floating | int | np.integer) or value is None
    return f'<td class="n">{_fmt(value, digits)}</td>' if numeric else f"<td>{_fmt(value)}</td>"


def _savings_cell(saving: dict | None) -> str:
    if not saving or saving.get("kg") is None:
        return f'<td class="n">{_MISSING}</td>'
    kg, pct = saving["kg"], saving.get("pct")
    css = "good" if kg > 0 else "bad" if kg < 0 else ""
    pct_text = _MISSING if pct is None else f"{pct:,.1f} %"
    return f'<td class="n {css}">{kg:,.2f} kg ({pct_text})</td>'


_BLOCK_COLUMNS = (
    ("energy_kwh", "Energy (kWh)"),
    ("grid_energy_kwh", "Grid energy (kWh)"),
    ("emissions_kg_forecast", "Emissions, forecast (kg CO2e)"),
    ("emissions_kg_actual", "Emissions, actual (kg CO2e)"),
    ("actual_coverage", "Actual coverage (%)"),
    ("baseline_emissions_kg", "FIFO baseline (kg CO2e)"),
    ("run_now_emissions_kg", "Run-now (kg CO2e)"),
)


def _block_table(title: str, blocks: dict[str, dict], key_label: str) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in _BLOCK_COLUMNS)
    out = [f"<h2>{html.escape(title)}</h2>", "<table>",
           f"<tr><th>{html.escape(key_label)}</th>{head}<th>Savings vs FIFO</th>"
           "<th>Savings vs run-now</th></tr>"]
    for key, fig in blocks.items():
        cells = []
        for col, _ in _BLOCK_COLUMNS:
            value = fig.get(col)
            if col == "actual_coverage" and value is not None:
                value = 100.0 * value
            cells.append(_cell(value, 1 if col == "actual_coverage" else 2))
        out.append(f"<tr><td>{html.escape(key)}</td>{''.join(cells)}"
                   f"{_savings_cell(fig.get('savings_vs_fifo_baseline'))}"
                   f"{_savings_cell(fig.get('savings_vs_run_now'))}</tr>")
    out.append("</table>")
    return "\n".join(out)


def _rows_table(rows: pd.DataFrame) -> str:
    units = {"kwh": " (kWh)", "kg": " (kg CO2e)", "actual": " (kg CO2e)", "coverage": " (0-1)"}
    head = []
    for col in rows.columns:
        unit = next((u for k, u in units.items() if col.endswith(k)), "")
        head.append(f"<th>{html.escape(col + unit)}</th>")
    body = []
    for rec in rows.itertuples(index=False, name=None):
        cells = []
        for col, value in zip(rows.columns, rec, strict=True):
            if col == "day":
                cells.append(f"<td>{html.escape(str(value))}</td>")
            else:
                cells.append(_cell(value, 3))
        body.append(f"<tr>{''.join(cells)}</tr>")
    return "<table>\n<tr>" + "".join(head) + "</tr>\n" + "\n".join(body) + "\n</table>"


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render_html(rows: pd.DataFrame, summary: dict, statement: str,
                charts: dict[str, bytes], title: str = "gridshift carbon report",
                jobs: list[dict] | None = None) -> str:
    """One self-contained HTML page: the headline on its stated basis (actual intensity where
    measured, with the coverage), savings on the jobs both the plan and the counterfactual
    place, the accounting statement, the charts (PNG data URIs), the plans included, tables by
    team / site / day, the jobs and the tidy rows. Inline CSS; no external reference."""
    t = summary["totals"]
    head = t.get("headline") or {}
    counts = summary.get("jobs", {})
    period = summary.get("period", {})
    span = (f"{period.get('first_day')} to {period.get('last_day')} (UTC)"
            if period.get("first_day") else "no activity in the period")
    coverage = head.get("actual_coverage")
    cards = [
        ("Emissions", f"{_fmt(head.get('emissions_kg'))} kg CO2e"),
        ("Saved vs FIFO baseline, same jobs",
         _saving_text(head.get("savings_vs_fifo_baseline") or {})),
        ("Saved vs run-now, same jobs", _saving_text(head.get("savings_vs_run_now") or {})),
        ("Actual intensity covers", _MISSING if coverage is None
         else f"{100 * coverage:.1f} % of grid energy"),
        ("Energy", f"{_fmt(t['energy_kwh'])} kWh"),
        ("Grid energy", f"{_fmt(t['grid_energy_kwh'])} kWh"),
        ("Jobs counted", f"{counts.get('counted', 0)} "
                         f"({counts.get('superseded', 0)} re-planned rows left out)"),
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="sub">{html.escape(span)}; {summary.get("rows", 0)} rows '
        "(day x team x site)</p>",
        f'<p class="sub">Headline figures use {html.escape(head.get("basis", "the forecast"))}'
        f". Savings compare the {counts.get('compared', 0)} job(s) that the plan and each "
        "counterfactual all place; each job counts once, in the newest plan that holds it.</p>",
        *_degraded_banner(summary.get("degraded", [])),
        *_unreadable_banner(summary.get("unreadable", [])),
        '<div class="cards">' + "".join(
            f'<div class="card"><div class="v">{v}</div><div class="l">{html.escape(k)}</div>'
            "</div>" for k, v in cards) + "</div>",
        "<h2>Savings (same jobs)</h2>",
        "<table><tr><th>Counterfactual</th><th>Counterfactual (kg CO2e)</th>"
        "<th>Plan, same jobs (kg CO2e)</th><th>Savings, forecast intensity</th>"
        "<th>Savings, actual intensity</th><th>Savings, actual where measured</th></tr>",
        _savings_row("FIFO baseline", t["baseline_emissions_kg"], t["compared_emissions_kg"],
                     t["savings_vs_fifo_baseline"], t["savings_vs_fifo_baseline_actual"],
                     t["savings_vs_fifo_baseline_best"]),
        _savings_row("Run-now", t["run_now_emissions_kg"], t["compared_emissions_kg"],
                     t["savings_vs_run_now"], t["savings_vs_run_now_actual"],
                     t["savings_vs_run_now_best"]),
        "</table>",
        '<p class="sub">"Actual intensity" needs a measured value in every slot with grid '
        'energy (otherwise it is left blank); "actual where measured" uses the forecast for '
        "the slots without one.</p>",
        '<h2>Accounting</h2><div class="statement">'
        + "".join(f"<p>{html.escape(p)}</p>" for p in statement.split("\n\n") if p.strip())
        + "</div>",
        "<h2>Charts</h2>",
    ]
    for name, png in charts.items():
        parts.append(f'<figure><img src="{_data_uri(png)}" alt="{html.escape(name)}">'
                     f"<figcaption>{html.escape(name)}</figcaption></figure>")
    if not charts:
        parts.append("<p>No charts.</p>")
    parts.append(_plans_table(summary.get("plans", [])))
    parts.append(_block_table("By team", summary.get("by_team", {}), "Team"))
    parts.append(_block_table("By site", summary.get("by_site", {}), "Site"))
    if any((fig.get("savings_vs_fifo_baseline") or {}).get("kg") is not None
           and fig["savings_vs_fifo_baseline"]["kg"] < 0
           for fig in summary.get("by_site", {}).values()):
        parts.append('<p class="sub">A site with negative savings took work the FIFO baseline '
                     "runs elsewhere: the plan moves jobs to the cleanest sites and hours, so "
                     "a clean site emits more than it would have, and the fleet less. Savings "
                     "add up over the sites.</p>")
    parts.append(_block_table("By day (UTC)", summary.get("by_day", {}), "Day"))
    if jobs:
        parts.append(_jobs_table(jobs))
    parts.append("<h2>Rows</h2><details><summary>All rows (day x team x site)</summary>")
    parts.append(_rows_table(rows))
    parts.append("</details>")
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts.append(f'<p class="sub">Generated by gridshift at {generated}.</p></body></html>')
    return "\n".join(parts)


def _degraded_banner(degraded: list[dict]) -> list[str]:
    """A warning at the top when plans rest on fallbacks or stale forecasts."""
    if not degraded:
        return []
    items = "".join(f"<li>plan {html.escape(str(d['plan_id']))}: {html.escape(d['reason'])}"
                    "</li>" for d in degraded[:20])
    more = f"<li>... and {len(degraded) - 20} more</li>" if len(degraded) > 20 else ""
    return ['<div class="warn"><strong>Degraded:</strong> some plans rest on less than a '
            f"current forecast, so their planned emissions are rougher.<ul>{items}{more}"
            "</ul></div>"]


def _unreadable_banner(unreadable: list[dict]) -> list[str]:
    """A warning at the top when stored plans could not be read back and are left out."""
    if not unreadable:
        return []
    items = "".join(f"<li>plan {html.escape(str(d['plan_id']))}: {html.escape(d['reason'])}"
                    "</li>" for d in unreadable[:20])
    more = f"<li>... and {len(unreadable) - 20} more</li>" if len(unreadable) > 20 else ""
    return ['<div class="warn"><strong>Left out:</strong> these stored plans no longer read '
            "back as valid requests (stored before a check they fail), so their jobs are not "
            f"in this report.<ul>{items}{more}</ul></div>"]


def _plans_table(plans: list[dict]) -> str:
    out = ["<h2>Plans included</h2>", "<table><tr><th>Plan</th><th>Jobs counted</th>"
           "<th>Re-planned rows left out</th><th>Expected (kg CO2e)</th><th>P90 (kg CO2e)</th>"
           "<th>CVaR95 (kg CO2e)</th></tr>"]
    for p in plans:
        risk = p.get("risk") or {}
        out.append(f"<tr><td>{html.escape(str(p['plan_id']))}</td>"
                   f"<td class=\"n\">{p['jobs_counted']}</td>"
                   f"<td class=\"n\">{p['jobs_superseded']}</td>"
                   f"{_cell(risk.get('expected_kg'))}{_cell(risk.get('p90_kg'))}"
                   f"{_cell(risk.get('cvar95_kg'))}</tr>")
    out.append("</table>")
    return "\n".join(out)


def _jobs_table(jobs: list[dict]) -> str:
    out = ["<h2>Jobs</h2><details><summary>Every job counted (newest plan)</summary>",
           "<table><tr><th>Job</th><th>Team</th><th>Site</th><th>Start (UTC)</th>"
           "<th>End (UTC)</th><th>Energy (kWh)</th><th>Emissions, forecast (kg CO2e)</th>"
           "<th>Plan</th></tr>"]
    for j in jobs:
        out.append(f"<tr><td>{html.escape(j['job_id'])}</td><td>{html.escape(j['team'])}</td>"
                   f"<td>{html.escape(j['site'])}</td><td>{html.escape(j['start'])}</td>"
                   f"<td>{html.escape(j['end'])}</td>{_cell(j['energy_kwh'])}"
                   f"{_cell(j['emissions_kg'])}<td>{html.escape(j['plan_id'])}</td></tr>")
    out.append("</table></details>")
    return "\n".join(out)


def _saving_text(saving: dict) -> str:
    if saving.get("kg") is None:
        return _MISSING
    pct = saving.get("pct")
    return f"{saving['kg']:,.2f} kg" + ("" if pct is None else f" ({pct:.1f} %)")


def _savings_row(name: str, counterfactual: float, plan: float, forecast: dict,
                 actual: dict, best: dict) -> str:
    return (f"<tr><td>{html.escape(name)}</td>{_cell(counterfactual)}{_cell(plan)}"
            f"{_savings_cell(forecast)}{_savings_cell(actual)}{_savings_cell(best)}</tr>")


# -- charts -------------------------------------------------------------------------------------

def _new_figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=_FIGSIZE_IN, dpi=CHART_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=CHART_DPI)
    return buffer.getvalue()


def _step_union(curves: list[tuple[np.ndarray, np.ndarray]], how: str
                ) -> tuple[np.ndarray, np.ndarray]:
    """Combine step curves (edges [n+1] in datetime64, values [n]) on the union of their
    edges: ``how`` = "sum" (0 where none) or "mean" (NaN where none)."""
    if not curves:
        return np.array([], dtype="datetime64[us]"), np.array([])
    edges = np.unique(np.concatenate([e for e, _ in curves]))
    starts = edges[:-1]
    total = np.zeros(len(starts))
    count = np.zeros(len(starts))
    for e, v in curves:
        inside = (starts >= e[0]) & (starts < e[-1])
        idx = np.clip(np.searchsorted(e, starts, side="right") - 1, 0, len(v) - 1)
        value = np.asarray(v, dtype=float)[idx]
        ok = inside & np.isfinite(value)
        total += np.where(ok, value, 0.0)
        count += ok
    if how == "sum":
        return edges, total
    return edges, np.divide(total, count, out=np.full(len(starts), np.nan), where=count > 0)


def _clip(edges: np.ndarray, values: np.ndarray, lo: np.datetime64 | None,
          hi: np.datetime64 | None) -> tuple[np.ndarray, np.ndarray]:
    """Keep the steps that overlap [lo, hi)."""
    if len(values) == 0:
        return edges, values
    keep = np.ones(len(values), dtype=bool)
    if lo is not None:
        keep &= edges[1:] > lo
    if hi is not None:
        keep &= edges[:-1] < hi
    idx = np.flatnonzero(keep)
    if len(idx) == 0:
        return edges[:0], values[:0]
    return edges[idx[0]:idx[-1] + 2], values[idx[0]:idx[-1] + 1]


def _stairs(ax, edges: np.ndarray, values: np.ndarray, **kwargs) -> None:
    """A step curve; x are datetimes (one more edge than values)."""
    if len(values) == 0:
        return
    ax.step(edges, np.append(values, values[-1]), where="post", **kwargs)


def _as_dt64(value: datetime | date | str | None) -> np.datetime64 | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return np.datetime64(ts.to_datetime64(), "us")


def _team_jobs(rp: ReportPlan, teams: set[str] | None) -> set[int]:
    return {j for j, name in enumerate(rp.problem.job_teams)
            if teams is None or (name or NO_TEAM) in teams}


def _subset(plan, jobs: set[int]):
    from gridshift.optimizer.plan import Plan

    return Plan(placements={j: p for j, p in plan.placements.items() if j in jobs})


def charts(plans: list[ReportPlan], rows: pd.DataFrame,
           start: datetime | date | str | None = None,
           end: datetime | date | str | None = None) -> dict[str, bytes]:
    """PNG charts of a report, keyed by caption:

    1. ``EMISSIONS_BY_DAY``: emissions per UTC day, bars stacked by team, with the FIFO
       baseline's daily total as markers (forecast intensity);
    2. ``LOAD_PREFIX + site`` for every site in the rows: facility load of the plan vs the
       FIFO baseline (kW, steps) over the site's forecast intensity (and actual where known,
       gCO2e/kWh, twin axis); only jobs of the rows' teams count;
    3. ``INTENSITY_PREFIX + region`` for every region with actuals: forecast vs actual
       intensity (gCO2e/kWh) with the mean absolute error.

    The time axis is [start, end) when given, else the rows' days.
    """
    out: dict[str, bytes] = {}
    out[EMISSIONS_BY_DAY] = _emissions_chart(rows)
    if len(rows):
        days = sorted(rows["day"].unique())
        start = start if start is not None else days[0]
        end = end if end is not None else pd.Timestamp(days[-1]) + pd.Timedelta(days=1)
    lo, hi = _as_dt64(start), _as_dt64(end)
    teams = set(rows["team"].unique()) if len(rows) else set()
    sites = sorted(set(rows["site"].unique())) if len(rows) else []
    for site in sites:
        png = _load_chart(plans, site, teams, lo, hi)
        if png is not None:
            out[LOAD_PREFIX + str(site)] = png
    regions = sorted(set(rows["region"].unique())) if len(rows) else []
    for region in regions:
        png = _intensity_chart(plans, region, lo, hi)
        if png is not None:
            out[INTENSITY_PREFIX + str(region)] = png
    return out


def _emissions_chart(rows: pd.DataFrame) -> bytes:
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.set_title("Emissions per day by team (plan, forecast intensity)")
    ax.set_xlabel("Day (UTC)")
    ax.set_ylabel("Emissions (kg CO2e)")
    if len(rows):
        table = (rows.groupby(["day", "team"])["emissions_kg_forecast"].sum()
                 .unstack("team", fill_value=0.0).sort_index())
        labels = [d.isoformat() if hasattr(d, "isoformat") else str(d) for d in table.index]
        x = np.arange(len(labels))
        bottom = np.zeros(len(labels))
        cmap = _colors(len(table.columns))
        for i, team in enumerate(table.columns):
            values = table[team].to_numpy(dtype=float)
            ax.bar(x, values, bottom=bottom, label=str(team), color=cmap[i], width=0.7)
            bottom += values
        base = rows.groupby("day")["baseline_emissions_kg"].sum().reindex(table.index)
        ax.plot(x, base.to_numpy(dtype=float), linestyle="none", marker="D", color="black",
                label="FIFO baseline (all teams)")
        ax.set_xticks(x, labels, rotation=45 if len(labels) > 7 else 0, ha="right"
                      if len(labels) > 7 else "center")
        ax.legend(title="Team", fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    else:
        ax.text(0.5, 0.5, "no activity in the period", ha="center", va="center",
                transform=ax.transAxes)
    png = _png(fig)
    return png


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _load_chart(plans: list[ReportPlan], site: str, teams: set[str],
                lo: np.datetime64 | None, hi: np.datetime64 | None) -> bytes | None:
    plan_curves, base_curves, ci_curves, actual_curves = [], [], [], []
    for rp in plans:
        p = rp.problem
        jobs = _team_jobs(rp, teams)
        edges = slot_times(p)
        for s, sid in enumerate(p.site_ids):
            if sid != site:
                continue
            plan_curves.append((edges, site_loads(p, _subset(rp.plan, jobs))[1][s]))
            base_curves.append((edges, site_loads(p, _subset(rp.baseline, jobs))[1][s]))
            ci_curves.append((edges, p.ci_g_per_kwh[s]))
            if rp.actual_ci_g_per_kwh is not None:
                actual_curves.append((edges, rp.actual_ci_g_per_kwh[s]))
    if not plan_curves:
        return None
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.set_title(f"Site {site}: plan vs FIFO baseline load over grid intensity")
    ax.set_xlabel("Time (UTC)")
    ax.set_ylabel("Facility load (kW)")
    _stairs(ax, *_clip(*_step_union(plan_curves, "sum"), lo, hi), color="tab:green",
            linewidth=2.0, label="Plan load (kW)")
    _stairs(ax, *_clip(*_step_union(base_curves, "sum"), lo, hi), color="tab:gray",
            linewidth=1.5, linestyle="--", label="FIFO baseline load (kW)")
    ax.set_ylim(bottom=0)
    twin = ax.twinx()
    twin.set_ylabel("Carbon intensity (gCO2e/kWh)")
    _stairs(twin, *_clip(*_step_union(ci_curves, "mean"), lo, hi), color="tab:orange",
            alpha=0.8, label="Forecast intensity (plan time)")
    if actual_curves:
        edges, values = _clip(*_step_union(actual_curves, "mean"), lo, hi)
        if np.isfinite(values).any():
            _stairs(twin, edges, values, color="tab:red", alpha=0.8, linestyle=":",
                    label="Actual intensity")
    twin.set_ylim(bottom=0)    # intensity from zero: the swing is not exaggerated
    _date_axis(ax)
    handles, labels = ax.get_legend_handles_labels()
    more_h, more_l = twin.get_legend_handles_labels()
    # Below the axes: clear of both y-axis labels.
    ax.legend(handles + more_h, labels + more_l, fontsize="small", loc="upper center",
              bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False)
    return _png(fig)


def _intensity_chart(plans: list[ReportPlan], region: str, lo: np.datetime64 | None,
                     hi: np.datetime64 | None) -> bytes | None:
    forecast_curves, actual_curves, providers = [], [], set()
    for rp in plans:
        if rp.actual_ci_g_per_kwh is None or region not in rp.problem.site_regions:
            continue
        s = rp.problem.site_regions.index(region)
        if not np.isfinite(rp.actual_ci_g_per_kwh[s]).any():
            continue
        edges = slot_times(rp.problem)
        forecast_curves.append((edges, rp.problem.ci_g_per_kwh[s]))
        actual_curves.append((edges, rp.actual_ci_g_per_kwh[s]))
        providers.add(rp.providers.get(region, "unknown"))
    if not actual_curves:
        return None
    f_edges, forecast = _clip(*_step_union(forecast_curves, "mean"), lo, hi)
    a_edges, actual = _clip(*_step_union(actual_curves, "mean"), lo, hi)
    if not np.isfinite(actual).any():
        return None
    fig = _new_figure()
    ax = fig.add_subplot()
    both = np.isfinite(actual) & np.isfinite(forecast) if len(actual) == len(forecast) else None
    mae = (f", MAE {np.mean(np.abs(actual[both] - forecast[both])):.1f} gCO2e/kWh"
           if both is not None and both.any() else "")
    ax.set_title(f"Region {region}: forecast (plan time) vs actual intensity{mae}")
    ax.set_xlabel("Time (UTC)")
    ax.set_ylabel("Carbon intensity (gCO2e/kWh)")
    source = ", ".join(sorted(providers))
    _stairs(ax, f_edges, forecast, color="tab:orange", label=f"Forecast ({source})")
    _stairs(ax, a_edges, actual, color="tab:red", linestyle=":", linewidth=2.0,
            label="Actual (history)")
    ax.set_ylim(bottom=0)     # intensity from zero: the forecast error is not exaggerated
    _date_axis(ax)
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2,
              frameon=False)
    return _png(fig)


def _date_axis(ax) -> None:
    from matplotlib import dates as mdates

    locator = mdates.AutoDateLocator(maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def decode_images(page: str) -> Iterable[bytes]:
    """The PNG images embedded in a rendered page (for checks and tools)."""
    marker = 'src="data:image/png;base64,'
    at = page.find(marker)
    while at >= 0:
        begin = at + len(marker)
        stop = page.index('"', begin)
        yield base64.b64decode(page[begin:stop], validate=True)
        at = page.find(marker, stop)
