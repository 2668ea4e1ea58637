"""Carbon reports over stored plans: what `gridshift report`, the GetCarbonReport RPC and
nightly runs render."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from gridshift.adapters.report_render import charts, render_csv, render_html, render_json
from gridshift.app.plans import PlanArchive, check_period
from gridshift.optimizer.errors import FieldViolation, InvalidInputError
from gridshift.optimizer.reporting import accounting_statement, report_rows, summary

FORMATS = {"json": "application/json", "csv": "text/csv", "html": "text/html"}


@dataclass
class CarbonReport:
    rows: pd.DataFrame
    summary: dict
    statement: str
    plans: int
    document: bytes = b""
    content_type: str = ""


def build_report(archive: PlanArchive, start: datetime | None, end: datetime | None,
                 team: str | None = None, site: str | None = None,
                 fmt: str = "json") -> CarbonReport:
    """The report for [start, end) and the scope, rendered as `fmt` (json, csv or html)."""
    if fmt not in FORMATS:
        raise InvalidInputError([FieldViolation("format", f"unknown format {fmt!r} "
                                                f"(one of {', '.join(FORMATS)})")])
    check_period(start, end)
    plans = archive.report_plans(start, end, team, site)
    return render_report(plans, start, end, team, site, fmt)


def render_report(plans: list, start: datetime | None, end: datetime | None,
                  team: str | None = None, site: str | None = None,
                  fmt: str = "json") -> CarbonReport:
    """The report of these plans (optimizer.reporting.ReportPlan) for the period and scope."""
    rows = report_rows(plans, start, end, team=team or None, site=site or None)
    totals = summary(rows)
    statement = accounting_statement(plans)
    if fmt == "csv":
        document = render_csv(rows).encode()
    elif fmt == "html":
        document = render_html(rows, totals, statement,
                               charts(plans, rows, start, end) if plans else {}).encode()
    else:
        document = render_json(rows, totals, statement).encode()
    return CarbonReport(rows, totals, statement, len(plans), document, FORMATS[fmt])
