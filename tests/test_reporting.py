"""Carbon reports: the accounting of optimizer/reporting.py against the independent checker,
and the CSV / JSON / HTML renderings of adapters/report_render.py."""

from __future__ import annotations

import base64
import io
import json
import math
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from conftest import hours, job, problem_of, solve_checked

from gridshift.adapters.report_render import (
    EMISSIONS_BY_DAY,
    INTENSITY_PREFIX,
    LOAD_PREFIX,
    PNG_SIGNATURE,
    charts,
    decode_images,
    render_csv,
    render_html,
    render_json,
)
from gridshift.forecasting.series import Forecast
from gridshift.optimizer.accounting import figures
from gridshift.optimizer.checker import check_plan
from gridshift.optimizer.reporting import (
    ROW_COLUMNS,
    ReportPlan,
    accounting_statement,
    actual_intensity,
    report_rows,
    run_now_plan,
    summary,
)

T0 = datetime(2026, 6, 15, tzinfo=UTC)
REL = 1e-9


def daily_ci(n: int, slot_hours: float, base: float, swing: float, offset_h: float = 0.0):
    """A daily cycle: low around 13:00 UTC, high at night."""
    return [base + swing * math.cos(2 * math.pi * ((offset_h + t * slot_hours) % 24 - 1) / 24)
            for t in range(n)]


def _request(start_h: float, slot_minutes: int, slots: int, sites, jobs, ci_by_region) -> dict:
    return {
        "horizon": {"start": hours(start_h), "slot_minutes": slot_minutes, "slots": slots},
        "sites": sites, "jobs": jobs,
        "forecasts": [{"region": r, "start": hours(start_h), "slot_minutes": slot_minutes,
                       "carbon_intensity": ci} for r, ci in ci_by_region.items()],
        "options": {"relative_gap": 1e-9, "time_limit_seconds": 20},
    }


def _plan_a() -> ReportPlan:
    """3 days hourly from 2026-06-15 00:00; sites a (R, PUE 1.2) and b (Q, solar); two teams;
    complete actuals."""
    slots = 72
    solar = [max(0.0, 6.0 * math.sin(math.pi * ((t % 24) - 6) / 12)) for t in range(slots)]
    request = _request(0, 60, slots, [
        {"id": "a", "region": "R", "gpu_capacity": 8, "pue": 1.2},
        {"id": "b", "region": "Q", "gpu_capacity": 4, "renewable_kw": solar},
    ], [
        job("a1", gpus=4, power_kw=3.0, duration_minutes=300, team="nlp",
            earliest_start=hours(0), deadline=hours(40), allowed_sites=["a", "b"], home_site="a"),
        job("a2", gpus=4, power_kw=2.5, duration_minutes=240, team="nlp",
            earliest_start=hours(2), deadline=hours(60)),
        job("a3", gpus=2, power_kw=1.5, duration_minutes=180, team="vision",
            earliest_start=hours(20), deadline=hours(70), allowed_sites=["b"]),
        job("a4", gpus=6, power_kw=4.0, duration_minutes=360, team="vision",
            earliest_start=hours(1), deadline=hours(72), interruptible=True, min_run_minutes=120,
            allowed_sites=["a"]),
        job("a5", gpus=2, power_kw=1.0, duration_minutes=120, team="",
            earliest_start=hours(30), deadline=hours(54), allowed_sites=["a", "b"], home_site="b"),
    ], {"R": daily_ci(slots, 1, 300, 120), "Q": daily_ci(slots, 1, 200, 80)})
    problem = problem_of(request)
    plan = solve_checked(problem).plan
    rng = np.random.default_rng(7)
    actual = problem.ci_g_per_kwh * rng.uniform(0.8, 1.25, size=problem.ci_g_per_kwh.shape)
    return ReportPlan.of("plan-a", problem, plan, actual_ci_g_per_kwh=actual,
                         actual_sources={"R": "file: actuals.csv", "Q": "file: actuals.csv"})


def _plan_b() -> ReportPlan:
    """2 days hourly from 2026-06-16 12:30 (slots straddle midnight); sites a (R) and c (WT,
    a WattTime MOER region); actuals missing for some slots."""
    slots = 48
    request = _request(36.5, 60, slots, [
        {"id": "a", "region": "R", "gpu_capacity": 8, "pue": 1.2},
        {"id": "c", "region": "WT", "gpu_capacity": 8, "pue": 1.1},
    ], [
        job("b1", gpus=4, power_kw=3.0, duration_minutes=240, team="nlp",
            earliest_start=hours(36.5), deadline=hours(70), home_site="a"),
        job("b2", gpus=8, power_kw=5.0, duration_minutes=300, team="speech",
            earliest_start=hours(37.5), deadline=hours(80), home_site="c"),
        job("b3", gpus=4, power_kw=2.0, duration_minutes=120, team="speech",
            earliest_start=hours(40.5), deadline=hours(84.5), allowed_sites=["c"]),
    ], {"R": daily_ci(slots, 1, 300, 120, 12.5), "WT": daily_ci(slots, 1, 600, 200, 12.5)})
    problem = problem_of(request)
    plan = solve_checked(problem).plan
    actual = problem.ci_g_per_kwh + 25.0
    # Unknown for the first two slots of job b2 (whatever the solver chose) and at the end.
    first = plan.placements[1].start_slot
    actual[:, first:first + 2] = np.nan
    actual[:, -3:] = np.nan
    return ReportPlan.of("plan-b", problem, plan, actual_ci_g_per_kwh=actual,
                         providers={"WT": "watttime"}, signals={"WT": "marginal"})


def _plan_c() -> ReportPlan:
    """2 days of 30-minute slots from 2026-06-17 00:00 at site b; capacity forces FIFO to
    queue; no actuals."""
    slots = 96
    request = _request(48, 30, slots, [
        {"id": "b", "region": "Q", "gpu_capacity": 4},
    ], [
        job(f"c{i}", gpus=4, power_kw=2.0 + i, duration_minutes=150, team="vision",
            earliest_start=hours(48 + i), deadline=hours(96)) for i in range(3)
    ], {"Q": daily_ci(slots, 0.5, 200, 80)})
    problem = problem_of(request)
    return ReportPlan.of("plan-c", problem, solve_checked(problem).plan)


@pytest.fixture(scope="module")
def plans() -> list[ReportPlan]:
    built = [_plan_a(), _plan_b(), _plan_c()]
    for rp in built:
        assert check_plan(rp.problem, rp.plan).ok
        assert not rp.plan.unscheduled
    return built


@pytest.fixture(scope="module")
def rows(plans) -> pd.DataFrame:
    return report_rows(plans, None, None)


@pytest.fixture(scope="module")
def rendered(plans, rows):
    summ = summary(rows)
    statement = accounting_statement(plans)
    images = charts(plans, rows)
    return summ, statement, images, render_html(rows, summ, statement, images)


def _checker_totals(plans, which: str) -> dict[str, float]:
    out = {"energy_kwh": 0.0, "grid_energy_kwh": 0.0, "emissions_kg": 0.0}
    for rp in plans:
        schedule = {"plan": rp.plan, "baseline": rp.baseline,
                    "run_now": run_now_plan(rp.problem)}[which]
        check = check_plan(rp.problem, schedule)
        for key in out:
            out[key] += getattr(check, key)
    return out


# -- accounting ---------------------------------------------------------------------------------

def test_rows_are_tidy(rows):
    assert tuple(rows.columns) == ROW_COLUMNS
    assert not rows.duplicated(["day", "team", "site"]).any()
    assert all(isinstance(d, date) for d in rows["day"])
    assert set(rows["team"]) == {"nlp", "vision", "speech", "(no team)"}
    assert set(rows["site"]) == {"a", "b", "c"}
    assert set(rows["day"]) >= {date(2026, 6, 15), date(2026, 6, 16), date(2026, 6, 17)}
    assert (rows[["energy_kwh", "grid_energy_kwh", "baseline_energy_kwh"]] >= 0).all().all()
    assert (rows["grid_energy_kwh"] <= rows["energy_kwh"] + 1e-12).all()


@pytest.mark.parametrize("period", [(None, None), ("2026-06-01", "2026-07-01"),
                                    (date(2026, 6, 14), datetime(2026, 6, 21))])
def test_totals_equal_checker_sums(plans, period):
    rows = report_rows(plans, *period)
    plan = _checker_totals(plans, "plan")
    assert rows["energy_kwh"].sum() == pytest.approx(plan["energy_kwh"], rel=REL)
    assert rows["grid_energy_kwh"].sum() == pytest.approx(plan["grid_energy_kwh"], rel=REL)
    assert rows["emissions_kg_forecast"].sum() == pytest.approx(plan["emissions_kg"], rel=REL)
    assert plan["grid_energy_kwh"] < plan["energy_kwh"]  # the solar site counts


@pytest.mark.parametrize("which,prefix", [("baseline", "baseline_"), ("run_now", "run_now_")])
def test_counterfactuals_equal_checker_sums(plans, rows, which, prefix):
    expected = _checker_totals(plans, which)
    assert rows[f"{prefix}energy_kwh"].sum() == pytest.approx(expected["energy_kwh"], rel=REL)
    assert rows[f"{prefix}grid_energy_kwh"].sum() == pytest.approx(
        expected["grid_energy_kwh"], rel=REL)
    assert rows[f"{prefix}emissions_kg"].sum() == pytest.approx(
        expected["emissions_kg"], rel=REL)


def test_run_now_starts_every_job_at_home_immediately(plans):
    rp = plans[2]  # capacity 4 GPUs, three 4-GPU jobs that overlap when run at once
    p = rp.problem
    now = run_now_plan(p)
    for j in range(p.n_jobs):
        placement = now.placements[j]
        assert placement.site == p.home_site[j]
        assert placement.slots == tuple(range(p.first_slot[j],
                                              p.first_slot[j] + p.duration_slots[j]))
    assert any("GPUs > capacity" in v for v in check_plan(p, now).violations)
    assert check_plan(p, rp.baseline).ok  # FIFO queues instead
    assert max(pl.start_slot for pl in rp.baseline.placements.values()) > max(
        pl.start_slot for pl in now.placements.values())


def test_run_now_leaves_out_jobs_past_the_horizon():
    # Validation rejects such requests; a stored problem edited by hand could still hold one.
    p = problem_of(_request(0, 60, 4, [{"id": "a", "region": "R", "gpu_capacity": 8}],
                            [job("x", duration_minutes=120)], {"R": [100.0] * 4}))
    p = replace(p, first_slot=np.array([3]))
    assert run_now_plan(p).unscheduled == {0: "run-now: would run past the end of the horizon"}


@pytest.mark.parametrize("cut", ["2026-06-16T00:00:00Z", "2026-06-16T13:10:00Z",
                                 datetime(2026, 6, 17, 7, 45, tzinfo=UTC)])
def test_adjacent_periods_add_up_to_the_whole(plans, cut):
    whole = report_rows(plans, "2026-06-15", "2026-06-20")
    first = report_rows(plans, "2026-06-15", cut)
    second = report_rows(plans, cut, "2026-06-20")
    keys = ["day", "team", "site", "region"]
    parts = pd.concat([first, second]).groupby(keys, as_index=False).sum(min_count=1)
    merged = whole.merge(parts, on=keys, suffixes=("", "_parts"), how="outer")
    assert len(merged) == len(whole)
    for col in ("energy_kwh", "grid_energy_kwh", "emissions_kg_forecast",
                "baseline_emissions_kg", "run_now_emissions_kg"):
        np.testing.assert_allclose(merged[f"{col}_parts"], merged[col], rtol=1e-9, atol=1e-12)
    assert first["energy_kwh"].sum() > 0 and second["energy_kwh"].sum() > 0


def test_period_clips_to_slots_pro_rata(plans):
    # Half of one hourly slot of plan a: half its energy.
    p = plans[0].problem
    busy = next(t for t in range(p.n_slots)
                if figures(p, plans[0].plan).load_kw[:, t].sum() > 0)
    slot_start = p.slot_time(busy)
    full = report_rows(plans[:1], slot_start, slot_start + timedelta(hours=1))
    half = report_rows(plans[:1], slot_start, slot_start + timedelta(minutes=30))
    assert half["energy_kwh"].sum() == pytest.approx(full["energy_kwh"].sum() / 2, rel=REL)
    assert full["energy_kwh"].sum() == pytest.approx(
        figures(p, plans[0].plan).load_kw[:, busy].sum() * p.slot_hours, rel=REL)


def test_slots_straddling_midnight_are_split_by_day(plans):
    rp = plans[1]  # hourly slots from 12:30
    rows = report_rows([rp], None, None)
    by_day = rows.groupby("day")["energy_kwh"].sum()
    load = figures(rp.problem, rp.plan).load_kw.sum(axis=0)
    # slot 11 covers 23:30-00:30 on 16/17 June: half of it belongs to each day.
    expected_16 = load[:11].sum() + load[11] / 2
    assert by_day[date(2026, 6, 16)] == pytest.approx(expected_16, rel=REL)


def test_team_and_site_filters(plans, rows):
    for team in ("nlp", "vision", "speech", "(no team)"):
        filtered = report_rows(plans, None, None, team=team)
        expected = rows[rows["team"] == team].reset_index(drop=True)
        assert set(filtered["team"]) == {team}
        pd.testing.assert_frame_equal(filtered, expected, rtol=1e-12)
    both = report_rows(plans, None, None, team=["nlp", "speech"], site="a")
    assert set(both["team"]) <= {"nlp", "speech"} and set(both["site"]) == {"a"}
    assert both["energy_kwh"].sum() == pytest.approx(rows.loc[
        rows["team"].isin(["nlp", "speech"]) & (rows["site"] == "a"), "energy_kwh"].sum())
    assert report_rows(plans, None, None, site="nowhere").empty


def test_team_figures_match_per_job_attribution(plans, rows):
    expected: dict[str, float] = {}
    for rp in plans:
        for j, jf in figures(rp.problem, rp.plan).jobs.items():
            team = rp.problem.job_teams[j] or "(no team)"
            expected[team] = expected.get(team, 0.0) + jf.emissions_kg
    got = rows.groupby("team")["emissions_kg_forecast"].sum()
    for team, kg in expected.items():
        assert got[team] == pytest.approx(kg, rel=REL)


def test_actual_rescoring_equals_checker_with_actual_intensity(plans):
    rp = plans[0]
    rows = report_rows([rp], None, None)
    with_actuals = replace(rp.problem, ci_g_per_kwh=rp.actual_ci_g_per_kwh)
    assert (rows["actual_coverage"] == 1.0).all()
    assert rows["emissions_kg_actual"].notna().all()
    assert rows["emissions_kg_actual"].sum() == pytest.approx(
        check_plan(with_actuals, rp.plan).emissions_kg, rel=REL)
    assert rows["baseline_emissions_kg_actual"].sum() == pytest.approx(
        check_plan(with_actuals, rp.baseline).emissions_kg, rel=REL)
    assert rows["run_now_emissions_kg_actual"].sum() == pytest.approx(
        check_plan(with_actuals, run_now_plan(rp.problem)).emissions_kg, rel=REL)
    assert rows["emissions_kg_actual"].sum() != pytest.approx(
        rows["emissions_kg_forecast"].sum(), rel=1e-6)


def test_partial_actuals_give_partial_coverage(plans, rows):
    rp = plans[1]
    own = report_rows([rp], None, None)
    partial = own[(own["actual_coverage"] < 1.0) & (own["grid_energy_kwh"] > 0)]
    assert len(partial), "some plan-b rows must fall in the slots without actuals"
    assert partial["emissions_kg_actual"].isna().all()
    assert ((partial["actual_coverage"] >= 0) & (partial["actual_coverage"] < 1)).all()
    complete = own[own["actual_coverage"] == 1.0]
    assert complete["emissions_kg_actual"].notna().all()
    # Coverage is the grid-energy share in slots with actuals.
    known = np.isfinite(rp.actual_ci_g_per_kwh)
    grid = figures(rp.problem, rp.plan).grid_kw * rp.problem.slot_hours
    assert (own["grid_energy_kwh"] * own["actual_coverage"]).sum() == pytest.approx(
        grid[known].sum(), rel=REL)
    # Plan c has no actuals: coverage 0 wherever it draws from the grid.
    c_rows = report_rows(plans[2:], None, None)
    assert (c_rows["actual_coverage"] == 0).all() and c_rows["emissions_kg_actual"].isna().all()
    assert summary(rows)["totals"]["emissions_kg_actual"] is None
    assert 0 < summary(rows)["totals"]["actual_coverage"] < 1


def test_summary_totals_and_savings(plans, rows):
    s = summary(rows)
    t = s["totals"]
    plan = _checker_totals(plans, "plan")["emissions_kg"]
    base = _checker_totals(plans, "baseline")["emissions_kg"]
    now = _checker_totals(plans, "run_now")["emissions_kg"]
    assert t["emissions_kg_forecast"] == pytest.approx(plan, rel=REL)
    assert t["savings_vs_fifo_baseline"]["kg"] == pytest.approx(base - plan, rel=1e-8)
    assert t["savings_vs_fifo_baseline"]["pct"] == pytest.approx(100 * (base - plan) / base)
    assert t["savings_vs_run_now"]["kg"] == pytest.approx(now - plan, rel=1e-8)
    assert t["savings_vs_fifo_baseline"]["kg"] > 0  # the optimizer does shift load
    assert sum(b["emissions_kg_forecast"] for b in s["by_team"].values()) == pytest.approx(
        plan, rel=REL)
    assert sum(b["emissions_kg_forecast"] for b in s["by_site"].values()) == pytest.approx(
        plan, rel=REL)
    assert s["by_site"]["c"]["regions"] == ["WT"]
    assert s["period"] == {"first_day": "2026-06-15", "last_day": "2026-06-18"}
    own_a = summary(report_rows(plans[:1], None, None))["totals"]
    assert own_a["savings_vs_fifo_baseline_actual"]["kg"] == pytest.approx(
        own_a["baseline_emissions_kg_actual"] - own_a["emissions_kg_actual"])
    json.dumps(s, allow_nan=False)


def test_actual_intensity_alignment():
    p = problem_of(_request(0, 60, 4, [{"id": "a", "region": "R", "gpu_capacity": 8}],
                            [job("x")], {"R": [100.0] * 4}))
    # 15-minute history from 00:00 to 03:30 with one missing point in the second hour.
    values = [100.0, 200.0, 300.0, 400.0, 10.0, float("nan"), 10.0, 10.0, 50.0, 50.0, 50.0,
              50.0, 70.0, 70.0]
    history = Forecast("R", T0, 15, tuple(values), provider="file")
    got = actual_intensity(p, [history])
    np.testing.assert_allclose(got[0, [0, 2]], [250.0, 50.0])
    assert np.isnan(got[0, 1]) and np.isnan(got[0, 3])  # missing value; not covered
    assert np.isnan(actual_intensity(p, {}) ).all()


def test_report_plan_validation(plans):
    rp = plans[0]
    with pytest.raises(ValueError, match="shape"):
        ReportPlan.of("bad", rp.problem, rp.plan, actual_ci_g_per_kwh=np.zeros((1, 1)))
    with pytest.raises(ValueError, match="signal"):
        ReportPlan.of("bad", rp.problem, rp.plan, signals={"R": "residual"})
    with pytest.raises(ValueError, match="end > start"):
        report_rows(plans, "2026-06-16", "2026-06-15")
    assert plans[1].signals == {"R": "average", "WT": "marginal"}


def test_accounting_statement(plans):
    text = accounting_statement(plans)
    assert "location-based" in text
    assert re.search(r"watttime: marginal", text)
    assert re.search(r"request: average", text)
    assert "mixes marginal and average" in text
    assert "history" in text and "FIFO baseline" in text and "run-now" in text
    assert "2 of 3 plan(s) have actuals" in text
    assert "file: actuals.csv" in text


def test_empty_period_renders(plans):
    empty = report_rows(plans, "2027-01-01", "2027-01-02")
    assert empty.empty and tuple(empty.columns) == ROW_COLUMNS
    s = summary(empty)
    assert s["totals"]["emissions_kg_forecast"] == 0
    assert s["totals"]["savings_vs_fifo_baseline"]["pct"] is None
    images = charts(plans, empty)
    assert list(images) == [EMISSIONS_BY_DAY]
    page = render_html(empty, s, accounting_statement(plans), images)
    assert page.count('<img src="data:image/png;base64,') == 1
    json.loads(render_json(empty, s, "x"))
    assert pd.read_csv(io.StringIO(render_csv(empty))).columns.tolist() == list(ROW_COLUMNS)


# -- rendering ----------------------------------------------------------------------------------

def test_csv_round_trips_through_pandas(rows):
    back = pd.read_csv(io.StringIO(render_csv(rows)), parse_dates=["day"])
    assert back.columns.tolist() == list(ROW_COLUMNS)
    assert len(back) == len(rows)
    assert back["day"].dt.date.tolist() == rows["day"].tolist()
    for col in ("team", "site", "region"):
        assert back[col].astype(str).tolist() == rows[col].tolist()
    numeric = [c for c in ROW_COLUMNS if c not in ("day", "team", "site", "region")]
    # Rounded to 1 Wh / 1 g (coverage to 1e-4) for people; NaN preserved.
    np.testing.assert_allclose(back[numeric].to_numpy(dtype=float),
                               rows[numeric].to_numpy(dtype=float), rtol=0, atol=5.1e-4)
    assert back["emissions_kg_actual"].isna().sum() == rows["emissions_kg_actual"].isna().sum()
    text = render_csv(rows)
    assert all(len(cell.split(".")[1]) <= 4 for line in text.splitlines()[1:]
               for cell in line.split(",") if cell.replace(".", "", 1).isdigit() and "." in cell)


def test_csv_neutralises_spreadsheet_formulas(rows):
    """A team named like a formula (=HYPERLINK(...)) is written as text (OWASP)."""
    evil = rows.copy()
    evil["team"] = ['=HYPERLINK("http://x","click")'] + list(evil["team"][1:])
    back = pd.read_csv(io.StringIO(render_csv(evil)))
    assert back["team"][0] == "'=HYPERLINK(\"http://x\",\"click\")"


def test_json_parses_with_the_same_figures(plans, rows):
    s = summary(rows)
    doc = json.loads(render_json(rows, s, accounting_statement(plans)))
    assert doc["summary"] == json.loads(json.dumps(s))
    assert len(doc["rows"]) == len(rows)
    assert doc["rows"][0]["day"] == rows["day"][0].isoformat()
    assert sum(r["emissions_kg_forecast"] for r in doc["rows"]) == pytest.approx(
        rows["emissions_kg_forecast"].sum(), rel=REL)
    assert any(r["emissions_kg_actual"] is None for r in doc["rows"])
    assert "location-based" in doc["accounting"]


def test_charts_cover_days_sites_and_regions_with_actuals(rendered):
    images = rendered[2]
    assert set(images) == {EMISSIONS_BY_DAY, LOAD_PREFIX + "a", LOAD_PREFIX + "b",
                           LOAD_PREFIX + "c", INTENSITY_PREFIX + "R", INTENSITY_PREFIX + "Q",
                           INTENSITY_PREFIX + "WT"}
    assert all(png.startswith(PNG_SIGNATURE) for png in images.values())


def test_html_embeds_decodable_images_and_nothing_external(rendered):
    from matplotlib import image as mpimg

    _, _, images, page = rendered
    assert page.startswith("<!DOCTYPE html>")
    assert page.count('<img src="data:image/png;base64,') == len(images)
    decoded = list(decode_images(page))
    assert decoded == list(images.values())
    for png in decoded:
        assert png.startswith(PNG_SIGNATURE)
        pixels = mpimg.imread(io.BytesIO(png), format="png")
        assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    try:
        from PIL import Image
    except ImportError:
        Image = None
    if Image is not None:
        for png in decoded:
            with Image.open(io.BytesIO(png)) as img:
                img.verify()
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", page, re.I)
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page and "<script" not in page
    assert "kg CO2e" in page and "kWh" in page and "location-based" in page


def test_html_images_are_valid_base64(rendered):
    page = rendered[3]
    for match in re.finditer(r'data:image/png;base64,([^"]+)"', page):
        assert base64.b64decode(match.group(1), validate=True).startswith(PNG_SIGNATURE)


# -- headlines: one stated basis, actuals where covered -------------------------------------


def test_headline_prefers_actuals_where_measured_and_shows_the_coverage(plans, rows):
    """Plan b lacks actuals in a few slots: the strict actual total is unknown (None), but the
    headline uses the actual intensity wherever it was measured and the forecast elsewhere,
    says so, and shows the share covered (it led with forecast-based figures, and one missing
    hour made every actual-based total null)."""
    s = summary(rows)
    totals, head = s["totals"], s["totals"]["headline"]
    assert totals["emissions_kg_actual"] is None
    coverage = totals["actual_coverage"]
    assert 0 < coverage < 1 and head["actual_coverage"] == coverage
    assert head["basis"].startswith("actual intensity where measured")
    assert f"{100 * coverage:.1f} % of grid energy" in head["basis"]
    known = np.isfinite(rows["emissions_kg_actual"].to_numpy())
    best = rows["emissions_kg_best"].to_numpy()
    np.testing.assert_allclose(best[known], rows["emissions_kg_actual"].to_numpy()[known])
    assert head["emissions_kg"] == pytest.approx(float(best.sum()))
    assert head["savings_vs_fifo_baseline"]["kg"] == pytest.approx(
        totals["baseline_emissions_kg_best"] - totals["compared_emissions_kg_best"])
    only_covered = summary(rows[rows["actual_coverage"] >= 1.0])["totals"]["headline"]
    assert only_covered["basis"] == "actual intensity"
    no_actuals = rows.assign(actual_coverage=0.0, emissions_kg_best=rows["emissions_kg_forecast"])
    head = summary(no_actuals)["totals"]["headline"]
    assert head["basis"].startswith("plan-time forecast")
    assert head["emissions_kg"] == pytest.approx(rows["emissions_kg_forecast"].sum())


def test_savings_compare_the_jobs_every_side_places():
    """A partial plan leaves job b out; the FIFO baseline and run-now place it. Savings
    compare job a on every side (they counted b's 2 kg on the baseline side only)."""
    request = _request(0, 60, 6, [{"id": "s", "region": "R", "gpu_capacity": 8}],
                       [job("a", gpus=4, power_kw=1, duration_minutes=60),
                        job("b", gpus=4, power_kw=5, duration_minutes=60)],
                       {"R": [400.0, 100.0, 400.0, 400.0, 400.0, 400.0]})
    p = problem_of(request)
    from gridshift.optimizer.plan import Placement, Plan

    plan = Plan(placements={0: Placement.contiguous(0, 1, 1)}, unscheduled={1: "left out"})
    rp = ReportPlan.of("partial", p, plan)
    assert rp.compared() == {0}
    t = summary(report_rows([rp], None, None))["totals"]
    assert t["energy_kwh"] == pytest.approx(1.0)            # the plan's work: job a
    assert t["compared_emissions_kg"] == pytest.approx(0.1)
    assert t["baseline_emissions_kg"] == pytest.approx(0.4)   # job a at 400 g, b not counted
    assert t["savings_vs_fifo_baseline"]["kg"] == pytest.approx(0.3)
    assert t["savings_vs_run_now"]["kg"] == pytest.approx(0.3)
