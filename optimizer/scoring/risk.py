"""Risk measures of emissions over forecast scenarios.

For each candidate, over its Sc scenario emissions e[0..Sc-1]:

- expected: the mean of e (scenarios equally likely);
- P90: the 90th percentile of e with NumPy's default linear interpolation
  (`numpy.percentile(e, 90)`): the value at rank 0.9 * (Sc - 1) of the sorted e,
  interpolated linearly between neighbours;
- CVaR95: the mean of the worst k = ceil(0.05 * Sc) scenarios (the k largest e).

With Sc = 1 all three equal the single value.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gridshift.optimizer.scoring.device import to_numpy

P90_PERCENT = 90.0
CVAR_LEVEL = 0.95


def cvar_tail_size(n_scenarios: int) -> int:
    """k = ceil(0.05 * Sc) worst scenarios averaged by CVaR95 (at least 1)."""
    return max(1, math.ceil(round((1.0 - CVAR_LEVEL) * n_scenarios, 9)))


def risk_measures(emissions_kg: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(expected, P90, CVaR95) emissions in kg per candidate from `emissions_kg` [B, Sc].

    Definitions in the module docstring. Accepts NumPy or CuPy input; returns NumPy [B] arrays.
    """
    e = np.asarray(to_numpy(emissions_kg), dtype=float)
    if e.ndim != 2 or e.shape[1] < 1:
        raise ValueError(f"emissions_kg must be [B, Sc] with Sc >= 1, got {e.shape}")
    n_scenarios = e.shape[1]
    expected = e.mean(axis=1)
    p90 = np.percentile(e, P90_PERCENT, axis=1)
    k = cvar_tail_size(n_scenarios)
    worst = np.partition(e, n_scenarios - k, axis=1)[:, n_scenarios - k:]
    return expected, p90, worst.mean(axis=1)
