"""Exact solver backends. Each takes a MilpModel and returns a BackendResult; solver libraries
are imported only when a backend runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Called with (objective, best_bound, elapsed_seconds, solution values or None) on every
# improved solution.
ProgressCallback = Callable[[float, float, float, "np.ndarray | None"], None]


@dataclass
class BackendResult:
    status: str                 # "optimal" | "feasible" | "infeasible" | "no_solution"
    values: np.ndarray | None
    objective: float            # model objective including offset (nan without a solution)
    best_bound: float           # including offset (-inf when unknown)
    wall_seconds: float
    detail: str = ""
    # LP relaxations solved by HiGHS only: the reduced cost of every column at the optimum.
    reduced_costs: np.ndarray | None = None
