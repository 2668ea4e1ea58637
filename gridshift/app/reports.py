"""Carbon reports over stored plans: what `gridshift report`, the GetCarbonReport RPC and
nightly runs render."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from gridshift.adapters.report_render import charts, render_csv, render_html, render_json
from gridshift.app.plans import PlanArchive, check_period
from gridshift.optimizer.accounting import figures
from gridshift.optimizer.errors import FieldViolation, InvalidInputError
from gridshift.optimizer.reporting import (
    ReportPlan,
    accounting_statement,
    report_rows,
    summary,
)

FORMATS = {"json": "application/json", "csv": "text/csv", "html": "text/html"}


@dataclass
class CarbonReport:
    """A carbon report: the tidy rows, their summary (totals, by team / site / day, the
    headline, the plans and jobs it counts), the accounting statement and the rendered
    document."""

    rows: pd.DataFrame
    summary: dict
    statement: str
    plans: int
    document: bytes = b""
    content_type: str = ""


def build_report(archive: PlanArchive, start: datetime | None, end: datetime | None,
                 team: str | None = None, site: str | None = None,
                 fmt: str = "json", list_superseded: bool = False) -> CarbonReport:
    """The report for [start, end) and the scope, rendered as `fmt` (json, csv or html).
    Each job counts once, in the newest plan that holds it; ``list_superseded`` lists the
    job rows newer plans re-planned."""
    if fmt not in FORMATS:
        raise InvalidInputError([FieldViolation("format", f"unknown format {fmt!r} "
                                                f"(one of {', '.join(FORMATS)})")])
    check_period(start, end)
    unreadable: list[dict[str, str]] = []
    plans = archive.report_plans(start, end, team, site, unreadable=unreadable)
    return render_report(plans, start, end, team, site, fmt, list_superseded, unreadable)


def render_report(plans: list[ReportPlan], start: datetime | None, end: datetime | None,
                  team: str | None = None, site: str | None = None,
                  fmt: str = "json", list_superseded: bool = False,
                  unreadable: list[dict[str, str]] | None = None) -> CarbonReport:
    """The report of these plans for the period and scope; ``unreadable``: stored plans left
    out because they no longer read back (named in the report)."""
    rows = report_rows(plans, start, end, team=team or None, site=site or None)
    totals = summary(rows)
    totals.update(_plans_and_jobs(plans, list_superseded))
    totals["unreadable"] = list(unreadable or [])
    statement = accounting_statement(plans)
    if fmt == "csv":
        document = render_csv(rows).encode()
    elif fmt == "html":
        document = render_html(rows, totals, statement,
                               charts(plans, rows, start, end) if plans else {},
                               jobs=_job_list(plans, team, site)).encode()
    else:
        document = render_json(rows, totals, statement).encode()
    return CarbonReport(rows, totals, statement, len(plans), document, FORMATS[fmt])


def _plans_and_jobs(plans: list[ReportPlan], list_superseded: bool) -> dict:
    """Which plans the report rests on, how many jobs each counts (a job re-planned by a
    newer plan counts in the newest only) and which rest on less than a current forecast
    (``degraded``); with ``list_superseded``, the re-planned rows."""
    included, superseded = [], []
    counted = compared = 0
    for rp in plans:
        placed = rp.plan.placements.keys()
        mine = rp.counted & placed
        counted += len(mine)
        compared += len(rp.compared())
        included.append({"plan_id": rp.plan_id, "jobs_counted": len(mine),
                         "jobs_superseded": len(placed & rp.superseded_by.keys()),
                         "risk": {k: v for k, v in rp.risk.items()
                                  if k in ("expected_kg", "p90_kg", "cvar95_kg")}})
        superseded += [{"job_id": rp.problem.job_ids[j], "plan_id": rp.plan_id,
                        "superseded_by": newer}
                       for j, newer in sorted(rp.superseded_by.items()) if j in placed]
    degraded = [{"plan_id": rp.plan_id, "reason": f"{f.region}: {why}"}
                for rp in plans for f in rp.problem.forecasts if (why := f.degraded_reason())]
    out: dict = {"plans": included, "degraded": degraded,
                 "jobs": {"counted": counted, "compared": compared,
                          "superseded": sum(p["jobs_superseded"] for p in included)}}
    if list_superseded:
        out["superseded"] = superseded
    return out


def _job_list(plans: list[ReportPlan], team: str | None, site: str | None) -> list[dict]:
    """Every counted job of the scope: where and when it runs, its energy and emissions."""
    out = []
    for rp in plans:
        p = rp.problem
        jobs = figures(p, rp.plan).jobs
        for j in sorted(rp.counted & jobs.keys(), key=lambda k: p.job_ids[k]):
            placement, jf = rp.plan.placements[j], jobs[j]
            if (team and (p.job_teams[j] or "") != team) or (site and p.site_ids[jf.site] != site):
                continue
            out.append({"job_id": p.job_ids[j], "team": p.job_teams[j] or "",
                        "site": p.site_ids[jf.site],
                        "start": f"{p.slot_time(placement.start_slot):%Y-%m-%d %H:%M}",
                        "end": f"{p.slot_time(placement.end_slot):%Y-%m-%d %H:%M}",
                        "energy_kwh": jf.energy_kwh, "emissions_kg": jf.emissions_kg,
                        "plan_id": rp.plan_id})
    return out
