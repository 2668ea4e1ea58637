"""One replay's outputs: the comparison table as text, Markdown and JSON, the chart, and the
files :func:`write_outputs` writes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from gridshift.app.backtest.config import (
    PF_ROW,
    REFERENCE_POLICY,
    BacktestResult,
    no_regret_summary,
)

_FORMATS = {"emissions_kg": "{:,.1f}", "energy_kwh": "{:,.0f}", "savings_kg": "{:,.1f}",
            "savings_pct": "{:.2f}", "savings_vs_fifo_kg": "{:,.1f}",
            "share_of_pf_pct": "{:.1f}", "late_jobs": "{:d}", "mean_wait_h": "{:.2f}",
            "windows": "{:d}", "wall_s_per_window_mean": "{:.3f}",
            "wall_s_per_window_max": "{:.3f}"}


def _formatted(result: BacktestResult) -> pd.DataFrame:
    """The table as strings (region column dropped; NaN shown as '-')."""
    frame = result.table.drop(columns=["region"])
    for name, fmt in _FORMATS.items():
        frame[name] = ["-" if pd.isna(v) else fmt.format(v) for v in frame[name]]
    return frame


def format_table(result: BacktestResult) -> str:
    """The comparison table as aligned text (for terminals)."""
    return _formatted(result).to_string(index=False)


def describe(result: BacktestResult) -> str:
    """What was replayed, and the reference, in a few lines."""
    cfg = result.config
    cap = f", power cap {cfg.power_cap_kw:g} kW" if cfg.power_cap_kw is not None else ""
    lines = [
        f"{cfg.region}: {cfg.days} day(s) from {cfg.start} (trace {result.trace_start}), "
        f"{len(result.jobs)} jobs, capacity {result.capacity_gpus} GPUs, PUE {cfg.pue:g}{cap}, "
        f"slack {cfg.slack_h:g} h, decisions every {cfg.decision_hours} h, time limit "
        f"{cfg.time_limit_s:g} s per window, seed {cfg.seed}",
        f"forecast (every forecast-driven policy alike): {cfg.forecast_source}",
    ]
    if result.reference is not None:
        lines.append(result.reference.describe())
    if "gridshift" in result.rules and cfg.no_regret_z is not None:
        n = result.no_regret
        rule = no_regret_summary(cfg.no_regret_z, max(cfg.no_regret_budget_pct, 0.0))
        lines.append(f"no-regret rule ({rule}): "
                     f"{n.get('kept', 0)} shift decisions kept, "
                     f"{n.get('pulled_back', 0)} pulled back to run now, "
                     f"{n.get('no_room', 0)} kept for want of room")
    return "\n".join(lines)


def rules_text(result: BacktestResult) -> str:
    """The policies' rules, one line each."""
    shown = set(result.table["policy"])
    return "\n".join(f"  {name}: {rule}" for name, rule in result.rules.items()
                     if name in shown)


def json_float(value: float) -> float | None:
    """A float for JSON: None for NaN."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) \
        else float(value)


def to_json(result: BacktestResult) -> dict:
    """The replay as a JSON-ready dict: per policy emissions (kg CO2e), savings against
    run-now and FIFO (kg and %), the share of the perfect-foresight savings, and the
    reference's kind."""
    cfg, ref = result.config, result.reference
    policies = {}
    for row in result.table.to_dict("records"):
        policies[row["policy"]] = {
            "emissions_kg": json_float(row["emissions_kg"]),
            "savings_vs_run_now_kg": json_float(row["savings_kg"]),
            "savings_vs_run_now_pct": json_float(row["savings_pct"]),
            "savings_vs_fifo_kg": json_float(row["savings_vs_fifo_kg"]),
            "share_of_pf_savings_pct": json_float(row["share_of_pf_pct"]),
            "late_jobs": int(row["late_jobs"]),
            "rule": result.rules.get(row["policy"], "the reference (see reference)"),
        }
    return {
        "region": cfg.region, "start": cfg.start.isoformat(), "days": cfg.days,
        "seed": cfg.seed, "trace_start": result.trace_start.isoformat(),
        "jobs": len(result.jobs), "capacity_gpus": result.capacity_gpus,
        "slack_h": cfg.slack_h, "decision_hours": cfg.decision_hours,
        "forecast": cfg.forecast_source, "forecast_template": cfg.forecast_template,
        "reference": None if ref is None else {
            "kind": ref.kind, "bound_kg": ref.bound_kg, "plan_kg": json_float(ref.plan_kg),
            "gap_pct": json_float(ref.gap_pct), "relaxed_jobs": ref.relaxed_jobs,
            "detail": ref.detail},
        "no_regret_z": cfg.no_regret_z,
        "no_regret_budget_pct": cfg.no_regret_budget_pct if cfg.no_regret_z is not None
        else None,
        "no_regret": dict(result.no_regret),
        "policies": policies, "checks_passed": result.checks_passed,
    }


def _markdown(result: BacktestResult) -> str:
    frame = _formatted(result)
    lines = [f"# Backtest {result.config.region}", "", describe(result).replace("\n", "  \n")
             + ".", "",
             "Emissions with the actual intensity (kg CO2e); savings against run-now; share = "
             "savings / perfect-foresight savings (the reference's bound). Every schedule "
             f"passed the independent checker ({result.checks_passed} checks).", "",
             "| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in frame.itertuples(index=False)]
    lines += ["", "Rules:", ""] + [f"- **{name}**: {rule}" for name, rule in
                                   result.rules.items() if name in set(result.table["policy"])]
    return "\n".join(lines) + "\n"


def _chart(result: BacktestResult, path: Path) -> None:
    """Cumulative actual emissions per policy (left) and savings vs run-now (right)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, width_ratios=[2, 1])
    hourly = result.hourly_kg
    last = int(np.flatnonzero(hourly.to_numpy().sum(axis=1) > 0).max()) + 1
    cumulative = hourly.iloc[:last].cumsum() / 1000.0
    for policy in cumulative.columns:
        left.plot(cumulative.index, cumulative[policy], label=policy)
    left.set_ylabel("cumulative emissions (t CO2e)")
    left.set_title(f"{result.config.region}: emissions over the replay (actual intensity)")
    left.legend(loc="upper left", fontsize="small")
    left.tick_params(axis="x", labelrotation=30)
    table = result.table[result.table["policy"] != REFERENCE_POLICY]
    colours = {"gridshift": "tab:blue", PF_ROW: "tab:gray"}
    bars = right.bar(table["policy"], table["savings_pct"],
                     color=[colours.get(p, "tab:green") for p in table["policy"]])
    right.bar_label(bars, labels=["" if pd.isna(s) else f"{s:.0f}% of PF"
                                  for s in table["share_of_pf_pct"]], fontsize="small")
    right.axhline(0.0, color="black", linewidth=0.8)
    right.set_ylabel("savings vs run-now (%)")
    kind = result.reference.kind if result.reference else ""
    right.set_title(f"savings (PF: {kind})")
    right.tick_params(axis="x", labelrotation=30)
    fig.savefig(path, dpi=110)


def write_outputs(result: BacktestResult, out_dir: Path | str) -> list[Path]:
    """Write ``backtest-<region>-<start>.csv`` (the table), ``.md`` and ``.png`` (chart)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"backtest-{_safe(result.config.region)}-{result.config.start.isoformat()}"
    csv, md, png = (stem.with_name(stem.name + s) for s in (".csv", ".md", ".png"))
    result.table.to_csv(csv, index=False)
    md.write_text(_markdown(result), encoding="utf-8")
    _chart(result, png)
    return [csv, md, png]


def _safe(name: str) -> str:
    """A region name as a file name part (anything but letters, digits, - and _ becomes _)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
