"""Batch scoring of candidate schedules over forecast scenarios, on NumPy or CuPy.

Pure and light: importing this package needs NumPy only (no OR-Tools, no CuPy until a GPU is
used). See `scorer.score`, `candidates.CandidateBatch`, `risk.risk_measures` and
`device.array_module`.
"""

from gridshift.optimizer.scoring.candidates import CandidateBatch, empty_batch, from_plans, to_plan
from gridshift.optimizer.scoring.device import DeviceUnavailableError, array_module
from gridshift.optimizer.scoring.risk import risk_measures
from gridshift.optimizer.scoring.scorer import Scores, score

__all__ = [
    "CandidateBatch",
    "DeviceUnavailableError",
    "Scores",
    "array_module",
    "empty_batch",
    "from_plans",
    "risk_measures",
    "score",
    "to_plan",
]
