"""What the scheduler integrations (the Slurm agent, the Ray gate) share: planning a request
in-process and reading the plan back as ``{job id: (site id, start)}``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from gridshift.app.planning import Planner
from gridshift.optimizer.errors import FieldViolation

__all__ = ["DEFAULT_GPU_POWER_KW", "PlanFn", "gpu_power_kw_of", "planner_plan", "utc_text"]

#: A job's IT power per GPU where a sites-file entry does not say (kW).
DEFAULT_GPU_POWER_KW = 0.7

#: (request dict) -> (plan id, {job_id: (site_id, start)}, {job_id: reason}): a planner.
PlanFn = Callable[[dict[str, Any]], tuple[str, dict[str, tuple[str, datetime]], dict[str, str]]]


def planner_plan(planner: Planner, source: str = "slurm") -> PlanFn:
    """A PlanFn over an in-process planner: plans and stores (with ``source``); committed jobs
    are not in the placements it returns."""
    def plan(request: dict[str, Any]):
        with planner.tracing.span("plan", source=source):   # the trace of one plan
            problem = planner.prepare(request)
            result = planner.solve(problem)
            kept = planner.keep(result, request, source)
        p = result.problem
        placed = {p.job_ids[j]: (p.site_ids[pl.site], p.slot_time(pl.start_slot))
                  for j, pl in result.plan.placements.items() if not p.committed[j]}
        left = {p.job_ids[j]: why for j, why in result.plan.unscheduled.items()}
        return kept.plan_id, placed, left
    return plan


def utc_text(moment: datetime) -> str:
    """RFC 3339 UTC, to the second (the request's timestamps)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def gpu_power_kw_of(entry: Any, i: int, problems: list[FieldViolation]) -> float | None:
    """The kW per GPU of sites-file entry ``i`` (default 0.7), or None with the problem added
    to ``problems`` (an entry that is not a mapping with an id, or a power that is not > 0)."""
    if not isinstance(entry, dict) or not entry.get("id"):
        problems.append(FieldViolation(f"sites[{i}]", "needs an id"))
        return None
    power = entry.get("gpu_power_kw", DEFAULT_GPU_POWER_KW)
    if isinstance(power, bool) or not isinstance(power, int | float) or not power > 0:
        problems.append(FieldViolation(f"sites[{i}].gpu_power_kw",
                                       f"must be kW per GPU > 0, got {power!r}"))
        return None
    return float(power)
