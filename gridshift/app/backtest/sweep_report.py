"""A sweep's outputs: the aggregate table as text, Markdown, CSV and JSON, every replay's rows,
and the chart of weekly share distributions per policy and region."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from gridshift.app.backtest.config import PF_ROW, REFERENCE_POLICY, no_regret_summary
from gridshift.app.backtest.report import json_float
from gridshift.app.backtest.sweep import SweepResult, share_is_meaningful, weekly_rows

_SWEEP_FORMATS = {"share_of_pf_pct": "{:.1f}", "weekly_share_median": "{:.1f}",
                  "weekly_share_p10": "{:.1f}", "weekly_share_min": "{:.1f}",
                  "savings_pct_mean": "{:.2f}", "worse_than_run_now_pct": "{:.1f}",
                  "worst_excess_pct": "{:.2f}", "ahead_of_lowest_pct": "{:.1f}"}


def _sweep_formatted(result: SweepResult) -> pd.DataFrame:
    frame = result.table.copy()
    for name, fmt in _SWEEP_FORMATS.items():
        if name not in frame:
            continue
        frame[name] = ["-" if pd.isna(v) else fmt.format(v) for v in frame[name]]
    return frame


def sweep_header(result: SweepResult) -> str:
    """What the sweep ran, where, and how fast."""
    done = [r for r in result.replays if not r.get("skipped")]
    where = "Ray" if result.executor == "ray" else "this process, one after another"
    workers = f", {result.workers} workers" if result.workers else ""
    first = done[0] if done else {}
    lines = [f"{len(done)} replays ({len(result.skipped)} skipped) on {where}{workers}: "
             f"{result.wall_s:.1f} s wall, {result.throughput_per_min:.2f} replays/min"]
    if first:
        lines.append(f"forecast (every forecast-driven policy alike): {_forecasts(done)}")
        lines.append(f"no-regret rule: {_rules_by_region(done)}; reference: the offline optimum "
                     "with actual intensity and every arrival known, or its relaxation's "
                     "bound (kinds per row)")
    return "\n".join(lines + [f"skipped {s}" for s in result.skipped])


def _forecasts(done: list[dict]) -> str:
    """The replays' forecast in words: one description, or where they differ only in the
    error model's seed (a sweep over seeds, or merged ones), one with every seed named —
    from each replay's ``forecast_template``, or for rows written before it existed, by
    finding the seed in the description."""
    described = list(dict.fromkeys(r["forecast"] for r in done))
    if len(described) == 1:
        return described[0]
    seeds = sorted({int(r["seed"]) for r in done})
    named = "seeds " + ", ".join(map(str, seeds))
    templates = {r.get("forecast_template") or _template_of(r) for r in done}
    if len(templates) == 1 and "{seeds}" in next(iter(templates)):
        return next(iter(templates)).replace("{seeds}", named)
    return "; ".join(described)


def _template_of(replay: dict) -> str:
    """An older row's forecast template: its description with the seed taken out."""
    seed = f"seed {replay['seed']}"
    return (replay["forecast"].replace(f"{seed},", "{seeds},")
            .replace(f"{seed})", "{seeds})"))


def _rules_by_region(done: list[dict]) -> str:
    """The no-regret rule of the replays: one summary, or each region's where they differ."""
    by_region: dict[str, set[str]] = {}
    for r in done:
        by_region.setdefault(r["region"], set()).add(
            no_regret_summary(r["no_regret_z"], r.get("no_regret_budget_pct")))
    named = {region: " / ".join(sorted(rules)) for region, rules in by_region.items()}
    counts = Counter(named.values())
    common, regions = counts.most_common(1)[0]
    if regions == len(named):
        return common
    if regions < 2:
        return "; ".join(f"{region} {rule}" for region, rule in sorted(named.items()))
    return "; ".join([f"{region} {rule}" for region, rule in sorted(named.items())
                      if rule != common] + [f"elsewhere {common}"])


def format_sweep(result: SweepResult) -> str:
    """The sweep's aggregate table as aligned text."""
    if result.table.empty:
        return sweep_header(result)
    return sweep_header(result) + "\n" + _sweep_formatted(result).to_string(index=False)


def sweep_json(result: SweepResult) -> dict:
    """The sweep as a JSON-ready dict: the aggregate per region and policy, every replay."""
    table = [{k: json_float(v) if isinstance(v, float) else v for k, v in row.items()}
             for row in result.table.to_dict("records")]
    return {"executor": result.executor, "workers": result.workers, "wall_s": result.wall_s,
            "replays_per_min": json_float(result.throughput_per_min), "aggregate": table,
            "skipped": result.skipped, "replays": result.replays}


def _sweep_chart(result: SweepResult, path: Path) -> None:
    """Box plots of the weekly shares of the perfect-foresight savings, per policy, one panel
    per region (the weeks where perfect foresight saves almost nothing left out, as in the
    table)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    weekly = weekly_rows(result.replays)
    regions = list(dict.fromkeys(weekly["region"])) if not weekly.empty else []
    fig = Figure(figsize=(4.2 * max(len(regions), 1), 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(1, max(len(regions), 1), sharey=True, squeeze=False)[0])
    shown = [p for p in dict.fromkeys(weekly.get("policy", [])) if p not in
             (REFERENCE_POLICY, PF_ROW)]
    for ax, region in zip(axes, regions, strict=False):
        rows = weekly[weekly["region"] == region]
        meaningful = rows[share_is_meaningful(rows)]
        data = [meaningful.loc[meaningful["policy"] == p, "share_of_pf_pct"].dropna().to_numpy()
                for p in shown]
        ax.boxplot(data, showfliers=True)
        ax.set_xticks(range(1, len(shown) + 1), shown, rotation=35, fontsize="small")
        ax.axhline(100.0, color="tab:gray", linewidth=0.8, linestyle="--")
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_title(f"{region} ({meaningful['start'].nunique()} of {rows['start'].nunique()} "
                     f"weeks x {rows['seed'].nunique()} seeds)", fontsize="medium")
    axes[0].set_ylabel("weekly share of perfect-foresight savings (%)")
    fig.savefig(path, dpi=100)


def write_sweep_outputs(result: SweepResult, out_dir: Path | str) -> list[Path]:
    """Write ``sweep.csv`` (the aggregate), ``sweep-weekly.csv`` (every replay and policy),
    ``sweep.md``, ``sweep.json`` and ``sweep.png`` (weekly share distributions)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / n for n in ("sweep.csv", "sweep-weekly.csv", "sweep.md", "sweep.json",
                               "sweep.png")]
    result.table.to_csv(paths[0], index=False)
    weekly_rows(result.replays).to_csv(paths[1], index=False)
    frame = _sweep_formatted(result) if not result.table.empty else pd.DataFrame()
    lines = ["# Backtest sweep", "", sweep_header(result).replace("\n", "  \n"), ""]
    if not frame.empty:
        lines += ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
        lines += ["| " + " | ".join(str(v) for v in row) + " |"
                  for row in frame.itertuples(index=False)]
    paths[2].write_text("\n".join(lines) + "\n", encoding="utf-8")
    paths[3].write_text(json.dumps(sweep_json(result), indent=1), encoding="utf-8")
    _sweep_chart(result, paths[4])
    return paths
