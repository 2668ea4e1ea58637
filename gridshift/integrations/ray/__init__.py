"""The Ray job gate, as a library: give jobs to the gate instead of straight to Ray, and it
submits each to the planned cluster at its planned start (see :mod:`gridshift.app.ray_gate`).

::

    from gridshift.integrations.ray import JobSubmission, open_gate

    gate = open_gate("sites.json")            # clusters: sites with a ray_address
    gate.submit(JobSubmission("python train.py", gpus=4, duration_minutes=180,
                              deadline=tomorrow_9am, clusters=("west", "east")))
    gate.run(interval_s=60)                   # or gate.round() from your own loop

The gate keeps its queue in gridshift's plan store (``[store]`` in the settings), so any
process opened on the same store may submit while one process runs the gate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gridshift.adapters.nightly_files import read_sites
from gridshift.adapters.store import GateSubmission
from gridshift.app.ray_gate import (
    STATES,
    JobSubmission,
    RayCluster,
    RayGate,
    RoundOutcome,
    clusters_of,
)
from gridshift.app.scheduler_plans import planner_plan
from gridshift.optimizer.errors import FieldViolation, InvalidInputError
from gridshift.settings import Settings, load_settings

__all__ = ["STATES", "GateSubmission", "JobSubmission", "RayCluster", "RayGate", "RoundOutcome",
           "open_gate"]


def open_gate(sites_file: str | Path, *, settings: Settings | None = None,
              slot_minutes: int | None = None, horizon_minutes: int = 24 * 60,
              time_limit_s: float = 10.0, move_weight: float = 0.5,
              forecasts: list[dict[str, Any]] | None = None) -> RayGate:
    """A gate over the sites file's Ray clusters, planning with gridshift in this process and
    queueing in the settings' plan store (InvalidInputError when storing is switched off)."""
    from gridshift.bootstrap import build_app

    app = build_app(settings or load_settings())
    if app.archive is None:
        raise InvalidInputError([FieldViolation(
            "[store]", "the Ray gate keeps its queue in the plan store: switch storing on")])
    entries, file_slot_minutes = read_sites(Path(sites_file))
    return RayGate(app.archive.store, clusters_of(entries), planner_plan(app.planner, "ray"),
                   slot_minutes=slot_minutes or file_slot_minutes,
                   horizon_minutes=horizon_minutes, time_limit_s=time_limit_s,
                   move_weight=move_weight, forecasts=forecasts)
