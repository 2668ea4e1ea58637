"""The backtest's outputs: the comparison table as text and Markdown, the chart, and the
files :func:`write_outputs` writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gridshift.app.backtest.config import REFERENCE_POLICY, BacktestConfig, BacktestResult

_FORMATS = {"emissions_kg": "{:,.1f}", "energy_kwh": "{:,.0f}", "savings_kg": "{:,.1f}",
            "savings_pct": "{:.2f}", "share_of_pf_pct": "{:.1f}", "late_jobs": "{:d}",
            "mean_wait_h": "{:.2f}", "windows": "{:d}", "wall_s_per_window_mean": "{:.3f}",
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
    """One line of what was replayed."""
    cfg = result.config
    return (f"{cfg.region}: {cfg.days} day(s) from {cfg.start} (trace {result.trace_start}), "
            f"{len(result.jobs)} jobs, capacity {result.capacity_gpus} GPUs, slack "
            f"{cfg.slack_h:g} h, decisions every {cfg.decision_hours} h, forecast error "
            f"{cfg.forecast_model} ({cfg.vintages} vintages), {_forecasts_used(cfg)}, time "
            f"limit {cfg.time_limit_s:g} s per window (perfect foresight {cfg.pf_limit_s:g} s), "
            f"seed {cfg.seed}")


def _forecasts_used(cfg: BacktestConfig) -> str:
    if not cfg.blend:
        return "every policy on the raw forecast"
    blended = f"blended with actuals published {cfg.actuals_delay_h} h late"
    if cfg.blend_others:
        return f"every forecast-driven policy on the forecast {blended}"
    return f"gridshift on the forecast {blended}, the per-job policies on the raw forecast"


def _markdown(result: BacktestResult) -> str:
    frame = _formatted(result)
    lines = [f"# Backtest {result.config.region}", "", describe(result) + ".", "",
             "Emissions with the actual intensity; savings against run-now; share = savings / "
             "perfect-foresight savings. Every schedule passed the independent checker "
             f"({result.checks_passed} checks).", "",
             "| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in frame.itertuples(index=False)]
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
    colours = {"gridshift": "tab:blue", "perfect-foresight": "tab:gray"}
    bars = right.bar(table["policy"], table["savings_pct"],
                     color=[colours.get(p, "tab:green") for p in table["policy"]])
    right.bar_label(bars, labels=["" if pd.isna(s) else f"{s:.0f}% of PF"
                                  for s in table["share_of_pf_pct"]], fontsize="small")
    right.axhline(0.0, color="black", linewidth=0.8)
    right.set_ylabel("savings vs run-now (%)")
    right.set_title("savings")
    right.tick_params(axis="x", labelrotation=30)
    fig.savefig(path, dpi=110)


def write_outputs(result: BacktestResult, out_dir: Path | str) -> list[Path]:
    """Write ``backtest-<region>-<start>.csv`` (the table), ``.md`` and ``.png`` (chart)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"backtest-{result.config.region}-{result.config.start.isoformat()}"
    csv, md, png = (stem.with_name(stem.name + s) for s in (".csv", ".md", ".png"))
    result.table.to_csv(csv, index=False)
    md.write_text(_markdown(result), encoding="utf-8")
    _chart(result, png)
    return [csv, md, png]
